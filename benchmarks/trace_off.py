"""Tracing off costs nothing: Commstime with pycsp.common.trace imported but unused.

    python benchmarks/trace_off.py --rounds 9 threads:60000 greenlets:200000 processes:60000

Each round runs benchmarks/kernels.py's Commstime (--repeats 3, its median) on
each backend twice, once plain and once in a Python that has imported
pycsp.common.trace first (its hooks registered, no TraceInit), alternating
which goes first.  Reported per backend: each side's median µs per
communication and the per-round ratio imported/plain (median, range, in how
many rounds the imported side was slower).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMPORTED = ("import sys, runpy, pycsp.common.trace; sys.argv = ['kernels.py'] + sys.argv[1:]; "
            "runpy.run_path('benchmarks/kernels.py', run_name='__main__')")


def run(side, backend, n):
    args = ["--backend", backend, "--kernel", "commstime", "--repeats", "3", "--n", str(n)]
    cmd = [sys.executable, "benchmarks/kernels.py", *args]
    if side == "imported":
        cmd = [sys.executable, "-c", IMPORTED, *args]
    out = subprocess.run(cmd, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT),
                         capture_output=True, text=True, timeout=600, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["median"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("kernels", nargs="+", help="BACKEND:N")
    args = ap.parse_args()
    kernels = [(k.split(":")[0], int(k.split(":")[1])) for k in args.kernels]
    results = {k: {"plain": [], "imported": []} for k in kernels}
    for r in range(args.rounds):
        order = ["plain", "imported"] if r % 2 == 0 else ["imported", "plain"]
        for key in kernels:
            for side in order:
                results[key][side].append(run(side, *key))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    print("| Commstime | plain | trace imported | imported/plain per round | imported slower |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for (backend, _), v in results.items():
        p, i = v["plain"], v["imported"]
        ratios = [x / y for x, y in zip(i, p)]
        print(f"| {backend} | {statistics.median(p):.3f} ({min(p):.3f}-{max(p):.3f}) "
              f"| {statistics.median(i):.3f} ({min(i):.3f}-{max(i):.3f}) "
              f"| **{statistics.median(ratios):.3f}** ({min(ratios):.2f}-{max(ratios):.2f}) "
              f"| {sum(x > 1 for x in ratios)}/{len(ratios)} |")


if __name__ == "__main__":
    main()
