#!/usr/bin/env python3
"""One backend side by side with its peers, in one run.

    python benchmarks/run.py --backend threads   [--quick] [--json [PATH]]
    python benchmarks/run.py --backend greenlets [--quick] [--json [PATH]]
    python benchmarks/run.py --backend processes [--quick] [--json [PATH]]

What is compared (the same kernels.py source for every CSP implementation):

  threads    pycsp.threads | queue.SimpleQueue + threading.Thread | PyCSP 0.9.2 threads
             (pycsp.parallel @process) | C floor: two pthreads handing a counter back
             and forth (condvar, raw futex, spin)
  greenlets  pycsp.greenlets | PyCSP 0.9.2 greenlets (pycsp.greenlets in its venv) |
             floor: two raw greenlets switching back and forth (us per switch)
  processes  pycsp.processes | multiprocessing.Pipe + Process | PyCSP 0.9.2 @multiprocess |
             C floor: the same Commstime and ring networks of bare forked processes,
             one shared word per channel, sleeping on a futex ("C futex") or with the
             library's waiting policy ("C hybrid": yield-spin up to 50 us, then futex)
             (pycsp/bench/floor_processes.c, run through kernels.py as c-processes:MODE,
             interleaved and calibrated like the others); also the two-process hand-off

Kernels: Commstime (us per channel communication, 4 per cycle), a token ring of
2..256 processes (us per hop) and, for ours only, alt-K: K producers (2; with 8 too
unless --quick) each on their own channel, one consumer looping on
AltSelect(InputGuard(c1), ..., InputGuard(cK)) (us per message received).

The machine is shared and noisy, so the implementations are interleaved: each round
runs every implementation once, each in its own subprocess with a time-out (iteration
counts are calibrated in the first round to about --target seconds of timed work and
then fixed), and the figure is the median over the rounds (5; 3 with --quick).

Ratios: "vs PEER" = peer time / our time (>1x: ours is faster); "vs FLOOR" = our
time / floor time (how far above the floor ours is).  Below the table: ring-256 /
ring-2 per hop for ours and each floor.  The targets of DESIGN.md ("Figures to
reach") are checked at the end.

PyCSP 0.9.2 runs in its own venv ($PYCSP092_PYTHON, default
/work/peers/pycsp092/bin/python) with PYCSP_HOST=127.0.0.1 and no PYTHONPATH.
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
# the C floors' sources live in the package (one copy; python -m pycsp.bench uses them)
FLOOR_DIR = os.path.join(os.path.dirname(HERE), 'pycsp', 'bench')
OUT = os.path.join(HERE, 'out')
DEFAULT_092 = '/work/peers/pycsp092/bin/python'

# backend -> what to compare.  peers: (label, kernels.py backend, interpreter[, kernels])
# where interpreter is 'dev' (the one running this script) or '092' (PyCSP 0.9.2 venv)
# and kernels names the kernels that peer runs (default: commstime and ring).
PAYLOADS = ['bytes-1K', 'bytes-1M', 'bytes-64M', 'numpy-1K', 'numpy-1M', 'numpy-64M']
CONFIGS = {
    'threads': {
        'ours': ('pycsp.threads', 'threads', ('commstime', 'ring', 'alt')),
        'peers': [('SimpleQueue', 'simplequeue', 'dev'),
                  ('PyCSP 0.9.2 threads', 'pycsp092-threads', '092')],
        'floor': 'c-handoff',
    },
    'greenlets': {
        'ours': ('pycsp.greenlets', 'greenlets', ('commstime', 'ring', 'alt')),
        'peers': [('PyCSP 0.9.2 greenlets', 'pycsp092-greenlets', '092')],
        'floor': 'greenlet-switch',
    },
    'processes': {
        'ours': ('pycsp.processes', 'processes',
                 ('commstime', 'ring', 'alt', 'payload', 'pi')),
        'peers': [('mp.Pipe', 'mp-pipe', 'dev', ('commstime', 'ring', 'payload')),
                  ('mp.Queue', 'mp-queue', 'dev', ('payload',)),
                  ('mp.Pool', 'mp-pool', 'dev', ('pi',)),
                  ('PyCSP 0.9.2 @multiprocess', 'pycsp092-multiprocess', '092',
                   ('commstime', 'ring')),
                  ('pycsp.threads', 'threads', 'dev', ('pi',)),
                  ('pycsp.greenlets', 'greenlets', 'dev', ('pi',))],
        'floor': 'c-processes',
        # the same networks in C: (label, kernels.py backend) for commstime and ring
        'net_floors': [('C futex', 'c-processes:futex'), ('C hybrid', 'c-processes:hybrid')],
    },
}
# PyCSP 0.9.2 @multiprocess: a ring of 32 timed out (120 s) in a run here, 256 fails
MAX_RING = {'pycsp092-multiprocess': 16}
UNITS = {'commstime': 'us/comm', 'ring': 'us/hop', 'tokens': 'us/hop', 'pi': 's',
         'payload': 'GB/s', 'switch': 'us/switch', 'alt': 'us/msg'}
HIGHER_IS_BETTER = ('payload',)

API = ('Channel', 'process', 'Parallel', 'poison', 'ChannelPoisonException',
       'ChannelRetireException')


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Interpreters and environments
# ---------------------------------------------------------------------------

def probe_ours(module):
    """Import `module` (e.g. pycsp.threads) here.  Returns (ok, info, root)."""
    import importlib
    try:
        m = importlib.import_module(module)
    except Exception as e:  # ImportError, or anything a half-built package raises
        return False, '%s: %s' % (type(e).__name__, e), None
    missing = [n for n in API if not hasattr(m, n)]
    if missing:
        return False, '%s lacks %s (not built yet?)' % (module, ', '.join(missing)), None
    pkg = sys.modules['pycsp']
    root = os.path.dirname(os.path.dirname(os.path.abspath(pkg.__file__)))
    return True, 'version=%r from %s' % (getattr(m, 'version', None), root), root


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


def probe_092(python, module):
    if not python or not os.path.exists(python):
        return False, 'no interpreter at %s (set PYCSP092_PYTHON)' % python
    code = 'import %s as p, pycsp; print(getattr(p, "version", "?"), pycsp.__file__)' % module
    try:
        r = subprocess.run([python, '-c', code], env=env_092(), capture_output=True,
                           text=True, timeout=60, cwd=HERE)
    except subprocess.TimeoutExpired:
        return False, 'import timed out'
    if r.returncode != 0:
        return False, (r.stderr.strip().splitlines() or ['?'])[-1]
    return True, r.stdout.strip()


# ---------------------------------------------------------------------------
# One implementation: runs kernels.py in a subprocess, one value per round
# ---------------------------------------------------------------------------

class Impl:
    def __init__(self, label, python, backend, env, kernels, quick=False):
        self.label, self.python, self.backend, self.env = label, python, backend, env
        self.kernels = kernels   # kernel -> list of sizes ([None] for commstime/switch)
        self.quick = quick
        self.ns = {}             # (kernel, size) -> fixed n after calibration
        self.values = {}         # (kernel, size) -> [value, ...] in UNITS[kernel]
        self.errors = {}         # (kernel, size) -> reason (that size is not run again)

    def run_round(self, target, timeout):
        for kernel, sizes in self.kernels.items():
            sizes = [s for s in sizes if (kernel, s) not in self.errors]
            if sizes:
                self._run(kernel, sizes, target, timeout)

    def _run(self, kernel, sizes, target, timeout):
        kk = 'commstime' if kernel == 'switch' else kernel
        cmd = [self.python, KERNELS, '--backend', self.backend, '--kernel', kk,
               '--repeats', '1', '--target', str(target)]
        if self.quick:
            cmd.append('--quick')
        if sizes != [None]:
            cmd += ['--sizes', ','.join(map(str, sizes))]
        if all((kernel, s) in self.ns for s in sizes):
            cmd += ['--n', ','.join(str(self.ns[(kernel, s)]) for s in sizes)]
        t0 = time.time()
        try:
            r = subprocess.run(cmd, env=self.env, capture_output=True, text=True,
                               timeout=timeout, cwd=HERE)
            out, err, rc = r.stdout, r.stderr, r.returncode
            reason = None
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or '')
            err, rc = '', None
            reason = 'timed out after %.0f s' % (time.time() - t0)
        recs = []
        for line in out.splitlines():
            line = line.strip()
            if line.startswith('{'):
                try:
                    recs.append(json.loads(line))
                except ValueError:
                    pass
        done = set()
        for rec in recs:
            size = rec['size']
            done.add(size)
            v = rec['values'][0]
            if v is not None:
                self.values.setdefault((kernel, size), []).append(v)
                if rec.get('n') is not None:
                    self.ns.setdefault((kernel, size), rec['n'])
        if rc != 0 or len(done) < len(sizes):
            if reason is None:
                tail = (err.strip().splitlines() or ['exit %s' % rc])[-1]
                reason = 'failed: %s' % tail[-200:]
            # the first size without a record is the one that failed; the ones
            # after it were not reached and are tried again next round
            bad = next((s for s in sizes if s not in done), sizes[-1])
            self.errors[(kernel, bad)] = reason
            log('  %s, %s: %s' % (self.label, row_name(kernel, bad), reason))

    def median(self, kernel, size):
        v = self.values.get((kernel, size))
        return statistics.median(v) if v else None


# ---------------------------------------------------------------------------
# C floors: one run of each mode per round.  threads: two pthreads
# (pycsp/bench/floor_threads.c); processes: two forked processes on shared memory
# (pycsp/bench/floor_processes.c).  Figures in us per hand-off.
# ---------------------------------------------------------------------------

class CFloor:
    SOURCES = {'c-handoff': ('floor_threads', ('condvar', 'futex', 'spin'), '-pthread'),
               'c-processes': ('floor_processes', ('futex', 'spin', 'hybrid'), '-pthread')}

    def __init__(self, kind, quick):
        name, self.MODES, flag = self.SOURCES[kind]
        self.values = {}
        self.error = None
        sleeping = 20000 if quick else 50000
        self.plan = {m: (200000 if quick else 1000000) if m == 'spin' else sleeping
                     for m in self.MODES}
        cc = os.environ.get('CC') or shutil.which('cc') or shutil.which('gcc')
        if not cc:
            self.error = 'no C compiler'
            return
        os.makedirs(OUT, exist_ok=True)
        self.exe = os.path.join(OUT, name)
        r = subprocess.run([cc, '-O2'] + ([flag] if flag else []) +
                           ['-o', self.exe, os.path.join(FLOOR_DIR, name + '.c')],
                           capture_output=True, text=True)
        if r.returncode != 0:
            self.error = 'compile failed: ' + r.stderr.strip()[-300:]

    def run_round(self, target, timeout):
        if self.error:
            return
        for mode, n in self.plan.items():
            try:
                p = subprocess.run([self.exe, mode, str(n), '1'], capture_output=True,
                                   text=True, timeout=60)
                for line in p.stdout.splitlines():
                    if line.strip():
                        self.values.setdefault(mode, []).append(float(line.split()[1]) / 1000.0)
            except (subprocess.TimeoutExpired, ValueError, IndexError) as e:
                self.values.setdefault(mode + '-errors', []).append(repr(e))

    def median(self, mode):
        v = [x for x in self.values.get(mode, []) if isinstance(x, float)]
        return statistics.median(v) if v else None


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


def ratio_val(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt_ratio(r, width=9):
    return ('-' if r is None else '%.2fx' % r).rjust(width)


def row_name(kernel, size):
    if kernel in ('commstime', 'switch') or size is None:
        return kernel
    if kernel == 'pi':
        return 'pi-%dw' % size
    return '%s-%s' % (kernel, size)


FLOOR_KERNELS = ('commstime', 'ring', 'tokens')   # latency rows a hand-off floor bounds


def better_ratio(kernel, peer, ours):
    """>1: ours is better (faster, or more GB/s)."""
    if kernel in HIGHER_IS_BETTER:
        return ratio_val(ours, peer)
    return ratio_val(peer, ours)


def build_table(backend, ours, peers, floors, rows):
    """Return (lines, table) where table is a list of dicts (for JSON)."""
    impls = ([ours] if ours else []) + peers
    cols = [i.label for i in impls] + [f[0] for f in floors]   # floors: (label, fn)
    rcols = []
    if ours:
        rcols = ['vs ' + p.label for p in peers] + ['vs ' + f[0] for f in floors]
    wid = {c: max(9, len(c) + 2) for c in cols + rcols}
    head = '%-14s%-8s' % ('kernel', 'unit') + ''.join(c.rjust(wid[c]) for c in cols + rcols)
    lines = ['Medians over the rounds.  Units: us per communication (commstime), per hop '
             '(ring), per message (alt), seconds (pi), GB/s (payload).',
             ('"vs PEER" = how many times better %s is than PEER (PEER / ours for times, '
              'ours / PEER for GB/s); "vs FLOOR" = ours / FLOOR.' % ours.label)
             if ours else '(our backend is missing)',
             head, '-' * len(head)]
    table = []
    for kernel, size in rows:
        vals = {i.label: i.median(kernel, size) for i in impls}
        fl = [(lab, fn(kernel, size)) for lab, fn in floors]
        vals.update(dict(fl))
        line = '%-14s%-8s' % (row_name(kernel, size), UNITS.get(kernel, ''))
        line += ''.join(fmt(vals[c], wid[c]) for c in cols)
        rec = {'kernel': kernel, 'size': size, 'unit': UNITS.get(kernel),
               'median': {i.label: vals[i.label] for i in impls},
               'floor_us': dict(fl)}
        if ours:
            o = vals[ours.label]
            pr = {p.label: better_ratio(kernel, vals[p.label], o) for p in peers}
            fr = {lab: ratio_val(o, v) for lab, v in fl}
            line += ''.join(fmt_ratio(pr[p.label], wid['vs ' + p.label]) for p in peers)
            line += ''.join(fmt_ratio(fr[lab], wid['vs ' + lab]) for lab, _ in fl)
            rec['ours_better_by'] = pr
            rec['ours_over_floor'] = fr
        lines.append(line)
        table.append(rec)
    return lines, table


def ring_growth(ours, floors, sizes, big=256):
    """'ring-N / ring-2 per hop' for ours and the network floors (N = `big` if it is
    among the sizes, else the largest), or None."""
    if 2 not in sizes or max(sizes) <= 2:
        return None
    n = big if big in sizes else max(sizes)
    parts = ['%s %s' % (i.label, fmt_ratio(ratio_val(i.median('ring', n),
                                                     i.median('ring', 2)), 0))
             for i in ours + floors if 'ring' in i.kernels]
    return ('ring-%d / ring-2 per hop: ' % n + ', '.join(parts)) if parts else None


def speedups(impls, workers):
    """Monte-Carlo Pi: time with 1 worker / time with W workers, per implementation."""
    out = {}
    for i in impls:
        t1 = i.median('pi', 1)
        if t1 is None:
            continue
        out[i.label] = {w: ratio_val(t1, i.median('pi', w)) for w in workers}
    return out


def check_targets(backend, ours, peers, floors):
    """The DESIGN.md targets for this backend: list of (what, value, target, met)."""
    if ours is None:
        return []
    c = ours.median('commstime', None)
    by = {p.backend: p for p in peers}

    def med(backend_, kernel, size):
        p = by.get(backend_)
        return p.median(kernel, size) if p else None

    fl = {lab: fn('commstime', None) for lab, fn in floors}
    out = []

    def add(what, value, target, ok):
        out.append((what, value, target, None if value is None else ok))

    if backend == 'threads':
        add('commstime us/comm', c, '<= 3 us', c is not None and c <= 3)
        r = ratio_val(med('pycsp092-threads', 'commstime', None), c)
        add('vs PyCSP 0.9.2 threads', r, '>= 15x', r is not None and r >= 15)
    elif backend == 'greenlets':
        add('commstime us/comm', c, '<= 0.35 us', c is not None and c <= 0.35)
        r = ratio_val(med('pycsp092-greenlets', 'commstime', None), c)
        add('vs PyCSP 0.9.2 greenlets', r, '>= 5x', r is not None and r >= 5)
        r = ratio_val(c, fl.get('raw switch'))
        add('commstime / raw greenlet switch', r, '<= 3x', r is not None and r <= 3)
    elif backend == 'processes':
        add('commstime us/comm', c, '<= 5 us', c is not None and c <= 5)
        r = ratio_val(med('mp-pipe', 'commstime', None), c)
        add('commstime vs mp.Pipe', r, '>= 10x', r is not None and r >= 10)
        r = ratio_val(med('pycsp092-multiprocess', 'commstime', None), c)
        add('commstime vs PyCSP 0.9.2 @multiprocess', r, '>= 40x', r is not None and r >= 40)
        r = ratio_val(ours.median('ring', 256), ours.median('ring', 2))
        add('ring-256 / ring-2 per hop', r, '<= 2x', r is not None and r <= 2)
        g = ours.median('payload', 'numpy-64M')
        add('numpy-64M GB/s', g, '>= 5 GB/s', g is not None and g >= 5)
        r = ratio_val(g, med('mp-pipe', 'payload', 'numpy-64M'))
        add('numpy-64M vs mp.Pipe', r, '>= 4x', r is not None and r >= 4)
        r = ratio_val(ours.median('pi', 1), ours.median('pi', 2))
        add('MC Pi processes: T(1) / T(2 workers)', r, '>= 1.8x', r is not None and r >= 1.8)
        r = ratio_val(med('threads', 'pi', 5), med('threads', 'pi', 1))
        add('MC Pi threads: T(5) / T(1 worker)', r, '<= 1.1x', r is not None and r <= 1.1)
    return out


def floor_reference(peers, net_floors, sizes, big=256):
    """The processes targets that compare ours with a peer or with itself, computed
    for each network floor instead of ours: [(what, value)]."""
    pipe = next((p for p in peers if p.backend == 'mp-pipe'), None)
    n = big if big in sizes else max(sizes)
    out = []
    for f in net_floors:
        if pipe and 'commstime' in f.kernels:
            out.append(('%s commstime: mp.Pipe / C' % f.label,
                        ratio_val(pipe.median('commstime', None), f.median('commstime', None))))
        if 'ring' in f.kernels and 2 in sizes and n > 2:
            out.append(('%s ring-%d / ring-2 per hop' % (f.label, n),
                        ratio_val(f.median('ring', n), f.median('ring', 2))))
    return out


def machine_info():
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {
        'when': time.strftime('%Y-%m-%dT%H:%M:%S'),
        'nproc': os.cpu_count(),
        'affinity': len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else None,
        'kernel': platform.release(),
        'machine': platform.machine(),
        'python': platform.python_version(),
        'loadavg': load,
    }


def main(argv=None, prog=None):
    ap = argparse.ArgumentParser(prog=prog, description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--backend', choices=sorted(CONFIGS), required=True)
    ap.add_argument('--quick', action='store_true',
                    help='3 rounds, shorter measurements, rings 2,16,256')
    ap.add_argument('--rounds', type=int, default=None, help='rounds (default 5; quick 3)')
    ap.add_argument('--target', type=float, default=None,
                    help='seconds of timed work per measurement (default 0.5; quick 0.1)')
    ap.add_argument('--ring-sizes', default=None,
                    help='comma list (default 2,4,...,256; quick 2,16,256)')
    ap.add_argument('--payloads', default=None,
                    help='processes: payload sizes (default %s)' % ','.join(PAYLOADS))
    ap.add_argument('--workers', default=None,
                    help='processes: Monte-Carlo Pi workers (default 1,2,3,4,5)')
    ap.add_argument('--kernels', default=None,
                    help='only these kernels (comma list of commstime,ring,alt,payload,pi)')
    ap.add_argument('--timeout', type=float, default=120,
                    help='seconds before one kernel run is declared hung')
    ap.add_argument('--no-092', action='store_true', help='skip PyCSP 0.9.2')
    ap.add_argument('--no-floor', action='store_true', help='skip the floor')
    ap.add_argument('--json', nargs='?', const='', default=None,
                    help='write results as JSON (default path out/BACKEND.json)')
    args = ap.parse_args(argv)
    cfg = CONFIGS[args.backend]
    rounds = args.rounds or (3 if args.quick else 5)
    target = args.target or (0.1 if args.quick else 0.5)
    sizes = [int(s) for s in (args.ring_sizes or
                              ('2,16,256' if args.quick else '2,4,8,16,32,64,128,256')
                              ).split(',')]
    payloads = (args.payloads or ','.join(PAYLOADS)).split(',')
    workers = [int(w) for w in (args.workers or '1,2,3,4,5').split(',')]
    all_sizes = {'commstime': [None], 'ring': sizes, 'payload': payloads, 'pi': workers,
                 'alt': [2] if args.quick else [2, 8]}
    only = args.kernels.split(',') if args.kernels else None

    def kernels_for(backend, names=('commstime', 'ring')):
        out = {}
        for k in names:
            if only and k not in only:
                continue
            ss = all_sizes[k]
            if k == 'ring' and backend in MAX_RING:
                ss = [x for x in ss if x <= MAX_RING[backend]]
            if ss:
                out[k] = ss
        return out

    t_start = time.time()
    info = machine_info()
    print('%s  command: %s' % (info['when'], ' '.join([sys.executable] + sys.argv)))
    print('python %s, %s %s, nproc %s, load average %s' % (
        info['python'], info['machine'], info['kernel'], info['nproc'],
        ' '.join('%.2f' % x for x in info['loadavg']) if info['loadavg'] else '?'))

    ours = None
    label, alias = cfg['ours'][:2]
    ok, msg, root = probe_ours(label)
    print('%-28s %s' % (label + ':', ('ok, ' if ok else 'MISSING, ') + msg))
    if ok:
        ours = Impl(label, sys.executable, alias, env_ours(root),
                    kernels_for(alias, *cfg['ours'][2:]), args.quick)
    peers = []
    py092 = os.environ.get('PYCSP092_PYTHON', DEFAULT_092)
    for peer in cfg['peers']:
        plabel, pbackend, interp = peer[:3]
        pk = kernels_for(pbackend, *peer[3:])
        if not pk:
            continue
        if interp == '092':
            if args.no_092:
                continue
            module = {'pycsp092-greenlets': 'pycsp.greenlets'}.get(pbackend, 'pycsp.parallel')
            ok92, msg92 = probe_092(py092, module)
            print('%-28s %s' % (plabel + ':', ('ok, ' if ok92 else 'MISSING, ') + msg92))
            if ok92:
                peers.append(Impl(plabel, py092, pbackend, env_092(), pk, args.quick))
        elif pbackend in ('threads', 'greenlets', 'processes'):
            okp, msgp, rootp = probe_ours('pycsp.' + pbackend)
            if okp:
                peers.append(Impl(plabel, sys.executable, pbackend, env_ours(rootp), pk,
                                  args.quick))
            else:
                print('%-28s MISSING, %s' % (plabel + ':', msgp))
        else:
            peers.append(Impl(plabel, sys.executable, pbackend, dict(os.environ), pk,
                              args.quick))

    floor_impl = cfloor = None
    net_floors = []
    if not args.no_floor:
        if cfg['floor'] == 'greenlet-switch':
            floor_impl = Impl('raw switch', sys.executable, 'greenlet-switch',
                              dict(os.environ), {'switch': [None]})
        elif cfg['floor'] in CFloor.SOURCES:
            cfloor = CFloor(cfg['floor'], args.quick)
            if cfloor.error:
                print('C floor: %s' % cfloor.error)
            else:
                for flabel, fbackend in cfg.get('net_floors', []):
                    fk = kernels_for(fbackend)
                    if fk:
                        net_floors.append(Impl(flabel, sys.executable, fbackend,
                                               dict(os.environ), fk, args.quick))
    runners = ([ours] if ours else []) + peers + \
        ([floor_impl] if floor_impl else []) + net_floors + \
        ([cfloor] if cfloor and not cfloor.error else [])

    for r in range(rounds):
        log('round %d/%d ...' % (r + 1, rounds))
        for impl in runners:
            impl.run_round(target, args.timeout)

    # floors: (label, fn(kernel, size) -> figure or None).  A hand-off floor bounds
    # every latency row; a network floor is that row's own network in C.
    def hand_off(v):
        return lambda k, s: v if k in FLOOR_KERNELS else None

    floors = []
    if floor_impl:
        floors.append(('raw switch', hand_off(floor_impl.median('switch', None))))
    if net_floors:
        floors += [(f.label, f.median) for f in net_floors]
    elif cfloor and not cfloor.error:
        floors += [('C futex', hand_off(cfloor.median('futex'))),
                   ('C spin', hand_off(cfloor.median('spin')))]

    rows = []
    for k in ('commstime', 'ring', 'alt', 'payload', 'pi'):
        if any(k in i.kernels for i in ([ours] if ours else []) + peers):
            rows += [(k, x) for x in all_sizes[k]]
    lines, table = build_table(args.backend, ours, peers, floors, rows)
    print()
    print('\n'.join(lines))
    if net_floors:
        print('C futex, C hybrid: the same network (Commstime of 4, one-token ring of N) '
              'of bare forked C processes, one')
        print('shared word per channel; futex = sleep at once, hybrid = the library\'s '
              'policy (yield-spin up to 50 us, then futex).')
    growth = ring_growth([ours] if ours else [], net_floors, sizes)
    if growth:
        print(growth)
    print()
    if floor_impl:
        v = floor_impl.values.get(('switch', None), [])
        print('raw greenlet switch (two greenlets switching back and forth), us per switch: '
              'median %s  (%s)' % (fmt(floor_impl.median('switch', None), 0),
                                   ', '.join('%.3f' % x for x in v)))
    sp = speedups(([ours] if ours else []) + peers, workers)
    if sp:
        print('Monte-Carlo Pi speed-up, T(1 worker) / T(W workers) (> 1: faster with W):')
        print('  %-28s' % '' + ''.join(('W=%d' % w).rjust(8) for w in workers))
        for lab, d in sp.items():
            print('  %-28s' % lab + ''.join(fmt_ratio(d[w], 8) for w in workers))
        print()
    if cfloor:
        hand = 'pthreads' if cfloor.exe.endswith('threads') else 'forked processes'
        print('C floor: two %s pass a counter through one shared word (us per hand-off)'
              % hand)
        for mode in cfloor.MODES:
            m = cfloor.median(mode)
            if m is not None:
                print('C floor, %-8s hand-off: %8.3f us  (%s)' % (
                    mode, m, ', '.join('%.3f' % x for x in cfloor.values[mode])))
    failures = []
    for impl in ([ours] if ours else []) + peers + ([floor_impl] if floor_impl else []) + \
            net_floors:
        for (k, s), why in sorted(impl.errors.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
            failures.append('%s, %s: %s' % (impl.label, row_name(k, s) if k != 'switch'
                                             else 'switch', why))
    for f in failures:
        print('FAILED ' + f)

    targets = check_targets(args.backend, ours, peers, floors)
    if targets:
        print('\nTargets (DESIGN.md, "Figures to reach"):')
        for what, value, tgt, met in targets:
            val = '-' if value is None else ('%.3f' % value)
            print('  %-40s %9s   target %-10s %s' % (
                what, val, tgt, {True: 'met', False: 'NOT met', None: 'not measured'}[met]))
    ref = floor_reference(peers, net_floors, sizes)
    if ref:
        print('The same figures for the C floor (what this machine costs, for reference):')
        for what, value in ref:
            print('  %-40s %9s' % (what, '-' if value is None else '%.3f' % value))
    print('\nwall time %.0f s' % (time.time() - t_start))

    if args.json is not None:
        path = args.json or os.path.join(OUT, '%s.json' % args.backend)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        impls = ([ours] if ours else []) + peers + ([floor_impl] if floor_impl else []) + \
            net_floors
        data = dict(info)
        data.update({
            'backend': args.backend, 'command': [sys.executable] + sys.argv,
            'rounds': rounds, 'target_s': target,
            'units': UNITS,
            'pi_speedup': sp,
            'impls': {
                i.label: {
                    'backend': i.backend, 'python': i.python,
                    'errors': {row_name(k, s) if k != 'switch' else 'switch': why
                               for (k, s), why in i.errors.items()},
                    'results': [{'kernel': k, 'size': s, 'unit': UNITS.get(k),
                                 'values': v, 'median': statistics.median(v)}
                                for (k, s), v in sorted(i.values.items(),
                                                        key=lambda kv: (kv[0][0], str(kv[0][1])))],
                } for i in impls},
            'c_floor_us': ({m: {'values_us': cfloor.values.get(m, []),
                                'median_us': cfloor.median(m)} for m in cfloor.MODES}
                           if cfloor and not cfloor.error else None),
            'table': table,
            'targets': [{'what': w, 'value': v, 'target': t, 'met': m}
                        for w, v, t, m in targets],
            'missing': [] if ours else [label],
            'wall_s': round(time.time() - t_start, 1),
        })
        with open(path, 'w') as f:
            json.dump(data, f, indent=1)
        print('wrote %s' % path)
    return 0


if __name__ == '__main__':
    sys.exit(main())
