#!/usr/bin/env python3
"""Commstime and token-ring kernels, written once against the pycsp API.

The same source runs on this project's backends (pycsp.threads, pycsp.greenlets,
pycsp.processes) and on PyCSP 0.9.2 (pycsp.parallel with @process = threads,
pycsp.parallel with @multiprocess = OS processes, pycsp.greenlets), because both use
the names Channel, process, Parallel, poison, .reader()/.writer().  It also holds the
same two networks on queue.SimpleQueue + threading.Thread (the "simplequeue" peer),
on multiprocessing.Pipe + multiprocessing.Process ("mp-pipe"), and a raw greenlet
switch ping-pong ("greenlet-switch").

Command line (prints one JSON object per measurement on stdout):

    python kernels.py --backend threads --kernel commstime --repeats 5
    python kernels.py --backend pycsp.parallel:multiprocess --kernel ring --ring-sizes 2,4,8

--backend is an alias (see BACKENDS) or "module[:decorator]" naming a module with the
pycsp API and the name of its process decorator (default "process").

Reported figures:
  commstime: microseconds per channel communication (4 communications per cycle:
             prefix->delta, delta->successor, delta->consumer, successor->prefix).
  ring:      microseconds per hop (one hop = one channel communication).
"""
import argparse
import importlib
import json
import os
import statistics
import sys
import threading
import time

# alias -> (module, decorator name)
BACKENDS = {
    # this project
    'threads': ('pycsp.threads', 'process'),
    'greenlets': ('pycsp.greenlets', 'process'),
    'processes': ('pycsp.processes', 'process'),
    # PyCSP 0.9.2 (only importable in its own venv, its package is also "pycsp")
    'pycsp092-threads': ('pycsp.parallel', 'process'),
    'pycsp092-greenlets': ('pycsp.greenlets', 'process'),
    'pycsp092-multiprocess': ('pycsp.parallel', 'multiprocess'),
}
PLAIN_PEERS = ('simplequeue', 'mp-pipe', 'greenlet-switch')


# ---------------------------------------------------------------------------
# pycsp-API kernels.  Process bodies are module-level functions (picklable by
# name), decorated at run time with the backend's decorator.
# ---------------------------------------------------------------------------

def _poison_all(csp, *ends):
    for e in ends:
        try:
            csp.poison(e)
        except Exception:
            pass


def _prefix(csp, cin, cout, first):
    try:
        cout(first)
        while True:
            cout(cin())
    except (csp.ChannelPoisonException, csp.ChannelRetireException):
        _poison_all(csp, cin, cout)


def _delta(csp, cin, out1, out2):
    try:
        while True:
            x = cin()
            out1(x)
            out2(x)
    except (csp.ChannelPoisonException, csp.ChannelRetireException):
        _poison_all(csp, cin, out1, out2)


def _successor(csp, cin, cout):
    try:
        while True:
            cout(cin() + 1)
    except (csp.ChannelPoisonException, csp.ChannelRetireException):
        _poison_all(csp, cin, cout)


def _consumer(csp, cin, n, warmup):
    for _ in range(warmup):
        cin()
    t0 = time.perf_counter()
    for _ in range(n):
        cin()
    dt = time.perf_counter() - t0
    _poison_all(csp, cin)
    return dt * 1e6 / (4 * n)          # us per communication


def _ring_node(csp, cin, cout):
    try:
        while True:
            cout(cin())
    except (csp.ChannelPoisonException, csp.ChannelRetireException):
        _poison_all(csp, cin, cout)


def _ring_start(csp, cin, cout, size, rounds, warm_rounds):
    for _ in range(warm_rounds):
        cout(0)
        cin()
    t0 = time.perf_counter()
    for i in range(rounds):
        cout(i)
        cin()
    dt = time.perf_counter() - t0
    _poison_all(csp, cin, cout)
    return dt * 1e6 / (rounds * size)  # us per hop


class _Csp:
    """The backend's module and its process decorator.  Process bodies get this
    object (not the module) so it pickles for OS-process backends: it pickles as its
    spec and re-imports the module on the other side."""

    def __init__(self, spec):
        self.spec = spec
        modname, _, deco = spec.partition(':')
        self.modname = modname
        self.deco = deco or 'process'
        self.mod = importlib.import_module(modname)
        for name in ('Channel', 'Parallel', 'poison', 'ChannelPoisonException',
                     'ChannelRetireException'):
            setattr(self, name, getattr(self.mod, name))
        self.decorator = getattr(self.mod, self.deco)

    def __reduce__(self):
        return (_Csp, (self.spec,))

    def shutdown(self):
        f = getattr(self.mod, 'shutdown', None)
        if f is not None:
            f()


_FN_CACHE = {}


def _proc(csp, fn):
    key = (csp.spec, fn.__name__)
    p = _FN_CACHE.get(key)
    if p is None:
        p = _FN_CACHE[key] = csp.decorator(fn)
    return p


def _result(results, fallback):
    """Parallel's return value for the timing process, or fallback."""
    if isinstance(results, (list, tuple)):
        vals = [r for r in results if isinstance(r, float)]
        if vals:
            return vals[0]
    return fallback


def csp_commstime(csp, n, warmup=None):
    warmup = max(10, n // 20) if warmup is None else warmup
    a, b, c, d = (csp.Channel() for _ in range(4))
    P = lambda fn: _proc(csp, fn)
    res = csp.Parallel(
        P(_prefix)(csp, c.reader(), a.writer(), 0),
        P(_delta)(csp, a.reader(), b.writer(), d.writer()),
        P(_successor)(csp, b.reader(), c.writer()),
        P(_consumer)(csp, d.reader(), n, warmup),
    )
    return _result(res, None)


def csp_ring(csp, size, hops, warm_rounds=2):
    rounds = max(1, hops // size)
    chans = [csp.Channel() for _ in range(size)]
    P = lambda fn: _proc(csp, fn)
    procs = [P(_ring_start)(csp, chans[-1].reader(), chans[0].writer(), size, rounds,
                            warm_rounds)]
    for i in range(1, size):
        procs.append(P(_ring_node)(csp, chans[i - 1].reader(), chans[i].writer()))
    res = csp.Parallel(*procs)
    return _result(res, None)


# ---------------------------------------------------------------------------
# Peer: queue.SimpleQueue + threading.Thread.  SimpleQueue is unbounded (a put
# never blocks), so this is a buffered network; with one token in flight it is
# still a sequence of hand-offs between threads.  None is the stop message.
# ---------------------------------------------------------------------------

def sq_commstime(n, warmup=None):
    import queue
    warmup = max(10, n // 20) if warmup is None else warmup
    a, b, c, d = (queue.SimpleQueue() for _ in range(4))
    out = []

    def prefix():
        a.put(0)
        while True:
            x = c.get()
            if x is None:
                return
            a.put(x)

    def delta():
        while True:
            x = a.get()
            b.put(x)
            d.put(x)
            if x is None:
                return

    def successor():
        while True:
            x = b.get()
            if x is None:
                c.put(None)
                return
            c.put(x + 1)

    def consumer():
        for _ in range(warmup):
            d.get()
        t0 = time.perf_counter()
        for _ in range(n):
            d.get()
        out.append((time.perf_counter() - t0) * 1e6 / (4 * n))
        # stop: let the token run into a None injected at the prefix->delta link
        a.put(None)
        while d.get() is not None:
            pass

    ts = [threading.Thread(target=f) for f in (prefix, delta, successor, consumer)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out[0]


def sq_ring(size, hops, warm_rounds=2):
    import queue
    rounds = max(1, hops // size)
    qs = [queue.SimpleQueue() for _ in range(size)]
    out = []

    def node(i):
        cin, cout = qs[i - 1], qs[i]
        while True:
            x = cin.get()
            cout.put(x)
            if x is None:
                return

    def start():
        cin, cout = qs[-1], qs[0]
        for _ in range(warm_rounds):
            cout.put(0)
            cin.get()
        t0 = time.perf_counter()
        for i in range(rounds):
            cout.put(i)
            cin.get()
        out.append((time.perf_counter() - t0) * 1e6 / (rounds * size))
        cout.put(None)
        cin.get()

    ts = [threading.Thread(target=start)] + \
         [threading.Thread(target=node, args=(i,)) for i in range(1, size)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out[0]


# ---------------------------------------------------------------------------
# Peer: multiprocessing.Pipe + multiprocessing.Process (one Pipe per channel).
# ---------------------------------------------------------------------------

def _mp_fwd(cin, cout, inc):
    while True:
        x = cin.recv()
        if x is None:
            cout.send(None)
            return
        cout.send(x + inc)


def _mp_delta(cin, out1, out2):
    while True:
        x = cin.recv()
        out1.send(x)
        out2.send(x)
        if x is None:
            return


def mp_commstime(n, warmup=None):
    import multiprocessing as mp
    warmup = max(10, n // 20) if warmup is None else warmup
    (a_r, a_w), (b_r, b_w), (c_r, c_w), (d_r, d_w) = (mp.Pipe(False) for _ in range(4))
    ps = [mp.Process(target=_mp_delta, args=(a_r, b_w, d_w)),
          mp.Process(target=_mp_fwd, args=(b_r, c_w, 1))]
    for p in ps:
        p.start()
    # prefix runs as a thread of this process, consumer in the main thread
    stop = []

    def prefix():
        a_w.send(0)
        while True:
            x = c_r.recv()
            if stop:
                a_w.send(None)
                return
            a_w.send(x)

    t = threading.Thread(target=prefix)
    t.start()
    for _ in range(warmup):
        d_r.recv()
    t0 = time.perf_counter()
    for _ in range(n):
        d_r.recv()
    dt = time.perf_counter() - t0
    stop.append(1)
    while d_r.recv() is not None:
        pass
    t.join()
    for p in ps:
        p.join()
    return dt * 1e6 / (4 * n)


def mp_ring(size, hops, warm_rounds=2):
    import multiprocessing as mp
    rounds = max(1, hops // size)
    pipes = [mp.Pipe(False) for _ in range(size)]   # (reader, writer)
    ps = [mp.Process(target=_mp_fwd, args=(pipes[i - 1][0], pipes[i][1], 0))
          for i in range(1, size)]
    for p in ps:
        p.start()
    cin, cout = pipes[-1][0], pipes[0][1]
    for _ in range(warm_rounds):
        cout.send(0)
        cin.recv()
    t0 = time.perf_counter()
    for i in range(rounds):
        cout.send(i)
        cin.recv()
    dt = time.perf_counter() - t0
    cout.send(None)
    cin.recv()
    for p in ps:
        p.join()
    return dt * 1e6 / (rounds * size)


# ---------------------------------------------------------------------------
# Peer: two raw greenlets switching back and forth (us per switch).
# ---------------------------------------------------------------------------

def greenlet_switch(n):
    import greenlet

    def other():
        main = g_main
        while True:
            main.switch()

    g_main = greenlet.getcurrent()
    g = greenlet.greenlet(other)
    g.switch()
    t0 = time.perf_counter()
    for _ in range(n):
        g.switch()
    dt = time.perf_counter() - t0
    return dt * 1e6 / (2 * n)


# ---------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------

def make_runner(backend, kernel):
    """Return f(n, size=None) -> microseconds per communication/hop."""
    if backend == 'simplequeue':
        return {'commstime': lambda n, size=None: sq_commstime(n),
                'ring': lambda n, size=None: sq_ring(size, n)}[kernel]
    if backend == 'mp-pipe':
        return {'commstime': lambda n, size=None: mp_commstime(n),
                'ring': lambda n, size=None: mp_ring(size, n)}[kernel]
    if backend == 'greenlet-switch':
        return lambda n, size=None: greenlet_switch(n)
    spec = backend
    if backend in BACKENDS:
        spec = '%s:%s' % BACKENDS[backend]
    csp = _Csp(spec)
    if kernel == 'commstime':
        return lambda n, size=None: csp_commstime(csp, n)
    return lambda n, size=None: csp_ring(csp, size, n)


def measure(run, target, size=None, repeats=5, n0=200, max_n=5_000_000,
            per_iter_comms=1):
    """Calibrate the iteration count so the timed part of one measurement takes
    about `target` seconds (from the kernel's own per-communication figure, so
    process start-up does not count), then take `repeats` measurements.
    Returns (n, [values])."""
    n = n0 if size is None else max(n0, 2 * size)
    for _ in range(2):
        t0 = time.perf_counter()
        v = run(n, size)
        dt = time.perf_counter() - t0
        per = v * 1e-6 * per_iter_comms if v else dt / n
        n = int(min(max_n, max(n0, target / per if per > 0 else max_n)))
        if size is not None:
            n = max(n, 2 * size)
    vals = [run(n, size) for _ in range(repeats)]
    return n, vals


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--backend', required=True,
                    help='alias (%s) or module[:decorator]' %
                         ', '.join(list(BACKENDS) + list(PLAIN_PEERS)))
    ap.add_argument('--kernel', choices=('commstime', 'ring'), default='commstime')
    ap.add_argument('--ring-sizes', default='2,4,8,16,32,64,128,256')
    ap.add_argument('--repeats', type=int, default=5)
    ap.add_argument('--target', type=float, default=0.3,
                    help='seconds per measurement (iteration count is calibrated)')
    ap.add_argument('--n', default=None,
                    help='fixed iteration count (commstime cycles / ring hops); skips '
                         'calibration.  For rings, one number or a comma list matching '
                         '--ring-sizes')
    args = ap.parse_args(argv)

    run = make_runner(args.backend, args.kernel)
    sizes = [None] if args.kernel == 'commstime' or args.backend == 'greenlet-switch' \
        else [int(s) for s in args.ring_sizes.split(',') if s]
    fixed = [int(x) for x in args.n.split(',')] if args.n else None
    if fixed and len(fixed) == 1:
        fixed = fixed * len(sizes)
    if fixed and len(fixed) != len(sizes):
        ap.error('--n: give one count or one per ring size')
    for i, size in enumerate(sizes):
        t0 = time.perf_counter()
        if fixed:
            n = fixed[i] if size is None else max(fixed[i], 2 * size)
            vals = [run(n, size) for _ in range(args.repeats)]
        else:
            n, vals = measure(run, args.target, size, args.repeats,
                              per_iter_comms=(2 if args.backend == 'greenlet-switch' else
                                              4 if args.kernel == 'commstime' else 1))
        rec = {'backend': args.backend, 'kernel': args.kernel, 'size': size, 'n': n,
               'values_us': vals,
               'median_us': statistics.median(vals) if None not in vals else None,
               'wall_s': round(time.perf_counter() - t0, 3),
               'python': sys.version.split()[0]}
        print(json.dumps(rec), flush=True)


if __name__ == '__main__':
    try:
        main()
    finally:
        sys.stdout.flush()
        # PyCSP 0.9.2's pycsp.parallel keeps a socket server thread; shut it down
        # so the interpreter can exit.
        m = sys.modules.get('pycsp.parallel')
        if m is not None and hasattr(m, 'shutdown'):
            try:
                m.shutdown()
            except Exception:
                pass
