"""API.md, section "Channels": rendezvous, buffers, any-to-any, ends, messages."""
import gc
import math
import pickle
import time
import tracemalloc
import weakref
from collections import Counter

import pytest

from conftest import COPYING_BACKENDS, by_backend, make_nap, stream_processes
from net_backend import MULTIPLYING_MAKES_CHANNELS


def poll_read(csp, cin):
    """Read one message if one is ready now; return (True, msg) or (False, None)."""
    skip = csp.SkipGuard()
    g, msg = csp.PriSelect(csp.InputGuard(cin), skip)
    if g is skip:
        return False, None
    return True, msg


# --------------------------------------------------------------------------- rendezvous


@pytest.mark.timeout(20)
def test_rendezvous_write_returns_only_after_reader_took_it(csp):
    # Observed through return values and the monotonic clock (shared by every
    # thread and OS process), so the test holds on every backend.
    nap = make_nap(csp)

    @csp.process
    def writer(cout):
        cout("m")
        return time.monotonic()  # when the write returned

    @csp.process
    def reader(cin):
        nap(0.3)
        started = time.monotonic()
        return started, cin()

    ch = csp.Channel()
    write_returned, (read_started, msg) = csp.Parallel(writer(ch.writer()), reader(ch.reader()))
    assert msg == "m"
    # Whatever the scheduling, the write cannot return before the reader started.
    assert read_started <= write_returned


@pytest.mark.timeout(20)
def test_rendezvous_many_messages_in_order(csp):
    n = 1000

    @csp.process
    def producer(cout):
        for i in range(n):
            cout(i)

    @csp.process
    def consumer(cin):
        return [cin() for _ in range(n)]

    ch = csp.Channel()
    _, got = csp.Parallel(producer(-ch), consumer(+ch))
    assert got == list(range(n))


# --------------------------------------------------------------------------- buffered


@pytest.mark.timeout(20)
def test_buffered_channel_is_fifo_and_writes_do_not_block_until_full(csp):
    ch = csp.Channel(buffer=3)
    cout, cin = ch.writer(), ch.reader()
    # Three writes from the main program with no reader running: none may block.
    cout("a")
    cout("b")
    cout("c")
    # The fourth would block: offered through a non-blocking choice, it is not taken.
    skip = csp.SkipGuard()
    g, msg = csp.PriSelect(csp.OutputGuard(cout, "d"), skip)
    assert g is skip and msg is None
    assert [cin(), cin(), cin()] == ["a", "b", "c"]
    assert poll_read(csp, cin) == (False, None)


@pytest.mark.timeout(20)
def test_buffered_write_blocks_when_full_until_a_read(csp):
    nap = make_nap(csp)

    @csp.process
    def writer(cout):
        for i in range(3):
            cout(i)
        return time.monotonic()  # when the third write returned

    @csp.process
    def reader(cin):
        nap(0.3)
        started = time.monotonic()
        return started, [cin(), cin(), cin()]

    ch = csp.Channel(buffer=2)
    third_returned, (read_started, got) = csp.Parallel(writer(ch.writer()), reader(ch.reader()))
    assert got == [0, 1, 2]
    assert read_started <= third_returned


@pytest.mark.timeout(20)
def test_buffered_channel_fifo_across_processes(csp):
    n = 2000

    @csp.process
    def producer(cout):
        for i in range(n):
            cout(i)

    @csp.process
    def consumer(cin):
        return [cin() for _ in range(n)]

    ch = csp.Channel(buffer=7)
    _, got = csp.Parallel(producer(ch.writer()), consumer(ch.reader()))
    assert got == list(range(n))


@pytest.mark.timeout(30)
def test_large_buffer_keeps_order(csp, backend):
    n = by_backend(backend, default=100_000, net=5_000)  # net: a round trip per message
    ch = csp.Channel(buffer=n)
    w, r = ch.writer(), ch.reader()
    for i in range(n):
        w(i)
    assert [r() for _ in range(n)] == list(range(n))


# --------------------------------------------------------------------------- any-to-any


@pytest.mark.timeout(30)
@pytest.mark.parametrize("buffer", [0, 5], ids=["rendezvous", "buffered"])
def test_any_to_any_every_message_delivered_exactly_once(csp, buffer):
    writers, readers, per_writer = 4, 3, 300

    producer, consumer = stream_processes(csp)
    ch = csp.Channel(buffer=buffer)
    results = csp.Parallel(
        [producer(ch.writer(), [(w, i) for i in range(per_writer)]) for w in range(writers)],
        [consumer(ch.reader()) for _ in range(readers)],
    )
    received = [m for part in results[writers:] for m in part]
    counts = Counter(received)
    assert set(counts) == {(w, i) for w in range(writers) for i in range(per_writer)}
    assert max(counts.values()) == 1
    # One writer's messages reach any single reader in the order they were written.
    for part in results[writers:]:
        for w in range(writers):
            seq = [i for (wid, i) in part if wid == w]
            assert seq == sorted(seq)


@pytest.mark.timeout(20)
def test_channel_constructor_arguments(csp):
    named = csp.Channel("requests")
    both = csp.Channel(name="replies", buffer=2)
    positional = csp.Channel("jobs", 1)
    for ch in (named, both, positional):
        assert isinstance(ch, csp.Channel)
    w, r = both.writer(), both.reader()
    w(1)
    w(2)  # buffer=2 taken by keyword
    assert [r(), r()] == [1, 2]
    w, r = positional.writer(), positional.reader()
    w("j")  # buffer=1 taken positionally
    assert r() == "j"


# --------------------------------------------------------------------------- ends


def test_end_constructors_give_the_right_types(csp):
    ch = csp.Channel()
    readers = [ch.reader(), +ch, csp.IN(ch)]
    writers = [ch.writer(), -ch, csp.OUT(ch)]
    for r in readers:
        assert isinstance(r, csp.ChannelEndRead)
        assert not isinstance(r, csp.ChannelEndWrite)
    for w in writers:
        assert isinstance(w, csp.ChannelEndWrite)
        assert not isinstance(w, csp.ChannelEndRead)
    # Each call joins the channel once more: distinct end objects.
    assert len({id(e) for e in readers + writers}) == 6


@pytest.mark.timeout(20)
def test_ends_and_channels_have_a_repr(csp):
    ch = csp.Channel("named")
    for obj in (ch, ch.reader(), ch.writer()):
        assert isinstance(repr(obj), str) and repr(obj)


@pytest.mark.timeout(20)
def test_every_end_form_talks_to_the_same_channel(csp):
    ch = csp.Channel(buffer=10)
    writers = [ch.writer(), -ch, csp.OUT(ch)]
    readers = [ch.reader(), +ch, csp.IN(ch)]
    for i, w in enumerate(writers):
        w(i)
    assert [r() for r in readers] == [0, 1, 2]


@pytest.mark.timeout(20)
def test_each_end_counts_as_one_more_reader(csp):
    # The channel retires for writers only when every reader end has retired.
    ch = csp.Channel(buffer=1)
    r1, r2, r3 = ch.reader(), +ch, csp.IN(ch)
    w = ch.writer()
    r1.retire()
    r2.retire()
    w("still open")  # r3 is still joined
    assert r3() == "still open"
    r3.retire()
    with pytest.raises(csp.ChannelRetireException):
        w("nobody left")


@pytest.mark.timeout(20)
def test_each_end_counts_as_one_more_writer(csp):
    ch = csp.Channel(buffer=2)
    w1, w2, w3 = ch.writer(), -ch, csp.OUT(ch)
    r = ch.reader()
    w1("x")
    w1.retire()
    w2.retire()
    assert r() == "x"
    w3("y")
    w3.retire()
    assert r() == "y"
    with pytest.raises(csp.ChannelRetireException):
        r()


@pytest.mark.local_only(MULTIPLYING_MAKES_CHANNELS)
def test_channel_times_three_gives_three_distinct_channels(csp):
    for chans in (csp.Channel() * 3, 3 * csp.Channel()):
        assert isinstance(chans, list)
        assert len(chans) == 3
        assert all(isinstance(c, csp.Channel) for c in chans)
        assert len({id(c) for c in chans}) == 3


@pytest.mark.timeout(20)
@pytest.mark.local_only(MULTIPLYING_MAKES_CHANNELS)
def test_multiplied_channels_are_independent(csp):
    chans = csp.Channel(buffer=1) * 3
    outs = [c.writer() for c in chans]
    ins = [c.reader() for c in chans]
    for i, w in enumerate(outs):
        w(i)
    assert [r() for r in reversed(ins)] == [2, 1, 0]
    chans[0].poison()
    outs[1](11)  # the others are untouched by poisoning the first
    assert ins[1]() == 11
    with pytest.raises(csp.ChannelPoisonException):
        outs[0](0)


@pytest.mark.timeout(20)
@pytest.mark.local_only(MULTIPLYING_MAKES_CHANNELS)
def test_buffered_multiplied_channels_keep_buffer(csp):
    for chans in (csp.Channel(buffer=2) * 2, 2 * csp.Channel(buffer=2)):
        for c in chans:
            w, r = c.writer(), c.reader()
            w(1)
            w(2)  # neither write blocks: each copy has its own buffer of 2
            assert [r(), r()] == [1, 2]


# --------------------------------------------------------------------------- messages


@pytest.mark.timeout(20)
def test_message_identity_follows_backend(csp, backend):
    payload = {"list": [1, 2, 3]}

    @csp.process
    def producer(cout):
        cout(payload)

    @csp.process
    def consumer(cin):
        msg = cin()
        if backend not in COPYING_BACKENDS:
            msg["list"].append(4)  # visible to the writer: it is the same object
        return msg

    ch = csp.Channel()
    _, got = csp.Parallel(producer(ch.writer()), consumer(ch.reader()))
    if backend in COPYING_BACKENDS:
        assert got == {"list": [1, 2, 3]}
        assert got is not payload
        assert payload == {"list": [1, 2, 3]}
    else:
        assert got is payload
        assert payload["list"] == [1, 2, 3, 4]


@pytest.mark.timeout(20)
def test_buffered_message_is_passed_by_reference(csp, backend):
    obj = object() if backend not in COPYING_BACKENDS else None
    ch = csp.Channel(buffer=1)
    w, r = ch.writer(), ch.reader()
    w(obj)
    got = r()
    if backend in COPYING_BACKENDS:
        assert got is None
    else:
        assert got is obj


@pytest.mark.timeout(20)
def test_unpicklable_message(csp, backend):
    """threads/greenlets pass anything; processes raise at the writer, channel usable."""
    ch = csp.Channel(buffer=2)
    w, r = ch.writer(), ch.reader()
    bad = lambda: None  # noqa: E731  (lambdas cannot be pickled)
    if backend in COPYING_BACKENDS:
        with pytest.raises((pickle.PicklingError, TypeError, AttributeError)):
            w(bad)
        w("fine")
        assert r() == "fine"
        assert poll_read(csp, r) == (False, None)
    else:
        w(bad)
        assert r() is bad


@pytest.mark.timeout(20)
def test_none_and_falsy_messages_are_delivered(csp):
    ch = csp.Channel(buffer=5)
    w, r = ch.writer(), ch.reader()
    values = [None, 0, "", (), False]
    for v in values:
        w(v)
    got = [r() for _ in values]
    assert got == values
    assert [type(v) for v in got] == [type(v) for v in values]


class Flag(int):
    pass


class Text(str):
    pass


SCALARS = [0, 1, -1, 2**63 - 1, -2**63, 2**63, -2**200, True, False, None, Flag(3),
           1.5, -0.0, float("inf"), float("-inf"), 1e-310, "", "ascii", "ünïcödé ✓",
           "lone \ud800 surrogate", "x" * 100_000, Text("sub")]


@pytest.mark.timeout(20)
def test_scalar_messages_keep_value_and_type(csp):
    """processes encodes int64, float, str and the constants without pickle; an
    int beyond 64 bits and subclasses go through pickle: all arrive the same."""
    ch = csp.Channel(buffer=len(SCALARS) + 1)
    w, r = ch.writer(), ch.reader()
    for v in SCALARS + [float("nan")]:
        w(v)
    got = [r() for _ in range(len(SCALARS) + 1)]
    assert got[:-1] == SCALARS
    assert [type(v) for v in got[:-1]] == [type(v) for v in SCALARS]
    assert math.isnan(got[-1]) and type(got[-1]) is float
    negative_zero = next(i for i, v in enumerate(SCALARS) if type(v) is float and v == 0)
    assert math.copysign(1.0, got[negative_zero]) == -1.0


@pytest.mark.timeout(20)
def test_channel_end_is_itself_a_message(csp):
    """Mobile channel ends: a writer end is sent to a process, which uses it."""

    @csp.process
    def server(cin_ends):
        reply_to = cin_ends()
        reply_to("hello through a mobile end")
        reply_to.retire()

    ends = csp.Channel()
    data = csp.Channel()
    data_in = data.reader()

    @csp.process
    def client(cout_ends):
        cout_ends(data.writer())
        return data_in()

    _, got = csp.Parallel(server(ends.reader()), client(ends.writer()))
    assert got == "hello through a mobile end"


# --------------------------------------------------------------------------- leaks


class _Msg:
    pass


@pytest.mark.by_reference
@pytest.mark.timeout(30)
@pytest.mark.parametrize("buffer", [0, 4], ids=["rendezvous", "buffered"])
def test_delivered_messages_are_not_kept_alive(csp, backend, buffer):
    """After a message has been read and dropped, the channel holds no reference."""
    n = 50
    refs = []

    @csp.process
    def producer(cout):
        for _ in range(n):
            m = _Msg()
            refs.append(weakref.ref(m))
            cout(m)
            del m

    @csp.process
    def consumer(cin):
        for _ in range(n):
            cin()

    ch = csp.Channel(buffer=buffer)
    csp.Parallel(producer(ch.writer()), consumer(ch.reader()))
    gc.collect()
    assert len(refs) == n
    assert [r for r in refs if r() is not None] == []


@pytest.mark.timeout(60)
def test_channel_operations_do_not_grow_memory(csp, backend):
    """A long loop of communications leaves traced memory steady (no leaks)."""
    # Over the network each operation is a round trip (~0.3 ms): fewer of them,
    # still more than one small object (~50 bytes) per iteration would show.
    long_loop = by_backend(backend, default=20000, net=3000)
    warm_up = by_backend(backend, default=2000, net=300)
    ch = csp.Channel(buffer=8)
    w, r = ch.writer(), ch.reader()
    skip = csp.SkipGuard()

    def loop(k):
        for i in range(k):
            w(("msg", i))
            w(i)
            r()
            r()
            csp.PriSelect(csp.InputGuard(r), skip)
            csp.PriSelect(csp.OutputGuard(w, i), skip)
            r()

    loop(warm_up)  # warm up caches and free lists
    gc.collect()
    tracemalloc.start()
    try:
        loop(warm_up)
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        loop(long_loop)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    # 20,000 iterations of 7 operations: a leak of even one small object per
    # iteration would show up as more than 500 KB (3,000 over the network: 75 KB).
    assert after - before < 10 * long_loop, f"traced memory grew by {after - before} bytes"


@pytest.mark.by_reference
@pytest.mark.timeout(30)
def test_messages_through_selects_are_not_kept_alive(csp, backend):
    """Messages committed by selects, and offers withdrawn unchosen, are released."""
    refs = []
    ch = csp.Channel(buffer=1)
    w, r = ch.writer(), ch.reader()
    full = csp.Channel(buffer=1)
    full_w, full_r = full.writer(), full.reader()
    full_w("occupied")  # an output guard on it is never ready
    skip = csp.SkipGuard()
    for _ in range(50):
        m = _Msg()
        refs.append(weakref.ref(m))
        # Offered on a full channel, then withdrawn when the skip commits.
        g, _ = csp.PriSelect(csp.OutputGuard(full_w, m), skip)
        assert g is skip
        # Committed through an output guard and read back through an input guard.
        g, _ = csp.PriSelect(csp.OutputGuard(w, m))
        assert g is w
        g, got = csp.PriSelect(csp.InputGuard(r))
        assert got is m
        del m, got
    gc.collect()
    assert [ref for ref in refs if ref() is not None] == []


@pytest.mark.timeout(60)
def test_buffer_matches_a_fifo_model(csp):
    """Random interleavings of non-blocking writes and reads agree with a deque."""
    from collections import deque

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    @settings(max_examples=60, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(capacity=st.integers(min_value=1, max_value=6),
           ops=st.lists(st.one_of(st.integers(0, 1000), st.none()), max_size=60))
    def check(capacity, ops):
        ch = csp.Channel(buffer=capacity)
        w, r = ch.writer(), ch.reader()
        skip = csp.SkipGuard()
        model = deque()
        for op in ops:
            if op is None:  # try to read
                g, msg = csp.PriSelect(csp.InputGuard(r), skip)
                if model:
                    assert (g, msg) == (r, model.popleft())
                else:
                    assert g is skip
            else:  # try to write
                g, _ = csp.PriSelect(csp.OutputGuard(w, op), skip)
                if len(model) < capacity:
                    assert g is w
                    model.append(op)
                else:
                    assert g is skip
        w.retire()
        assert [r() for _ in range(len(model))] == list(model)
        with pytest.raises(csp.ChannelRetireException):
            r()

    check()


@pytest.mark.by_reference
@pytest.mark.timeout(20)
@pytest.mark.parametrize("fate", ["channel_dropped", "poisoned"])
def test_buffered_messages_released(csp, backend, fate):
    """Messages left in a buffer are released when they can never be read."""
    ch = csp.Channel(buffer=3)
    w, r = ch.writer(), ch.reader()
    msgs = [_Msg() for _ in range(3)]
    refs = [weakref.ref(m) for m in msgs]
    for m in msgs:
        w(m)
    del msgs, m
    if fate == "channel_dropped":
        del ch, w, r
    else:
        ch.poison()
    gc.collect()
    assert [ref for ref in refs if ref() is not None] == []


@pytest.mark.by_reference
@pytest.mark.timeout(20)
def test_message_of_a_refused_write_is_released(csp, backend):
    ch = csp.Channel(buffer=3)
    w, r = ch.writer(), ch.reader()
    r.retire()  # every reader left: writes raise retire
    m = _Msg()
    ref = weakref.ref(m)
    with pytest.raises(csp.ChannelRetireException):
        w(m)
    del m
    gc.collect()
    assert ref() is None


@pytest.mark.by_reference
@pytest.mark.timeout(20)
def test_message_of_a_failed_blocked_write_is_released(csp, backend):
    nap = make_nap(csp)
    refs = []

    @csp.process
    def writer(cout):
        m = _Msg()
        refs.append(weakref.ref(m))
        try:
            cout(m)
        except csp.ChannelPoisonException:
            return "poisoned"

    @csp.process
    def poisoner(cin):
        nap(0.2)
        cin.poison()

    ch = csp.Channel()
    assert csp.Parallel(writer(-ch), poisoner(+ch)) == ["poisoned", None]
    gc.collect()
    assert len(refs) == 1 and refs[0]() is None
