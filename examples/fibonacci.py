"""Fibonacci numbers from PyCSP's plug-and-play processes.

Two Prefix processes hold the last two numbers, Pairs adds them, and Delta2
sends each number both round the loop and to the printer; the printer poisons
its channel after COUNT numbers, and the poison ends the whole network.

    python examples/fibonacci.py [threads|processes|greenlets]
"""
from pycsp_import import *
from pycsp.common.plugNplay import Delta2, Pairs, Prefix

COUNT = 20


@process
def printer(cin: ChannelEndRead[int], count: int) -> list[int]:
    numbers = [cin() for _ in range(count)]
    poison(cin)
    return numbers


if __name__ == "__main__":
    a, b, c, d, out = (Channel(name) for name in ("a", "b", "c", "d", "out"))
    *_, numbers = Parallel(
        Prefix(+b, -a, prefix=0),
        Prefix(+c, -b, prefix=1),
        Pairs(+d, -c),
        Delta2(+a, -d, -out),
        printer(+out, COUNT),
    )
    print(f"the first {COUNT} Fibonacci numbers, on {BACKEND}:")
    print(" ".join(map(str, numbers)), "...")
