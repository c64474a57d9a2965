"""A big bytes or bytearray received on the processes backend takes memory that
an earlier big message gave back (csp_ext/shared/recv_memory.c), rather than
pages the kernel must clear.  What arrives is unchanged: every received object
keeps its own contents while it lives, whatever arrives after it; resizing a
received bytearray works; and the memory survives tracemalloc, threads and
fork."""
import gc
import subprocess
import sys
import textwrap
import threading

import pytest

from conftest import BACKENDS

csp_ext = pytest.importorskip("csp_ext")

pytestmark = pytest.mark.skipif("processes" not in BACKENDS,
                                reason="processes backend not under test")

BIG = 5 << 20     # above the smallest request served (4 MiB)


def stats():
    return csp_ext._recv_memory_stats()


def buffered_pair(n=8):
    import pycsp.processes as csp
    ch = csp.Channel(buffer=n)
    return ch.writer(), ch.reader()


@pytest.mark.timeout(60)
def test_received_big_messages_keep_their_own_contents_while_memory_is_reused():
    write, read = buffered_pair()
    kept = []
    for letter in b"abc":
        write(bytes([letter]) * BIG)
        kept.append(read())
    for i in range(6):          # each dropped before the next arrives: reused
        write(bytes([ord("d") + i]) * BIG)
        m = read()
        assert m == bytes([ord("d") + i]) * BIG
        del m
    assert kept == [b"a" * BIG, b"b" * BIG, b"c" * BIG]
    assert stats()["installed"] == 1


@pytest.mark.timeout(60)
def test_the_memory_of_a_dropped_big_message_serves_the_next_one():
    write, read = buffered_pair()
    write(b"x" * BIG)
    read()                      # made, then given back
    before = stats()
    for _ in range(5):
        write(b"y" * BIG)
        assert read() == b"y" * BIG
    after = stats()
    assert after["made"] == before["made"], "a dropped message's memory was not reused"
    assert after["reused"] == before["reused"] + 5
    assert after["handed_out"] == before["handed_out"]


@pytest.mark.timeout(60)
def test_the_cache_keeps_at_most_two_regions():
    write, read = buffered_pair()
    for i in range(5):
        write(bytes([i]) * BIG)
    got = [read() for _ in range(5)]
    assert [m[:1] for m in got] == [bytes([i]) for i in range(5)]
    before = stats()
    del got
    gc.collect()
    after = stats()
    assert after["cached"] <= 2
    assert after["handed_out"] == before["handed_out"] - 5
    assert after["dropped"] >= before["dropped"] + 3


@pytest.mark.timeout(60)
def test_a_received_big_bytearray_can_grow_and_shrink():
    write, read = buffered_pair()
    write(bytearray(b"q" * BIG))
    a = read()
    assert type(a) is bytearray and a == b"q" * BIG
    a.extend(b"r" * (BIG // 2))     # beyond its region: moved out of it
    assert a[:BIG] == b"q" * BIG and a[BIG:] == b"r" * (BIG // 2)
    write(bytearray(b"s" * BIG))
    b = read()
    del b[100:]                     # far smaller: moved out of it
    assert b == b"s" * 100
    write(bytearray(b"t" * BIG))
    c = read()
    c.pop()                         # a small change keeps it
    assert c == b"t" * (BIG - 1)
    held = stats()["handed_out"]
    del a, b, c
    assert stats()["handed_out"] == held - 1


@pytest.mark.timeout(60)
def test_a_received_big_message_can_be_freed_by_another_thread():
    write, read = buffered_pair()
    write(b"z" * BIG)
    box = [read()]
    held = stats()["handed_out"]

    def drop():
        assert box.pop() == b"z" * BIG

    t = threading.Thread(target=drop)
    t.start()
    t.join(30)
    assert stats()["handed_out"] == held - 1


def run_python(code):
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


@pytest.mark.timeout(150)
def test_tracemalloc_started_before_and_stopped_after_the_first_big_message():
    # tracemalloc.stop() puts back the allocator it found, which drops our
    # wrapper: regions still handed out are then freed by the allocator below.
    out = run_python("""
        import tracemalloc, csp_ext
        import pycsp.processes as csp
        BIG = 5 << 20
        tracemalloc.start()
        ch = csp.Channel(buffer=4)
        w, r = ch.writer(), ch.reader()
        w(b"a" * BIG); a = r()
        w(b"b" * BIG); b = r(); del b
        tracemalloc.stop()
        w(b"c" * BIG); c = r()
        assert a == b"a" * BIG and c == b"c" * BIG
        del a, c
        tracemalloc.start()
        w(b"d" * BIG); d = r(); assert d == b"d" * BIG; del d
        tracemalloc.stop()
        print("ok")
    """)
    assert out.strip() == "ok"


@pytest.mark.timeout(150)
def test_fork_empties_the_cache_and_children_receive_big_messages():
    out = run_python("""
        import os, csp_ext
        import pycsp.processes as csp
        BIG = 5 << 20
        ch = csp.Channel(buffer=4)
        w, r = ch.writer(), ch.reader()
        w(b"a" * BIG); kept = r()
        w(b"b" * BIG); r()
        assert csp_ext._recv_memory_stats()["cached"] == 1

        @csp.process
        def child(cin):
            got = [cin() for _ in range(3)]
            s = csp_ext._recv_memory_stats()
            return [m[:1] * len(m) == m and len(m) == BIG for m in got], s["cached"]

        @csp.process
        def parent_side(cout):
            for x in b"xyz":
                cout(bytes([x]) * BIG)

        c = csp.Channel()
        (ok, cached_in_child), _ = csp.Parallel(child(c.reader()), parent_side(c.writer()))
        assert ok == [True, True, True], ok
        assert csp_ext._recv_memory_stats()["cached"] == 0
        assert kept == b"a" * BIG
        pid = os.fork()
        if pid == 0:
            ok = kept == b"a" * BIG
            del kept
            os._exit(0 if ok else 1)
        assert os.waitpid(pid, 0)[1] == 0
        print("ok")
    """)
    assert out.strip() == "ok"
