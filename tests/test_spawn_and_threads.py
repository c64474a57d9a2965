"""Spawn inside processes, deadlock accounting after Spawns, and threads using
channels: the same behaviour on every backend (API.md, "Processes", "Deadlock").

Each of these failed on pycsp.processes before the fix it names.
"""
import threading
import time

import pytest

from conftest import assert_lone_reader_deadlocks, run_script
from net_backend import DEADLOCK_IS_LOCAL


# --------------------------------------------------------------------------- Spawn in a process

@pytest.mark.timeout(30)
def test_process_that_spawns_a_writer_and_returns(csp):
    """The spawned writer outlives the process that spawned it (processes: it
    was killed with its parent, and the reader hung)."""

    @csp.process
    def writer(cout, n):
        for i in range(n):
            cout(i)
        csp.retire(cout)

    @csp.process
    def spawner(cout):
        csp.Spawn(writer(cout, 100))

    @csp.process
    def reader(cin):
        total = 0
        try:
            while True:
                total += cin()
        except csp.ChannelRetireException:
            return total

    ch = csp.Channel()
    assert csp.Parallel(spawner(-ch), reader(+ch)) == [None, sum(range(100))]
    csp.shutdown()


@pytest.mark.timeout(30)
def test_parallel_returns_while_what_its_process_spawned_still_runs(csp):
    """As with threads: Parallel waits for its processes, not for what they
    spawned; here the spawned writer can only finish after Parallel returned."""

    @csp.process
    def writer(cout, n):
        for i in range(n):
            cout(i)

    @csp.process
    def spawner(cout):
        csp.Spawn(writer(cout, 5))
        return "spawned"

    ch = csp.Channel()
    cin = ch.reader()
    assert csp.Parallel(spawner(ch.writer())) == ["spawned"]
    assert [cin() for _ in range(5)] == list(range(5))
    csp.shutdown()


@pytest.mark.stress  # 300 forks down a chain: minutes under the sanitizers' shadow memory
# About 15 s alone on processes (each fork costs more the deeper it is, NOTES.md);
# 50-60 s in full suites beside other work on 2 cores: the timeout is for hangs.
@pytest.mark.timeout(180)
def test_a_long_chain_of_processes_each_spawning_the_next(csp):
    """300 links (processes: each forked child ran on top of its ancestors'
    frames and died of RecursionError after about 200)."""

    @csp.process
    def link(depth, last, out):
        if depth == last:
            out(depth)
        else:
            csp.Spawn(link(depth + 1, last, out))

    ch = csp.Channel()
    cin = ch.reader()
    csp.Spawn(link(0, 300, ch.writer()))
    assert cin() == 300
    csp.shutdown()


@pytest.mark.timeout(30)
def test_failure_of_a_process_spawned_by_a_process_is_reported(csp):
    script = f"""
        import pycsp.{csp.version[3]} as csp

        @csp.process
        def failing():
            raise ValueError("spawned grandchild failed")

        @csp.process
        def spawner():
            csp.Spawn(failing())

        if __name__ == "__main__":
            csp.Parallel(spawner())
            print("parallel returned")
    """
    result = run_script(script, timeout=25)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "parallel returned\n"
    assert "spawned grandchild failed" in result.stderr


# --------------------------------------------------------------------------- deadlock accounting

@pytest.mark.timeout(30)
@pytest.mark.local_only(DEADLOCK_IS_LOCAL)
def test_deadlock_still_detected_after_a_spawned_process_finished(csp):
    """processes: the finished child still counted as running until shutdown."""

    @csp.process
    def quick(cout):
        cout("done")

    done = csp.Channel()
    done_in = done.reader()
    csp.Spawn(quick(done.writer()))
    assert done_in() == "done"
    time.sleep(0.2)  # let it leave
    assert_lone_reader_deadlocks(csp)
    csp.shutdown()


@pytest.mark.timeout(30)
def test_no_false_deadlock_while_a_process_waits_for_what_it_spawned(csp):
    """A process that waits in shutdown() for its Spawns and then writes: its
    peer blocked on a read is not in a deadlock (the counts hand over)."""

    @csp.process
    def busy(n):
        total = 0
        for i in range(n):
            total += i
        return total

    @csp.process
    def waits_then_writes(cout):
        csp.Spawn(busy(20000))
        csp.shutdown()
        cout("after shutdown")

    @csp.process
    def reader(cin):
        return cin()

    ch = csp.Channel()
    for _ in range(3):
        assert csp.Parallel(waits_then_writes(-ch), reader(+ch)) == [None, "after shutdown"]


# --------------------------------------------------------------------------- threads of a program

@pytest.mark.timeout(30)
def test_thread_reads_a_channel_that_the_main_program_writes(csp):
    """processes: the thread's waiter record was marked counted without being
    counted, so its read raised DeadlockError at once."""
    ch = csp.Channel()
    cin, cout = ch.reader(), ch.writer()
    got = []

    def read_two():
        try:
            got.append(cin())
            got.append(cin())
        except Exception as exc:  # noqa: BLE001 - the test reports it
            got.append(repr(exc))

    thread = threading.Thread(target=read_two)
    thread.start()
    time.sleep(0.2)  # the thread blocks first, while the main program runs
    cout(1)
    cout(2)
    thread.join(10)
    assert got == [1, 2]


@pytest.mark.timeout(30)
@pytest.mark.local_only(DEADLOCK_IS_LOCAL)
def test_deadlock_detected_after_a_thread_that_used_channels_ended(csp):
    """The thread's count goes with it: later deadlocks are still found."""
    ch = csp.Channel()
    cin, cout = ch.reader(), ch.writer()
    thread = threading.Thread(target=lambda: cout("from thread"))
    thread.start()
    assert cin() == "from thread"
    thread.join(10)
    assert_lone_reader_deadlocks(csp)


@pytest.mark.timeout(30)
@pytest.mark.local_only(DEADLOCK_IS_LOCAL)
def test_thread_and_main_both_blocked_is_a_deadlock(csp):
    a, b = csp.Channel(), csp.Channel()
    a_in, b_in = a.reader(), b.reader()
    keep = (a.writer(), b.writer())
    outcome = []

    def blocked_reader():
        try:
            a_in()
        except csp.DeadlockError:
            outcome.append("thread: DeadlockError")
        except csp.ChannelPoisonException:
            outcome.append("thread: poisoned")

    thread = threading.Thread(target=blocked_reader)
    thread.start()
    time.sleep(0.2)
    try:
        b_in()
    except csp.DeadlockError:
        outcome.append("main: DeadlockError")
    a.poison()  # whoever was not told, stops now
    thread.join(10)
    assert not thread.is_alive()
    assert "main: DeadlockError" in outcome or "thread: DeadlockError" in outcome, outcome
    del keep


@pytest.mark.timeout(30)
@pytest.mark.parametrize("runner", ["Parallel", "Spawn"])
@pytest.mark.local_only(DEADLOCK_IS_LOCAL)
def test_deadlock_among_what_a_process_spawned_is_detected(csp, runner):
    """processes: the process lingering for its Spawns left a credit nobody
    took, or was waited for without accounting: the deadlock hung."""

    @csp.process
    def stuck(cin):
        cin()

    @csp.process
    def spawner(cin):
        csp.Spawn(stuck(cin))

    ch = csp.Channel()
    keep = ch.writer()  # joined, never used
    getattr(csp, runner)(spawner(ch.reader()))
    csp.shutdown()  # reports the DeadlockError of `stuck` on stderr, and returns
    del keep

