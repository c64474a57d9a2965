"""pycsp.parallel: PyCSP 0.9.2's module of that name (issue #12, item 4).

``@process`` runs a thread and ``@multiprocess`` an OS process, mixed in one
Parallel, Sequence or Spawn on the shared-memory channels; the names 0.9.2
exported; the network-facing ones raise until pycsp.net; 0.9.2's own example
programs (tests/data/pycsp092/) run unchanged.

pycsp.parallel is a backend of its own, so these tests do not take the
``csp`` fixture.  The cases that fork from a thread run in a fresh Python.
"""
import os
import re
import subprocess
import sys
import threading
import time
from fractions import Fraction

import numpy
import pytest

import csp_ext
import pycsp.parallel as par
import pycsp.processes
import pycsp.threads
from conftest import ROOT, _child_env, ctrl_c_once_started, run_script
from test_processes import REPORT_CHILDREN_LEFT, SAY

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "pycsp092")

# pycsp.parallel.__all__ of PyCSP 0.9.2 (pycsp/parallel/__init__.py), as it was.
NAMES_0_9_2 = [
    "Skip", "SkipGuard", "Timeout", "TimeoutGuard", "InputGuard", "OutputGuard", "choice",
    "Alternation", "FairSelect", "PriSelect", "AltSelect", "Channel", "retire", "poison",
    "Process", "process", "MultiProcess", "multiprocess", "ClusterProcess", "clusterprocess",
    "SSHProcess", "sshprocess", "Sequence", "Parallel", "Spawn", "current_process_id",
    "shutdown", "ChannelRetireException", "ChannelPoisonException", "ChannelSocketException",
    "ChannelConnectException", "ChannelBindException", "ChannelLostException", "InfoException",
    "FatalException", "io", "Io", "Configuration", "SOCKETS_CONNECT_TIMEOUT",
    "SOCKETS_CONNECT_RETRY_DELAY", "SOCKETS_BIND_TIMEOUT", "SOCKETS_BIND_RETRY_DELAY",
    "PYCSP_PORT", "PYCSP_HOST", "SOCKETS_STRICT_MODE", "version",
]


# -------------------------------------------------------------------------- processes of both kinds
# At module level: a MultiProcess's function pickles by name under the spawn start.

@par.process
def where():
    return os.getpid(), threading.get_ident()


@par.multiprocess
def where_os():
    return os.getpid(), threading.get_ident()


@par.process
def producer(cout, n):
    for i in range(n):
        cout(i)
    par.retire(cout)


@par.multiprocess
def doubler(cin, cout):
    while True:
        cout(2 * cin())


@par.process
def summer(cin):
    total = 0
    try:
        while True:
            total += cin()
    except par.ChannelRetireException:
        return total


@par.multiprocess
def summer_os(cin):
    total = 0
    try:
        while True:
            total += cin()
    except par.ChannelRetireException:
        return total


@par.process
def forward(cin, cout):
    while True:
        cout(cin())


@par.multiprocess
def forward_os(cin, cout):
    while True:
        cout(cin())


@par.process
def read_one(cin):
    return cin()


@par.multiprocess
def read_one_os(cin):
    return cin()


@par.process
def write_all(cout, items):
    for item in items:
        cout(item)


@par.multiprocess
def write_all_os(cout, items):
    for item in items:
        cout(item)


def test_every_name_of_0_9_2_is_exported():
    missing = [name for name in NAMES_0_9_2 if not hasattr(par, name)]
    assert missing == []
    assert set(NAMES_0_9_2) <= set(par.__all__)
    namespace = {}
    exec("from pycsp.parallel import *", namespace)
    assert set(NAMES_0_9_2) <= set(namespace)


def test_version_has_0_9_2s_shape():
    assert par.version == pycsp.threads.version[:3] + ("parallel",)
    assert all(isinstance(part, int) for part in par.version[:3])


def test_exceptions_are_the_shared_ones_with_0_9_2s_hierarchy():
    assert par.ChannelPoisonException is pycsp.processes.ChannelPoisonException
    assert par.DeadlockError is pycsp.threads.DeadlockError
    assert par.ProcessCrashed is pycsp.processes.ProcessCrashed
    for name in ("ChannelConnectException", "ChannelBindException", "ChannelLostException"):
        assert issubclass(getattr(par, name), par.ChannelSocketException)
    # A lost channel ends a process as poison does (its ends are poisoned).
    assert issubclass(par.ChannelLostException, par.ChannelPoisonException)
    exc = par.ChannelConnectException(("example.org", 9999), "could not connect")
    assert exc.addr == ("example.org", 9999) and exc.msg == "could not connect"
    assert "could not connect" in str(exc) and "9999" in str(exc)
    assert par.InfoException("use retire").msg == "use retire"


def test_channel_is_the_shared_memory_channel_with_0_9_2s_signature():
    ch = par.Channel("a", 2)
    assert isinstance(ch, csp_ext.ShmChannel)
    assert isinstance(ch, par.Channel) and isinstance(csp_ext.ShmChannel(), par.Channel)
    assert not isinstance(pycsp.threads.Channel(), par.Channel)
    assert (ch.name, ch.buffer) == ("a", 2)
    assert par.Channel("a").name == "a"  # a name may be used again (0.9.2 refused it)
    assert isinstance(par.Channel(buffer=1).reader(), par.ChannelEndRead)
    assert isinstance(+par.Channel(), par.ChannelEndRead)
    assert isinstance(-par.Channel(), par.ChannelEndWrite)
    assert len(par.Channel() * 3) == 3


@pytest.mark.timeout(30)
def test_process_is_a_thread_and_multiprocess_an_os_process():
    me = os.getpid()
    results = par.Parallel(where(), [where_os(), par.MultiProcess(where_os.__wrapped__)],
                           par.Process(where.__wrapped__))
    (t1_pid, t1), (o1_pid, _), (o2_pid, _), (t2_pid, t2) = results
    assert t1_pid == t2_pid == me
    assert t1 != t2 and threading.get_ident() not in (t1, t2)
    assert me not in (o1_pid, o2_pid) and o1_pid != o2_pid
    assert isinstance(where_os(), par.MultiProcess) and isinstance(where_os(), par.Process)
    assert not isinstance(where(), par.MultiProcess)


@pytest.mark.timeout(30)
def test_pipeline_of_threads_and_os_processes_returns_values_and_retires():
    """A 0.9.2-style program: a thread feeds an OS process that feeds a thread
    and an OS process; retire travels down the pipeline through both kinds."""
    a, b, c = par.Channel(), par.Channel(), par.Channel()

    @par.multiprocess
    def split(cin, cout_thread, cout_os):
        while True:
            value = cin()
            (cout_thread if value % 2 else cout_os)(value)

    results = par.Parallel(
        producer(-a, 200),
        doubler(+a, -b),
        split(+b, -c, -c),
        summer(+c),
        summer_os(+c),
    )
    assert results[:3] == [None, None, None]
    assert results[3] + results[4] == 2 * sum(range(200))


@pytest.mark.timeout(30)
@pytest.mark.parametrize("how", ["poison", "retire"])
def test_poison_and_retire_propagate_through_both_kinds(how):
    """thread -> OS -> thread -> OS -> thread: the last reads three messages
    and poisons or retires its end; every process before it ends."""
    chans = par.Channel() * 5

    @par.process
    def source(cout):
        i = 0
        while True:
            cout(i)
            i += 1

    @par.process
    def sink(cin):
        got = [cin() for _ in range(3)]
        getattr(par, how)(cin)
        return got

    results = par.Parallel(
        source(-chans[0]),
        forward_os(+chans[0], -chans[1]),
        forward(+chans[1], -chans[2]),
        forward_os(+chans[2], -chans[3]),
        sink(+chans[3]),
    )
    assert results == [None, None, None, None, [0, 1, 2]]


@pytest.mark.timeout(30)
def test_thread_alternates_over_an_os_process_and_a_thread():
    from_os, from_thread, stop = par.Channel(), par.Channel(), par.Channel()

    @par.process
    def chooser(os_in, thread_in, n):
        got = []
        alt = par.Alternation([{os_in: None, thread_in: None}])
        while len(got) < n:
            guard, msg = alt.select()
            got.append(("os" if guard is os_in else "thread", msg))
        return got

    got = par.Parallel(
        chooser(+from_os, +from_thread, 20),
        write_all_os(-from_os, list(range(10))),
        write_all(-from_thread, list(range(100, 110))),
    )[0]
    assert sorted(msg for kind, msg in got if kind == "os") == list(range(10))
    assert sorted(msg for kind, msg in got if kind == "thread") == list(range(100, 110))
    del stop


@par.multiprocess
def offer_to_both(thread_out, os_out, n):
    """An OS process offering each message to whichever reader is ready."""
    sent = {"thread": 0, "os": 0}
    for i in range(n):
        guard, _ = par.AltSelect(par.OutputGuard(thread_out, i), par.OutputGuard(os_out, i))
        sent["thread" if guard is thread_out else "os"] += 1
    par.retire(thread_out, os_out)
    return sent


@pytest.mark.timeout(30)
def test_os_process_alternates_output_to_a_thread_and_an_os_process():
    to_thread, to_os = par.Channel(), par.Channel()
    sent, by_thread, by_os = par.Parallel(
        offer_to_both(-to_thread, -to_os, 40), summer(+to_thread), summer_os(+to_os))
    assert sent["thread"] + sent["os"] == 40
    assert by_thread + by_os == sum(range(40))


@pytest.mark.timeout(30)
def test_alternation_between_a_thread_and_an_os_process_on_both_ends():
    """Each side offers output and input at once, each commits one guard at a time."""
    ab, ba = par.Channel(), par.Channel()

    @par.process
    def side_thread(out, cin, n):
        sent = received = 0
        while sent < n or received < n:
            guards = ([par.OutputGuard(out, sent)] if sent < n else []) + \
                     ([par.InputGuard(cin)] if received < n else [])
            guard, _ = par.PriSelect(*guards)
            if guard is out:
                sent += 1
            else:
                received += 1
        return sent, received

    side_os = par.multiprocess(side_thread.__wrapped__)
    assert par.Parallel(side_thread(-ab, +ba, 30), side_os(-ba, +ab, 30)) == [(30, 30)] * 2


@pytest.mark.timeout(30)
def test_spawn_of_both_kinds_and_shutdown():
    ch = par.Channel()
    par.Spawn(write_all(-ch, ["thread"] * 3), write_all_os(-ch, ["os"] * 3))
    cin = +ch
    got = sorted(cin() for _ in range(6))
    par.shutdown()
    assert got == ["os"] * 3 + ["thread"] * 3


@pytest.mark.timeout(30)
def test_spawned_thread_spawns_an_os_process():
    ch = par.Channel()

    @par.multiprocess
    def late_writer_os(cout):
        time.sleep(0.5)  # the thread that spawned it has ended by now
        cout("from the spawned OS process")

    @par.process
    def spawner(cout):
        par.Spawn(late_writer_os(cout))
        time.sleep(0.1)  # ends once the child had time to ask for its parent-death signal

    par.Spawn(spawner(-ch))
    assert (+ch)() == "from the spawned OS process"
    par.shutdown()


@pytest.mark.timeout(30)
def test_shutdown_in_a_thread_is_refused_and_in_an_os_process_waits_for_its_spawns():
    """As PyCSP 0.9.2 refused it in a process: a Spawned thread would wait
    for itself (it hung).  An OS process has Spawns of its own to wait for."""

    @par.process
    def calls_shutdown():
        try:
            par.shutdown()
        except par.InfoException as exc:
            return str(exc)

    @par.multiprocess
    def spawns_then_shuts_down(cout):
        par.Spawn(write_all(cout, ["spawned by the OS process"]))
        par.shutdown()
        return "after its shutdown"

    par.Spawn(calls_shutdown())
    assert "would wait for every Spawned process" in par.Parallel(calls_shutdown())[0]
    ch = par.Channel(buffer=1)
    assert par.Parallel(spawns_then_shuts_down(-ch)) == ["after its shutdown"]
    assert (+ch)() == "spawned by the OS process"
    par.shutdown()


@pytest.mark.timeout(30)
def test_sequence_runs_both_kinds_one_after_the_other():
    ch = par.Channel(buffer=10)

    @par.multiprocess
    def stamp_os(cout, label):
        cout((label, time.monotonic()))
        time.sleep(0.05)

    @par.process
    def stamp(cout, label):
        cout((label, time.monotonic()))
        time.sleep(0.05)

    par.Sequence(stamp(-ch, "t1"), stamp_os(-ch, "o1"), [stamp(-ch, "t2"), stamp_os(-ch, "o2")])
    cin = +ch
    got = [cin() for _ in range(4)]
    assert [label for label, _ in got] == ["t1", "o1", "t2", "o2"]
    stamps = [when for _, when in got]
    assert all(later - earlier >= 0.04 for earlier, later in zip(stamps, stamps[1:]))


@pytest.mark.timeout(30)
def test_multiprocess_runs_a_parallel_of_threads_inside():
    @par.multiprocess
    def host():
        ch = par.Channel()
        inner = par.Parallel(producer(-ch, 100), summer(+ch), where(), where())
        return os.getpid(), inner

    @par.process
    def host_thread():
        return par.Parallel(host())[0]

    pid, (_, total, (pid1, t1), (pid2, t2)) = par.Parallel(host_thread())[0]
    assert pid != os.getpid() and pid1 == pid2 == pid and t1 != t2
    assert total == sum(range(100))


@par.multiprocess
def run_what_comes(cin):
    """Runs the processes it receives; returns its pid and theirs."""
    return os.getpid(), [pid for pid, _ in par.Parallel(cin())]


@pytest.mark.timeout(30)
def test_a_process_sent_in_a_message_keeps_its_kind():
    ch = par.Channel()

    @par.process
    def send(cout):
        cout([where(), where_os()])

    _, (receiver, (thread_pid, os_pid)) = par.Parallel(send(-ch), run_what_comes(+ch))
    assert thread_pid == receiver and os_pid not in (receiver, os.getpid())


@pytest.mark.timeout(30)
def test_current_process_ids_differ_across_both_kinds():
    @par.process
    def my_id():
        return par.current_process_id()

    ids = par.Parallel(my_id(), my_id(), par.multiprocess(my_id.__wrapped__)()) + [
        par.current_process_id()]
    assert len(set(ids)) == 4


# --------------------------------------------------------------------------- failures and deadlock

class Boom(Exception):
    pass


@pytest.mark.timeout(30)
def test_exception_in_a_thread_poisons_its_os_peer_and_is_raised():
    ch = par.Channel()

    @par.process
    def fails(cout):
        raise Boom("in a thread")

    with pytest.raises(Boom, match="in a thread"):
        par.Parallel(fails(-ch), read_one_os(+ch))


@par.multiprocess
def fails_os(cout):
    raise Boom("in an OS process")


@pytest.mark.timeout(30)
def test_exception_in_an_os_process_poisons_its_thread_peer_and_is_raised():
    ch = par.Channel()
    with pytest.raises(Boom, match="in an OS process") as excinfo:
        par.Parallel(fails_os(-ch), read_one(+ch))
    assert "fails_os" in str(excinfo.value.__cause__)  # the child's traceback


@pytest.mark.timeout(30)
def test_crashed_os_process_is_reported_and_its_thread_peer_stopped():
    ch = par.Channel()

    @par.multiprocess
    def dies(cout):
        os._exit(3)

    with pytest.raises(par.ProcessCrashed, match="code 3"):
        par.Parallel(dies(-ch), read_one(+ch))


@pytest.mark.timeout(30)
@pytest.mark.parametrize("first", ["thread", "os"])
def test_the_failure_first_in_time_is_raised_whichever_kind(first):
    @par.process
    def fail_after(seconds, label):
        time.sleep(seconds)
        raise Boom(label)

    fail_after_os = par.multiprocess(fail_after.__wrapped__)
    thread_delay, os_delay = (0.0, 0.5) if first == "thread" else (0.5, 0.0)
    with pytest.raises(Boom) as excinfo:
        par.Parallel(fail_after_os(os_delay, "os"), fail_after(thread_delay, "thread"))
    assert str(excinfo.value) == first


@pytest.mark.timeout(30)
def test_deadlock_across_a_thread_and_an_os_process():
    a, b = par.Channel(), par.Channel()
    keep = (-a, -b)  # joined, never written
    with pytest.raises(par.DeadlockError):
        par.Parallel(read_one(+a), read_one_os(+b))
    del keep


@pytest.mark.timeout(30)
def test_deadlock_of_a_cycle_through_both_kinds():
    """A thread and an OS process each wait to read from the other first."""
    a, b = par.Channel(), par.Channel()

    @par.process
    def read_then_write(cin, cout):
        cout(cin())

    read_then_write_os = par.multiprocess(read_then_write.__wrapped__)
    with pytest.raises(par.DeadlockError):
        par.Parallel(read_then_write(+a, -b), read_then_write_os(+b, -a))


@pytest.mark.timeout(30)
def test_deadlock_of_threads_alone_and_accounting_intact_after():
    a, b = par.Channel(), par.Channel()
    keep = (-a, -b)
    with pytest.raises(par.DeadlockError):
        par.Parallel(read_one(+a), read_one(+a))
    # Nothing is left counted as running: the next deadlock is found too, and
    # a network that is not deadlocked runs.
    with pytest.raises(par.DeadlockError):
        par.Parallel(read_one_os(+b))
    ch = par.Channel()
    assert par.Parallel(producer(-ch, 10), summer_os(+ch)) == [None, 45]
    del keep


@pytest.mark.timeout(30)
def test_deadlock_through_a_plug_n_play_network_run_by_a_thread():
    """Pairs, run as a thread, runs its inner network on pycsp.parallel (as
    threads counted in the same accounting): with nobody writing its input,
    Parallel raises.  (On pycsp.threads' own Parallel it hung.)"""
    from pycsp.common.plugNplay import Pairs

    a, b = par.Channel(), par.Channel()
    unused_writer = -a
    with pytest.raises(par.DeadlockError):
        par.Parallel(Pairs(+a, -b), read_one_os(+b))
    del unused_writer


@pytest.mark.timeout(30)
def test_busy_thread_is_no_deadlock():
    """A thread that computes (or sleeps) counts as running: its OS peer
    waits for it without DeadlockError."""
    ch = par.Channel()

    @par.process
    def late_writer(cout):
        time.sleep(0.3)
        cout("late")

    assert par.Parallel(late_writer(-ch), read_one_os(+ch)) == [None, "late"]


@pytest.mark.timeout(30)
def test_main_blocked_with_a_spawned_thread_is_a_deadlock_once_it_blocks():
    a, b = par.Channel(), par.Channel()
    keep = -b
    par.Spawn(read_one(+a))  # never written: blocks
    with pytest.raises(par.DeadlockError):
        (+b)()
    a.poison()
    par.shutdown()
    del keep


@pytest.mark.timeout(30)
def test_thread_the_os_refuses_undoes_the_start(monkeypatch):
    """The second thread cannot start: the OS process is killed, the first
    thread is poisoned out, and nothing stays counted as running (the next
    deadlock is still found)."""
    import _thread

    real_start = _thread.start_new_thread
    starts = []

    def start_one_then_refuse(function, args):
        starts.append(args)
        if len(starts) > 1:
            raise RuntimeError("can't start new thread")
        return real_start(function, args)

    a, b = par.Channel(), par.Channel()
    keep = (-a, -b)
    monkeypatch.setattr(_thread, "start_new_thread", start_one_then_refuse)
    with pytest.raises(RuntimeError, match="could not start thread 2 of 2"):
        par.Parallel(read_one(+a), read_one(+a), read_one_os(+b))
    monkeypatch.undo()
    assert len(starts) == 2
    c = par.Channel()
    keep_c = -c
    with pytest.raises(par.DeadlockError):
        par.Parallel(read_one(+c), read_one_os(+c))
    del keep, keep_c


# --------------------------------------------------------------------------- P * n

@pytest.mark.timeout(30)
@pytest.mark.parametrize("n", [2, 2.0, numpy.int64(2), Fraction(4, 2)], ids=repr)
def test_process_times_a_whole_number_keeps_its_kind(n):
    os_copies = where_os() * n
    thread_copies = n * where()
    assert len(os_copies) == len(thread_copies) == 2
    assert all(type(p) is par.MultiProcess for p in os_copies)
    assert all(type(p) is par.Process for p in thread_copies)
    results = par.Parallel(os_copies, thread_copies)
    assert len({pid for pid, _ in results[:2]} | {os.getpid()}) == 3
    assert {pid for pid, _ in results[2:]} == {os.getpid()}


@pytest.mark.timeout(30)
def test_0_9_2s_float_count_divides_the_work():
    """ParallelReturn_MCPi.py does ``(P/2) * work1(cnt)`` with P = 20."""
    P = 20
    procs = (P / 2) * where() + (P / 2) * where_os()
    assert len(procs) == 20 and sum(isinstance(p, par.MultiProcess) for p in procs) == 10


@pytest.mark.parametrize("n", [2.5, True, "2", float("nan")], ids=repr)
def test_process_times_what_is_no_whole_number_raises(n):
    with pytest.raises(TypeError, match="whole number"):
        where_os() * n


# --------------------------------------------------------------------------- network-facing names

def _remote(x):
    return x


@pytest.mark.parametrize("make, address", [
    (lambda: par.multiprocess(pycsp_host="example.org", pycsp_port=9998)(_remote)(1),
     ("example.org", 9998)),
    (lambda: par.MultiProcess(_remote, 1, pycsp_port=9998), ("", 9998)),
], ids=["multiprocess(pycsp_port=)", "MultiProcess(pycsp_port=)"])
def test_a_listening_address_is_kept_by_copies_and_pickles(make, address):
    """Made, not started (tests/test_net_multiprocess.py runs them)."""
    import pickle

    made = make()
    assert made.listen_at == address and made.args == (1,)
    copies = made * 2
    assert [p.listen_at for p in copies] == [address, address]
    again = pickle.loads(pickle.dumps(made))
    assert type(again) is par.MultiProcess and again.listen_at == address


@pytest.mark.parametrize("make", [
    lambda: par.sshprocess(_remote)(1),
    lambda: par.sshprocess(ssh_host="example.org", ssh_user="me")(_remote)(1),
    lambda: par.SSHProcess(_remote, 1, ssh_host="example.org"),
], ids=["sshprocess", "sshprocess(...)", "SSHProcess"])
def test_ssh_processes_are_pycsp_nets(make):
    """Made, not started (tests/test_net_sshprocess.py runs them on other hosts)."""
    import pycsp.net

    made = make()
    assert isinstance(made, pycsp.net.SSHProcess) and made.args == (1,)


@pytest.mark.parametrize("make", [
    lambda: par.clusterprocess(_remote)(1),
    lambda: par.clusterprocess(cluster_nodefile="$PYCSP_TEST_NO_SUCH_VARIABLE")(_remote)(1),
    lambda: par.ClusterProcess(_remote, 1),
], ids=["clusterprocess", "clusterprocess(...)", "ClusterProcess"])
def test_a_cluster_process_outside_an_allocation_says_what_is_missing(make, monkeypatch):
    for name in ("PBS_NODEFILE", "SLURM_JOB_NODELIST", "SLURM_NODELIST"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="is not set"):
        make()


def test_channel_connect_needs_the_name_it_is_homed_under():
    with pytest.raises(ValueError, match="needs the name"):
        par.Channel(connect=("127.0.0.1", 9))


def test_unknown_settings_of_a_network_decorator_are_refused():
    with pytest.raises(TypeError, match="unknown settings"):
        par.sshprocess(ssh_hots="example.org")


def test_defining_a_network_process_is_not_yet_an_error():
    """A module that only defines one still imports (it may pick at run time)."""

    @par.sshprocess(ssh_host="example.org")
    def remote(x):
        return x

    @par.clusterprocess
    def on_cluster(x):
        return x

    assert remote.__name__ == "remote" and on_cluster.__wrapped__(3) == 3


@pytest.mark.timeout(30)
def test_listening_address_left_empty_is_accepted():
    local = par.multiprocess(pycsp_host="", pycsp_port=None)(where.__wrapped__)
    direct = par.MultiProcess(where.__wrapped__, pycsp_host="", pycsp_port=0)
    pids = {pid for pid, _ in par.Parallel(local(), direct)}
    assert os.getpid() not in pids and len(pids) == 2


def test_configuration_keeps_0_9_2s_settings():
    conf = par.Configuration()
    assert conf is par.Configuration()
    assert conf.get(par.SOCKETS_CONNECT_TIMEOUT) == 2
    previous = conf.get(par.PYCSP_PORT)
    conf.set(par.PYCSP_PORT, 7000)
    try:
        assert par.Configuration().get(par.PYCSP_PORT) == 7000
    finally:
        conf.set(par.PYCSP_PORT, previous)
    with pytest.raises(KeyError):
        conf.set("no such setting", 1)


def test_io_and_io_class_are_there_and_inert():
    @par.io
    def plain(x):
        return x + 1

    assert plain(1) == 2
    assert isinstance(par.Io(), par.Io)


# --------------------------------------------------------------------------- in a fresh Python

MIXED_CTRL_C_SCRIPT = """
import pycsp.parallel as par
""" + SAY + """
@par.process
def blocked(cin, i):
    say("thread blocked", i)
    try:
        cin()
    except par.ChannelPoisonException:
        say("thread poisoned out")
        raise

@par.multiprocess
def blocked_os(cin, i):
    say("os blocked", i)
    cin()

@par.process
def ticker(cin):
    # A pending TimeoutGuard: the network is waiting, not deadlocked.
    say("ticker")
    while True:
        par.AltSelect(par.InputGuard(cin), par.TimeoutGuard(0.05))

ch, side = par.Channel(), par.Channel()
keep = (-ch, -side)
try:
    par.Parallel([blocked(+ch, i) for i in range(2)], [blocked_os(+ch, i) for i in range(2)],
                 ticker(+side))
except KeyboardInterrupt:
    say("caught KeyboardInterrupt")
""" + REPORT_CHILDREN_LEFT.format()


@pytest.mark.timeout(40)
def test_ctrl_c_stops_threads_and_os_processes_of_a_parallel():
    proc, out, err, _ = ctrl_c_once_started(MIXED_CTRL_C_SCRIPT, 5, timeout=15)
    assert proc.returncode == 0, err
    lines = out.split("\n")
    assert "caught KeyboardInterrupt" in lines
    assert lines.count("thread poisoned out") == 2, out + err
    assert "children left: 0" in lines, out + err


@pytest.mark.timeout(90)
def test_spawn_start_method_mixes_threads_and_spawned_processes(tmp_path):
    script = tmp_path / "mixed_spawn.py"
    script.write_text("""
import os
import pycsp.parallel as par

@par.process
def producer(cout, n):
    for i in range(n):
        cout(i)
    par.retire(cout)

@par.multiprocess
def summer_os(cin):
    total = 0
    try:
        while True:
            total += cin()
    except par.ChannelRetireException:
        return total, os.getpid()

if __name__ == "__main__":
    ch = par.Channel()
    (_, (total, pid)) = par.Parallel(producer(-ch, 100), summer_os(+ch))
    print("RESULT", total, pid != os.getpid())
""")
    env = _child_env()
    env["PYCSP_START_METHOD"] = "spawn"
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=80, env=env, cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "RESULT 4950 True" in done.stdout.splitlines(), done.stdout + done.stderr


@pytest.mark.timeout(60)
def test_a_thread_forks_os_processes_and_threads_run_meanwhile():
    """Two threads each run a Parallel of OS processes, at once, while a
    third thread keeps starting threads: forks from threads of a busy process."""
    done = run_script("""
        import pycsp.parallel as par

        @par.multiprocess
        def square_os(x):
            return x * x

        @par.process
        def nothing():
            return None

        @par.process
        def forks(k):
            return sum(sum(par.Parallel([square_os(i) for i in range(3)])) for _ in range(k))

        @par.process
        def starts_threads(k):
            for _ in range(k):
                par.Parallel(nothing() * 4)

        print(par.Parallel(forks(5), forks(5), starts_threads(20)))
    """, timeout=50)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[25, 25, None]", done.stdout + done.stderr


# --------------------------------------------------------------------------- 0.9.2's own programs

def run_0_9_2_example(name, timeout=60):
    """Run tests/data/pycsp092/<name> with argument ``parallel``, from its own
    directory (as the examples were run); return its stdout; fail on a
    non-zero exit or anything on stderr."""
    env = _child_env()
    # This checkout first (pycsp_import.py puts ".." before it: tests/, no pycsp there).
    env["PYTHONPATH"] = os.pathsep.join([ROOT, env["PYTHONPATH"]])
    env.pop("PYCSP_START_METHOD", None)
    try:
        done = subprocess.run([sys.executable, name, "parallel"], capture_output=True,
                              text=True, timeout=timeout, env=env, cwd=DATA)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{name} did not end within {timeout} s\n{exc.stdout}\n{exc.stderr}")
    assert done.returncode == 0 and done.stderr == "", (
        f"{name}: exit {done.returncode}\n--- stdout ---\n{done.stdout}\n"
        f"--- stderr ---\n{done.stderr}")
    lines = done.stdout.splitlines()
    assert lines[0] == f"Using version {par.version}", lines[0]
    return lines[1:]


COMMSTIME_RUN = [
    r"----------- run \d+/10 -------------",
    r"Running commstime test",
    r"DT = \d+\.\d+\.",
    r"Time per ch : \d+\.\d+/\(4\*1000\) = \d+\.\d+ s = \d+\.\d+ us",
    r"consumer done, posioning channel",
]


@pytest.mark.timeout(90)
@pytest.mark.parametrize("name", ["Commstime_Multiprocesses.py",
                                  "parallel_nesting_multiprocess_in_process.py"])
def test_0_9_2_commstime_of_multiprocesses(name):
    lines = run_0_9_2_example(name)
    assert len(lines) == 10 * len(COMMSTIME_RUN), lines
    for i, line in enumerate(lines):
        assert re.fullmatch(COMMSTIME_RUN[i % len(COMMSTIME_RUN)], line), (i, line)
    assert [line for line in lines if line.startswith("-")] == [
        f"----------- run {i}/10 -------------" for i in range(1, 11)]


@pytest.mark.timeout(90)
def test_0_9_2_parallel_return_monte_carlo_pi():
    lines = run_0_9_2_example("ParallelReturn_MCPi.py")
    assert len(lines) == 2, lines
    returned = re.fullmatch(r"Processes return \[(.*)\]", lines[0])
    values = [float(v) for v in returned.group(1).split(", ")]
    assert len(values) == 20 and all(abs(v - 3.1416) < 0.05 for v in values), values
    result = float(re.fullmatch(r"Result: (\d+\.\d+)", lines[1]).group(1))
    assert abs(result - 3.1416) < 0.01


@pytest.mark.timeout(90)
def test_0_9_2_mobile_channel_ends_with_spawned_services():
    lines = run_0_9_2_example("parallel_leaking_mobile_channelend_garbage_collection_pre_0.9.2.py")
    assert lines[-1] == "Parallel returned..."
    # Its threads print() the text and the newline in two writes: lines may
    # interleave (they did in 0.9.2 too), so count what was printed.
    text = "\n".join(lines[:-1])
    assert text.count("192.168.0.12") == 10
    assert text.count("Bye") == 10
    assert text.count("Major bye") == 1
    assert text.count("Simulated HTTP Server got:  Hello?") == 100


@pytest.mark.timeout(60)
def test_0_9_2_fibonacci_with_plug_n_play():
    assert run_0_9_2_example("Fibonacci.py") == [
        "0", "1", "1", "2", "3", "5", "8", "13", "21", "34", "55", "89", "144", "233", "377",
        "610", "987", "1597", "2584", "4181"]


@pytest.mark.timeout(60)
def test_0_9_2_termination_race_with_retire():
    lines = run_0_9_2_example("TerminationRaceRetire.py")
    assert sorted(lines) == sorted(f"Hello world ({i})" for i in range(10) for _ in range(5))
