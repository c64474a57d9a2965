"""Termination by poison and by retire, through a fan-in and a pipeline stage.

poison: PRODUCERS writers that never stop feed one channel; a stage passes the
messages on; the consumer takes TAKE of them and poisons its input.  The poison
reaches the stage, then the channel that every producer writes to; every
producer ends (a producer ended by poison returns None).

retire: PRODUCERS writers each write their own COUNT messages and retire; a
stage passes them on (through buffered channels) and retires its output when
all writers of its input have retired; the consumer reads until retired.
Nothing is lost: every message arrives, in order per producer.

Usage: python termination.py <backend>
"""
import importlib
import sys

csp = importlib.import_module("pycsp." + sys.argv[1])

PRODUCERS = 4
TAKE = 1000
COUNT = 500


@csp.process
def endless(k, cout):
    i = 0
    while True:
        cout((k, i))
        i += 1


@csp.process
def stage(cin, cout):
    while True:
        cout(cin())


@csp.process
def take_then_poison(cin, n):
    nxt = [0] * PRODUCERS
    in_order = True
    for _ in range(n):
        k, i = cin()
        in_order = in_order and i == nxt[k]
        nxt[k] = i + 1
    csp.poison(cin)
    return sum(nxt), in_order


@csp.process
def finite(k, cout, count):
    for i in range(count):
        cout((k, i))
    csp.retire(cout)
    return "done", k


@csp.process
def drain(cin):
    got = [[] for _ in range(PRODUCERS)]
    try:
        while True:
            k, i = cin()
            got[k].append(i)
    except csp.ChannelRetireException:
        return [(len(g), sum(g), g == sorted(g)) for g in got]


def run_poison():
    fan_in, out = csp.Channel("fan_in"), csp.Channel("out")
    results = csp.Parallel(
        [endless(k, -fan_in) for k in range(PRODUCERS)],
        stage(+fan_in, -out),
        take_then_poison(+out, TAKE),
    )
    taken, in_order = results[-1]
    print("poison: taken", taken, "in order", in_order)
    print("poison: others returned", results[:-1])


def run_retire(buffer):
    fan_in, out = csp.Channel("fan_in", buffer=buffer), csp.Channel("out", buffer=buffer)
    results = csp.Parallel(
        [finite(k, -fan_in, COUNT) for k in range(PRODUCERS)],
        stage(+fan_in, -out),
        drain(+out),
    )
    print(f"retire (buffer={buffer}): producers", results[:PRODUCERS])
    print(f"retire (buffer={buffer}): stage", results[PRODUCERS])
    for k, (n, total, ordered) in enumerate(results[-1]):
        print(f"retire (buffer={buffer}): from {k}: {n} messages, sum {total}, in order {ordered}")


if __name__ == "__main__":
    run_poison()
    run_retire(0)
    run_retire(10)
