"""examples/: each classic program runs on every backend and prints what it should.

Each example runs as a user runs it, ``python examples/NAME.py BACKEND``, in a
fresh Python; its output must equal the text computed here on its own (primes
by trial division, Fibonacci by addition, the Mandelbrot picture point by
point in plain Python, ...), apart from lines of timing figures, which are
only checked for their form.  It must exit 0 with nothing on stderr.
"""
import math
import os
import random
import re
import subprocess
import sys

import pytest

from conftest import PROGRAM_BACKENDS, ROOT, _child_env

EXAMPLES = os.path.join(ROOT, "examples")
SPAWN = "processes-spawn"


def run_example(name, *args, env=None, timeout=60):
    """Run examples/<name>.py with ``args``; return (stdout, stderr, exit code).

    A hang fails the test with what the program printed (it runs in its own
    process group, killed whole)."""
    full_env = _child_env()
    full_env["PYTHONPATH"] = os.pathsep.join([ROOT, full_env["PYTHONPATH"]])
    full_env["PYTHONUNBUFFERED"] = "1"
    full_env.pop("PYCSP_START_METHOD", None)
    full_env.update(env or {})
    proc = subprocess.Popen([sys.executable, os.path.join(EXAMPLES, name + ".py"), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=full_env, cwd=ROOT, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        out, err = proc.communicate()
        pytest.fail(f"{name} {args} did not end in {timeout}s\n--- stdout ---\n{out}\n"
                    f"--- stderr ---\n{err}")
    return out, err, proc.returncode


def run_clean(name, variant):
    """stdout of the example on ``variant`` (a backend, or processes-spawn),
    which must exit 0 with an empty stderr."""
    backend, env = variant, None
    if variant == SPAWN:
        backend, env = "processes", {"PYCSP_START_METHOD": "spawn"}
    out, err, code = run_example(name, backend, env=env, timeout=120 if env else 60)
    assert code == 0 and err == "", f"exit {code}\n--- stdout ---\n{out}\n--- stderr ---\n{err}"
    return out


def on_every_backend(spawn=False):
    names = list(PROGRAM_BACKENDS)
    if spawn and "processes" in PROGRAM_BACKENDS:
        names.append(SPAWN)
    return pytest.mark.parametrize("variant", names, ids=str)


def backend_of(variant):
    return "processes" if variant == SPAWN else variant


# ---------------------------------------------------------------------- programs


@pytest.mark.timeout(90)
@on_every_backend()
def test_commstime(variant):
    lines = run_clean("commstime", variant).splitlines()
    assert lines[:2] == [
        f"Commstime on {variant}: 10000 cycles of 4 communications",
        f"the consumer received 1 to 10000: their sum is {sum(range(1, 10001))}",
    ]
    assert len(lines) == 3 and re.fullmatch(r"time per communication: \d+\.\d\d µs", lines[2])


@pytest.mark.timeout(90)
@on_every_backend()
def test_token_ring(variant):
    assert run_clean("token_ring", variant) == (
        f"a ring of 32 processes on {variant}, 100 rounds\n"
        f"token = {32 * 100} (32 x 100 hops, each adding 1)\n")


@pytest.mark.timeout(90)
@on_every_backend()
def test_sieve(variant):
    primes = [n for n in range(2, 300) if all(n % d for d in range(2, math.isqrt(n) + 1))]
    rows = [" ".join(f"{p:3d}" for p in primes[i:i + 10]) for i in range(0, len(primes), 10)]
    assert run_clean("sieve", variant) == "\n".join([
        f"{len(primes)} primes below 300, found by a chain of {len(primes) + 1} sieves "
        f"on {variant}:", *rows]) + "\n"


@pytest.mark.timeout(90)
@on_every_backend()
def test_dining_philosophers(variant):
    assert run_clean("dining_philosophers", variant) == "\n".join([
        f"5 dining philosophers on {variant}",
        *(f"philosopher {i} ate 20 times" for i in range(5)),
        *(f"fork {i} was picked up 40 times" for i in range(5)),
        "never more than 4 seated at once: yes",
    ]) + "\n"


@pytest.mark.timeout(150)
@on_every_backend(spawn=True)
def test_fibonacci_with_plugnplay(variant):
    numbers = [0, 1]
    while len(numbers) < 20:
        numbers.append(numbers[-2] + numbers[-1])
    assert numbers[:10] == [0, 1, 1, 2, 3, 5, 8, 13, 21, 34]
    assert run_clean("fibonacci", variant) == (
        f"the first 20 Fibonacci numbers, on {backend_of(variant)}:\n"
        + " ".join(map(str, numbers)) + " ...\n")


@pytest.mark.timeout(150)
@on_every_backend(spawn=True)
def test_montecarlo_pi(variant):
    # Every job's darts come from its own seed: the total cannot depend on
    # which worker took which job, only on every job being counted once.
    hits = 0
    for seed in range(40):
        rng = random.Random(seed)
        hits += sum(rng.random() ** 2 + rng.random() ** 2 < 1.0 for _ in range(5000))
    estimate = 4 * hits / 200_000
    assert abs(estimate - math.pi) < 0.02
    assert run_clean("montecarlo_pi", variant) == (
        f"Monte-Carlo Pi on {backend_of(variant)}: 200000 darts in 40 jobs, 4 workers\n"
        f"{hits} landed in the quarter circle: pi is about {estimate:.6f} "
        f"(off by {abs(estimate - math.pi):.6f})\n")


def mandelbrot_text(width=72, height=28, max_steps=60, x=(-2.2, 0.8), y=(1.2, -1.2)):
    """The example's picture, point by point in plain Python floats (the same
    operations in the same order as the example's numpy, so the same bits)."""
    shades = " .:-=+*%#"
    lines, inside = [], 0
    for row in range(height):
        ci = y[0] + row * ((y[1] - y[0]) / (height - 1))
        chars = []
        for col in range(width):
            cr = x[0] + col * ((x[1] - x[0]) / (width - 1))
            zr = zi = 0.0
            steps = max_steps
            for step in range(max_steps):
                zr2, zi2 = zr * zr, zi * zi
                if zr2 + zi2 > 4.0:
                    steps = step
                    break
                zi = 2.0 * zr * zi + ci
                zr = zr2 - zi2 + cr
            if steps == max_steps:
                inside += 1
                chars.append("@")
            else:
                chars.append(shades[math.isqrt(steps * len(shades) ** 2 // max_steps)])
        lines.append("".join(chars).rstrip())
    return lines, inside


@pytest.mark.timeout(90)
@on_every_backend()
def test_mandelbrot_farm(variant):
    # The example needs numpy, one of the test extras (pyproject.toml).
    picture, inside = mandelbrot_text()
    assert 300 < inside < 600 and any("@" in line for line in picture)
    assert run_clean("mandelbrot", variant) == "\n".join([
        *picture,
        f"72 x 28 points, at most 60 steps each, rows computed by 4 workers on {variant}",
        f"{inside} points in the set",
    ]) + "\n"


# ------------------------------------------------------------------- the command line


@pytest.mark.timeout(60)
def test_an_example_runs_on_threads_by_default():
    out, err, code = run_example("fibonacci")
    assert code == 0 and err == ""
    assert out.startswith("the first 20 Fibonacci numbers, on threads:\n")


@pytest.mark.timeout(60)
def test_an_unknown_backend_gets_the_usage():
    out, err, code = run_example("token_ring", "parallel")
    assert code != 0 and out == ""
    assert "usage: python " in err and "token_ring.py [threads|processes|greenlets]" in err
