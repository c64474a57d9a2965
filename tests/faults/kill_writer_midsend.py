"""kill -9 of a writer in the middle of sending 64 MiB messages.

usage: kill_writer_midsend.py KIND ROUNDS     (KIND: bytes | numpy)

Each round: a writer sends 64 MiB messages in a loop to two readers over a
rendezvous channel; a killer process kills the writer with SIGKILL after a
varying delay (so that the kill lands in pickling, copying or waiting).
Expected: Parallel raises ProcessCrashed naming SIGKILL; both readers are
poisoned out; every message a reader got is complete; nothing hangs.
After the rounds the runtime still moves a 64 MiB message.
"""
import os
import sys
import time

import pycsp.processes as csp
from _common import finish, kill_after, say

KIND = sys.argv[1]
ROUNDS = int(sys.argv[2])
SIZE = 64 << 20

if KIND == "numpy":
    import numpy as np


def make(seq):
    v = seq % 251
    if KIND == "numpy":
        return np.full(SIZE, v, dtype=np.uint8)
    return bytes([v]) * SIZE


def intact(msg, seq):
    v = seq % 251
    if KIND == "numpy":
        return msg.shape == (SIZE,) and msg.dtype == np.uint8 and bool((msg == v).all())
    return type(msg) is bytes and len(msg) == SIZE and msg == bytes([v]) * SIZE


@csp.process
def writer(cout, pid_out):
    say("child", os.getpid())
    pid_out(os.getpid())
    seq = 0
    while True:
        cout((seq, make(seq)))
        seq += 1


@csp.process
def reader(cin, name):
    say("child", os.getpid())
    got = 0
    try:
        while True:
            seq, msg = cin()
            if not intact(msg, seq):
                say("CORRUPT", name, seq)
            got += 1
    except csp.ChannelPoisonException:
        say("reader poisoned", name, got)
        raise


killer = csp.process(kill_after)


child_pids = []
for r in range(ROUNDS):
    ch = csp.Channel()
    pids = csp.Channel(buffer=1)
    rec = csp.Channel(buffer=1)
    delay = 0.01 + 0.37 * r / max(1, ROUNDS - 1)
    try:
        csp.Parallel(
            writer(ch.writer(), pids.writer()),
            reader(ch.reader(), "a"),
            reader(ch.reader(), "b"),
            killer(pids.reader(), delay, rec.writer()),
        )
        say("round", r, "no exception")
    except csp.ProcessCrashed as exc:
        say("round", r, "ProcessCrashed:", exc)
    child_pids.append(rec.reader()())

# The runtime is still usable: a fresh channel moves a 64 MiB message.


@csp.process
def send(cout):
    cout((7, make(7)))


@csp.process
def recv(cin):
    seq, msg = cin()
    return intact(msg, seq)


ch = csp.Channel()
say("after:", csp.Parallel(send(ch.writer()), recv(ch.reader())))
finish(child_pids)
