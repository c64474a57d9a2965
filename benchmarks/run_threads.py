#!/usr/bin/env python3
"""Threads benchmark: pycsp.threads side by side with its peers, in one run.

A thin wrapper: the same as ``python benchmarks/run.py --backend threads ...``
(pycsp.threads, queue.SimpleQueue + threading.Thread, PyCSP 0.9.2 threads and the
C hand-off floor; Commstime and token rings 2..256; medians over interleaved rounds).

    python benchmarks/run_threads.py            # full run
    python benchmarks/run_threads.py --quick
    python benchmarks/run_threads.py --json     # also writes out/threads.json

Options as run.py: --rounds, --target, --ring-sizes, --timeout, --no-092,
--no-floor, --json [PATH].
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import run  # noqa: E402

if __name__ == '__main__':
    sys.exit(run.main(['--backend', 'threads'] + sys.argv[1:], prog='run_threads.py'))
