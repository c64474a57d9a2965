"""Programs for the pycsp.net tests: a home and its peers, each a fresh Python on 127.0.0.1."""
import ast
import os
import subprocess
import textwrap

import pytest
from conftest import finish_script, run_script, start_script


def new_key_file(folder, name="run.key"):
    """A key file made by the documented command; its path."""
    path = os.path.join(str(folder), name)
    result = subprocess.run([os.sys.executable, "-m", "pycsp.net.keys", "new", path],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return path


def start_home(body, key_file, *, max_message=None, security=None, linger=1.0,
               heartbeat=None):
    """Start a program that homes channels; ``body`` prints ``PORT <port>`` first.

    ``body`` is indented code run after ``import pycsp.net as pycsp`` and
    configure(); returns (Popen, port).  ``linger``: how long the home serves
    the other program's unretired ends once it ends (None: pycsp.net's default).
    ``heartbeat``: (interval, timeout) for configure(), or None for the defaults.
    """
    settings = [f"key_file={key_file!r}"]
    if linger is not None:
        settings.append(f"linger={linger}")
    if max_message is not None:
        settings.append(f"max_message={max_message}")
    if heartbeat is not None:
        settings.append(_heartbeat_settings(heartbeat))
    if security is not None:
        settings = [f"security={security!r}"]
    source = ("import sys, warnings\n"
              "warnings.simplefilter('ignore', UserWarning)\n"
              "import pycsp.net as pycsp\n"
              f"pycsp.configure({', '.join(settings)})\n" + textwrap.dedent(body))
    proc = start_script(source)
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"the home did not start: {line!r}\n{out}\n{err}")
    return proc, int(line.split()[1])


def _heartbeat_settings(heartbeat):
    interval, timeout = heartbeat
    return f"heartbeat_interval={interval}, heartbeat_timeout={timeout}"


def peer_source(body, key_file, port, *, security=None, heartbeat=None):
    settings = f"security={security!r}" if security else f"key_file={key_file!r}"
    if heartbeat is not None:
        settings += ", " + _heartbeat_settings(heartbeat)
    return ("import sys, warnings\n"
            "warnings.simplefilter('ignore', UserWarning)\n"
            "import pycsp.net as pycsp\n"
            f"pycsp.configure({settings})\n"
            f"PORT = {port}\n" + textwrap.dedent(body))


def run_peer(body, key_file, port, timeout=60, **options):
    """Run a peer program (``peer_source``, with its ``options``) to its end;
    its stdout (it must succeed)."""
    result = run_script(peer_source(body, key_file, port, **options), timeout=timeout)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def values(out, tag):
    """The Python values printed on lines ``TAG value``."""
    return [ast.literal_eval(line.split(" ", 1)[1]) for line in out.splitlines()
            if line.startswith(tag + " ")]


def finish(proc, timeout=30):
    """Wait for ``proc``; (returncode, stdout, stderr)."""
    out, err = finish_script(proc, timeout)
    return proc.returncode, out, err


def stop(proc):
    """Kill ``proc`` if it still runs, and reap it."""
    if proc.poll() is None:
        proc.kill()
    proc.communicate()
