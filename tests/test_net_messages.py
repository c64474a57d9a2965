"""Big messages between programs: pickle protocol 5's out-of-band buffers (numpy arrays,
PickleBuffer) travel as ZeroMQ frames of their own, sent and received without copies; what
arrives is what was sent (contents, dtype, shape, order), whichever side writes."""
import ast
import pickle

import pytest
from conftest import run_script
from net_support import finish, peer_source, start_home, stop

from pycsp.net import _wire

np = pytest.importorskip("numpy")

pytestmark = pytest.mark.timeout(120)

LIMIT = _wire.OUT_OF_BAND_FROM


# -- the frames (no network) ----------------------------------------------------------

def test_a_big_array_is_a_frame_of_its_own_over_the_array_s_memory():
    array = np.arange(LIMIT, dtype=np.float64)
    frames = _wire.dumps(array)
    assert len(frames) == 2
    assert np.shares_memory(np.frombuffer(frames[1], np.uint8), array)
    assert _wire.size(frames) == len(frames[0]) + array.nbytes


def test_buffers_under_the_limit_stay_in_the_pickle():
    assert len(_wire.dumps(np.zeros(LIMIT - 1, np.uint8))) == 1
    assert len(_wire.dumps(np.zeros(LIMIT, np.uint8))) == 2
    assert len(_wire.dumps(pickle.PickleBuffer(bytearray(LIMIT)))) == 2
    assert len(_wire.dumps(bytes(10 * LIMIT))) == 1  # pickle copies bytes and bytearray
    assert len(_wire.dumps(np.zeros((512, 512))[::2, ::2])) == 1  # not contiguous: copied


def test_a_received_array_is_a_writable_view_of_its_frame():
    frames = _wire.dumps({"a": np.arange(LIMIT, dtype=np.int32), "b": np.ones(LIMIT)})
    assert len(frames) == 3
    received = [frames[0]] + [bytearray(frame) for frame in frames[1:]]  # as a socket's frames
    message = _wire.loads(received)
    assert np.array_equal(message["a"], np.arange(LIMIT, dtype=np.int32))
    assert np.shares_memory(message["a"], np.frombuffer(received[1], np.uint8))
    assert np.shares_memory(message["b"], np.frombuffer(received[2], np.uint8))
    message["a"][0] = 7
    assert received[1][0] == 7


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("rebuilder", ["_shm_rebuild_channel", "_shm_rebuild_end"])
def test_a_message_naming_another_program_s_channel_is_refused(protocol, rebuilder):
    """Whatever path loads takes (most pickles skip the Unpickler), one that
    names a channel or an end rebuilt from arena memory is refused, in any
    protocol (0-3 name it as text, with no STACK_GLOBAL)."""
    import csp_ext

    class Forged:
        def __reduce__(self):
            return getattr(csp_ext, rebuilder), (123,)

    with pytest.raises(pickle.UnpicklingError, match="another program's memory"):
        _wire.loads([pickle.dumps(Forged(), protocol)])


@pytest.mark.parametrize("message", [
    b"\x93\x82\x83\x84 bytes like the opcodes that name things", "text \x93", 7, 2.5, None,
    True, 2 ** 70, (1, 2.0, "three"), [b"x"] * 3, {"key": (None, False)}, bytes(200_000)])
def test_what_is_sent_is_what_arrives(message):
    assert _wire.loads(_wire.dumps(message)) == message


# -- across two programs ------------------------------------------------------------

# Run in both programs: the messages, and what the receiver reports of each.
MESSAGES = """
import hashlib
import numpy as np

LIMIT = %d
def messages():
    grid = np.arange(600 * 700, dtype=np.float32).reshape(600, 700)
    return [
        np.arange(4 * 1024 * 1024, dtype=np.uint16),        # 8 MiB
        grid,
        np.asfortranarray(np.arange(300 * 200, dtype=np.int16).reshape(300, 200)),
        grid[::3, 1::2],                                     # not contiguous
        np.arange(LIMIT // 16, dtype=np.complex128),         # exactly the limit
        np.ones(LIMIT - 1, np.uint8), np.ones(LIMIT + 1, np.uint8),
        np.zeros((0, 5)),
        bytes(range(256)) * (LIMIT // 256 - 1), bytes(LIMIT), bytes(LIMIT + 1),
        b"x" * (3 * 1024 * 1024),
        bytearray(b"ab" * LIMIT),
        {"left": np.full(LIMIT, 3, np.int64), "right": [np.eye(200), "text", 5]},
    ]

def describe(m):
    if isinstance(m, dict):
        return {k: describe(v) for k, v in m.items()}
    if isinstance(m, list):
        return [describe(v) for v in m]
    if isinstance(m, np.ndarray):
        return ("ndarray", m.dtype.str, m.shape,
                bool(m.flags.f_contiguous and not m.flags.c_contiguous),
                hashlib.sha256(np.ascontiguousarray(m).tobytes()).hexdigest())
    if isinstance(m, (bytes, bytearray)):
        return (type(m).__name__, len(m), hashlib.sha256(m).hexdigest())
    return m
""" % LIMIT


def expected():
    namespace = {}
    exec(MESSAGES, namespace)
    # What pickle makes of them (a non-contiguous array arrives contiguous)
    return [namespace["describe"](pickle.loads(pickle.dumps(m, protocol=5)))
            for m in namespace["messages"]()]


def described(out):
    return [ast.literal_eval(line.split(" ", 1)[1]) for line in out.splitlines()
            if line.startswith("GOT ")]


def test_big_messages_from_a_remote_writer_arrive_whole(key_file):
    proc, port = start_home(MESSAGES + """
A = pycsp.Channel("A")
print("PORT", A.address[1], flush=True)

@pycsp.process
def reader(cin, count):
    for _ in range(count):
        print("GOT", repr(describe(cin())), flush=True)

pycsp.Parallel(reader(+A, len(messages())))
""", key_file)
    try:
        result = run_script(peer_source(MESSAGES + """
cout = -pycsp.Channel("A", connect=("127.0.0.1", PORT))
for m in messages():
    cout(m)
""", key_file, port), timeout=90)
        assert result.returncode == 0, result.stderr
        code, out, err = finish(proc, timeout=60)
        assert code == 0, err
        assert described(out) == expected()
    finally:
        stop(proc)


def test_big_messages_to_a_remote_reader_arrive_whole_and_writable(key_file):
    proc, port = start_home(MESSAGES + """
A = pycsp.Channel("A")
print("PORT", A.address[1], flush=True)

@pycsp.process
def writer(cout):
    for m in messages():
        cout(m)

pycsp.Parallel(writer(-A))
""", key_file)
    try:
        result = run_script(peer_source(MESSAGES + """
cin = +pycsp.Channel("A", connect=("127.0.0.1", PORT))
for _ in range(len(messages())):
    m = cin()
    print("GOT", repr(describe(m)), flush=True)
    if isinstance(m, np.ndarray) and m.size:
        m.flat[0] = m.flat[-1]  # writable, like a local channel's
""", key_file, port), timeout=90)
        assert result.returncode == 0, result.stderr
        assert described(result.stdout) == expected()
        code, out, err = finish(proc, timeout=60)
        assert code == 0, err
    finally:
        stop(proc)
