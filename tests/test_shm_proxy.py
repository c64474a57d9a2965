"""Proxy offers (csp_ext._ShmProxy, shared/proxy.c): where a party of another
program that alternates over a channel of this arena stands in its queues.

A proxy offer never commits: a local party that pops it fails to claim it,
unlinks it as a stale offer and pokes the proxy; the proxy's owner (pycsp.net's
agent) then makes an ordinary non-blocking attempt on the channel.  Here the
test plays the agent, in one program: threads for the concurrent parts, an OS
process where the poke must cross processes."""
import gc
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from conftest import BACKENDS, _child_env, run_script

csp_ext = pytest.importorskip("csp_ext")

pytestmark = pytest.mark.skipif("processes" not in BACKENDS,
                                reason="processes backend not under test")

if "processes" in BACKENDS:
    import pycsp.processes as csp


def wait_until(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.002)


def stats(ch):
    return ch.statistics()


def read_now(reader):
    """The agent's attempt: commit with a waiting writer, or skip (None)."""
    chosen, msg = csp_ext.select((csp_ext.InputGuard(reader), csp_ext.SkipGuard()))
    return msg if chosen == 0 else None


def write_now(writer, msg):
    chosen, _ = csp_ext.select((csp_ext.OutputGuard(writer, msg), csp_ext.SkipGuard()))
    return chosen == 0


@pytest.fixture
def proxy():
    p = csp_ext._ShmProxy()
    yield p
    p.close()


def started(target, *args):
    t = threading.Thread(target=target, args=args, daemon=True)
    t.start()
    return t


# ---- 1, 2: rendezvous channels, both directions ---------------------------

@pytest.mark.timeout(30)
def test_a_writer_that_finds_a_read_arm_pokes_and_still_commits_with_the_attempt(proxy):
    ch = csp.Channel("rv")
    assert proxy.arm(ch, False) is False
    assert stats(ch)["proxy_readers"] == 1
    assert proxy.arm(ch, False) is False          # linked once, not twice
    assert stats(ch)["proxy_readers"] == 1
    writer = started(ch.writer(), "x")
    assert proxy.wait(2) is True
    # The writer popped the proxy offer (stale for it) and queued its own.
    s = stats(ch)
    assert s["proxy_readers"] == 0 and s["blocked_writers"] == 1, s
    assert writer.is_alive()
    assert proxy.arm(ch, False) is True            # a live writer is queued
    assert stats(ch)["proxy_readers"] == 0         # ready: nothing linked
    assert read_now(ch.reader()) == "x"
    writer.join(5)
    assert not writer.is_alive()


@pytest.mark.timeout(30)
def test_a_reader_that_finds_a_write_arm_pokes_and_still_commits_with_the_attempt(proxy):
    ch = csp.Channel("rv")
    got = []
    assert proxy.arm(ch, True) is False
    assert stats(ch)["proxy_writers"] == 1
    reader = started(lambda r: got.append(r()), ch.reader())
    assert proxy.wait(2) is True
    s = stats(ch)
    assert s["proxy_writers"] == 0 and s["blocked_readers"] == 1, s
    assert proxy.arm(ch, True) is True
    assert write_now(ch.writer(), {"k": 1})
    reader.join(5)
    assert got == [{"k": 1}]


@pytest.mark.timeout(30)
def test_a_local_alternation_pops_the_proxy_and_commits_later_with_the_attempt(proxy):
    ch, other = csp.Channel("alt"), csp.Channel("other")
    got = []

    def alternate(a, b):
        got.append(csp.AltSelect(csp.InputGuard(a), csp.InputGuard(b)))

    assert proxy.arm(ch, True) is False
    reader = started(alternate, ch.reader(), other.reader())
    assert proxy.wait(2) is True
    wait_until(lambda: stats(other)["blocked_readers"] == 1)
    assert stats(ch)["blocked_readers"] == 1
    assert proxy.arm(ch, True) is True
    assert write_now(ch.writer(), 7)
    reader.join(5)
    assert len(got) == 1 and got[0][1] == 7
    assert stats(other)["blocked_readers"] == 0    # the alternation withdrew its other offer


@pytest.mark.timeout(30)
def test_a_live_offer_is_one_whose_waiter_waits_not_another_proxys(proxy):
    """Another proxy's offer on the other side does not make the channel ready."""
    ch = csp.Channel()
    other = csp_ext._ShmProxy()
    try:
        assert other.arm(ch, False) is False
        assert proxy.arm(ch, True) is False
        s = stats(ch)
        assert (s["proxy_readers"], s["proxy_writers"]) == (1, 1), s
        assert not other.wait(0) and not proxy.wait(0)
    finally:
        other.close()
    assert stats(ch)["proxy_readers"] == 0 and stats(ch)["proxy_writers"] == 1


# ---- 3: buffered channels ---------------------------------------------------

@pytest.mark.timeout(30)
def test_buffered_read_arm_is_poked_by_a_write_into_the_buffer(proxy):
    ch = csp.Channel(buffer=2)
    assert proxy.arm(ch, False) is False
    ch.writer()("m")                                # buffered: does not block
    assert proxy.wait(0) is True
    assert proxy.arm(ch, False) is True            # a message is buffered
    assert stats(ch)["proxy_readers"] == 0
    assert read_now(ch.reader()) == "m"
    assert proxy.arm(ch, False) is False           # empty again


@pytest.mark.timeout(30)
def test_buffered_write_arm_is_poked_by_a_read_from_a_full_buffer(proxy):
    ch = csp.Channel(buffer=2)
    w = ch.writer()
    w(1)
    w(2)
    assert proxy.arm(ch, True) is False
    assert stats(ch)["proxy_writers"] == 1
    assert ch.reader()() == 1
    assert proxy.wait(0) is True
    assert proxy.arm(ch, True) is True             # room in the buffer
    assert write_now(w, 3)
    r = ch.reader()
    assert [r(), r()] == [2, 3]


# ---- 4: poison and retire ---------------------------------------------------

@pytest.mark.timeout(30)
@pytest.mark.parametrize("is_write", [False, True], ids=["read-arm", "write-arm"])
def test_poison_pokes_and_the_channel_is_ready(proxy, is_write):
    ch = csp.Channel()
    assert proxy.arm(ch, is_write) is False
    ch.poison()
    assert proxy.wait(2) is True
    assert proxy.arm(ch, is_write) is True
    with pytest.raises(csp.ChannelPoisonException):
        read_now(ch.reader()) if not is_write else write_now(ch.writer(), 0)


@pytest.mark.timeout(30)
def test_the_last_writer_retiring_pokes_a_read_arm(proxy):
    ch = csp.Channel()
    w = ch.writer()
    assert proxy.arm(ch, False) is False
    w.retire()
    assert proxy.wait(2) is True
    assert proxy.arm(ch, False) is True
    with pytest.raises(csp.ChannelRetireException):
        read_now(ch.reader())


@pytest.mark.timeout(30)
def test_the_last_reader_retiring_pokes_a_write_arm(proxy):
    ch = csp.Channel()
    r = ch.reader()
    assert proxy.arm(ch, True) is False
    r.retire()
    assert proxy.wait(2) is True
    assert proxy.arm(ch, True) is True


# ---- 5: disarm ----------------------------------------------------------------

@pytest.mark.timeout(30)
def test_after_disarm_a_writer_does_not_poke(proxy):
    ch = csp.Channel()
    assert proxy.arm(ch, False) is False
    proxy.disarm(ch, False)
    assert stats(ch)["proxy_readers"] == 0
    proxy.disarm(ch, False)                         # not linked: nothing to do
    proxy.disarm(csp.Channel(), True)               # never used: nothing to do
    writer = started(ch.writer(), 1)
    wait_until(lambda: stats(ch)["blocked_writers"] == 1)
    assert proxy.wait(0.2) is False
    assert ch.reader()() == 1
    writer.join(5)


# ---- 6: waiting -------------------------------------------------------------

@pytest.mark.timeout(30)
def test_wait_times_out_and_a_poke_is_consumed_once(proxy):
    t0 = time.monotonic()
    assert proxy.wait(0.2) is False
    assert time.monotonic() - t0 >= 0.2
    proxy.poke()
    proxy.poke()
    assert proxy.wait(0) is True
    assert proxy.wait(0) is False
    with pytest.raises(ValueError):
        proxy.wait(-1)


@pytest.mark.timeout(30)
def test_poke_from_another_thread_wakes_a_wait_without_timeout(proxy):
    poker = threading.Timer(0.2, proxy.poke)
    poker.start()
    t0 = time.monotonic()
    assert proxy.wait(None) is True
    assert 0.15 < time.monotonic() - t0 < 5
    poker.join()


@pytest.mark.timeout(30)
def test_a_wait_in_another_thread_is_woken_by_a_poke_from_the_main_thread(proxy):
    woke = []
    waiter = started(lambda: woke.append(proxy.wait(10)))
    time.sleep(0.1)
    proxy.poke()
    waiter.join(5)
    assert woke == [True]


@pytest.mark.timeout(30)
def test_a_write_from_another_os_process_pokes(proxy):
    ch = csp.Channel()

    @csp.process
    def remote_writer(cout):
        cout("from a child")

    assert proxy.arm(ch, False) is False
    runner = started(csp.Parallel, remote_writer(ch.writer()))
    assert proxy.wait(10) is True
    assert proxy.arm(ch, False) is True
    assert read_now(ch.reader()) == "from a child"
    runner.join(10)
    assert not runner.is_alive()


@pytest.mark.timeout(30)
def test_ctrl_c_interrupts_a_wait_without_timeout():
    script = textwrap.dedent("""
        import pycsp.processes, csp_ext
        proxy = csp_ext._ShmProxy()
        print("waiting", flush=True)
        proxy.wait(None)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_child_env())
    try:
        assert proc.stdout.readline().strip() == "waiting"
        time.sleep(0.3)                              # well inside the futex wait
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode != 0
    assert "KeyboardInterrupt" in err, err


@pytest.mark.timeout(30)
def test_a_signal_handler_runs_during_a_wait_and_the_wait_goes_on():
    result = run_script("""
        import os, signal, threading, time
        import pycsp.processes, csp_ext
        proxy = csp_ext._ShmProxy()
        seen = []
        signal.signal(signal.SIGUSR1, lambda *a: seen.append(time.monotonic()))
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGUSR1)).start()
        threading.Timer(0.5, proxy.poke).start()
        print(proxy.wait(5), len(seen))
    """, timeout=20)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "1"]


# ---- 7: a proxy offer never commits -----------------------------------------

@pytest.mark.timeout(60)
@pytest.mark.parametrize("buffer", [0, 3], ids=["rendezvous", "buffered"])
def test_messages_pass_exactly_once_while_proxies_are_armed_again_and_again(proxy, buffer):
    """The writer is another OS process, so that it meets the proxy offers
    while this process arms them (a thread would wait for the GIL)."""
    ch = csp.Channel(buffer=buffer)
    n = 3000
    got = []
    done = threading.Event()

    @csp.process
    def write(cout):
        for i in range(n):
            cout(i)

    def read(r):
        for _ in range(n):
            got.append(r())
        done.set()

    writer = started(csp.Parallel, write(ch.writer()))
    reader = started(read, ch.reader())
    arms = pokes = 0
    while not done.is_set():
        for is_write in (False, True):
            proxy.arm(ch, is_write)
            arms += 1
        pokes += proxy.wait(0.0005)
    writer.join(10)
    reader.join(10)
    assert got == list(range(n))
    assert pokes > 0, arms               # the proxy was in the way, and was popped
    proxy.disarm(ch, False)
    proxy.disarm(ch, True)
    s = stats(ch)
    assert s["proxy_readers"] == s["proxy_writers"] == s["blocked_readers"] == 0, s


@pytest.mark.timeout(30)
def test_recovering_a_channel_whose_lock_holder_died_pokes_and_leaves_the_proxy_alone():
    """Recovery poisons the channel and drops its queues: it claims the proxy
    offer (which fails and pokes) and never finishes or frees the record."""
    result = run_script("""
        import os
        import pycsp.processes as csp, csp_ext
        ch, other = csp.Channel(), csp.Channel()
        p = csp_ext._ShmProxy()
        print(p.arm(ch, False), p.arm(other, True))
        pid = os.fork()
        if pid == 0:
            csp_ext._shm_die_holding_channel_lock(ch)
        os.waitpid(pid, 0)
        s = ch.statistics()                      # takes the lock: recovers
        print(s["poisoned"], s["proxy_readers"], p.wait(0), p.arm(ch, False), p.arm(ch, True))
        print(other.statistics()["proxy_writers"], p.wait(0))
        p.close()
        print(other.statistics()["proxy_writers"])
    """, timeout=20)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False", "True", "0", "True", "True", "True",
                                     "1", "False", "0"]


# ---- 8: close, dealloc, fork, misuse ----------------------------------------

@pytest.mark.timeout(30)
def test_close_unlinks_and_a_writer_then_blocks_normally():
    ch = csp.Channel()
    p = csp_ext._ShmProxy()
    assert p.arm(ch, False) is False
    p.close()
    assert p.closed
    assert stats(ch)["proxy_readers"] == 0
    writer = started(ch.writer(), 5)
    wait_until(lambda: stats(ch)["blocked_writers"] == 1)
    assert ch.reader()() == 5
    writer.join(5)
    p.close()                                        # harmless twice
    for use in (lambda: p.arm(ch, False), lambda: p.disarm(ch, False), lambda: p.wait(0),
                p.poke):
        with pytest.raises(ValueError):
            use()


@pytest.mark.timeout(30)
def test_dealloc_unlinks():
    ch = csp.Channel(buffer=1)
    p = csp_ext._ShmProxy()
    assert p.arm(ch, False) is False
    ch.writer()(0)
    assert p.arm(ch, True) is False                  # full
    assert (stats(ch)["proxy_readers"], stats(ch)["proxy_writers"]) == (0, 1)
    del p
    gc.collect()
    assert stats(ch)["proxy_writers"] == 0


@pytest.mark.timeout(60)
def test_repeated_make_arm_close_gives_every_block_back():
    chans = [csp.Channel(buffer=b) for b in (0, 0, 1)]
    for ch in chans:
        ch.writer()(None) if ch.buffer else None   # full buffer: a write-arm links

    def cycle(close):
        p = csp_ext._ShmProxy()
        for ch in chans:
            p.arm(ch, False)
            p.arm(ch, True)
        if close:
            p.close()

    cycle(True)
    before = csp_ext.shm_stats()["blocks_in_use"]
    type_refs = sys.getrefcount(csp_ext._ShmProxy)
    for i in range(500):
        cycle(i % 2 == 0)   # odd rounds: dealloc without close
    gc.collect()
    assert csp_ext.shm_stats()["blocks_in_use"] == before
    # Measured outside the assert: its rewriting holds the operands.
    type_refs_after = sys.getrefcount(csp_ext._ShmProxy)
    assert type_refs_after == type_refs
    for ch in chans:
        s = stats(ch)
        assert s["proxy_readers"] == s["proxy_writers"] == 0, s


@pytest.mark.timeout(30)
def test_dropping_the_last_channel_object_keeps_the_armed_channel_alive_until_close():
    p = csp_ext._ShmProxy()
    ch = csp.Channel()
    assert p.arm(ch, False) is False
    refs = stats(ch)["refs"]
    assert refs == 2                                 # the object's and the proxy's
    gc.collect()                                     # earlier tests' garbage goes first
    before = csp_ext.shm_stats()["blocks_in_use"]
    del ch
    gc.collect()
    assert csp_ext.shm_stats()["blocks_in_use"] == before   # still held by the proxy
    p.close()
    assert csp_ext.shm_stats()["blocks_in_use"] < before


@pytest.mark.timeout(30)
def test_close_from_another_thread_ends_a_wait_with_valueerror():
    p = csp_ext._ShmProxy()
    outcome = []

    def waiter():
        try:
            p.wait(None)
            outcome.append("returned")
        except ValueError:
            outcome.append("ValueError")

    t = started(waiter)
    time.sleep(0.1)
    p.close()
    t.join(5)
    assert outcome == ["ValueError"]


@pytest.mark.timeout(30)
def test_a_forked_child_cannot_use_the_proxy_nor_unlink_the_parents_offers():
    result = run_script("""
        import gc, os
        import pycsp.processes as csp, csp_ext
        ch = csp.Channel()
        p = csp_ext._ShmProxy()
        assert p.arm(ch, False) is False
        pid = os.fork()
        if pid == 0:
            code = 0
            for use in (lambda: p.arm(ch, False), lambda: p.disarm(ch, False),
                        lambda: p.wait(0), p.poke, p.close):
                try:
                    use()
                    code = 3
                except RuntimeError:
                    pass
            del p
            gc.collect()
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status), ch.statistics()["proxy_readers"])
        p.close()
        print(ch.statistics()["proxy_readers"])
    """, timeout=20)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "1", "0"]


@pytest.mark.timeout(30)
def test_a_proxy_needs_the_arena():
    result = run_script("""
        import csp_ext
        try:
            csp_ext._ShmProxy()
        except RuntimeError as e:
            print("RuntimeError", "arena" in str(e))
    """, timeout=20)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["RuntimeError", "True"]


@pytest.mark.timeout(30)
def test_arm_takes_a_channel_of_the_processes_backend(proxy):
    import pycsp.threads

    with pytest.raises(TypeError):
        proxy.arm(pycsp.threads.Channel(), False)
    with pytest.raises(TypeError):
        proxy.arm(csp.Channel())
