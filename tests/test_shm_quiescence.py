"""What one program says of itself for a deadlock across programs
(csp_ext.shm_run_snapshot, csp_ext/shared/quiescence.c): how many of its
processes are busy, a fingerprint of their progress, and the messages it
counted to and from other programs.  Each case is a program of its own."""
import textwrap

import pytest

from conftest import run_script

pytestmark = pytest.mark.timeout(60)

PRELUDE = """
import time
import csp_ext
import pycsp.processes as pycsp

def settled(exclude_self=True, want=0, seconds=10):
    # The snapshot once the program's processes reached their waits.
    deadline = time.monotonic() + seconds
    while True:
        snap = csp_ext.shm_run_snapshot(exclude_self)
        if snap[0] == want or time.monotonic() > deadline:
            return snap
        time.sleep(0.02)

@pycsp.process
def reader(cin):
    try:
        cin()
    except pycsp.ChannelPoisonException:
        pass

@pycsp.process
def polling_reader(cin):
    try:
        while True:
            pycsp.AltSelect(pycsp.InputGuard(cin), pycsp.TimeoutGuard(seconds=0.01))
    except pycsp.ChannelPoisonException:
        pass
"""


def run(body):
    result = run_script(PRELUDE + textwrap.dedent(body), timeout=45)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_a_process_blocked_without_a_deadline_is_idle_and_stays_the_same():
    out = run("""
        c = pycsp.Channel()
        pycsp.Spawn(reader(+c))
        settled()
        time.sleep(0.2)  # (the wait's last steps)
        first = csp_ext.shm_run_snapshot(True)
        time.sleep(0.3)
        second = csp_ext.shm_run_snapshot(True)
        print("BUSY", first[0], second[0], "SAME", first == second)
        pycsp.poison(-c)
        pycsp.shutdown()
    """)
    assert "BUSY 0 0 SAME True" in out, out


def test_a_wait_on_a_channel_another_program_may_use_is_idle_too():
    """The program's own accounting counts it as running (it may end from
    elsewhere); across the run it is blocked."""
    out = run("""
        c = pycsp.Channel()
        c._mark_reachable()
        pycsp.Spawn(reader(+c))
        time.sleep(0.3)
        print("BUSY", settled()[0])
        pycsp.poison(-c)
        pycsp.shutdown()
    """)
    assert "BUSY 0" in out, out


def test_a_process_waiting_with_a_deadline_is_busy_and_moves():
    out = run("""
        c = pycsp.Channel()
        pycsp.Spawn(polling_reader(+c))
        time.sleep(0.3)
        first = csp_ext.shm_run_snapshot(True)
        time.sleep(0.1)
        second = csp_ext.shm_run_snapshot(True)
        # never idle; between two snapshots its operations went on
        print("BUSY", first[0], second[0], "MOVED", first[1] != second[1])
        pycsp.poison(-c)
        pycsp.shutdown()
    """)
    assert "BUSY 1 1 MOVED True" in out, out


def test_a_wait_for_another_programs_answer_is_idle_and_each_counts():
    out = run("""
        busy = csp_ext.shm_run_snapshot(False)
        csp_ext.shm_remote_wait(True)
        first = csp_ext.shm_run_snapshot(False)
        csp_ext.shm_remote_wait(False)
        csp_ext.shm_remote_wait(True)
        second = csp_ext.shm_run_snapshot(False)
        csp_ext.shm_net_received()  # its answer came: it runs again
        after = csp_ext.shm_run_snapshot(False)
        print("BUSY", busy[0], first[0], second[0], after[0])
        print("ANOTHER WAIT", first[1] != second[1])
    """)
    assert "BUSY 1 0 0 1" in out and "ANOTHER WAIT True" in out, out


def test_messages_are_counted_both_ways():
    out = run("""
        before = csp_ext.shm_run_snapshot(False)
        for _ in range(3):
            csp_ext.shm_net_sent()
        csp_ext.shm_net_received()
        after = csp_ext.shm_run_snapshot(False)
        print("COUNTS", after[2] - before[2], after[3] - before[3])
    """)
    assert "COUNTS 3 1" in out, out


def test_breaking_a_run_deadlock_raises_in_the_blocked_process_with_the_runs_number():
    out = run("""
        c = pycsp.Channel("c")
        c._mark_reachable()

        @pycsp.process
        def waits(cin):
            try:
                cin()
            except pycsp.DeadlockError as error:
                return error.deadlock[0]

        p = waits(+c)
        def breaker():
            blocked = settled()[5]
            print("WOKEN", csp_ext.shm_break_run_deadlock(7, blocked), flush=True)
        import threading
        t = threading.Thread(target=breaker)
        t.start()
        pycsp.Parallel(p)
        t.join()
        print("KEY", p.return_value)
    """)
    assert "WOKEN 1" in out and "KEY ('run', 0, 7)" in out, out


def test_a_break_leaves_alone_a_wait_that_began_after_its_snapshot():
    """A node learns of the run's deadlock after its processes may have gone
    on (woken by their homes): only the operations its report saw blocked
    end, not a later one of the same process, nor one that a commit took."""
    out = run("""
        c, d = pycsp.Channel("c"), pycsp.Channel("d")

        @pycsp.process
        def reads_twice(cin, din):
            first = cin()                 # blocked at the snapshot; then served
            try:
                din()                     # a later wait: not the deadlock's
                return ("read", first)
            except pycsp.DeadlockError:
                return ("FALSE DEADLOCK", first)

        p = reads_twice(+c, +d)

        @pycsp.process
        def main_side(cout, dout):
            blocked = settled()[5]        # the reader waits in its first read
            cout(1)                       # a commit: that read is over
            time.sleep(0.3)               # its second read waits now
            print("ASKED", csp_ext.shm_break_run_deadlock(9, blocked), flush=True)
            time.sleep(0.5)
            dout(2)

        pycsp.Parallel(p, main_side(-c, -d))
        print("RESULT", p.return_value)
    """)
    assert "ASKED 0" in out and "RESULT ('read', 1)" in out, out


def test_a_node_that_ended_leaves_its_last_counts_here_and_one_lost_leaves_it_busy():
    """Its standin's program keeps the node's counts (every watch over this
    arena sums them): the others' counts of messages with it stay balanced.
    Without them (lost) nothing here can be trusted again: busy for good."""
    out = run("""
        first = csp_ext.shm_run_snapshot(True)
        csp_ext.shm_run_member(True)
        joined = csp_ext.shm_run_snapshot(True)
        csp_ext.shm_run_member((3, 2))
        left = csp_ext.shm_run_snapshot(True)
        print("MEMBERS", first[4], joined[4], left[4], "HAD", first[7], joined[7])
        print("COUNTS", left[2] - first[2], left[3] - first[3], "BUSY", left[0])
        csp_ext.shm_run_member(True)
        csp_ext.shm_run_member(None)
        print("LOST BUSY", csp_ext.shm_run_snapshot(True)[0])
    """)
    assert "MEMBERS 0 1 0 HAD False True" in out, out
    assert "COUNTS 3 2 BUSY 0" in out and "LOST BUSY 1" in out, out


def test_work_handed_between_the_agents_threads_is_busy_until_taken():
    out = run("""
        csp_ext.shm_run_handoff(1)
        handed = csp_ext.shm_run_snapshot(True)[0]
        csp_ext.shm_run_handoff(-1)
        print("BUSY", handed, csp_ext.shm_run_snapshot(True)[0])
    """)
    assert "BUSY 1 0" in out, out


def test_a_break_leaves_alone_a_new_record_in_a_freed_ones_place():
    """A record freed (its thread ended) and made again for another thread
    has the same offset and counts its operations from 1 again: only its
    identity tells it from the one a snapshot saw blocked."""
    out = run("""
        import struct, threading
        c, d = pycsp.Channel("c"), pycsp.Channel("d")
        cin, cout, din, dout = c.reader(), c.writer(), d.reader(), d.writer()

        def first():
            cin()                               # blocked at the snapshot; then served

        t = threading.Thread(target=first)
        t.start()
        blocked = settled(want=1)[5]            # (the main thread runs: busy 1)
        cout(1)
        t.join()                                # its record is freed

        got = []
        def second():
            try:
                got.append(din())               # op 1 again, at the same place
            except pycsp.DeadlockError:
                got.append("FALSE DEADLOCK")

        u = threading.Thread(target=second)
        u.start()
        time.sleep(0.3)
        now = csp_ext.shm_run_snapshot(True)[5]
        old = {struct.unpack_from("QQQ", blocked, i)[0::2] for i in range(0, len(blocked), 24)}
        new = {struct.unpack_from("QQQ", now, i)[0::2] for i in range(0, len(now), 24)}
        print("SAME PLACE AND OP", bool(old & new))
        print("ASKED", csp_ext.shm_break_run_deadlock(5, blocked))
        time.sleep(0.3)
        dout(2)
        u.join()
        print("GOT", got)
    """)
    assert "SAME PLACE AND OP True" in out, out  # (else this test shows nothing)
    assert "ASKED 0" in out and "GOT [2]" in out, out
