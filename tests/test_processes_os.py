"""The processes backend as OS processes (issues 4 and 6).

pycsp.processes runs each CSP process as a forked OS process and keeps its
channels in a shared arena.  These tests check what only that backend has:
separate OS processes, messages that are pickled copies, large payloads,
channel ends moving between OS processes, crashes and signals (run as the
standalone scripts in tests/faults/, in a subprocess with a timeout), scale,
and cross-process deadlock detection.
"""
import os
import pickle
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

import pycsp.processes as csp
from conftest import assert_lone_reader_deadlocks, run_script

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FAULTS = os.path.join(HERE, "faults")

np = pytest.importorskip("numpy")


# --------------------------------------------------------------------------- helpers


class Point:
    """A picklable user class (module level)."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __eq__(self, other):
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)


class CustomError(Exception):
    pass


class ReduceFails:
    """Pickling it raises ValueError (pickle passes the exception through)."""

    def __reduce__(self):
        raise ValueError("ReduceFails cannot be pickled")


def _mem_available():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _stat(pid):
    """(state, ppid, session) of a process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[1]), int(fields[3])


def _session_members(sid):
    """Live (non-zombie) processes of session ``sid``."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _stat(int(name))
            if st and st[2] == sid and st[0] not in "ZX":
                found.append(int(name))
    return found


def _alive(pid):
    st = _stat(pid)
    return st is not None and st[0] not in "ZX"


def _shm_entries():
    try:
        return set(os.listdir("/dev/shm"))
    except FileNotFoundError:
        return set()


class FaultRun:
    """A script of tests/faults/ run as its own program in its own session.

    Its own session lets the test find every process it left behind (they
    keep its session id even once reparented) and kill them all on a hang.
    """

    def __init__(self, name, *args):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([ROOT] + [p for p in sys.path if p and os.path.isdir(p)])
        env["PYTHONUNBUFFERED"] = "1"
        self.shm_before = _shm_entries()
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(FAULTS, name), *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
            start_new_session=True,
        )
        self.out = self.err = ""

    def readline(self):
        line = self.proc.stdout.readline()
        self.out += line
        return line

    def finish(self, timeout):
        """Wait for the script; on a hang kill its whole session and fail."""
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._kill_all()
            out, err = self.proc.communicate()
            self.out += out
            pytest.fail(f"fault script did not finish within {timeout}s\n"
                        f"--- stdout ---\n{self.out}\n--- stderr ---\n{err}")
        self.out += out
        self.err = err
        return self

    def _kill_all(self):
        for pid in _session_members(self.proc.pid) + [self.proc.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    @property
    def lines(self):
        return self.out.splitlines()

    def child_pids(self):
        return [int(line.split()[1]) for line in self.lines if line.startswith("child ")]

    def assert_clean(self):
        """No process of the script survives; no new /dev/shm entry; the script's
        own checks of its children passed."""
        deadline = time.monotonic() + 5
        left = _session_members(self.proc.pid)
        while left and time.monotonic() < deadline:
            time.sleep(0.05)
            left = _session_members(self.proc.pid)
        alive = [p for p in self.child_pids() if _alive(p) and _stat(p)[2] == self.proc.pid]
        try:
            assert left == [], f"processes of the script still alive: {left}"
            assert alive == [], f"recorded child processes still alive: {alive}"
            new_shm = _shm_entries() - self.shm_before
            assert not new_shm, f"new /dev/shm entries: {sorted(new_shm)}"
            if any(line.startswith("children left:") for line in self.lines):
                assert "children left: 0" in self.lines, self.report()
                assert "recorded alive: 0" in self.lines, self.report()
        finally:
            if left:
                self._kill_all()

    def report(self):
        return f"exit status {self.proc.returncode}\n--- stdout ---\n{self.out}\n--- stderr ---\n{self.err}"


def run_fault(name, *args, timeout):
    run = FaultRun(name, *args).finish(timeout)
    run.assert_clean()
    return run


# --------------------------------------------------------------------------- OS processes


@csp.process
def pids():
    return os.getpid(), os.getppid()


@pytest.mark.timeout(30)
def test_each_process_is_its_own_os_process():
    results = csp.Parallel([pids() for _ in range(6)])
    mine = os.getpid()
    assert len({pid for pid, _ in results}) == 6
    assert all(pid != mine for pid, _ in results)
    assert all(ppid == mine for _, ppid in results)


@csp.process
def nested_pids(n):
    inner = csp.Parallel([pids() for _ in range(n)])
    return os.getpid(), inner


@pytest.mark.timeout(30)
def test_nested_parallel_runs_each_process_in_its_own_os_process():
    results = csp.Parallel(nested_pids(3), nested_pids(2))
    every = [os.getpid()]
    for outer_pid, inner in results:
        every.append(outer_pid)
        for pid, ppid in inner:
            every.append(pid)
            assert ppid == outer_pid  # started by the outer process, not by main
    assert len(every) == len(set(every)) == 1 + 2 + 5


@pytest.mark.timeout(30)
def test_current_process_id_differs_between_os_processes():
    @csp.process
    def ident():
        return csp.current_process_id()

    ids = csp.Parallel([ident() for _ in range(4)])
    assert len(set(ids + [csp.current_process_id()])) == 5


@pytest.mark.timeout(30)
def test_return_values_come_back_pickled():
    shared = [1, 2, 3]

    @csp.process
    def give(arg):
        arg.append("child")  # the child's copy of the list, not the parent's
        return {"point": Point(1, 2), "arg": arg, "set": {1, 2}, "bytes": b"\x00\xff",
                "error": CustomError("carried")}

    [value] = csp.Parallel(give(shared))
    assert shared == [1, 2, 3]
    assert value["point"] == Point(1, 2)
    assert value["arg"] == [1, 2, 3, "child"]
    assert value["set"] == {1, 2} and value["bytes"] == b"\x00\xff"
    assert type(value["error"]) is CustomError and value["error"].args == ("carried",)


@pytest.mark.timeout(30)
def test_unpicklable_return_value_raises_in_parent_without_hanging():
    @csp.process
    def give_lock():
        return threading.Lock()

    with pytest.raises(Exception) as info:
        csp.Parallel(give_lock())
    assert "pickle" in str(info.value).lower()
    assert csp.Parallel(pids())[0][1] == os.getpid()  # still usable


@pytest.mark.timeout(30)
def test_sequence_runs_each_in_its_own_os_process_in_order():
    log = csp.Channel(buffer=10)

    @csp.process
    def step(i, cout):
        cout(i)
        return i, os.getpid()

    results = csp.Sequence(step(0, log.writer()), [step(1, log.writer()), step(2, log.writer())])
    assert [i for i, _ in results] == [0, 1, 2]
    assert all(pid != os.getpid() for _, pid in results)
    cin = log.reader()
    assert [cin() for _ in range(3)] == [0, 1, 2]


@pytest.mark.timeout(30)
def test_spawn_runs_in_other_os_processes_and_shutdown_waits():
    out = csp.Channel(buffer=10)

    @csp.process
    def spawned(i, cout):
        time.sleep(0.2)
        cout((i, os.getpid()))

    csp.Spawn(spawned(0, out.writer()), [spawned(1, out.writer())])
    csp.shutdown()
    cin = out.reader()
    got = sorted(cin() for _ in range(2))
    assert [i for i, _ in got] == [0, 1]
    assert len({pid for _, pid in got} | {os.getpid()}) == 3
    # Every spawned child was reaped by shutdown().
    assert all(not _alive(pid) for _, pid in got)


# --------------------------------------------------------------------------- messages are copies


@pytest.mark.timeout(30)
def test_message_is_a_copy_across_os_processes():
    ch, back = csp.Channel(), csp.Channel()

    @csp.process
    def writer(cout, cin):
        obj = {"list": [1, 2], "point": Point(3, 4)}
        cout(obj)
        cin()  # the reader has changed its copy by now
        return obj

    @csp.process
    def reader(cin, cout):
        got = cin()
        received = {"list": list(got["list"]), "point": Point(got["point"].x, got["point"].y)}
        got["list"].append("reader")
        got["point"].x = 99
        cout("changed")
        return received

    sent, received = csp.Parallel(writer(ch.writer(), back.reader()), reader(ch.reader(), back.writer()))
    assert received == {"list": [1, 2], "point": Point(3, 4)}
    assert sent == {"list": [1, 2], "point": Point(3, 4)}  # the writer's object is untouched


@pytest.mark.timeout(30)
def test_message_is_copied_when_written_even_within_one_os_process():
    ch = csp.Channel(buffer=2)
    cout, cin = ch.writer(), ch.reader()
    obj = [1, [2, 3]]
    cout(obj)
    obj[1].append("later")  # changed after the write: the message is not
    got = cin()
    assert got == [1, [2, 3]]
    assert got is not obj


def _lambda_message():
    return lambda: 0


def _local_class_message():
    class Local:
        pass

    return Local()


def _generator_message():
    return (i for i in range(3))


UNPICKLABLE = {
    "lambda": (_lambda_message, (pickle.PicklingError, TypeError, AttributeError)),
    "lock": (threading.Lock, (pickle.PicklingError, TypeError, AttributeError)),
    "local_class": (_local_class_message, (pickle.PicklingError, TypeError, AttributeError)),
    "generator": (_generator_message, (pickle.PicklingError, TypeError, AttributeError)),
    "reduce_raises": (ReduceFails, (ValueError,)),
    "nested_in_list": (lambda: [1, {"k": threading.Lock()}],
                       (pickle.PicklingError, TypeError, AttributeError)),
}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", sorted(UNPICKLABLE))
def test_unpicklable_message_raises_at_writer_and_channel_stays_usable(kind):
    make, expected = UNPICKLABLE[kind]
    ch = csp.Channel()

    @csp.process
    def writer(cout):
        time.sleep(0.2)  # the reader is blocked in its read by now
        try:
            cout(make())
        except expected as exc:
            raised = type(exc).__name__
        else:
            raised = None
        cout("after")
        cout("done")
        return raised

    @csp.process
    def reader(cin):
        return [cin(), cin()]

    raised, got = csp.Parallel(writer(ch.writer()), reader(ch.reader()))
    assert raised is not None, f"writing an unpicklable {kind} did not raise {expected}"
    assert got == ["after", "done"]


@pytest.mark.timeout(30)
def test_unpicklable_message_on_buffered_channel_leaves_no_trace():
    ch = csp.Channel(buffer=3)
    cout, cin = ch.writer(), ch.reader()
    cout("first")
    with pytest.raises((pickle.PicklingError, TypeError, AttributeError)):
        cout(lambda: 0)
    cout("second")
    assert [cin(), cin()] == ["first", "second"]
    # The failed write took no slot: three more fit in the buffer.
    for i in range(3):
        cout(i)
    assert [cin() for _ in range(3)] == [0, 1, 2]


@pytest.mark.timeout(30)
def test_unpicklable_message_in_an_output_guard_raises_and_channel_stays_usable():
    ch = csp.Channel()

    @csp.process
    def selector(cout):
        time.sleep(0.2)
        try:
            csp.AltSelect(csp.OutputGuard(cout, threading.Lock()))
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raised = type(exc).__name__
        else:
            raised = None
        csp.AltSelect(csp.OutputGuard(cout, "after"))
        return raised

    @csp.process
    def reader(cin):
        return cin()

    raised, got = csp.Parallel(selector(ch.writer()), reader(ch.reader()))
    assert raised is not None
    assert got == "after"


# --------------------------------------------------------------------------- payloads


@csp.process
def send_all(cout, items):
    for item in items:
        cout(item)


@csp.process
def receive_n(cin, n):
    return [cin() for _ in range(n)]


@pytest.mark.timeout(30)
def test_bytes_and_bytearray_arrive_equal_with_their_type():
    items = [b"", b"x", bytes(range(256)) * 4, os.urandom(1 << 20),
             bytearray(b""), bytearray(os.urandom(1024)), bytearray(1 << 20)]
    ch = csp.Channel()
    _, got = csp.Parallel(send_all(ch.writer(), items), receive_n(ch.reader(), len(items)))
    assert [type(x) for x in got] == [type(x) for x in items]
    assert got == items


@pytest.mark.timeout(60)
@pytest.mark.parametrize("size", [1 << 10, 1 << 20, 64 << 20], ids=["1KiB", "1MiB", "64MiB"])
def test_numpy_array_arrives_equal_and_writable(size):
    rng = np.random.default_rng(size)
    array = rng.integers(0, 256, size=size, dtype=np.uint8)
    ch, back = csp.Channel(), csp.Channel()

    @csp.process
    def reader(cin, cout):
        got = cin()
        ok = (type(got) is np.ndarray, got.dtype == np.uint8, got.shape == (size,),
              bool(np.array_equal(got, array)), got.flags.writeable)
        got[0] ^= 0xFF  # writable: no error; and the writer's array stays as it was
        got[-1] ^= 0xFF
        cout("changed")
        return ok

    @csp.process
    def writer(cout, cin):
        cout(array)
        cin()
        return bool(np.array_equal(array, rng_copy))

    rng_copy = array.copy()
    untouched, ok = csp.Parallel(writer(ch.writer(), back.reader()), reader(ch.reader(), back.writer()))
    assert ok == (True, True, True, True, True)
    assert untouched


@pytest.mark.timeout(30)
def test_numpy_arrays_of_any_layout_arrive_equal():
    base = np.arange(4 * 1024 * 64, dtype=np.float64).reshape(1024, 256)
    items = [
        base,
        np.asfortranarray(base),
        base[::3, 1::2],                     # not contiguous
        base.astype(np.complex64),
        np.zeros((0, 5), dtype=np.int16),    # empty
        np.array([("a", 1.5)], dtype=[("name", "U4"), ("v", "f8")]),  # structured
        np.float32(2.5),                     # a numpy scalar
    ]
    ch = csp.Channel()
    _, got = csp.Parallel(send_all(ch.writer(), items), receive_n(ch.reader(), len(items)))
    for sent, received in zip(items, got):
        assert type(received) is type(sent)
        assert received.dtype == sent.dtype and received.shape == sent.shape
        assert np.array_equal(received, sent)
    for received in got[:-1]:
        assert received.flags.writeable


@pytest.mark.timeout(60)
def test_numpy_array_through_a_buffered_channel_in_one_process_is_a_writable_copy():
    ch = csp.Channel(buffer=1)
    array = np.arange(1 << 20, dtype=np.int32)
    ch.writer()(array)
    array[0] = -1  # after the write
    got = ch.reader()()
    assert got[0] == 0 and np.array_equal(got[1:], array[1:])
    assert got.flags.writeable
    got[1] = -7
    assert array[1] == 1


@pytest.mark.timeout(120)
def test_huge_message_has_no_size_limit_but_memory():
    size = 256 << 20
    if _mem_available() < 6 * size:
        pytest.skip("not enough free memory for a 256 MiB message")
    payload = b"\x5a" * size
    ch = csp.Channel()

    @csp.process
    def reader(cin):
        got = cin()
        return type(got) is bytes, len(got), got == b"\x5a" * size

    _, ok = csp.Parallel(send_all(ch.writer(), [payload]), reader(ch.reader()))
    assert ok == (True, size, True)


@pytest.mark.timeout(120)
def test_many_large_messages_do_not_use_up_memory():
    """Twenty 64 MiB messages one after the other: the arena reuses what it freed."""
    n, size = 20, 64 << 20
    ch = csp.Channel()

    @csp.process
    def writer(cout):
        block = np.zeros(size, dtype=np.uint8)
        for i in range(n):
            block[0] = block[-1] = i
            cout(block)

    @csp.process
    def reader(cin):
        ok = 0
        for i in range(n):
            got = cin()
            ok += got.shape == (size,) and got[0] == i and got[-1] == i
        return ok

    assert csp.Parallel(writer(ch.writer()), reader(ch.reader()))[1] == n


# --------------------------------------------------------------------------- mobility


@pytest.mark.timeout(30)
def test_writer_end_sent_to_another_os_process_works_there():
    pipe, data = csp.Channel(), csp.Channel()

    @csp.process
    def give(pipe_out, end):
        pipe_out(end)

    @csp.process
    def use(pipe_in):
        cout = pipe_in()
        for i in range(5):
            cout((os.getpid(), i))
        return os.getpid()

    @csp.process
    def collect(cin):
        return [cin() for _ in range(5)]

    _, user_pid, got = csp.Parallel(give(pipe.writer(), data.writer()), use(pipe.reader()),
                                    collect(data.reader()))
    assert got == [(user_pid, i) for i in range(5)]


@pytest.mark.timeout(30)
def test_reader_end_sent_inside_a_container_works_in_the_receiver():
    pipe, data = csp.Channel(), csp.Channel(buffer=2)

    @csp.process
    def give(pipe_out, end):
        pipe_out({"ends": [end], "note": "here"})

    @csp.process
    def use(pipe_in):
        got = pipe_in()
        cin = got["ends"][0]
        return [cin() for _ in range(4)]

    _, got, _ = csp.Parallel(give(pipe.writer(), data.reader()), use(pipe.reader()),
                             send_all(data.writer(), list(range(4))))
    assert got == [0, 1, 2, 3]


@pytest.mark.timeout(30)
def test_channel_created_in_a_child_and_sent_to_a_sibling():
    pipe = csp.Channel()

    @csp.process
    def maker(pipe_out):
        mine = csp.Channel()
        pipe_out(mine.reader())
        cout = mine.writer()
        for i in range(10):
            cout(i * i)
        return "made"

    @csp.process
    def sibling(pipe_in):
        cin = pipe_in()
        return [cin() for _ in range(10)]

    assert csp.Parallel(maker(pipe.writer()), sibling(pipe.reader())) == [
        "made", [i * i for i in range(10)]]


@pytest.mark.timeout(30)
def test_channel_created_in_a_child_and_sent_to_the_parent():
    pipe = csp.Channel()

    @csp.process
    def maker(pipe_out):
        mine = csp.Channel()
        pipe_out(mine.reader())
        cout = mine.writer()
        for i in range(10):
            cout(("from child", i))
        cout(mine.writer())  # a writer end back up too

    csp.Spawn(maker(pipe.writer()))
    cin = pipe.reader()()
    got = [cin() for _ in range(10)]
    back_writer = cin()
    csp.shutdown()
    assert got == [("from child", i) for i in range(10)]
    # The writer end works in the parent although its maker has ended.
    mine_check = csp.Channel(buffer=1)
    assert isinstance(back_writer, csp.ChannelEndWrite)
    mine_check.writer()("ok")
    assert mine_check.reader()() == "ok"


@pytest.mark.timeout(30)
def test_buffered_channel_created_in_a_child_outlives_it():
    @csp.process
    def maker():
        mine = csp.Channel(buffer=3)
        cout = mine.writer()
        for i in range(3):
            cout(["kept", i])
        return mine.reader()  # a return value carries the end too

    [cin] = csp.Parallel(maker())
    assert [cin() for _ in range(3)] == [["kept", i] for i in range(3)]


@pytest.mark.timeout(30)
def test_end_moving_along_a_chain_of_os_processes():
    data = csp.Channel()
    links = csp.Channel() * 4

    @csp.process
    def relay(cin, cout):
        end = cin()
        cout(end)
        return os.getpid()

    @csp.process
    def first(cout, end):
        cout(end)

    @csp.process
    def last(cin):
        cout = cin()
        cout("travelled")

    procs = [first(links[0].writer(), data.writer())]
    procs += [relay(links[i].reader(), links[i + 1].writer()) for i in range(3)]
    procs += [last(links[3].reader()), receive_n(data.reader(), 1)]
    assert csp.Parallel(procs)[-1] == ["travelled"]


# --------------------------------------------------------------------------- exceptions in-process


@pytest.mark.timeout(30)
def test_exception_in_child_keeps_type_message_and_traceback_text():
    def failing_helper():
        raise CustomError("broken", 42)

    @csp.process
    def worker():
        failing_helper()

    with pytest.raises(CustomError) as info:
        csp.Parallel(worker())
    assert info.value.args == ("broken", 42)
    cause = info.value.__cause__
    assert cause is not None, "the child's traceback is not attached as __cause__"
    text = str(cause)
    assert "failing_helper" in text and "worker" in text and "broken" in text


class TwoArgError(Exception):
    """An exception whose __init__ needs two arguments: pickle can dump it, but
    loading it calls TwoArgError(message) and fails (a common user class)."""

    def __init__(self, a, b):
        super().__init__(f"{a}-{b}")
        self.a, self.b = a, b


@pytest.mark.timeout(30)
def test_exception_that_cannot_be_unpickled_still_reports_the_childs_message():
    @csp.process
    def worker():
        raise TwoArgError("left", "right")

    @csp.process
    def fine():
        return 1

    with pytest.raises(Exception) as info:
        csp.Parallel(worker(), fine())
    exc = info.value
    text = f"{type(exc).__name__}: {exc}\n{exc.__cause__}"
    # Same type and message if it can be rebuilt; at the least the child's
    # exception name and message, not an unrelated error from unpickling.
    assert "TwoArgError" in text and "left-right" in text, text
    assert csp.Parallel(fine()) == [1]


@pytest.mark.timeout(30)
def test_crash_inside_a_nested_parallel_reaches_main_and_grandchildren_end(tmp_path):
    pid_file = tmp_path / "grandchildren"

    @csp.process
    def grandchild(cin):
        with open(pid_file, "a") as f:
            f.write(f"{os.getpid()}\n")
        cin()

    @csp.process
    def middle():
        ch = csp.Channel()
        keep = ch.writer()  # noqa: F841

        @csp.process
        def crasher(cout):
            time.sleep(0.3)
            os._exit(5)  # its end is poisoned, which poisons out the grandchildren

        csp.Parallel(grandchild(ch.reader()), grandchild(ch.reader()), crasher(ch.writer()))

    with pytest.raises(csp.ProcessCrashed) as info:
        csp.Parallel(middle())
    assert "code 5" in str(info.value), str(info.value)
    grandchildren = [int(p) for p in pid_file.read_text().split()]
    assert len(grandchildren) == 2
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in grandchildren) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in grandchildren)


def test_process_crashed_is_an_exported_exception():
    assert issubclass(csp.ProcessCrashed, Exception)
    assert "ProcessCrashed" in csp.__all__


# --------------------------------------------------------------------------- faults (scripts)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", ["bytes", "numpy"])
def test_kill_9_writer_in_the_middle_of_a_64mib_send(kind):
    rounds = 5
    run = run_fault("kill_writer_midsend.py", kind, rounds, timeout=100)
    assert run.proc.returncode == 0, run.report()
    lines = run.lines
    assert not [l for l in lines if "CORRUPT" in l], run.report()
    crashed = [l for l in lines if "ProcessCrashed:" in l]
    assert len(crashed) == rounds, run.report()
    assert all("SIGKILL" in l and "writer" in l for l in crashed), run.report()
    assert sum(l.startswith("reader poisoned") for l in lines) == 2 * rounds, run.report()
    assert "after: [None, True]" in lines, run.report()


@pytest.mark.timeout(120)
def test_kill_9_reader_in_the_middle_of_a_receive():
    rounds = 5
    run = run_fault("kill_reader_midreceive.py", rounds, timeout=100)
    assert run.proc.returncode == 0, run.report()
    lines = run.lines
    assert not [l for l in lines if "CORRUPT" in l], run.report()
    crashed = [l for l in lines if "ProcessCrashed:" in l]
    assert len(crashed) == rounds, run.report()
    assert all("SIGKILL" in l and "reader" in l for l in crashed), run.report()
    assert sum(l.startswith("writer poisoned") for l in lines) == rounds, run.report()
    assert sum(l.startswith("reader poisoned b") for l in lines) == rounds, run.report()
    assert "after: [None, True]" in lines, run.report()


@pytest.mark.timeout(90)
def test_kill_9_of_a_process_waiting_in_an_alternation_poisons_its_peers():
    rounds = 3
    run = run_fault("kill_in_alternation.py", "args", rounds, timeout=60)
    assert run.proc.returncode == 0, run.report()
    lines = run.lines
    assert not [l for l in lines if "UNEXPECTED" in l], run.report()
    crashed = [l for l in lines if "ProcessCrashed:" in l]
    assert len(crashed) == rounds and all("SIGKILL" in l for l in crashed), run.report()
    for peer in ("reader of a", "alternation on b", "writer on f"):
        assert lines.count(f"peer poisoned: {peer}") == rounds, run.report()


@pytest.mark.timeout(90)
def test_kill_9_in_an_alternation_leaves_no_stale_offer_on_a_mobile_channel():
    rounds = 3
    run = run_fault("kill_in_alternation.py", "mobile", rounds, timeout=60)
    assert run.proc.returncode == 0, run.report()
    lines = run.lines
    assert not [l for l in lines if "UNEXPECTED" in l], run.report()
    assert sum("ProcessCrashed:" in l and "SIGKILL" in l for l in lines) == rounds, run.report()
    for r in range(rounds):
        assert f"round {r} delivered True" in lines, run.report()


@pytest.mark.timeout(60)
def test_kill_9_of_a_process_running_a_nested_parallel_then_deadlock_is_still_detected():
    """Run as a script: if the deadlock accounting is left off by the dead
    processes, the deadlock below hangs instead of raising DeadlockError."""
    run = run_fault("kill_middle.py", timeout=30)
    assert run.proc.returncode == 0, run.report()
    lines = run.lines
    assert not [l for l in lines if "UNEXPECTED" in l], run.report()
    assert sum("ProcessCrashed:" in l and "SIGKILL" in l for l in lines) == 1, run.report()
    assert "deadlock detected" in lines, run.report()
    assert len(run.child_pids()) == 4


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode, expected", [("ended", "deadlock detected"), ("blocked", "got late")])
def test_a_process_killed_while_it_waits_in_parallel_leaves_the_count_right(mode, expected):
    """ended: its children ended while it waited; the counts they left for its
    wake-up stayed, and the deadlock below hung (kill_middle.py hung so in about
    1 run in 15).  blocked: its own count, off while it waited, was taken away
    again when it was reaped, and a reader about to get a message raised
    DeadlockError."""
    run = run_fault("kill_stopped_parent.py", mode, timeout=30)
    assert run.proc.returncode == 0, run.report()
    lines = run.lines
    assert not [l for l in lines if "UNEXPECTED" in l], run.report()
    assert sum("ProcessCrashed:" in l and "SIGKILL" in l for l in lines) == 1, run.report()
    assert expected in lines, run.report()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode, says", [("exit3", "code 3"), ("exit0", "code 0 without returning")])
def test_os_exit_in_a_child_raises_process_crashed_naming_its_code(mode, says):
    """Status 0 without a return value is no return either: before, Parallel returned
    None for it, and its peers could hang."""
    run = run_fault("child_dies.py", mode, timeout=40)
    assert run.proc.returncode == 0, run.report()
    [crash] = [l for l in run.lines if l.startswith("ProcessCrashed:")] or [None]
    assert crash is not None, run.report()
    assert says in crash, crash
    assert "peer poisoned: reader" in run.lines and "peer poisoned: writer" in run.lines, run.report()


@pytest.mark.timeout(60)
def test_a_return_value_that_does_not_unpickle_waits_for_the_siblings():
    """It is raised once every process ended, as before a child's result was read
    when it was reaped (then it ended the wait at once, and the sibling was killed)."""
    result = run_script("""
        import time
        import pycsp.processes as csp

        class TwoArguments(Exception):
            def __init__(self, a, b):
                super().__init__(a)

        @csp.process
        def returns_it():
            return TwoArguments("x", "y")

        @csp.process
        def sibling():
            time.sleep(1.0)
            print("sibling finished", flush=True)

        try:
            csp.Parallel(returns_it(), sibling())
        except TypeError as error:
            print("TypeError", "TwoArguments" in str(error))
    """, timeout=40)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["sibling finished", "TypeError True"], result.stdout


@pytest.mark.timeout(60)
def test_a_lingering_child_reaped_while_its_result_is_collected_returned():
    """A child that spawned a process returns and lingers; it ends while collect()
    holds its result, read off the channel but not yet noted (a sleep widens that
    window), and the SIGCHLD reaper runs then: it must not take the child for one
    that left without a result (it did: ProcessCrashed, its ends poisoned)."""
    result = run_script("""
        import os, time
        import csp_ext
        import pycsp.processes as csp
        from pycsp.processes import _fork

        me, select = os.getpid(), csp_ext.select

        class SlowAfterARead:
            def __getattr__(self, name):
                return getattr(csp_ext, name)

            def select(self, guards, *args):
                got = select(guards, *args)
                if got[0] == 0 and os.getpid() == me:
                    time.sleep(1.0)  # the child ends meanwhile: its reaper runs in here
                return got

        _fork.csp_ext = SlowAfterARead()

        @csp.process
        def spawned():
            time.sleep(0.3)

        @csp.process
        def lingers(cout):
            csp.Spawn(spawned())
            return "its value"

        c = csp.Channel()
        keep = c.writer()
        print(csp.Parallel(lingers(c.writer())), c.statistics()["poisoned"])
    """, timeout=40)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["['its value'] False"], result.stdout + result.stderr


@pytest.mark.timeout(60)
def test_crash_in_c_raises_process_crashed_naming_sigsegv():
    run = run_fault("child_dies.py", "segv", timeout=40)
    assert run.proc.returncode == 0, run.report()
    [crash] = [l for l in run.lines if l.startswith("ProcessCrashed:")] or [None]
    assert crash is not None, run.report()
    assert "SIGSEGV" in crash, crash
    assert "peer poisoned: reader" in run.lines and "peer poisoned: writer" in run.lines, run.report()


@pytest.mark.timeout(60)
def test_exception_in_a_child_reaches_parallel_with_type_message_and_traceback():
    run = run_fault("child_dies.py", "exception", timeout=40)
    assert run.proc.returncode == 0, run.report()
    lines = run.lines
    assert "BoomError: ('boom 42', 7)" in lines, run.report()
    assert "same class: True" in lines, run.report()
    assert "cause has helper: True" in lines, run.report()
    assert "cause has victim: True" in lines, run.report()
    assert "cause has message: True" in lines, run.report()
    assert "peer poisoned: reader" in lines and "peer poisoned: writer" in lines, run.report()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("target", ["main_only", "process_group"])
def test_sigint_during_parallel_ends_every_child_and_raises_keyboard_interrupt(target):
    run = FaultRun("sigint_parallel.py")
    try:
        started = []
        deadline = time.monotonic() + 30
        while len(started) < 8 and time.monotonic() < deadline:
            line = run.readline()
            if not line:
                break
            if line.startswith("child "):
                started.append(line)
        assert len(started) == 8, f"the script did not start its processes\n{run.out}"
        time.sleep(0.3)  # let them block
        if target == "main_only":
            os.kill(run.proc.pid, signal.SIGINT)
        else:  # a terminal's Ctrl-C: the whole foreground process group
            os.killpg(run.proc.pid, signal.SIGINT)
        t0 = time.monotonic()
        run.finish(timeout=20)
        elapsed = time.monotonic() - t0
    finally:
        if run.proc.poll() is None:
            run._kill_all()
            run.proc.communicate()
    run.assert_clean()
    assert "caught KeyboardInterrupt" in run.lines, run.report()
    assert "UNEXPECTED Parallel returned" not in run.lines
    assert run.proc.returncode == -signal.SIGINT, run.report()  # ended by the re-raised KeyboardInterrupt
    assert "KeyboardInterrupt" in run.err
    assert elapsed < 20


@pytest.mark.timeout(150)
@pytest.mark.parametrize("buffer", [0, 4])
def test_processes_killed_while_holding_a_channel_lock_do_not_wedge_the_others(buffer):
    """Victims are killed with SIGKILL at random points of a tight write loop on a
    busy channel, many times; repeated runs make a kill inside the critical section
    likely.  Every run must end cleanly: all stable messages exactly, or (a victim
    died holding the lock, the channel is poisoned) every process poisoned out."""
    budget = time.monotonic() + 40
    runs = 0
    outcomes = {"exact": 0, "poisoned": 0}
    writers, m = 3, 100_000
    while runs < 4 or time.monotonic() < budget:
        # 200 idle input guards next to the victim's output guard: it holds the
        # channel lock for most of each select, so kills often land inside it.
        run = run_fault("kill_lock_holder.py", buffer, 1000, m, writers, 200, timeout=45)
        runs += 1
        lines = run.lines
        assert run.proc.returncode == 0, run.report()
        assert not [l for l in lines if "DEADLOCK" in l or "Parallel raised" in l], (
            f"run {runs} ({outcomes}): a process was left blocked on the channel\n" + run.report())
        assert not [l for l in lines if "CORRUPT" in l or "OUT OF ORDER" in l], run.report()
        if any(l.startswith(f"reader done {writers * m} stable messages") for l in lines):
            assert any(l.startswith(f"result {writers * m}") for l in lines), run.report()
            outcomes["exact"] += 1
        else:
            assert [l for l in lines if l.startswith("reader poisoned after")], run.report()
            outcomes["poisoned"] += 1
    print(f"{runs} runs: {outcomes}")


@pytest.mark.timeout(120)
def test_poison_racing_retire_from_many_os_processes_ends_cleanly():
    rounds, racers = 12, 16
    run = run_fault("poison_retire_race.py", rounds, racers, timeout=100)
    assert run.proc.returncode == 0, run.report()
    for r in range(rounds):
        assert f"round {r} ok poisoned {racers}" in run.lines, run.report()


# --------------------------------------------------------------------------- scale


@pytest.mark.stress
@pytest.mark.timeout(120)
def test_ring_of_500_os_processes_passes_a_token_exactly():
    n, laps = 500, 3
    ring = csp.Channel() * n

    @csp.process
    def node(i, cin, cout):
        # Every node adds 1 to the count and its index to the trail; node 0
        # starts each lap with a fresh trail and checks the one that came back.
        seen, trails_ok = [], True
        if i == 0:
            cout((0, [0]))
        for lap in range(laps):
            count, trail = cin()
            seen.append(count)
            if i == 0:
                trails_ok &= trail == list(range(n))
                if lap + 1 < laps:
                    cout((count + 1, [0]))
            else:
                cout((count + 1, trail + [i]))
        return os.getpid(), seen, trails_ok

    t0 = time.monotonic()
    results = csp.Parallel([node(i, ring[i - 1].reader(), ring[i].writer()) for i in range(n)])
    elapsed = time.monotonic() - t0
    assert len({pid for pid, _, _ in results}) == n
    for i, (_, seen, trails_ok) in enumerate(results):
        assert trails_ok
        if i == 0:
            assert seen == [(lap + 1) * n - 1 for lap in range(laps)]
        else:
            assert seen == [lap * n + i - 1 for lap in range(laps)], (i, seen)
    assert elapsed < 90


# --------------------------------------------------------------------------- deadlock across processes


@pytest.mark.timeout(30)
def test_two_os_processes_both_reading_raise_deadlock_error():
    a, b = csp.Channel(), csp.Channel()

    @csp.process
    def read_then_write(cin, cout):
        cout(cin())

    with pytest.raises(csp.DeadlockError):
        csp.Parallel(read_then_write(a.reader(), b.writer()), read_then_write(b.reader(), a.writer()))


@pytest.mark.timeout(30)
def test_deadlock_after_some_work_across_os_processes():
    ch = csp.Channel()

    @csp.process
    def producer(cout):
        for i in range(50):
            cout(i)
        return "produced"

    @csp.process
    def greedy(cin):
        return [cin() for _ in range(51)]  # one more than ever comes

    with pytest.raises(csp.DeadlockError):
        csp.Parallel(producer(ch.writer()), greedy(ch.reader()))


@pytest.mark.timeout(30)
def test_deadlock_inside_a_nested_parallel_reaches_the_main_program():
    @csp.process
    def stuck(cin):
        cin()

    @csp.process
    def outer():
        ch = csp.Channel()
        keep = ch.writer()  # noqa: F841 - a writer exists, yet nobody runs to write
        csp.Parallel(stuck(ch.reader()), stuck(ch.reader()))

    with pytest.raises(csp.DeadlockError):
        csp.Parallel(outer())


@pytest.mark.timeout(30)
def test_no_deadlock_while_another_os_process_computes_or_sleeps():
    ch = csp.Channel()

    @csp.process
    def slow_writer(cout):
        time.sleep(0.5)  # a plain sleep in a child: it is running, not blocked
        x = sum(range(2_000_000))
        cout(x)

    @csp.process
    def waiting_reader(cin):
        return cin()

    assert csp.Parallel(slow_writer(ch.writer()), waiting_reader(ch.reader()))[1] == sum(range(2_000_000))


@pytest.mark.timeout(30)
def test_no_deadlock_while_a_spawned_process_will_write_to_main():
    ch = csp.Channel()

    @csp.process
    def later(cout):
        time.sleep(0.5)
        cout("late")

    csp.Spawn(later(ch.writer()))
    assert ch.reader()() == "late"
    csp.shutdown()


@pytest.mark.timeout(30)
def test_usable_after_a_cross_process_deadlock():
    a = csp.Channel()

    @csp.process
    def stuck(cin):
        cin()

    with pytest.raises(csp.DeadlockError):
        csp.Parallel(stuck(a.reader()), stuck(a.reader()))
    ch = csp.Channel()
    assert csp.Parallel(send_all(ch.writer(), [1, 2]), receive_n(ch.reader(), 2))[1] == [1, 2]


FD_SCRIPT = """
import os, signal, gc
import pycsp.processes as csp

def fds():
    return len(os.listdir("/proc/self/fd"))

@csp.process
def victim(cin):
    os.kill(os.getpid(), signal.SIGKILL)

@csp.process
def peer(cout):
    try:
        while True:
            cout(b"x" * 1000)
    except csp.ChannelPoisonException:
        pass

ch = csp.Channel()
try:
    csp.Parallel(victim(+ch), peer(-ch))   # warm-up: first pidfds, arena
except csp.ProcessCrashed:
    pass
before = fds()
for _ in range(20):
    ch = csp.Channel()
    try:
        csp.Parallel(victim(+ch), peer(-ch))
    except csp.ProcessCrashed:
        pass
gc.collect()
print(before, fds())
"""


@pytest.mark.timeout(60)
def test_crashed_children_leak_no_file_descriptor():
    """A Parallel whose child is killed leaves no descriptor behind (pidfds closed)."""
    result = run_script(FD_SCRIPT, timeout=50)
    assert result.returncode == 0, result.stderr
    before, after = map(int, result.stdout.split())
    assert after == before


@pytest.mark.timeout(30)
def test_threads_of_a_child_stop_counting_when_it_ends():
    """Only the first of a child's records (same pid) was reaped; its
    threads' records kept counting and the next deadlock hung."""

    @csp.process
    def with_threads(n):
        ch = csp.Channel(buffer=n)
        cin, cout = ch.reader(), ch.writer()
        threads = [threading.Thread(target=lambda: (cout(1), time.sleep(60)), daemon=True)
                   for _ in range(n)]
        for t in threads:
            t.start()
        return sum(cin() for _ in range(n))

    assert csp.Parallel(with_threads(2)) == [2]
    assert_lone_reader_deadlocks(csp)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("runner", ["Spawn", "Parallel of a lingering child"])
def test_child_started_by_a_thread_outlives_the_thread(runner):
    """PR_SET_PDEATHSIG fires when the thread that forked a child ends: a
    child Spawned by a thread that then ended was killed (and, unreaped, left
    its reader hanging).  Such children are forked by a thread that lasts."""

    @csp.process
    def late_writer(cout):
        time.sleep(0.5)  # the thread that started it ends meanwhile
        cout("delivered")

    @csp.process
    def lingers(cout):
        csp.Spawn(late_writer(cout))  # this child lingers for it

    ch = csp.Channel()
    start = (lambda: csp.Spawn(late_writer(ch.writer()))) if runner == "Spawn" else (
        lambda: csp.Parallel(lingers(ch.writer())))
    # Ends once the child had time to ask for its parent-death signal.
    thread = threading.Thread(target=lambda: (start(), time.sleep(0.1)))
    thread.start()
    thread.join(10)
    assert ch.reader()() == "delivered"
    csp.shutdown()


@pytest.mark.timeout(30)
def test_killed_spawned_writer_poisons_its_ends_at_once():
    """A Spawned child killed while the main program waits on its channel:
    its ends are poisoned when it ends, not at shutdown() (the read hung)."""
    script = """
        import os, signal, time
        import pycsp.processes as csp

        @csp.process
        def writer(cout, started):
            started(os.getpid())
            time.sleep(60)
            cout("never")

        if __name__ == "__main__":
            ch, started = csp.Channel(), csp.Channel()
            cin, started_in = ch.reader(), started.reader()
            csp.Spawn(writer(ch.writer(), started.writer()))
            pid = started_in()
            os.kill(pid, signal.SIGKILL)
            try:
                cin()
            except csp.ChannelPoisonException:
                print("poisoned")
            csp.shutdown()
    """
    result = run_script(script, timeout=20)
    assert result.stdout == "poisoned\n", result.stdout + result.stderr
    assert "ProcessCrashed" in result.stderr or "killed by SIGKILL" in result.stderr, result.stderr


@pytest.mark.timeout(30)
def test_killed_lingering_child_poisons_the_ends_of_its_spawns():
    """A child lingering for its Spawn after Parallel returned is killed (its
    Spawn dies with it): the main program's read of the Spawn's channel ends."""
    script = """
        import os, signal, time
        import pycsp.processes as csp

        @csp.process
        def slow_writer(cout):
            time.sleep(60)
            cout("never")

        @csp.process
        def spawner(cout):
            csp.Spawn(slow_writer(cout))
            return os.getpid()

        if __name__ == "__main__":
            ch = csp.Channel()
            cin = ch.reader()
            [pid] = csp.Parallel(spawner(ch.writer()))
            os.kill(pid, signal.SIGKILL)
            try:
                cin()
            except csp.ChannelPoisonException:
                print("poisoned")
            csp.shutdown()
    """
    result = run_script(script, timeout=20)
    assert result.stdout == "poisoned\n", result.stdout + result.stderr


@pytest.mark.timeout(30)
def test_shutdown_reports_a_lingering_child_killed_like_a_failed_spawned_process():
    """One report for every failure shutdown() finds: a header naming the
    process, then its exception (was a line of its own)."""
    script = """
        import os, signal
        import pycsp.processes as csp

        @csp.process
        def reader(cin):
            cin()

        @csp.process
        def spawner(cin):
            csp.Spawn(reader(cin))
            return os.getpid()

        if __name__ == "__main__":
            ch = csp.Channel()
            keep = ch.writer()
            [pid] = csp.Parallel(spawner(ch.reader()))
            os.kill(pid, signal.SIGKILL)
            csp.shutdown()
            print("shutdown returned")
    """
    result = run_script(script, timeout=20)
    assert result.stdout == "shutdown returned\n", result.stdout + result.stderr
    header = re.search(r"^pycsp: process [0-9]+\.[0-9]+ \(spawner\) failed:$", result.stderr, re.M)
    assert header, result.stderr
    assert ("ProcessCrashed: process spawner (pid " in result.stderr and
            "was killed by SIGKILL while waiting for the processes it spawned" in result.stderr), \
        result.stderr
