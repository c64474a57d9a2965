"""Monte-Carlo Pi, traced: PyCSP's MCPiTrace on pycsp.common.trace.

A producer hands out JOBS jobs (a seed and a number of darts); WORKERS copies
of the worker count the darts that land in the quarter circle; the consumer
adds up.  The program is the untraced one with two more lines: the import of
pycsp.common.trace after the backend's, and TraceInit/TraceQuit around the
network.  It writes, in the current directory:

- ``mcpi_traced.json``: the trace (open it in ui.perfetto.dev or chrome://tracing);
- with matplotlib, ``mcpi_traced.png`` (the timeline: when each process ran,
  when it waited on which channel, an arrow per message) and
  ``mcpi_traced-network.png`` (who sent how many messages to whom).

    python examples/mcpi_traced.py [threads|processes|greenlets]
"""
import importlib
import math
import os
import random
import sys

# Run from a checkout, the example uses that checkout's pycsp.
_checkout = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.exists(os.path.join(_checkout, "pycsp", "__init__.py")) and _checkout not in sys.path:
    sys.path.insert(0, _checkout)

BACKENDS = ("threads", "processes", "greenlets")
BACKEND = sys.argv[1] if len(sys.argv) > 1 else "threads"
if BACKEND not in BACKENDS:
    sys.exit(f"usage: python {sys.argv[0]} [{'|'.join(BACKENDS)}]")
_backend = importlib.import_module("pycsp." + BACKEND)
globals().update((name, getattr(_backend, name)) for name in _backend.__all__)

from pycsp.common.trace import *  # noqa: E402,F403 - after the backend, as in PyCSP
from pycsp.common.trace import render  # noqa: E402

JOBS = 20
DARTS = 20_000
WORKERS = 4
TRACE = "mcpi_traced.json"


@process
def producer(jobs, count, darts):
    for seed in range(count):
        jobs((seed, darts))
    retire(jobs)


@process
def worker(jobs, results):
    while True:
        seed, darts = jobs()
        rng = random.Random(seed)  # one seed per job: the same estimate on every backend
        hits = sum(rng.random() ** 2 + rng.random() ** 2 < 1.0 for _ in range(darts))
        results((hits, darts))


@process
def consumer(results):
    hits = thrown = 0
    try:
        while True:
            job_hits, job_darts = results()
            hits += job_hits
            thrown += job_darts
    except ChannelRetireException:
        return hits, thrown


if __name__ == "__main__":
    TraceInit(TRACE)
    jobs, results = Channel("jobs"), Channel("results")
    *_, (hits, thrown) = Parallel(
        producer(-jobs, JOBS, DARTS),
        WORKERS * worker(+jobs, -results),
        consumer(+results),
    )
    TraceQuit()
    estimate = 4 * hits / thrown
    print(f"Monte-Carlo Pi on {BACKEND}, traced: {thrown} darts in {JOBS} jobs, {WORKERS} workers")
    print(f"{hits} landed in the quarter circle: pi is about {estimate:.6f} "
          f"(off by {abs(estimate - math.pi):.6f})")
    print(f"trace: {TRACE} (open it in ui.perfetto.dev or chrome://tracing)")
    try:
        timeline, network = render(TRACE)
    except ImportError as exc:
        print(f"no pictures: {exc}")
    else:
        print(f"pictures: {timeline} (timeline), {network} (network)")
