"""Commstime: prefix -> delta -> succ -> prefix, delta also feeding a consumer.

The consumer takes N numbers (0, 1, ..., N-1), then poisons its channel; the
poison spreads round the loop and every process ends.

Usage: python commstime.py <backend>
"""
import importlib
import sys

csp = importlib.import_module("pycsp." + sys.argv[1])

N = 5000


@csp.process
def prefix(cin, cout, first):
    cout(first)
    while True:
        cout(cin())


@csp.process
def delta(cin, out_consumer, out_succ):
    while True:
        x = cin()
        out_consumer(x)
        out_succ(x)


@csp.process
def succ(cin, cout):
    while True:
        cout(cin() + 1)


@csp.process
def consumer(cin, n):
    count = total = 0
    first = cin()
    last = first
    count, total = 1, first
    for _ in range(n - 1):
        last = cin()
        count += 1
        total += last
    csp.poison(cin)
    return count, total, first, last


if __name__ == "__main__":
    a, b, c, d = csp.Channel("a"), csp.Channel("b"), csp.Channel("c"), csp.Channel("d")
    results = csp.Parallel(
        prefix(+c, -a, 0),
        delta(+a, -b, -d),
        succ(+d, -c),
        consumer(+b, N),
    )
    count, total, first, last = results[3]
    print("count", count)
    print("sum", total)
    print("first", first)
    print("last", last)
    print("others", results[:3])
