"""The prime sieve by Spawn chains.

A producer writes 2, 3, ..., 1999 and retires.  Each sieve worker takes its first
number as its prime, sends it to the printer, Spawns its successor on a fresh
channel and forwards the numbers that its prime does not divide; it retires its
output on the way out.  The last worker (which never gets a number) retires the
printer's channel, so the printer stops after the last prime.

Usage: python sieve.py <backend>
"""
import importlib
import sys

csp = importlib.import_module("pycsp." + sys.argv[1])

LIMIT = 2000


@csp.process
def producer(cout, limit):
    for n in range(2, limit):
        cout(n)
    csp.retire(cout)


@csp.process
def sieve(cin, primes_out):
    try:
        prime = cin()
    except csp.ChannelRetireException:
        # Nothing left: every prime has been printed.
        csp.retire(cin, primes_out)
        return
    primes_out(prime)
    ch = csp.Channel()
    csp.Spawn(sieve(ch.reader(), primes_out))
    cout = ch.writer()
    try:
        while True:
            n = cin()
            if n % prime:
                cout(n)
    except csp.ChannelRetireException:
        csp.retire(cin, cout)


@csp.process
def printer(cin):
    count = 0
    try:
        while True:
            print(cin())
            count += 1
    except csp.ChannelRetireException:
        return count


if __name__ == "__main__":
    numbers = csp.Channel("numbers")
    primes = csp.Channel("primes")
    results = csp.Parallel(
        producer(numbers.writer(), LIMIT),
        sieve(numbers.reader(), primes.writer()),
        printer(primes.reader()),
    )
    csp.shutdown()
    print("primes below", LIMIT, "=", results[2])
