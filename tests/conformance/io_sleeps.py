"""Ten @io sleeps of 0..9 s in one Parallel: they overlap, so the whole takes
about 9 s (the check allows anything under 12 s).

Usage: python io_sleeps.py <backend>
"""
import importlib
import sys
import time

csp = importlib.import_module("pycsp." + sys.argv[1])


@csp.io
def nap(seconds):
    time.sleep(seconds)
    return seconds


@csp.process
def sleeper(seconds):
    return nap(seconds)


if __name__ == "__main__":
    start = time.monotonic()
    results = csp.Parallel(*[sleeper(s) for s in range(10)])
    elapsed = time.monotonic() - start
    print("results", results)
    if elapsed < 12:
        print("overlapped: under 12 s")
    else:
        print(f"overlapped: NO, took {elapsed:.1f} s")
