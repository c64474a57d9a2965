"""Monte-Carlo Pi: a farm of workers throws random darts at a square.

The producer hands out JOBS jobs (a seed and a number of darts); WORKERS
copies of the worker (``WORKERS * worker(...)``) count the darts that land in
the quarter circle; the consumer adds up.  Every job has its own seed, so the
estimate is the same whichever worker takes which job.  The producer's
retirement ends the workers, and theirs the consumer.

    python examples/montecarlo_pi.py [threads|processes|greenlets]
"""
import math
import random

from pycsp_import import *

JOBS = 40
DARTS = 5_000
WORKERS = 4


@process
def producer(jobs: ChannelEndWrite[tuple[int, int]], count: int, darts: int) -> None:
    for seed in range(count):
        jobs((seed, darts))
    retire(jobs)


@process
def worker(jobs: ChannelEndRead[tuple[int, int]], results: ChannelEndWrite[tuple[int, int]]) -> None:
    while True:
        seed, darts = jobs()
        rng = random.Random(seed)
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
    jobs, results = Channel("jobs"), Channel("results")
    *_, (hits, thrown) = Parallel(
        producer(-jobs, JOBS, DARTS),
        WORKERS * worker(+jobs, -results),
        consumer(+results),
    )
    estimate = 4 * hits / thrown
    print(f"Monte-Carlo Pi on {BACKEND}: {thrown} darts in {JOBS} jobs, {WORKERS} workers")
    print(f"{hits} landed in the quarter circle: pi is about {estimate:.6f} "
          f"(off by {abs(estimate - math.pi):.6f})")
