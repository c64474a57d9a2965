"""Monte-Carlo Pi by a worker farm.

A dispatcher hands out JOBS jobs (a seed and a number of samples) on one
channel shared by WORKERS workers, then retires.  A worker throws its job's
samples with random.Random(seed), so a job's count of hits does not depend on
which worker ran it; it writes (seed, hits) to the collector and, when the jobs
channel is retired, retires (by propagation).  The collector sums until every
worker has retired.

Usage: python montecarlo_pi.py <backend>
"""
import importlib
import random
import sys
from fractions import Fraction

csp = importlib.import_module("pycsp." + sys.argv[1])

WORKERS = 4
JOBS = 16
SAMPLES = 20_000


@csp.process
def dispatcher(cout, jobs, samples):
    for seed in range(jobs):
        cout((seed, samples))
    csp.retire(cout)


@csp.process
def worker(jobs_in, results_out):
    while True:
        seed, samples = jobs_in()
        rng = random.Random(seed)
        hits = 0
        for _ in range(samples):
            x = rng.random()
            y = rng.random()
            if x * x + y * y <= 1.0:
                hits += 1
        results_out((seed, samples, hits))


@csp.process
def collector(cin):
    seeds, samples, hits = [], 0, 0
    try:
        while True:
            seed, n, h = cin()
            seeds.append(seed)
            samples += n
            hits += h
    except csp.ChannelRetireException:
        return sorted(seeds), samples, hits


if __name__ == "__main__":
    jobs, results = csp.Channel("jobs"), csp.Channel("results")
    out = csp.Parallel(
        dispatcher(-jobs, JOBS, SAMPLES),
        [worker(+jobs, -results) for _ in range(WORKERS)],
        collector(+results),
    )
    seeds, samples, hits = out[-1]
    print("jobs", seeds)
    print("samples", samples)
    print("hits", hits)
    print("pi", Fraction(4 * hits, samples), float(Fraction(4 * hits, samples)))
