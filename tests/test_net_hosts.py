"""The multi-host harness (tests/nethosts.py) that pycsp.net's multi-host tests
stand on: namespaces with their own addresses, ssh into each, TCP between
them, a link cut and restored, and leftovers of dead runs removed.

Root and sshd are needed; without them these tests are skipped with the
reason, except where PYCSP_TEST_REQUIRE_NETHOSTS=1 (.ci/run sets it), where
they fail instead.
"""
import os
import subprocess
import sys

import pytest

from nethosts import PREFIX, NetHosts, remove_leftovers, unavailable_reason

REASON = unavailable_reason()
if REASON and os.environ.get("PYCSP_TEST_REQUIRE_NETHOSTS") != "1":
    pytestmark = pytest.mark.skip(reason=f"multi-host tests: {REASON}")

SERVER = """
import socket, sys
s = socket.create_server((sys.argv[1], 7777))
print("ready", flush=True)
for _ in range(int(sys.argv[2])):
    c, _ = s.accept()
    c.sendall(b"hello from " + sys.argv[1].encode())
    c.close()
"""

CLIENT = """
import socket, sys
try:
    with socket.create_connection((sys.argv[1], 7777), timeout=float(sys.argv[2])) as s:
        print(s.recv(100).decode())
except OSError as e:
    print("unreachable", type(e).__name__)
"""


@pytest.fixture(scope="module")
def hosts():
    with NetHosts(2) as h:
        yield h


@pytest.mark.timeout(60)
def test_each_host_has_its_address_and_an_sshd_that_runs_this_python(hosts):
    script = "import pycsp, socket; print(pycsp.__file__)"
    for name in hosts.names:
        result = hosts.ssh(name, [sys.executable, "-c", script])
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip().endswith(os.path.join("pycsp", "__init__.py"))
        addrs = hosts.ssh(name, ["ip", "-4", "-o", "addr", "show", "dev", "eth0"]).stdout
        assert hosts.address[name] + "/" in addrs
        assert all(hosts.address[other] + "/" not in addrs for other in hosts.names
                   if other != name)


@pytest.mark.timeout(60)
def test_tcp_between_hosts_and_a_link_cut_and_restored(hosts):
    h1 = hosts.address["h1"]
    server = subprocess.Popen(hosts.run_argv("h1", [sys.executable, "-c", SERVER, h1, "2"]),
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "ready"
        first = hosts.ssh("h2", [sys.executable, "-c", CLIENT, h1, "5"])
        assert first.stdout.strip() == f"hello from {h1}", first.stderr
        hosts.link_down("h1")
        try:
            cut = hosts.run("h2", [sys.executable, "-c", CLIENT, h1, "1"])
            assert cut.stdout.strip() == "unreachable TimeoutError", cut.stdout + cut.stderr
        finally:
            hosts.link_up("h1")
        again = hosts.run("h2", [sys.executable, "-c", CLIENT, h1, "10"])
        assert again.stdout.strip() == f"hello from {h1}", again.stdout + again.stderr
        server.wait(10)
    finally:
        server.kill()
        server.wait()
        server.stdout.close()


@pytest.mark.timeout(60)
def test_namespaces_of_a_dead_run_are_removed():
    with open("/proc/sys/kernel/pid_max") as f:
        pid_max = int(f.read())
    dead = f"{PREFIX}{pid_max + 1}ah1"    # no process can have that pid
    subprocess.run(["ip", "netns", "add", dead], check=True)
    try:
        remove_leftovers()
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert dead not in listed
    finally:
        subprocess.run(["ip", "netns", "delete", dead], capture_output=True)


@pytest.mark.timeout(60)
def test_stopping_removes_the_hosts_and_what_runs_in_them():
    with NetHosts(1) as h:
        ns = h.netns("h1")
        sleeper = subprocess.Popen(h.run_argv("h1", ["sleep", "300"]))
    assert sleeper.wait(10) == -9
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert ns not in listed


KILLED_RUN = """
import os, signal, sys
sys.path.insert(0, sys.argv[1])
from nethosts import NetHosts
hosts = NetHosts(1).__enter__()
print(hosts.netns("h1"), flush=True)
os.kill(os.getpid(), signal.SIGKILL)     # no teardown
"""


@pytest.mark.timeout(60)
def test_a_run_killed_with_its_hosts_up_leaves_nothing_once_leftovers_are_removed():
    tests = os.path.dirname(os.path.abspath(__file__))
    run = subprocess.run([sys.executable, "-c", KILLED_RUN, tests], capture_output=True,
                         text=True, timeout=50)
    assert run.returncode == -9, run.stderr
    ns = run.stdout.strip()
    pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
    assert pids, "its sshd should still run"
    remove_leftovers()
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert ns not in listed
    import time
    deadline = time.monotonic() + 10
    while not all(_gone(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)    # SIGKILL is sent; the kernel and init finish it
    assert all(_gone(pid) for pid in pids), pids


def _gone(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return "State:\tZ" in f.read()     # killed, not yet reaped
    except FileNotFoundError:
        return True
