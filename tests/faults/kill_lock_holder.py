"""Processes killed while they may hold a channel lock do not wedge the others.

usage: kill_lock_holder.py BUFFER ROUNDS M WRITERS [GUARDS]

WRITERS stable writers each send M tagged messages on one channel (buffer
BUFFER) to one reader, which counts them exactly.  Meanwhile a manager runs
rounds (at most ROUNDS, until the reader is done): a victim gets a writer end
of the same channel over a pipe channel (so the channel is not among its
arguments and is not poisoned when it dies), writes to it as fast as it can,
and is killed with SIGKILL after a short varying delay, often inside the
channel's critical section.  With GUARDS > 0 the victim writes through an
AltSelect that also has GUARDS input guards on idle channels, so that it holds
the channel's lock longer (an alternation locks all its channels at once).  A round in which the victim was not killed means
that its write was poisoned: the manager stops then.

Expected: the program ends, and each process ends one of two clean ways:
either the reader got every stable message exactly once (nothing corrupt), or
- when a victim died holding the channel's lock, which makes the channel
poisoned - every process blocked on the channel is poisoned out.  A process
left blocked on the channel would be reported as a DeadlockError.
"""
import os
import signal
import sys
import time

import pycsp.processes as csp
from _common import finish, say

BUFFER = int(sys.argv[1])
ROUNDS = int(sys.argv[2])
M = int(sys.argv[3])
WRITERS = int(sys.argv[4])
GUARDS = int(sys.argv[5]) if len(sys.argv) > 5 else 0


@csp.process
def stable_writer(cout, i):
    try:
        for k in range(M):
            cout(("s", i, k))
    except csp.ChannelPoisonException:
        say("writer poisoned", i)
        raise
    except csp.DeadlockError:
        say("DEADLOCK in writer", i, "(it was left blocked on the channel)")
        raise


@csp.process
def reader(cin, done_out):
    seen = [0] * WRITERS
    total = 0
    victim_msgs = 0
    try:
        while total < WRITERS * M:
            msg = cin()
            if msg[0] == "s":
                _, i, k = msg
                if k != seen[i]:
                    say("OUT OF ORDER", i, k, seen[i])
                seen[i] = k + 1
                total += 1
            elif msg[0] == "v":
                victim_msgs += 1
            else:
                say("CORRUPT", repr(msg)[:80])
    except csp.ChannelPoisonException:
        say("reader poisoned after", total, "stable messages")
        raise
    except csp.DeadlockError:
        say("DEADLOCK in reader (it was left blocked on the channel)")
        raise
    done_out(True)
    say("reader done", total, "stable messages, victims sent", victim_msgs)
    return total


@csp.process
def victim(pipe_in, pid_out):
    cout = pipe_in()
    pid = os.getpid()
    pid_out(pid)
    n = 0
    if GUARDS:
        idle = [csp.Channel() for _ in range(GUARDS)]
        keep = [c.writer() for c in idle]  # noqa: F841 - joined, never written
        guards = [csp.InputGuard(c.reader()) for c in idle]
        while True:
            csp.PriSelect(csp.OutputGuard(cout, ("v", pid, n)), *guards)
            n += 1
    while True:
        cout(("v", pid, n))
        n += 1


@csp.process
def feeder_killer(pipe_out, end, pid_in, delay):
    pipe_out(end)
    pid = pid_in()
    time.sleep(delay)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@csp.process
def manager(ch, done_in):
    crashed = 0
    rounds = 0
    for r in range(ROUNDS):
        if csp.PriSelect(csp.InputGuard(done_in), csp.SkipGuard())[0] is done_in:
            break
        rounds += 1
        pipe = csp.Channel()
        pids = csp.Channel(buffer=1)
        delay = 0.001 + (r % 10) * 0.002
        try:
            csp.Parallel(victim(pipe.reader(), pids.writer()),
                         feeder_killer(pipe.writer(), ch.writer(), pids.reader(), delay))
        except csp.ProcessCrashed:
            crashed += 1
        else:
            say("manager: the channel was poisoned in round", r)
            break
    say("manager done, rounds", rounds, "crashed", crashed)
    return crashed


ch = csp.Channel(buffer=BUFFER)
procs = [stable_writer(ch.writer(), i) for i in range(WRITERS)]
done = csp.Channel(buffer=1)
procs += [reader(ch.reader(), done.writer()), manager(ch, done.reader())]
t0 = time.monotonic()
try:
    results = csp.Parallel(procs)
    say("result", results[WRITERS], results[WRITERS + 1])
except Exception as exc:
    say("Parallel raised", type(exc).__name__, exc)
say("elapsed", round(time.monotonic() - t0, 1))
finish()
