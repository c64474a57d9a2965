"""API.md, section "Retire and poison", including propagation through arguments."""
import pytest

from conftest import make_nap, stream_processes


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
    producer, consumer = stream_processes(csp)
    ch = csp.Channel(buffer=16)
    _, got = csp.Parallel(producer(ch.writer(), range(n)), consumer(ch.reader()))
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
@pytest.mark.parametrize("how", ["retire", "poison"])
def test_retire_and_poison_take_lists_of_ends(csp, how):
    """As PyCSP 0.9.2's pycsp.parallel did: ``retire(cin_list)``, nested too."""
    chans = [csp.Channel(buffer=1) for _ in range(3)]  # not Channel() * 3: net has none
    writers = [ch.writer() for ch in chans]
    readers = [ch.reader() for ch in chans]
    getattr(csp, how)([writers[0], (writers[1], [writers[2]])])
    expected = csp.ChannelRetireException if how == "retire" else csp.ChannelPoisonException
    for r in readers:
        with pytest.raises(expected):
            r()


@pytest.mark.parametrize("how", ["retire", "poison"])
def test_retire_and_poison_refuse_what_is_no_end_and_change_nothing(csp, how):
    ch = csp.Channel(buffer=1)
    w, r = ch.writer(), ch.reader()
    bad = ch if how == "retire" else 42  # a channel has no end to retire
    with pytest.raises(TypeError, match=f"{how}\\(\\) takes channel ends"):
        getattr(csp, how)(w, [bad])
    w("still open")
    assert r() == "still open"


@pytest.mark.timeout(20)
def test_all_readers_retired_blocked_writer_raises(csp):
    nap = make_nap(csp)

    @csp.process
    def writer(cout):
        try:
            cout("never read")
        except csp.ChannelRetireException:
            return "retired"

    @csp.process
    def leaver(cin1, cin2):
        nap(0.2)
        cin1.retire()
        cin2.retire()

    ch = csp.Channel()
    results = csp.Parallel(writer(ch.writer()), leaver(ch.reader(), ch.reader()))
    assert results == ["retired", None]
    with pytest.raises(csp.ChannelRetireException):
        ch.writer()("later write")


@pytest.mark.timeout(20)
def test_all_writers_retired_blocked_reader_raises(csp):
    nap = make_nap(csp)

    @csp.process
    def reader(cin):
        try:
            cin()
        except csp.ChannelRetireException:
            return "retired"

    @csp.process
    def leaver(cout):
        nap(0.2)
        cout.retire()

    ch = csp.Channel()
    assert csp.Parallel(reader(+ch), leaver(-ch)) == ["retired", None]


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
    quitter, stayer = ch.reader(), ch.reader()
    quitter.retire()  # stayer is still joined: the channel stays open
    assert csp.Parallel(writer(-ch, 5), reader(stayer, 5)) == [None, list(range(5))]


# --------------------------------------------------------------------------- poison


@pytest.mark.timeout(20)
@pytest.mark.parametrize("how", ["channel", "end_method", "function_writer", "function_reader"])
def test_poison_wakes_blocked_readers(csp, how):
    nap = make_nap(csp)

    @csp.process
    def reader(cin):
        try:
            cin()
        except csp.ChannelPoisonException:
            return "woken"

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
    assert results == ["woken", "woken", "woken", None]


@pytest.mark.timeout(20)
def test_poison_wakes_blocked_writers(csp):
    nap = make_nap(csp)

    @csp.process
    def writer(cout, i):
        try:
            cout(i)
        except csp.ChannelPoisonException:
            return i

    ch = csp.Channel()
    r = ch.reader()  # joined, never reads: every write blocks

    @csp.process
    def poisoner():
        nap(0.2)
        r.poison()

    results = csp.Parallel([writer(ch.writer(), i) for i in range(4)], poisoner())
    assert results == [0, 1, 2, 3, None]


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
    # Each end handed to the process is the only end of its kind on its channel,
    # so its retiring shows at the channel, seen through probes the main
    # program holds (on every backend, whatever happens to the process's copy).
    def writer_case():
        ch = csp.Channel(buffer=2)
        w, probe = ch.writer(), ch.reader()
        w("pre")
        return w, probe

    def reader_case():
        ch = csp.Channel(buffer=2)
        r, probe = ch.reader(), ch.writer()
        return r, probe

    w_list, probe_list = writer_case()
    r_tuple, probe_tuple = reader_case()
    w_dict, probe_dict = writer_case()
    r_set, probe_set = reader_case()
    w_kw, probe_kw = writer_case()
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
    # Writer ends retired: what they wrote is still delivered, then retire.
    for probe in (probe_list, probe_dict, probe_kw):
        assert probe() == "pre"
        with pytest.raises(csp.ChannelRetireException):
            probe()
    # Reader ends retired: no reader left, writes raise retire.
    for probe in (probe_tuple, probe_set):
        with pytest.raises(csp.ChannelRetireException):
            probe("after")


@pytest.mark.timeout(20)
def test_retire_propagation_is_not_poison(csp):
    ch = csp.Channel(buffer=2)
    w_passed, w_other, r = ch.writer(), ch.writer(), ch.reader()
    gone = csp.Channel()
    gone_r = gone.reader()
    gone.writer().retire()

    @csp.process
    def victim(cin, cout):
        cin()

    assert csp.Parallel(victim(gone_r, w_passed)) == [None]
    # The other writer is still joined: the channel still works.
    w_other("still fine")
    assert r() == "still fine"


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
    def sink(cin):
        got = []
        try:
            while True:
                got.append(cin())
        except csp.ChannelPoisonException:
            return got

    a, b, c = csp.Channel(), csp.Channel(), csp.Channel()  # not Channel() * 3: net has none
    results = csp.Parallel(source(-a), stage(+a, -b), stage(+b, -c), sink(+c))
    assert results == [None, None, None, list(range(2, 12))]


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


@pytest.mark.timeout(20)
def test_raising_the_exceptions_directly_propagates(csp):
    """Old programs end a process with ``raise ChannelPoisonException()``."""
    a, b = csp.Channel(buffer=1), csp.Channel(buffer=1)
    probe_a, probe_b = a.reader(), b.reader()
    keep_b = b.writer()
    keep_b("pre")

    @csp.process
    def poisons(cout):
        raise csp.ChannelPoisonException()

    @csp.process
    def retires(cout):
        raise csp.ChannelRetireException()

    assert csp.Parallel(poisons(a.writer()), retires(b.writer())) == [None, None]
    with pytest.raises(csp.ChannelPoisonException):
        probe_a()
    assert probe_b() == "pre"  # b only lost one of its two writers
