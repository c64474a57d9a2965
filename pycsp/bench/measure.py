"""What `python -m pycsp.bench` measures and how: the plans, the jobs, the rounds.

Every measurement runs in its own subprocess (`python -m pycsp.bench.kernels`, or
kernels.py by path in PyCSP 0.9.2's interpreter) with a time-out, so a crash or a
hang costs one figure, not the run.  Rounds are interleaved: round r runs every job
once before round r+1 starts, so a slow spell of a shared machine spreads over
every implementation instead of landing on one.  The first round calibrates the
iteration counts; later rounds reuse them.
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

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
# PyCSP 0.9.2's counterpart of each of our backends: (peer name, module it needs)
PYCSP092 = {'threads': ('pycsp092-threads', 'pycsp.parallel'),
            'greenlets': ('pycsp092-greenlets', 'pycsp.greenlets'),
            'processes': ('pycsp092-multiprocess', 'pycsp.parallel')}
# peers that are floors: their ratio is ours / floor (how far above it ours is)
FLOORS = ('greenlet-switch', 'c-threads', 'c-processes', 'c-processes:futex',
          'c-processes:hybrid')
FLOOR_KERNELS = ('commstime', 'ring', 'tokens')   # rows a hand-off floor bounds

# The default run (short: the headline and the four plots, under a minute on two
# cores) and --full.  'ours': kernels on each of our backends; 'peers': peer ->
# kernels, run when the backend it is compared with is selected; 'pycsp092':
# kernels for PyCSP 0.9.2 when its interpreter is given.
PLANS = {
    'short': {
        'quick': True,        # kernels.py --quick: its smaller default work
        'rounds': 3, 'target': 0.05, 'timeout': 60,
        'ours': ['commstime', 'ring', 'tokens', 'pi', 'payload'],
        # threads and greenlets pass a reference: their GB/s is no copy rate, so
        # the short run does not spend time on it (--full does)
        'payload_backends': ('processes',),
        'peers': {'simplequeue': ['commstime'], 'asyncio': ['commstime'],
                  'mp-pipe': ['commstime', 'payload']},
        'pycsp092': ['commstime'],
        'floors': False,
        'work': {},
        'ring': {'threads': [2, 16, 128], 'greenlets': [2, 16, 128, 1024],
                 'processes': [2, 16, 128]},
        'tokens': [1, 8, 63],
        'pi': [1, 2, 5],
        'payload': ['numpy-1K', 'numpy-1M', 'numpy-64M'],
        'peer_ring_max': {},
    },
    'full': {
        'quick': False,
        'rounds': 3, 'target': 0.3, 'timeout': 300,
        'ours': ['commstime', 'ring', 'tokens', 'pi', 'mandel-c', 'mandel-numpy',
                 'payload', 'spawn', 'alt'],
        'payload_backends': OURS,
        'peers': {'simplequeue': ['commstime', 'ring', 'tokens'],
                  'c-threads': ['handoff'],
                  'greenlet-switch': ['switch'],
                  'asyncio': ['commstime', 'ring', 'tokens'],
                  'c-processes': ['handoff'],
                  'c-processes:futex': ['commstime', 'ring'],
                  'c-processes:hybrid': ['commstime', 'ring'],
                  'mp-pipe': ['commstime', 'ring', 'tokens', 'payload'],
                  'mp-queue': ['payload'],
                  'mp-pool': ['pi']},
        'pycsp092': ['commstime', 'ring', 'tokens', 'pi'],
        'floors': True,
        'work': {},
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
        # spinning needs two free cores; on a busy machine one hand-off takes a
        # time slice (ms)
        'floor': {'c-threads': ['condvar', 'futex', 'spin'],
                  'c-processes': ['futex', 'spin', 'hybrid']},
    },
}


def log(msg, end='\n'):
    sys.stderr.write(msg + end)
    sys.stderr.flush()


class Job:
    """One implementation and one kernel over some sizes; one subprocess a round."""

    def __init__(self, backend, kernel, sizes, python, env, quick, work=None):
        self.backend, self.kernel, self.sizes = backend, kernel, list(sizes)
        self.python, self.env, self.quick, self.work = python, env, quick, work
        self.ns = {}
        self.by_round = {}      # size -> {round index: value}
        self.errors = {}        # size -> reason
        self.seconds = []       # wall time of each round's subprocesses
        self.stop_at_failure = kernel == 'spawn'

    @property
    def label(self):
        return LABEL.get(self.backend, self.backend)

    def run(self, round_index, target, timeout):
        sizes = [s for s in self.sizes if s not in self.errors]
        if self.stop_at_failure and (self.errors or self.by_round):
            sizes = []          # spawn: measured in the first round only
        if not sizes:
            return
        t0 = time.time()
        if self.kernel == 'spawn':
            # one subprocess per size, smallest first, stop at the first failure
            for s in sizes:
                if not self._run(round_index, [s], target, timeout):
                    break
        else:
            self._run(round_index, sizes, target, timeout)
        self.seconds.append(round(time.time() - t0, 2))

    def _command(self, sizes, target):
        if self.python == sys.executable and not self.backend.startswith('pycsp092'):
            cmd = [self.python, '-m', 'pycsp.bench.kernels']
        else:
            cmd = [self.python, KERNELS_PY]
        cmd += ['--backend', self.backend, '--kernel', self.kernel, '--repeats', '1',
                '--target', str(target)]
        if self.quick:
            cmd.append('--quick')
        if self.work is not None:
            cmd += ['--work', str(self.work)]
        if sizes != [None]:
            cmd += ['--sizes', ','.join(map(str, sizes))]
        if all(s in self.ns for s in sizes):       # calibrated in an earlier round
            cmd += ['--n', ','.join(str(self.ns[s]) for s in sizes)]
        return cmd

    def _run(self, round_index, sizes, target, timeout):
        t0 = time.time()
        reason = None
        try:
            r = subprocess.run(self._command(sizes, target), env=self.env,
                               capture_output=True, text=True, timeout=timeout,
                               cwd=tempfile.gettempdir())
            out, err, rc = r.stdout, r.stderr, r.returncode
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or '')
            err, rc = '', None
            reason = 'timed out after %.0f s' % (time.time() - t0)
        except OSError as e:
            out, err, rc = '', str(e), None
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
                    self.by_round.setdefault(size, {})[round_index] = rec['values'][0]
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

    def values(self, size):
        """The figures of `size`, in round order."""
        d = self.by_round.get(size, {})
        return [d[r] for r in sorted(d)]

    def median(self, size):
        v = self.values(size)
        return statistics.median(v) if v else None

    def spread(self, size):
        """(min, max) over the rounds, or None."""
        v = self.values(size)
        return (min(v), max(v)) if v else None


def probe(python, env, module):
    """None if `python` imports `module`, else the reason it does not."""
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


def payload_sizes(plan, have_numpy):
    """The plan's payload sizes; without numpy its numpy sizes become bytes."""
    out = []
    for p in plan['payload']:
        if not have_numpy and p.startswith('numpy-'):
            p = 'bytes-' + p[len('numpy-'):]
        if p not in out:
            out.append(p)
    return out


def kernel_sizes(plan, kernel, backend, have_numpy):
    """The sizes `backend` runs `kernel` at in `plan` ([None]: the kernel has none)."""
    if kernel in ('commstime', 'switch'):
        return [None]
    if kernel == 'payload':
        return payload_sizes(plan, have_numpy)
    if kernel == 'ring':
        return plan['ring'].get(PEER_OF.get(backend, backend), [])
    if kernel in ('spawn', 'handoff'):
        return plan[{'spawn': 'spawn', 'handoff': 'floor'}[kernel]].get(backend, [])
    return plan['mandel' if kernel.startswith('mandel') else kernel]


def make_jobs(plan, backends, py092, only=None, floors=True, work=None):
    """The jobs of one run, and {name: reason} for what is not available.

    `work` maps a kernel to its --work (kernels.py); `only` limits the kernels."""
    work = dict(plan['work'], **(work or {}))
    quick = plan['quick']
    jobs, unavailable = [], {}
    eo = env_ours()
    have_numpy = probe(sys.executable, eo, 'numpy') is None

    def wanted(k):
        if not only:
            return True
        if k == 'switch':
            return 'commstime' in only
        if k == 'handoff':
            return bool(set(FLOOR_KERNELS) & set(only)) or 'handoff' in only
        return k in only

    def add(backend, kernel, sizes, python, env):
        if kernel == 'mandel-numpy' and not have_numpy:
            return
        if wanted(kernel) and sizes:
            jobs.append(Job(backend, kernel, sizes, python, env, quick, work.get(kernel)))

    ok = []
    for b in backends:
        why = probe(sys.executable, eo, 'pycsp.' + b)
        if why:
            unavailable[b] = why
            continue
        ok.append(b)
        for k in plan['ours']:
            if k == 'payload' and b not in plan['payload_backends']:
                continue
            add(b, k, kernel_sizes(plan, k, b, have_numpy), sys.executable, eo)
    for name, kernels in plan['peers'].items():
        if PEER_OF[name] not in backends:
            continue
        if name.startswith('c-') and not floors:
            continue
        if name == 'greenlet-switch':
            why = probe(sys.executable, eo, 'greenlet')
            if why:
                unavailable[name] = why
                continue
        for k in kernels:
            sizes = kernel_sizes(plan, k, name, have_numpy)
            if k == 'ring':
                sizes = [s for s in sizes
                         if s <= plan['peer_ring_max'].get(name, 1 << 30)]
            add(name, k, sizes, sys.executable, eo)
    selected_092 = [b for b in OURS if b in backends]
    if not py092:
        for b in selected_092:
            unavailable[PYCSP092[b][0]] = 'no interpreter given (--pycsp092 PYTHON)'
    else:
        e92 = env_092()
        for b in selected_092:
            name, module = PYCSP092[b]
            why = probe(py092, e92, module)
            if why:
                unavailable[name] = why
                continue
            for k in plan['pycsp092']:
                sizes = kernel_sizes(plan, k, name, have_numpy)
                if k == 'ring':
                    sizes = [s for s in sizes
                             if s <= plan['peer_ring_max'].get(name, 1 << 30)]
                if k == 'tokens' and name == 'pycsp092-multiprocess':
                    sizes = sizes[:2]         # slow: 0.4 ms per hop
                add(name, k, sizes, py092, e92)
    return jobs, unavailable


def run_rounds(jobs, rounds, target, timeout, t0):
    """Run every job once per round, rounds interleaved; progress on stderr."""
    total = rounds * len(jobs)
    tty = sys.stderr.isatty()
    width = len(str(total))
    done = 0
    for r in range(rounds):
        for j in jobs:
            done += 1
            msg = '[%*d/%d %3.0fs] %s %s round %d/%d' % (
                width, done, total, time.time() - t0, j.kernel, j.label, r + 1, rounds)
            log(('\r' + msg.ljust(72)) if tty else msg, end='' if tty else '\n')
            j.run(r, target, timeout)
    if tty:
        log('\r' + ' ' * 72 + '\r', end='')
