"""greenlet's stack copies on pycsp.greenlets (csp_ext/wait/green_stackcopy.c).

A process greenlet that switches away has greenlet save its C stack (about
1.7 KB) in a block from PyMem_Realloc, freed when it is switched back.  The
greenlets backend wraps the PyMem allocator so that, during its own switches,
those copies reuse at most max_blocks blocks of block_size bytes.  Each
scenario runs in a fresh interpreter: the pool is process-wide.  When the
scenario's Parallel has returned, one block may still be out: the scheduler's
starter greenlet, suspended between the processes it starts, keeps its copy.
"""
import json

import pytest

from conftest import BACKENDS, run_script

pytestmark = pytest.mark.skipif("greenlets" not in BACKENDS,
                                reason="greenlets backend not selected")

COMMSTIME = """
import json, csp_ext
import pycsp.greenlets as csp

@csp.process
def prefix(cin, cout):
    cout(0)
    for _ in range(CYCLES):
        cout(cin())
    cin()

@csp.process
def delta(cin, out1, out2):
    for _ in range(CYCLES + 1):
        x = cin()
        out1(x)
        out2(x)

@csp.process
def successor(cin, cout):
    for _ in range(CYCLES + 1):
        cout(cin() + 1)

@csp.process
def consumer(cin):
    return sum(cin() for _ in range(CYCLES + 1))

a, b, c, d = (csp.Channel() for _ in range(4))
results = csp.Parallel(prefix(c.reader(), a.writer()), delta(a.reader(), b.writer(), d.writer()),
                       successor(b.reader(), c.writer()), consumer(d.reader()))
print(json.dumps({"total": results[3], "stats": csp_ext.green_stackcopy_stats()}))
"""

CYCLES = 2000


def run_json(source, env=None, timeout=60):
    proc = run_script(source, env=env, timeout=timeout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.timeout(90)
@pytest.mark.parametrize("pymalloc", ["default", "debug"])
def test_commstime_reuses_a_few_blocks(pymalloc):
    """Four processes switching 8,000 times: a handful of blocks, all back
    in the pool once the processes have ended.  PYTHONMALLOC=debug checks
    that every block is freed by the domain that allocated it, and that no
    copy writes past its block."""
    env = {"PYTHONMALLOC": "debug"} if pymalloc == "debug" else None
    out = run_json(COMMSTIME.replace("CYCLES", str(CYCLES)), env=env)
    assert out["total"] == sum(range(CYCLES + 1))
    stats = out["stats"]
    assert stats["installed"] == 1
    assert 1 <= stats["blocks"] <= 8, stats
    assert stats["blocks"] - 1 <= stats["spare"] <= stats["blocks"], stats


MANY_SUSPENDED = """
import json, csp_ext
import pycsp.greenlets as csp

N = 3 * csp_ext.green_stackcopy_stats()["max_blocks"] or 384

@csp.process
def writer(cout, i):
    cout(i)

@csp.process
def reader(cin):
    return sorted(cin() for _ in range(N))

ch = csp.Channel()
# Every writer blocks (and is switched away from) before the reader reads.
results = csp.Parallel(*[writer(ch.writer(), i) for i in range(N)], reader(ch.reader()))
print(json.dumps({"ok": results[-1] == list(range(N)), "stats": csp_ext.green_stackcopy_stats()}))
"""


@pytest.mark.timeout(90)
def test_more_suspended_processes_than_blocks():
    """Three times max_blocks processes suspended at once: the pool stops at
    max_blocks, the other copies come from the wrapped allocator."""
    out = run_json(MANY_SUSPENDED)
    assert out["ok"]
    stats = out["stats"]
    assert stats["blocks"] == stats["max_blocks"], stats
    assert stats["blocks"] - 1 <= stats["spare"] <= stats["blocks"], stats


DEEP_STACK = """
import json, csp_ext
import pycsp.greenlets as csp

def deep(cin, n):
    # Each level goes through C (map): the C stack grows by several hundred
    # bytes a level, so the switch saves far more than one block.
    return list(map(lambda _: deep(cin, n - 1), [0]))[0] if n else cin()

@csp.process
def deep_reader(cin):
    return [deep(cin, 40) for _ in range(50)]

@csp.process
def writer(cout):
    for i in range(50):
        cout(i)

ch = csp.Channel()
results = csp.Parallel(deep_reader(ch.reader()), writer(ch.writer()))
print(json.dumps({"ok": results[0] == list(range(50)), "stats": csp_ext.green_stackcopy_stats()}))
"""


@pytest.mark.timeout(90)
def test_switch_from_a_stack_deeper_than_a_block():
    """Copies larger than block_size come from the wrapped allocator."""
    out = run_json(DEEP_STACK)
    assert out["ok"]
    stats = out["stats"]
    assert stats["blocks"] - 1 <= stats["spare"] <= stats["blocks"], stats


TRACEMALLOC_AROUND = """
import json, tracemalloc, csp_ext
tracemalloc.start()          # before the scheduler: the pool wraps tracemalloc's hooks
import pycsp.greenlets as csp

@csp.process
def ping(cout, cin, n):
    for i in range(n):
        cout(i)
        cin()
    # The pool's wrapper goes away here, while pong is suspended with its
    # stack copy in a pool block: that block is freed by the allocator
    # tracemalloc restores.
    tracemalloc.stop()
    for i in range(n):
        cout(i)
        cin()
    return "done"

@csp.process
def pong(cin, cout, n):
    for _ in range(2 * n):
        cout(cin())

a, b = csp.Channel(), csp.Channel()
results = csp.Parallel(ping(a.writer(), b.reader(), 500), pong(a.reader(), b.writer(), 500))
print(json.dumps({"results": results, "stats": csp_ext.green_stackcopy_stats()}))
"""


@pytest.mark.timeout(90)
def test_blocks_freed_after_the_wrapper_is_removed():
    """tracemalloc.stop() puts back the allocator it found, removing the
    pool's wrapper: the blocks still handed out are ordinary allocations of
    the allocator beneath, freed by it without harm."""
    out = run_json(TRACEMALLOC_AROUND)
    assert out["results"][0] == "done"
