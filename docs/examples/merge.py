"""Two sources merged by an alternation, then poison to stop the sink."""
import sys

import pycsp.threads as pycsp

if len(sys.argv) > 1:  # python merge.py processes (or greenlets, threads)
    pycsp = __import__("pycsp." + sys.argv[1], fromlist=["*"])


@pycsp.process
def source(cout, start, n):
    for i in range(start, start + n):
        cout(i)


@pycsp.process
def merge(cin1, cin2, cout, count):
    passed = 0
    while passed < count:
        end, msg = pycsp.AltSelect(cin1, cin2, pycsp.Timeout(1.0))
        if end is cin1 or end is cin2:
            cout(msg)
            passed += 1
        else:
            print("nothing for a second", file=sys.stderr)
    pycsp.poison(cout)


@pycsp.process
def sink(cin):
    received = []
    try:
        while True:
            received.append(cin())
    except pycsp.ChannelPoisonException:
        return sorted(received)


if __name__ == "__main__":
    a, b, out = pycsp.Channel("a"), pycsp.Channel("b"), pycsp.Channel("out")
    results = pycsp.Parallel(source(-a, 0, 3), source(-b, 100, 3),
                             merge(+a, +b, -out, 6), sink(+out))
    print(results[-1])
