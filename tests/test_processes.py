"""API.md, section "Processes": process, Parallel, Sequence, Spawn, errors, Ctrl-C."""
import signal
import threading
import time
from fractions import Fraction

import numpy
import pytest

from conftest import ctrl_c_once_started, finish_script, make_nap, run_script, start_script


# --------------------------------------------------------------------------- creation


def test_process_decorator_returns_unstarted_process(csp):
    calls = []

    @csp.process
    def p(x):
        calls.append(x)
        return x

    proc = p(1)
    assert isinstance(proc, csp.Process)
    assert calls == []  # not started by creating it
    assert csp.Parallel(proc) == [1]


@pytest.mark.timeout(20)
def test_process_class_directly_with_args_and_kwargs(csp):
    def fn(a, b, *, c):
        return (a, b, c)

    proc = csp.Process(fn, 1, 2, c=3)
    assert isinstance(proc, csp.Process)
    assert csp.Parallel(proc) == [(1, 2, 3)]


def test_processes_without_kwargs_do_not_share_writable_kwargs(csp):
    a, b = csp.Process(print), csp.Process(print)
    with pytest.raises(TypeError):
        a.kwargs["end"] = ""
    assert dict(b.kwargs) == {}


# --------------------------------------------------------------------------- Parallel


@pytest.mark.timeout(20)
def test_parallel_returns_values_in_order_lists_flattened(csp):
    nap = make_nap(csp)

    @csp.process
    def value(v, delay):
        nap(delay)
        return v

    # Later items finish first: the order of results is the order given.
    results = csp.Parallel(
        value("a", 0.3),
        [value("b", 0.2), value("c", 0.1)],
        value("d", 0.0),
        [value("e", 0.0)],
    )
    assert results == ["a", "b", "c", "d", "e"]


def test_parallel_of_nothing_returns_empty_list(csp):
    assert csp.Parallel() == []
    assert csp.Parallel([]) == []


@pytest.mark.timeout(20)
def test_parallel_runs_processes_concurrently(csp):
    """Two processes that must talk to each other both ways can only finish together."""

    @csp.process
    def ping(cout, cin, n):
        for i in range(n):
            cout(i)
            assert cin() == i + 1
        return "ping done"

    @csp.process
    def pong(cin, cout, n):
        for _ in range(n):
            cout(cin() + 1)
        return "pong done"

    a, b = csp.Channel(), csp.Channel()
    assert csp.Parallel(ping(-a, +b, 200), pong(+a, -b, 200)) == ["ping done", "pong done"]


@pytest.mark.timeout(20)
def test_parallel_result_none_for_process_without_return(csp):
    @csp.process
    def nothing():
        pass

    assert csp.Parallel(nothing(), nothing()) == [None, None]


# --------------------------------------------------------------------------- Sequence


@pytest.mark.timeout(20)
def test_sequence_runs_one_after_the_other(csp):
    nap = make_nap(csp)

    @csp.process
    def step(i, delay):
        start = time.monotonic()
        nap(delay)
        return i, start, time.monotonic()

    results = csp.Sequence(step(0, 0.2), [step(1, 0.1), step(2, 0.0)], step(3, 0.0))
    assert [i for i, _, _ in results] == [0, 1, 2, 3]
    # Each step started only after the previous one ended.
    for (_, _, prev_end), (_, next_start, _) in zip(results, results[1:]):
        assert prev_end <= next_start


@pytest.mark.timeout(20)
def test_sequence_inside_a_process_talks_to_a_peer(csp):
    @csp.process
    def send(cout, v):
        cout(v)
        return v

    @csp.process
    def sender(cout):
        return csp.Sequence([send(cout, i) for i in range(5)])

    @csp.process
    def receiver(cin):
        return [cin() for _ in range(5)]

    ch = csp.Channel()
    assert csp.Parallel(sender(-ch), receiver(+ch)) == [[0, 1, 2, 3, 4], [0, 1, 2, 3, 4]]


# --------------------------------------------------------------------------- Spawn


@pytest.mark.timeout(20)
def test_spawn_returns_at_once_and_shutdown_waits(csp):
    nap = make_nap(csp)

    @csp.process
    def producer(cout):
        for i in range(3):
            cout(i)  # rendezvous: can only finish if Spawn returned and main reads

    @csp.process
    def slow(report):
        nap(0.3)
        report("slow finished")

    ch = csp.Channel()
    reports = csp.Channel(buffer=1)
    report_in = reports.reader()
    csp.Spawn(producer(ch.writer()), [slow(reports.writer())])
    cin = ch.reader()
    assert [cin(), cin(), cin()] == [0, 1, 2]
    csp.shutdown()
    # shutdown returned only after slow() ended: its report is already waiting.
    skip = csp.SkipGuard()
    assert csp.PriSelect(csp.InputGuard(report_in), skip) == (report_in, "slow finished")
    csp.shutdown()  # nothing left: returns at once


@pytest.mark.timeout(30)
def test_shutdown_runs_at_interpreter_exit(backend):
    result = run_script(
        f"""
        import time
        import pycsp.{backend} as csp

        @csp.process
        def late():
            time.sleep(0.5)
            print("spawned process finished", flush=True)

        csp.Spawn(late())
        print("main program done", flush=True)
        """,
        timeout=20,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == "main program done spawned process finished".split()


@pytest.mark.timeout(30)
def test_shutdown_reports_each_failed_spawned_process_with_its_traceback(csp, capsys):
    """The same report on every backend (processes printed only the repr of the
    first failure of each Spawn)."""

    @csp.process
    def fails(exc):
        raise exc

    @csp.process
    def fine():
        return 1

    first, second = fails(ValueError("first failure")), fails(KeyError("second failure"))
    csp.Spawn(first, fine(), second)
    csp.shutdown()
    err = capsys.readouterr().err
    for proc, text in ((first, "ValueError: first failure"), (second, "KeyError: 'second failure'")):
        header = f"pycsp: spawned process {proc.id} (fails) failed:"
        assert header in err, err
        report = err[err.index(header):]
        assert "Traceback (most recent call last)" in report, err
        assert text in report, err
        assert "raise exc" in report, err  # the traceback of the process body
    assert err.count("pycsp: spawned process") == 2, err


# --------------------------------------------------------------------------- P * 3


@pytest.mark.timeout(20)
@pytest.mark.parametrize("form", ["P*3", "3*P"])
def test_process_multiplication_gives_three_processes(csp, form):
    @csp.process
    def emit(cout, v):
        cout(v)
        return v

    @csp.process
    def collect(cin, n):
        return sorted(cin() for _ in range(n))

    ch = csp.Channel()
    p = emit(ch.writer(), 7)
    procs = p * 3 if form == "P*3" else 3 * p
    assert isinstance(procs, list)
    assert len(procs) == 3
    assert all(isinstance(q, csp.Process) for q in procs)
    assert len({id(q) for q in procs}) == 3
    results = csp.Parallel(procs, collect(ch.reader(), 3))
    assert results == [7, 7, 7, [7, 7, 7]]


@pytest.mark.timeout(20)
@pytest.mark.parametrize("n", [3.0, numpy.int64(3), Fraction(6, 2)], ids=repr)
def test_process_times_a_whole_number_that_is_no_int(csp, n):
    """As PyCSP 0.9.2's pycsp.parallel took it (``(P/2) * proc``): any number
    whose int() equals it."""

    @csp.process
    def value(v):
        return v

    procs = value("x") * n
    assert len(procs) == 3 and all(type(q) is csp.Process for q in procs)
    assert len(n * value("y")) == 3
    assert csp.Parallel(procs) == ["x", "x", "x"]


@pytest.mark.timeout(20)
@pytest.mark.parametrize("form", ["P*3", "3*P"])
def test_process_multiplication_gives_fresh_ends(csp, form):
    """Each copy has its own end: one copy retiring it does not retire the others'."""

    @csp.process
    def emit_and_leave(cout, v):
        cout(v)
        cout.retire()

    ch = csp.Channel(buffer=3)
    cin = ch.reader()
    p = emit_and_leave(ch.writer(), "m")
    procs = p * 3 if form == "P*3" else 3 * p
    # One after the other: if the copies shared one end, the second copy would
    # find it retired and write nothing.
    assert csp.Sequence(procs) == [None, None, None]
    assert [cin(), cin(), cin()] == ["m", "m", "m"]


@pytest.mark.timeout(20)
def test_process_multiplication_copies_ends_inside_containers(csp):
    @csp.process
    def emit(outs, v):
        for cout in outs:
            cout(v)
            cout.retire()

    a, b = csp.Channel(buffer=3), csp.Channel(buffer=3)
    ra, rb = a.reader(), b.reader()
    procs = emit([a.writer(), b.writer()], "x") * 3
    csp.Sequence(procs)
    assert [ra(), ra(), ra()] == ["x"] * 3
    assert [rb(), rb(), rb()] == ["x"] * 3


# --------------------------------------------------------------------------- exceptions


class Boom(Exception):
    pass


@pytest.mark.timeout(20)
def test_exception_in_process_poisons_its_ends_and_parallel_reraises(csp):
    @csp.process
    def faulty(outs):
        raise Boom("boom from faulty")

    @csp.process
    def peer(cin, report):
        try:
            cin()
        except csp.ChannelPoisonException:
            report("peer poisoned")  # (re-raising would poison the report channel too)

    ch = csp.Channel()
    reports = csp.Channel(buffer=1)
    report_in = reports.reader()
    with pytest.raises(Boom, match="boom from faulty"):
        csp.Parallel(faulty([ch.writer()]), peer(ch.reader(), reports.writer()))
    skip = csp.SkipGuard()
    assert csp.PriSelect(csp.InputGuard(report_in), skip) == (report_in, "peer poisoned")


@pytest.mark.timeout(20)
def test_parallel_reraises_only_after_the_others_ended(csp):
    nap = make_nap(csp)

    @csp.process
    def faulty():
        raise Boom("early")

    @csp.process
    def slow(report):
        nap(0.5)
        report("slow ended")

    reports = csp.Channel(buffer=1)
    report_in = reports.reader()
    with pytest.raises(Boom):
        csp.Parallel(faulty(), slow(reports.writer()))
    # Parallel raised only after slow() ended: its report is already waiting.
    skip = csp.SkipGuard()
    assert csp.PriSelect(csp.InputGuard(report_in), skip) == (report_in, "slow ended")


@pytest.mark.timeout(20)
def test_parallel_raises_the_failure_that_happened_first_in_time(csp):
    """Not the first in the order given (processes raised by index)."""
    nap = make_nap(csp)

    @csp.process
    def fails_late():
        nap(0.5)
        raise KeyError("late")

    @csp.process
    def fails_early():
        raise Boom("early")

    with pytest.raises(Boom, match="early"):
        csp.Parallel(fails_late(), fails_early())


@pytest.mark.timeout(20)
def test_exception_type_and_message_preserved(csp):
    @csp.process
    def faulty():
        raise KeyError("missing key 42")

    with pytest.raises(KeyError, match="missing key 42"):
        csp.Parallel(faulty())


@pytest.mark.timeout(20)
def test_parallel_usable_after_an_exception(csp):
    @csp.process
    def faulty():
        raise Boom("x")

    @csp.process
    def fine(v):
        return v

    with pytest.raises(Boom):
        csp.Parallel(faulty())
    assert csp.Parallel(fine(1), fine(2)) == [1, 2]


# --------------------------------------------------------------------------- nesting


@pytest.mark.timeout(20)
def test_nested_parallel(csp):
    @csp.process
    def leaf(v):
        return v * v

    @csp.process
    def branch(base):
        return sum(csp.Parallel([leaf(base + i) for i in range(3)]))

    @csp.process
    def root():
        return csp.Parallel(branch(0), branch(10))

    assert csp.Parallel(root()) == [[0 + 1 + 4, 100 + 121 + 144]]


@pytest.mark.timeout(20)
def test_nested_parallel_children_talk_to_outer_processes(csp):
    @csp.process
    def produce(cout, vs):
        for v in vs:
            cout(v)

    @csp.process
    def producers(cout):
        csp.Parallel(produce(cout, [1, 2, 3]), produce(cout, [4, 5, 6]))

    @csp.process
    def consume(cin):
        return sorted(cin() for _ in range(6))

    ch = csp.Channel()
    assert csp.Parallel(producers(-ch), consume(+ch)) == [None, [1, 2, 3, 4, 5, 6]]


# --------------------------------------------------------------------------- ids


@pytest.mark.timeout(20)
def test_current_process_id_unique_per_process(csp):
    @csp.process
    def who():
        first = csp.current_process_id()
        second = csp.current_process_id()
        assert first == second
        return first

    @csp.process
    def parent():
        mine = csp.current_process_id()
        children = csp.Parallel([who() for _ in range(5)])
        return [mine] + children

    ids = csp.Parallel([who() for _ in range(20)])
    nested = csp.Parallel(parent())[0]
    main_id = csp.current_process_id()
    everything = ids + nested + [main_id]
    assert all(isinstance(i, str) for i in everything)
    assert len(set(everything)) == len(everything)


@pytest.mark.timeout(30)
def test_current_process_id_differs_between_threads_of_one_process(csp):
    """As on threads, where each thread has its own id (processes gave every
    thread of an OS process the same one)."""

    def ids_of_two_threads_and_mine():
        ids = []
        threads = [threading.Thread(target=lambda: ids.append(csp.current_process_id()))
                   for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return ids + [csp.current_process_id()]

    @csp.process
    def inside():
        return ids_of_two_threads_and_mine()

    every = ids_of_two_threads_and_mine() + csp.Parallel(inside())[0]
    assert len(set(every)) == len(every) == 6, every


# --------------------------------------------------------------------------- io


@pytest.mark.timeout(20)
def test_io_is_a_plain_call_returning_value_and_raising(csp):
    @csp.io
    def double(x):
        return 2 * x

    @csp.io
    def fail():
        raise Boom("io failure")

    assert double(21) == 42
    with pytest.raises(Boom, match="io failure"):
        fail()

    @csp.process
    def user():
        try:
            fail()
        except Boom:
            return double(5)

    assert csp.Parallel(user()) == [10]


@pytest.mark.timeout(30)
def test_io_call_does_not_stop_other_processes(csp):
    """While one process sleeps in @io, others keep communicating."""
    nap = make_nap(csp)

    @csp.process
    def sleeper():
        nap(2.0)
        return time.monotonic()

    @csp.process
    def ping(cout, cin):
        for i in range(100):
            cout(i)
            cin()
        return time.monotonic()

    @csp.process
    def pong(cin, cout):
        for _ in range(100):
            cout(cin())

    a, b = csp.Channel(), csp.Channel()
    nap_done, pingpong_done, _ = csp.Parallel(sleeper(), ping(-a, +b), pong(+a, -b))
    assert pingpong_done < nap_done


# --------------------------------------------------------------------------- version


def test_version_tuple(csp, backend):
    v = csp.version
    assert isinstance(v, tuple)
    assert len(v) == 4
    assert all(isinstance(x, int) and x >= 0 for x in v[:3])
    assert v[3] == {"net-curve": "net"}.get(backend, backend)  # both are pycsp.net


# --------------------------------------------------------------------------- Ctrl-C


# Prepended to the scripts below: one write per line (print() writes the text
# and the newline separately, so lines from several threads could interleave).
SAY = """
import sys

def say(*words):
    sys.stdout.write(" ".join(map(str, words)) + "\\n")
    sys.stdout.flush()
"""

CTRL_C_SCRIPT = """
import sys
import pycsp.{backend} as csp

""" + SAY + """
@csp.process
def blocked(cin, i):
    say("blocked", i)
    cin()

@csp.process
def ticker(cin):
    # A pending TimeoutGuard: the network is waiting, not deadlocked.
    say("ticker")
    while True:
        csp.AltSelect(csp.InputGuard(cin), csp.TimeoutGuard(0.05))

ch = csp.Channel()
keep_open = ch.writer()
side = csp.Channel()
keep_side_open = side.writer()
csp.Parallel([blocked(ch.reader(), i) for i in range(4)], ticker(side.reader()))
say("Parallel returned")
"""


@pytest.mark.timeout(40)
def test_ctrl_c_ends_parallel_promptly(backend):
    proc, out, err, elapsed = ctrl_c_once_started(CTRL_C_SCRIPT.format(backend=backend), 5,
                                                  timeout=10)
    assert proc.returncode != 0
    assert "KeyboardInterrupt" in err, err
    assert "Parallel returned" not in out
    assert elapsed < 10


# Appended to a script run by start_script: waits up to 5 s for this process's
# children to end, then says how many are left (braces doubled for .format).
REPORT_CHILDREN_LEFT = """
import os
import time

def live_children():
    kids = []
    for tid in os.listdir(f"/proc/{{os.getpid()}}/task"):
        with open(f"/proc/{{os.getpid()}}/task/{{tid}}/children") as f:
            kids += f.read().split()
    return kids

deadline = time.monotonic() + 5
while live_children() and time.monotonic() < deadline:
    time.sleep(0.05)
say("children left:", len(live_children()))
"""

# Three processes blocked on a channel and a fourth, {other} (a process
# named "other" that says one line when it starts); Ctrl-C once all started.
CTRL_C_CAUGHT_SCRIPT = """
import sys
import time
import pycsp.{backend} as csp

""" + SAY + """
@csp.process
def blocked(cin):
    say("blocked")
    try:
        cin()
    except csp.ChannelPoisonException:
        say("poisoned out")
        raise
{other}
ch = csp.Channel()
keep_open = ch.writer()
try:
    csp.Parallel([blocked(ch.reader()) for _ in range(3)], other())
except KeyboardInterrupt:
    say("caught KeyboardInterrupt")

""" + REPORT_CHILDREN_LEFT

TICKER = """
side = csp.Channel()
keep_side_open = side.writer()

@csp.process
def other():
    say("ticker")
    cin = side.reader()
    while True:
        csp.AltSelect(csp.InputGuard(cin), csp.TimeoutGuard(0.05))
"""

BUSY = """
@csp.process
def other():
    say("busy")
    until = time.monotonic() + 3
    while time.monotonic() < until:  # Python running when Ctrl-C comes
        pass
"""


def assert_ctrl_c_stopped_them(backend, other):
    proc, out, err, _ = ctrl_c_once_started(
        CTRL_C_CAUGHT_SCRIPT.format(backend=backend, other=other), 4, timeout=15)
    assert proc.returncode == 0, err
    lines = out.split("\n")
    assert "caught KeyboardInterrupt" in lines, out + err
    # No child OS process is left behind (processes backend; trivially 0 otherwise).
    assert "children left: 0" in lines, out + err
    if backend != "processes":
        # Threads and greenlets cannot be killed: every blocked process was
        # poisoned out of its channel read. (OS processes may simply be ended.)
        assert lines.count("poisoned out") == 3, out + err


@pytest.mark.timeout(40)
def test_ctrl_c_poisons_out_the_processes(backend):
    assert_ctrl_c_stopped_them(backend, TICKER)


@pytest.mark.timeout(40)
def test_ctrl_c_while_a_process_runs_python_poisons_out_the_others(backend):
    """greenlets: the KeyboardInterrupt is raised in the greenlet that runs
    Python when the signal comes, not in the main program's wait; it ended that
    process alone and the blocked ones were never stopped (the cause of
    test_ctrl_c_poisons_out_the_processes[greenlets] failing once in CI, where
    the ticker's loop ran Python at the wrong moment)."""
    assert_ctrl_c_stopped_them(backend, BUSY)


CTRL_C_IN_SHUTDOWN_SCRIPT = """
import os
import sys
import time
import pycsp.{backend} as csp

""" + SAY + """
@csp.process
def waiter(cin):
    say("waiting")
    try:
        # Blocked, not deadlocked (a timeout is pending), and running no Python
        # code that the KeyboardInterrupt could land in (greenlets: it is raised
        # in whichever greenlet runs).
        csp.AltSelect(csp.InputGuard(cin), csp.TimeoutGuard(60))
    except csp.ChannelPoisonException:
        say("poisoned out")
        raise

ch = csp.Channel()
keep_open = ch.writer()
csp.Spawn(waiter(ch.reader()))
try:
    csp.shutdown()
except KeyboardInterrupt:
    say("caught KeyboardInterrupt")

""" + REPORT_CHILDREN_LEFT


@pytest.mark.timeout(40)
def test_ctrl_c_in_shutdown_stops_the_spawned_processes(backend):
    """As Ctrl-C in Parallel does (threads and greenlets went on running them,
    and the shutdown() at exit waited for them forever)."""
    proc = start_script(CTRL_C_IN_SHUTDOWN_SCRIPT.format(backend=backend))
    try:
        assert proc.stdout.readline().strip() == "waiting", proc.stderr.read()
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        out, err = finish_script(proc, timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out + err
    lines = out.split("\n")
    assert "caught KeyboardInterrupt" in lines, out + err
    assert "children left: 0" in lines, out + err
    if backend != "processes":  # OS processes are simply ended
        assert "poisoned out" in lines, out + err


CTRL_C_IN_SELECT_SCRIPT = """
import sys
import pycsp.{backend} as csp

ch = csp.Channel()
keep_open = ch.writer()
cin = ch.reader()
sys.stdout.write("waiting\\n")
sys.stdout.flush()
# A pending timeout: not a deadlock, just a long wait in the main program.
csp.PriSelect(csp.InputGuard(cin), csp.TimeoutGuard(120))
sys.stdout.write("select returned\\n")
"""


@pytest.mark.timeout(40)
def test_ctrl_c_interrupts_a_blocking_select_in_main(backend):
    proc = start_script(CTRL_C_IN_SELECT_SCRIPT.format(backend=backend))
    try:
        assert proc.stdout.readline().strip() == "waiting", proc.stderr.read()
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        out, err = finish_script(proc, timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode != 0
    assert "KeyboardInterrupt" in err, err
    assert "select returned" not in out


DEEP_RECURSION_SCRIPT = """
import pycsp.{backend} as csp

def down(n):
    # Each level passes through a C call (map, sum), so it uses C stack too.
    if n == 0:
        return 0
    return sum(map(down, [n - 1])) + 1

@csp.process
def deep(n):
    try:
        return down(n)
    except RecursionError:
        return "RecursionError"

print(csp.Parallel(deep({depth}))[0])
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("depth", [900, 950])
def test_deep_recursion_in_a_process_does_not_crash(backend, depth):
    """Recursion within the interpreter's limit works in a process as in the main
    thread: a result or a RecursionError, never a crash of the whole program."""
    result = run_script(DEEP_RECURSION_SCRIPT.format(backend=backend, depth=depth), timeout=30)
    assert result.returncode == 0, f"exit status {result.returncode}\n{result.stderr}"
    assert result.stdout.strip() in (str(depth), "RecursionError")


@pytest.mark.timeout(30)
def test_ten_io_sleeps_overlap(csp):
    """Ten processes each in an @io time.sleep(0.2) run concurrently: together they
    take far less than the 2 s they would take one after the other."""
    nap = make_nap(csp)

    @csp.process
    def sleeper():
        nap(0.2)

    start = time.monotonic()
    csp.Parallel([sleeper() for _ in range(10)])
    assert time.monotonic() - start < 1.5
