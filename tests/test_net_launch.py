"""pycsp.net's launchers and placement (issue #16): host lists from Slurm and
PBS, 0.9.2's placement hints, and starting a program on another host with ssh
or srun (the stub in tests/net_bin, on the namespace hosts of tests/nethosts.py)
with its secrets on stdin."""
import hashlib
import io
import json
import os
import subprocess
import sys

import pytest

from pycsp.net._launch import LaunchError, read_handover, srun_argv, ssh_argv, start
from pycsp.net._placement import (Placement, PlacementError, allocation_hosts, expand_hostlist,
                                  read_nodefile)

from nethosts import NetHosts, unavailable_reason

NET_BIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "net_bin")
HOSTS_MISSING = unavailable_reason()
needs_hosts = pytest.mark.skipif(
    bool(HOSTS_MISSING) and os.environ.get("PYCSP_TEST_REQUIRE_NETHOSTS") != "1",
    reason=f"multi-host tests: {HOSTS_MISSING}")


# -- host lists -----------------------------------------------------------------

@pytest.mark.parametrize("nodelist, hosts", [
    ("node1", ["node1"]),
    ("node[01-03,07],gpu1", ["node01", "node02", "node03", "node07", "gpu1"]),
    ("n[8-11]", ["n8", "n9", "n10", "n11"]),
    ("n[098-101]", ["n098", "n099", "n100", "n101"]),
    ("r[1-2]n[1-2]", ["r1n1", "r1n2", "r2n1", "r2n2"]),
    ("a[1,3]-ib,b", ["a1-ib", "a3-ib", "b"]),
])
def test_slurm_host_lists_expand_as_scontrol_show_hostnames_does(nodelist, hosts):
    assert expand_hostlist(nodelist) == hosts


@pytest.mark.parametrize("nodelist", ["n[1-", "n]1[", "n[a-b]", "n[3-1]", "n[1-2"])
def test_a_bad_host_list_is_refused_with_its_text(nodelist):
    with pytest.raises(PlacementError, match="host list"):
        expand_hostlist(nodelist)


def test_a_nodefile_is_read_from_its_environment_variable(tmp_path, monkeypatch):
    nodefile = tmp_path / "nodes"
    nodefile.write_text("node1\nnode1\n\n# spare\nnode2  # the fast one\n")
    monkeypatch.setenv("PBS_NODEFILE", str(nodefile))
    assert read_nodefile("$PBS_NODEFILE") == ["node1", "node1", "node2"]
    assert read_nodefile(str(nodefile)) == ["node1", "node1", "node2"]


def test_a_missing_nodefile_says_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.delenv("PBS_NODEFILE", raising=False)
    with pytest.raises(PlacementError, match="PBS_NODEFILE is not set"):
        read_nodefile("$PBS_NODEFILE")
    with pytest.raises(PlacementError, match="cannot read"):
        read_nodefile(str(tmp_path / "absent"))
    (tmp_path / "empty").write_text("# nobody\n")
    with pytest.raises(PlacementError, match="names no host"):
        read_nodefile(str(tmp_path / "empty"))


def test_inside_a_slurm_allocation_its_nodes_and_task_slots_are_the_hosts(monkeypatch):
    monkeypatch.setenv("SLURM_JOB_NODELIST", "c[1-3]")
    monkeypatch.setenv("SLURM_TASKS_PER_NODE", "2(x2),1")
    assert allocation_hosts() == ("slurm", ["c1", "c1", "c2", "c2", "c3"])
    monkeypatch.delenv("SLURM_TASKS_PER_NODE")
    assert allocation_hosts() == ("slurm", ["c1", "c2", "c3"])


def test_outside_slurm_the_nodefile_gives_the_hosts(tmp_path, monkeypatch):
    monkeypatch.delenv("SLURM_JOB_NODELIST", raising=False)
    monkeypatch.delenv("SLURM_NODELIST", raising=False)
    (tmp_path / "nodes").write_text("a\nb\n")
    assert allocation_hosts(str(tmp_path / "nodes")) == ("nodefile", ["a", "b"])


# -- placement (PyCSP 0.9.2's cluster_hint and cluster_pin) -------------------------

def test_blocked_fills_each_host_before_the_next():
    p = Placement(["a", "a", "b", "b"])
    assert [p.next("blocked") for _ in range(5)] == ["a", "a", "b", "b", "a"]


def test_strided_alternates_hosts():
    p = Placement(["a", "a", "b", "b"])
    assert [p.next("strided") for _ in range(4)] == ["a", "b", "a", "b"]
    one = Placement(["a", "a"])
    assert [one.next("strided") for _ in range(3)] == ["a", "a", "a"]


def test_local_and_pinned_placement():
    p = Placement(["a", "b", "c"])
    assert p.next("local") == "localhost"
    assert p.pinned(1) == "b" and p.pinned(4) == "b"
    with pytest.raises(PlacementError, match="cluster_hint='random'"):
        p.next("random")
    with pytest.raises(PlacementError, match="cluster_pin must be an int"):
        p.pinned("1")


# -- command lines ---------------------------------------------------------------

def test_ssh_never_asks_for_a_password_and_takes_the_users_options(monkeypatch):
    monkeypatch.setenv("PYCSP_SSH_OPTIONS", "-F '/tmp/my config' -o ConnectTimeout=3")
    argv = ssh_argv("node2", ["python3", "-m", "x", "a b"], port=2222, user="me", cwd="/w d")
    assert argv[:4] == ["ssh", "-o", "BatchMode=yes", "-T"]
    assert argv[4:8] == ["-p", "2222", "-l", "me"]
    assert argv[8:12] == ["-F", "/tmp/my config", "-o", "ConnectTimeout=3"]
    assert argv[12:14] == ["--", "node2"]
    assert argv[14] == "cd '/w d' && exec python3 -m x 'a b'"
    with pytest.raises(LaunchError, match="not a host name"):
        ssh_argv("-oProxyCommand=evil", ["true"])


def test_srun_runs_one_task_on_the_named_node():
    argv = srun_argv("c2", ["python3", "-c", "pass"], cwd="/w")
    assert argv[0] == "srun" and "--nodelist=c2" in argv and "--ntasks=1" in argv
    assert "--chdir=/w" in argv and argv[-3:] == ["python3", "-c", "pass"]


def test_a_missing_launcher_is_a_launch_error():
    with pytest.raises(LaunchError, match="not found on PATH"):
        start(["pycsp-no-such-launcher"], b"")


def test_a_handover_is_framed_and_checked():
    from pycsp.net._launch import _HANDOVER_MAGIC
    import struct
    secret = os.urandom(1000)
    framed = _HANDOVER_MAGIC + struct.pack("!I", len(secret)) + secret
    assert read_handover(io.BytesIO(framed)) == secret
    with pytest.raises(ValueError, match="does not start with a pycsp handover"):
        read_handover(io.BytesIO(b"junk" * 10))
    with pytest.raises(ValueError, match="ended after"):
        read_handover(io.BytesIO(framed[:-1]))


# -- on other hosts ------------------------------------------------------------------

REMOTE = """
import hashlib, json, os, sys
from pycsp.net._launch import read_handover
secret = read_handover()
with open("/proc/self/cmdline", "rb") as f:
    cmdline = f.read()
print(json.dumps({"argv": sys.argv[1:], "cwd": os.getcwd(),
                  "sha": hashlib.sha256(secret).hexdigest(),
                  "secret_on_cmdline": secret[:16] in cmdline,
                  "addr": os.popen("ip -4 -o addr show dev eth0").read()}))
"""


@pytest.fixture(scope="module")
def hosts():
    with NetHosts(2) as h:
        yield h


def _run_remote(hosts, launcher_argv, env=None):
    secret = os.urandom(64 * 1024)
    proc = start(launcher_argv, secret, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                 env=env)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    report = json.loads(out)
    assert report["sha"] == hashlib.sha256(secret).hexdigest()
    assert report["secret_on_cmdline"] is False
    return report


@needs_hosts
@pytest.mark.timeout(120)
def test_ssh_starts_a_program_on_the_host_with_its_secret_on_stdin(hosts, tmp_path):
    odd = ["a b", "c'd", "$HOME", ";true"]
    argv = ssh_argv("h1", [sys.executable, "-c", REMOTE] + odd, cwd=str(tmp_path),
                    options=["-F", hosts.ssh_config])
    report = _run_remote(hosts, argv)
    assert report["argv"] == odd
    assert report["cwd"] == str(tmp_path)
    assert hosts.address["h1"] + "/" in report["addr"]


@needs_hosts
@pytest.mark.timeout(120)
def test_srun_starts_a_program_on_the_node_with_its_secret_on_stdin(hosts, tmp_path):
    env = dict(os.environ, PATH=NET_BIN + os.pathsep + os.environ["PATH"],
               PYCSP_TEST_SRUN_NETNS=",".join(f"{n}={hosts.netns(n)}" for n in hosts.names))
    argv = srun_argv("h2", [sys.executable, "-c", REMOTE, "x y"], cwd=str(tmp_path))
    report = _run_remote(hosts, argv, env=env)
    assert report["argv"] == ["x y"] and report["cwd"] == str(tmp_path)
    assert hosts.address["h2"] + "/" in report["addr"]
