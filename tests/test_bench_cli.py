"""python -m pycsp.bench, the README's main command: what it prints and saves.

The demo runs in a subprocess with tiny sizes and work (--target, --sizes,
--work), so these tests check its shape, never its figures or its speed.
"""
import json
import os
import re

import pytest

from conftest import _child_env, run_script

RUN_DEMO = """
import sys
from pycsp.bench.__main__ import main
sys.exit(main(sys.argv[1:]))
"""
HIDE_MATPLOTLIB = """
import sys
sys.modules["matplotlib"] = None        # as if matplotlib were not installed
from pycsp.bench.__main__ import main
sys.exit(main(sys.argv[1:]))
"""
# A sitecustomize that every Python started with it on PYTHONPATH runs first:
# the demo's subprocesses (the import probe, the kernels) then lack greenlet.
HIDE_GREENLET_EVERYWHERE = 'import sys\nsys.modules["greenlet"] = None\n'

TINY = ["--target", "0.002", "--sizes", "ring=2,3", "--sizes", "tokens=1,2",
        "--sizes", "pi=1,2,5", "--work", "pi=2000",
        "--sizes", "payload=numpy-1K,numpy-64K"]
FIGURE = r"[0-9][0-9.]*(e-?\d+)?"
# a median with its min-max range, or alone when every round measured the same
CELL = re.compile(r"^%s(x)?( \(%s-%s(x)?\))?$" % (FIGURE, FIGURE, FIGURE))
BACKENDS = ("pycsp.threads", "pycsp.greenlets", "pycsp.processes")


def run_demo(args, tmp_path, *, source=RUN_DEMO, timeout=240, env=None):
    result = run_script(source, timeout=timeout, env=env,
                        args=[*args, "--plots", str(tmp_path / "plots")])
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def headline_rows(stdout):
    """The headline table: {row label: [cells]}, split on runs of 2+ spaces."""
    lines = stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if line.lstrip().startswith(BACKENDS[0]))
    assert lines[head].split() == [*BACKENDS, "pycsp", "faster", "by"]
    rows = {}
    for line in lines[head + 1:]:
        if not line.strip():
            break
        label, *cells = re.split(r"\s{2,}", line.strip())
        rows[label] = cells
    return rows


@pytest.fixture(scope="module")
def details_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bench")
    result = run_demo([*TINY, "--details", "--json", str(tmp / "bench.json")], tmp)
    return result, tmp


@pytest.mark.timeout(300)
def test_headline_has_every_backend_and_peer_with_medians_and_ranges(details_run):
    result, _ = details_run
    assert "Medians of 3 interleaved rounds" in result.stdout
    rows = headline_rows(result.stdout)
    commstime = next(label for label in rows if label.startswith("Commstime"))
    assert len(rows[commstime]) == 3
    for peer in ("queue.SimpleQueue + threads", "asyncio.Queue (one thread)",
                 "multiprocessing.Pipe"):
        figure, ratio = next(cells for label, cells in rows.items() if label == peer)
        assert CELL.match(figure), (peer, figure)
        assert re.match(r"^%sx$" % FIGURE, ratio), (peer, ratio)
    pi = next(label for label in rows if label.startswith("Monte-Carlo Pi, 1 worker"))
    for label in (commstime, pi, "speed-up, 2 workers", "speed-up, 5 workers"):
        assert len(rows[label]) == 3 and all(CELL.match(c) for c in rows[label]), \
            (label, rows[label])
    payload = rows["64 KiB numpy array, GB/s"]
    assert payload[:2] == ["by reference", "by reference"] and CELL.match(payload[2])
    assert "FAILED" not in result.stdout


@pytest.mark.timeout(300)
def test_progress_goes_to_stderr_one_line_per_job_and_round(details_run):
    result, tmp = details_run
    progress = [line for line in result.stderr.splitlines() if line.startswith("[")]
    jobs = json.loads((tmp / "bench.json").read_text())["values"]
    assert len(progress) == 3 * len(jobs)
    assert re.match(r"^\[ *1/%d +\d+s\] commstime pycsp\.threads round 1/3$"
                    % len(progress), progress[0]), progress[0]
    assert progress[-1].endswith("round 3/3")
    assert not any(line.startswith("[") for line in result.stdout.splitlines())


@pytest.mark.timeout(300)
def test_four_plots_are_saved_and_named(details_run):
    result, tmp = details_run
    for name in ("ring.png", "tokens.png", "pi.png", "payload.png"):
        path = tmp / "plots" / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert re.search(r"^  %s +\S" % re.escape(name), result.stdout, re.M), name
    assert "Plots saved in %s" % (tmp / "plots") in result.stdout


@pytest.mark.timeout(300)
def test_details_prints_the_detailed_tables_of_the_same_run(details_run):
    result, tmp = details_run
    details = result.stdout.split("Detailed tables of this run (--details):")[1]
    for table in ("commstime (us/comm)", "ring (us/hop)", "tokens (us/hop)", "pi (s)",
                  "payload (GB/s)", "pi speed-up"):
        assert table in details, table
    ring2 = next(line for line in details.splitlines() if line.startswith("ring-2 "))
    assert len(ring2.split()) == 4          # the row name and three backends
    data = json.loads((tmp / "bench.json").read_text())
    assert data["rounds"] == 3
    for job in data["values"]:
        for size, values in job["values"].items():
            assert len(values) == 3, (job["backend"], job["kernel"], size)


@pytest.mark.timeout(200)
def test_pycsp092_not_given_or_missing_is_listed_as_not_available(tmp_path):
    args = ["--kernels", "commstime", "--target", "0.002", "--no-plots"]
    result = run_demo(args, tmp_path, env={"PYCSP092_PYTHON": ""})
    rows = headline_rows(result.stdout)
    assert rows["PyCSP 0.9.2"] == [
        "not available: no interpreter given (--pycsp092 PYTHON)"]
    assert "add --details (this run's tables) or --full" in result.stdout

    missing = str(tmp_path / "no-such-python")
    result = run_demo([*args, "--pycsp092", missing], tmp_path)
    (cell,) = headline_rows(result.stdout)["PyCSP 0.9.2"]
    assert cell.startswith("not available: ") and "no-such-python" in cell


@pytest.mark.timeout(200)
def test_without_matplotlib_it_says_how_to_get_the_plots(tmp_path):
    result = run_demo(["--kernels", "commstime", "--backends", "threads",
                       "--target", "0.002"], tmp_path, source=HIDE_MATPLOTLIB)
    assert "matplotlib is not installed" in result.stdout
    assert 'pip install "pycsp[demo]"' in result.stdout
    assert not (tmp_path / "plots").exists()


@pytest.mark.timeout(200)
def test_a_backend_that_does_not_import_is_not_available_and_the_rest_run(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(HIDE_GREENLET_EVERYWHERE)
    path = os.pathsep.join([str(site), _child_env()["PYTHONPATH"]])
    result = run_demo(["--kernels", "commstime", "--target", "0.002", "--no-plots"],
                      tmp_path, env={"PYTHONPATH": path})
    rows = headline_rows(result.stdout)
    commstime = next(label for label in rows if label.startswith("Commstime"))
    threads, greenlets, processes = rows[commstime]
    assert greenlets == "not available"
    assert CELL.match(threads) and CELL.match(processes)
    assert re.search(r"^pycsp\.greenlets: not available: .*greenlet", result.stdout,
                     re.M), result.stdout
