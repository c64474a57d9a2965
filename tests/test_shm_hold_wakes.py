"""Wakes held back in the shared-memory core (csp_ext): a waiter that a thread
finishes while it holds a channel's lock, or inside ``shm_hold_wakes(True)``
(pycsp.net's agent, until its reply has left), is woken when the outermost
scope ends, and before that thread itself waits.  Its result is published at
once.  ``csp_ext._shm_held_wakes()`` (test only) counts what this thread holds.
Each case is a fresh program; the party woken is a thread asleep on its futex."""
import textwrap

import pytest

from conftest import BACKENDS, run_script

pytestmark = [pytest.mark.timeout(60),
              pytest.mark.skipif("processes" not in BACKENDS,
                                 reason="processes backend not under test")]

SLEEPING_READER = """
    import threading, time
    import csp_ext
    import pycsp.processes as csp

    c, back = csp.Channel(), csp.Channel()
    got = []

    def reader(cin, bout):
        got.append(cin())
        bout("back")

    thread = threading.Thread(target=reader, args=(c.reader(), back.writer()), daemon=True)
    thread.start()
    time.sleep(0.3)  # past its spin: asleep on its futex

    def write_at_once(msg):
        chosen, _ = csp_ext.select((csp_ext.OutputGuard(c.writer(), msg), csp_ext.SkipGuard()))
        assert chosen == 0, "the reader was not waiting"
"""


def lines_of(source):
    result = run_script(textwrap.dedent(SLEEPING_READER) + textwrap.dedent(source), timeout=40)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.splitlines()


def test_a_wake_within_a_scope_waits_for_its_end():
    out = lines_of("""
        csp_ext.shm_hold_wakes(True)
        write_at_once(1)
        print("held", csp_ext._shm_held_wakes())
        csp_ext.shm_hold_wakes(False)
        print("after", csp_ext._shm_held_wakes())
        print("read back", back.reader()(), got)
        thread.join(10)
    """)
    assert out == ["held 1", "after 0", "read back back [1]"]


def test_scopes_nest_and_an_unmatched_end_does_nothing():
    out = lines_of("""
        csp_ext.shm_hold_wakes(False)  # no scope: nothing to end
        csp_ext.shm_hold_wakes(True)
        csp_ext.shm_hold_wakes(True)
        write_at_once(2)
        csp_ext.shm_hold_wakes(False)
        print("inner ended", csp_ext._shm_held_wakes())
        csp_ext.shm_hold_wakes(False)
        print("outer ended", csp_ext._shm_held_wakes())
        print("read back", back.reader()(), got)
        thread.join(10)
    """)
    assert out == ["inner ended 1", "outer ended 0", "read back back [2]"]


def test_a_thread_that_waits_inside_a_scope_wakes_what_it_holds_first():
    """Its wait for the reader's answer needs the reader awake: the wait wakes
    it (before: the reader slept until its 0.1 s slice ended, and the wake was
    still held here when the answer came)."""
    out = lines_of("""
        csp_ext.shm_hold_wakes(True)
        write_at_once(3)
        print("read back", back.reader()(), got)
        print("held after the wait", csp_ext._shm_held_wakes())
        csp_ext.shm_hold_wakes(False)
        thread.join(10)
    """)
    assert out == ["read back back [3]", "held after the wait 0"]


def test_an_operation_outside_any_scope_holds_nothing_after_it():
    """Under the channel's lock the wake is held; the unlock wakes it."""
    out = lines_of("""
        c.writer()(4)
        print("held", csp_ext._shm_held_wakes())
        print("read back", back.reader()(), got)
        thread.join(10)
    """)
    assert out == ["held 0", "read back back [4]"]
