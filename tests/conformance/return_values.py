"""Return values through Parallel and Sequence.

Usage: python return_values.py <backend>
"""
import importlib
import sys

csp = importlib.import_module("pycsp." + sys.argv[1])


@csp.process
def square(x):
    return x * x


@csp.process
def record(log, tag):
    log(tag)
    return {"tag": tag, "pair": (tag, [tag] * 2)}


@csp.process
def nothing():
    pass


@csp.process
def nested(n):
    inner = csp.Parallel([square(i) for i in range(n)])
    seq = csp.Sequence(square(n), [square(n + 1), square(n + 2)])
    return sum(inner), seq


@csp.process
def collect(cin, n):
    return [cin() for _ in range(n)]


if __name__ == "__main__":
    print("parallel", csp.Parallel(*[square(i) for i in range(6)]))
    print("flattened", csp.Parallel(square(1), [square(2), [square(3)]], square(4)))
    print("times", csp.Parallel(square(7) * 3))
    print("none", csp.Parallel(nothing(), nothing()))
    print("empty", csp.Parallel(), csp.Sequence())
    print("nested", csp.Parallel(nested(2), nested(3)))

    log = csp.Channel("log", buffer=10)
    print("sequence", csp.Sequence(*[record(-log, t) for t in "abcde"]))
    print("order", csp.Parallel(collect(+log, 5)))
    print("seq flattened", csp.Sequence([square(2), square(3)], square(4)))
