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
