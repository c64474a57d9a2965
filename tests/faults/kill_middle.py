"""kill -9 of a process that runs a nested Parallel, then a deadlock.

usage: kill_middle.py

A middle process runs a nested Parallel of two grandchildren blocked on a
channel; a killer kills the middle process with SIGKILL.  Expected: the main
program gets ProcessCrashed naming SIGKILL, the grandchildren end too.  Then
the program is still sound: a Parallel of two processes that both read (a
deadlock) raises DeadlockError instead of hanging - the deadlock accounting
was not left off by the dead processes.
"""
import os
import signal
import time

import pycsp.processes as csp
from _common import finish, say


@csp.process
def grandchild(cin):
    say("child", os.getpid())
    cin()


@csp.process
def middle(pid_out):
    say("child", os.getpid())
    pid_out(os.getpid())
    ch = csp.Channel()
    keep = ch.writer()  # noqa: F841 - joined, never written
    csp.Parallel(grandchild(ch.reader()), grandchild(ch.reader()))


@csp.process
def killer(pid_in):
    say("child", os.getpid())
    pid = pid_in()
    time.sleep(0.5)
    os.kill(pid, signal.SIGKILL)


pids = csp.Channel(buffer=1)
try:
    csp.Parallel(middle(pids.writer()), killer(pids.reader()))
    say("UNEXPECTED no exception")
except csp.ProcessCrashed as exc:
    say("ProcessCrashed:", exc)


@csp.process
def stuck(cin):
    cin()


a = csp.Channel()
try:
    csp.Parallel(stuck(a.reader()), stuck(a.reader()))
    say("UNEXPECTED Parallel returned")
except csp.DeadlockError:
    say("deadlock detected")
finish()
