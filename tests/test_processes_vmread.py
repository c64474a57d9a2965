"""Big out-of-band buffers read from the writer's memory (processes backend).

A rendezvous write (or an output guard) whose pickled message has an
out-of-band buffer of 4 MiB or more leaves that buffer in the writer's memory;
the reader copies it with process_vm_readv into a pooled region of its own,
then acknowledges, and the writer waits for that (csp_ext/shared/vmread.h).
What arrives must be what the arena path gives: type, dtype, shape, contents,
writable, and sendable on.  The tests read csp_ext._shm_vm_stats() to know
the path was taken, and csp_ext.shm_stats() to know no arena block leaked.
Crash scenarios (a writer dying after the commit, a reader dying mid-copy)
run as separate programs, with test-only fault sites (csp_ext._fail_next).
"""
import json
import subprocess
import sys
import textwrap

import pytest

import csp_ext
import pycsp.processes as csp
from conftest import BACKENDS, _child_env

pytestmark = pytest.mark.skipif("processes" not in BACKENDS,
                                reason="processes backend not selected")
np = pytest.importorskip("numpy")

MIB = 1 << 20
BIG = 4 * MIB + 4096          # read from the writer's memory
SMALL = 1 * MIB               # copied into the arena block


def _blocks():
    import gc
    gc.collect()
    return csp_ext.shm_stats()["blocks_in_use"]


@pytest.mark.timeout(120)
def test_big_arrays_arrive_whole_writable_and_sendable_on():
    arrays = [np.arange(BIG // 8, dtype=np.float64).reshape(-1, 8),
              np.full((3, BIG // 12), 7, dtype=np.int32),
              np.random.default_rng(1).integers(0, 256, BIG + 1, dtype=np.uint8)]
    small = np.arange(SMALL // 4, dtype=np.float32)
    a, b, back = csp.Channel(), csp.Channel(), csp.Channel()
    before = _blocks()

    @csp.process
    def send(cout, cback):
        # a mobile channel end in the same message as the big buffers
        cout((arrays[0], small, cback, arrays[1], arrays[2]))
        return csp_ext._shm_vm_stats()["remote_writes"]

    @csp.process
    def receive(cin, cout):
        a0, s, cback, a1, a2 = cin()
        got = (a0, s, a1, a2)
        facts = [(x.dtype.str, x.shape, bool(x.flags.writeable), bool(x.flags.c_contiguous))
                 for x in got]
        same = [bool((x == y).all()) for x, y in zip(got, (arrays[0], small, arrays[1], arrays[2]))]
        a0[0, 0] = -1.0          # writable: our own memory
        cback("thanks")
        cout(a2)                 # sent on: it travels as any array does
        return facts, same, csp_ext._shm_vm_stats()["remote_reads"]

    @csp.process
    def last(cin, cback):
        thanks = cback()
        got = cin()
        return thanks, bool((got == arrays[2]).all()), got.shape

    writes, (facts, same, reads), (thanks, intact, shape) = csp.Parallel(
        send(a.writer(), back.writer()), receive(a.reader(), b.writer()),
        last(b.reader(), back.reader()))
    assert writes == 1 and reads == 3
    assert facts == [("<f8", (BIG // 64, 8), True, True), ("<f4", (SMALL // 4,), True, True),
                     ("<i4", (3, BIG // 12), True, True), ("|u1", (BIG + 1,), True, True)]
    assert same == [True] * 4
    assert (thanks, intact, shape) == ("thanks", True, (BIG + 1,))
    assert _blocks() == before


@pytest.mark.timeout(120)
def test_output_guards_of_big_arrays_deliver_only_the_chosen_one():
    c1, c2 = csp.Channel(), csp.Channel()
    before = _blocks()

    @csp.process
    def offer(o1, o2):
        x, y = np.full(BIG, 1, np.uint8), np.full(BIG, 2, np.uint8)
        chosen = []
        for _ in range(2):
            end, _ = csp.AltSelect(csp.OutputGuard(o1, x), csp.OutputGuard(o2, y))
            chosen.append(1 if end is o1 else 2)
        return chosen, csp_ext._shm_vm_stats()["remote_writes"]

    @csp.process
    def take(i1, i2):
        second = i2()        # only the second guard can commit first
        first = i1()         # the first guard, withdrawn then, offered again
        return ([int(second[0]), int(first[0])], bool((second == 2).all()),
                bool((first == 1).all()), csp_ext._shm_vm_stats()["remote_reads"])

    (chosen, writes), (fills, whole2, whole1, reads) = csp.Parallel(
        offer(c1.writer(), c2.writer()), take(c1.reader(), c2.reader()))
    assert chosen == [2, 1] and fills == [2, 1] and whole2 and whole1
    assert writes == 2 and reads == 2
    assert _blocks() == before


@pytest.mark.timeout(180)
def test_several_writers_and_readers_each_array_once():
    chans = [csp.Channel(), csp.Channel()]
    before = _blocks()

    @csp.process
    def writer(cout, k):
        for i in range(3):
            cout((k, i, np.full(BIG, 10 * k + i, np.uint8)))

    @csp.process
    def reader(i1, i2, n):
        got = []
        for _ in range(n):
            _, (k, i, arr) = csp.AltSelect(i1, i2)
            got.append((k, i, bool((arr == 10 * k + i).all())))
        return got

    results = csp.Parallel(*[writer(chans[k % 2].writer(), k) for k in range(4)],
                           *[reader(chans[0].reader(), chans[1].reader(), 6) for _ in range(2)])
    got = sorted(results[4] + results[5])
    assert got == [(k, i, True) for k in range(4) for i in range(3)]
    assert _blocks() == before


@pytest.mark.timeout(120)
def test_received_regions_are_never_reused_while_viewed_and_writes_copy_in_time():
    ch = csp.Channel()
    before = _blocks()

    def address(a):
        return a.__array_interface__["data"][0]

    @csp.process
    def send(cout):
        x = np.full(BIG, 1, np.uint8)
        cout(x)
        x[:] = 2               # the write returned: the reader has its copy
        cout(x)
        for fill in (3, 4, 5):
            cout(np.full(BIG, fill, np.uint8))

    @csp.process
    def nested(cin, kept):
        a5 = cin()
        return bool((a5 == 5).all()), bool((kept == 1).all())

    @csp.process
    def receive(cin):
        a1 = cin()
        a2 = cin()
        second = address(a2)
        del a2                 # its region goes back to the pool, warm
        a3 = cin()
        a4 = cin()             # a1 and a3 still viewed: a new region
        facts = {"reused": address(a3) == second,
                 "distinct": len({address(a1), address(a3), address(a4)}) == 3}
        # A forked child inherits the views; its pool is its own.
        facts["child"] = csp.Parallel(nested(cin, a1))[0]
        facts["intact"] = [bool((a1 == 1).all()), bool((a3 == 3).all()), bool((a4 == 4).all())]
        del a1, a3, a4
        facts["stats"] = csp_ext._shm_vm_stats()
        return facts

    _, facts = csp.Parallel(send(ch.writer()), receive(ch.reader()))
    assert facts["reused"] and facts["distinct"]
    assert facts["child"] == (True, True)
    assert facts["intact"] == [True, True, True]
    stats = facts["stats"]
    assert stats["remote_reads"] == 4 and stats["regions_live"] == 0
    assert 1 <= stats["regions_free"] <= 4 and stats["free_bytes"] <= 512 * MIB
    assert _blocks() == before


# ---------------------------------------------------------------------------
# Separate programs: start method, crashes, refusal (a flag for the whole run)

COMMON = """
import json, os, sys, time
import numpy as np
import csp_ext
import pycsp.processes as csp

BIG = %d

def report(**kw):
    # one write (atomic on a pipe): several processes report at once
    os.write(1, ("RESULT " + json.dumps(kw) + "\\n").encode())

def wait_gone(pid):
    while True:
        try:
            with open("/proc/%%d/stat" %% pid) as f:
                if f.read().rsplit(")", 1)[1].split()[0] in "ZX":
                    return
        except OSError:
            return
        time.sleep(0.01)

@csp.process
def send_fills(cout, fills):
    for fill in fills:
        cout(np.full(BIG, fill, np.uint8))
    return csp_ext._shm_vm_stats()

@csp.process
def read_fills(cin, n):
    got = []
    for _ in range(n):
        a = cin()
        got.append([int(a[0]), bool((a == a[0]).all()), a.shape[0]])
    return got, csp_ext._shm_vm_stats()
""" % BIG


def run_case(tmp_path, body, timeout=90):
    script = tmp_path / "case.py"
    script.write_text(COMMON + "\nif __name__ == '__main__':\n" +
                      textwrap.indent(textwrap.dedent(body), "    "))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=timeout, env=_child_env(), cwd=str(tmp_path))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, (
        f"exit {proc.returncode}\n--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}")
    got = {}   # what each process of the program reported
    for line in lines:
        got.update(json.loads(line[len("RESULT "):]))
    return got


@pytest.mark.timeout(120)
def test_spawned_processes_read_each_others_memory(tmp_path):
    got = run_case(tmp_path, """
        csp.set_start_method("spawn")
        ch = csp.Channel()
        sent, (fills, read) = csp.Parallel(send_fills(ch.writer(), [1, 2]),
                                           read_fills(ch.reader(), 2))
        report(fills=fills, writes=sent["remote_writes"], reads=read["remote_reads"])
    """)
    assert got == {"fills": [[1, True, BIG], [2, True, BIG]], "writes": 2, "reads": 2}


@pytest.mark.timeout(120)
def test_a_writer_dead_after_the_commit_counts_as_never_offered(tmp_path):
    # The big channel is a global (inherited), not an argument: the parent
    # poisons a crashed child's argument ends, which is another matter.
    got = run_case(tmp_path, """
        big = csp.Channel()
        COUT, CIN = big.writer(), big.reader()

        @csp.process
        def dying_writer(pid_out):
            pid_out(os.getpid())
            csp_ext._fail_next("vm_writer_exit", 1)
            COUT(np.full(BIG, 1, np.uint8))     # commits, then _exits in its wait

        @csp.process
        def late_writer(pid_in):
            wait_gone(pid_in())
            COUT(np.full(BIG, 2, np.uint8))

        @csp.process
        def reader():
            csp_ext._fail_next("vm_read_delay", 1)   # the writer is dead when we copy
            a = CIN()
            report(fill=int(a[0]), whole=bool((a == a[0]).all()),
                   reads=csp_ext._shm_vm_stats()["remote_reads"])

        sync = csp.Channel()
        blocks = csp_ext.shm_stats()["blocks_in_use"]
        try:
            csp.Parallel(dying_writer(sync.writer()), late_writer(sync.reader()), reader())
            outcome = "no crash reported"
        except csp.ProcessCrashed:
            outcome = "crashed"
        del sync
        import gc; gc.collect()
        report(outcome=outcome, leaked=csp_ext.shm_stats()["blocks_in_use"] - blocks + 1)
    """)
    assert got == {"fill": 2, "whole": True, "reads": 1, "outcome": "crashed", "leaked": 0}


@pytest.mark.timeout(120)
def test_a_reader_dead_mid_copy_lets_its_writer_return(tmp_path):
    got = run_case(tmp_path, """
        big = csp.Channel()
        COUT, CIN = big.writer(), big.reader()

        @csp.process
        def writer():
            COUT(np.full(BIG, 1, np.uint8))     # its reader dies copying: returns
            COUT(np.full(BIG, 2, np.uint8))
            report(writer="returned")

        @csp.process
        def dying_reader(pid_out):
            pid_out(os.getpid())
            csp_ext._fail_next("vm_reader_exit", 1)
            CIN()

        @csp.process
        def next_reader(pid_in):
            wait_gone(pid_in())
            a = CIN()
            report(fill=int(a[0]), whole=bool((a == a[0]).all()))

        sync = csp.Channel()
        blocks = csp_ext.shm_stats()["blocks_in_use"]
        try:
            csp.Parallel(writer(), dying_reader(sync.writer()), next_reader(sync.reader()))
            outcome = "no crash reported"
        except csp.ProcessCrashed:
            outcome = "crashed"
        del sync
        import gc; gc.collect()
        report(outcome=outcome, leaked=csp_ext.shm_stats()["blocks_in_use"] - blocks + 1)
    """)
    assert got == {"writer": "returned", "fill": 2, "whole": True, "outcome": "crashed",
                   "leaked": 0}


@pytest.mark.timeout(120)
def test_a_refused_read_falls_back_to_the_arena_for_the_rest_of_the_run(tmp_path):
    got = run_case(tmp_path, """
        ch = csp.Channel()
        back = csp.Channel()

        @csp.process
        def refused_reader(cin, cback):
            csp_ext._fail_next("vm_refuse", 1)    # as EPERM under Yama or seccomp
            got = []
            for _ in range(2):
                cback_end, arr = cin()
                cback_end("seen")               # the channel end in it still works
                got.append([int(arr[0]), bool((arr == arr[0]).all()), bool(arr.flags.writeable)])
            return got, csp_ext._shm_vm_stats()

        @csp.process
        def sender(cout, back_out, back_in):
            replies = []
            for fill in (1, 2):
                cout((back_out, np.full(BIG, fill, np.uint8)))
                replies.append(back_in())
            return replies, csp_ext._shm_vm_stats()

        blocks = csp_ext.shm_stats()["blocks_in_use"]
        (got, read), (replies, sent) = csp.Parallel(
            refused_reader(ch.reader(), back.writer()),
            sender(ch.writer(), back.writer(), back.reader()))
        import gc; gc.collect()
        report(got=got, replies=replies, remote_reads=read["remote_reads"],
               remote_writes=sent["remote_writes"], refused=csp_ext._shm_vm_stats()["refused"],
               leaked=csp_ext.shm_stats()["blocks_in_use"] - blocks)
    """)
    # The first write offered its memory and was refused; the flag in the
    # arena kept the second from offering it.
    assert got == {"got": [[1, True, True], [2, True, True]], "replies": ["seen", "seen"],
                   "remote_reads": 0, "remote_writes": 1, "refused": 1, "leaked": 0}


@pytest.mark.timeout(120)
def test_a_signal_in_the_writers_wait_runs_its_handler_after_the_write(tmp_path):
    # The handler raises; the write had committed, so the message arrives
    # once, and the writer's memory stays valid until the reader's copy.
    got = run_case(tmp_path, """
        import signal

        def alarm(signum, frame):
            raise RuntimeError("alarm")

        @csp.process
        def writer(cout):
            signal.signal(signal.SIGALRM, alarm)
            csp_ext._fail_next("vm_signal_in_wait", 1)
            try:
                cout(np.full(BIG, 1, np.uint8))
                outcome = "no signal"
            except RuntimeError as e:
                outcome = str(e)
            cout(np.full(BIG, 2, np.uint8))
            return outcome

        @csp.process
        def reader(cin):
            csp_ext._fail_next("vm_read_delay", 1)   # the writer waits 0.3 s
            return [[int(a[0]), bool((a == a[0]).all())] for a in (cin(), cin())]

        ch = csp.Channel()
        outcome, fills = csp.Parallel(writer(ch.writer()), reader(ch.reader()))
        report(outcome=outcome, fills=fills)
    """)
    assert got == {"outcome": "alarm", "fills": [[1, True], [2, True]]}


@pytest.mark.timeout(120)
def test_a_late_answer_never_lands_in_a_record_freed_meanwhile(tmp_path):
    # A reader dies mid-copy; its writer (a thread) sees it gone, returns and
    # ends, so its waiter record goes back to the arena, which gives that
    # memory to the next small messages.  The dead reader is reaped only
    # later (spawned from a thread, no SIGCHLD reaper: by shutdown): the reap
    # drops the message it was copying and must not answer a writer record
    # that no longer exists.
    got = run_case(tmp_path, """
        import threading
        big = csp.Channel()
        COUT, CIN = big.writer(), big.reader()
        held = csp.Channel(buffer=8)       # its blocks taken before the record goes

        @csp.process
        def dying_reader():
            csp_ext._fail_next("vm_reader_exit", 1)
            CIN()

        spawner = threading.Thread(target=lambda: csp.Spawn(dying_reader()))
        spawner.start()
        spawner.join()
        writer = threading.Thread(target=lambda: COUT(np.full(BIG, 1, np.uint8)))
        writer.start()
        writer.join()
        while str(writer.native_id) in os.listdir("/proc/self/task"):   # record freed
            time.sleep(0.01)
        # Messages whose blocks are of the record's size class, payload over
        # the place where a record keeps its acknowledgement word.
        payloads = [bytes([i + 1]) * 150 for i in range(8)]
        for p in payloads:
            held.writer()(p)
        csp.shutdown()                     # reaps the dead reader
        back = [held.reader()() for _ in payloads]
        report(intact=back == payloads)
    """)
    assert got == {"intact": True}


@pytest.mark.timeout(120)
def test_a_buffer_its_living_writer_cannot_read_fails_there_as_through_the_arena(tmp_path):
    # A mapping of a file truncated under it: its pages cannot be read (the
    # reader's process_vm_readv gets EFAULT from a living writer).  Through
    # the arena the writer's own copy faults (SIGBUS); so it must here, and
    # the reader waits for the next writer, rather than take the writer for
    # dead and leave it waiting for an answer for ever.
    got = run_case(tmp_path, """
        import mmap, pickle
        big = csp.Channel()
        COUT, CIN = big.writer(), big.reader()

        @csp.process
        def faulting_writer(pid_out):
            with open("mapped", "w+b") as f:
                f.truncate(BIG)
                m = mmap.mmap(f.fileno(), BIG)
                f.truncate(0)
            pid_out(os.getpid())
            COUT(pickle.PickleBuffer(m))

        @csp.process
        def late_writer(pid_in):
            wait_gone(pid_in())
            COUT(np.full(BIG, 2, np.uint8))

        @csp.process
        def reader():
            a = CIN()
            report(fill=int(a[0]), whole=bool((a == a[0]).all()))

        sync = csp.Channel()
        try:
            csp.Parallel(faulting_writer(sync.writer()), late_writer(sync.reader()), reader())
            outcome = "no crash reported"
        except csp.ProcessCrashed:     # SIGBUS (SIGABRT under AddressSanitizer)
            outcome = "crashed"
        report(outcome=outcome)
    """, timeout=60)
    assert got == {"fill": 2, "whole": True, "outcome": "crashed"}
