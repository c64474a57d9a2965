"""Shared fixtures: one suite, parametrised over the pycsp backends.

Every test that takes the ``csp`` fixture runs once per backend; the id in the
report is the backend name (``test_rendezvous[threads]``).

Over the network (issue #16), not in the default run:

    PYCSP_TEST_BACKENDS=net python -m pytest tests -m net
    PYCSP_TEST_BACKENDS=net-curve python -m pytest tests -m net

(one of them per run: a program's links have one security) runs the shared tests
with pycsp.net, every channel homed in one of two programs started for the
session on 127.0.0.1 (``net_backend.py``); ``-m net`` leaves out the tests that do
not take a backend.  A test marked ``local_only(reason)`` does not run there (the
reason says why it cannot), nor does one that takes only the backend's name: it
starts a program of its own by that name, which no home serves.
"""
import importlib
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from net_backend import NET_BACKENDS

# A run started in the background by a non-interactive shell (a CI job, `cmd &`)
# inherits SIGINT ignored, and so would every program a test starts: the tests
# of Ctrl-C need the default handler back (a handler resets to the default in
# a child's exec; an ignored signal stays ignored).
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# Backends the suite runs against (PYCSP_TEST_BACKENDS narrows it, e.g. for the
# sanitizer run); every test passes on each of them unchanged.
BACKENDS = os.environ.get("PYCSP_TEST_BACKENDS", "threads,greenlets,processes").split(",")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# Backends a separate program is started on by name (``pycsp.<name>``, --backend):
# a net backend is the module that the ``csp`` fixture makes, homes and all.
PROGRAM_BACKENDS = [b for b in BACKENDS if b not in NET_BACKENDS]

# Backends where a message is the object itself (a reference), not a copy.
REFERENCE_BACKENDS = [b for b in BACKENDS if b in ("threads", "greenlets")]

# Backends whose messages are pickled copies (OS processes, over the network or not).
COPYING_BACKENDS = ("processes",) + NET_BACKENDS

if all(variant in BACKENDS for variant in NET_BACKENDS):
    raise pytest.UsageError("PYCSP_TEST_BACKENDS: run net and net-curve in two runs (a "
                            "program's links have one security: pycsp.net.configure)")


# Set by .ci/sanitize: gcc 12's libasan has no fork handler, so a child forked
# while another thread holds ASan's allocator lock hangs at its first malloc.
# A thread that a previous test joined may still be exiting (freeing its state)
# at the OS level; waiting for it before each test leaves only the forks that a
# test makes beside its own threads exposed.
QUIET_BEFORE_FORK = os.environ.get("PYCSP_TEST_QUIET_BEFORE_FORK") == "1"


def _os_thread_count():
    return len(os.listdir("/proc/self/task"))


# Threads expected to stay (e.g. faulthandler's watchdog): a count still above
# it after the wait becomes the new expectation, so it is paid for once.
_settled_thread_count = [_os_thread_count()]


@pytest.fixture(autouse=QUIET_BEFORE_FORK)
def _previous_threads_exited():
    # Until no thread has ended for 2 s (at most 30 s): the 1,200 threads of a
    # threads test may take longer than that to exit on a loaded machine, and
    # a fixed 2 s would take those still exiting for threads that stay.
    started = last_change = time.monotonic()
    count = _os_thread_count()
    while count > _settled_thread_count[0]:
        now = time.monotonic()
        if now - last_change > 2.0 or now - started > 30.0:
            _settled_thread_count[0] = count
            break
        time.sleep(0.002)
        fewer = _os_thread_count()
        if fewer < count:
            last_change = time.monotonic()
        count = fewer
    yield


def pytest_generate_tests(metafunc):
    """Parametrise ``backend`` over BACKENDS, or over REFERENCE_BACKENDS for tests
    marked ``by_reference`` (they watch the writer's own object)."""
    if "backend" in metafunc.fixturenames:
        names = BACKENDS
        if metafunc.definition.get_closest_marker("by_reference"):
            names = REFERENCE_BACKENDS
        if (metafunc.definition.get_closest_marker("local_only")
                or "csp" not in metafunc.fixturenames):  # the name alone makes no homes
            names = [b for b in names if b not in NET_BACKENDS]
        if metafunc.definition.get_closest_marker("net_only"):
            names = [b for b in names if b in NET_BACKENDS]
        metafunc.parametrize("backend", names, ids=str)


def pytest_collection_modifyitems(items):
    """Mark the tests that run on a net backend ``net``: ``-m net`` selects them."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("backend") in NET_BACKENDS:
            item.add_marker(pytest.mark.net)


@pytest.fixture
def csp(backend, request):
    """The backend module, used as a user would: ``import pycsp.<name> as csp``."""
    if backend in NET_BACKENDS:
        return request.getfixturevalue("net_backend")
    return importlib.import_module(f"pycsp.{backend}")


@pytest.fixture(scope="session")
def net_backend(tmp_path_factory):
    """pycsp.net, with every channel homed in one of two programs of the session."""
    import net_backend as net

    backend = next(b for b in BACKENDS if b in NET_BACKENDS)
    if backend == "net":
        where, key_file = "none", None
    else:
        key_file = new_key_file(tmp_path_factory.mktemp("net-keys"))
        where = key_file
    net.configure_this_program(backend, key_file)
    homes = net.Homes(where, _child_env())
    yield net.backend_module(backend, homes)
    homes.stop()


def by_backend(backend, **sizes):
    """Pick a size for this backend: ``by_backend(b, default=10_000, processes=200)``
    (the net backends take ``net=``, else the processes size).

    OS processes cost far more than threads or greenlets; stress sizes scale down
    for them rather than skip.
    """
    if backend in NET_BACKENDS:
        return sizes.get("net", sizes.get("processes", sizes["default"]))
    return sizes.get(backend, sizes["default"])


def stream_processes(csp):
    """``(produce, consume)`` for the backend: ``produce(cout, items)`` writes
    the items then retires; ``consume(cin)`` returns what it read until the
    channel retired."""

    @csp.process
    def produce(cout, items):
        for item in items:
            cout(item)
        csp.retire(cout)

    @csp.process
    def consume(cin):
        got = []
        try:
            while True:
                got.append(cin())
        except csp.ChannelRetireException:
            return got

    return produce, consume


def make_nap(csp):
    """An @io sleep for the backend: a blocking OS call a CSP process may make."""

    @csp.io
    def nap(seconds):
        time.sleep(seconds)

    return nap


def assert_lone_reader_deadlocks(csp):
    """A Parallel whose only process reads a channel that nobody will write
    raises DeadlockError (deadlock detection still works at this point)."""

    @csp.process
    def lonely(cin):
        cin()

    ch = csp.Channel()
    keep = ch.writer()  # joined, never used
    with pytest.raises(csp.DeadlockError):
        csp.Parallel(lonely(ch.reader()))
    del keep


def _child_env():
    """Environment for a child Python: it imports pycsp from where this run does."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))
    return env


def run_script(source, *, timeout=30, env=None, args=()):
    """Run ``source`` (dedented) as a fresh Python program; return CompletedProcess.

    stdout and stderr are captured as text. A hang is reported as a test failure
    (with whatever output the child produced) instead of a stuck run.
    """
    full_env = _child_env()
    full_env["PYTHONFAULTHANDLER"] = "1"
    if env:
        full_env.update(env)
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(source), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
        cwd=ROOT,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(
            f"script did not finish within {timeout}s\n--- stdout ---\n{out}\n--- stderr ---\n{err}"
        )
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def start_script(source, *, env=None):
    """Start ``source`` as a fresh Python program and return the Popen (text pipes).

    The caller must wait for it / kill it; use ``finish_script``.
    """
    full_env = _child_env()
    full_env["PYTHONUNBUFFERED"] = "1"
    if env:
        full_env.update(env)
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(source)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
        cwd=ROOT,
    )


def ctrl_c_once_started(source, started, *, timeout):
    """Run ``source``; once it has printed ``started`` lines (its processes are
    running) and had 0.3 s to block, send it SIGINT and wait up to ``timeout``
    seconds.  Returns (proc, out, err, seconds from the signal to its exit)."""
    proc = start_script(source)
    try:
        lines = []
        while len(lines) < started:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.strip())
        assert len(lines) == started, (
            f"script did not start its processes: {lines}\n{proc.stderr.read()}")
        time.sleep(0.3)  # let them block
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = finish_script(proc, timeout=timeout)
        return proc, out, err, time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def finish_script(proc, timeout):
    """Wait up to ``timeout`` seconds for ``proc``; on a hang kill it and fail."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(
            f"script did not exit within {timeout}s\n--- stdout ---\n{out}\n--- stderr ---\n{err}"
        )
    return out, err


def new_key_file(folder):
    from net_support import new_key_file

    return new_key_file(folder)


@pytest.fixture
def key_file(tmp_path):
    """A pycsp.net key file made by the documented command, for a test's programs."""
    from net_support import new_key_file

    return new_key_file(tmp_path)
