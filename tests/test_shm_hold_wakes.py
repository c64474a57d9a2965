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
    # Past its spin, asleep on its futex: mid-way between the ends of its
    # 0.1 s slices (at one, it is briefly awake: no wake to hold).
    time.sleep(0.25)

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


def test_a_big_message_written_inside_a_scope_wakes_its_reader_before_its_copy():
    """A message whose buffers stay in the writer's memory (>= 4 MiB: the reader
    copies them, and the write waits for that) needs its reader awake: the wait for
    the copy wakes what the thread holds (before: the reader slept on until its
    0.1 s slice ended, and the wake was still held after the write).  Found by review."""
    out = lines_of("""
        import pickle
        big = [pickle.PickleBuffer(bytearray(8 << 20))]
        csp_ext.shm_hold_wakes(True)
        write_at_once(big)
        print("held after the write", csp_ext._shm_held_wakes())
        csp_ext.shm_hold_wakes(False)
        print("read back", back.reader()(), len(memoryview(got[0][0])))
        thread.join(10)
    """)
    assert out == ["held after the write 0", "read back back 8388608"]
