"""The payload kernels of pycsp/bench/kernels.py that issue 15 added: fresh-KIND-SIZE
(a new interpreter, the first --n messages) and the C floor of big messages
(floor_copy.c through --backend c-processes).  Small sizes: these tests check
that the kernels run and report what they say, never their figures.
"""
import json
import shutil

import pytest

from conftest import run_script

KERNELS = """
import sys
from pycsp.bench.kernels import main
main(sys.argv[1:])
"""


def run_kernels(args, tmp_path):
    result = run_script(KERNELS, timeout=120, args=args,
                        env={"PYCSP_BENCH_CACHE": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.mark.timeout(150)
def test_fresh_payload_times_the_given_count_in_a_new_interpreter(tmp_path):
    pytest.importorskip("numpy")
    records = run_kernels(["--backend", "processes", "--kernel", "payload", "--sizes",
                           "fresh-bytes-3M,fresh-numpy-3M", "--n", "3", "--repeats", "2"],
                          tmp_path)
    assert [r["size"] for r in records] == ["fresh-bytes-3M", "fresh-numpy-3M"]
    for r in records:
        assert r["n"] == 3 and r["unit"] == "GB/s"
        assert len(r["values"]) == 2 and all(v > 0 for v in r["values"])


@pytest.mark.timeout(150)
@pytest.mark.skipif(not (shutil.which("cc") or shutil.which("gcc")), reason="no C compiler")
@pytest.mark.parametrize("floor", ["c-processes", "c-processes:vmread"])
def test_c_floor_of_big_messages_runs_long_lived_and_fresh(floor, tmp_path):
    sizes = ["bytes-3M", "numpy-3M", "fresh-bytes-3M", "fresh-numpy-3M"]
    records = run_kernels(["--backend", floor, "--kernel", "payload", "--sizes",
                           ",".join(sizes), "--n", "6", "--repeats", "1"], tmp_path)
    assert [(r["backend"], r["size"], r["n"]) for r in records] == [
        (floor, s, 6) for s in sizes]
    assert all(r["median"] > 0 for r in records)


def test_c_floor_of_big_messages_refuses_an_unknown_mode():
    from pycsp.bench import kernels
    with pytest.raises(ValueError, match="payload mode is one of"):
        kernels.make_runner("c-processes:spin", "payload")
