"""Helpers shared by the fault scripts (each script runs as its own program).

A script reports on stdout, one line per fact, written with one write() call so
that lines from several OS processes do not interleave.  The test that runs it
(tests/test_processes_os.py) checks the lines, the exit status, that no process
of the script's session is left, and that /dev/shm has no new entries.
"""
import os
import signal
import sys
import time


def say(*words):
    sys.stdout.write(" ".join(map(str, words)) + "\n")
    sys.stdout.flush()


def kill_after(pid_in, delay, record):
    """Body of a killer process: read a pid, record it, wait ``delay`` seconds,
    kill -9 it."""
    say("child", os.getpid())
    pid = pid_in()
    record(pid)
    time.sleep(delay)
    os.kill(pid, signal.SIGKILL)
    say("killed", pid)


def live_children(pid=None):
    """Pids of the (not yet reaped) children of ``pid`` (default: this process)."""
    pid = pid or os.getpid()
    kids = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return kids
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids += [int(k) for k in f.read().split()]
        except FileNotFoundError:
            pass
    return kids


def wait_no_children(timeout=5.0):
    """Wait until this process has no child; return how many are left."""
    deadline = time.monotonic() + timeout
    while live_children() and time.monotonic() < deadline:
        time.sleep(0.02)
    return len(live_children())


def alive(pid):
    """True if ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = stat[stat.rindex(")") + 2]
    return state not in "ZX"


def wait_gone(pids, timeout=5.0):
    """Wait until none of ``pids`` is alive; return those still alive."""
    deadline = time.monotonic() + timeout
    left = [p for p in pids if alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.02)
        left = [p for p in left if alive(p)]
    return left


def finish(child_pids=()):
    """The common end of a script: report children left and recorded pids alive."""
    say("children left:", wait_no_children())
    say("recorded alive:", len(wait_gone(child_pids)))
