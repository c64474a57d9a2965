"""Conformance: classic CSP programs give the same output on every backend.

Each program is a standalone script in tests/conformance/ that takes the backend
name as argv[1] and prints its results.  Here every script runs in a fresh Python
per backend (and, where a spawn start is affordable, once more on processes with
PYCSP_START_METHOD=spawn); its stdout must equal the text that this file computes
on its own (primes by trial division, Commstime's sum by formula, ...), its exit
code must be 0 and its stderr must hold no traceback.

A script that hangs is stopped after its timeout (it runs in its own process
group, which is then killed whole) and the test fails showing its stdout, its
stderr and the Python stack of every process of it (by py-spy when installed,
else by faulthandler on SIGABRT).
"""
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from fractions import Fraction

import pytest

from conftest import PROGRAM_BACKENDS, ROOT, _child_env

PROGRAMS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "conformance")

SPAWN = "processes-spawn"

MAX_DUMPS = 8    # stacks shown for a hung program (the first processes of its group)


def variants(spawn=False):
    """The backends a program runs on, as pytest params with readable ids:
    threads, greenlets, processes and (if ``spawn``) processes-spawn."""
    names = list(PROGRAM_BACKENDS)
    if spawn and "processes" in PROGRAM_BACKENDS:
        names.append(SPAWN)
    return pytest.mark.parametrize("variant", names, ids=str)


def _no_core_dumps():
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def program_env(variant):
    """Environment of a program's Python: pycsp and csp_ext from this checkout."""
    env = _child_env()
    # This checkout first, whatever else is installed (an editable install of
    # another tree would otherwise win when the script's own directory is sys.path[0]).
    env["PYTHONPATH"] = os.pathsep.join([ROOT] + [p for p in env["PYTHONPATH"].split(os.pathsep) if p])
    env["PYTHONFAULTHANDLER"] = "1"
    env["PYTHONUNBUFFERED"] = "1"   # a hung program still shows what it printed
    env.pop("PYCSP_START_METHOD", None)
    if variant == SPAWN:
        env["PYCSP_START_METHOD"] = "spawn"
    return env


def run_program(name, variant, timeout):
    """Run tests/conformance/<name>.py for ``variant``; return (stdout, stderr, rc).

    Fails the test, with all output, if the program does not end in ``timeout`` s.
    """
    backend = "processes" if variant == SPAWN else variant
    env = program_env(variant)
    proc = subprocess.Popen(
        [sys.executable, os.path.join(PROGRAMS, name + ".py"), backend],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
        start_new_session=True,        # its own process group: a hang is killed whole
        preexec_fn=_no_core_dumps,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
        hung = False
    except subprocess.TimeoutExpired:
        hung = True
        stacks = _dump_stacks(proc.pid)
        _kill_group(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    finally:
        # Whatever is left of its tree (e.g. spawned processes of a failed run).
        _kill_group(proc.pid, signal.SIGKILL)
    if hung:
        pytest.fail(
            f"{name}.py {variant}: no exit within {timeout} s (hang); killed.\n"
            f"--- stdout ({len(out.splitlines())} lines) ---\n{_head_and_tail(out)}\n"
            f"--- stderr ---\n{_head_and_tail(err, 200)}\n"
            f"--- stacks at the timeout ---\n{stacks}",
            pytrace=False,
        )
    return out, err, proc.returncode


def _kill_group(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_pids(pgid):
    """Pids of the live processes in process group ``pgid`` (from /proc)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()   # after "pid (comm) "
        if int(fields[2]) == pgid:                    # state, ppid, pgrp
            pids.append(int(entry))
    return sorted(pids)


def _dump_stacks(pgid):
    """Python stacks of every process of a hung program, for the failure report:
    py-spy's if it is installed, else faulthandler's (SIGABRT, to stderr)."""
    pyspy = shutil.which("py-spy")
    if pyspy is None:
        _kill_group(pgid, signal.SIGABRT)     # PYTHONFAULTHANDLER=1: stacks to stderr
        time.sleep(1.0)
        return "(py-spy not installed: faulthandler's dumps, if any, are on stderr)"
    dumps = []
    pids = _group_pids(pgid)
    deadline = time.monotonic() + 20
    for pid in pids[:MAX_DUMPS]:
        if time.monotonic() > deadline:
            break
        try:
            r = subprocess.run([pyspy, "dump", "--pid", str(pid)], capture_output=True,
                               text=True, timeout=15)
            dumps.append(r.stdout.strip() or r.stderr.strip())
        except subprocess.TimeoutExpired:
            dumps.append(f"py-spy dump --pid {pid}: timed out")
    if len(pids) > len(dumps):
        dumps.append(f"({len(pids) - len(dumps)} more processes not shown)")
    return "\n\n".join(dumps) or "(no process left)"


def _head_and_tail(text, n=60):
    """The first and the last n/2 lines: a failure's cause is often what came
    first (one process's error, then every other process's consequence)."""
    lines = text.splitlines()
    if len(lines) <= n:
        return text
    half = n // 2
    return "\n".join(lines[:half] + [f"[... {len(lines) - 2 * half} lines ...]"] + lines[-half:])


def check(name, variant, expected, timeout):
    """Run the program and compare its output with ``expected`` exactly."""
    out, err, rc = run_program(name, variant, timeout)
    problems = []
    if rc != 0:
        problems.append(f"exit code {rc}")
    if "Traceback" in err:
        problems.append("traceback on stderr")
    if out != expected:
        got, want = out.splitlines(), expected.splitlines()
        first = next((i for i, (g, w) in enumerate(zip(got, want)) if g != w),
                     min(len(got), len(want)))
        problems.append(
            f"stdout differs: {len(got)} lines, expected {len(want)}; "
            f"first difference at line {first + 1}: "
            f"got {got[first] if first < len(got) else '<end>'!r}, "
            f"expected {want[first] if first < len(want) else '<end>'!r}"
        )
    if problems:
        pytest.fail(
            f"{name}.py {variant}: " + "; ".join(problems) + "\n"
            f"--- stdout ---\n{_head_and_tail(out)}\n--- stderr ---\n{_head_and_tail(err, 200)}",
            pytrace=False,
        )


def lines(*items):
    return "".join(f"{item}\n" for item in items)


@pytest.mark.timeout(60)
def test_programs_use_this_checkout():
    """The programs import the pycsp and csp_ext that this test run imports (a
    script's own folder comes first on its path: another install could win)."""
    import csp_ext
    import pycsp

    r = subprocess.run(
        [sys.executable, "-c", "import csp_ext, pycsp; print(csp_ext.__file__); print(pycsp.__file__)"],
        capture_output=True, text=True, env=program_env("threads"), cwd=PROGRAMS, timeout=30,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [csp_ext.__file__, pycsp.__file__], r.stdout


# --------------------------------------------------------------------------- 1. sieve


def primes_below(limit):
    """By trial division."""
    return [n for n in range(2, limit) if all(n % d for d in range(2, int(n ** 0.5) + 1))]


@pytest.mark.timeout(100)
@variants(spawn=False)   # 303 spawn starts one after another (25-40 s here): over budget
def test_sieve_by_spawn_chain(variant):
    primes = primes_below(2000)
    assert len(primes) == 303
    check("sieve", variant, lines(*primes, f"primes below 2000 = {len(primes)}"), timeout=30)


# --------------------------------------------------------------------------- 2. Commstime


@pytest.mark.timeout(100)
@variants(spawn=True)
def test_commstime(variant):
    n = 5000
    expected = lines(f"count {n}", f"sum {n * (n - 1) // 2}", "first 0", f"last {n - 1}",
                     "others [None, None, None]")
    check("commstime", variant, expected, timeout=20 if variant != SPAWN else 40)


# --------------------------------------------------------------------------- 3. token ring


@pytest.mark.timeout(100)
@variants(spawn=True)
def test_token_ring(variant):
    nodes, rounds = 8, 100
    # Walk the token round the ring: node 0 writes 0, every node passes v + 1 on.
    seen = [[] for _ in range(nodes)]
    v = 0
    for _ in range(rounds):
        for k in list(range(1, nodes)) + [0]:
            seen[k].append(v)
            v += 1
    expected = lines(*(f"node {k}: {len(s)} tokens, sum {sum(s)}" for k, s in enumerate(seen)))
    check("token_ring", variant, expected, timeout=20 if variant != SPAWN else 40)


# --------------------------------------------------------------------------- 4. philosophers


@pytest.mark.timeout(100)
@variants(spawn=True)
def test_dining_philosophers(variant):
    n, meals = 5, 30
    expected = lines(
        *(f"philosopher {i} {meals}" for i in range(n)),
        *(f"fork {j} {2 * meals} {sorted({j, (j - 1) % n})}" for j in range(n)),
        f"footman {n * meals} 0 True",
    )
    check("philosophers", variant, expected, timeout=20 if variant != SPAWN else 40)


# --------------------------------------------------------------------------- 5. termination


@pytest.mark.timeout(100)
@variants(spawn=True)
def test_termination_by_poison_and_retire(variant):
    producers, take, count = 4, 1000, 500
    out = [f"poison: taken {take} in order True",
           f"poison: others returned {[None] * (producers + 1)}"]
    for buffer in (0, 10):
        out.append(f"retire (buffer={buffer}): producers {[('done', k) for k in range(producers)]}")
        out.append(f"retire (buffer={buffer}): stage None")
        out += [f"retire (buffer={buffer}): from {k}: {count} messages, "
                f"sum {count * (count - 1) // 2}, in order True" for k in range(producers)]
    check("termination", variant, lines(*out), timeout=20 if variant != SPAWN else 40)


# --------------------------------------------------------------------------- 6. @io sleeps


@pytest.mark.timeout(100)
@variants(spawn=True)
def test_io_sleeps_overlap(variant):
    # The program times its Parallel of sleeps of 0..9 s itself (under 12 s: they
    # overlap; in sequence they would take 45 s).
    check("io_sleeps", variant,
          lines(f"results {list(range(10))}", "overlapped: under 12 s"), timeout=40)


# --------------------------------------------------------------------------- 7. Monte-Carlo Pi


@pytest.mark.timeout(100)
@variants(spawn=True)
def test_montecarlo_pi_farm(variant):
    jobs, samples = 16, 20_000
    hits = 0
    for seed in range(jobs):
        rng = random.Random(seed)
        for _ in range(samples):
            x, y = rng.random(), rng.random()
            hits += x * x + y * y <= 1.0
    pi = Fraction(4 * hits, jobs * samples)
    expected = lines(f"jobs {list(range(jobs))}", f"samples {jobs * samples}", f"hits {hits}",
                     f"pi {pi} {float(pi)}")
    check("montecarlo_pi", variant, expected, timeout=30 if variant != SPAWN else 40)


# --------------------------------------------------------------------------- 8. return values


@pytest.mark.timeout(100)
@variants(spawn=True)
def test_return_values(variant):
    sq = [i * i for i in range(6)]

    def nested(n):
        return (sum(i * i for i in range(n)), [n * n, (n + 1) ** 2, (n + 2) ** 2])

    records = [{"tag": t, "pair": (t, [t, t])} for t in "abcde"]
    expected = lines(
        f"parallel {sq}",
        f"flattened {[1, 4, 9, 16]}",
        f"times {[49, 49, 49]}",
        f"none {[None, None]}",
        "empty [] []",
        f"nested {[nested(2), nested(3)]}",
        f"sequence {records}",
        f"order {[list('abcde')]}",
        f"seq flattened {[4, 9, 16]}",
    )
    check("return_values", variant, expected, timeout=20 if variant != SPAWN else 50)


# --------------------------------------------------------------------------- 9. Spawn and return


@pytest.mark.timeout(100)
@variants(spawn=True)
def test_spawned_writer_outlives_its_spawner(variant):
    n = 200
    result = ["spawner returned", (n, n * (n - 1) // 2)]
    expected = lines(f"counted {result}", f"until retired {result}", "shutdown done")
    check("spawn_return", variant, expected, timeout=15 if variant != SPAWN else 30)
