#!/usr/bin/env python3
"""Issue #15's ratios, each against its floor or peer, in one interleaved run.

    python benchmarks/targets.py --tree /work/main --rounds 5
    python benchmarks/targets.py --only commstime,ring-256 --rounds 9

Every round runs every measurement below once (TREE/benchmarks/kernels.py,
--repeats 3, its median, each in its own subprocess, the order rotated from round
to round), so that a figure and its floor see the same load.  Reported per check:
ours and the reference with their median and min-max over the rounds, and the
per-round ratio (median and min-max), which is what a target is judged on here:
the machine is shared and noisy, and a ratio taken within a round cancels most of
the drift.

Greenlets are judged in instructions, not here: benchmarks/callgrind_per_op.py.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name: (ours, reference, kind, target, what the target says)
#   a measurement is (backend, kernel, size or None, n)
#   kind "time": the ratio ours / reference is judged, lower is better (target a maximum)
#   kind "rate": the ratio ours / reference is judged, higher is better (target a minimum)
#   kind "rate-of-ours": ours itself is judged (GB/s, a minimum); the reference
#   (the C floor with the same calls) and the ratio are shown beside it
CHECKS = {
    'commstime': (('processes', 'commstime', None, 100_000),
                  ('c-processes:hybrid', 'commstime', None, 100_000),
                  'time', 1.15, 'processes Commstime <= 1.15x the C network (hybrid)'),
    'ring-256': (('processes', 'ring', '256', 30_000),
                 ('c-processes:hybrid', 'ring', '256', 30_000),
                 'time', 1.2, 'processes ring-256 <= 1.2x the C ring (hybrid)'),
    'tuple': (('processes', 'commstime', 'tuple', 100_000),
              ('processes', 'commstime', None, 100_000),
              'time', 1.5, 'processes Commstime of (int, float) <= 1.5x of int'),
    'numpy-1K': (('processes', 'payload', 'numpy-1K', 100_000),
                 ('mp-pipe', 'payload', 'numpy-1K', 100_000),
                 'rate', 2.0, 'processes 1 KiB numpy >= 2x multiprocessing.Pipe'),
    'bytes-64M': (('processes', 'payload', 'bytes-64M', 10),
                  ('c-processes', 'payload', 'bytes-64M', 10),
                  'rate-of-ours', 6.0, 'processes 64 MiB bytes >= 6 GB/s (long-lived '
                  'pair); reference: floor_copy.c with the same calls'),
    'numpy-64M': (('processes', 'payload', 'numpy-64M', 10),
                  ('c-processes', 'payload', 'numpy-64M', 10),
                  'rate-of-ours', 6.0, 'processes 64 MiB numpy >= 6 GB/s (long-lived '
                  'pair); reference: floor_copy.c with the same calls'),
    'fresh-numpy-64M': (('processes', 'payload', 'fresh-numpy-64M', 6),
                        ('c-processes', 'payload', 'fresh-numpy-64M', 6),
                        'rate-of-ours', 5.0, 'the first six 64 MiB numpy arrays between '
                        'two fresh processes >= 5 GB/s; reference: floor_copy.c'),
}


def run_kernel(tree, measurement, timeout):
    backend, kernel, size, n = measurement
    cmd = [sys.executable, 'benchmarks/kernels.py', '--backend', backend,
           '--kernel', kernel, '--repeats', '3', '--n', str(n)]
    if size:
        cmd += ['--sizes', size]
    out = subprocess.run(cmd, cwd=tree, env=dict(os.environ, PYTHONPATH=tree),
                         capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError('%s failed:\n%s' % (' '.join(cmd), out.stderr[-2000:]))
    return json.loads(out.stdout.strip().splitlines()[-1])['median']


def spread(xs, fmt='%.3f'):
    return (fmt + ' (' + fmt + '-' + fmt + ')') % (statistics.median(xs), min(xs), max(xs))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--tree', default=HERE)
    ap.add_argument('--rounds', type=int, default=5)
    ap.add_argument('--only', help='comma list of checks (default: all): ' + ', '.join(CHECKS))
    ap.add_argument('--timeout', type=float, default=600, help='seconds per measurement')
    ap.add_argument('--json', help='also write the raw figures here')
    args = ap.parse_args()
    names = args.only.split(',') if args.only else list(CHECKS)
    for name in names:
        if name not in CHECKS:
            ap.error('unknown check %r (one of %s)' % (name, ', '.join(CHECKS)))
    measurements = []
    for name in names:
        for m in CHECKS[name][:2]:
            if m not in measurements:
                measurements.append(m)
    figures = {m: [] for m in measurements}
    start = time.time()
    for r in range(args.rounds):
        shift = r % len(measurements)
        for m in measurements[shift:] + measurements[:shift]:
            figures[m].append(run_kernel(args.tree, m, args.timeout))
        print('round %d/%d done, %.0f s' % (r + 1, args.rounds, time.time() - start),
              file=sys.stderr, flush=True)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump({':'.join(str(x) for x in m): v for m, v in figures.items()}, f, indent=1)
    print('| check | ours | reference | ratio per round | target | met |')
    print('| --- | ---: | ---: | ---: | ---: | --- |')
    for name in names:
        ours, ref, how, target, says = CHECKS[name]
        a, b = figures[ours], figures[ref]
        ratios = [x / y for x, y in zip(a, b)]
        judged = a if how == 'rate-of-ours' else ratios
        med = statistics.median(judged)
        met = med <= target if how == 'time' else med >= target
        print('| %s | %s | %s | %s | %s %s%s | %s |' % (
            name, spread(a), spread(b), spread(ratios, '%.2f'),
            '<=' if how == 'time' else '>=', target,
            ' (ours)' if how == 'rate-of-ours' else '', 'yes' if met else 'NO'))
    print()
    for name in names:
        print('- %s: %s' % (name, CHECKS[name][4]))


if __name__ == '__main__':
    main()
