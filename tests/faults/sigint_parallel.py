"""SIGINT (Ctrl-C) to the main program while a Parallel runs.

usage: sigint_parallel.py

Children: two blocked readers, an alternation with a pending timeout, a busy
loop in pure Python, a long time.sleep, and a nested Parallel whose two
grandchildren block on a channel.  Each prints "child PID"; the test sends
SIGINT once all CHILDREN lines are out (to the main program alone, or to the
whole process group as a terminal's Ctrl-C does).  Expected: Parallel raises
KeyboardInterrupt in the main program, every child and grandchild ends, the
program then exits by KeyboardInterrupt.
"""
import os
import time

import pycsp.processes as csp
from _common import finish, say

CHILDREN = 8


@csp.process
def blocked(cin):
    say("child", os.getpid())
    cin()


@csp.process
def alternating(cin):
    say("child", os.getpid())
    while True:
        csp.AltSelect(csp.InputGuard(cin), csp.TimeoutGuard(0.05))


@csp.process
def busy():
    say("child", os.getpid())
    x = 0
    while True:
        x += 1


@csp.process
def sleeper():
    say("child", os.getpid())
    time.sleep(3600)


@csp.process
def nested(cin):
    say("child", os.getpid())
    csp.Parallel(blocked(cin), blocked(cin))


ch = csp.Channel()
keep_open = ch.writer()
try:
    csp.Parallel(blocked(ch.reader()), blocked(ch.reader()), alternating(ch.reader()),
                 busy(), sleeper(), nested(ch.reader()))
    say("UNEXPECTED Parallel returned")
except KeyboardInterrupt:
    say("caught KeyboardInterrupt")
    finish()
    raise
