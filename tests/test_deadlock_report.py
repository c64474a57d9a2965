"""What a DeadlockError says: every blocked process (id, function, what it
waits for, on which channels, where), the wait-for cycle first; and the live
state dump (pycsp.dump_state, dump_state_on)."""
import io
import os
import pickle
import subprocess
import sys
import textwrap
import time

import pytest

import csp_ext
from conftest import BACKENDS, PROGRAM_BACKENDS, _child_env, by_backend
from net_backend import DEADLOCK_IS_LOCAL, DUMP_SEES_THE_ARENA

HERE = os.path.basename(__file__)


def line_of(marker):
    """The line of this file that ends with ``# <marker>``."""
    with open(__file__) as f:
        for number, line in enumerate(f, 1):
            if line.rstrip().endswith(f"# {marker}"):
                return number
    raise AssertionError(marker)


def site(marker):
    return f"{HERE}:{line_of(marker)}"


def deadlock_of(csp, *procs):
    with pytest.raises(csp.DeadlockError) as info:
        csp.Parallel(*procs)
    return info.value


@pytest.mark.timeout(30)
@pytest.mark.local_only(DEADLOCK_IS_LOCAL)
def test_two_process_cycle(csp):
    @csp.process
    def producer(cout, cin):
        cout("x")  # producer-blocks
        cin()

    @csp.process
    def consumer(cout, cin):
        cout("y")  # consumer-blocks
        cin()

    a, b = csp.Channel("a"), csp.Channel("b")
    p, c = producer(-a, +b), consumer(-b, +a)
    error = deadlock_of(csp, p, c)

    by_name = {e.name: e for e in error.blocked}
    assert sorted(by_name) == ["consumer", "producer"]
    assert by_name["producer"].id == p.id and by_name["consumer"].id == c.id
    assert by_name["producer"].waits == "write"
    assert by_name["producer"].channels == (("'a'", "write"),)
    assert by_name["producer"].site == site("producer-blocks")
    assert by_name["consumer"].site == site("consumer-blocks")

    text = str(error)
    lines = text.splitlines()
    assert lines[0] == "deadlock: every CSP process is blocked on a channel"
    assert lines[1] == "wait-for cycle:"
    cycle = set(lines[2:4])
    assert cycle == {
        f"  producer ({site('producer-blocks')}) writes 'a' — only consumer reads 'a'",
        f"  consumer ({site('consumer-blocks')}) writes 'b' — only producer reads 'b'",
    }, text
    assert "blocked (2):" in lines
    assert f"  producer [{p.id}] at {site('producer-blocks')}: writes 'a'" in lines


@pytest.mark.timeout(30)
@pytest.mark.local_only(DEADLOCK_IS_LOCAL)
def test_reader_whose_writers_all_left(csp):
    @csp.process
    def writer(cout):
        cout(1)

    @csp.process
    def reader(cin):
        while True:
            cin()  # reader-blocks

    c = csp.Channel("c")
    r = reader(+c)
    error = deadlock_of(csp, writer(-c), r)
    assert [(e.name, e.id, e.waits) for e in error.blocked] == [("reader", r.id, "read")]
    assert (f"  reader ({site('reader-blocks')}) reads 'c' — no process left on its other end"
            in str(error).splitlines()), str(error)
    assert "wait-for cycle" not in str(error)


@pytest.mark.timeout(30)
@pytest.mark.local_only(DEADLOCK_IS_LOCAL)
def test_alternation_that_waits_on_three_channels(csp):
    @csp.process
    def chooser(a, b, c):
        csp.AltSelect(csp.InputGuard(a), csp.InputGuard(b), csp.OutputGuard(c, "m"))  # alt-blocks

    a, b, c = csp.Channel("a"), csp.Channel(), csp.Channel("c")
    keep = (a.writer(), b.writer(), c.reader())
    error = deadlock_of(csp, chooser(+a, +b, -c))
    (entry,) = error.blocked
    assert entry.name == "chooser" and entry.waits == "alternation"
    assert entry.site == site("alt-blocks")
    labels = [label for label, _ in entry.channels]
    assert [d for _, d in entry.channels] == ["read", "read", "write"]
    assert labels[0] == "'a'" and labels[2] == "'c'"
    assert labels[1].startswith("#"), labels  # unnamed: a short id
    assert f"alternation: reads 'a', reads {labels[1]}, writes 'c'" in str(error)
    del keep


@pytest.mark.timeout(30)
@pytest.mark.local_only(DEADLOCK_IS_LOCAL)
def test_unnamed_channel_keeps_its_short_id(csp):
    """The id a report gives an unnamed channel is the one it has everywhere
    for its life (in every OS process, on the processes backend)."""
    from pycsp._deadlock import label

    @csp.process
    def lonely(cin):
        cin()

    ch = csp.Channel()
    keep = ch.writer()
    reported = deadlock_of(csp, lonely(ch.reader())).blocked[0].channels[0][0]
    assert reported.startswith("#") and reported == label(ch) == label(ch)
    assert label(csp.Channel()) != reported
    del keep


@pytest.mark.timeout(30)
@pytest.mark.local_only(DEADLOCK_IS_LOCAL)
def test_deadlock_inside_a_nested_parallel(csp):
    """The report of the outer Parallel has the inner processes (on the
    processes backend they are in another OS process)."""

    @csp.process
    def left(cout, cin):
        cout(1)  # left-blocks
        cin()

    @csp.process
    def right(cout, cin):
        cout(2)  # right-blocks
        cin()

    @csp.process
    def outer_stuck(cin):
        cin()  # outer-blocks

    @csp.process
    def inner(a, b):
        csp.Parallel(left(-a, +b), right(-b, +a))

    a, b, idle = csp.Channel("a"), csp.Channel("b"), csp.Channel("idle")
    keep = idle.writer()
    error = deadlock_of(csp, inner(a, b), outer_stuck(+idle))
    assert sorted((e.name, e.site) for e in error.blocked) == [
        ("left", site("left-blocks")), ("outer_stuck", site("outer-blocks")),
        ("right", site("right-blocks"))]
    assert str(error).splitlines()[1] == "wait-for cycle:"
    assert "outer_stuck" in str(error).split("blocked (3):")[1]
    del keep


@pytest.mark.timeout(30)
@pytest.mark.local_only(DEADLOCK_IS_LOCAL)
def test_main_program_blocked(csp):
    ch = csp.Channel("lonely")
    keep = ch.writer()
    cin = ch.reader()
    with pytest.raises(csp.DeadlockError) as info:
        cin()  # main-blocks
    (entry,) = info.value.blocked
    assert entry.name == "main program"
    assert entry.site == site("main-blocks")
    assert "main program" in str(info.value)
    del keep


@pytest.mark.timeout(30)
@pytest.mark.local_only(DEADLOCK_IS_LOCAL)
def test_report_survives_pickling(csp):
    @csp.process
    def lonely(cin):
        cin()

    ch = csp.Channel("p")
    keep = ch.writer()
    error = deadlock_of(csp, lonely(ch.reader()))
    again = pickle.loads(pickle.dumps(error))
    assert again.blocked == error.blocked and str(again) == str(error)
    del keep


@pytest.mark.timeout(30)
@pytest.mark.local_only(DEADLOCK_IS_LOCAL)
def test_plain_deadlock_when_the_report_fails(csp, monkeypatch):
    """The deadlock is raised whatever happens to its report."""
    from pycsp import _deadlock
    seen = []
    monkeypatch.setattr("sys.unraisablehook", seen.append)

    def broken(*args):
        raise RuntimeError("report broke")

    csp_ext._set_deadlock_report(broken)
    try:
        ch = csp.Channel()
        keep = ch.writer()
        with pytest.raises(csp.DeadlockError) as info:
            ch.reader()()
        assert str(info.value) == "deadlock: every CSP process is blocked on a channel"
        assert info.value.blocked == ()
        assert seen and isinstance(seen[0].exc_value, RuntimeError)
        del keep
    finally:
        csp_ext._set_deadlock_report(_deadlock.make_error)


def test_set_deadlock_report_checks_its_argument():
    with pytest.raises(TypeError):
        csp_ext._set_deadlock_report(42)


# --------------------------------------------------------------------------- live dump


@pytest.mark.timeout(30)
@pytest.mark.local_only(DUMP_SEES_THE_ARENA)
def test_dump_state_while_a_network_runs(csp, backend):
    """Called by one process of a running network: every process of this OS
    process with its state; on the processes backend the others as the arena
    sees them."""

    @csp.process
    def producer(cout):
        for i in range(3):
            cout(i)  # dump-producer

    @csp.process
    def stuck(cin):
        cin()  # dump-stuck

    @csp.process
    def reporter(cin, report, stuck_out):
        cin()
        cin()
        csp.AltSelect(csp.TimeoutGuard(0.2))  # the others run until they block
        out = io.StringIO()
        csp.dump_state(out)  # dump-reporter
        report(out.getvalue())
        cin()
        stuck_out(0)

    numbers, reports, x = csp.Channel("numbers"), csp.Channel("reports", buffer=1), csp.Channel("x")
    read_report = reports.reader()
    csp.Parallel(producer(-numbers), stuck(+x), reporter(+numbers, -reports, -x))
    text = read_report()
    lines = text.splitlines()
    assert lines[0].startswith(f"pycsp: state of OS process ")
    assert f"  reporter [" in text and f"at {site('dump-reporter')}: running" in text, text
    if backend == "processes":
        assert "other OS processes of the program" in text, text
        assert "blocked reading 'x'" in text and "blocked writing 'numbers'" in text, text
    else:
        assert "  main program [" in text and "waits for its Parallel" in text, text
        assert f"at {site('dump-producer')}: blocked writing 'numbers'" in text, text
        assert f"  stuck [" in text and f"at {site('dump-stuck')}: blocked reading 'x'" in text


SIGNAL_SCRIPT = """
import os, signal, sys, time
import pycsp.{backend} as csp

@csp.process
def producer(cout):
    for i in range(3):
        cout(i)

@csp.process
def stuck(cin):
    cin()

@csp.process
def chooser(a, b):
    csp.AltSelect(csp.InputGuard(a), csp.InputGuard(b))

@csp.process
def trigger(cin, x, a, main_pid):
    cin()
    csp.AltSelect(csp.TimeoutGuard(0.2))  # the others run until they block
    os.kill(main_pid, signal.SIGUSR1)
    time.sleep(0.5)  # a plain sleep: the others stay as they are
    cin()
    cin()
    x(0)
    a(0)

if __name__ == "__main__":
    {start}
    csp.dump_state_on(signal.SIGUSR1, file=sys.stdout)
    numbers, x, a, b = csp.Channel("numbers"), csp.Channel("x"), csp.Channel("a"), csp.Channel("b")
    keep = b.writer()
    csp.Parallel(producer(-numbers), stuck(+x), chooser(+a, +b),
                 trigger(+numbers, -x, -a, os.getpid()))
    print("DONE")
"""


SIGNAL_CASES = [(b, "") for b in PROGRAM_BACKENDS] + [("processes", "spawn")] * ("processes" in BACKENDS)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("backend_name, start", SIGNAL_CASES,
                         ids=[b + (f"-{s}" if s else "") for b, s in SIGNAL_CASES])
def test_dump_state_on_a_signal(backend_name, start, tmp_path):
    """SIGUSR1 to the program: each OS process writes its own processes'
    states (the processes backend passes the signal on to its children,
    which answer also when started in a new interpreter)."""
    backend = backend_name
    script = tmp_path / "dump_on_signal.py"
    script.write_text(textwrap.dedent(SIGNAL_SCRIPT).replace("{backend}", backend).replace(
        "{start}", f"csp.set_start_method({start!r})" if start else "pass"))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=80, env=_child_env(), cwd=str(tmp_path))
    out = proc.stdout
    assert proc.returncode == 0 and "DONE" in out, out + proc.stderr
    assert out.count("pycsp: state of OS process") == (5 if backend == "processes" else 1), out
    assert "stuck [" in out and "blocked reading 'x'" in out, out
    assert "alternation: reading 'a', reading 'b'" in out, out
    assert "blocked writing 'numbers'" in out, out
    assert "trigger [" in out, out
    if backend == "processes":
        assert "other OS processes of the program (4)" in out, out
        assert out.count("other OS processes") == 1, out


def test_dump_state_on_checks_its_argument(csp):
    with pytest.raises(TypeError):
        csp.dump_state_on("SIGUSR1")


@pytest.mark.timeout(30)
@pytest.mark.local_only(DEADLOCK_IS_LOCAL)
def test_an_end_received_in_a_message_counts_as_held(csp):
    """The process that was sent the writer of 'c' (a mobile end) is the
    one the reader of 'c' waits for: a cycle, not "no process left"."""

    @csp.process
    def waiter(cin_c, cout_d):
        cout_d(0)
        cin_c()

    @csp.process
    def holder(ends_in, cin_d):
        writer_of_c = ends_in()
        cin_d()
        cin_d()  # holder-blocks
        writer_of_c("never")

    @csp.process
    def giver(ends_out, writer_of_c):
        ends_out(writer_of_c)

    c, d, ends = csp.Channel("c"), csp.Channel("d"), csp.Channel("ends")
    error = deadlock_of(csp, waiter(+c, -d), holder(+ends, +d), giver(-ends, -c))
    text = str(error)
    assert "wait-for cycle:" in text, text
    assert f"holder ({site('holder-blocks')}) reads 'd' — only waiter writes 'd'" in text, text
    assert "reads 'c' — only holder writes 'c'" in text, text


# --------------------------------------------------------------------------- review findings

HANDLER_USES_CHANNELS = """
import gc, io, os, signal, sys, time
import pycsp.{backend} as csp

def look(label):
    out = io.StringIO()
    csp.dump_state(out, others=False)
    main = [ln for ln in out.getvalue().splitlines() if "main program" in ln]
    print(label, main)

def poll():
    tmp = csp.Channel("tmp")
    csp.PriSelect(csp.InputGuard(tmp.reader()), csp.TimeoutGuard(0.001))

def on_usr1(signum, frame):
    look("BEFORE")
    poll()              # a channel operation of the handler's own; its channel then dies
    gc.collect()
    junk = [bytearray(200) for _ in range(2000)]
    look("AFTER")

signal.signal(signal.SIGUSR1, on_usr1)

@csp.process
def writer(cout, parent):
    time.sleep(0.3)
    os.kill(parent, signal.SIGUSR1)
    time.sleep(0.3)
    cout(1)

if __name__ == "__main__":
    c = csp.Channel("c")
    csp.Spawn(writer(-c, os.getpid()))
    print("GOT", c.reader()())
    csp.shutdown()
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("backend_name", [b for b in PROGRAM_BACKENDS if b != "greenlets"])
def test_dump_in_a_handler_that_used_channels(backend_name, tmp_path):
    """A handler that interrupted a wait and used a channel of its own: the
    dump no longer reads that operation's offers as the wait's (they named a
    freed channel: a crash under PYTHONMALLOC=debug)."""
    script = tmp_path / "handler.py"
    script.write_text(HANDLER_USES_CHANNELS.replace("{backend}", backend_name))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=50, env=dict(_child_env(), PYTHONMALLOC="debug"),
                          cwd=str(tmp_path))
    out = proc.stdout
    assert proc.returncode == 0 and "GOT 1" in out, out + proc.stderr
    before = [ln for ln in out.splitlines() if ln.startswith("BEFORE")][0]
    after = [ln for ln in out.splitlines() if ln.startswith("AFTER")][0]
    assert "blocked reading 'c'" in before, out
    assert "'tmp'" not in after and "#" not in after, out


@pytest.mark.timeout(60)
@pytest.mark.local_only(DEADLOCK_IS_LOCAL)
def test_a_ring_of_1200_is_reported_as_a_cycle(csp, backend):
    """The cycle search is iterative (a recursive one raised RecursionError
    instead of DeadlockError past about 1000 processes)."""
    n = by_backend(backend, default=1200, processes=40)

    @csp.process
    def node(cout, cin):
        cout(0)
        cin()

    chans = [csp.Channel(f"r{i}") for i in range(n)]
    procs = [node(-chans[i], +chans[i - 1]) for i in range(n)]
    error = deadlock_of(csp, procs)
    lines = str(error).splitlines()
    assert lines[1] == "wait-for cycle:" and len(error.blocked) == n
    assert sum(ln.startswith("  node (") for ln in lines) == n


@pytest.mark.timeout(60)
@pytest.mark.local_only(DEADLOCK_IS_LOCAL)
def test_many_stranded_readers_are_reported_quickly(csp, backend):
    """The report is linear in the number of processes (it was quadratic:
    10,000 stranded readers took 90 s)."""
    n = by_backend(backend, default=10_000, threads=1000, processes=40)

    @csp.process
    def reader(cin):
        cin()

    chans = [csp.Channel(f"s{i}") for i in range(n)]
    keep = [c.writer() for c in chans]
    error = deadlock_of(csp, [reader(+c) for c in chans])
    assert len(error.blocked) == n
    del keep


@pytest.mark.timeout(30)
@pytest.mark.local_only(DEADLOCK_IS_LOCAL)
def test_an_end_held_by_the_process_waiting_in_parallel(csp):
    """The parent holds the writer the reader waits for, but waits for the
    reader in Parallel: the report shows that cycle (it said "no process
    left on its other end")."""

    @csp.process
    def reader(cin):
        cin()  # parent-child-blocks

    @csp.process
    def parent(cout, c):
        csp.Parallel(reader(c.reader()))  # parent-waits
        cout("too late")

    c = csp.Channel("c")
    error = deadlock_of(csp, parent(c.writer(), c))
    text = str(error)
    assert "wait-for cycle:" in text, text
    assert f"reader ({site('parent-child-blocks')}) reads 'c' — only parent writes 'c'" in text
    assert f"parent ({site('parent-waits')}) waits in Parallel for reader" in text, text
    assert [e.name for e in error.blocked] == ["reader"]
    assert "parent" in [e.name for e in error.waiting_in_parallel]


@pytest.mark.timeout(30)
@pytest.mark.local_only(DEADLOCK_IS_LOCAL)
def test_names_that_are_hard_to_keep(csp):
    """Names with lone surrogates, NULs, non-str names: the channel works and
    a report names it the same way in every OS process."""
    from pycsp._deadlock import label

    @csp.process
    def lonely(a, b, c):
        csp.AltSelect(csp.InputGuard(a), csp.InputGuard(b), csp.InputGuard(c))

    names = [os.fsdecode(b"log-\xff"), "x\0y", 7]
    chans = [csp.Channel(name) for name in names]
    keep = [ch.writer() for ch in chans]
    error = deadlock_of(csp, lonely(*[+ch for ch in chans]))
    (entry,) = error.blocked
    assert [lab for lab, _ in entry.channels] == [label(ch) for ch in chans] == [
        repr(name) for name in names]
    del keep


@pytest.mark.timeout(30)
@pytest.mark.local_only(DEADLOCK_IS_LOCAL)
def test_a_thread_not_started_by_pycsp_is_named_as_a_thread(csp):
    import threading
    ch, other = csp.Channel("t"), csp.Channel("m")
    keep = (ch.writer(), other.writer())
    started, got = threading.Event(), []

    def body():
        started.set()
        try:
            ch.reader()()
        except csp.DeadlockError as exc:
            got.append(exc)

    thread = threading.Thread(target=body, name="feeder")
    thread.start()
    started.wait()
    time.sleep(0.1)  # the thread blocks first: counted from its first channel operation
    with pytest.raises(csp.DeadlockError):
        other.reader()()
    thread.join(20)
    assert not thread.is_alive()
    assert [e.name for e in got[0].blocked] == ["thread 'feeder'"]
    del keep


@pytest.mark.timeout(30)
@pytest.mark.local_only(DEADLOCK_IS_LOCAL)
def test_dump_with_a_long_multibyte_name(csp, backend):
    """A label cut where the arena's copy for dumps ends, inside a character,
    does not make the dump raise."""

    @csp.process
    def reader(cin):
        cin()

    @csp.process
    def dumper(report):
        csp.AltSelect(csp.TimeoutGuard(0.2))
        out = io.StringIO()
        csp.dump_state(out)
        report(out.getvalue())

    name = "é" * 60
    ch, reports = csp.Channel(name), csp.Channel(buffer=1)
    keep = ch.writer()
    read = reports.reader()
    with pytest.raises(csp.DeadlockError):
        csp.Parallel(reader(+ch), dumper(reports.writer()))
    text = read()
    assert "blocked reading 'éé" in text, text
    del keep


FORWARD_SCRIPT = """
import os, signal, sys, time
import pycsp.processes as csp

@csp.process
def early(cin):
    cin()

@csp.process
def late(cin):
    cin()

@csp.process
def trigger(main_pid, out_early, out_late):
    csp.AltSelect(csp.TimeoutGuard(0.3))
    os.kill(main_pid, signal.SIGUSR1)
    time.sleep(0.5)
    out_early(1)
    out_late(1)

if __name__ == "__main__":
    a, b = csp.Channel("a"), csp.Channel("b")
    csp.Spawn(early(+a))                 # started before dump_state_on: no handler
    csp.dump_state_on(signal.SIGUSR1, file=sys.stdout)
    csp.Parallel(late(+b), trigger(os.getpid(), -a, -b))
    csp.shutdown()
    print("DONE")
"""


@pytest.mark.timeout(60)
def test_signal_not_passed_to_children_without_the_handler(tmp_path):
    """A child started before dump_state_on would be killed by the signal:
    it is not sent it."""
    if "processes" not in BACKENDS:
        return
    script = tmp_path / "forward.py"
    script.write_text(FORWARD_SCRIPT)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=50, env=_child_env(), cwd=str(tmp_path))
    out = proc.stdout
    assert proc.returncode == 0 and "DONE" in out, out + proc.stderr
    assert "killed" not in proc.stderr, proc.stderr
    assert "late [" in out and "blocked reading 'b'" in out, out
    assert "early [" not in out, out


FORKED_BY_A_THREAD = """
import os, signal, sys, threading, time
import pycsp.processes as csp

@csp.process
def blocked(cin):
    try:
        cin()
        open("got-message", "w").close()
    except KeyboardInterrupt:
        open("interrupted", "w").close()

def parent_of(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[1]  # after "pid (comm) state"
    except FileNotFoundError:  # a process that ended since the listing
        return None

def in_a_thread(cin):
    csp.Spawn(blocked(cin))

if __name__ == "__main__":
    ch = csp.Channel("never")
    keep = ch.writer()
    before = set(os.listdir("/proc"))
    thread = threading.Thread(target=in_a_thread, args=(ch.reader(),))
    thread.start()
    thread.join()
    time.sleep(0.5)
    children = [int(p) for p in os.listdir("/proc") if p.isdigit() and p not in before
                and parent_of(p) == str(os.getpid())]
    for child in children:
        os.kill(child, signal.SIGINT)
    released = False
    for _ in range(200):  # up to 10 s: a wait that watches signals takes 20 ms
        if os.path.exists("interrupted"):
            break
        time.sleep(0.05)
    else:
        keep("now")  # ends the child's wait, which never looked at the signal
        released = True
    csp.shutdown()
    print("CHILDREN", len(children), "RELEASED", released, flush=True)
"""


@pytest.mark.timeout(60)
def test_a_child_forked_by_a_thread_runs_its_signal_handlers_while_blocked(tmp_path):
    """The thread that forked a child is the child's main thread: a wait there
    watches for signals (it did not: Ctrl-C reached it only after the wait)."""
    if "processes" not in BACKENDS:
        return
    script = tmp_path / "forked_by_a_thread.py"
    script.write_text(FORKED_BY_A_THREAD)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=50, env=_child_env(), cwd=str(tmp_path))
    assert "CHILDREN 1 RELEASED False" in proc.stdout, proc.stdout + proc.stderr
