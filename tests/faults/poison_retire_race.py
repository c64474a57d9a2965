"""Poison racing retire from many OS processes at once.

usage: poison_retire_race.py ROUNDS RACERS

Each round, on a channel (rendezvous, then buffered, alternately): RACERS
processes wait at a start line, then all at once half of them poison the
channel through their ends and half retire both their ends, while other
processes keep reading, writing and selecting on it.  Expected: every process
ends (by the poison or retire it meets: both end a process normally), the
Parallel returns, a later operation on the channel raises poison or retire,
nothing hangs.
"""
import os
import sys

import pycsp.processes as csp
from _common import finish, say

ROUNDS = int(sys.argv[1])
RACERS = int(sys.argv[2])


@csp.process
def racer(start, cin, cout, i):
    start()
    if i % 2:
        cout.poison()
    else:
        csp.retire(cin, cout)
    return "raced"


@csp.process
def busy_reader(cin):
    while True:
        cin()


@csp.process
def busy_writer(cout, i):
    n = 0
    while True:
        cout((i, n))
        n += 1


@csp.process
def busy_selector(cin, cout):
    while True:
        csp.AltSelect(csp.InputGuard(cin), csp.OutputGuard(cout, "sel"))


@csp.process
def starter(go, n):
    for _ in range(n):
        go("go")


for r in range(ROUNDS):
    ch = csp.Channel(buffer=0 if r % 2 == 0 else 3)
    go = csp.Channel()
    procs = [racer(go.reader(), ch.reader(), ch.writer(), i) for i in range(RACERS)]
    procs += [busy_reader(ch.reader()) for _ in range(3)]
    procs += [busy_writer(ch.writer(), i) for i in range(3)]
    procs += [busy_selector(ch.reader(), ch.writer()) for _ in range(2)]
    procs.append(starter(go.writer(), RACERS))
    try:
        results = csp.Parallel(procs)
    except Exception as exc:
        say("round", r, "Parallel raised", type(exc).__name__, exc)
        continue
    racers_ok = results[:RACERS].count("raced") + results[:RACERS].count(None)
    # A later read: the channel is poisoned (some racers poisoned it).
    try:
        ch.reader()()
        say("round", r, "UNEXPECTED read succeeded")
    except csp.ChannelPoisonException:
        say("round", r, "ok poisoned", racers_ok)
    except csp.ChannelRetireException:
        say("round", r, "ok retired", racers_ok)
say("pid", os.getpid())
finish()
