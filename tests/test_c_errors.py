"""Error paths of the C core: allocation failures, dead lock owners, lost
references.  Faults are injected with csp_ext._fail_next(site, n) (test only);
a program that could hang or crash runs in a subprocess."""
import gc
import os
import shutil
import weakref

import pytest

from conftest import BACKENDS, run_script
from net_backend import STATISTICS_ARE_THE_HOMES

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


DIE_HOLDING_LOCK_UNDER_SIGNALS = """
    import os, signal, time
    import csp_ext

    csp_ext.shm_init()
    pid = os.fork()
    if pid == 0:
        csp_ext._shm_die_holding_lock("none")
    os.waitpid(pid, 0)
    # A timer every 0.1 ms: each wait for the lock is cut short by a signal
    # long before its 2 ms slice ends.
    signal.signal(signal.SIGALRM, lambda *a: None)
    signal.setitimer(signal.ITIMER_REAL, 0.0001, 0.0001)
    start = time.monotonic()
    stats = csp_ext.shm_stats()                # takes the arena lock
    took = time.monotonic() - start
    signal.setitimer(signal.ITIMER_REAL, 0)
    # 4 ms here; 14 s when the owner's silence was counted in undisturbed waits
    print("recovered", stats["waiters"] >= 0, took < 5)
"""


@processes_only
@pytest.mark.timeout(60)
def test_arena_lock_of_a_dead_owner_is_recovered_while_signals_keep_coming():
    """The owner's silence is timed by the clock, not by waits that end
    undisturbed: a taker interrupted by a signal every 0.1 ms still recovers
    the lock of an owner that died holding it, in milliseconds."""
    result = run_script(DIE_HOLDING_LOCK_UNDER_SIGNALS, timeout=40)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["recovered", "True", "True"]


OTHER_PID_NAMESPACE = """
    import os, subprocess, sys
    import csp_ext

    csp_ext.shm_init()
    fd = csp_ext.shm_arena_fd()
    attach = "import csp_ext, sys; csp_ext.shm_attach(int(sys.argv[1])); print('attached')"
    for prefix in ([], ["unshare", "--pid", "--fork", "--mount-proc"]):
        r = subprocess.run(prefix + [sys.executable, "-c", attach, str(fd)], pass_fds=(fd,),
                           capture_output=True, text=True, timeout=20)
        print(r.stdout.strip() or r.stderr.strip().splitlines()[-1])
"""


@processes_only
@pytest.mark.timeout(60)
@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                    reason="a new PID namespace needs root and unshare(1)")
def test_a_process_of_another_pid_namespace_is_refused_the_arena():
    """Locks and claims name threads and processes by id: a process that sees
    other ids (another PID namespace) is refused at attach, with a reason,
    instead of taking a live owner for a dead one."""
    result = run_script(OTHER_PID_NAMESPACE, timeout=40)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "attached", lines
    assert "another PID namespace" in lines[1], lines


LIVE_LOCK_OWNER = """
    import os, signal, sys, time
    import csp_ext

    csp_ext.shm_init()
    r, w = os.pipe()
    owner = os.fork()
    if owner == 0:
        csp_ext._shm_hold_arena_lock(0.5, w)   # a byte once held, one before release
        os._exit(0)
    assert os.read(r, 1) == b"x"              # the owner holds the arena lock now
    if sys.argv[1] == "stopped":
        os.kill(owner, signal.SIGSTOP)
    # The lock is taken with the GIL held: contend from another process.
    taker = os.fork()
    if taker == 0:
        csp_ext.shm_stats()                    # takes the arena lock
        os.set_blocking(r, False)
        try:
            os._exit(0 if os.read(r, 1) == b"x" else 3)   # the owner's byte before its release
        except BlockingIOError:
            os._exit(4)
    time.sleep(0.3)
    done, status = os.waitpid(taker, os.WNOHANG)
    blocked = done == 0
    if sys.argv[1] == "stopped":
        os.kill(owner, signal.SIGCONT)
    if blocked:
        _, status = os.waitpid(taker, 0)
    os.waitpid(owner, 0)
    print(blocked, os.waitstatus_to_exitcode(status))
"""


@processes_only
@pytest.mark.timeout(60)
@pytest.mark.parametrize("owner", ["sleeping", "stopped"])
def test_arena_lock_of_a_live_owner_is_waited_for(owner):
    """A lock whose owner lives (sleeping, or stopped by SIGSTOP) is not taken
    from it however long it holds it."""
    result = run_script(LIVE_LOCK_OWNER, timeout=30, args=(owner,))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "0"], result.stdout


FORGED_LOCK_OWNER = """
    import os, sys, time
    import csp_ext

    def starttime(pid):
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])

    csp_ext.shm_init()
    owner = os.fork()
    if owner == 0:
        time.sleep(60)
        os._exit(0)
    # The lock looks held by the child (alive) or by a thread that had the
    # child's id but started at another time (the id was reused since).
    shift = 0 if sys.argv[1] == "alive" else 1
    csp_ext._shm_forge_arena_lock(owner, (starttime(owner) + shift) % 2**32)
    # The lock is taken with the GIL held: contend from another process.
    taker = os.fork()
    if taker == 0:
        csp_ext.shm_stats()
        os._exit(0)
    time.sleep(0.3)
    done, status = os.waitpid(taker, os.WNOHANG)
    blocked = done == 0
    os.kill(owner, 9)
    os.waitpid(owner, 0)
    if blocked:
        _, status = os.waitpid(taker, 0)
    import pycsp.processes as csp   # (its SIGCHLD handler would have reaped ours)
    ch = csp.Channel(buffer=10)
    w, r = ch.writer(), ch.reader()
    for i in range(10):
        w(float(i))                            # blocks from the recovered allocator
    print(blocked, os.waitstatus_to_exitcode(status), sum(r() for _ in range(10)))
"""


@processes_only
@pytest.mark.timeout(60)
@pytest.mark.parametrize("owner", ["alive", "id-reused"])
def test_arena_lock_owner_is_known_by_thread_id_and_start_time(owner):
    """A lock held by a live thread is waited for until that thread dies; one
    whose owner's thread id now belongs to a thread started later is
    recovered at once (the owner died and its id was reused)."""
    result = run_script(FORGED_LOCK_OWNER, timeout=30, args=(owner,))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(owner == "alive"), "0", "45.0"], result.stdout


@processes_only
@pytest.mark.timeout(30)
@pytest.mark.parametrize("through", ["name", "end"])
def test_shared_channel_in_a_reference_cycle_is_collected(through):
    """A cycle through a shared channel (its name holding the channel or one of
    its ends) is collected, and its block in the arena freed."""
    import pycsp.processes as csp

    gc.collect()
    before = csp_ext.shm_stats()["blocks_in_use"]
    refs = []
    for _ in range(20):
        name = []
        ch = csp.Channel(name=name, buffer=2)
        end = ch.reader() if through == "end" else ch
        name.append(end)
        ch.writer()("buffered")
        refs.append(weakref.ref(ch))
        del ch, end, name
    gc.collect()
    assert [r() for r in refs] == [None] * 20
    assert csp_ext.shm_stats()["blocks_in_use"] == before


# --------------------------------------------------------------------------- the two copies of the rules


@pytest.mark.timeout(20)
def test_retired_end_sent_over_a_channel_stays_retired(csp):
    """Threads and greenlets pass the end object itself; processes pass a copy,
    which must be as retired as the end it stands for."""
    ch = csp.Channel(buffer=1)
    r, r2, w = ch.reader(), ch.reader(), ch.writer()
    carrier = csp.Channel(buffer=1)
    r.retire()
    carrier.writer()(r)
    got = carrier.reader()()
    assert got.retired
    with pytest.raises(csp.ChannelRetireException):
        got()
    w("still open")  # r2 still reads
    assert r2() == "still open"


@pytest.mark.timeout(20)
@pytest.mark.parametrize("first", ["skip", "input"])
def test_select_commits_a_ready_guard_before_a_later_retired_end(csp, first):
    """Guards are looked at in priority order: a ready guard before a retired
    end commits; the retired end raises only when it is reached."""
    ch = csp.Channel(buffer=1)
    ch.writer()("ready")
    cin = ch.reader()
    gone = csp.Channel().reader()
    gone.retire()
    guard = csp.SkipGuard() if first == "skip" else csp.InputGuard(cin)
    _, msg = csp.PriSelect(guard, csp.InputGuard(gone))
    assert msg == (None if first == "skip" else "ready")
    with pytest.raises(csp.ChannelRetireException):
        csp.PriSelect(csp.InputGuard(gone), guard)


@pytest.mark.timeout(20)
@pytest.mark.local_only(STATISTICS_ARE_THE_HOMES)
def test_retire_after_poison_and_twice(csp):
    """Retire after poison changes nothing (poison wins), and so does a second
    retire of the same end."""
    ch = csp.Channel(buffer=1)
    r, w = ch.reader(), ch.writer()
    ch.poison()
    w.retire()
    w.retire()
    r.retire()
    r2, w2 = ch.reader(), ch.writer()
    with pytest.raises(csp.ChannelPoisonException):
        r2()
    with pytest.raises(csp.ChannelPoisonException):
        w2("x")
    stats = ch.statistics()
    assert (stats["readers"], stats["writers"]) == (1, 1)
