"""The floors of processes beside the kernels (pycsp/bench/kernels.py): the C
network (floor_processes.c) as a one-place buffer and, with a MODE-rv, as a
rendezvous; and the Python floor (py-floor, floor_pyext.c compiled at run time)
running the kernels' own Commstime and ring.  Tiny fixed counts: the shape of the
output is checked, never a figure."""
import json
import shutil

import pytest

from conftest import run_script

pytestmark = pytest.mark.skipif(not (shutil.which("cc") or shutil.which("gcc")),
                                reason="the floors are compiled at run time")

RUN_KERNELS = """
import sys
from pycsp.bench.kernels import main
main(sys.argv[1:])
"""


def run_kernels(*args, timeout=90):
    return run_script(RUN_KERNELS, args=args, timeout=timeout)


def records_of(proc):
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("floor", ["c-processes:hybrid", "c-processes:hybrid-rv",
                                     "c-processes:futex-rv", "py-floor", "py-floor:hybrid-rv",
                                     "py-floor:futex"])
def test_floor_runs_commstime_and_ring(floor):
    records = records_of(run_kernels("--backend", floor, "--kernel", "commstime", "--n", "300",
                                     "--repeats", "1"))
    records += records_of(run_kernels("--backend", floor, "--kernel", "ring", "--sizes", "2,5",
                                      "--n", "300", "--repeats", "1"))
    assert [(r["kernel"], r["size"]) for r in records] == [("commstime", None), ("ring", 2),
                                                           ("ring", 5)]
    assert all(r["median"] > 0 for r in records), records


@pytest.mark.timeout(120)
def test_python_floor_refuses_what_its_channel_cannot_carry():
    proc = run_kernels("--backend", "py-floor", "--kernel", "commstime", "--sizes", "tuple",
                       "--n", "300", "--repeats", "1")
    assert proc.returncode != 0
    assert "commstime carries ints only" in proc.stderr
    proc = run_kernels("--backend", "py-floor:sometimes", "--kernel", "ring", "--n", "300")
    assert proc.returncode != 0
    assert "mode is one of" in proc.stderr
