"""python -m pycsp.bench: the seed's benchmarks on this machine, every backend.

    python -m pycsp.bench                 # the headline table and four plots, < 1 min
    python -m pycsp.bench --details       # the same run, then its detailed tables
    python -m pycsp.bench --full          # the full set (several minutes), all tables
    python -m pycsp.bench --pycsp092 /path/to/venv/bin/python   # also PyCSP 0.9.2
    python -m pycsp.bench --backends processes --plots out/ --json out/bench.json

The default run measures, on pycsp.threads, pycsp.greenlets and pycsp.processes, in
3 interleaved rounds: Commstime beside the peer a user would otherwise pick
(queue.SimpleQueue + threads, asyncio, multiprocessing.Pipe, PyCSP 0.9.2 when its
interpreter is given), Monte-Carlo Pi with 1, 2 and 5 workers (and
multiprocessing.Pool), one token in rings of 2..128 processes, 1..63 tokens in a
ring of 64, and 1 KiB..64 MiB messages between two processes (and
multiprocessing.Pipe).  It prints one headline table (medians and min-max), saves
four PNGs (ring, tokens, pi, payload; needs matplotlib: pip install "pycsp[demo]")
and says how to see more.  Progress goes to stderr.

The kernels (pycsp/bench/kernels.py, written once against the pycsp API):

  commstime      us per channel communication
  ring-N         one token in a ring of N processes, us per hop
  tokens-T       T tokens at once in a ring of 64 processes, us per token hop
  pi-W           Monte-Carlo Pi with W workers (pure Python), seconds
  mandel-numpy-W / mandel-c-W   Mandelbrot farm with W workers computing rows with
                 numpy / calling a C kernel through ctypes (the GIL is released),
                 seconds; the C kernel is compiled once with cc into a cache dir
  payload-K-S    one writer sends messages of S bytes as K (bytes / numpy) to one
                 reader, GB/s
  spawn          the largest N (of the sizes tried) for which N processes in one
                 Parallel pass a token once around a ring, and its time
  alt-K          K producers on their own channels, one consumer looping on
                 AltSelect(InputGuard(c1), ..., InputGuard(cK)), us per message

--full adds the Mandelbrot farms, spawn, alt, more sizes, the peers on ring and
tokens, a raw greenlet switch, and the floor: bare C hand-offs between two pthreads
and between two forked processes, and the Commstime and ring networks of bare C
processes (pycsp/bench/floor_*.c, compiled with cc -O2 -pthread; skipped, with the
reason printed, when there is no C compiler; --no-floor to skip).  Every
measurement runs in its own subprocess with a time-out; the implementations are
interleaved round by round and medians are printed.  Ratios are "how many times
better ours is" (peer / ours for times, ours / peer for GB/s); for the floors ours /
floor.
"""
import argparse
import copy
import json
import os
import sys
import time

from . import kernels as K
from .details import collect, details, speedups, spawn_summary
from .headline import failures, headline
from .measure import FLOOR_KERNELS, OURS, PLANS, make_jobs, run_rounds
from .plots import INSTALL_HINT, matplotlib_missing, save_plots

PLOT_NAMES = {'ring.png': 'latency against ring size',
              'tokens.png': 'time against tokens in flight',
              'pi.png': 'Monte-Carlo Pi time against workers',
              'payload.png': 'payload rate against message size',
              'mandel-numpy.png': 'Mandelbrot farm (numpy) against workers',
              'mandel-c.png': 'Mandelbrot farm (C kernel) against workers'}


def parse_overrides(items, what):
    """['ring=2,16', 'pi=1,2'] -> {'ring': '2,16', 'pi': '1,2'}."""
    out = {}
    for item in items or []:
        kernel, eq, value = item.partition('=')
        if not eq or not value:
            raise SystemExit('%s: KERNEL=VALUE expected, got %r' % (what, item))
        out[kernel] = value
    return out


def plan_with_sizes(plan, sizes):
    """A copy of `plan` with the sizes of --sizes KERNEL=LIST."""
    plan = copy.deepcopy(plan)
    for kernel, text in sizes.items():
        items = K.parse_sizes(kernel, text)
        if kernel == 'ring':
            plan['ring'] = {b: items for b in OURS}
        elif kernel == 'spawn':
            plan['spawn'] = {b: items for b in OURS}
        elif kernel.startswith('mandel'):
            plan['mandel'] = items
        elif kernel in ('tokens', 'pi', 'payload', 'alt'):
            plan[kernel] = items
        else:
            raise SystemExit('--sizes: %s has no sizes to set' % kernel)
    return plan


def plots_lines(jobs, args):
    if args.no_plots:
        return []
    missing = matplotlib_missing()
    if missing:
        return ['Plots: not saved, matplotlib is not installed (%s); '
                'to get it: %s' % (missing, INSTALL_HINT)]
    made = save_plots(jobs, args.plots, '%s CPUs, Python %s, medians of %d rounds '
                      '(bars: min-max)' % (os.cpu_count(), sys.version.split()[0],
                                           args.rounds_done))
    if not made:
        return ['Plots: none (nothing plottable was measured)']
    lines = ['Plots saved in %s:' % os.path.abspath(args.plots)]
    for path in made:
        name = os.path.basename(path)
        lines.append('  %-18s %s' % (name, PLOT_NAMES.get(name, '')))
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(prog='python -m pycsp.bench', description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--full', action='store_true',
                    help='the full set (several minutes); prints every detailed table')
    ap.add_argument('--details', action='store_true',
                    help='after the headline, the detailed tables of the same run')
    ap.add_argument('--backends', default=','.join(OURS))
    ap.add_argument('--kernels', default=None,
                    help='only these (commstime,ring,tokens,pi,mandel-numpy,mandel-c,'
                         'payload,spawn,alt,handoff)')
    ap.add_argument('--sizes', action='append', metavar='KERNEL=LIST',
                    help='the sizes of one kernel, e.g. ring=2,16 or '
                         'payload=numpy-1K,numpy-1M (repeatable)')
    ap.add_argument('--work', action='append', metavar='KERNEL=WORK',
                    help="a fixed-work kernel's work: pi=SAMPLES or "
                         "mandel-c=WIDTHxHEIGHTxMAXITER (repeatable)")
    ap.add_argument('--pycsp092', default=os.environ.get('PYCSP092_PYTHON'),
                    help="PyCSP 0.9.2's interpreter (default $PYCSP092_PYTHON)")
    ap.add_argument('--no-floor', action='store_true',
                    help='skip the C hand-off floors (--full)')
    ap.add_argument('--rounds', type=int, default=None,
                    help='interleaved rounds (default 3)')
    ap.add_argument('--target', type=float, default=None,
                    help='seconds of timed work per calibrated measurement')
    ap.add_argument('--timeout', type=float, default=None,
                    help='seconds for one subprocess (one kernel, one round)')
    ap.add_argument('--plots', default='pycsp-bench-plots', help='directory for PNGs')
    ap.add_argument('--no-plots', action='store_true')
    ap.add_argument('--json', default=None, help='write the results as JSON here')
    args = ap.parse_args(argv)
    plan = plan_with_sizes(PLANS['full' if args.full else 'short'],
                           parse_overrides(args.sizes, '--sizes'))
    work = parse_overrides(args.work, '--work')
    rounds = args.rounds or plan['rounds']
    if rounds < 1:
        ap.error('--rounds must be at least 1')
    args.rounds_done = rounds
    target = args.target or plan['target']
    timeout = args.timeout or plan['timeout']
    backends = [b for b in args.backends.split(',') if b]
    unknown = [b for b in backends if b not in OURS]
    if unknown:
        ap.error('--backends: unknown %s (choose from %s)' % (
            ', '.join(unknown), ', '.join(OURS)))
    only = args.kernels.split(',') if args.kernels else None

    t0 = time.time()
    try:
        load = ' '.join('%.2f' % x for x in os.getloadavg())
    except OSError:
        load = '?'
    print('pycsp.bench %s: Python %s, %s CPUs, load average %s' % (
        'full' if args.full else 'short', sys.version.split()[0], os.cpu_count(), load),
        flush=True)
    notes = []
    if 'mandel-c' in plan['ours'] and 'mandel-c' in (only or ['mandel-c']):
        try:
            K.build_c_library(K.MANDEL_C, 'mandel')
        except Exception as e:
            notes.append('mandel-c: not measured (%s)' % e)
            only = [k for k in (only or K.KERNELS) if k != 'mandel-c']
    floors = plan['floors'] and not args.no_floor and (not only or bool(
        set(only) & set(FLOOR_KERNELS + ('handoff',))))
    if floors:
        try:
            for f in K.FLOOR_SOURCES:
                K.build_c_program(K.floor_source(f), K.FLOOR_SOURCES[f][0])
        except Exception as e:
            notes.append('C floor: not measured (%s)' % e)
            floors = False
    jobs, unavailable = make_jobs(plan, backends, args.pycsp092, only, floors, work)
    run_rounds(jobs, rounds, target, timeout, t0)

    print('\n'.join([''] + headline(jobs, unavailable, backends, rounds)))
    for name, why in unavailable.items():
        if name not in OURS and not name.startswith('pycsp092'):
            print('%s: not available: %s' % (name, why))
    for line in notes:
        print(line)
    for f in failures(jobs):
        print('FAILED ' + f)
    print('')
    for line in plots_lines(jobs, args):
        print(line)
    if args.full or args.details:
        print('\n'.join(['', 'Detailed tables' + (' (--full)' if args.full else
                                                  ' of this run (--details)') + ':']
                        + details(jobs)))
    else:
        print('Detailed tables: add --details (this run\'s tables) or --full (the full '
              'set, several minutes).')
    print('wall time %.0f s' % (time.time() - t0))
    if args.json:
        write_json(args.json, jobs, unavailable, args, rounds, target, load, t0)
    return 0


def write_json(path, jobs, unavailable, args, rounds, target, load, t0):
    res, spread = collect(jobs)
    data = {'when': time.strftime('%Y-%m-%dT%H:%M:%S'), 'full': args.full,
            'rounds': rounds, 'target_s': target, 'load_at_start': load,
            'python': sys.version.split()[0], 'cpus': os.cpu_count(),
            'units': K.UNITS,
            'results': {k: [{'size': s, 'median': v} for s, v in rows.items()]
                        for k, rows in res.items()},
            'values': [{'backend': j.backend, 'kernel': j.kernel,
                        'values': {str(s): j.values(s) for s in j.sizes},
                        'errors': {str(s): e for s, e in j.errors.items()},
                        'seconds': j.seconds}
                       for j in jobs],
            'speedups': speedups(res), 'spawn': spawn_summary(jobs),
            'unavailable': unavailable, 'failures': failures(jobs),
            'wall_s': round(time.time() - t0, 1)}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(data, f, indent=1, default=str)


if __name__ == '__main__':
    sys.exit(main())
