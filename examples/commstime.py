"""Commstime: the classic measure of what one channel communication costs.

Prefix (0 first), a delta, Successor and a consumer in a ring; each value the
consumer gets is one more than the last, and each cycle is four
communications.  The consumer times CYCLES cycles, then poisons its channel,
which ends the ring.

    python examples/commstime.py [threads|processes|greenlets]
"""
import time

from pycsp_import import *
from pycsp.common.plugNplay import Prefix, Successor

CYCLES = 10_000


@process
def delta(cin: ChannelEndRead[int], cout1: ChannelEndWrite[int], cout2: ChannelEndWrite[int]) -> None:
    """Copy each value to cout1, then to cout2 (the classic Commstime's
    sequential delta; plugNplay's Delta2 offers both at once)."""
    while True:
        value = cin()
        cout1(value)
        cout2(value)


@process
def consumer(cin: ChannelEndRead[int], cycles: int) -> tuple[int, float]:
    cin()  # the prefix's 0: the ring is running
    start = time.perf_counter()
    total = 0
    for _ in range(cycles):
        total += cin()
    elapsed = time.perf_counter() - start
    poison(cin)
    return total, elapsed


if __name__ == "__main__":
    a, b, c, d = Channel("a"), Channel("b"), Channel("c"), Channel("d")
    *_, (total, elapsed) = Parallel(
        Prefix(+c, -a, prefix=0),
        delta(+a, -b, -d),
        Successor(+b, -c),
        consumer(+d, CYCLES),
    )
    print(f"Commstime on {BACKEND}: {CYCLES} cycles of 4 communications")
    print(f"the consumer received 1 to {CYCLES}: their sum is {total}")
    print(f"time per communication: {elapsed / (4 * CYCLES) * 1e6:.2f} µs")
