"""kill -9 of a process that waits inside an alternation.

usage: kill_in_alternation.py MODE ROUNDS     (MODE: args | mobile)

args: the victim waits in AltSelect over input guards on a and b and an output
  guard on f (its ends are in its arguments).  Peers wait on the same channels:
  a plain reader of a, an alternation reading b, a writer blocked on f.  The
  victim is killed with SIGKILL.  Expected: ProcessCrashed naming SIGKILL, every
  peer poisoned out, nothing hangs.
mobile: the victim gets its reader end of channel a over a channel (so a is not
  in its arguments and is not poisoned when it dies) and waits in AltSelect on
  it.  After it is killed and reaped, a must still work: every message written
  to a reaches a live reader (the dead process's offer was withdrawn).
"""
import os
import signal
import sys
import time

import pycsp.processes as csp
from _common import finish, say

MODE = sys.argv[1]
ROUNDS = int(sys.argv[2])
FOREVER = 3600  # a pending timeout: the victim waits, this is no deadlock


@csp.process
def victim(a_in, b_in, f_out, pid_out):
    say("child", os.getpid())
    pid_out(os.getpid())
    csp.AltSelect(csp.InputGuard(a_in), csp.InputGuard(b_in),
                  csp.OutputGuard(f_out, "from victim"), csp.TimeoutGuard(FOREVER))
    say("UNEXPECTED victim alt returned")


@csp.process
def plain_reader(a_in):
    say("child", os.getpid())
    try:
        msg = a_in()
        say("UNEXPECTED plain reader got", msg)
    except csp.ChannelPoisonException:
        say("peer poisoned: reader of a")
        raise


@csp.process
def alt_reader(b_in):
    say("child", os.getpid())
    try:
        guard, msg = csp.AltSelect(csp.InputGuard(b_in), csp.TimeoutGuard(FOREVER))
        say("UNEXPECTED alt reader got", msg)
    except csp.ChannelPoisonException:
        say("peer poisoned: alternation on b")
        raise


@csp.process
def blocked_writer(f_out):
    say("child", os.getpid())
    try:
        f_out("from writer")
        say("UNEXPECTED writer on f returned")
    except csp.ChannelPoisonException:
        say("peer poisoned: writer on f")
        raise


@csp.process
def killer(pid_in, delay):
    say("child", os.getpid())
    pid = pid_in()
    time.sleep(delay)
    os.kill(pid, signal.SIGKILL)
    say("killed", pid)


@csp.process
def mobile_victim(pipe_in, pid_out):
    say("child", os.getpid())
    a_in = pipe_in()
    pid_out(os.getpid())
    guard, msg = csp.AltSelect(csp.InputGuard(a_in), csp.TimeoutGuard(FOREVER))
    say("UNEXPECTED mobile victim got", msg)


@csp.process
def feeder(pipe_out, end):
    say("child", os.getpid())
    pipe_out(end)


@csp.process
def write_n(cout, n):
    for i in range(n):
        cout(i)


@csp.process
def read_n(cin, n):
    return [cin() for _ in range(n)]


def args_round(r):
    a, b, f = csp.Channel(), csp.Channel(), csp.Channel()
    pids = csp.Channel(buffer=1)
    delay = 0.2 + 0.05 * r
    try:
        csp.Parallel(
            victim(a.reader(), b.reader(), f.writer(), pids.writer()),
            plain_reader(a.reader()),
            alt_reader(b.reader()),
            blocked_writer(f.writer()),
            killer(pids.reader(), delay),
            # Writers of a and b stay joined (held by the main program below),
            # so nothing is retired; only poison can end the peers.
        )
        say("round", r, "no exception")
    except csp.ProcessCrashed as exc:
        say("round", r, "ProcessCrashed:", exc)


a = csp.Channel()
keep = [a.writer()]


def mobile_round(r):
    pipe = csp.Channel()
    pids = csp.Channel(buffer=1)
    try:
        csp.Parallel(
            mobile_victim(pipe.reader(), pids.writer()),
            feeder(pipe.writer(), a.reader()),
            killer(pids.reader(), 0.2 + 0.05 * r),
        )
        say("round", r, "no exception")
    except csp.ProcessCrashed as exc:
        say("round", r, "ProcessCrashed:", exc)
    n = 20
    got = csp.Parallel(write_n(a.writer(), n), read_n(a.reader(), n))[1]
    say("round", r, "delivered", got == list(range(n)))


for r in range(ROUNDS):
    (args_round if MODE == "args" else mobile_round)(r)
finish()
