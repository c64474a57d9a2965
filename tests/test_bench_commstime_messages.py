"""The benchmark kernels' Commstime with tuple messages (pycsp/bench/kernels.py,
``--kernel commstime --sizes int,tuple``): it runs on every backend and peer that
carries Python objects, and the C floor, whose channels carry one word, refuses
it.  Tiny fixed counts: the shape of the output is checked, never a figure."""
import json

import pytest

from conftest import run_script

RUN_KERNELS = """
import sys
from pycsp.bench.kernels import main
main(sys.argv[1:])
"""


def run_kernels(*args, timeout=90):
    return run_script(RUN_KERNELS, args=args, timeout=timeout)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("peer", ["threads", "greenlets", "processes", "simplequeue",
                                     "mp-pipe", "asyncio"])
def test_commstime_sends_ints_or_tuples(peer):
    proc = run_kernels("--backend", peer, "--kernel", "commstime", "--sizes", "int,tuple",
                       "--n", "300", "--repeats", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert [r["size"] for r in records] == ["int", "tuple"]
    assert all(r["kernel"] == "commstime" and r["unit"] == "us/comm" and r["median"] > 0
               for r in records), records


@pytest.mark.timeout(60)
def test_plain_commstime_is_unchanged_and_c_floor_refuses_tuples():
    proc = run_kernels("--backend", "threads", "--kernel", "commstime", "--n", "300",
                       "--repeats", "1")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1])["size"] is None
    proc = run_kernels("--backend", "c-processes", "--kernel", "commstime", "--sizes", "tuple",
                       "--n", "300", "--repeats", "1")
    assert proc.returncode != 0
    assert "commstime carries ints only" in proc.stderr
