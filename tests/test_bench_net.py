"""benchmarks/net.py (issue #16's figures): it runs each kind in fresh programs and prints
the medians and the per-round ratios; checked for its shape only, never its figures."""
import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("zmq")
pytest.importorskip("numpy")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.timeout(240)
def test_one_round_prints_every_kind_and_the_ratios_of_the_same_round(tmp_path):
    kinds = ["net-rtt", "zmq-curve-rtt", "mpc-rtt", "net-plain-64M-write", "zmq-64M"]
    out_json = tmp_path / "net.json"
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "net.py"), "--rounds", "2",
         "--target", "0.01", "--only", ",".join(kinds), "--json", str(out_json)],
        capture_output=True, text=True, timeout=200, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "FAILED" not in result.stdout, result.stdout
    rows = {line.split("|")[1].strip(): line for line in result.stdout.splitlines()
            if line.startswith("| ")}
    for kind in kinds:
        assert kind in rows, result.stdout
    assert "remote rtt / raw pyzmq Curve rtt" in rows
    assert "64M write (no Curve) / raw pyzmq copy=False" in rows
    assert "PyCSP 0.9.2 rtt / remote rtt" not in rows  # not asked for
    assert result.stderr.count("round ") == 2  # progress, one line per round
    saved = json.loads(out_json.read_text())
    assert sorted(saved["figures"]) == sorted(kinds)
    assert all(len(values) == 2 and all(v > 0 for v in values)
               for values in saved["figures"].values())


@pytest.mark.timeout(240)
def test_the_alternation_across_two_homes_is_measured_with_where_its_time_went(tmp_path):
    """Both homes take turns (P never takes two messages in a row from one home);
    when the writer comes only after P armed its guard, every commit went
    through a home's claim and P's answer."""
    kinds = ["net-alt-ready", "net-alt-late", "zmq-curve-rtt"]
    out_json = tmp_path / "net.json"
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "net.py"), "--rounds", "1",
         "--target", "0.01", "--only", ",".join(kinds), "--json", str(out_json)],
        capture_output=True, text=True, timeout=200, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "FAILED" not in result.stdout, result.stdout
    rows = [line.split("|")[1].strip() for line in result.stdout.splitlines()
            if line.startswith("| ")]
    assert rows.count("net-alt-ready") == 2  # its figure and where it went
    assert "net-alt-late iteration / raw pyzmq Curve rtt" in rows
    assert "net-alt-ready AltSelect alone / raw pyzmq Curve rtt" in rows
    saved = json.loads(out_json.read_text())
    assert sorted(saved["details"]) == ["net-alt-late", "net-alt-ready"]
    for kind, (detail,) in saved["details"].items():
        per_iteration = detail["per iteration"]
        assert per_iteration["from H1"] == per_iteration["from H2"] == 0.5, detail
        assert "same home twice" not in per_iteration, detail
        assert per_iteration["WRITE"] == 1, detail
        assert detail["alt"] > 0 and detail["answer"] > 0
    late = saved["details"]["net-alt-late"][0]["per iteration"]
    assert late["ARM armed"] == 2 and late["ANSWER"] >= 1, late
