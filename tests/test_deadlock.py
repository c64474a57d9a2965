"""API.md, section "Deadlock": DeadlockError instead of a hang."""
import pytest

from conftest import make_nap, run_script
from net_backend import DEADLOCK_IS_LOCAL


def test_deadlock_error_is_an_exception(csp):
    assert issubclass(csp.DeadlockError, Exception)


@pytest.mark.timeout(20)
@pytest.mark.local_only(DEADLOCK_IS_LOCAL)
def test_single_process_reading_with_no_writer_running(csp):
    @csp.process
    def lonely(cin):
        cin()

    ch = csp.Channel()
    keep = ch.writer()  # joined, but nobody will ever use it
    with pytest.raises(csp.DeadlockError):
        csp.Parallel(lonely(ch.reader()))


@pytest.mark.timeout(20)
@pytest.mark.local_only(DEADLOCK_IS_LOCAL)
def test_cycle_of_readers(csp):
    @csp.process
    def first_reads(cin, cout):
        cout(cin())

    a, b = csp.Channel(), csp.Channel()
    with pytest.raises(csp.DeadlockError):
        csp.Parallel(first_reads(+a, -b), first_reads(+b, -a))


@pytest.mark.timeout(20)
@pytest.mark.local_only(DEADLOCK_IS_LOCAL)
def test_cycle_of_rendezvous_writers(csp):
    @csp.process
    def first_writes(cout, cin):
        cout("hi")
        cin()

    a, b = csp.Channel(), csp.Channel()
    with pytest.raises(csp.DeadlockError):
        csp.Parallel(first_writes(-a, +b), first_writes(-b, +a))


@pytest.mark.timeout(20)
@pytest.mark.local_only(DEADLOCK_IS_LOCAL)
def test_deadlock_after_work_is_done(csp):
    """Others finish their work first; once only blocked processes remain, raise."""

    @csp.process
    def stuck(cin):
        cin()

    @csp.process
    def ping(cout, cin, report):
        for i in range(200):
            cout(i)
            cin()
        report("ping")

    @csp.process
    def pong(cin, cout, report):
        for _ in range(200):
            cout(cin())
        report("pong")

    idle = csp.Channel()
    keep = idle.writer()
    reports = csp.Channel(buffer=2)
    report_in = reports.reader()
    a, b = csp.Channel(), csp.Channel()
    with pytest.raises(csp.DeadlockError):
        csp.Parallel(
            stuck(idle.reader()),
            ping(-a, +b, reports.writer()),
            pong(+a, -b, reports.writer()),
        )
    assert sorted([report_in(), report_in()]) == ["ping", "pong"]


@pytest.mark.timeout(20)
@pytest.mark.local_only(DEADLOCK_IS_LOCAL)
def test_blocked_select_without_timeout_is_a_deadlock(csp):
    @csp.process
    def chooser(cin1, cin2):
        csp.AltSelect(csp.InputGuard(cin1), csp.InputGuard(cin2))

    a, b = csp.Channel(), csp.Channel()
    keep = (a.writer(), b.writer())
    with pytest.raises(csp.DeadlockError):
        csp.Parallel(chooser(+a, +b))


# --------------------------------------------------------------------------- main program


@pytest.mark.timeout(20)
@pytest.mark.local_only(DEADLOCK_IS_LOCAL)
def test_main_program_read_with_nothing_else(csp):
    ch = csp.Channel()
    keep = ch.writer()
    cin = ch.reader()
    with pytest.raises(csp.DeadlockError):
        cin()


@pytest.mark.timeout(20)
@pytest.mark.local_only(DEADLOCK_IS_LOCAL)
def test_main_program_rendezvous_write_with_nothing_else(csp):
    ch = csp.Channel()
    keep = ch.reader()
    cout = ch.writer()
    with pytest.raises(csp.DeadlockError):
        cout("nobody reads")


@pytest.mark.timeout(20)
@pytest.mark.local_only(DEADLOCK_IS_LOCAL)
def test_main_program_write_to_full_buffer_with_nothing_else(csp):
    ch = csp.Channel(buffer=2)
    keep = ch.reader()
    cout = ch.writer()
    cout(1)
    cout(2)
    with pytest.raises(csp.DeadlockError):
        cout(3)
    # The two buffered messages are still there (nothing written is lost).
    assert keep() == 1
    assert keep() == 2


@pytest.mark.timeout(20)
@pytest.mark.local_only(DEADLOCK_IS_LOCAL)
def test_main_program_select_with_nothing_else(csp):
    ch = csp.Channel()
    keep = ch.writer()
    cin = ch.reader()
    with pytest.raises(csp.DeadlockError):
        csp.Alternation([{cin: None}]).select()


@pytest.mark.timeout(20)
@pytest.mark.local_only(DEADLOCK_IS_LOCAL)
def test_usable_after_a_deadlock(csp):
    @csp.process
    def lonely(cin):
        cin()

    @csp.process
    def echo(cin, cout):
        cout(cin())

    @csp.process
    def ask(cout, cin):
        cout("again")
        return cin()

    idle = csp.Channel()
    keep = idle.writer()
    with pytest.raises(csp.DeadlockError):
        csp.Parallel(lonely(idle.reader()))
    a, b = csp.Channel(), csp.Channel()
    assert csp.Parallel(echo(+a, -b), ask(-a, +b)) == [None, "again"]


# --------------------------------------------------------------------------- not deadlocks


@pytest.mark.timeout(20)
def test_pending_timeout_guard_is_not_a_deadlock(csp):
    @csp.process
    def waiter(cin, cout):
        g, _ = csp.AltSelect(csp.InputGuard(cin), csp.TimeoutGuard(0.3))
        cout("after timeout" if g is not cin else "input")

    @csp.process
    def receiver(cin):
        return cin()

    idle, out = csp.Channel(), csp.Channel()
    keep = idle.writer()
    assert csp.Parallel(waiter(idle.reader(), -out), receiver(+out)) == [None, "after timeout"]


@pytest.mark.timeout(20)
def test_running_io_call_is_not_a_deadlock(csp):
    nap = make_nap(csp)

    @csp.process
    def slow_writer(cout):
        nap(0.3)
        cout("late")

    ch = csp.Channel()
    cin = ch.reader()
    csp.Spawn(slow_writer(ch.writer()))
    assert cin() == "late"  # the main program waits while the writer is in @io
    csp.shutdown()


@pytest.mark.timeout(20)
def test_io_call_in_parallel_is_not_a_deadlock(csp):
    nap = make_nap(csp)

    @csp.process
    def reader(cin):
        return cin()

    @csp.process
    def slow_writer(cout):
        nap(0.3)
        cout(42)

    ch = csp.Channel()
    assert csp.Parallel(reader(+ch), slow_writer(-ch)) == [42, None]


# --------------------------------------------------------------------------- whole program


@pytest.mark.timeout(30)
def test_deadlocked_program_exits_with_deadlock_error(backend):
    result = run_script(
        f"""
        import pycsp.{backend} as csp

        @csp.process
        def a(cin, cout):
            cout(cin())

        x, y = csp.Channel(), csp.Channel()
        csp.Parallel(a(+x, -y), a(+y, -x))
        print("not reached")
        """,
        timeout=20,
    )
    assert result.returncode != 0
    assert "DeadlockError" in result.stderr, result.stderr
    assert "not reached" not in result.stdout


@pytest.mark.timeout(20)
def test_busy_process_is_not_a_deadlock(csp):
    """A process computing (not blocked, not in @io) keeps the network alive."""
    import time

    @csp.process
    def reader(cin):
        return cin()

    @csp.process
    def busy_writer(cout):
        end = time.monotonic() + 0.5
        x = 0
        while time.monotonic() < end:
            x += 1  # pure Python work, never blocking
        cout("computed")

    ch = csp.Channel()
    assert csp.Parallel(reader(+ch), busy_writer(-ch)) == ["computed", None]


@pytest.mark.timeout(20)
@pytest.mark.local_only(DEADLOCK_IS_LOCAL)
def test_deadlock_inside_nested_parallel(csp):
    @csp.process
    def stuck(cin):
        cin()

    @csp.process
    def parent(cin):
        csp.Parallel(stuck(cin))

    ch = csp.Channel()
    keep = ch.writer()
    with pytest.raises(csp.DeadlockError):
        csp.Parallel(parent(ch.reader()))


@pytest.mark.timeout(20)
@pytest.mark.local_only(DEADLOCK_IS_LOCAL)
def test_deadlock_in_sequence(csp):
    @csp.process
    def stuck(cin):
        cin()

    ch = csp.Channel()
    keep = ch.writer()
    with pytest.raises(csp.DeadlockError):
        csp.Sequence(stuck(ch.reader()))
