"""Types (README "Types"): mypy --strict on the examples and on a program that
uses every public name, wrong uses rejected, csp_ext.pyi matching the C module,
and generic channels working at runtime on every backend."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TYPING = ROOT / "tests" / "typing"
CONFIG = TYPING / "mypy.ini"


def _run(*args, timeout=600):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)
    return done.returncode, done.stdout + done.stderr


def _mypy(*paths):
    return _run("-m", "mypy", "--config-file", str(CONFIG), "--no-incremental", *map(str, paths))


@pytest.mark.timeout(900)
def test_examples_and_every_name_pass_mypy_strict():
    examples = sorted((ROOT / "examples").glob("*.py"))
    code, output = _mypy(*examples, TYPING / "uses_every_name.py")
    assert code == 0, output


@pytest.mark.timeout(900)
def test_wrong_uses_are_rejected():
    # warn_unused_ignores (mypy.ini): an ignore that is not needed is an error,
    # so each wrong use must really be an error.
    code, output = _mypy(TYPING / "wrong_uses.py")
    assert code == 0, output


@pytest.mark.timeout(900)
def test_stub_matches_the_c_module():
    code, output = _run("-m", "mypy.stubtest", "csp_ext", "--allowlist",
                        str(TYPING / "stubtest_allowlist.txt"))
    assert code == 0, output


@pytest.mark.timeout(120)
def test_the_typed_program_runs(tmp_path):
    code, output = _run(str(TYPING / "uses_every_name.py"), str(tmp_path), timeout=100)
    assert code == 0, output
    assert (tmp_path / "trace.json").exists()


@pytest.mark.timeout(20)
def test_channel_of_a_type_is_a_channel(csp):
    ch = csp.Channel[int]("typed", buffer=1)
    assert isinstance(ch, csp.Channel) and ch.name == "typed" and ch.buffer == 1
    ch.writer()(5)
    assert ch.reader()() == 5
    assert csp.ChannelEndRead[int].__origin__ is csp.ChannelEndRead
    assert csp.ChannelEndWrite[str].__origin__ is csp.ChannelEndWrite


@pytest.mark.timeout(20)
def test_traced_and_parallel_names_take_a_message_type():
    import pycsp.parallel as par
    from pycsp.common import trace

    for kind in (trace.Channel, trace.ChannelEndRead, trace.ChannelEndWrite, par.Channel):
        assert kind[int].__origin__ is kind
