"""Hostile input (issue 6, item 5).

1. The processes backend's message framing.  ``csp_ext._shm_encode_bytes(obj)``
   returns a message block as a writer makes it, ``csp_ext._shm_decode_bytes(data)``
   decodes bytes as a block.  Blocks of builtin payloads are corrupted in their
   header/length region and truncated; the decoder must return or raise an
   ordinary exception, never crash, and free its arena block either way.  The
   loop runs in a child Python: a crash shows as a negative exit status.
   (Pickle streams themselves are not mutated: unpickling runs code, and numpy
   reconstruction is not safe against corrupt pickles.  The native encoding of
   tuples, lists and small arrays (kind 8) is read by our own code: its body is
   mutated too.)

2. Every public call of each backend, given wrong types or values: TypeError or
   ValueError with a message naming the offending thing, and nothing changed.
   Only what tests/test_errors.py does not already cover.
"""
import json
import math

import pytest

import csp_ext
from conftest import BACKENDS, run_script
from net_backend import MULTIPLYING_MAKES_CHANNELS

# --------------------------------------------------------------------------- framing

FUZZ_SCRIPT = r"""
import json, pickle, random, struct, sys
import csp_ext

csp_ext.shm_init()

HEADER = 16  # uint32 kind, uint32 nbuf, uint64 len; then nbuf uint64 lengths

def align64(x):
    return (x + 63) & ~63

payloads = [
    None, True, False, 0, -1, 2**63 - 1, -2**63, 2**64 + 7, -(2**200), 1.5, float("inf"),
    -0.0, complex(1, -2), "", "text", "ünïcödé " * 50, "lone \ud800 surrogate", b"", b"raw bytes", bytes(range(256)) * 40,
    bytearray(b"a bytearray"), bytearray(70000),
    (1, "two", 3.0), [1, [2, [3, [4]]]], {"k": [1, 2], 3: (4, 5)}, {1, 2, 3},
    frozenset({"a", "b"}), list(range(500)), {"nested": {"d": [b"x" * 100]}},
    [bytearray(b"first"), bytearray(b"second" * 30), b"inline"],
    ((), [None, True, -0.0, "é\U0001F600 \udc80", b"b" * 70], ((((1,),),),), 2**40),
]
try:
    import numpy as np
    payloads += [np.arange(300, dtype=np.int32).reshape(3, 100), np.array(2.5),
                 (np.ones(7, dtype=np.complex64), [np.zeros(0, dtype=bool)])]
except ImportError:
    pass
# Out-of-band buffers (protocol 5): PickleBuffers give a block with nbuf > 0
# and a table of buffer lengths.
PB = pickle.PickleBuffer
oob = [
    (PB(b"pb" * 40), "tail"),
    [PB(bytearray(1)), PB(b""), PB(bytearray(65)), PB(b"z" * 200000)],
    {"a": PB(b"x" * 63), "b": PB(b"y" * 64), "c": PB(bytearray(3000)), "d": 1},
]

def plain(obj):
    # obj with every buffer as bytes, to compare a decoded value
    if isinstance(obj, (PB, memoryview)):
        return bytes(memoryview(obj))
    if type(obj).__name__ == "ndarray":
        return [str(obj.dtype), obj.shape, obj.tobytes()]
    if isinstance(obj, (list, tuple)):
        return [plain(x) for x in obj]
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    return obj

blocks = []
for obj in payloads + oob:
    data = csp_ext._shm_encode_bytes(obj)
    back = csp_ext._shm_decode_bytes(data)
    if plain(back) != plain(obj):
        print("ROUNDTRIP MISMATCH", repr(obj)[:80], repr(back)[:80])
        sys.exit(3)
    del back
    blocks.append(data)

kinds = [struct.unpack_from("<I", b, 0)[0] for b in blocks]
nbufs = [struct.unpack_from("<I", b, 4)[0] for b in blocks]
# bytes, bytearray, pickle, int64, float, str, constant, native blocks
assert set(kinds) == {1, 2, 3, 4, 5, 6, 7, 8}, kinds
assert max(nbufs) >= 3, nbufs                  # some with a length table

INTERESTING32 = [0, 1, 2, 3, 4, 5, 7, 0x7F, 0x80, 0xFF, 0x100, 0x7FFFFFFF, 0x80000000,
                 0xFFFFFFFE, 0xFFFFFFFF]
def interesting64(size):
    return [0, 1, 7, 8, 15, 16, 63, 64, 65, size - 64, size - 17, size - 16, size - 1, size,
            size + 1, size + 64, 2**31 - 1, 2**32, 2**32 + 1, 2**63 - 1, 2**63,
            2**64 - 64, 2**64 - 63, 2**64 - 1]

def mutate(rng, block):
    b = bytearray(block)
    if len(b) < HEADER:                           # already cut short: cut or flip more
        if b and rng.randrange(2):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        else:
            del b[rng.randrange(len(b) + 1):]
        return bytes(b)
    nbuf = struct.unpack_from("<I", b, 4)[0]
    region = min(len(b), align64(HEADER + 8 * nbuf))   # header, length table, padding
    if struct.unpack_from("<I", b, 0)[0] == 8 and len(b) > 64 and rng.randrange(2):
        for _ in range(rng.randint(1, 4)):       # native: any byte of the body
            i = rng.randrange(64, len(b))
            if rng.randrange(2):
                b[i] ^= 1 << rng.randrange(8)
            else:
                b[i] = rng.choice([0, 1, 0x7F, 0x80, 0xFF, ord("("), ord("["), ord("a"),
                                   ord("s"), ord("i"), rng.randrange(256)])
        return bytes(b)
    op = rng.randrange(9)
    if op == 0:                                   # flip bits in the header region
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(region)
            b[i] ^= 1 << rng.randrange(8)
    elif op == 1:                                 # random bytes over the header region
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(region)] = rng.randrange(256)
    elif op == 2:                                 # kind
        struct.pack_into("<I", b, 0, rng.choice(INTERESTING32))
    elif op == 3:                                 # nbuf
        struct.pack_into("<I", b, 4, rng.choice(INTERESTING32))
    elif op == 4:                                 # len
        struct.pack_into("<Q", b, 8, rng.choice(interesting64(len(b))) % 2**64)
    elif op == 5 and nbuf and len(b) >= HEADER + 8:  # one buffer length
        i = rng.randrange(min(nbuf, (len(b) - HEADER) // 8))
        struct.pack_into("<Q", b, HEADER + 8 * i, rng.choice(interesting64(len(b))) % 2**64)
    elif op == 6:                                 # truncate
        del b[rng.randrange(len(b) + 1):]
    elif op == 7:                                 # truncate inside the header region
        del b[rng.randrange(region + 1):]
    else:                                         # several at once
        for _ in range(rng.randint(2, 4)):
            b = mutate(rng, bytes(b))
        return b
    return bytes(b)

def stats():
    s = csp_ext.shm_stats()
    return [s["blocks_in_use"], s["bytes_in_use"]]

iterations = int(sys.argv[1])
baseline = stats()
outcomes = {}
bad = []
rng = random.Random(int(sys.argv[2]))
cases = [b""] + [bytes([k]) for k in range(4)] + [bytes(15), bytes(16), bytes(64)]
for n in range(iterations):
    data = cases[n] if n < len(cases) else mutate(rng, rng.choice(blocks))
    try:
        value = csp_ext._shm_decode_bytes(data)
        outcome = "returned " + type(value).__name__
        del value
    except Exception as exc:
        outcome = type(exc).__name__
        # SystemError means C code broke its own contract; MemoryError that a
        # length was believed; neither is a decoder rejecting bad input.
        if isinstance(exc, (SystemError, MemoryError)) and len(bad) < 10:
            bad.append([data[:80].hex(), len(data), repr(exc)[:200]])
        if not str(exc) and len(bad) < 10 and outcome != "EOFError":
            bad.append([data[:80].hex(), len(data), "no message: " + repr(exc)])
    outcomes[outcome] = outcomes.get(outcome, 0) + 1
print("RESULT " + json.dumps({"outcomes": outcomes, "bad": bad, "baseline": baseline,
                              "after": stats()}))
"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_decoder_survives_corrupt_framing(seed):
    proc = run_script(FUZZ_SCRIPT, args=("50000", str(seed)), timeout=100)
    assert proc.returncode == 0, (
        f"the fuzzing Python ended with status {proc.returncode} (negative: killed by that "
        f"signal, -11 is a segfault)\n--- stdout ---\n{proc.stdout[-3000:]}\n"
        f"--- stderr ---\n{proc.stderr[-5000:]}")
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    result = json.loads(line[len("RESULT "):])
    outcomes = result["outcomes"]
    assert sum(v for k, v in outcomes.items() if not k.startswith("returned")) > 1000, outcomes
    assert not result["bad"], f"decoder errors that are not a clean rejection: {result['bad']}"
    # Every rejected or decoded block was freed (the values were dropped).
    assert result["after"] == result["baseline"], (
        f"arena [blocks, bytes] in use: {result['baseline']} before the fuzzing, "
        f"{result['after']} after; outcomes {outcomes}")


def test_decoder_rejects_non_bytes_and_empty_input():
    with pytest.raises(TypeError):
        csp_ext._shm_decode_bytes("not bytes")
    with pytest.raises(TypeError):
        csp_ext._shm_decode_bytes(None)
    with pytest.raises(ValueError) as excinfo:
        csp_ext._shm_decode_bytes(b"")
    assert "corrupt" in str(excinfo.value)


# --------------------------------------------------------------------------- public calls


def _msg(excinfo):
    return str(excinfo.value).lower()


def test_huge_buffer_is_rejected_naming_the_buffer(csp):
    """A buffer size no machine can hold: an error that says it is the buffer."""
    for bad in (2**63, 2**70):
        with pytest.raises((ValueError, OverflowError, MemoryError)) as excinfo:
            csp.Channel(buffer=bad)
        assert "buffer" in _msg(excinfo), (
            f"Channel(buffer={bad}) raised {type(excinfo.value).__name__}: {excinfo.value}")


def test_bool_buffer_is_type_error(csp):
    with pytest.raises(TypeError) as excinfo:
        csp.Channel(buffer=True)
    assert "bool" in _msg(excinfo) and "buffer" in _msg(excinfo)


def test_unknown_channel_argument_is_type_error(csp):
    with pytest.raises(TypeError) as excinfo:
        csp.Channel(buffr=3)
    assert "buffr" in _msg(excinfo)
    with pytest.raises(TypeError):
        csp.Channel("name", 1, 2)


@pytest.mark.local_only(MULTIPLYING_MAKES_CHANNELS)
def test_channel_times_negative_is_value_error(csp):
    with pytest.raises(ValueError) as excinfo:
        csp.Channel() * -2
    assert "-2" in _msg(excinfo)
    assert csp.Channel() * 0 == []


def test_a_huge_finite_timeout_is_accepted(csp):
    """Any finite number of seconds is a valid timeout (it just never fires here)."""
    g, _ = csp.PriSelect(csp.Skip(), csp.TimeoutGuard(1e300))
    assert isinstance(g, csp.SkipGuard)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, -1e-9],
                         ids=["nan", "inf", "-inf", "tiny-negative"])
def test_non_finite_or_negative_timeout_is_value_error(csp, bad):
    for make in (lambda: csp.PriSelect(csp.TimeoutGuard(bad), csp.Skip()),
                 lambda: csp.Alternation([{csp.Timeout(bad): None}, {csp.Skip(): None}]).select()):
        with pytest.raises(ValueError) as excinfo:
            make()
        msg = _msg(excinfo)
        assert "timeout" in msg or "second" in msg


@pytest.mark.parametrize("bad", [True, None, [1], "1"], ids=["bool", "None", "list", "str"])
def test_timeout_of_wrong_type_is_type_error(csp, bad):
    with pytest.raises(TypeError) as excinfo:
        csp.PriSelect(csp.TimeoutGuard(bad), csp.Skip())
    assert type(bad).__name__.lower() in _msg(excinfo)


def test_guard_action_of_wrong_type_is_type_error(csp):
    ch = csp.Channel(buffer=1)
    r, w = ch.reader(), ch.writer()
    makers = {
        "InputGuard": lambda: csp.PriSelect(csp.InputGuard(r, action=42), csp.Skip()),
        "OutputGuard": lambda: csp.PriSelect(csp.OutputGuard(w, "m", action=42)),
        "SkipGuard": lambda: csp.PriSelect(csp.SkipGuard(action=42)),
        "TimeoutGuard": lambda: csp.PriSelect(csp.TimeoutGuard(0, action=42)),
        "dict entry": lambda: csp.Alternation([{csp.Skip(): 42}]).execute(),
        "(cout, msg, action)": lambda: csp.Alternation([(w, "m", 42)]).execute(),
        "(cin, action)": lambda: csp.Alternation([(r, 42)]).execute(),
    }
    for where, make in makers.items():
        with pytest.raises(TypeError) as excinfo:
            make()
        assert "action" in _msg(excinfo), f"{where}: {excinfo.value}"
    # Nothing was written by any of them.
    assert csp.PriSelect(csp.InputGuard(r), csp.Skip())[0] != r


def test_guards_given_a_channel_instead_of_an_end(csp):
    ch = csp.Channel()
    with pytest.raises(TypeError) as excinfo:
        csp.InputGuard(ch)
    assert "reader end" in _msg(excinfo)
    with pytest.raises(TypeError) as excinfo:
        csp.OutputGuard(ch, "m")
    assert "writer end" in _msg(excinfo)


@pytest.mark.parametrize("bad", [42, None, "guards"], ids=["int", "None", "str"])
def test_alternation_of_a_non_list(csp, bad):
    with pytest.raises(TypeError) as excinfo:
        csp.Alternation(bad)
    assert type(bad).__name__.lower() in _msg(excinfo)


def test_empty_alternation_and_select_are_value_errors(csp):
    with pytest.raises(ValueError) as excinfo:
        csp.Alternation([])
    assert "guard" in _msg(excinfo)
    for select in (csp.AltSelect, csp.PriSelect, csp.FairSelect):
        with pytest.raises(ValueError) as excinfo:
            select()
        assert "guard" in _msg(excinfo)


@pytest.mark.timeout(20)
def test_alternation_entries_of_wrong_shape(csp):
    ch = csp.Channel(buffer=1)
    r, w = ch.reader(), ch.writer()
    for entry in [(r,), (w, 1, None, None), (42, "m", None), ("cout", "m", None)]:
        with pytest.raises(TypeError) as excinfo:
            csp.Alternation([entry]).select()
        assert "guard" in _msg(excinfo) or "writer end" in _msg(excinfo), excinfo.value
    # A bare writer end has no message to offer.
    with pytest.raises(TypeError) as excinfo:
        csp.PriSelect(w)
    assert "message" in _msg(excinfo)
    # The channel is untouched.
    w("kept")
    assert r() == "kept"


@pytest.mark.parametrize("decorator", ["process", "choice", "io"])
def test_decorators_reject_non_callables(csp, decorator):
    with pytest.raises(TypeError) as excinfo:
        getattr(csp, decorator)(42)
    assert "int" in _msg(excinfo)


@pytest.mark.parametrize("n", [0, -3])
def test_process_times_non_positive_is_value_error(csp, n):
    @csp.process
    def p():
        pass

    with pytest.raises(ValueError) as excinfo:
        p() * n
    assert str(n) in _msg(excinfo)


@pytest.mark.timeout(20)
def test_writer_end_called_with_wrong_arguments_changes_nothing(csp):
    ch = csp.Channel(buffer=1)
    r, w = ch.reader(), ch.writer()
    for call in (lambda: w(1, 2), lambda: w(msg=1), lambda: w(1, msg=2)):
        with pytest.raises(TypeError) as excinfo:
            call()
        assert "one message" in _msg(excinfo)
    with pytest.raises(TypeError):
        r(timeout=1)
    w("only")
    assert r() == "only"


@pytest.mark.parametrize("runner", ["Parallel", "Sequence", "Spawn"])
def test_runners_reject_sets_and_generators(csp, runner):
    @csp.process
    def p():
        pass

    for bad in ({p()}, (x for x in [p()])):
        with pytest.raises(TypeError) as excinfo:
            getattr(csp, runner)(bad)
        assert type(bad).__name__ in _msg(excinfo)


@pytest.mark.timeout(20)
def test_process_runs_only_once(csp):
    @csp.process
    def p():
        return 1

    proc = p()
    assert csp.Parallel(proc) == [1]
    with pytest.raises((RuntimeError, ValueError)) as excinfo:
        csp.Parallel(proc)
    assert "already" in _msg(excinfo)
    assert csp.Parallel(p()) == [1]


SAME_PROCESS_TWICE = """
import os, sys, time
import pycsp.{backend} as csp

started = csp.Channel(buffer=10)
reader = started.reader()

@csp.process
def p(cout):
    cout(os.getpid())

proc = p(started.writer())
try:
    csp.{runner}(proc, proc)
except (RuntimeError, ValueError, TypeError) as exc:
    print("raised", type(exc).__name__, exc)
else:
    print("accepted")
time.sleep(0.3)
g, msg = csp.PriSelect(csp.InputGuard(reader), csp.Skip())
print("ran:", g is reader)
kids = [ln for ln in os.popen(f"ps --ppid {{os.getpid()}} -o pid=,stat=").read().splitlines()
        if "Z" in ln.split()[-1]]
print("zombies:", len(kids))
os._exit(0)
"""


@pytest.mark.timeout(30)
@pytest.mark.parametrize("runner", ["Parallel", "Spawn"])
def test_same_process_twice_is_rejected_before_anything_starts(backend, runner):
    """``Parallel(p, p)``: a Process runs once; the call fails and, as for any
    bad item (test_errors), no process has started (or been left behind)."""
    proc = run_script(SAME_PROCESS_TWICE.format(backend=backend, runner=runner), timeout=25)
    out = proc.stdout
    assert proc.returncode == 0, f"{out}\n{proc.stderr}"
    assert "raised" in out and "already" in out, out
    assert "ran: False" in out, (
        f"{runner}(p, p) started p before rejecting the second p:\n{out}\n{proc.stderr}")
    assert "zombies: 0" in out, f"{out}\n{proc.stderr}"


def test_one_select_cannot_mix_backends():
    if "processes" not in BACKENDS:
        pytest.skip("processes backend not selected (PYCSP_TEST_BACKENDS)")
    import pycsp.processes as P
    import pycsp.threads as T

    tc, pc = T.Channel(buffer=1), P.Channel(buffer=1)
    tc.writer()("t")
    pc.writer()("p")
    with pytest.raises(TypeError) as excinfo:
        T.PriSelect(T.InputGuard(tc.reader()), T.InputGuard(pc.reader()))
    assert "processes" in _msg(excinfo)
    # Neither message was taken.
    assert tc.reader()() == "t" and pc.reader()() == "p"
