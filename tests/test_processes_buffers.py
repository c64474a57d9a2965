"""Memory safety of received out-of-band buffers (processes backend).

A received numpy array (over 64 KiB), PickleBuffer or other protocol-5 buffer
is a view of its message block in the shared arena.  Only the process that received the
block may release it: a forked child holds copies of its parent's views (the
whole heap is inherited), and dropping them there must not free the parent's
block (else the parent's array shows a later message's bytes and its own
release frees the block a second time, corrupting the free list).  A block
still held by a child when it ends is released, not leaked.

Each case runs as a separate Python program (a corrupt free list must not
take the test run with it) and prints one RESULT line of JSON.  A double
free is seen as two live received arrays with the same address, and as
allocator counts below the baseline.
"""
import json
import subprocess
import sys
import textwrap

import pytest

from conftest import BACKENDS, _child_env, run_script

pytestmark = pytest.mark.skipif("processes" not in BACKENDS,
                                reason="processes backend not selected")
np = pytest.importorskip("numpy")

COMMON = """
import gc, json, os, pickle, sys
import numpy as np
import pycsp.processes as csp
import csp_ext

# Every message below is in the same size class of the allocator, and above
# 64 KiB: a smaller numpy array is copied out of its block on arrival
# (csp_ext/shared/native.c), not a view of it.
SIZE = 70000

class Blob:
    # a user class whose payload travels out of band (protocol 5)
    def __init__(self, data):
        self.data = data
    def __reduce_ex__(self, protocol):
        if protocol >= 5:
            return (Blob, (pickle.PickleBuffer(self.data),))
        return (Blob, (bytes(self.data),))

def make(kind, fill):
    if kind == "numpy":
        return np.full(SIZE, fill, dtype=np.uint8)
    if kind == "picklebuffer":
        return pickle.PickleBuffer(bytearray([fill]) * SIZE)
    return Blob(bytearray([fill]) * SIZE)

def as_array(kind, obj):
    # the received bytes themselves (no copy), as a uint8 array
    return np.frombuffer(memoryview(obj.data if kind == "blob" else obj), dtype=np.uint8)

def address(kind, obj):
    return as_array(kind, obj).__array_interface__["data"][0]

def intact(kind, obj, fill):
    a = as_array(kind, obj)
    return a.shape == (SIZE,) and bool((a == fill).all())

@csp.process
def sender(cout, kind, fills):
    for fill in fills:
        cout(make(kind, fill))

def resendable(obj):
    # a received PickleBuffer may come as a memoryview: wrap it again to send it
    return pickle.PickleBuffer(obj) if isinstance(obj, memoryview) else obj

def stats():
    gc.collect()
    s = csp_ext.shm_stats()
    return [s["blocks_in_use"], s["bytes_in_use"]]

def report(**kw):
    print("RESULT " + json.dumps(kw), flush=True)
"""


def run_case(body, *args, timeout=60):
    proc = run_script(COMMON + textwrap.dedent(body), timeout=timeout, args=args)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, (
        f"exit {proc.returncode}\n--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}")
    return json.loads(lines[-1][len("RESULT "):])


KINDS = ["numpy", "picklebuffer", "blob"]

# The main program receives A, then a forked child drops its inherited copy of
# A (plain del, or the collection of a reference cycle holding it), then the
# main program receives more messages of A's size class.
DROP_IN_CHILD = """
kind, how = sys.argv[1], sys.argv[2]
ch = csp.Channel(buffer=4)
cin = ch.reader()
csp.Parallel(sender(ch.writer(), kind, [1]))
cin()                                   # warm up: the channel's ring exists now
base = stats()

csp.Parallel(sender(ch.writer(), kind, [7]))
a = cin()
holder = {"a": a}
holder["self"] = holder                 # a reference cycle: only gc frees it

@csp.process
def dropper():
    global a, holder
    if how == "del":
        del a, holder
    else:                               # only the cycle's collection drops it
        del a
        holder["self"] = holder
        del holder
    gc.collect()
    return True

csp.Parallel(dropper())
csp.Parallel(sender(ch.writer(), kind, [8]))
b = cin()
a_intact = intact(kind, a, 7)
distinct_ab = address(kind, a) != address(kind, b)
del a, b, holder
csp.Parallel(sender(ch.writer(), kind, [9, 10]))
c, d = cin(), cin()
distinct_cd = address(kind, c) != address(kind, d)
cd_intact = intact(kind, c, 9) and intact(kind, d, 10)
del c, d
report(a_intact=a_intact, distinct_ab=distinct_ab, distinct_cd=distinct_cd,
       cd_intact=cd_intact, base=base, end=stats())
"""


@pytest.mark.timeout(90)
@pytest.mark.parametrize("how", ["del", "gc"])
@pytest.mark.parametrize("kind", KINDS)
def test_forked_child_dropping_an_inherited_buffer_leaves_the_parents_block(kind, how):
    got = run_case(DROP_IN_CHILD, kind, how)
    assert got["a_intact"], got          # not overwritten by a later message
    assert got["distinct_ab"], got       # the child did not free A's block
    assert got["distinct_cd"], got       # no block on the free list twice
    assert got["cd_intact"], got
    assert got["end"] == got["base"], got


SEND_ON = """
kind = sys.argv[1]
ch, back = csp.Channel(buffer=4), csp.Channel(buffer=4)
cin, back_in = ch.reader(), back.reader()
csp.Parallel(sender(ch.writer(), kind, [1]))
cin()
back.writer()(0)
back_in()                               # warm up: both rings exist now
base = stats()

csp.Parallel(sender(ch.writer(), kind, [7]))
a = cin()

@csp.process
def forward(cout):
    # the child sends its inherited copy of A on, then drops it
    global a
    cout(resendable(a))
    del a
    gc.collect()

csp.Parallel(forward(back.writer()))
copy = back_in()
ok = [intact(kind, a, 7), intact(kind, copy, 7), address(kind, a) != address(kind, copy)]
as_array(kind, copy)[0] = 99            # a copy, not an alias of A's block
ok.append(intact(kind, a, 7))

# The receiver sends its own received buffer on (to itself, buffered).
back.writer()(resendable(a))
again = back_in()
ok += [intact(kind, again, 7), address(kind, a) != address(kind, again)]
as_array(kind, again)[0] = 98
ok.append(intact(kind, a, 7))
del a, copy, again
csp.Parallel(sender(ch.writer(), kind, [9, 10]))
c, d = cin(), cin()
ok += [address(kind, c) != address(kind, d), intact(kind, c, 9), intact(kind, d, 10)]
del c, d
report(ok=ok, base=base, end=stats())
"""


@pytest.mark.timeout(90)
@pytest.mark.parametrize("kind", KINDS)
def test_received_buffer_sent_on_is_copied_and_owned_once(kind):
    got = run_case(SEND_ON, kind)
    assert all(got["ok"]), got
    assert got["end"] == got["base"], got


KEPT_IN_CHILD = """
kind, how = sys.argv[1], sys.argv[2]
ch = csp.Channel(buffer=4)
csp.Parallel(sender(ch.writer(), kind, [1]))
ch.reader()()                           # warm up: the channel's ring exists now
base = stats()

@csp.process
def keeper(cin):
    # receives a buffer and still holds it when the child ends
    global kept
    kept = cin()
    if how == "return":
        return kept

for _ in range(3):
    csp.Parallel(sender(ch.writer(), kind, [7]), keeper(ch.reader()))
report(base=base, end=stats())
"""


@pytest.mark.timeout(90)
@pytest.mark.parametrize("how", ["global", "return"])
@pytest.mark.parametrize("kind", KINDS)
def test_buffer_held_by_a_child_when_it_ends_is_released(kind, how):
    got = run_case(KEPT_IN_CHILD, kind, how)
    assert got["end"] == got["base"], got


SPAWN_CASE = """
@csp.process
def drop_arg(x):
    global x_kept
    x_kept = x
    del x, x_kept
    gc.collect()
    return True

@csp.process
def keep_received(cin):
    global kept
    kept = cin()
    return kept

@csp.process
def nothing():
    pass

def spawned_children_leak():
    # A spawned child never gives back its reference to its Parallel's results
    # channel, which so stays allocated (a separate, known leak): measure it
    # once, to discount it below for each Parallel.
    before = stats()
    csp.Parallel(nothing())
    after = stats()
    return [x - y for x, y in zip(after, before)]

if __name__ == "__main__":
    csp.set_start_method("spawn")
    kind = sys.argv[1]
    ch = csp.Channel(buffer=4)
    cin = ch.reader()
    csp.Parallel(sender(ch.writer(), kind, [1]))
    cin()
    per_parallel = spawned_children_leak()
    base = stats()
    csp.Parallel(sender(ch.writer(), kind, [7]))
    a = cin()
    csp.Parallel(drop_arg(a))              # the child gets a pickled copy of A
    csp.Parallel(sender(ch.writer(), kind, [8]))
    b = cin()
    ok = [intact(kind, a, 7), intact(kind, b, 8), address(kind, a) != address(kind, b)]
    back = csp.Parallel(sender(ch.writer(), kind, [9]), keep_received(ch.reader()))[1]
    ok.append(intact(kind, back, 9))
    del a, b, back
    end = stats()
    report(ok=ok, base=[x + 4 * y for x, y in zip(base, per_parallel)], end=end)  # 4 Parallels
"""


@pytest.mark.timeout(180)
@pytest.mark.parametrize("kind", ["numpy", "blob"])
def test_spawn_start_method_buffers_are_owned_by_their_receiver(kind, tmp_path):
    script = tmp_path / "case.py"
    script.write_text(COMMON + SPAWN_CASE)
    proc = subprocess.run([sys.executable, str(script), kind], capture_output=True, text=True,
                          timeout=150, env=_child_env(), cwd=str(tmp_path))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, (
        f"exit {proc.returncode}\n--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}")
    got = json.loads(lines[-1][len("RESULT "):])
    assert all(got["ok"]), got
    assert got["end"] == got["base"], got


@pytest.mark.timeout(30)
def test_received_picklebuffer_is_a_picklebuffer_and_its_block_owner_is_not_picklable():
    import pickle

    import pycsp.processes as csp

    ch = csp.Channel(buffer=1)
    ch.writer()(pickle.PickleBuffer(bytearray(b"abc" * 1000)))
    got = ch.reader()()
    assert type(got) is pickle.PickleBuffer  # as sent (and as threads deliver it)
    view = got.raw()
    assert bytes(view) == b"abc" * 1000 and not view.readonly
    owner = view.obj  # the object that exports the arena's bytes
    with pytest.raises(TypeError):
        pickle.dumps(owner, 5)  # never an alias of the block in a second process
    ch.writer()(got)  # sent on: a copy in a block of its own
    again = ch.reader()()
    view[0] = ord("x")
    assert bytes(again.raw()[:3]) == b"abc"
