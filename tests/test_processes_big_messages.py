"""Big messages between OS processes (issue 15, item 3).

A received large bytes or bytearray is copied into memory malloc has just
mapped; its 2 MiB-aligned interior is advised MADV_HUGEPAGE before the copy
(csp_ext/shared/message.c), and a big arena block nobody wrote yet is
fallocated before it is populated (csp_ext/shared/arena.c).  These tests check
that messages of every odd size around those boundaries arrive byte for byte,
and that the received bytes do lie on huge pages where the kernel offers them.
"""
import os

import pytest

import pycsp.processes as csp

np = pytest.importorskip("numpy")

MIB = 1 << 20
# Odd sizes: the huge-page interior starts and ends inside the object, and the
# arena block is used up to a size that is not a whole number of pages.
SIZES = [64 * MIB + 4093, 2 * MIB + 1, 4 * MIB - 7]


def _size_id(size):
    mib, rest = divmod(size, MIB)
    if rest > MIB // 2:
        mib, rest = mib + 1, rest - MIB
    return "%dMiB%+d" % (mib, rest)


def _pattern(size, seed):
    return np.random.default_rng(seed).integers(0, 256, size=size, dtype=np.uint8)


@csp.process
def send_all(cout, items):
    for item in items:
        cout(item)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("size", SIZES, ids=_size_id)
def test_big_bytes_bytearray_and_array_arrive_exactly(size):
    data = _pattern(size, size)
    items = [data.tobytes(), bytearray(data.tobytes()), data, data.tobytes()]
    ch = csp.Channel()

    @csp.process
    def check(cin):
        got = [cin() for _ in items]
        return ([type(g).__name__ for g in got],
                [len(g) for g in got],
                [bytes(memoryview(g)) == items[0] for g in got])

    _, (types, lengths, equal) = csp.Parallel(send_all(ch.writer(), items), check(ch.reader()))
    assert types == ["bytes", "bytearray", "ndarray", "bytes"]
    assert lengths == [size] * 4
    assert equal == [True] * 4


def _thp_mode():
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            return f.read().split("[")[1].split("]")[0]
    except (OSError, IndexError):
        return "unavailable"


def _huge_kib_at(address):
    """AnonHugePages (KiB) of this process's mapping that holds `address`."""
    with open("/proc/self/smaps") as f:
        inside = False
        for line in f:
            head = line.split()[0]
            if "-" in head and not head.endswith(":"):
                lo, hi = (int(x, 16) for x in head.split("-"))
                inside = lo <= address < hi
            elif inside and head == "AnonHugePages:":
                return int(line.split()[1])
    raise LookupError("no mapping holds %#x" % address)


@pytest.mark.timeout(120)
@pytest.mark.skipif(_thp_mode() not in ("madvise", "always"),
                    reason="transparent huge pages are %s here" % _thp_mode())
def test_received_big_bytes_lie_on_huge_pages():
    size = 64 * MIB + 4093
    ch = csp.Channel()

    @csp.process
    def receive(cin):
        got = cin()
        # id() of a bytes object is its address; its data starts inside it
        return len(got), _huge_kib_at(id(got) + size // 2)

    _, (length, huge_kib) = csp.Parallel(send_all(ch.writer(), [b"\x01" * size]),
                                         receive(ch.reader()))
    assert length == size
    # The object's 2 MiB-aligned interior is 62-64 of its 64 MiB; at least half
    # of it, as the kernel may fall back to 4 KiB pages where memory is
    # fragmented.  Before message.c advised it: 0 (in "madvise" mode).
    assert huge_kib >= 32 * 1024, huge_kib
