"""csp_ext and pycsp.threads import where greenlet is missing; pycsp.greenlets
then says which package is missing."""
import pytest

from conftest import run_script

HIDE_GREENLET = """
import sys
sys.modules["greenlet"] = None          # as if greenlet were not installed
import csp_ext, pycsp, pycsp.threads
ch = pycsp.threads.Channel(buffer=1)
(-ch)("still works")
print((+ch)())
try:
    import pycsp.greenlets
except ImportError as exc:
    print("ImportError:", exc)
"""


@pytest.mark.timeout(30)
def test_greenlets_backend_names_the_missing_package():
    result = run_script(HIDE_GREENLET, timeout=20)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "still works"
    assert lines[1].startswith("ImportError:") and "'greenlet'" in lines[1]
    assert "pip install greenlet" in lines[1]
