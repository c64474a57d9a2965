"""The prime sieve: a chain of processes that grows as primes are found.

A generator writes 2, 3, 4, ...; each sieve takes the first number it reads
as its prime, reports it, Spawns the next sieve and passes on the numbers its
prime does not divide.  Retirement runs down the chain after the last number;
the sieve at the end, which gets no number, retires the report channel.

    python examples/sieve.py [threads|processes|greenlets]
"""
from pycsp_import import *

LIMIT = 300


@process
def numbers(cout: ChannelEndWrite[int], limit: int) -> None:
    for n in range(2, limit):
        cout(n)
    retire(cout)


@process
def sieve(cin: ChannelEndRead[int], primes: ChannelEndWrite[int]) -> None:
    try:
        prime = cin()
    except ChannelRetireException:
        retire(primes)  # the last sieve: every prime has been reported
        return
    primes(prime)
    rest = Channel[int]()
    Spawn(sieve(+rest, primes))
    to_rest = -rest
    try:
        while True:
            n = cin()
            if n % prime:
                to_rest(n)
    except ChannelRetireException:
        # Ends normally: only the last sieve retires the shared report channel.
        retire(to_rest)


@process
def report(cin: ChannelEndRead[int]) -> list[int]:
    found: list[int] = []
    try:
        while True:
            found.append(cin())
    except ChannelRetireException:
        return found


if __name__ == "__main__":
    ints, primes = Channel("numbers"), Channel("primes")
    _, _, found = Parallel(numbers(-ints, LIMIT), sieve(+ints, -primes), report(+primes))
    shutdown()  # the Spawned sieves
    print(f"{len(found)} primes below {LIMIT}, found by a chain of {len(found) + 1} "
          f"sieves on {BACKEND}:")
    for row in range(0, len(found), 10):
        print(" ".join(f"{p:3d}" for p in found[row:row + 10]))
