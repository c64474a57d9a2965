"""A process that Spawns a writer and returns at once, in Parallel with the reader.

The writer outlives the process that spawned it; the reader must get every
message.  Once with a reader that reads exactly N messages, once with a reader
that reads until the writer retires.

Usage: python spawn_return.py <backend>
"""
import importlib
import sys

csp = importlib.import_module("pycsp." + sys.argv[1])

N = 200


@csp.process
def writer(cout, n, then_retire):
    for i in range(n):
        cout(i)
    if then_retire:
        csp.retire(cout)


@csp.process
def spawner(cout, n, then_retire):
    csp.Spawn(writer(cout, n, then_retire))
    return "spawner returned"


@csp.process
def read_n(cin, n):
    got = [cin() for _ in range(n)]
    return len(got), sum(got)


@csp.process
def read_all(cin):
    got = []
    try:
        while True:
            got.append(cin())
    except csp.ChannelRetireException:
        return len(got), sum(got)


if __name__ == "__main__":
    ch = csp.Channel("a")
    print("counted", csp.Parallel(spawner(-ch, N, False), read_n(+ch, N)))
    ch = csp.Channel("b")
    print("until retired", csp.Parallel(spawner(-ch, N, True), read_all(+ch)))
    csp.shutdown()
    print("shutdown done")
