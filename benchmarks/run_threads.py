#!/usr/bin/env python3
"""Threads benchmark: pycsp.threads side by side with its peers, in one run.

Measured (same kernels.py source for every CSP implementation):
  * pycsp.threads            this project (imported from the running interpreter)
  * SimpleQueue              the same networks on queue.SimpleQueue + threading.Thread
  * PyCSP 0.9.2 threads      pycsp.parallel @process, run by the interpreter of its own
                             venv ($PYCSP092_PYTHON, default /work/peers/pycsp092/bin/python)
  * C floor                  two pthreads handing a counter back and forth:
                             condvar / raw futex (sleeping) and spin (busy) wait

Kernels: Commstime (us per channel communication, 4 per cycle) and a token ring
of 2..256 processes (us per hop).

The machine is shared and noisy, so the implementations are interleaved: each
round runs every implementation once (iteration counts are calibrated in the first
round to about --target seconds of timed work), and the figure is the median over
the rounds.  Ratios are "peer time / pycsp.threads time" (>1: pycsp.threads is faster).

    python benchmarks/run_threads.py            # full run (~2-4 minutes)
    python benchmarks/run_threads.py --quick    # ~1 minute
    python benchmarks/run_threads.py --json benchmarks/out/threads.json
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
KERNELS = os.path.join(HERE, 'kernels.py')
OUT = os.path.join(HERE, 'out')
FLOOR_SRC = os.path.join(HERE, 'floor', 'handoff_threads.c')
DEFAULT_092 = '/work/peers/pycsp092/bin/python'

OURS = 'pycsp.threads'
SQ = 'SimpleQueue'
P092 = 'PyCSP 0.9.2 threads'


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Implementations
# ---------------------------------------------------------------------------

def probe_ours():
    """Import pycsp.threads in this interpreter.  Returns (ok, info, pythonpath)."""
    try:
        import pycsp.threads as t  # noqa: F401
    except Exception as e:  # ImportError, or anything the half-built package raises
        return False, '%s: %s' % (type(e).__name__, e), None
    missing = [n for n in ('Channel', 'process', 'Parallel', 'poison',
                           'ChannelPoisonException', 'ChannelRetireException')
               if not hasattr(t, n)]
    if missing:
        return False, 'pycsp.threads lacks %s (package not built yet?)' % ', '.join(missing), None
    pkg = sys.modules['pycsp']
    root = os.path.dirname(os.path.dirname(os.path.abspath(pkg.__file__)))
    ver = getattr(t, 'version', None)
    return True, 'version=%r from %s' % (ver, root), root


def probe_092(python):
    if not python or not os.path.exists(python):
        return False, 'no interpreter at %s (set PYCSP092_PYTHON)' % python
    code = 'import pycsp.parallel as p, pycsp; print(p.version, pycsp.__file__)'
    try:
        r = subprocess.run([python, '-c', code], env=env_092(), capture_output=True,
                           text=True, timeout=60, cwd=HERE)
    except subprocess.TimeoutExpired:
        return False, 'import timed out'
    if r.returncode != 0:
        return False, (r.stderr.strip().splitlines() or ['?'])[-1]
    return True, r.stdout.strip()


def env_092():
    env = dict(os.environ)
    env.pop('PYTHONPATH', None)          # never let it see this project's pycsp
    env['PYCSP_HOST'] = env.get('PYCSP_HOST', '127.0.0.1')
    return env


def env_ours(root):
    env = dict(os.environ)
    if root:
        env['PYTHONPATH'] = root + (os.pathsep + env['PYTHONPATH']
                                    if env.get('PYTHONPATH') else '')
    return env


class Impl:
    def __init__(self, label, python, backend, env):
        self.label, self.python, self.backend, self.env = label, python, backend, env
        self.ns = {}             # kernel -> n string for later rounds
        self.values = {}         # (kernel, size) -> [us, ...]
        self.error = None

    def run(self, kernel, sizes, target, timeout):
        if self.error:
            return
        cmd = [self.python, KERNELS, '--backend', self.backend, '--kernel', kernel,
               '--repeats', '1', '--target', str(target)]
        if kernel == 'ring':
            cmd += ['--ring-sizes', ','.join(map(str, sizes))]
        if kernel in self.ns:
            cmd += ['--n', self.ns[kernel]]
        try:
            r = subprocess.run(cmd, env=self.env, capture_output=True, text=True,
                               timeout=timeout, cwd=HERE)
        except subprocess.TimeoutExpired:
            self.error = '%s timed out after %ss' % (kernel, timeout)
            log('  %s: %s' % (self.label, self.error))
            return
        recs = []
        for line in r.stdout.splitlines():
            line = line.strip()
            if line.startswith('{'):
                try:
                    recs.append(json.loads(line))
                except ValueError:
                    pass
        for rec in recs:
            v = rec['values_us'][0]
            if v is not None:
                self.values.setdefault((kernel, rec['size']), []).append(v)
        if r.returncode != 0 or not recs:
            tail = (r.stderr.strip().splitlines() or ['exit %d' % r.returncode])[-1]
            self.error = '%s failed: %s' % (kernel, tail)
            log('  %s: %s' % (self.label, self.error))
            return
        if kernel not in self.ns:
            self.ns[kernel] = ','.join(str(rec['n']) for rec in recs)

    def median(self, kernel, size):
        v = self.values.get((kernel, size))
        return statistics.median(v) if v else None


# ---------------------------------------------------------------------------
# C floor
# ---------------------------------------------------------------------------

def run_floor(repeats, quick):
    cc = os.environ.get('CC') or shutil.which('cc') or shutil.which('gcc')
    if not cc:
        return {'error': 'no C compiler'}
    os.makedirs(OUT, exist_ok=True)
    exe = os.path.join(OUT, 'handoff_threads')
    r = subprocess.run([cc, '-O2', '-pthread', '-o', exe, FLOOR_SRC],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return {'error': 'compile failed: ' + r.stderr.strip()[-300:]}
    res = {}
    plan = {'condvar': 20000 if quick else 50000,
            'futex': 20000 if quick else 50000,
            'spin': 200000 if quick else 1000000}
    for mode, n in plan.items():
        try:
            p = subprocess.run([exe, mode, str(n), str(repeats)], capture_output=True,
                               text=True, timeout=60)
            vals = [float(l.split()[1]) / 1000.0 for l in p.stdout.splitlines() if l.strip()]
            res[mode] = {'values_us': vals, 'median_us': statistics.median(vals)}
        except (subprocess.TimeoutExpired, ValueError, IndexError,
                statistics.StatisticsError) as e:
            res[mode] = {'error': repr(e)}
    return res


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------

def fmt(v, width=9):
    if v is None:
        return '-'.rjust(width)
    if v >= 100:
        s = '%.0f' % v
    elif v >= 10:
        s = '%.1f' % v
    elif v >= 1:
        s = '%.2f' % v
    else:
        s = '%.3f' % v
    return s.rjust(width)


def ratio(peer, ours, width=9):
    if peer is None or ours is None or ours == 0:
        return '-'.rjust(width)
    return ('%.2fx' % (peer / ours)).rjust(width)


def print_table(impls, rows, floor):
    ours = impls.get(OURS)
    peers = [i for i in impls.values() if i.label != OURS]
    fut = floor.get('futex', {}).get('median_us')
    spin = floor.get('spin', {}).get('median_us')
    cols = [i.label for i in impls.values()]
    w = max(9, max(len(c) for c in cols) + 1)
    head = '%-14s' % 'kernel' + ''.join(c.rjust(w) for c in cols)
    if ours is not None:
        head += ''.join(('vs ' + p.label).rjust(w + 3) for p in peers)
        head += 'vs futex'.rjust(10) + 'vs spin'.rjust(10)
    print()
    print('Medians in microseconds (Commstime: per communication; ring-N: per hop).')
    print('"vs X" = X time / pycsp.threads time (>1x: pycsp.threads is faster); '
          '"vs futex"/"vs spin" = pycsp.threads time / C floor.')
    print(head)
    print('-' * len(head))
    for kernel, size in rows:
        name = 'commstime' if kernel == 'commstime' else 'ring-%d' % size
        line = '%-14s' % name
        vals = {i.label: i.median(kernel, size) for i in impls.values()}
        line += ''.join(fmt(vals[c], w) for c in cols)
        if ours is not None:
            o = vals[OURS]
            line += ''.join(ratio(vals[p.label], o, w + 3) for p in peers)
            line += ratio(o, fut, 10) + ratio(o, spin, 10)
        print(line)
    print()
    for mode in ('condvar', 'futex', 'spin'):
        f = floor.get(mode, {})
        if 'median_us' in f:
            print('C floor, %-8s hand-off: %8.3f us  (%s)' % (
                mode, f['median_us'], ', '.join('%.3f' % v for v in f['values_us'])))
        elif f:
            print('C floor, %-8s: %s' % (mode, f.get('error')))
    if 'error' in floor:
        print('C floor: %s' % floor['error'])
    for i in impls.values():
        if i.error:
            print('%s: %s' % (i.label, i.error))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--quick', action='store_true',
                    help='3 rounds, shorter measurements, rings 2,16,256')
    ap.add_argument('--rounds', type=int, default=None, help='rounds (default 5; quick 3)')
    ap.add_argument('--target', type=float, default=None,
                    help='seconds of timed work per measurement (default 0.5; quick 0.1)')
    ap.add_argument('--ring-sizes', default=None,
                    help='comma list (default 2,4,...,256; quick 2,16,256)')
    ap.add_argument('--timeout', type=float, default=120,
                    help='seconds before one kernel run is declared hung')
    ap.add_argument('--no-092', action='store_true', help='skip PyCSP 0.9.2')
    ap.add_argument('--no-floor', action='store_true', help='skip the C floor')
    ap.add_argument('--json', nargs='?', const=os.path.join(OUT, 'threads.json'),
                    default=None, help='write results as JSON (default path %(const)s)')
    args = ap.parse_args()
    rounds = args.rounds or (3 if args.quick else 5)
    target = args.target or (0.1 if args.quick else 0.5)
    sizes = [int(s) for s in (args.ring_sizes or
                              ('2,16,256' if args.quick else '2,4,8,16,32,64,128,256')
                              ).split(',')]

    t_start = time.time()
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    print('python %s on %s, %s cores, load average %s' % (
        platform.python_version(), platform.machine(), os.cpu_count(),
        ' '.join('%.2f' % x for x in load) if load else '?'))

    impls = {}
    ok, info, root = probe_ours()
    print('%-22s %s' % (OURS + ':', ('ok, ' if ok else 'MISSING, ') + info))
    if ok:
        impls[OURS] = Impl(OURS, sys.executable, 'threads', env_ours(root))
    impls[SQ] = Impl(SQ, sys.executable, 'simplequeue', dict(os.environ))
    py092 = os.environ.get('PYCSP092_PYTHON', DEFAULT_092)
    if not args.no_092:
        ok92, info92 = probe_092(py092)
        print('%-22s %s' % (P092 + ':', ('ok, ' if ok92 else 'MISSING, ') + info92))
        if ok92:
            impls[P092] = Impl(P092, py092, 'pycsp092-threads', env_092())

    floor = {}
    if not args.no_floor:
        log('C floor ...')
        floor = run_floor(rounds, args.quick)

    for r in range(rounds):
        log('round %d/%d ...' % (r + 1, rounds))
        for impl in impls.values():
            impl.run('commstime', None, target, args.timeout)
            impl.run('ring', sizes, target, args.timeout)

    rows = [('commstime', None)] + [('ring', s) for s in sizes]
    print_table(impls, rows, floor)
    print('\nwall time %.0f s' % (time.time() - t_start))

    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        data = {
            'when': time.strftime('%Y-%m-%dT%H:%M:%S'),
            'python': platform.python_version(), 'cores': os.cpu_count(),
            'loadavg_start': load, 'rounds': rounds, 'target_s': target,
            'units': 'us per communication (commstime) / per hop (ring)',
            'impls': {
                i.label: {
                    'backend': i.backend, 'python': i.python, 'error': i.error,
                    'results': [{'kernel': k, 'size': s, 'values_us': v,
                                 'median_us': statistics.median(v)}
                                for (k, s), v in sorted(i.values.items(),
                                                        key=lambda kv: (kv[0][0], kv[0][1] or 0))],
                } for i in impls.values()},
            'floor_us': floor,
            'missing': [] if OURS in impls else [OURS],
        }
        with open(args.json, 'w') as f:
            json.dump(data, f, indent=1)
        print('wrote %s' % args.json)


if __name__ == '__main__':
    main()
