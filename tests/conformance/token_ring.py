"""A token ring of NODES processes; the token goes round ROUNDS times.

Node 0 writes 0; every node that receives a value v writes v + 1 to the next
node.  After ROUNDS rounds node 0 poisons its output; the poison goes round the
ring.  Each node returns how many tokens it saw and their sum.

Usage: python token_ring.py <backend>
"""
import importlib
import sys

csp = importlib.import_module("pycsp." + sys.argv[1])

NODES = 8
ROUNDS = 100


@csp.process
def start_node(cin, cout, rounds):
    seen = []
    cout(0)
    for r in range(rounds):
        v = cin()
        seen.append(v)
        if r < rounds - 1:
            cout(v + 1)
    csp.poison(cout)
    return len(seen), sum(seen)


@csp.process
def node(cin, cout):
    seen = []
    try:
        while True:
            v = cin()
            seen.append(v)
            cout(v + 1)
    except csp.ChannelPoisonException:
        csp.poison(cin, cout)
    return len(seen), sum(seen)


if __name__ == "__main__":
    chans = csp.Channel() * NODES      # chans[i]: node i -> node i+1
    procs = [start_node(+chans[NODES - 1], -chans[0], ROUNDS)]
    procs += [node(+chans[i - 1], -chans[i]) for i in range(1, NODES)]
    results = csp.Parallel(*procs)
    for i, (count, total) in enumerate(results):
        print(f"node {i}: {count} tokens, sum {total}")
