"""Error paths of the C core: allocation failures, dead lock owners, lost
references.  Faults are injected with csp_ext._fail_next(site, n) (test only);
a program that could hang or crash runs in a subprocess."""
import gc
import os
import weakref

import pytest

from conftest import BACKENDS, run_script

csp_ext = pytest.importorskip("csp_ext")

greenlets_only = pytest.mark.skipif(
    "greenlets" not in BACKENDS or not getattr(csp_ext, "HAVE_GREENLET_SCHEDULER", 0),
    reason="greenlets backend not under test")
processes_only = pytest.mark.skipif("processes" not in BACKENDS,
                                    reason="processes backend not under test")


# --------------------------------------------------------------------------- greenlets


@greenlets_only
@pytest.mark.timeout(40)
def test_green_wake_survives_failed_run_queue_push():
    """A reader woken while the run queue cannot grow is not dropped."""
    result = run_script("""
        import csp_ext
        import pycsp.greenlets as csp

        @csp.process
        def writer(cout, n):
            for i in range(n):
                cout(i)

        @csp.process
        def reader(cin, n, out):
            out.append(sum(cin() for _ in range(n)))

        ch = csp.Channel()
        out = []
        csp_ext._fail_next("runq", 50)
        csp.Parallel(writer(-ch, 200), reader(+ch, 200, out))
        print(out[0])
    """, timeout=20)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(sum(range(200)))]


@greenlets_only
@pytest.mark.timeout(40)
def test_green_timer_expiry_survives_failed_run_queue_push():
    """A timed-out select whose task cannot be queued still returns."""
    result = run_script("""
        import csp_ext
        import pycsp.greenlets as csp

        @csp.process
        def sleeper(i, out):
            g = csp.TimeoutGuard(0.01 * (i % 3))
            for _ in range(5):
                csp.AltSelect(g)
            out.append(i)

        out = []
        csp_ext._fail_next("runq", 40)
        csp.Parallel([sleeper(i, out) for i in range(20)])
        print(len(out))
    """, timeout=20)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["20"]


@greenlets_only
@pytest.mark.timeout(40)
def test_green_signal_forward_survives_failed_run_queue_push():
    """Ctrl-C while a process greenlet sleeps reaches the main program as
    KeyboardInterrupt even when the root task cannot be queued (was: the
    blocking call returned -1 with no exception and the root was lost)."""
    result = run_script("""
        import os, signal, threading
        import csp_ext
        import pycsp.greenlets as csp

        @csp.process
        def waiter(seen):
            csp_ext._fail_next("runq", 1)
            try:
                csp.AltSelect(csp.TimeoutGuard(8))
            except BaseException as e:
                seen.append(type(e).__name__)
                raise

        seen = []
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
        try:
            csp.Parallel(waiter(seen))
        except KeyboardInterrupt:
            print("interrupted", *seen)
    """, timeout=20)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "interrupted"
    assert "SystemError" not in result.stdout + result.stderr


# --------------------------------------------------------------------------- processes


@processes_only
@pytest.mark.timeout(40)
def test_shm_ensure_keeps_no_half_built_arena():
    """A lock that fails to initialise leaves no arena, fd or mapping behind,
    and the next attempt builds a working one."""
    result = run_script("""
        import os
        import csp_ext

        def arena_fds():
            n = 0
            for fd in os.listdir("/proc/self/fd"):
                try:
                    n += "pycsp-arena" in os.readlink(f"/proc/self/fd/{fd}")
                except OSError:
                    pass
            return n

        def arena_maps():
            with open("/proc/self/maps") as f:
                return sum("pycsp-arena" in line for line in f)

        csp_ext._fail_next("lock_init", 1)
        try:
            csp_ext.shm_init()
        except OSError as e:
            print("failed", e.errno is not None)
        print(csp_ext.shm_stats() is None, arena_fds(), arena_maps())
        csp_ext.shm_init()
        print(csp_ext.shm_stats()["waiters"], arena_fds(), arena_maps())
    """, timeout=20)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["failed True", "True 0 0", "1 1 1"], result.stdout


DIE_HOLDING_LOCK = """
    import os, sys
    import csp_ext
    import pycsp.processes as csp

    csp_ext.shm_init()
    pid = os.fork()
    if pid == 0:
        csp_ext._shm_die_holding_lock(sys.argv[1])
    os.waitpid(pid, 0)
    # The next locker finds the owner dead and must not trust what it left.
    stats = csp_ext.shm_stats()
    ch = csp.Channel(buffer=100)
    w, r = ch.writer(), ch.reader()
    for i in range(100):
        w(i)
    print(sum(r() for _ in range(100)), stats["waiters"] >= 1)
"""


@processes_only
@pytest.mark.timeout(60)
@pytest.mark.parametrize("what", ["none", "free_list", "registry"])
def test_arena_lock_owner_died(what):
    """A process that died holding the arena lock in the middle of an update
    leaves the allocator and the waiter registry usable by the next locker."""
    result = run_script(DIE_HOLDING_LOCK, timeout=20, args=(what,))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(sum(range(100))), "True"]
