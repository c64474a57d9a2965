"""kill -9 of a reader in the middle of receiving 64 MiB messages.

usage: kill_reader_midreceive.py ROUNDS

Each round: a writer sends 64 MiB numpy arrays over a rendezvous channel to two
readers; a killer kills reader "a" with SIGKILL after a varying delay (so that
the kill lands while it waits, copies out or unpickles).  Expected: Parallel
raises ProcessCrashed naming SIGKILL; the writer and the other reader are
poisoned out; nothing hangs; the arena is usable afterwards.
"""
import os
import sys
import time

import numpy as np

import pycsp.processes as csp
from _common import finish, kill_after, say

ROUNDS = int(sys.argv[1])
SIZE = 64 << 20


@csp.process
def writer(cout):
    say("child", os.getpid())
    sent = 0
    try:
        while True:
            cout(np.full(SIZE, sent % 251, dtype=np.uint8))
            sent += 1
    except csp.ChannelPoisonException:
        say("writer poisoned", sent)
        raise


@csp.process
def reader(cin, name, pid_out=None):
    say("child", os.getpid())
    if pid_out is not None:
        pid_out(os.getpid())
    got = 0
    try:
        while True:
            msg = cin()
            if msg.shape != (SIZE,) or msg[0] != msg[-1] or msg[SIZE // 2] != msg[0]:
                say("CORRUPT", name)
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
            writer(ch.writer()),
            reader(ch.reader(), "a", pids.writer()),
            reader(ch.reader(), "b"),
            killer(pids.reader(), delay, rec.writer()),
        )
        say("round", r, "no exception")
    except csp.ProcessCrashed as exc:
        say("round", r, "ProcessCrashed:", exc)
    child_pids.append(rec.reader()())


@csp.process
def send(cout):
    cout(np.arange(SIZE // 8, dtype=np.int64))


@csp.process
def recv(cin):
    return bool((cin() == np.arange(SIZE // 8, dtype=np.int64)).all())


ch = csp.Channel()
say("after:", csp.Parallel(send(ch.writer()), recv(ch.reader())))
finish(child_pids)
