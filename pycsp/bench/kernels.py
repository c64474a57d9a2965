"""The benchmark kernels, written once against the pycsp API.

This module is the one place where the benchmarks' networks live.  Everything in it
runs on this project's backends (pycsp.threads, pycsp.greenlets, pycsp.processes)
and on PyCSP 0.9.2 (pycsp.parallel with @process = threads, pycsp.parallel with
@multiprocess = OS processes, pycsp.greenlets), because both have Channel, process,
Parallel, poison, io and .reader()/.writer().  It imports nothing from pycsp at
module level, so it can also be loaded by path in PyCSP 0.9.2's interpreter
(benchmarks/kernels.py does that).  Peers on the same networks: queue.SimpleQueue
+ threading.Thread ("simplequeue"), multiprocessing.Pipe + Process ("mp-pipe"),
multiprocessing.Queue ("mp-queue", payload only), multiprocessing.Pool ("mp-pool",
Monte-Carlo Pi only), a raw greenlet switch ("greenlet-switch"), asyncio tasks +
asyncio.Queue(maxsize=1) ("asyncio": commstime, ring, tokens), and the bare C
hand-offs between two threads and between two processes ("c-threads",
"c-processes": floor_threads.c / floor_processes.c beside this file, compiled at
run time with cc -O2 -pthread into the cache dir), and the Python floor of
processes ("py-floor[:MODE]": these kernels in forked Python processes on
floor_processes.c's channel, a CPython extension floor_pyext.c compiled at run
time; pyfloor.py).

Kernels (--kernel) and what --sizes means for each:

  commstime     prefix -> delta -> successor -> prefix, delta -> consumer.
                us per channel communication (4 per cycle).  Sizes: the message,
                int (the default: the successor adds 1) or tuple (i, float(i):
                the successor makes the next pair; a message pickle would carry).
                Not on c-processes, whose channels carry one word.
  ring          one token in a ring of N processes.  Sizes: N.  us per hop.
  tokens        T tokens at once in a ring of --ring (64) processes.  Sizes: T
                (1..ring-1).  us per token hop (total time / total hops).
  pi            Monte-Carlo Pi, W workers share --work samples (pure Python).
                Sizes: W.  Seconds for the whole Parallel (start-up included).
  mandel-numpy  Mandelbrot farm: a producer hands out rows, W workers compute each
                row with numpy, a collector gathers them.  Sizes: W.  Seconds.
  mandel-c      the same farm; workers call a C kernel through ctypes (the GIL is
                released during the call; the call is made through the backend's
                @io, so greenlets run it in a worker thread).  Sizes: W.  Seconds.
  payload       one writer process sends messages of one size to one reader
                process (both long-lived).  Sizes: KIND-SIZE, KIND bytes|numpy,
                SIZE like 1K, 1M, 64M.  GB/s (1 GB = 1e9 bytes) at the reader.
                fresh-KIND-SIZE: a new interpreter starts the two processes and
                the reader times the first --n (6) messages, after the writer made
                its message (processes, c-processes only).
  spawn         N processes in one Parallel, passing one token once around a ring.
                Sizes: N.  Seconds for the whole Parallel.
  alt           K producers each write on their own channel; one consumer loops
                on AltSelect(InputGuard(c1), ..., InputGuard(cK)) (PyCSP 0.9.2
                style: guards made anew each time, no actions; returns (guard,
                msg)).  Sizes: K.  us per message received by the consumer.
  switch        (greenlet-switch only) us per raw greenlet switch.
  handoff       (c-threads, c-processes only) us per hand-off of the C floor.
                Sizes: the modes (c-threads: condvar, futex, spin; c-processes:
                futex, spin, hybrid).

The C floor of processes also runs commstime and ring (bare forked processes, one
shared word per channel, a one-place buffer; floor_processes.c): backend
c-processes:MODE, MODE futex (default), hybrid (the library's policy: yield-spin
up to 50 us, then futex) or spin, each also as MODE-rv (a rendezvous: the writer
waits until its value is read, as on pycsp).  And payload (floor_copy.c): c-processes (the arena's calls) or
c-processes:vmread (process_vm_readv, a design without shared memory).  The
Python floor, py-floor:MODE (hybrid by default; the same modes), runs commstime
and ring.

Command line (prints one JSON object per size on stdout):

    python -m pycsp.bench.kernels --backend processes --kernel commstime
    python -m pycsp.bench.kernels --backend processes --kernel commstime --sizes int,tuple
    python -m pycsp.bench.kernels --backend threads --kernel ring --sizes 2,16,256
    python -m pycsp.bench.kernels --backend greenlets --kernel alt --sizes 2,8
    python -m pycsp.bench.kernels --backend processes --kernel payload --sizes numpy-64M
    python -m pycsp.bench.kernels --backend processes --kernel payload --sizes fresh-numpy-64M --n 6
    python -m pycsp.bench.kernels --backend c-processes --kernel payload --sizes fresh-numpy-64M --n 6
    python -m pycsp.bench.kernels --backend mp-pool --kernel pi --sizes 1,2
    python -m pycsp.bench.kernels --backend asyncio --kernel ring --sizes 2,16
    python -m pycsp.bench.kernels --backend c-processes --kernel handoff --sizes futex
    python -m pycsp.bench.kernels --backend c-processes:hybrid --kernel ring --sizes 2,256

--backend is an alias (see BACKENDS, PLAIN_PEERS) or "module[:decorator]" naming a
module with the pycsp API and its process decorator (default "process").
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
PLAIN_PEERS = ('simplequeue', 'mp-pipe', 'mp-queue', 'mp-pool', 'greenlet-switch',
               'asyncio', 'c-threads', 'c-processes', 'py-floor')
KERNELS = ('commstime', 'ring', 'tokens', 'pi', 'mandel-numpy', 'mandel-c', 'payload',
           'spawn', 'switch', 'handoff', 'alt')
UNITS = {'commstime': 'us/comm', 'ring': 'us/hop', 'tokens': 'us/hop', 'pi': 's',
         'mandel-numpy': 's', 'mandel-c': 's', 'payload': 'GB/s', 'spawn': 's',
         'switch': 'us/switch', 'handoff': 'us/handoff', 'alt': 'us/msg'}
HIGHER_IS_BETTER = {'payload'}


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


def _successor_tuple(csp, cin, cout):
    try:
        while True:
            i = cin()[0] + 1
            cout((i, float(i)))
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
        self.io = getattr(self.mod, 'io', None) or (lambda fn: fn)

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


COMMSTIME_MESSAGES = (None, 'int', 'tuple')   # None: int, the plain Commstime


def csp_commstime(csp, n, warmup=None, message=None):
    warmup = max(10, n // 20) if warmup is None else warmup
    a, b, c, d = (csp.Channel() for _ in range(4))
    P = lambda fn: _proc(csp, fn)
    pair = message == 'tuple'
    res = csp.Parallel(
        P(_prefix)(csp, c.reader(), a.writer(), (0, 0.0) if pair else 0),
        P(_delta)(csp, a.reader(), b.writer(), d.writer()),
        P(_successor_tuple if pair else _successor)(csp, b.reader(), c.writer()),
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
# Alternation: K producers, each on its own channel, and one consumer that loops
# on AltSelect over K input guards.  The guards are made anew for every select,
# as PyCSP 0.9.2 programs do (AltSelect(InputGuard(c1), InputGuard(c2))); this
# is the loop whose greenlets cost went from 2.5 to 12.1 us per message when a
# process's first frame chunk overflowed on every call.  The consumer poisons
# every channel at the end; the producers, blocked in a write, then end.
# ---------------------------------------------------------------------------

def _alt_producer(csp, cout):
    try:
        i = 0
        while True:
            cout(i)
            i += 1
    except (csp.ChannelPoisonException, csp.ChannelRetireException):
        _poison_all(csp, cout)


def _alt_consumer(csp, cins, n, warmup):
    AltSelect, InputGuard = csp.mod.AltSelect, csp.mod.InputGuard
    for _ in range(warmup):
        AltSelect(*[InputGuard(c) for c in cins])
    if len(cins) == 2:            # the common case, without the list
        c1, c2 = cins
        t0 = time.perf_counter()
        for _ in range(n):
            g, msg = AltSelect(InputGuard(c1), InputGuard(c2))
    else:
        t0 = time.perf_counter()
        for _ in range(n):
            g, msg = AltSelect(*[InputGuard(c) for c in cins])
    dt = time.perf_counter() - t0
    if msg is None:
        raise RuntimeError('AltSelect returned no message: %r' % ((g, msg),))
    _poison_all(csp, *cins)
    return dt * 1e6 / n                # us per message received


def csp_alt(csp, producers, n, warmup=None):
    if producers < 1:
        raise ValueError('alt needs at least one producer')
    warmup = max(10, n // 20) if warmup is None else warmup
    chans = [csp.Channel() for _ in range(producers)]
    P = lambda fn: _proc(csp, fn)
    procs = [P(_alt_producer)(csp, c.writer()) for c in chans]
    procs.append(P(_alt_consumer)(csp, [c.reader() for c in chans], n, warmup))
    return _result(csp.Parallel(*procs), None)


# ---------------------------------------------------------------------------
# Peer: queue.SimpleQueue + threading.Thread.  SimpleQueue is unbounded (a put
# never blocks), so this is a buffered network; with one token in flight it is
# still a sequence of hand-offs between threads.  None is the stop message.
# ---------------------------------------------------------------------------

def sq_commstime(n, warmup=None, message=None):
    import queue
    warmup = max(10, n // 20) if warmup is None else warmup
    a, b, c, d = (queue.SimpleQueue() for _ in range(4))
    out = []

    def prefix():
        a.put((0, 0.0) if message == 'tuple' else 0)
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

    def successor_tuple():
        while True:
            x = b.get()
            if x is None:
                c.put(None)
                return
            i = x[0] + 1
            c.put((i, float(i)))

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

    ts = [threading.Thread(target=f) for f in
          (prefix, delta, successor_tuple if message == 'tuple' else successor, consumer)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out[0]


def sq_ring(size, hops, warm_rounds=2):
    """One token around the ring: the tokens kernel with a single token."""
    return sq_tokens(size, 1, hops, warm_rounds)


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


def _mp_fwd_tuple(cin, cout):
    while True:
        x = cin.recv()
        if x is None:
            cout.send(None)
            return
        i = x[0] + 1
        cout.send((i, float(i)))


def _mp_delta(cin, out1, out2):
    while True:
        x = cin.recv()
        out1.send(x)
        out2.send(x)
        if x is None:
            return


def mp_commstime(n, warmup=None, message=None):
    import multiprocessing as mp
    warmup = max(10, n // 20) if warmup is None else warmup
    (a_r, a_w), (b_r, b_w), (c_r, c_w), (d_r, d_w) = (mp.Pipe(False) for _ in range(4))
    successor = (mp.Process(target=_mp_fwd_tuple, args=(b_r, c_w)) if message == 'tuple' else
                 mp.Process(target=_mp_fwd, args=(b_r, c_w, 1)))
    ps = [mp.Process(target=_mp_delta, args=(a_r, b_w, d_w)), successor]
    for p in ps:
        p.start()
    # prefix runs as a thread of this process, consumer in the main thread
    stop = []

    def prefix():
        a_w.send((0, 0.0) if message == 'tuple' else 0)
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
    """One token around the ring: the tokens kernel with a single token."""
    return mp_tokens(size, 1, hops, warm_rounds)


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
# Several tokens in one ring (the seed's "1 to 63 concurrent tokens in a ring of
# 64 processes").  The start process injects T tokens, then T*rounds times reads a
# token and sends it on, then drains the T tokens.  With rendezvous channels the
# other size-1 processes hold at most size-1 tokens, so T <= size-1.
# ---------------------------------------------------------------------------

def _tokens_start(csp, cin, cout, size, tokens, rounds, warm_rounds):
    for i in range(tokens):
        cout(i)
    for _ in range(warm_rounds * tokens):
        cout(cin())
    t0 = time.perf_counter()
    for _ in range(rounds * tokens):
        cout(cin())
    dt = time.perf_counter() - t0
    for _ in range(tokens):
        cin()
    _poison_all(csp, cin, cout)
    return dt * 1e6 / (rounds * tokens * size)   # us per token hop


def csp_tokens(csp, size, tokens, hops, warm_rounds=2):
    if not 1 <= tokens < size:
        raise ValueError('tokens must be 1..%d in a ring of %d' % (size - 1, size))
    rounds = max(1, hops // (size * tokens))
    chans = [csp.Channel() for _ in range(size)]
    P = lambda fn: _proc(csp, fn)
    procs = [P(_tokens_start)(csp, chans[-1].reader(), chans[0].writer(), size, tokens,
                              rounds, warm_rounds)]
    for i in range(1, size):
        procs.append(P(_ring_node)(csp, chans[i - 1].reader(), chans[i].writer()))
    return _result(csp.Parallel(*procs), None)


# ---------------------------------------------------------------------------
# Monte-Carlo Pi: W workers, each counts hits among samples/W random points in
# pure Python, and sends the count to a collector.  The figure is the wall time of
# the whole Parallel (process start-up included), as in the seed's table.
# ---------------------------------------------------------------------------

def pi_count(n, seed):
    import random
    rnd = random.Random(seed).random
    hit = 0
    for _ in range(n):
        x = rnd()
        y = rnd()
        if x * x + y * y <= 1.0:
            hit += 1
    return hit


def _pi_worker(csp, cout, n, seed):
    cout(pi_count(n, seed))


def _pi_collect(csp, cin, workers, total):
    hits = 0
    for _ in range(workers):
        hits += cin()
    return 4.0 * hits / total


def _split(total, parts):
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def csp_pi(csp, workers, samples):
    ch = csp.Channel()
    P = lambda fn: _proc(csp, fn)
    procs = [P(_pi_worker)(csp, ch.writer(), n, 1234 + i)
             for i, n in enumerate(_split(samples, workers))]
    procs.append(P(_pi_collect)(csp, ch.reader(), workers, samples))
    t0 = time.perf_counter()
    res = csp.Parallel(*procs)
    dt = time.perf_counter() - t0
    pi = res[-1] if isinstance(res, (list, tuple)) and res else None
    if isinstance(pi, float) and abs(pi - 3.14159) > 0.1:
        raise RuntimeError('Monte-Carlo Pi gave %r' % pi)
    return dt


def _pool_pi(args):
    return pi_count(*args)


def mp_pool_pi(workers, samples):
    import multiprocessing as mp
    t0 = time.perf_counter()
    with mp.Pool(workers) as pool:
        hits = sum(pool.map(_pool_pi, [(n, 1234 + i) for i, n in
                                       enumerate(_split(samples, workers))]))
    dt = time.perf_counter() - t0
    assert abs(4.0 * hits / samples - 3.14159) < 0.1
    return dt


# ---------------------------------------------------------------------------
# Mandelbrot farm (the seed's two Mandelbrot benchmarks): a producer hands out
# row numbers on one any-to-any channel, W workers compute rows and send
# (row, bytes) to a collector; then the producer sends W stop messages (None).
# Workers compute a row with numpy, or call a C kernel through ctypes, which
# releases the GIL for the call.
# ---------------------------------------------------------------------------

MANDEL_VIEW = (-2.0, 1.0, -1.2, 1.2)   # x0, x1, y0, y1

MANDEL_C = r'''
#include <stdint.h>
/* escape counts of row y of a width x height picture of [x0,x1] x [y0,y1] */
void mandel_row(int y, int width, int height, int maxiter,
                double x0, double x1, double y0, double y1, int32_t *out)
{
    double ci = y0 + (y1 - y0) * y / (height - 1);
    for (int x = 0; x < width; x++) {
        double cr = x0 + (x1 - x0) * x / (width - 1);
        double zr = 0, zi = 0;
        int i = 0;
        while (i < maxiter) {
            double zr2 = zr * zr, zi2 = zi * zi;
            if (zr2 + zi2 > 4.0)
                break;
            zi = 2 * zr * zi + ci;
            zr = zr2 - zi2 + cr;
            i++;
        }
        out[x] = i;
    }
}
'''


def cache_dir():
    d = os.environ.get('PYCSP_BENCH_CACHE')
    if not d:
        base = os.environ.get('XDG_CACHE_HOME') or os.path.join(
            os.path.expanduser('~'), '.cache')
        d = os.path.join(base, 'pycsp-bench')
    os.makedirs(d, exist_ok=True)
    return d


def build_c_library(source, name, flags=(), suffix='.so'):
    """Compile `source` into a shared library in the cache dir (once per source
    text and flags) with $CC or cc and `flags`; return its path (ending in
    `suffix`).  Raises RuntimeError if that fails."""
    import hashlib
    import shutil
    import subprocess
    import tempfile
    tag = hashlib.sha1('\0'.join((source,) + tuple(flags)).encode()).hexdigest()[:12]
    path = os.path.join(cache_dir(), '%s-%s%s' % (name, tag, suffix))
    if os.path.exists(path):
        return path
    cc = os.environ.get('CC') or shutil.which('cc') or shutil.which('gcc')
    if not cc:
        raise RuntimeError('no C compiler (set CC)')
    d = cache_dir()
    with tempfile.TemporaryDirectory(dir=d) as tmp:
        c = os.path.join(tmp, name + '.c')
        with open(c, 'w') as f:
            f.write(source)
        so = os.path.join(tmp, name + '.so')
        r = subprocess.run(cc.split() + ['-O2', '-shared', '-fPIC'] + list(flags) + ['-o', so, c],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError('%s failed: %s' % (cc, r.stderr.strip()[-300:]))
        os.replace(so, path)   # atomic: concurrent builders end with one file
    return path


_MANDEL_LIB = []


def mandel_c_function():
    if not _MANDEL_LIB:
        import ctypes
        lib = ctypes.CDLL(build_c_library(MANDEL_C, 'mandel'))
        f = lib.mandel_row
        f.restype = None
        f.argtypes = [ctypes.c_int] * 4 + [ctypes.c_double] * 4 + [ctypes.c_void_p]
        _MANDEL_LIB.append(f)
    return _MANDEL_LIB[0]


def mandel_row_c(y, width, height, maxiter):
    import ctypes
    buf = ctypes.create_string_buffer(4 * width)
    mandel_c_function()(y, width, height, maxiter, *MANDEL_VIEW, buf)
    return buf.raw


def mandel_row_numpy(y, width, height, maxiter):
    import numpy as np
    x0, x1, y0, y1 = MANDEL_VIEW
    c = np.linspace(x0, x1, width) + 1j * (y0 + (y1 - y0) * y / (height - 1))
    out = np.full(width, maxiter, dtype=np.int32)
    idx = np.arange(width)
    z = np.zeros(width, dtype=complex)
    for i in range(maxiter):
        z = z * z + c
        esc = (z.real * z.real + z.imag * z.imag) > 4.0
        if esc.any():
            out[idx[esc]] = i
            keep = ~esc
            idx, z, c = idx[keep], z[keep], c[keep]
            if not idx.size:
                break
    return out.tobytes()


def _mandel_producer(csp, cout, height, workers):
    for y in range(height):
        cout(y)
    for _ in range(workers):
        cout(None)


def _mandel_worker(csp, cin, cout, width, height, maxiter, kind):
    if kind == 'c':
        mandel_c_function()                 # load the library before the first job
        row = csp.io(mandel_row_c)          # greenlets: the C call runs in a thread
    else:
        row = mandel_row_numpy
    while True:
        y = cin()
        if y is None:
            return
        cout((y, row(y, width, height, maxiter)))


def _mandel_collector(csp, cin, height):
    total = 0
    for _ in range(height):
        y, data = cin()
        total += len(data)
    return total


def csp_mandel(csp, workers, width, height, maxiter, kind):
    if kind == 'c':
        mandel_c_function()   # compile (once, cached) before timing
    else:
        import numpy  # noqa: F401 - fail here, not in a worker
    jobs, results = csp.Channel(), csp.Channel()
    P = lambda fn: _proc(csp, fn)
    procs = [P(_mandel_producer)(csp, jobs.writer(), height, workers)]
    procs += [P(_mandel_worker)(csp, jobs.reader(), results.writer(), width, height,
                                maxiter, kind) for _ in range(workers)]
    procs.append(P(_mandel_collector)(csp, results.reader(), height))
    t0 = time.perf_counter()
    csp.Parallel(*procs)
    return time.perf_counter() - t0


# ---------------------------------------------------------------------------
# Payload throughput through one channel: a long-lived writer sends `warm + n`
# messages (the same object each time, made once) to a long-lived reader, which
# times the last n.  GB/s = n * size / time.  threads and greenlets pass a
# reference (no copy), so their figure is message rate times size, not copying.
# ---------------------------------------------------------------------------

# Untimed messages before a long-lived pair is timed, for every implementation
# and the C floor alike: pycsp.processes' writer cycles through three arena
# blocks (the reader holds one message while the next is made), and a block's
# first use makes its pages (about 40 ms for 64 MiB here, against 5 ms to copy
# into it); "long-lived" is the state after that.
PAYLOAD_WARM = 4

_UNITS = {'': 1, 'B': 1, 'K': 1024, 'M': 1024 ** 2, 'G': 1024 ** 3}


FRESH = 'fresh-'
FRESH_MESSAGES = 6     # the default --n of a fresh-... payload


def is_fresh(spec):
    """A payload between two freshly started processes (fresh-KIND-SIZE)."""
    return spec.startswith(FRESH)


def parse_payload(spec):
    """'numpy-64M' -> ('numpy', 67108864); 'fresh-numpy-64M' the same."""
    if is_fresh(spec):
        spec = spec[len(FRESH):]
    kind, _, size = spec.partition('-')
    if kind not in ('bytes', 'numpy') or not size:
        raise ValueError('payload size must be bytes-SIZE or numpy-SIZE: %r' % spec)
    unit = size[-1].upper() if size[-1].isalpha() else ''
    return kind, int(float(size[:-1] if unit else size) * _UNITS[unit])


def _import_payload_kind(kind):
    """Import numpy here, before the processes start, when the messages are numpy
    arrays: forked children then inherit it instead of importing it in every run
    (0.1-0.2 s each, outside the timed part but not outside the demo's minute)."""
    if kind == 'numpy':
        import numpy  # noqa: F401


def make_payload(kind, size):
    if kind == 'numpy':
        import numpy as np
        return np.ones(size, dtype=np.uint8)
    return b'x' * size


def _payload_writer(csp, cout, kind, size, total):
    msg = make_payload(kind, size)
    for _ in range(total):
        cout(msg)


def _payload_reader(csp, cin, size, warm, n):
    for _ in range(warm):
        cin()
    t0 = time.perf_counter()
    for _ in range(n):
        m = cin()
    dt = time.perf_counter() - t0
    if len(m) != size:
        raise RuntimeError('payload of %d bytes arrived as %d' % (size, len(m)))
    return n * size / dt / 1e9


def csp_payload(csp, spec, n, warm=PAYLOAD_WARM):
    kind, size = parse_payload(spec)
    _import_payload_kind(kind)
    ch = csp.Channel()
    P = lambda fn: _proc(csp, fn)
    res = csp.Parallel(P(_payload_writer)(csp, ch.writer(), kind, size, warm + n),
                       P(_payload_reader)(csp, ch.reader(), size, warm, n))
    return _result(res, None)


def _fresh_writer(csp, cout, kind, size, n):
    msg = make_payload(kind, size)
    cout(None)           # made: the reader's one warm-up message, then its clock
    for _ in range(n):
        cout(msg)


def csp_fresh_payload_here(csp, spec, n):
    """The first n messages of a payload between two processes that this
    interpreter starts now; run it in a fresh interpreter (fresh_payload)."""
    kind, size = parse_payload(spec)
    _import_payload_kind(kind)
    ch = csp.Channel()
    P = lambda fn: _proc(csp, fn)
    res = csp.Parallel(P(_fresh_writer)(csp, ch.writer(), kind, size, n),
                       P(_payload_reader)(csp, ch.reader(), size, 1, n))
    return _result(res, None)


def fresh_payload(csp, spec, n):
    """csp_fresh_payload_here in a new interpreter (so a new arena: every block
    and page fresh), which imports the same pycsp as this one (ours only: the
    module path is this project's)."""
    import subprocess
    package = importlib.import_module(csp.modname.partition('.')[0])
    top = os.path.dirname(os.path.abspath(list(package.__path__)[0]))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [top] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]))
    r = subprocess.run([sys.executable, '-m', 'pycsp.bench.kernels', '--backend', csp.spec,
                        '--kernel', 'payload', '--sizes', spec, '--n', str(n), '--repeats', '1',
                        '--here'], capture_output=True, text=True, env=env, timeout=300)
    if r.returncode != 0:
        raise RuntimeError('fresh payload failed: %s' % r.stderr.strip()[-500:])
    return json.loads(r.stdout.strip().splitlines()[-1])['median']


def _mp_payload_writer(conn, kind, size, total):
    msg = make_payload(kind, size)
    send = conn.put if hasattr(conn, 'put') else conn.send
    for _ in range(total):
        send(msg)


def mp_payload(spec, n, warm=PAYLOAD_WARM, queue=False):
    """The same on multiprocessing: Pipe (send/recv, pickled) or Queue; the writer
    is a child process, the reader this process."""
    import multiprocessing as mp
    kind, size = parse_payload(spec)
    _import_payload_kind(kind)
    if queue:
        q = mp.Queue()
        w_end, recv = q, q.get
    else:
        r_end, w_end = mp.Pipe(False)
        recv = r_end.recv
    p = mp.Process(target=_mp_payload_writer, args=(w_end, kind, size, warm + n))
    p.start()
    for _ in range(warm):
        recv()
    t0 = time.perf_counter()
    for _ in range(n):
        m = recv()
    dt = time.perf_counter() - t0
    p.join()
    assert len(m) == size
    return n * size / dt / 1e9


# ---------------------------------------------------------------------------
# Spawn: N processes in one Parallel, one token once around the ring.
# ---------------------------------------------------------------------------

def _spawn_node(csp, cin, cout):
    cout(cin())


def _spawn_start(csp, cin, cout):
    cout(0)
    cin()


def csp_spawn(csp, n):
    chans = [csp.Channel() for _ in range(n)]
    P = lambda fn: _proc(csp, fn)
    procs = [P(_spawn_start)(csp, chans[-1].reader(), chans[0].writer())]
    procs += [P(_spawn_node)(csp, chans[i - 1].reader(), chans[i].writer())
              for i in range(1, n)]
    t0 = time.perf_counter()
    csp.Parallel(*procs)
    return time.perf_counter() - t0


# ---------------------------------------------------------------------------
# Peers of the token kernels on SimpleQueue and multiprocessing.Pipe
# ---------------------------------------------------------------------------

def sq_tokens(size, tokens, hops, warm_rounds=2):
    import queue
    rounds = max(1, hops // (size * tokens))
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
        for i in range(tokens):
            cout.put(i)
        for _ in range(warm_rounds * tokens):
            cout.put(cin.get())
        t0 = time.perf_counter()
        for _ in range(rounds * tokens):
            cout.put(cin.get())
        out.append((time.perf_counter() - t0) * 1e6 / (rounds * tokens * size))
        for _ in range(tokens):
            cin.get()
        cout.put(None)
        cin.get()

    ts = [threading.Thread(target=start)] + \
         [threading.Thread(target=node, args=(i,)) for i in range(1, size)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out[0]


def mp_tokens(size, tokens, hops, warm_rounds=2):
    import multiprocessing as mp
    rounds = max(1, hops // (size * tokens))
    pipes = [mp.Pipe(False) for _ in range(size)]
    ps = [mp.Process(target=_mp_fwd, args=(pipes[i - 1][0], pipes[i][1], 0))
          for i in range(1, size)]
    for p in ps:
        p.start()
    cin, cout = pipes[-1][0], pipes[0][1]
    for i in range(tokens):
        cout.send(i)
    for _ in range(warm_rounds * tokens):
        cout.send(cin.recv())
    t0 = time.perf_counter()
    for _ in range(rounds * tokens):
        cout.send(cin.recv())
    dt = time.perf_counter() - t0
    for _ in range(tokens):
        cin.recv()
    cout.send(None)
    cin.recv()
    for p in ps:
        p.join()
    return dt * 1e6 / (rounds * tokens * size)


# ---------------------------------------------------------------------------
# Peer: asyncio tasks and asyncio.Queue(maxsize=1) (one queue per channel), all in
# one thread on the default event loop.  maxsize=1 is the nearest asyncio has to a
# rendezvous channel: a put waits while the previous message is still in the queue.
# None is the stop message.  Same networks, same figures as the kernels above.
# ---------------------------------------------------------------------------

def aio_commstime(n, warmup=None, message=None):
    import asyncio
    warmup = max(10, n // 20) if warmup is None else warmup

    async def main():
        a, b, c, d = (asyncio.Queue(maxsize=1) for _ in range(4))

        async def prefix():
            await a.put((0, 0.0) if message == 'tuple' else 0)
            while True:
                x = await c.get()
                if x is None:
                    return
                await a.put(x)

        async def delta():
            while True:
                x = await a.get()
                await b.put(x)
                await d.put(x)
                if x is None:
                    return

        async def successor():
            while True:
                x = await b.get()
                if x is None:
                    await c.put(None)
                    return
                if message == 'tuple':
                    i = x[0] + 1
                    await c.put((i, float(i)))
                else:
                    await c.put(x + 1)

        async def consumer():
            for _ in range(warmup):
                await d.get()
            t0 = time.perf_counter()
            for _ in range(n):
                await d.get()
            dt = time.perf_counter() - t0
            # stop: the token runs into a None injected at the prefix->delta link
            stopper = asyncio.ensure_future(a.put(None))
            while await d.get() is not None:
                pass
            await stopper
            return dt * 1e6 / (4 * n)

        res = await asyncio.gather(prefix(), delta(), successor(), consumer())
        return res[-1]

    return asyncio.run(main())


async def _aio_node(cin, cout):
    while True:
        x = await cin.get()
        await cout.put(x)
        if x is None:
            return


def aio_ring(size, hops, warm_rounds=2):
    """One token around the ring: the tokens kernel with a single token."""
    return aio_tokens(size, 1, hops, warm_rounds)


def aio_tokens(size, tokens, hops, warm_rounds=2):
    import asyncio
    if not 1 <= tokens < size:
        raise ValueError('tokens must be 1..%d in a ring of %d' % (size - 1, size))
    rounds = max(1, hops // (size * tokens))

    async def main():
        qs = [asyncio.Queue(maxsize=1) for _ in range(size)]

        async def start():
            cin, cout = qs[-1], qs[0]
            for i in range(tokens):
                await cout.put(i)
            for _ in range(warm_rounds * tokens):
                await cout.put(await cin.get())
            t0 = time.perf_counter()
            for _ in range(rounds * tokens):
                await cout.put(await cin.get())
            dt = time.perf_counter() - t0
            for _ in range(tokens):
                await cin.get()
            await cout.put(None)
            await cin.get()
            return dt * 1e6 / (rounds * tokens * size)

        res = await asyncio.gather(start(), *(_aio_node(qs[i - 1], qs[i])
                                              for i in range(1, size)))
        return res[0]

    return asyncio.run(main())


# ---------------------------------------------------------------------------
# The floor: bare C hand-offs.  floor_threads.c (two pthreads) and
# floor_processes.c (two forked processes on one MAP_SHARED word) pass a counter
# back and forth; each is compiled once with `cc -O2 -pthread` into cache_dir()
# (the Mandelbrot kernel's) and run with MODE ROUND_TRIPS 1.  Sizes: the modes.
# Figure: us per hand-off (one direction), comparable with us/comm and us/hop.
# floor_processes.c also runs the ring and Commstime networks of bare forked
# processes (one shared word per channel): backend "c-processes[:MODE]" (MODE
# futex, the default, spin or hybrid: the library's waiting policy; with the
# suffix -rv, e.g. hybrid-rv, every channel is a rendezvous as pycsp's are),
# kernel ring (sizes: N) or commstime, the same figures as ours (us/hop, us/comm).
# ---------------------------------------------------------------------------

FLOOR_SOURCES = {'c-threads': ('floor_threads', ('condvar', 'futex', 'spin')),
                 'c-processes': ('floor_processes', ('futex', 'spin', 'hybrid', 'futex-rv',
                                                     'spin-rv', 'hybrid-rv'))}


def floor_source(backend):
    return os.path.join(os.path.dirname(os.path.abspath(__file__)),
                        FLOOR_SOURCES[backend][0] + '.c')


def build_c_program(source_path, name):
    """Compile the C file `source_path` into an executable in the cache dir (once
    per source text) with `$CC -O2 -pthread` (CC defaults to cc, then gcc); return
    its path.  Raises RuntimeError if there is no compiler or it fails."""
    import hashlib
    import shutil
    import subprocess
    import tempfile
    with open(source_path, 'rb') as f:
        tag = hashlib.sha1(f.read()).hexdigest()[:12]
    d = cache_dir()
    path = os.path.join(d, '%s-%s' % (name, tag))
    if os.path.exists(path):
        return path
    cc = os.environ.get('CC') or shutil.which('cc') or shutil.which('gcc')
    if not cc:
        raise RuntimeError('no C compiler found (cc or gcc on PATH, or set CC)')
    with tempfile.TemporaryDirectory(dir=d) as tmp:
        exe = os.path.join(tmp, name)
        try:
            r = subprocess.run(cc.split() + ['-O2', '-pthread', '-o', exe, source_path],
                               capture_output=True, text=True)
        except OSError as e:
            raise RuntimeError('%s: %s' % (cc, e))
        if r.returncode != 0:
            raise RuntimeError('%s failed: %s' % (cc, r.stderr.strip()[-300:]))
        os.replace(exe, path)
    return path


def _run_floor(backend, args):
    import subprocess
    exe = build_c_program(floor_source(backend), FLOOR_SOURCES[backend][0])
    r = subprocess.run([exe] + [str(a) for a in args], capture_output=True, text=True,
                       check=True)
    return float(r.stdout.split()[-1]) / 1000.0     # ns -> us


def c_floor(backend, mode, round_trips):
    """us per hand-off of two threads / processes (floor_*.c MODE ROUND_TRIPS 1)."""
    return _run_floor(backend, [mode, round_trips, 1])


def c_net(kernel, mode, n, size=None):
    """floor_processes.c: us per hop of one token in a ring of `size` processes (n
    hops), or us per communication of Commstime (n cycles)."""
    if kernel == 'ring':
        return _run_floor('c-processes', ['ring', mode, size, n, 1])
    return _run_floor('c-processes', ['commstime', mode, n, 1])


PAYLOAD_FLOOR = 'floor_copy'
PAYLOAD_FLOOR_MODES = ('arena', 'vmread')


def c_payload(mode, spec, n):
    """floor_copy.c: GB/s of n messages (the first n between fresh processes, or
    after PAYLOAD_WARM untimed ones)."""
    import subprocess
    kind, size = parse_payload(spec)
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), PAYLOAD_FLOOR + '.c')
    exe = build_c_program(src, PAYLOAD_FLOOR)
    warm = 0 if is_fresh(spec) else PAYLOAD_WARM
    r = subprocess.run([exe, mode, kind, str(size), str(n), str(warm)], capture_output=True,
                       text=True, check=True)
    return float(r.stdout.split()[-1])


# The Python floor (backend "py-floor[:MODE]", MODE futex, spin or hybrid, the
# default, each also with -rv: a rendezvous): the same kernels in forked Python processes on floor_processes.c's
# channel, exposed by floor_pyext.c, a CPython extension compiled here with the
# interpreter's headers; pyfloor.py gives it the pycsp names the kernels use.
PY_FLOOR_MODES = ('futex', 'spin', 'hybrid', 'futex-rv', 'spin-rv', 'hybrid-rv')


def load_py_floor(mode):
    """Build and import the Python floor with waiting `mode`; its _Csp spec."""
    import importlib.util
    import sysconfig
    if mode not in PY_FLOOR_MODES:
        raise ValueError('py-floor: mode is one of %s' % (PY_FLOOR_MODES,))
    here = os.path.dirname(os.path.abspath(__file__))
    name = 'pycsp_bench_pyfloor'
    mod = sys.modules.get(name)
    if mod is None:
        spec = importlib.util.spec_from_file_location(name, os.path.join(here, 'pyfloor.py'))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        sys.modules[name] = mod      # for _Csp, which imports it by name
    with open(os.path.join(here, 'floor_pyext.c')) as f:
        ext = build_c_library(f.read(), 'floor_pyext',
                              flags=['-I' + sysconfig.get_paths()['include']],
                              suffix=sysconfig.get_config_var('EXT_SUFFIX'))
    mod.load(ext, mode)
    return name + ':process'


def split_floor(backend):
    """'c-processes:hybrid' -> ('c-processes', 'hybrid'); mode None if not given."""
    base, _, mode = backend.partition(':')
    return base, mode or None


# ---------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------

# Default work for the fixed-work kernels (pi: samples; mandel: width, height,
# maxiter), full and quick.
WORK = {
    'pi': {'full': 3_000_000, 'quick': 1_000_000},
    'mandel-numpy': {'full': (640, 480, 128), 'quick': (320, 160, 64)},
    'mandel-c': {'full': (1600, 1200, 512), 'quick': (640, 480, 256)},
}
CALIBRATED = ('commstime', 'ring', 'tokens', 'payload', 'switch', 'handoff', 'alt')
SUPPORTED = {
    'asyncio': ('commstime', 'ring', 'tokens'),
    'c-threads': ('handoff',),
    'c-processes': ('handoff', 'ring', 'commstime', 'payload'),
    'py-floor': ('ring', 'commstime'),
    'simplequeue': ('commstime', 'ring', 'tokens'),
    'mp-pipe': ('commstime', 'ring', 'tokens', 'payload'),
    'mp-queue': ('payload',),
    'mp-pool': ('pi',),
    'greenlet-switch': ('switch',),
}


def work_for(kernel, work=None, quick=False):
    if work is None:
        return WORK[kernel]['quick' if quick else 'full']
    if kernel == 'pi':
        return int(work)
    return tuple(int(x) for x in str(work).split('x'))


def make_runner(backend, kernel, ring=64, work=None, quick=False):
    """Return run(n, size) -> the kernel's figure (see UNITS).  n is the iteration
    count for the calibrated kernels (cycles, hops, messages, switches) and ignored
    by the fixed-work kernels; size is the kernel's --sizes item."""
    if kernel == 'switch':
        kernel = 'commstime' if backend != 'greenlet-switch' else 'switch'
    base, mode = split_floor(backend)
    if base == 'c-processes' and kernel == 'payload':
        if mode not in (None,) + PAYLOAD_FLOOR_MODES:
            raise ValueError('%s: payload mode is one of %s' % (backend, PAYLOAD_FLOOR_MODES))
        return lambda n, size: c_payload(mode or 'arena', size, n)
    if base in FLOOR_SOURCES:
        if kernel not in SUPPORTED[base] or (mode and kernel == 'handoff'):
            raise ValueError('%s has no %s kernel' % (backend, kernel))
        if mode not in (None,) + FLOOR_SOURCES[base][1]:
            raise ValueError('%s: mode is one of %s' % (backend, FLOOR_SOURCES[base][1]))
        if kernel == 'handoff':
            return lambda n, size: c_floor(base, size, n)

        def c_network(n, size=None):
            if kernel == 'commstime' and size == 'tuple':
                raise ValueError('%s: commstime carries ints only' % backend)
            return c_net(kernel, mode or 'futex', n, size)
        return c_network
    if base in SUPPORTED and kernel not in SUPPORTED[base]:
        raise ValueError('%s has no %s kernel' % (backend, kernel))
    if kernel in WORK:
        w = work_for(kernel, work, quick)
    if backend == 'greenlet-switch':
        return lambda n, size=None: greenlet_switch(n)
    if backend == 'asyncio':
        return {'commstime': lambda n, size=None: aio_commstime(n, message=size),
                'ring': lambda n, size=None: aio_ring(size, n),
                'tokens': lambda n, size=None: aio_tokens(ring, size, n)}[kernel]
    if backend == 'simplequeue':
        return {'commstime': lambda n, size=None: sq_commstime(n, message=size),
                'ring': lambda n, size=None: sq_ring(size, n),
                'tokens': lambda n, size=None: sq_tokens(ring, size, n)}[kernel]
    if backend == 'mp-pipe':
        return {'commstime': lambda n, size=None: mp_commstime(n, message=size),
                'ring': lambda n, size=None: mp_ring(size, n),
                'tokens': lambda n, size=None: mp_tokens(ring, size, n),
                'payload': lambda n, size=None: mp_payload(size, n)}[kernel]
    if backend == 'mp-queue':
        return lambda n, size=None: mp_payload(size, n, queue=True)
    if backend == 'mp-pool':
        pooled = set()

        def pool(n, size):
            if size not in pooled:        # untimed warm-up, as for ours
                pooled.add(size)
                mp_pool_pi(size, 1000 * size)
            return mp_pool_pi(size, w)
        return pool
    spec = backend
    if backend in BACKENDS:
        spec = '%s:%s' % BACKENDS[backend]
    if base == 'py-floor':
        spec = load_py_floor(mode or 'hybrid')
        if kernel == 'commstime':
            csp = _Csp(spec)

            def py_floor_commstime(n, size=None):
                if size == 'tuple':
                    raise ValueError('%s: commstime carries ints only' % backend)
                return csp_commstime(csp, n)
            return py_floor_commstime
    csp = _Csp(spec)
    warmed = set()

    def warm(fn, size, *a, **kw):
        # one small untimed run first (per size): imports, the first Parallel's
        # set-up and page faults are not part of the figure
        if size not in warmed:
            warmed.add(size)
            fn(*a, **kw)

    def pi(n, size):
        warm(csp_pi, size, csp, size, 1000 * size)
        return csp_pi(csp, size, w)

    def mandel(kind):
        def f(n, size):
            warm(csp_mandel, size, csp, size, 64, 2 * size, 16, kind=kind)
            return csp_mandel(csp, size, *w, kind=kind)
        return f

    return {
        'commstime': lambda n, size=None: csp_commstime(csp, n, message=size),
        'ring': lambda n, size=None: csp_ring(csp, size, n),
        'tokens': lambda n, size=None: csp_tokens(csp, ring, size, n),
        'pi': pi,
        'mandel-numpy': mandel('numpy'),
        'mandel-c': mandel('c'),
        'payload': lambda n, size=None: (fresh_payload(csp, size, n) if is_fresh(size)
                                         else csp_payload(csp, size, n)),
        'spawn': lambda n, size=None: csp_spawn(csp, size),
        'alt': lambda n, size=None: csp_alt(csp, size, n),
    }[kernel]


def _per_iter(kernel, value, size):
    """Seconds of timed work per iteration, from the kernel's own figure."""
    if kernel == 'payload':
        return parse_payload(size)[1] / (value * 1e9)
    if kernel in ('switch', 'handoff'):
        return 2 * value * 1e-6       # n counts round trips (two switches/hand-offs)
    if kernel == 'commstime':
        return 4 * value * 1e-6
    return value * 1e-6       # ring, tokens: us per hop, n counts hops; alt: messages


def min_n(kernel, size, ring=64):
    if kernel == 'ring':
        return max(200, 2 * size)
    if kernel == 'tokens':
        return max(200, 2 * ring * size)
    if kernel == 'payload':
        # one message of 16 MiB or more already takes 2-500 ms to time; three of
        # 64 MiB through mp.Pipe took 3-5 s of the demo's minute
        return 1 if parse_payload(size)[1] >= 16 << 20 else 3
    return 200


def measure(run, kernel, target, size=None, repeats=5, ring=64, max_n=5_000_000):
    """Calibrated kernels: find the iteration count for about `target` seconds of
    timed work (from the kernel's own figure, so start-up does not count), then
    take `repeats` measurements.  Fixed-work kernels: `repeats` runs.
    Returns (n, [values])."""
    if kernel not in CALIBRATED:
        return None, [run(None, size) for _ in range(repeats)]
    if kernel == 'payload' and is_fresh(size):
        return FRESH_MESSAGES, [run(FRESH_MESSAGES, size) for _ in range(repeats)]
    lo = min_n(kernel, size, ring)
    n = lo
    for _ in range(2):
        v = run(n, size)
        per = _per_iter(kernel, v, size) if v else None
        new = int(min(max_n, max(lo, target / per if per else max_n)))
        if new == n == lo:
            break            # one message already takes longer than the target
        n = new
    return n, [run(n, size) for _ in range(repeats)]


def parse_sizes(kernel, text):
    if kernel == 'switch':
        return [None]
    if kernel == 'commstime':
        items = [s for s in text.split(',') if s] or [None]
        for s in items:
            if s not in COMMSTIME_MESSAGES:
                raise ValueError('commstime sizes are int or tuple: %r' % s)
        return items
    items = [s for s in text.split(',') if s]
    if kernel == 'handoff':
        return items
    if kernel == 'payload':
        for s in items:
            parse_payload(s)
        return items
    return [int(s) for s in items]


DEFAULT_SIZES = {'ring': '2,4,8,16,32,64,128,256', 'tokens': '1,2,4,8,16,32,63',
                 'pi': '1,2,3,4,5', 'mandel-numpy': '1,2,4', 'mandel-c': '1,2,4',
                 'payload': 'bytes-1K,bytes-1M,bytes-64M,numpy-1K,numpy-1M,numpy-64M',
                 'spawn': '10,100', 'handoff': 'futex,spin', 'alt': '2,8'}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--backend', required=True,
                    help='alias (%s) or module[:decorator]' %
                         ', '.join(list(BACKENDS) + list(PLAIN_PEERS)))
    ap.add_argument('--kernel', choices=KERNELS, default='commstime')
    ap.add_argument('--sizes', default=None, help='comma list (see above)')
    ap.add_argument('--ring-sizes', default=None, help='same as --sizes (ring)')
    ap.add_argument('--ring', type=int, default=64, help='ring size for --kernel tokens')
    ap.add_argument('--work', default=None,
                    help='pi: samples; mandel-*: WIDTHxHEIGHTxMAXITER')
    ap.add_argument('--quick', action='store_true', help='the smaller default --work')
    ap.add_argument('--repeats', type=int, default=5)
    ap.add_argument('--target', type=float, default=0.3,
                    help='seconds per measurement (iteration count is calibrated)')
    ap.add_argument('--here', action='store_true', help=argparse.SUPPRESS)  # fresh_payload's child
    ap.add_argument('--n', default=None,
                    help='fixed iteration count (commstime cycles, hops, messages); '
                         'skips calibration.  One number or one per size')
    args = ap.parse_args(argv)

    kernel = args.kernel
    if args.backend == 'greenlet-switch':
        kernel = 'switch'
    base, mode = split_floor(args.backend)
    if base in FLOOR_SOURCES and not mode and kernel not in SUPPORTED[base]:
        kernel = 'handoff'
    if args.here:
        csp = _Csp('%s:%s' % BACKENDS[args.backend] if args.backend in BACKENDS
                   else args.backend)
        run = lambda n, size: csp_fresh_payload_here(csp, size, n)
    else:
        run = make_runner(args.backend, kernel, ring=args.ring, work=args.work,
                          quick=args.quick)
    sizes = parse_sizes(kernel, args.sizes or args.ring_sizes or
                        DEFAULT_SIZES.get(kernel, ''))
    fixed = [int(x) for x in args.n.split(',')] if args.n else None
    if fixed and len(fixed) == 1:
        fixed = fixed * len(sizes)
    if fixed and len(fixed) != len(sizes):
        ap.error('--n: give one count or one per size')
    for i, size in enumerate(sizes):
        t0 = time.perf_counter()
        if fixed and kernel in CALIBRATED:
            n = max(fixed[i], min_n(kernel, size, args.ring))
            vals = [run(n, size) for _ in range(args.repeats)]
        else:
            n, vals = measure(run, kernel, args.target, size, args.repeats, args.ring)
        rec = {'backend': args.backend, 'kernel': kernel, 'size': size, 'n': n,
               'unit': UNITS[kernel], 'values': vals,
               'median': statistics.median(vals) if None not in vals else None,
               'wall_s': round(time.perf_counter() - t0, 3),
               'python': sys.version.split()[0]}
        if kernel == 'tokens':
            rec['ring'] = args.ring
        if kernel in WORK:
            rec['work'] = work_for(kernel, args.work, args.quick)
        print(json.dumps(rec), flush=True)


def cli():
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


if __name__ == '__main__':
    cli()
