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
