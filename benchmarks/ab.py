"""Interleaved A/B comparison of two source trees on the clock.

    python benchmarks/ab.py --before /work/wt-base --after /work/main --rounds 11 \\
        threads:commstime::60000 greenlets:ring:64:200000 processes:alt:2:100000

Each kernel is BACKEND:KERNEL:SIZE:N (SIZE empty for Commstime; BACKEND may hold a
colon itself, as c-processes:hybrid does), or `--suite full` for every figure of
the full suite on our three backends (issue #15's "nothing else gets slower").  Every round
runs every kernel once in each tree (benchmarks/kernels.py --repeats 3, its
median), alternating which tree goes first, so that a machine whose load
drifts during the run loads both sides alike.  Reported per kernel: each
side's median with its range over the rounds, and the per-round ratio
after/before (median, range, and in how many rounds after was slower), the
figure to quote on a shared, noisy machine.  With --floor BACKEND (e.g.
c-processes:hybrid, the bare C network of the same shape) every round also
runs that backend on each kernel, from the after tree, and the per-round
ratios before/floor and after/floor are reported too.  --floor may be given
more than once (e.g. also py-floor:hybrid, the same kernels in Python
processes on the C network's channel): each is run and reported so, and each
further floor's per-round ratio to the first.  Both trees must be built in
place (python setup.py build_ext --inplace); each runs with PYTHONPATH set to
itself, from itself.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys


# The full suite's figures of our backends: what `python -m pycsp.bench --full`
# measures of them, at iteration counts that take a second or two each here.
FULL_SUITE = [
    "threads:commstime::100000", "greenlets:commstime::300000", "processes:commstime::100000",
    "threads:ring:2:100000", "greenlets:ring:2:300000", "processes:ring:2:100000",
    "threads:ring:64:100000", "greenlets:ring:64:300000", "processes:ring:64:30000",
    "threads:ring:256:100000", "greenlets:ring:256:300000", "processes:ring:256:30000",
    "threads:tokens:8:100000", "greenlets:tokens:8:300000", "processes:tokens:8:30000",
    "threads:alt:2:100000", "greenlets:alt:2:100000", "processes:alt:2:50000",
    "threads:alt:8:100000", "greenlets:alt:8:100000", "processes:alt:8:50000",
    "processes:payload:bytes-1K:100000", "processes:payload:numpy-1K:100000",
    "processes:payload:bytes-1M:1000", "processes:payload:numpy-1M:1000",
    "processes:payload:bytes-64M:10", "processes:payload:numpy-64M:10",
    "threads:pi:2:0", "greenlets:pi:2:0", "processes:pi:2:0",
    "threads:spawn:100:0", "greenlets:spawn:100:0", "processes:spawn:100:0",
]


# Kernels whose figure is a rate (GB/s): there a ratio below 1 is slower.
HIGHER_IS_BETTER = {"payload"}


def run_kernel(tree, backend, kernel, size, n):
    cmd = [sys.executable, "benchmarks/kernels.py", "--backend", backend, "--kernel", kernel,
           "--repeats", "3", "--n", str(n)]
    if size:
        cmd += ["--sizes", size]
    out = subprocess.run(cmd, cwd=tree, env=dict(os.environ, PYTHONPATH=tree),
                         capture_output=True, text=True, timeout=600, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["median"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", required=True)
    ap.add_argument("--after", required=True)
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--json", help="also write the raw figures here")
    ap.add_argument("--suite", choices=["full"], help="the full suite's kernels")
    ap.add_argument("--floor", action="append", default=[],
                    help="also run this backend on each kernel in every round "
                         "(e.g. c-processes:hybrid) and report ratios to it; repeatable")
    ap.add_argument("kernels", nargs="*", help="BACKEND:KERNEL:SIZE:N")
    args = ap.parse_args()
    if args.suite:
        args.kernels = FULL_SUITE + args.kernels
    if not args.kernels:
        ap.error("name kernels or --suite full")
    trees = {"before": args.before, "after": args.after}
    kernels = [tuple(k.rsplit(":", 3)) for k in args.kernels]
    results = {k: {"before": [], "after": [], **{f: [] for f in args.floor}} for k in kernels}
    for r in range(args.rounds):
        order = ["before", "after"] if r % 2 == 0 else ["after", "before"]
        for key in kernels:
            backend, kernel, size, n = key
            for side in order:
                results[key][side].append(run_kernel(trees[side], backend, kernel, size, int(n)))
            for floor in args.floor:
                results[key][floor].append(run_kernel(args.after, floor, kernel, size, int(n)))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({":".join(k): v for k, v in results.items()}, f, indent=1)
    print("| kernel | before | after | after/before per round | after slower |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for (backend, kernel, size, _), v in results.items():
        b, a = v["before"], v["after"]
        ratios = [x / y for x, y in zip(a, b)]
        name = f"{kernel}{'-' + size if size else ''} {backend}"
        print(f"| {name} | {statistics.median(b):.3f} ({min(b):.3f}-{max(b):.3f}) "
              f"| {statistics.median(a):.3f} ({min(a):.3f}-{max(a):.3f}) "
              f"| **{statistics.median(ratios):.3f}** ({min(ratios):.2f}-{max(ratios):.2f}) "
              f"| {sum((x < 1) if kernel in HIGHER_IS_BETTER else (x > 1) for x in ratios)}"
              f"/{len(ratios)} |")
    for floor in args.floor:
        print()
        print(f"| kernel | {floor} | before/floor per round | after/floor per round |")
        print("| --- | ---: | ---: | ---: |")
        for (backend, kernel, size, _), v in results.items():
            f = v[floor]
            cells = []
            for side in ("before", "after"):
                cells.append(ratio_cell(v[side], f))
            name = f"{kernel}{'-' + size if size else ''} {backend}"
            print(f"| {name} | {statistics.median(f):.3f} ({min(f):.3f}-{max(f):.3f}) "
                  f"| {cells[0]} | {cells[1]} |")
    if len(args.floor) > 1:
        first = args.floor[0]
        print()
        print(f"| kernel | " + " | ".join(f"{f}/{first} per round" for f in args.floor[1:]) + " |")
        print("| --- |" + " ---: |" * (len(args.floor) - 1))
        for (backend, kernel, size, _), v in results.items():
            name = f"{kernel}{'-' + size if size else ''}"
            print(f"| {name} | " + " | ".join(ratio_cell(v[f], v[first]) for f in args.floor[1:])
                  + " |")


def ratio_cell(tops, bottoms):
    """The per-round ratios' median in bold and their range."""
    r = [x / y for x, y in zip(tops, bottoms)]
    return f"**{statistics.median(r):.3f}** ({min(r):.2f}-{max(r):.2f})"


if __name__ == "__main__":
    main()
