#!/usr/bin/env python3
"""Callgrind instructions per communication for one kernel on one backend.

    python benchmarks/callgrind_per_op.py --backend greenlets --kernel commstime
    python benchmarks/callgrind_per_op.py --tree /work/wt-base --backend threads \\
        --kernel ring --size 64 --json

Runs TREE/benchmarks/kernels.py under `valgrind --tool=callgrind` twice, with
--n N_LOW and --n N_HIGH (--repeats 1, PYTHONHASHSEED=0, PYTHONPATH=TREE, cwd=TREE),
and prints (Ir(N_HIGH) - Ir(N_LOW)) / (comms(N_HIGH) - comms(N_LOW)): the
interpreter's start-up, the network's set-up and tear-down cancel out.  Ir is the
sum of the "totals:" lines over every output file of the run (one per process).

Communications, from the kernels' definitions in pycsp/bench/kernels.py, warm-up
included (the convention of benchmarks/RESULTS.md):
  commstime  4 per cycle, n cycles + max(10, n // 20) warm-up cycles
  ring       size hops per round, n // size rounds + 2 warm-up rounds
  alt        1 per message received, n + max(10, n // 20) warm-up messages
The default 10,000 / 30,000 gives 84,000 extra communications for Commstime,
19,968 hops for ring-64 and 21,000 messages for alt-2.

valgrind must run the interpreter's binary itself: a pyenv shim is a shell script
that execs it, and valgrind does not follow an exec by default.  sys.executable is
the real binary when this script runs under that interpreter; the script checks
that it is an ELF file.

greenlets run in one thread and give the same count to a few hundredths of an
instruction run after run.  The threads backend's waits spin for a time budget
(csp_monotonic) and CPython's GIL hands over on a time interval, so its counts
depend on timing: at c1f55f2, five runs each spread 1412-1458 (Commstime),
1249-1369 (ring-64) and 20702-20968 (alt-2); run it several times and take the
median (valgrind's --fair-sched=yes, through VALGRIND_OPTS, does not help).

The processes backend cannot be measured with valgrind 3.19: the parent's
os.pidfd_open of each child fails with ENOSYS under valgrind (with both start
methods, fork and spawn).  The script checks that first and says so instead of
printing a number.  (Were it to run, its waits also spin on a time budget.)
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_SIZE = {'commstime': None, 'ring': 64, 'alt': 2}


def communications(kernel, size, n):
    """Channel communications in one run of the kernel with --n n (warm-up included)."""
    if kernel == 'commstime':
        return 4 * (n + max(10, n // 20))
    if kernel == 'ring':
        return size * (max(1, n // size) + 2)
    if kernel == 'alt':
        return n + max(10, n // 20)
    raise ValueError(kernel)


def interpreter():
    exe = os.path.realpath(sys.executable)
    with open(exe, 'rb') as f:
        if f.read(4) != b'\x7fELF':
            sys.exit('%s is not an ELF binary (a shim?): run this script with the '
                     "interpreter's real path" % exe)
    return exe


def valgrind(argv, outdir, env, cwd, timeout):
    """Run argv under callgrind; return (total Ir over all processes, stdout)."""
    cmd = ['valgrind', '--tool=callgrind', '-q',
           '--callgrind-out-file=%s/callgrind.%%p' % outdir] + argv
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=timeout)
    if p.returncode != 0:
        sys.exit('failed (exit %d): %s\n%s' % (p.returncode, ' '.join(cmd),
                                               p.stderr[-3000:]))
    total = 0
    for path in glob.glob(os.path.join(outdir, 'callgrind.*')):
        with open(path) as f:
            total += sum(int(line.split()[1]) for line in f
                         if line.startswith('totals:'))
    return total, p.stdout


def check_tree(exe, env, tree):
    """The tree's own pycsp and built csp_ext must be the ones imported."""
    code = 'import pycsp, csp_ext; print(pycsp.__file__); print(csp_ext.__file__)'
    p = subprocess.run([exe, '-c', code], cwd=tree, env=env, capture_output=True,
                       text=True)
    files = p.stdout.split()
    if p.returncode != 0 or len(files) != 2 or not all(
            f.startswith(tree + os.sep) for f in files):
        sys.exit('%s: its pycsp and csp_ext do not import from it (build it in place: '
                 'python setup.py build_ext --inplace)\n%s%s'
                 % (tree, p.stdout, p.stderr[-1000:]))


def check_pidfd(exe, env, cwd):
    """The processes backend needs os.pidfd_open; valgrind 3.19 does not implement it."""
    code = 'import os; os.close(os.pidfd_open(os.getpid()))'
    p = subprocess.run(['valgrind', '-q', '--tool=none', exe, '-c', code], cwd=cwd,
                       env=env, capture_output=True, text=True)
    if p.returncode != 0:
        version = subprocess.run(['valgrind', '--version'], capture_output=True,
                                 text=True).stdout.strip()
        sys.exit('the processes backend cannot run under %s: os.pidfd_open fails '
                 'there (%s)' % (version, (p.stderr.strip().splitlines() or ['?'])[-1]))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--tree', default=HERE, help='source tree (default: %(default)s)')
    ap.add_argument('--backend', required=True, help='threads, greenlets, processes')
    ap.add_argument('--kernel', choices=sorted(DEFAULT_SIZE), default='commstime')
    ap.add_argument('--size', type=int, default=None,
                    help='ring: processes (default 64); alt: producers (default 2)')
    ap.add_argument('--n-low', type=int, default=10000)
    ap.add_argument('--n-high', type=int, default=30000)
    ap.add_argument('--timeout', type=float, default=3600, help='seconds per run')
    ap.add_argument('--json', action='store_true', help='print one JSON object')
    args = ap.parse_args(argv)
    if not 200 <= args.n_low < args.n_high:
        ap.error('need 200 <= --n-low < --n-high (kernels.py raises n below 200)')

    tree = os.path.abspath(args.tree)
    size = args.size if args.size is not None else DEFAULT_SIZE[args.kernel]
    exe = interpreter()
    env = dict(os.environ, PYTHONHASHSEED='0', PYTHONPATH=tree)
    check_tree(exe, env, tree)
    if args.backend == 'processes':
        check_pidfd(exe, env, tree)

    runs = []
    for n in (args.n_low, args.n_high):
        argv = [exe, 'benchmarks/kernels.py', '--backend', args.backend,
                '--kernel', args.kernel, '--n', str(n), '--repeats', '1']
        if size is not None:
            argv += ['--sizes', str(size)]
        with tempfile.TemporaryDirectory(prefix='callgrind-') as outdir:
            t0 = time.perf_counter()
            ir, out = valgrind(argv, outdir, env, tree, args.timeout)
            runs.append({'n': n, 'ir': ir, 'comms': communications(args.kernel, size, n),
                         'seconds': round(time.perf_counter() - t0, 1),
                         'kernel_output': json.loads(out.strip().splitlines()[-1])})
    lo, hi = runs
    per = (hi['ir'] - lo['ir']) / (hi['comms'] - lo['comms'])
    commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=tree,
                            capture_output=True, text=True).stdout.strip() or None
    label = args.kernel + ('-%d' % size if size is not None else '')
    if args.json:
        print(json.dumps({'tree': tree, 'commit': commit, 'backend': args.backend,
                          'kernel': args.kernel, 'size': size,
                          'ir_per_communication': round(per, 2), 'runs': runs}))
    else:
        for r in runs:
            print('n=%-7d Ir=%-14d communications=%-8d %6.1f s'
                  % (r['n'], r['ir'], r['comms'], r['seconds']))
        print('%s %s %s (%s): %.2f instructions per communication'
              % (tree, commit, args.backend, label, per))


if __name__ == '__main__':
    main()
