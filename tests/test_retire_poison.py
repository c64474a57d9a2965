"""API.md, section "Retire and poison", including propagation through arguments."""
import pytest

from conftest import make_nap


# --------------------------------------------------------------------------- retire


@pytest.mark.timeout(20)
def test_buffered_messages_delivered_after_all_writers_retire(csp):
    ch = csp.Channel(buffer=3)
    w, r = ch.writer(), ch.reader()
    w(1)
    w(2)
    w.retire()
    assert r() == 1
    assert r() == 2
    with pytest.raises(csp.ChannelRetireException):
        r()
    with pytest.raises(csp.ChannelRetireException):
        r()  # and it stays retired


@pytest.mark.timeout(20)
def test_nothing_written_is_lost_by_retire_across_processes(csp):
    n = 500

    @csp.process
    def producer(cout):
        for i in range(n):
            cout(i)
        csp.retire(cout)

    @csp.process
    def consumer(cin):
        got = []
        try:
            while True:
                got.append(cin())
        except csp.ChannelRetireException:
            return got

    ch = csp.Channel(buffer=16)
    _, got = csp.Parallel(producer(ch.writer()), consumer(ch.reader()))
    assert got == list(range(n))


def test_retire_twice_is_harmless(csp):
    ch = csp.Channel()
    w, r = ch.writer(), ch.reader()
    w.retire()
    w.retire()
    csp.retire(w)
    r.retire()
    csp.retire(r, r)


@pytest.mark.timeout(20)
def test_using_a_retired_end_raises(csp):
    ch = csp.Channel(buffer=5)
    w1, w2 = ch.writer(), ch.writer()
    r1, r2 = ch.reader(), ch.reader()
    w1.retire()
    with pytest.raises(csp.ChannelRetireException):
        w1("x")
    w2("y")  # the other writer is still joined
    r1.retire()
    with pytest.raises(csp.ChannelRetireException):
        r1()
    assert r2() == "y"


@pytest.mark.timeout(20)
def test_retire_function_retires_every_end_given(csp):
    a, b = csp.Channel(buffer=1), csp.Channel(buffer=1)
    wa, wb = a.writer(), b.writer()
    ra, rb = a.reader(), b.reader()
    csp.retire(wa, wb)
    for r in (ra, rb):
        with pytest.raises(csp.ChannelRetireException):
            r()


@pytest.mark.timeout(20)
def test_all_readers_retired_blocked_writer_raises(csp):
    nap = make_nap(csp)
    outcome = []

    @csp.process
    def writer(cout):
        try:
            cout("never read")
        except csp.ChannelRetireException:
            outcome.append("retired")
            raise

    @csp.process
    def leaver(cin1, cin2):
        nap(0.2)
        cin1.retire()
        cin2.retire()

    ch = csp.Channel()
    results = csp.Parallel(writer(ch.writer()), leaver(ch.reader(), ch.reader()))
    assert results == [None, None]
    assert outcome == ["retired"]
    with pytest.raises(csp.ChannelRetireException):
        ch.writer()("later write")


@pytest.mark.timeout(20)
def test_all_writers_retired_blocked_reader_raises(csp):
    nap = make_nap(csp)
    outcome = []

    @csp.process
    def reader(cin):
        try:
            cin()
        except csp.ChannelRetireException:
            outcome.append("retired")
            raise

    @csp.process
    def leaver(cout):
        nap(0.2)
        cout.retire()

    ch = csp.Channel()
    assert csp.Parallel(reader(+ch), leaver(-ch)) == [None, None]
    assert outcome == ["retired"]


@pytest.mark.timeout(20)
def test_one_reader_retiring_does_not_retire_the_channel(csp):
    @csp.process
    def writer(cout, n):
        for i in range(n):
            cout(i)

    @csp.process
    def reader(cin, n):
        return [cin() for _ in range(n)]

    ch = csp.Channel()
    quitter = ch.reader()
    quitter.retire()
    assert csp.Parallel(writer(-ch, 5), reader(+ch, 5)) == [None, list(range(5))]


# --------------------------------------------------------------------------- poison


@pytest.mark.timeout(20)
@pytest.mark.parametrize("how", ["channel", "end_method", "function_writer", "function_reader"])
def test_poison_wakes_blocked_readers(csp, how):
    nap = make_nap(csp)
    woken = []

    @csp.process
    def reader(cin):
        try:
            cin()
        except csp.ChannelPoisonException:
            woken.append(True)
            raise

    ch = csp.Channel()
    spare_w, spare_r = ch.writer(), ch.reader()

    @csp.process
    def poisoner():
        nap(0.2)
        if how == "channel":
            ch.poison()
        elif how == "end_method":
            spare_w.poison()
        elif how == "function_writer":
            csp.poison(spare_w)
        else:
            csp.poison(spare_r)

    results = csp.Parallel([reader(ch.reader()) for _ in range(3)], poisoner())
    assert results == [None, None, None, None]
    assert woken == [True, True, True]


@pytest.mark.timeout(20)
def test_poison_wakes_blocked_writers(csp):
    nap = make_nap(csp)
    woken = []

    @csp.process
    def writer(cout, i):
        try:
            cout(i)
        except csp.ChannelPoisonException:
            woken.append(i)
            raise

    ch = csp.Channel()
    r = ch.reader()  # joined, never reads: every write blocks

    @csp.process
    def poisoner():
        nap(0.2)
        r.poison()

    results = csp.Parallel([writer(ch.writer(), i) for i in range(4)], poisoner())
    assert results == [None] * 5
    assert sorted(woken) == [0, 1, 2, 3]


@pytest.mark.timeout(20)
def test_poison_drops_buffered_messages(csp):
    ch = csp.Channel(buffer=4)
    w, r = ch.writer(), ch.reader()
    w(1)
    w(2)
    csp.poison(w)
    with pytest.raises(csp.ChannelPoisonException):
        r()
    with pytest.raises(csp.ChannelPoisonException):
        w(3)


@pytest.mark.timeout(20)
def test_poison_is_permanent_and_reaches_every_end(csp):
    ch = csp.Channel()
    ends = [ch.reader(), ch.reader(), ch.writer()]
    ch.poison()
    for _ in range(2):
        with pytest.raises(csp.ChannelPoisonException):
            ends[0]()
        with pytest.raises(csp.ChannelPoisonException):
            ends[1]()
        with pytest.raises(csp.ChannelPoisonException):
            ends[2]("x")
    ch.poison()  # poisoning again is harmless


@pytest.mark.timeout(20)
def test_poison_does_not_touch_other_channels(csp):
    a, b = csp.Channel(buffer=1), csp.Channel(buffer=1)
    wa, wb, rb = a.writer(), b.writer(), b.reader()
    csp.poison(wa)
    wb("ok")
    assert rb() == "ok"


# --------------------------------------------------------------------------- propagation


def _probe_ends(csp):
    """Six buffered channels (room for 2) with one message already waiting in each.

    On each, a new writer end can write once and a new reader end can read once
    without blocking, unless the channel is poisoned or that end retired; so a
    probe that does not raise fails the test instead of hanging it.
    """
    chans = [csp.Channel(buffer=2) for _ in range(6)]
    for c in chans:
        c.writer()("pre")  # that temporary writer stays joined: no retire from it
    return chans


@pytest.mark.timeout(20)
def test_poison_propagates_through_args_lists_tuples_dicts_sets_kwargs(csp):
    chans = _probe_ends(csp)
    w_list = chans[0].writer()
    r_tuple = chans[1].reader()
    w_dict = chans[2].writer()
    r_set = chans[3].reader()
    w_kw = chans[4].writer()
    ch_kw = chans[5]
    probe_kw = ch_kw.reader()
    dead = csp.Channel()
    dead_r = dead.reader()
    dead.poison()

    @csp.process
    def victim(cin, some_list, some_tuple, some_dict, some_set, *, kw_end, kw_chan):
        cin()  # raises ChannelPoisonException: the body ends with it

    results = csp.Parallel(
        victim(
            dead_r,
            [1, [w_list]],
            ("x", r_tuple),
            {"key": w_dict},
            {r_set},
            kw_end=w_kw,
            kw_chan=ch_kw,
        )
    )
    assert results == [None]
    with pytest.raises(csp.ChannelPoisonException):
        w_list("after")
    with pytest.raises(csp.ChannelPoisonException):
        r_tuple()  # buffered "pre" was dropped by the poison
    with pytest.raises(csp.ChannelPoisonException):
        w_dict("after")
    with pytest.raises(csp.ChannelPoisonException):
        r_set()
    with pytest.raises(csp.ChannelPoisonException):
        w_kw("after")
    with pytest.raises(csp.ChannelPoisonException):
        probe_kw()


@pytest.mark.timeout(20)
def test_retire_propagates_through_args_lists_tuples_dicts_sets_kwargs(csp):
    chans = _probe_ends(csp)
    w_list = chans[0].writer()
    r_tuple = chans[1].reader()
    w_dict = chans[2].writer()
    r_set = chans[3].reader()
    w_kw = chans[4].writer()
    untouched_w = chans[4].writer()
    gone = csp.Channel()
    gone_r = gone.reader()
    gone.writer().retire()  # the only writer left: reading raises retire

    @csp.process
    def victim(cin, some_list, some_tuple, some_dict, some_set, *, kw_end):
        cin()  # raises ChannelRetireException: the body ends with it

    results = csp.Parallel(
        victim(gone_r, [[w_list]], (r_tuple,), {"k": w_dict}, {r_set}, kw_end=w_kw)
    )
    assert results == [None]
    # Every end found is retired: using it raises ChannelRetireException ...
    for w in (w_list, w_dict, w_kw):
        with pytest.raises(csp.ChannelRetireException):
            w("after")
    for r in (r_tuple, r_set):
        with pytest.raises(csp.ChannelRetireException):
            r()
    # ... but retiring is not poisoning: the channels themselves still work.
    untouched_w("still fine")
    r4 = chans[4].reader()
    assert r4() == "pre"
    assert r4() == "still fine"


@pytest.mark.timeout(20)
def test_poison_propagation_stops_a_pipeline(csp):
    """Poisoning one end of a pipeline ends every stage; Parallel returns normally."""

    @csp.process
    def source(cout):
        for i in range(10):
            cout(i)
        csp.poison(cout)

    @csp.process
    def stage(cin, cout):
        while True:
            cout(cin() + 1)

    @csp.process
    def sink(cin, got):
        while True:
            got.append(cin())

    got = []
    a, b, c = csp.Channel() * 3
    results = csp.Parallel(source(-a), stage(+a, -b), stage(+b, -c), sink(+c, got))
    assert results == [None, None, None, None]
    assert got == list(range(2, 12))


@pytest.mark.timeout(20)
def test_retire_propagation_drains_a_pipeline(csp):
    @csp.process
    def source(cout):
        for i in range(10):
            cout(i)
        csp.retire(cout)

    @csp.process
    def stage(cin, cout):
        while True:
            cout(cin() * 2)

    @csp.process
    def sink(cin):
        got = []
        try:
            while True:
                got.append(cin())
        except csp.ChannelRetireException:
            return got

    a, b = csp.Channel(buffer=3), csp.Channel(buffer=3)
    results = csp.Parallel(source(-a), stage(+a, -b), sink(+b))
    assert results == [None, None, [i * 2 for i in range(10)]]
