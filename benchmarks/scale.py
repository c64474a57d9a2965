#!/usr/bin/env python3
"""Scale: the largest Parallel a backend handles, its wall time and its memory.

    python benchmarks/scale.py --backend greenlets            # N = 10k, 100k, 1M
    python benchmarks/scale.py --backend threads              # N = 1k, 10k
    python benchmarks/scale.py --backend greenlets --sizes 10000,100000 --json

Each case is one Parallel of N CSP processes, each doing one channel communication:
N/2 writers (each writes one message) and N/2 readers (each reads one), on

  private  one channel per writer/reader pair (N/2 channels), or
  shared   one channel for all of them,

listed in the Parallel in the order

  wf   writers first (w0..w{N/2-1}, r0..r{N/2-1}): every writer has blocked before
       the first reader runs, or
  il   interleaved (w0, r0, w1, r1, ...).

Every case runs in a fresh subprocess (this script with --child).  Reported:
  wall     the subprocess's whole life (interpreter start-up included)
  build    creating the channels and the N process objects
  run      the Parallel call
  peak     the subprocess's peak RSS (ru_maxrss from wait4)
  B/proc   (peak - peak of the same script with N = 0) / N
A case that fails (exception, MemoryError, non-zero exit, more than --timeout
seconds, default 300) is reported as FAILED with the reason.  Sizes run smallest
first; a size whose extrapolated time (from the two sizes before it) is over
2 x --timeout, or whose extrapolated memory is over --mem-limit, is reported as
FAILED (not run) with the extrapolation, and so is every size above a failed one.

Peers, same cases where they apply:
  pycsp092   PyCSP 0.9.2 (its venv) greenlets / threads (pycsp.parallel @process),
             by default up to 100,000 / 10,000 processes (--peer-max)
  raw        the floor: N raw greenlets (threads with the same 512 KiB stack as
             pycsp.threads) each started and blocked once, then all resumed; no
             channels, so layout/order do not apply
"""
import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, 'out')
DEFAULT_092 = '/work/peers/pycsp092/bin/python'

DEFAULT_SIZES = {'greenlets': '10000,100000,1000000', 'threads': '1000,10000'}
CASES = [('private', 'wf'), ('private', 'il'), ('shared', 'wf'), ('shared', 'il')]


# ---------------------------------------------------------------------------
# Child: one case
# ---------------------------------------------------------------------------

def child_csp(module, n, layout, order):
    import importlib
    t0 = time.perf_counter()
    csp = importlib.import_module(module)

    def writer(cout, x):
        cout(x)

    def reader(cin):
        cin()

    writer = csp.process(writer)
    reader = csp.process(reader)
    half = n // 2
    t1 = time.perf_counter()
    if layout == 'shared':
        ch = csp.Channel()
        ws = [writer(ch.writer(), i) for i in range(half)]
        rs = [reader(ch.reader()) for _ in range(half)]
    else:
        chans = [csp.Channel() for _ in range(half)]
        ws = [writer(c.writer(), i) for i, c in enumerate(chans)]
        rs = [reader(c.reader()) for c in chans]
    if order == 'wf':
        procs = ws + rs
    else:
        procs = [p for pair in zip(ws, rs) for p in pair]
    del ws, rs
    t2 = time.perf_counter()
    if procs:
        csp.Parallel(*procs)
    t3 = time.perf_counter()
    return {'import_s': t1 - t0, 'build_s': t2 - t1, 'run_s': t3 - t2}


def child_raw_greenlet(n):
    import greenlet
    t1 = time.perf_counter()
    main = greenlet.getcurrent()

    def body():
        main.switch()          # block once

    gs = [greenlet.greenlet(body) for _ in range(n)]
    t2 = time.perf_counter()
    for g in gs:               # start each; it blocks at once
        g.switch()
    for g in gs:               # resume each; it ends
        g.switch()
    assert all(g.dead for g in gs)
    t3 = time.perf_counter()
    return {'build_s': t2 - t1, 'run_s': t3 - t2}


def child_raw_thread(n, stack):
    import threading
    t1 = time.perf_counter()
    sem = threading.Semaphore(0)
    threading.stack_size(stack)
    ts = [threading.Thread(target=sem.acquire) for _ in range(n)]
    t2 = time.perf_counter()
    for t in ts:
        t.start()
    if n:
        sem.release(n)
    for t in ts:
        t.join()
    t3 = time.perf_counter()
    return {'build_s': t2 - t1, 'run_s': t3 - t2}


def child_main(args):
    if args.impl == 'raw':
        if args.backend == 'greenlets':
            res = child_raw_greenlet(args.n)
        else:
            res = child_raw_thread(args.n, args.stack)
    else:
        module = args.module
        res = child_csp(module, args.n, args.layout, args.order)
    res['maxrss_kib_self'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:   # peak address space: what RLIMIT_AS counts
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('VmPeak:'):
                    res['vmpeak_kib'] = int(line.split()[1])
    except OSError:
        pass
    print('RESULT ' + json.dumps(res), flush=True)
    sys.stdout.flush()
    os._exit(0)   # skip interpreter teardown of N objects (not what is measured)


# ---------------------------------------------------------------------------
# Parent
# ---------------------------------------------------------------------------

def run_case(python, env, child_args, timeout, mem_limit):
    """Run one child; return dict with wall_s, maxrss_kib, ok, reason, and the
    child's own figures."""
    cmd = [python, os.path.abspath(__file__), '--child'] + child_args

    def limit():
        if mem_limit:
            resource.setrlimit(resource.RLIMIT_AS, (mem_limit, mem_limit))

    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         preexec_fn=limit, cwd=HERE)
    # read pipes in threads so a chatty child cannot block on a full pipe
    import threading
    bufs = {'out': b'', 'err': b''}

    def drain(name, f):
        bufs[name] = f.read()

    th = [threading.Thread(target=drain, args=('out', p.stdout)),
          threading.Thread(target=drain, args=('err', p.stderr))]
    for t in th:
        t.start()
    timed_out = False
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() - t0 > timeout:
            timed_out = True
            p.kill()
            pid, status, ru = os.wait4(p.pid, 0)
            break
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    for t in th:
        t.join()
    out = bufs['out'].decode(errors='replace')
    err = bufs['err'].decode(errors='replace')
    rec = {'wall_s': wall, 'maxrss_kib': ru.ru_maxrss, 'ok': False, 'reason': None}
    res = None
    for line in out.splitlines():
        if line.startswith('RESULT '):
            res = json.loads(line[7:])
    if timed_out:
        rec['reason'] = 'timed out after %.0f s (killed)' % wall
    elif p.returncode != 0 or res is None:
        lines = [l for l in err.strip().splitlines() if l.strip()]
        tail = lines[-1] if lines else ''
        if p.returncode is not None and p.returncode < 0:
            tail = 'killed by signal %d %s' % (-p.returncode, tail)
        rec['reason'] = 'exit %s: %s' % (p.returncode, tail[-300:])
    else:
        rec['ok'] = True
        rec.update(res)
    return rec


def fmt_bytes(b):
    if b is None:
        return '-'
    return '%.0f' % b


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--backend', choices=('greenlets', 'threads'), required=True)
    ap.add_argument('--sizes', default=None,
                    help='comma list of N (default greenlets %s; threads %s)' % (
                        DEFAULT_SIZES['greenlets'], DEFAULT_SIZES['threads']))
    ap.add_argument('--cases', default='private-wf,private-il,shared-wf,shared-il')
    ap.add_argument('--impls', default='ours,pycsp092,raw',
                    help='comma list of ours, pycsp092, raw')
    ap.add_argument('--peer-max', type=int, default=None,
                    help='largest N for PyCSP 0.9.2 (default greenlets 100000, threads 10000)')
    ap.add_argument('--timeout', type=float, default=300, help='seconds per case')
    ap.add_argument('--mem-limit', type=float, default=None,
                    help='GiB of address space per case (RLIMIT_AS; 0 = none; default 16 '
                         'for greenlets, none for threads, whose stacks reserve address '
                         'space they never touch)')
    ap.add_argument('--json', nargs='?', const='', default=None,
                    help='write results as JSON (default out/scale-BACKEND.json)')
    # child mode
    ap.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    ap.add_argument('--impl', default='ours', help=argparse.SUPPRESS)
    ap.add_argument('--module', default=None, help=argparse.SUPPRESS)
    ap.add_argument('--n', type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument('--layout', default='private', help=argparse.SUPPRESS)
    ap.add_argument('--order', default='wf', help=argparse.SUPPRESS)
    ap.add_argument('--stack', type=int, default=512 * 1024, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child_main(args)

    sizes = sorted(int(s) for s in (args.sizes or DEFAULT_SIZES[args.backend]).split(','))
    cases = [tuple(c.split('-')) for c in args.cases.split(',') if c]
    peer_max = args.peer_max or (100000 if args.backend == 'greenlets' else 10000)
    if args.mem_limit is None:
        args.mem_limit = 16 if args.backend == 'greenlets' else 0
    mem_limit = int(args.mem_limit * 2 ** 30) if args.mem_limit else 0
    py092 = os.environ.get('PYCSP092_PYTHON', DEFAULT_092)

    env_ours = dict(os.environ)
    # this project's pycsp as this interpreter finds it (PYTHONPATH, pip install -e),
    # else the checkout this script lives in
    import importlib.util
    spec = importlib.util.find_spec('pycsp')
    root = (os.path.dirname(os.path.dirname(os.path.abspath(spec.origin)))
            if spec and spec.origin else os.path.dirname(HERE))
    env_ours['PYTHONPATH'] = root + (os.pathsep + env_ours['PYTHONPATH']
                                     if env_ours.get('PYTHONPATH') else '')
    env_092 = dict(os.environ)
    env_092.pop('PYTHONPATH', None)
    env_092['PYCSP_HOST'] = env_092.get('PYCSP_HOST', '127.0.0.1')

    impls = []   # (label, python, env, child args prefix, cases, max N)
    wanted = args.impls.split(',')
    if 'ours' in wanted:
        impls.append(('pycsp.' + args.backend, sys.executable, env_ours,
                      ['--backend', args.backend, '--impl', 'ours',
                       '--module', 'pycsp.' + args.backend], cases, None))
    if 'pycsp092' in wanted:
        if os.path.exists(py092):
            mod = 'pycsp.greenlets' if args.backend == 'greenlets' else 'pycsp.parallel'
            impls.append(('PyCSP 0.9.2 ' + args.backend, py092, env_092,
                          ['--backend', args.backend, '--impl', 'pycsp092', '--module', mod],
                          cases, peer_max))
        else:
            print('PyCSP 0.9.2: no interpreter at %s, skipped' % py092)
    if 'raw' in wanted:
        impls.append(('raw ' + ('greenlet' if args.backend == 'greenlets' else 'thread'),
                      sys.executable, dict(os.environ),
                      ['--backend', args.backend, '--impl', 'raw'], [('-', '-')], None))

    t_start = time.time()
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    print('%s  command: %s' % (time.strftime('%Y-%m-%dT%H:%M:%S'),
                               ' '.join([sys.executable] + sys.argv)))
    print('python %s, %s %s, nproc %s, load average %s, RLIMIT_AS %s, timeout %.0f s' % (
        platform.python_version(), platform.machine(), platform.release(), os.cpu_count(),
        ' '.join('%.2f' % x for x in load) if load else '?',
        ('%.0f GiB' % args.mem_limit) if mem_limit else 'none', args.timeout), flush=True)
    print('this project\'s pycsp from %s' % root)

    results = []
    baselines = {}
    for label, python, env, prefix, icases, nmax in impls:
        rec = run_case(python, env, prefix + ['--n', '0'], args.timeout, mem_limit)
        baselines[label] = rec['maxrss_kib'] if rec['ok'] else None
        print('baseline %-24s N=0: peak %.1f MiB%s' % (
            label, rec['maxrss_kib'] / 1024, '' if rec['ok'] else '  FAILED ' + rec['reason']),
            flush=True)

    def case_key(label, layout, order):
        return (label, layout, order)

    history = {}   # case key -> list of (n, rec) successful
    dead = {}      # case key -> reason (larger sizes not run)
    for n in sizes:
        for label, python, env, prefix, icases, nmax in impls:
            if nmax is not None and n > nmax:
                continue
            for layout, order in icases:
                key = case_key(label, layout, order)
                row = {'impl': label, 'layout': layout, 'order': order, 'n': n}
                base = baselines.get(label)
                reason = None
                if key in dead:
                    reason = 'not run: %s' % dead[key]
                else:
                    hist = history.get(key, [])
                    if len(hist) >= 2:
                        (n1, r1), (n2, r2) = hist[-2], hist[-1]
                        t1, t2 = max(r1['wall_s'], 1e-3), max(r2['wall_s'], 1e-3)
                        e = max(1.0, math.log(t2 / t1) / math.log(n2 / n1))
                        t_pred = t2 * (n / n2) ** e
                        row['extrapolated_s'] = t_pred
                        row['extrapolated_exponent'] = e
                        mem_pred = None
                        if base is not None:
                            bpp = (r2['maxrss_kib'] - base) * 1024 / n2
                            mem_pred = base * 1024 + bpp * n
                            row['extrapolated_peak_mib'] = mem_pred / 2 ** 20
                        if t_pred > 2 * args.timeout:
                            reason = ('not run: extrapolated %.0f s (time ~ N^%.2f from N=%d, %d)'
                                      ' > 2 x timeout' % (t_pred, e, n1, n2))
                        elif mem_limit and mem_pred and mem_pred > mem_limit:
                            reason = ('not run: extrapolated peak %.1f GiB > RLIMIT_AS'
                                      % (mem_pred / 2 ** 30))
                if reason is None:
                    print('%-24s %-7s %-2s N=%-8d ...' % (label, layout, order, n),
                          end=' ', flush=True)
                    child = prefix + ['--n', str(n)]
                    if layout != '-':
                        child += ['--layout', layout, '--order', order]
                    rec = run_case(python, env, child, args.timeout, mem_limit)
                    row.update(rec)
                    if rec['ok']:
                        history.setdefault(key, []).append((n, rec))
                        if base is not None:
                            row['bytes_per_process'] = (rec['maxrss_kib'] - base) * 1024 / n
                        print('wall %.2f s, run %.2f s, peak %.0f MiB, %s B/process, '
                              'VmPeak %.0f MiB' % (
                                  rec['wall_s'], rec['run_s'], rec['maxrss_kib'] / 1024,
                                  fmt_bytes(row.get('bytes_per_process')),
                                  rec.get('vmpeak_kib', 0) / 1024), flush=True)
                    else:
                        dead[key] = 'N=%d failed' % n
                        print('FAILED: %s (wall %.1f s, peak %.0f MiB)' % (
                            rec['reason'], rec['wall_s'], rec['maxrss_kib'] / 1024), flush=True)
                else:
                    row.update({'ok': False, 'reason': reason})
                    dead.setdefault(key, 'N=%d not run' % n)
                    print('%-24s %-7s %-2s N=%-8d FAILED (%s)' % (label, layout, order, n,
                                                                  reason), flush=True)
                results.append(row)

    # table
    print()
    print('N processes in one Parallel, each doing one channel communication '
          '(N/2 writers, N/2 readers).')
    print('wf = writers first, il = interleaved; B/process = (peak RSS - peak RSS at N=0) / N.')
    head = '%-22s %-7s %-5s %9s %8s %8s %8s %10s %10s  %s' % (
        'impl', 'layout', 'order', 'N', 'wall s', 'build s', 'run s', 'peak MiB',
        'B/process', 'status')
    print(head)
    print('-' * len(head))
    for r in results:
        if r.get('ok'):
            print('%-22s %-7s %-5s %9d %8.2f %8.2f %8.2f %10.0f %10s  ok' % (
                r['impl'], r['layout'], r['order'], r['n'], r['wall_s'], r['build_s'],
                r['run_s'], r['maxrss_kib'] / 1024, fmt_bytes(r.get('bytes_per_process'))))
        else:
            extra = ''
            if 'wall_s' in r:
                extra = ' %8.2f %8s %8s %10.0f %10s ' % (r['wall_s'], '-', '-',
                                                         r['maxrss_kib'] / 1024, '-')
            else:
                extra = ' %8s %8s %8s %10s %10s ' % ('-', '-', '-', '-', '-')
            print('%-22s %-7s %-5s %9d%s FAILED: %s' % (r['impl'], r['layout'], r['order'],
                                                         r['n'], extra, r['reason']))
    for label, b in baselines.items():
        print('baseline (N=0) %-22s peak %s MiB' % (label, '-' if b is None else '%.1f' % (b / 1024)))
    print('\nwall time %.0f s' % (time.time() - t_start))

    if args.json is not None:
        path = args.json or os.path.join(OUT, 'scale-%s.json' % args.backend)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, 'w') as f:
            json.dump({'when': time.strftime('%Y-%m-%dT%H:%M:%S'),
                       'command': [sys.executable] + sys.argv,
                       'python': platform.python_version(), 'nproc': os.cpu_count(),
                       'kernel': platform.release(), 'loadavg_start': load,
                       'timeout_s': args.timeout, 'rlimit_as_bytes': mem_limit,
                       'baseline_maxrss_kib': baselines, 'results': results}, f, indent=1)
        print('wrote %s' % path)
    return 0


if __name__ == '__main__':
    sys.exit(main())
