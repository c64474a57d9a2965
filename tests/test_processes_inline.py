"""Where a message of the processes backend lives: an int of 61 bits, None,
False and True travel inside the message handle (no arena block, no allocator
lock); everything else takes a block.  Values at the limits of the inline
range keep their value and type on every backend, across OS processes too."""
import pytest

from conftest import BACKENDS

csp_ext = pytest.importorskip("csp_ext")

processes_only = pytest.mark.skipif("processes" not in BACKENDS,
                                    reason="processes backend not under test")

INLINE = [0, 1, -1, 7, -8, 2**60 - 1, -2**60, None, False, True]
JUST_BEYOND = [2**60, -2**60 - 1, 2**61, 2**63 - 1, -2**63, 2**64, -2**100, 0.0, "", b""]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("buffer", [0, len(INLINE + JUST_BEYOND)], ids=["rendezvous", "buffered"])
def test_values_at_the_inline_limits_keep_value_and_type(csp, buffer):
    values = INLINE + JUST_BEYOND
    ch = csp.Channel(buffer=buffer)

    @csp.process
    def sender(cout):
        for v in values:
            cout(v)

    @csp.process
    def receiver(cin):
        return [cin() for _ in values]

    _, got = csp.Parallel(sender(ch.writer()), receiver(ch.reader()))
    assert got == values
    assert [type(v) for v in got] == [type(v) for v in values]


def _blocks_in_use():
    return csp_ext.shm_stats()["blocks_in_use"]


@processes_only
@pytest.mark.timeout(30)
def test_small_ints_and_constants_take_no_arena_block():
    import pycsp.processes as csp

    n = 40
    ch = csp.Channel(buffer=2 * n)
    write, read = ch.writer(), ch.reader()
    write(2**62)            # the ring of the buffer and this thread's waiter record
    assert read() == 2**62
    before = _blocks_in_use()
    for i in range(n):
        write(INLINE[i % len(INLINE)])
    assert _blocks_in_use() == before, "inline messages took arena blocks"
    for i in range(n):
        write(JUST_BEYOND[i % len(JUST_BEYOND)])
    assert _blocks_in_use() == before + n, "each message beyond the inline range takes a block"
    got = [read() for _ in range(2 * n)]
    assert got == [INLINE[i % len(INLINE)] for i in range(n)] + \
        [JUST_BEYOND[i % len(JUST_BEYOND)] for i in range(n)]
    assert _blocks_in_use() == before
