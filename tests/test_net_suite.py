"""The shared suite's net backends themselves (net_backend.py): every channel is
homed in one of two other programs, in turn, and the shared tests pass on them.

The ``net_only`` test runs when a net backend is selected (PYCSP_TEST_BACKENDS=net
or net-curve); the default run starts such a run for a few shared tests."""
import os
import subprocess
import sys

import pytest
from conftest import ROOT, _child_env


@pytest.mark.net_only
@pytest.mark.timeout(30)
def test_channels_are_homed_in_two_other_programs_in_turn(csp):
    from pycsp.net._remote import RemoteChannel

    channels = [csp.Channel(), csp.Channel("named"), csp.Channel(buffer=2), csp.Channel()]
    assert all(type(ch) is RemoteChannel for ch in channels)
    homes = [ch.address for ch in channels]
    assert homes[0] == homes[2] != homes[1] == homes[3]
    assert os.getpid() not in _home_pids(homes[:2])  # neither home is this program
    cout, cin = -channels[2], +channels[2]
    cout("over TCP")
    assert cin() == "over TCP"


def _home_pids(addresses):
    """Pids of the processes listening on the TCP ports of ``addresses`` (from /proc)."""
    ports = {port for _, port in addresses}
    inodes = set()
    with open("/proc/net/tcp") as table:
        for line in list(table)[1:]:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) in ports and fields[3] == "0A":  # LISTEN
                inodes.add(fields[9])
    pids = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            links = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in fds}
        except OSError:
            continue
        if any(f"socket:[{inode}]" in links for inode in inodes):
            pids.add(int(pid))
    assert pids, "no process listens on the homes' ports"
    return pids


@pytest.mark.timeout(240)
@pytest.mark.parametrize("variant", ["net", "net-curve"])
def test_shared_tests_pass_on_the_net_backend(variant):
    """A few shared tests, run by a pytest of their own on the net backend."""
    env = dict(_child_env(), PYCSP_TEST_BACKENDS=variant)
    # Plain reads and writes, poison and retire; and alternations on both ends of
    # two channels homed in two programs (many to many: it hung when a claim came
    # while the party awaited a home's answer to another).  The whole shared
    # suite runs on these backends in .ci/run (-m net).
    selection = ["tests/test_net_suite.py", "tests/test_channels.py",
                 "tests/test_retire_poison.py", "tests/test_alternation.py", "-k",
                 "net_only or rendezvous_write_returns or rendezvous_many or "
                 "buffered_write_blocks or fifo_across or any_to_any or poison_propagation_stops "
                 "or both_ends_many_to_many"]
    result = subprocess.run([sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider",
                             *selection], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=220)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    passed = [line.split()[0] for line in result.stdout.splitlines() if " PASSED" in line]
    assert (f"tests/test_net_suite.py::test_channels_are_homed_in_two_other_programs_in_turn"
            f"[{variant}]") in passed, result.stdout
    assert len(passed) >= 7, result.stdout
