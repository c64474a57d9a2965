"""python -m pycsp.bench: the seed's benchmarks on this machine, every backend.

    python -m pycsp.bench                 # short version, under a minute
    python -m pycsp.bench --full          # the full set (several minutes)
    python -m pycsp.bench --pycsp092 /path/to/venv/bin/python   # also PyCSP 0.9.2
    python -m pycsp.bench --backends processes --plots out/ --json out/bench.json

Measured on pycsp.threads, pycsp.greenlets and pycsp.processes (the kernels are in
pycsp/bench/kernels.py, written once against the pycsp API):

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
                 (ours only: PyCSP 0.9.2's AltSelect fails on Python 3.11, asyncio
                 has no direct equivalent)

Beside the peers that are available: queue.SimpleQueue + threads, multiprocessing
(Pipe, Queue, Pool), asyncio tasks + asyncio.Queue(maxsize=1) (commstime, ring,
tokens; compared with pycsp.greenlets, the other one-thread cooperative backend), a
raw greenlet switch, PyCSP 0.9.2 when its interpreter is given (--pycsp092 or
$PYCSP092_PYTHON; it runs with PYCSP_HOST=127.0.0.1), and the floor: bare C
hand-offs between two pthreads and between two forked processes
(pycsp/bench/floor_threads.c, floor_processes.c, compiled with cc -O2 -pthread into
the cache dir of the Mandelbrot kernel; skipped, with the reason printed, when
there is no C compiler; --no-floor to skip).  The sleeping (futex) hand-off is a
column of the commstime, ring and tokens tables; every mode measured is listed
after the tables.  For pycsp.processes the commstime and ring rows have, instead,
the same networks of bare C processes (floor_processes.c ring / commstime: one
shared word per channel), sleeping (futex) and with the library's waiting policy
(hybrid), and the ring table ends with ring-256 / ring-2 per hop.  Every
measurement runs in its own subprocess with a time-out; with --rounds > 1 the
implementations are interleaved round by round and medians are printed.  Ratios
are "how many times better ours is" (peer / ours for times, ours / peer for GB/s);
for the floors (raw greenlet switch, C hand-offs) ours / floor.
Where matplotlib is installed, PNG plots are saved (--plots DIR, default
./pycsp-bench-plots; --no-plots to skip).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from . import kernels as K

HERE = os.path.dirname(os.path.abspath(__file__))
KERNELS_PY = os.path.join(HERE, 'kernels.py')
ROOT = os.path.dirname(os.path.dirname(HERE))     # the directory holding pycsp/

OURS = ('threads', 'greenlets', 'processes')
LABEL = {'threads': 'pycsp.threads', 'greenlets': 'pycsp.greenlets',
         'processes': 'pycsp.processes', 'simplequeue': 'SimpleQueue',
         'mp-pipe': 'mp.Pipe', 'mp-queue': 'mp.Queue', 'mp-pool': 'mp.Pool',
         'greenlet-switch': 'raw greenlet switch', 'asyncio': 'asyncio.Queue',
         'c-threads': 'C threads futex', 'c-processes': 'C 2 procs futex',
         'c-processes:futex': 'C procs futex', 'c-processes:hybrid': 'C procs hybrid',
         'pycsp092-threads': 'PyCSP 0.9.2 threads',
         'pycsp092-greenlets': 'PyCSP 0.9.2 greenlets',
         'pycsp092-multiprocess': 'PyCSP 0.9.2 @multiprocess'}
# peer -> the backend of ours it is compared with
PEER_OF = {'simplequeue': 'threads', 'mp-pipe': 'processes', 'mp-queue': 'processes',
           'mp-pool': 'processes', 'greenlet-switch': 'greenlets',
           'pycsp092-threads': 'threads', 'pycsp092-greenlets': 'greenlets',
           'pycsp092-multiprocess': 'processes', 'asyncio': 'greenlets',
           'c-threads': 'threads', 'c-processes': 'processes',
           'c-processes:futex': 'processes', 'c-processes:hybrid': 'processes'}
# peers that are floors: their ratio is ours / floor (how far above it ours is)
FLOORS = ('greenlet-switch', 'c-threads', 'c-processes', 'c-processes:futex',
          'c-processes:hybrid')
# the C floor's mode shown in the tables' columns (the sleeping wait, as ours)
FLOOR_MODE = 'futex'
FLOOR_KERNELS = ('commstime', 'ring', 'tokens')   # rows a hand-off floor bounds

PLANS = {
    'quick': {
        'rounds': 1, 'target': 0.04, 'timeout': 60,
        'ring': {'threads': [2, 16, 128], 'greenlets': [2, 16, 128, 1024],
                 'processes': [2, 16, 64, 256]},
        'tokens': [1, 8, 32, 63],
        'pi': [1, 2, 5],
        'mandel': [1, 2],
        'payload': ['bytes-1K', 'bytes-1M', 'numpy-16M'],
        'spawn': {'threads': [1000], 'greenlets': [10000], 'processes': [100]},
        'alt': [2],
        'peer_ring_max': {'pycsp092-multiprocess': 16, 'mp-pipe': 64},
        # spinning needs two free cores; on a busy machine one hand-off takes a
        # time slice (ms), so quick runs only the sleeping waits
        'floor': {'c-threads': ['condvar', 'futex'], 'c-processes': ['futex', 'hybrid']},
        # the same Commstime and ring networks of bare C processes, in these modes
        'floor_net': ['futex', 'hybrid'],
    },
    'full': {
        'rounds': 3, 'target': 0.3, 'timeout': 300,
        'ring': {b: [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024] for b in OURS},
        'tokens': [1, 2, 4, 8, 16, 32, 48, 63],
        'pi': [1, 2, 3, 4, 5],
        'mandel': [1, 2, 3, 4, 5],
        'payload': ['bytes-1K', 'bytes-1M', 'bytes-64M',
                    'numpy-1K', 'numpy-1M', 'numpy-64M'],
        'spawn': {'threads': [1000, 10000], 'greenlets': [10000, 100000, 1000000],
                  'processes': [100, 500, 1000]},
        'alt': [2, 8],
        'peer_ring_max': {'pycsp092-multiprocess': 16, 'pycsp092-threads': 256,
                          'mp-pipe': 1024},
        'floor': {'c-threads': ['condvar', 'futex', 'spin'],
                  'c-processes': ['futex', 'spin', 'hybrid']},
        'floor_net': ['futex', 'hybrid'],
    },
}


def log(msg, end='\n'):
    sys.stderr.write(msg + end)
    sys.stderr.flush()


class Job:
    """One implementation and one kernel over some sizes; one subprocess a round."""

    def __init__(self, backend, kernel, sizes, python, env, quick):
        self.backend, self.kernel, self.sizes = backend, kernel, list(sizes)
        self.python, self.env, self.quick = python, env, quick
        self.ns = {}
        self.values = {}        # size -> [values]
        self.errors = {}        # size -> reason
        self.stop_at_failure = kernel == 'spawn'

    def run(self, target, timeout):
        sizes = [s for s in self.sizes if s not in self.errors]
        if self.stop_at_failure and (self.errors or self.values):
            sizes = []          # spawn: measured in the first round only
        if not sizes:
            return
        if self.kernel == 'spawn':
            # one subprocess per size, smallest first, stop at the first failure
            for s in sizes:
                if not self._run([s], target, timeout):
                    break
        else:
            self._run(sizes, target, timeout)

    def _run(self, sizes, target, timeout):
        if self.python == sys.executable and self.backend in OURS + tuple(
                b for b in PEER_OF if not b.startswith('pycsp092')):
            cmd = [self.python, '-m', 'pycsp.bench.kernels']
        else:
            cmd = [self.python, KERNELS_PY]
        cmd += ['--backend', self.backend, '--kernel', self.kernel, '--repeats', '1',
                '--target', str(target)]
        if self.quick:
            cmd.append('--quick')
        if sizes != [None]:
            cmd += ['--sizes', ','.join(map(str, sizes))]
        if sizes != [None] and all(s in self.ns for s in sizes):
            cmd += ['--n', ','.join(str(self.ns[s]) for s in sizes)]
        elif sizes == [None] and None in self.ns:
            cmd += ['--n', str(self.ns[None])]
        t0 = time.time()
        reason = None
        try:
            r = subprocess.run(cmd, env=self.env, capture_output=True, text=True,
                               timeout=timeout, cwd=tempfile.gettempdir())
            out, err, rc = r.stdout, r.stderr, r.returncode
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or '')
            err, rc = '', None
            reason = 'timed out after %.0f s' % (time.time() - t0)
        done = set()
        for line in out.splitlines():
            if line.startswith('{'):
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                size = rec['size']
                done.add(size)
                if rec['values'] and rec['values'][0] is not None:
                    self.values.setdefault(size, []).append(rec['values'][0])
                    if rec.get('n') is not None:
                        self.ns.setdefault(size, rec['n'])
        if rc != 0 or len(done) < len(sizes):
            if reason is None:
                tail = (err.strip().splitlines() or ['exit %s' % rc])[-1]
                reason = 'failed: %s' % tail[-160:]
            bad = next((s for s in sizes if s not in done), sizes[-1])
            self.errors[bad] = reason
            return False
        return True

    def median(self, size):
        v = self.values.get(size)
        return statistics.median(v) if v else None


def probe(python, env, module):
    try:
        r = subprocess.run([python, '-c', 'import %s' % module], env=env,
                           capture_output=True, text=True, timeout=60,
                           cwd=tempfile.gettempdir())
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    if r.returncode:
        return (r.stderr.strip().splitlines() or ['?'])[-1]
    return None


def env_ours():
    env = dict(os.environ)
    env['PYTHONPATH'] = ROOT + (os.pathsep + env['PYTHONPATH']
                                if env.get('PYTHONPATH') else '')
    return env


def env_092():
    env = dict(os.environ)
    env.pop('PYTHONPATH', None)
    env.setdefault('PYCSP_HOST', '127.0.0.1')
    return env


def make_jobs(plan, backends, py092, quick, only, floors=True):
    jobs = []
    eo = env_ours()
    peers = []
    have_numpy = probe(sys.executable, eo, 'numpy') is None
    for b in backends:
        why = probe(sys.executable, eo, 'pycsp.' + b)
        if why:
            log('%s: not measured (%s)' % (LABEL[b], why))
            continue
        ks = [('commstime', [None]), ('ring', plan['ring'][b]), ('tokens', plan['tokens']),
              ('pi', plan['pi']), ('mandel-c', plan['mandel'])]
        if have_numpy:
            ks.append(('mandel-numpy', plan['mandel']))
        ks += [('payload', [p for p in plan['payload']
                            if have_numpy or not p.startswith('numpy')]),
               ('spawn', plan['spawn'][b]), ('alt', plan['alt'])]
        for k, sizes in ks:
            if not only or k in only:
                jobs.append(Job(b, k, sizes, sys.executable, eo, quick))
        if b == 'threads':
            peers.append(('simplequeue', ['commstime', 'ring', 'tokens'], sys.executable, eo))
        if b == 'threads' and floors:
            peers.append(('c-threads', ['handoff'], sys.executable, eo))
        if b == 'greenlets':
            peers.append(('greenlet-switch', ['switch'], sys.executable, eo))
            peers.append(('asyncio', ['commstime', 'ring', 'tokens'], sys.executable, eo))
        if b == 'processes':
            if floors:
                peers.append(('c-processes', ['handoff'], sys.executable, eo))
                peers += [('c-processes:' + m, ['commstime', 'ring'], sys.executable, eo)
                          for m in plan['floor_net']]
            peers += [('mp-pipe', ['commstime', 'ring', 'tokens', 'payload'],
                       sys.executable, eo),
                      ('mp-queue', ['payload'], sys.executable, eo),
                      ('mp-pool', ['pi'], sys.executable, eo)]
    if py092:
        e92 = env_092()
        for b, mod in (('threads', 'pycsp.parallel'), ('greenlets', 'pycsp.greenlets'),
                       ('processes', 'pycsp.parallel')):
            if b not in backends:
                continue
            why = probe(py092, e92, mod)
            name = {'threads': 'pycsp092-threads', 'greenlets': 'pycsp092-greenlets',
                    'processes': 'pycsp092-multiprocess'}[b]
            if why:
                log('%s: not measured (%s)' % (LABEL[name], why))
                continue
            peers.append((name, ['commstime', 'ring', 'tokens', 'pi'], py092, e92))
    for name, kernels, python, env in peers:
        b = PEER_OF[name]
        for k in kernels:
            if only and k not in only and not (k == 'switch' and 'commstime' in only) \
                    and not (k == 'handoff' and set(FLOOR_KERNELS) & set(only)):
                continue
            sizes = {'commstime': [None], 'switch': [None], 'tokens': plan['tokens'],
                     'handoff': plan['floor'].get(name),
                     'pi': plan['pi'], 'payload': [p for p in plan['payload']
                                                   if have_numpy or
                                                   not p.startswith('numpy')],
                     'ring': [s for s in plan['ring'][b]
                              if s <= plan['peer_ring_max'].get(name, 1 << 30)]}[k]
            if k == 'tokens' and name == 'pycsp092-multiprocess':
                sizes = sizes[:2]         # slow: 0.4 ms per hop
            jobs.append(Job(name, k, sizes, python, env, quick))
    return jobs


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------

def fmt(v):
    if v is None:
        return '-'
    if v >= 100:
        return '%.0f' % v
    if v >= 10:
        return '%.1f' % v
    if v >= 1:
        return '%.2f' % v
    return '%.3g' % v


def row_name(kernel, size):
    if size is None:
        return kernel
    if kernel in ('pi', 'mandel-c', 'mandel-numpy'):
        return '%s-%sw' % (kernel, size)
    return '%s-%s' % (kernel, size)


def collect(jobs):
    """{kernel: {size: {backend: median}}} and the failures."""
    res, fails = {}, []
    for j in jobs:
        k = 'commstime' if j.kernel == 'switch' else j.kernel
        for s in j.sizes:
            m = j.median(s)
            if m is not None:
                res.setdefault(k, {}).setdefault(s, {})[j.backend] = m
        for s, why in j.errors.items():
            fails.append('%s, %s: %s' % (LABEL.get(j.backend, j.backend),
                                         row_name(j.kernel, s), why))
    return res, fails


def better(kernel, peer, ours):
    if peer is None or ours is None or not peer or not ours:
        return None
    return ours / peer if kernel in K.HIGHER_IS_BETTER else peer / ours


def with_floors(res):
    """A copy of res with the C floors' FLOOR_MODE figure (us per hand-off) in
    every row of the latency kernels, as a column beside the peers, except where
    that floor measured the kernel's own network (c-processes:MODE)."""
    hand = res.get('handoff', {}).get(FLOOR_MODE, {})
    out = {}
    for k, rows in res.items():
        out[k] = {s: dict(r) for s, r in rows.items()}
        if k in FLOOR_KERNELS:
            own = {b.split(':')[0] for r in rows.values() for b in r if ':' in b}
            for r in out[k].values():
                r.update((f, v) for f, v in hand.items() if f not in own)
    return out


def ring_growth(rows, big=256):
    """'ring-N / ring-2 per hop' for every column with both (N = `big` if measured,
    else the largest size), or None."""
    sizes = [s for s in rows if isinstance(s, int)]
    if 2 not in sizes or max(sizes) <= 2:
        return None
    n = big if big in sizes else max(sizes)
    cols = [b for b in list(OURS) + [b for b in LABEL if b not in OURS]
            if rows[2].get(b) and rows.get(n, {}).get(b)]
    if not cols:
        return None
    return 'ring-%d / ring-2 per hop: ' % n + ', '.join(
        '%s %.2fx' % (LABEL[b], rows[n][b] / rows[2][b]) for b in cols)


def table(res):
    lines = ['Ratios "PEER/our backend": how many times better ours is than PEER (PEER / '
             'ours for times, ours / PEER for GB/s); for the floors (raw greenlet switch, '
             'C hand-offs) it is ours / floor, how far above the floor ours is.',
             'C floors: "C procs futex|hybrid" (commstime, ring) = the same network of bare '
             'forked C processes, one shared word per channel,',
             '  sleeping on a futex, or with the library\'s policy (hybrid: yield-spin up '
             'to 50 us, then futex); "C threads futex",',
             '  "C 2 procs futex" = two pthreads / processes handing a counter back and '
             'forth (us per hand-off, the same in every row).']
    res = with_floors(res)
    order = ['commstime', 'ring', 'tokens', 'alt', 'pi', 'mandel-numpy', 'mandel-c',
             'payload']
    for k in order:
        if k not in res:
            continue
        rows = res[k]
        impls = [b for b in OURS if any(b in r for r in rows.values())]
        peers = [b for b in LABEL if b not in OURS and any(b in r for r in rows.values())]
        # the floors last
        peers = [p for p in peers if p not in FLOORS] + [p for p in peers if p in FLOORS]
        cols = impls + peers
        rcols = ['%s/%s' % (p.replace('c-processes:', 'c-'), PEER_OF[p][:3])
                 for p in peers if PEER_OF[p] in impls]
        head = ['%-16s' % row_name(k, None) + ' [%s]' % K.UNITS[k]]
        w = {c: max(9, len(LABEL[c]) + 1) for c in cols}
        lines.append('')
        lines.append('%-24s' % (k + ' (' + K.UNITS[k] + ')') +
                     ''.join(LABEL[c].rjust(w[c]) for c in cols) +
                     ''.join(r.rjust(max(10, len(r) + 1)) for r in rcols))
        keys = sorted(rows, key=lambda s: (s is not None, K.parse_payload(s)[::-1]
                                           if k == 'payload' and s else s or 0))
        if k == 'payload':
            keys = sorted(rows, key=lambda s: (s.split('-')[0], K.parse_payload(s)[1]))
        for s in keys:
            r = rows[s]
            line = '%-24s' % row_name(k, s) + ''.join(fmt(r.get(c)).rjust(w[c]) for c in cols)
            for p, rc in zip([p for p in peers if PEER_OF[p] in impls], rcols):
                o = r.get(PEER_OF[p])
                if p in FLOORS:       # ours / floor (how far above the floor)
                    v = o / r[p] if r.get(p) and o else None
                else:
                    v = better(k, r.get(p), o)
                line += (('%.2fx' % v) if v is not None else '-').rjust(max(10, len(rc) + 1))
            lines.append(line)
        if k == 'ring':
            g = ring_growth(rows)
            if g:
                lines.append(g)
        del head
    lines += floor_table(res)
    return lines


def floor_table(res):
    """The C floors, every mode measured, each with the ratio of our commstime on
    the matching backend to it."""
    rows = res.get('handoff')
    if not rows:
        return []
    fl = [f for f in ('c-threads', 'c-processes') if any(f in r for r in rows.values())]
    ct = res.get('commstime', {}).get(None, {})
    rfl = [f for f in fl if ct.get(PEER_OF[f])]
    names = {'c-threads': 'C threads', 'c-processes': 'C processes'}
    rnames = ['commstime %s/C' % PEER_OF[f][:3] for f in rfl]
    lines = ['', 'C floor: two pthreads (C threads) or two forked processes (C processes) '
                 'pass a counter back and forth;',
             'us per hand-off, and our commstime (us/comm) on the matching backend / '
             'the floor.',
             '%-24s' % 'handoff (us/handoff)' +
             ''.join(names[f].rjust(13) for f in fl) +
             ''.join(r.rjust(max(10, len(r) + 1)) for r in rnames)]
    order = ['condvar', 'futex', 'hybrid', 'spin']
    for mode in sorted(rows, key=lambda m: (order.index(m) if m in order else 9, m)):
        r = rows[mode]
        line = '%-24s' % ('handoff-' + mode) + ''.join(fmt(r.get(f)).rjust(13) for f in fl)
        for f, rn in zip(rfl, rnames):
            o = ct.get(PEER_OF[f])
            v = o / r[f] if r.get(f) and o else None
            line += (('%.2fx' % v) if v is not None else '-').rjust(max(10, len(rn) + 1))
        lines.append(line)
    return lines


def speedups(res):
    out = {}
    for k in ('pi', 'mandel-numpy', 'mandel-c'):
        rows = res.get(k, {})
        if 1 not in rows:
            continue
        for b, t1 in rows[1].items():
            out.setdefault(k, {})[b] = {w: (t1 / rows[w][b]) if rows[w].get(b) else None
                                        for w in sorted(rows)}
    return out


def spawn_summary(jobs):
    out = {}
    for j in jobs:
        if j.kernel != 'spawn':
            continue
        ok = [s for s in j.sizes if j.median(s) is not None]
        out[j.backend] = {'largest': max(ok) if ok else None,
                          'seconds': j.median(max(ok)) if ok else None,
                          'tried': j.sizes,
                          'failed': {str(s): why for s, why in j.errors.items()}}
    return out


# ---------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------

STYLE = {'threads': ('C0', '-'), 'greenlets': ('C1', '-'), 'processes': ('C2', '-'),
         'simplequeue': ('C0', ':'), 'pycsp092-threads': ('C0', '--'),
         'pycsp092-greenlets': ('C1', '--'), 'greenlet-switch': ('C1', ':'),
         'mp-pipe': ('C2', ':'), 'mp-pool': ('C2', ':'), 'mp-queue': ('C2', '-.'),
         'pycsp092-multiprocess': ('C2', '--'), 'asyncio': ('C3', ':'),
         'c-processes:futex': ('k', ':'), 'c-processes:hybrid': ('k', '--')}


def plots(res, outdir, title):
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    os.makedirs(outdir, exist_ok=True)
    made = []

    def one(kernel, fname, xlabel, ylabel, logx=False, logy=False, xfun=lambda s: s,
            heading=''):
        rows = res.get(kernel)
        if not rows:
            return
        fig, ax = plt.subplots(figsize=(6, 4), dpi=80)
        backends = [b for b in list(OURS) + [b for b in LABEL if b not in OURS]
                    if any(b in r for r in rows.values())]
        for b in backends:
            pts = sorted((xfun(s), r[b]) for s, r in rows.items() if r.get(b) is not None)
            if not pts:
                continue
            c, ls = STYLE.get(b, ('k', '-'))
            ax.plot([p[0] for p in pts], [p[1] for p in pts], color=c, linestyle=ls,
                    marker='o', markersize=3, label=LABEL[b])
        if logx:
            ax.set_xscale('log', base=2)
        if logy:
            ax.set_yscale('log')
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(heading + ('\n' + title if title else ''), fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = os.path.join(outdir, fname)
        fig.savefig(path)
        plt.close(fig)
        made.append(path)

    one('ring', 'ring.png', 'processes in the ring', 'us per hop (log)', logx=True,
        logy=True, heading='One token in a ring')
    one('tokens', 'tokens.png', 'tokens in flight (ring of 64)', 'us per token hop (log)',
        logy=True, heading='1..63 concurrent tokens in a ring of 64')
    one('pi', 'pi.png', 'workers', 'seconds', heading='Monte-Carlo Pi (pure Python)')
    one('mandel-numpy', 'mandel-numpy.png', 'workers', 'seconds',
        heading='Mandelbrot farm, workers use numpy')
    one('mandel-c', 'mandel-c.png', 'workers', 'seconds',
        heading='Mandelbrot farm, workers call a C kernel (GIL released)')
    return made


# ---------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(prog='python -m pycsp.bench', description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--full', action='store_true', help='the full set (several minutes)')
    ap.add_argument('--backends', default=','.join(OURS))
    ap.add_argument('--kernels', default=None,
                    help='only these (commstime,ring,tokens,pi,mandel-numpy,mandel-c,'
                         'payload,spawn,alt,handoff)')
    ap.add_argument('--pycsp092', default=os.environ.get('PYCSP092_PYTHON'),
                    help="PyCSP 0.9.2's interpreter (default $PYCSP092_PYTHON)")
    ap.add_argument('--no-floor', action='store_true',
                    help='skip the C hand-off floors')
    ap.add_argument('--rounds', type=int, default=None)
    ap.add_argument('--target', type=float, default=None,
                    help='seconds of timed work per calibrated measurement')
    ap.add_argument('--timeout', type=float, default=None)
    ap.add_argument('--plots', default='pycsp-bench-plots', help='directory for PNGs')
    ap.add_argument('--no-plots', action='store_true')
    ap.add_argument('--json', default=None, help='write the results as JSON here')
    args = ap.parse_args(argv)
    plan = PLANS['full' if args.full else 'quick']
    rounds = args.rounds or plan['rounds']
    target = args.target or plan['target']
    timeout = args.timeout or plan['timeout']
    backends = [b for b in args.backends.split(',') if b]
    only = args.kernels.split(',') if args.kernels else None

    t0 = time.time()
    try:
        load = ' '.join('%.2f' % x for x in os.getloadavg())
    except OSError:
        load = '?'
    print('pycsp.bench %s: python %s, %s CPUs, load average %s' % (
        'full' if args.full else 'quick', sys.version.split()[0], os.cpu_count(), load))
    if 'mandel-c' in (only or ['mandel-c']):
        try:
            K.build_c_library(K.MANDEL_C, 'mandel')
        except Exception as e:
            log('mandel-c: %s' % e)
            only = [k for k in (only or K.KERNELS) if k != 'mandel-c']
    floors = not args.no_floor and (not only or bool(
        set(only) & set(FLOOR_KERNELS + ('handoff',))))
    if floors:
        try:
            for f in K.FLOOR_SOURCES:
                K.build_c_program(K.floor_source(f), K.FLOOR_SOURCES[f][0])
        except Exception as e:
            print('C floor: not measured (%s)' % e)
            floors = False
    jobs = make_jobs(plan, backends, args.pycsp092, not args.full, only, floors)
    total = rounds * len(jobs)
    tty = sys.stderr.isatty()
    done = 0
    for r in range(rounds):
        for j in jobs:
            done += 1
            msg = '[%3d/%d %4.0fs] round %d/%d: %s %s' % (
                done, total, time.time() - t0, r + 1, rounds, LABEL[j.backend], j.kernel)
            log(('\r' + msg.ljust(78)) if tty else msg, end='' if tty else '\n')
            j.run(target, timeout)
    if tty:
        log('\r' + ' ' * 78 + '\r', end='')

    res, fails = collect(jobs)
    print('\n'.join(table(res)))
    sp = speedups(res)
    for k, d in sp.items():
        ws = sorted({w for v in d.values() for w in v})
        print('\n%s speed-up T(1 worker)/T(W workers):' % k)
        print('%-24s' % '' + ''.join(('W=%d' % w).rjust(8) for w in ws))
        for b, v in d.items():
            print('%-24s' % LABEL[b] + ''.join(
                (('%.2fx' % v[w]) if v.get(w) else '-').rjust(8) for w in ws))
    spawn = spawn_summary(jobs)
    if spawn:
        print('\nLargest Parallel tried (N processes pass one token around a ring):')
        for b, d in spawn.items():
            print('  %-18s N = %-9s %s s  (tried %s)%s' % (
                LABEL[b], d['largest'], fmt(d['seconds']),
                ', '.join(map(str, d['tried'])),
                ''.join('; N = %s %s' % kv for kv in d['failed'].items())))
    for f in fails:
        print('FAILED ' + f)
    made = [] if args.no_plots else plots(
        res, args.plots, '%s CPUs, python %s' % (os.cpu_count(), sys.version.split()[0]))
    if made:
        print('\nplots: ' + ', '.join(made))
    elif not args.no_plots:
        print('\n(no plots: matplotlib is not installed)')
    print('wall time %.0f s' % (time.time() - t0))
    if args.json:
        data = {'when': time.strftime('%Y-%m-%dT%H:%M:%S'), 'full': args.full,
                'rounds': rounds, 'target_s': target, 'load_at_start': load,
                'python': sys.version.split()[0], 'cpus': os.cpu_count(),
                'units': K.UNITS,
                'results': {k: [{'size': s, 'median': v} for s, v in rows.items()]
                            for k, rows in res.items()},
                'values': [{'backend': j.backend, 'kernel': j.kernel,
                            'values': {str(s): v for s, v in j.values.items()},
                            'errors': {str(s): e for s, e in j.errors.items()}}
                           for j in jobs],
                'speedups': sp, 'spawn': spawn, 'failures': fails,
                'wall_s': round(time.time() - t0, 1)}
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(data, f, indent=1, default=str)
    return 0


if __name__ == '__main__':
    sys.exit(main())
