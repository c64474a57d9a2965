"""A process killed while it waits in a Parallel: the deadlock count must
come out right, whatever its children did.

usage: kill_stopped_parent.py ended|blocked

A middle process waits in a Parallel for two grandchildren; a killer stops
it (SIGSTOP) and then kills it (SIGKILL).
- ended: meanwhile both grandchildren end, leaving their counts for the
  middle process's wake-up, which never comes.  Then a deadlock of two
  readers must be detected (it hung: the counts stayed).
- blocked: the grandchildren stay blocked (they die with it).  Then a
  reader whose writer writes after a pause must get its message (a
  DeadlockError was raised: the middle process's count, off while it
  waited, was taken away a second time when it was reaped).
"""
import os
import signal
import sys
import time

import pycsp.processes as csp
from _common import finish, say

MODE = sys.argv[1]


@csp.process
def grandchild(go_in, done_out):
    say("child", os.getpid())
    go_in()
    done_out(True)


@csp.process
def middle(pid_out, go_a, go_b, done_out):
    say("child", os.getpid())
    pid_out(os.getpid())
    csp.Parallel(grandchild(go_a, done_out), grandchild(go_b, done_out))
    say("UNEXPECTED middle went on")


@csp.process
def killer(pid_in, go_a, go_b, done_in):
    say("child", os.getpid())
    pid = pid_in()
    time.sleep(0.3)               # the middle process waits for its children by now
    os.kill(pid, signal.SIGSTOP)
    if MODE == "ended":
        go_a(1)
        go_b(1)
        done_in()
        done_in()
        time.sleep(0.3)           # both grandchildren have ended their bodies by now
    os.kill(pid, signal.SIGKILL)


pids, go_a, go_b, done = csp.Channel(buffer=1), csp.Channel(), csp.Channel(), csp.Channel()
try:
    csp.Parallel(middle(pids.writer(), go_a.reader(), go_b.reader(), done.writer()),
                 killer(pids.reader(), go_a.writer(), go_b.writer(), done.reader()))
    say("UNEXPECTED no exception")
except csp.ProcessCrashed as exc:
    say("ProcessCrashed:", exc)


@csp.process
def stuck(cin):
    return cin()


@csp.process
def late_writer(cout):
    time.sleep(0.5)
    cout("late")


a = csp.Channel()
if MODE == "ended":
    try:
        csp.Parallel(stuck(a.reader()), stuck(a.reader()))
        say("UNEXPECTED Parallel returned")
    except csp.DeadlockError:
        say("deadlock detected")
else:
    try:
        say("got", csp.Parallel(stuck(a.reader()), late_writer(a.writer()))[0])
    except csp.DeadlockError as exc:
        say("UNEXPECTED DeadlockError", exc)
finish()
