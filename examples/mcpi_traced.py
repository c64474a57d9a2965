"""Monte-Carlo Pi, traced: PyCSP's MCPiTrace on pycsp.common.trace.

montecarlo_pi.py with two more lines: the import of pycsp.common.trace after
the backend's, and TraceInit/TraceQuit around the network (the same jobs, so
the same estimate).  It writes, in the current directory:

- ``mcpi_traced.json``: the trace (open it in ui.perfetto.dev or chrome://tracing);
- with matplotlib, ``mcpi_traced.png`` (the timeline: when each process ran,
  when it waited on which channel, an arrow per message) and
  ``mcpi_traced-network.png`` (who sent how many messages to whom).

    python examples/mcpi_traced.py [threads|processes|greenlets]
"""
import math
import random

from pycsp_import import *  # the backend named on the command line, as in every example
from pycsp.common.trace import *  # after the backend, as in PyCSP
from pycsp.common.trace import render

JOBS = 40
DARTS = 5_000
WORKERS = 4
TRACE = "mcpi_traced.json"


@process
def producer(jobs: ChannelEndWrite[tuple[int, int]], count: int, darts: int) -> None:
    for seed in range(count):
        jobs((seed, darts))
    retire(jobs)


@process
def worker(jobs: ChannelEndRead[tuple[int, int]], results: ChannelEndWrite[tuple[int, int]]) -> None:
    while True:
        seed, darts = jobs()
        rng = random.Random(seed)  # one seed per job: the same estimate on every backend
        hits = sum(rng.random() ** 2 + rng.random() ** 2 < 1.0 for _ in range(darts))
        results((hits, darts))


@process
def consumer(results: ChannelEndRead[tuple[int, int]]) -> tuple[int, int]:
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
