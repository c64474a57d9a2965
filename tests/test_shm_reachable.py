"""Channels reachable from other programs, in the shared-memory core (csp_ext): what
pycsp.net's deadlock detection rests on (tests/test_net_deadlock.py runs whole
programs).  A wait on a reachable channel counts as running; marking one marks
the channels whose ends wait in its buffer; a write marks what its message carries
only if the message stays in a reachable buffer; the agent's idle counts once.
Each case is a fresh program (the arena's count is the program's)."""
import pytest

from conftest import BACKENDS, run_script

pytestmark = [pytest.mark.timeout(60),
              pytest.mark.skipif("processes" not in BACKENDS,
                                 reason="processes backend not under test")]


def lines_of(source, timeout=40):
    result = run_script(source, timeout=timeout)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.splitlines()


def test_an_end_read_at_once_by_a_local_reader_stays_private():
    """A reachable buffered channel carries the reader end of a private channel
    straight to a waiting reader of this program: that channel stays private, and
    the reader's wait on it is a deadlock (before: marked reachable, it hung)."""
    out = lines_of("""
        import time
        import pycsp.processes as csp

        @csp.process
        def reader(c_in):
            c_in()()

        @csp.process
        def writer(c_out, x_in):
            time.sleep(0.5)  # the reader waits already: no buffer is involved
            c_out(x_in)

        c, x = csp.Channel(buffer=1), csp.Channel()
        c._mark_reachable()
        keep = x.writer()
        try:
            csp.Parallel(reader(c.reader()), writer(c.writer(), x.reader()))
        except csp.DeadlockError:
            print("DeadlockError")
    """)
    assert out == ["DeadlockError"]


@pytest.mark.parametrize("reachable", [True, False], ids=["reachable", "private"])
@pytest.mark.parametrize("how", ["buffered", "queued"])
def test_an_end_left_in_a_reachable_buffer_is_reachable(how, reachable):
    """The writer end of a private channel is left in the buffer of a reachable
    channel (or queued for it while the buffer is full, then moved in by a read): a
    wait on the private channel is no deadlock, for a party from afar may read the
    end.  Here that party is a thread of the main program that has no record (it
    counts for nothing) until it acts, 2 s later.  The control, the same channel not
    reachable, is a deadlock."""
    out = lines_of(f"""
        import threading, time
        import pycsp.processes as csp

        @csp.process
        def leaves(c_out, x_out):
            c_out(x_out)  # into the buffer, or queued until `makes_room` reads

        @csp.process
        def makes_room(c_in):
            time.sleep(0.5)  # `leaves` is queued by now
            c_in()

        @csp.process
        def waits(x_in):
            print(x_in())

        c, x = csp.Channel(buffer=1), csp.Channel()
        if {reachable}:
            c._mark_reachable()
        c_in, c_out = c.reader(), c.writer()
        queued = "{how}" == "queued"
        if queued:
            c_out(0)  # the buffer is full

        def from_afar():
            time.sleep(2.0)
            while True:
                got = c_in()
                if got != 0:
                    return got("from afar")

        threading.Thread(target=from_afar, daemon=True).start()
        procs = [leaves(c.writer(), x.writer()), waits(x.reader())]
        try:
            csp.Parallel(*procs, *([makes_room(c.reader())] if queued else []))
        except csp.DeadlockError:
            print("DeadlockError")
    """)
    assert out == (["from afar"] if reachable else ["DeadlockError"]), out


@pytest.mark.parametrize("how", ["write", "alternation"])
def test_a_writer_killed_while_blocked_gives_back_what_its_message_holds(how):
    """A buffered write (or output guard) whose message carries a channel end, killed
    while it waits for room: the carried channel has one reference again (before:
    one more was taken for the marking and never given back)."""
    send = "cw(xr)" if how == "write" else \
        "csp_ext.select((csp_ext.OutputGuard(cw, xr), csp_ext.InputGuard(x.reader())))"
    out = lines_of(f"""
        import os, signal, time
        import pycsp.processes
        import csp_ext
        csp_ext.shm_init()
        c, x = csp_ext.ShmChannel(buffer=1), csp_ext.ShmChannel()
        c._mark_reachable()
        cw, cr, xr = c.writer(), c.reader(), x.reader()
        cw(0)  # the buffer is full
        print("before", x.statistics()["refs"])
        record = csp_ext.shm_precount()
        pid = os.fork()
        if pid == 0:
            csp_ext.shm_adopt(record)
            {send}
            os._exit(0)
        csp_ext.shm_set_pid(record, pid)
        while c.statistics()["blocked_writers"] == 0:
            time.sleep(0.01)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        csp_ext.shm_reap(pid, True)
        print("after", x.statistics()["refs"])
    """)
    assert out[0] == out[1].replace("after", "before"), out


def test_a_long_chain_of_buffered_ends_is_marked_and_freed_without_recursion():
    """Each buffer holds the next channel's end, 30,000 deep: marking the first
    marks them all, and dropping it frees them all, from a thread with a 1 MiB
    stack (the agent marks from a thread).  Both recursed: marking overflowed a
    2 MiB stack at ~20,000, freeing at ~40,000 (and under AddressSanitizer an
    8 MiB one at 30,000)."""
    out = lines_of("""
        import threading
        import pycsp.processes as csp
        import csp_ext
        n = 30000
        chans = [csp_ext.ShmChannel(buffer=1) for _ in range(n)]
        for i in range(n - 1):
            (chans[i].writer())(chans[i + 1].reader())
        del chans[1:]  # the chain holds them now
        in_use = csp_ext.shm_stats()["blocks_in_use"]

        def mark_then_free():
            chans[0]._mark_reachable()
            print("marked", flush=True)
            chans.clear()  # the first one's last reference

        threading.stack_size(1 << 20)
        worker = threading.Thread(target=mark_then_free)
        worker.start()
        worker.join()
        print("freed", in_use - csp_ext.shm_stats()["blocks_in_use"] >= 2 * n)  # (3 each, about)
    """, timeout=50)
    assert out == ["marked", "freed True"], out


def test_idle_counts_once_however_often_it_is_said():
    """shm_idle(True) twice takes one count away; shm_end_body of an idle record
    takes none (before: each took one, and a false deadlock could follow)."""
    out = lines_of("""
        import pycsp.processes
        import csp_ext
        csp_ext.shm_init()
        n = lambda: csp_ext.shm_stats()["n_active"]
        keep = csp_ext.shm_precount()  # a sibling that runs: the count stays above zero
        start = n()
        csp_ext.shm_serve_quietly()
        csp_ext.shm_idle(True)
        csp_ext.shm_idle(True)
        print(start - n())
        csp_ext.shm_idle(False)
        csp_ext.shm_idle(False)
        print(start - n())
        csp_ext.shm_idle(True)
        csp_ext.shm_end_body()
        print(start - n())
    """)
    assert out == ["1", "0", "1"]


def test_a_wait_whose_claimer_died_counts_as_running_again():
    """A waiter claimed by a process that died before finishing it is poisoned out
    by its own wait loop, and counts as running again, as a finished one does
    (before: it stayed counted as blocked, and its end took one count more)."""
    out = lines_of("""
        import os, time
        import pycsp.processes
        import csp_ext
        csp_ext.shm_init()
        n = lambda: csp_ext.shm_stats()["n_active"]
        ch = csp_ext.ShmChannel()
        keep = ch.writer()
        dead = os.fork()
        if dead == 0:
            os._exit(0)
        os.waitpid(dead, 0)
        start = n()
        record = csp_ext.shm_precount()
        pid = os.fork()
        if pid == 0:
            csp_ext.shm_adopt(record)
            try:
                ch.reader()()
            except csp_ext.ChannelPoisonException:
                pass
            time.sleep(0.5)  # running: counted
            csp_ext.shm_end_body()
            os._exit(0)
        csp_ext.shm_set_pid(record, pid)
        while not csp_ext._shm_forge_claim(record, dead):
            time.sleep(0.01)
        time.sleep(0.3)  # its wait loop finds the claimer gone within 0.1 s
        print(n() - start)  # it runs
        os.waitpid(pid, 0)
        print(n() - start)  # it ended
    """)
    assert out == ["1", "0"]
