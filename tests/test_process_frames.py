"""A process body's Python frames: deep calls, big frames, tracebacks.

pycsp.greenlets starts each process with a small frame chunk of its own sized
for the process function (csp_ext/wait/green_datastack.c); deeper calls overflow
into CPython's ordinary chunks.  These tests hold on every backend; on
greenlets they cover the overflow and the freeing of chunks of processes that
never finish.
"""
import textwrap
import traceback

import pytest

from conftest import BACKENDS, run_script


def recurse_then_send(cout, depth, value):
    if depth == 0:
        cout(value)
        return 0
    return 1 + recurse_then_send(cout, depth - 1, value)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("depth", [0, 1, 5, 300])
def test_process_blocks_deep_inside_python_calls(csp, depth):
    @csp.process
    def sender(cout):
        return [recurse_then_send(cout, depth, i) for i in range(3)]

    @csp.process
    def receiver(cin):
        return [cin() for _ in range(3)]

    ch = csp.Channel()
    assert csp.Parallel(sender(ch.writer()), receiver(ch.reader())) == [[depth] * 3, [0, 1, 2]]


def make_big_frame_function(nlocals):
    """A function with `nlocals` local variables: its frame is larger than
    CPython's 16 KiB frame chunk when nlocals is over about 2,000."""
    names = [f"v{i}" for i in range(nlocals)]
    src = "def big(cin, cout):\n"
    src += "".join(f"    {n} = {i}\n" for i, n in enumerate(names))
    src += "    x = cin()\n"
    src += f"    cout(x + v0 + {names[-1]})\n"
    space = {}
    exec(src, space)
    return space["big"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("nlocals", [50, 2500])
def test_process_with_a_big_frame(csp, nlocals):
    big = csp.process(make_big_frame_function(nlocals))

    @csp.process
    def driver(cout, cin):
        cout(1)
        return cin()

    a, b = csp.Channel(), csp.Channel()
    results = csp.Parallel(big(a.reader(), b.writer()), driver(a.writer(), b.reader()))
    assert results == [None, 1 + 0 + (nlocals - 1)]


class Deep(Exception):
    pass


def fail_at(depth):
    if depth == 0:
        raise Deep("at the bottom")
    fail_at(depth - 1)


@pytest.mark.timeout(60)
@pytest.mark.by_reference
def test_traceback_of_a_process_error_shows_its_frames(csp):
    @csp.process
    def worker():
        fail_at(3)

    with pytest.raises(Deep) as info:
        csp.Parallel(worker())
    names = [f.name for f in traceback.extract_tb(info.value.__traceback__)]
    assert "worker" in names
    assert names[-4:] == ["fail_at"] * 4


UNFINISHED_SCRIPT = """
import gc, os, tracemalloc
import pycsp.greenlets as csp

def deep(cin, depth):
    return deep(cin, depth - 1) if depth else cin()

@csp.process
def stuck_shallow(cin):
    cin()

@csp.process
def stuck_deep(cin):
    deep(cin, 50)          # blocks with frames in an overflow chunk

def round_():
    ch = csp.Channel()
    try:
        csp.Parallel(stuck_shallow(ch.reader()) * 20, stuck_deep(ch.reader()) * 20)
    except csp.DeadlockError:
        pass
    else:
        raise SystemExit("no DeadlockError")

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

for _ in range(30):
    round_()
gc.collect()
tracemalloc.start()
traced0, rss0 = tracemalloc.get_traced_memory()[0], rss()
for _ in range(300):
    round_()
gc.collect()
traced1, rss1 = tracemalloc.get_traced_memory()[0], rss()
print("GROWTH", traced1 - traced0, rss1 - rss0)
"""


@pytest.mark.timeout(120)
@pytest.mark.skipif("greenlets" not in BACKENDS, reason="greenlets backend not selected")
def test_greenlets_that_never_finish_free_their_frames():
    """12,000 process greenlets left blocked by a deadlock and then dropped:
    their frame chunks (small first chunks and overflow chunks) are freed."""
    proc = run_script(textwrap.dedent(UNFINISHED_SCRIPT), timeout=100)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("GROWTH")][-1]
    traced, rss = map(int, line.split()[1:])
    # Small first chunks are malloc'd (tracemalloc sees them: 12,000 leaked
    # would be 4 MB); overflow chunks are mmap'd (only RSS sees them: 6,000
    # leaked would be 24 MB or more).  The RSS allowance is heap fragmentation,
    # which levels off at a few MB (measured 3-6 MB over 300-4,800 rounds).
    assert traced < 64 * 1024, line
    assert rss < 16 * 1024 * 1024, line
