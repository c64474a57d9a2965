"""Large networks, checked exactly. Marked ``stress`` (deselect with -m "not stress")."""
from collections import Counter

import pytest

from conftest import by_backend, stream_processes

pytestmark = pytest.mark.stress


@pytest.mark.timeout(120)
def test_ten_thousand_processes_in_one_parallel(csp, backend):
    """10,000 processes at once on one any-to-any channel, one communication each."""
    pairs = by_backend(backend, default=5_000, processes=250, net=50)  # 500 OS processes, net: 100

    @csp.process
    def writer(cout, v):
        cout(v)

    @csp.process
    def reader(cin):
        return cin()

    ch = csp.Channel()
    results = csp.Parallel(
        [writer(ch.writer(), i) for i in range(pairs)],
        [reader(ch.reader()) for _ in range(pairs)],
    )
    assert len(results) == 2 * pairs
    assert results[:pairs] == [None] * pairs
    assert sorted(results[pairs:]) == list(range(pairs))


@pytest.mark.timeout(120)
def test_ten_thousand_processes_private_channels(csp, backend):
    """10,000 processes, 5,000 pairs each on its own channel: results in order."""
    pairs = by_backend(backend, default=5_000, processes=250, net=50)  # 500 OS processes, net: 100

    @csp.process
    def writer(cout, v):
        cout(v * 3)

    @csp.process
    def reader(cin):
        return cin()

    chans = [csp.Channel() for _ in range(pairs)]
    results = csp.Parallel(
        [reader(c.reader()) for c in chans],
        [writer(c.writer(), i) for i, c in enumerate(chans)],
    )
    assert results[:pairs] == [3 * i for i in range(pairs)]


@pytest.mark.timeout(120)
def test_ring_of_processes_carries_100k_messages(csp):
    """Tokens go round a ring of nodes; 100,000 channel messages in all.

    The head offers a new token and accepts a returning one in the same select,
    so the ring never fills up. Each node adds 1; every token comes back once.
    """
    nodes = 10
    tokens = 10_000  # x 10 channels = 100,000 messages

    @csp.process
    def node(cin, cout):
        for _ in range(tokens):
            cout(cin() + 1)

    @csp.process
    def head(cout, cin):
        sent, back = 0, []
        while len(back) < tokens:
            if sent < tokens:
                g, msg = csp.AltSelect(csp.OutputGuard(cout, sent * 1000), csp.InputGuard(cin))
                if g is cout:
                    sent += 1
                    continue
            else:
                msg = cin()
            back.append(msg)
        return back

    chans = [csp.Channel() for _ in range(nodes)]
    # head -> chans[0] -> node -> chans[1] -> ... -> node -> chans[nodes-1] -> head
    ring = [node(chans[i].reader(), chans[i + 1].writer()) for i in range(nodes - 1)]
    results = csp.Parallel(head(chans[0].writer(), chans[-1].reader()), ring)
    back = results[0]
    assert len(back) == tokens
    assert sum(back) == sum(i * 1000 for i in range(tokens)) + tokens * (nodes - 1)
    # Every token came back exactly once, incremented by each of the nodes - 1 nodes.
    assert sorted(back) == [i * 1000 + nodes - 1 for i in range(tokens)]
    # One writer, one reader per channel: the ring preserves order.
    assert back == sorted(back)


@pytest.mark.timeout(120)
def test_many_readers_many_writers_buffered(csp):
    writers = 16
    readers = 16
    per_writer = 2_500

    writer, reader = stream_processes(csp)
    ch = csp.Channel(buffer=32)
    results = csp.Parallel(
        [writer(ch.writer(), range(w * per_writer, (w + 1) * per_writer)) for w in range(writers)],
        [reader(ch.reader()) for _ in range(readers)],
    )
    received = [m for part in results[writers:] for m in part]
    total = writers * per_writer
    assert len(received) == total
    counts = Counter(received)
    assert len(counts) == total
    assert set(counts) == set(range(total))
    assert sum(received) == total * (total - 1) // 2
    # Each reader sees each writer's messages in the order written (FIFO buffer).
    for part in results[writers:]:
        last = {}
        for m in part:
            w = m // per_writer
            assert m > last.get(w, -1)
            last[w] = m


@pytest.mark.timeout(120)
def test_many_alternating_readers_on_shared_channels(csp, backend):
    """Readers select over several any-to-any channels while writers write plainly."""
    n_chans, writers_per_chan, readers, per_writer = 4, 4, 8, by_backend(
        backend, default=500, processes=200
    )

    @csp.process
    def writer(cout, base):
        for i in range(per_writer):
            cout(base + i)
        cout.retire()

    @csp.process
    def reader(ins):
        got = []
        live = list(ins)
        while live:
            try:
                g, msg = csp.AltSelect(*[csp.InputGuard(c) for c in live])
            except csp.ChannelRetireException:
                # Find the retired channel(s) and drop them.
                still = []
                for c in live:
                    try:
                        g, msg = csp.PriSelect(csp.InputGuard(c), csp.SkipGuard())
                    except csp.ChannelRetireException:
                        c.retire()
                        continue
                    still.append(c)
                    if g is c:
                        got.append(msg)
                live = still
                continue
            got.append(msg)
        return got

    chans = [csp.Channel() for _ in range(n_chans)]
    procs = []
    base = 0
    for c in chans:
        for _ in range(writers_per_chan):
            procs.append(writer(c.writer(), base))
            base += per_writer
    rprocs = [reader([c.reader() for c in chans]) for _ in range(readers)]
    results = csp.Parallel(procs, rprocs)
    received = [m for part in results[len(procs):] for m in part]
    assert Counter(received) == Counter(range(base))
