"""A token ring: a token goes round a ring of processes, each adding 1.

The root starts the token and counts the rounds; after the last one it retires
its ends, and the retirement goes round the ring, ending every element.

    python examples/token_ring.py [threads|processes|greenlets]
"""
from pycsp_import import *

ELEMENTS = 32   # processes in the ring, the root included
ROUNDS = 100


@process
def element(cin: ChannelEndRead[int], cout: ChannelEndWrite[int]) -> None:
    while True:
        cout(cin() + 1)


@process
def root(cin: ChannelEndRead[int], cout: ChannelEndWrite[int], rounds: int) -> int:
    token = 0
    for _ in range(rounds):
        cout(token + 1)
        token = cin()
    retire(cin, cout)
    return token


if __name__ == "__main__":
    links = [Channel(f"link{i}") for i in range(ELEMENTS)]
    # link i goes from process i to process i + 1; process 0 is the root.
    elements = [element(+links[i - 1], -links[i]) for i in range(1, ELEMENTS)]
    token, *_ = Parallel(root(+links[-1], -links[0], ROUNDS), elements)
    print(f"a ring of {ELEMENTS} processes on {BACKEND}, {ROUNDS} rounds")
    print(f"token = {token} ({ELEMENTS} x {ROUNDS} hops, each adding 1)")
