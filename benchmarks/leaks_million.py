#!/usr/bin/env python3
"""The leak check of tests/test_leaks.py at full size: about a million channel
operations per backend (plain, buffered, alternation with every guard kind,
poison/retire churn, channels created and dropped, Parallel churn), printing
tracemalloc and RSS growth after warm-up and, for processes, the arena.

    python benchmarks/leaks_million.py [threads|greenlets|processes ...]
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

import test_leaks  # noqa: E402

# (warm-up rounds, measured rounds, operations per round): 6 scenarios x 20 x 8,500
# is about a million operations per backend.
SIZES = {"threads": (4, 20, 8500), "greenlets": (4, 20, 8500), "processes": (4, 20, 8500)}


def main(backends):
    for backend in backends:
        test_leaks.ROUNDS[backend] = SIZES[backend]
        results = test_leaks.measure_all(backend)
        for scenario, r in results.items():
            if "error" in r:
                print(f"{backend:9} {scenario:15} ERROR {r['error']}")
                continue
            s = r["samples"]
            warmup, rounds, ops = SIZES[backend]
            line = (f"{backend:9} {scenario:15} {rounds * ops:>9} ops/round-set {r['seconds']:7.1f}s  "
                    f"traced {s[-1]['traced'] - s[0]['traced']:+8d} B  "
                    f"rss {s[-1]['rss'] - s[0]['rss']:+9d} B")
            if "arena_before" in r:
                line += f"  arena {r['arena_before']} -> {r['arena_after']}"
            print(line, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or ["threads", "greenlets", "processes"])
