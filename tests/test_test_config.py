"""The test configuration itself (pyproject.toml's [tool.pytest.ini_options])."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FAILING = """
from hypothesis import given, strategies as st

@given(st.integers())
def test_fails(x):
    assert x < 5
"""


@pytest.mark.timeout(120)
def test_a_failing_hypothesis_example_is_reported_not_an_internal_error(tmp_path):
    """filterwarnings = error made hypothesis's report (which warns through
    mypy_extensions) an INTERNALERROR that hid the failing example."""
    (tmp_path / "test_fails.py").write_text(FAILING)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "-c", os.path.join(ROOT, "pyproject.toml"), "--rootdir", str(tmp_path),
         str(tmp_path / "test_fails.py")],
        capture_output=True, text=True, timeout=100, cwd=tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    # hypothesis names the example "Falsifying example" or, newer, "Failing test case"
    assert "test_fails(" in out and "x=5" in out.replace(" ", ""), out
    assert "INTERNALERROR" not in out, out
