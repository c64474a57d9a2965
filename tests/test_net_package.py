"""pycsp.net as a package: an optional extra, its names, and nobody else importing zmq."""
import os
import re

import pytest
from conftest import ROOT, run_script



@pytest.mark.timeout(60)
def test_no_other_module_of_pycsp_imports_zmq():
    result = run_script("""
        import sys
        import pycsp, pycsp.processes, pycsp.threads, pycsp.greenlets, pycsp.parallel
        import pycsp.common.trace
        print(sorted(m for m in sys.modules if m == "zmq" or m.startswith("zmq.")))
    """, timeout=50)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["[]"]


@pytest.mark.timeout(60)
def test_net_gives_the_processes_names_plus_its_own():
    result = run_script("""
        import pycsp.net as net, pycsp.processes as processes, pycsp.parallel as parallel
        missing = [n for n in processes.__all__ if n not in net.__all__]
        assert not missing, missing
        assert all(hasattr(net, n) for n in net.__all__)
        assert net.version[-1] == "net" and net.version[:3] == processes.version[:3]
        for name in ("ChannelConnectException", "ChannelBindException",
                     "ChannelLostException", "ChannelSocketException"):
            assert getattr(net, name) is getattr(parallel, name), name
        assert net.ChannelPoisonException is processes.ChannelPoisonException
        assert net.Parallel is processes.Parallel
        # Channel() without a name is the processes backend's channel: no agent
        ch = net.Channel(buffer=2)
        assert isinstance(ch, processes.Channel) and isinstance(ch, net.Channel)
        g = net.InputGuard(+ch)
        assert isinstance(g, net.InputGuard) and type(g) is processes.InputGuard
        print("ok")
    """, timeout=50)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ok"]


def test_the_net_extra_adds_pyzmq_and_the_test_extra_has_it():
    with open(os.path.join(ROOT, "pyproject.toml")) as f:
        text = f.read()
    extras = dict(re.findall(r'^(\w+) = (\[.*?\])', text, re.M | re.S))
    assert '"pyzmq>=25"' in extras["net"]
    assert '"pyzmq>=25"' in extras["test"]
    assert '"pycsp.net"' in text  # the package is installed


# Ends of channels homed elsewhere, made without a home: what is checked
# before any request goes out.
def _remote_ends():
    from pycsp.net._remote import RemoteChannelEndRead, RemoteChannelEndWrite

    return (RemoteChannelEndRead.__new__(RemoteChannelEndRead),
            RemoteChannelEndWrite.__new__(RemoteChannelEndWrite))


def test_an_end_of_a_channel_homed_elsewhere_is_a_channel_end():
    import pycsp.net as net

    cin, cout = _remote_ends()
    assert isinstance(cin, net.ChannelEndRead) and not isinstance(cin, net.ChannelEndWrite)
    assert isinstance(cout, net.ChannelEndWrite) and not isinstance(cout, net.ChannelEndRead)
    local = net.Channel()
    assert isinstance(local.reader(), net.ChannelEndRead)
    assert isinstance(local.writer(), net.ChannelEndWrite)


def test_a_remote_end_called_wrongly_raises_the_cores_type_error():
    import pycsp.processes as processes

    cin, cout = _remote_ends()
    local = processes.Channel(buffer=1)
    for remote, core in ((cout, local.writer()), (cin, local.reader())):
        for args, kwargs in (((1, 2), {}), ((), {"msg": 1}), ((1,), {"msg": 2})):
            with pytest.raises(TypeError) as expected:
                core(*args, **kwargs)
            with pytest.raises(TypeError) as got:
                remote(*args, **kwargs)
            assert str(got.value) == str(expected.value)


@pytest.mark.timeout(60)
def test_components_check_remote_ends_when_pycsp_common_came_first():
    """pycsp.common imported before pycsp.net still knows a remote end's direction."""
    result = run_script("""
        from pycsp.common import plugNplay
        import pycsp.net
        from pycsp.net._remote import RemoteChannelEndWrite
        cout = RemoteChannelEndWrite.__new__(RemoteChannelEndWrite)
        try:
            plugNplay.Identity(cout, cout)
        except TypeError as exc:
            print("REFUSED", exc)
    """, timeout=50)
    assert result.returncode == 0, result.stderr
    assert "REFUSED Identity: cin must be a reader end" in result.stdout, result.stdout


@pytest.mark.timeout(60)
def test_a_name_that_cannot_travel_is_refused_where_it_is_homed():
    """Other programs name the channel in UTF-8: a lone surrogate could be homed
    but never reached (their Channel(connect=) raised UnicodeEncodeError)."""
    result = run_script("""
        import warnings
        warnings.simplefilter("ignore")
        import pycsp.net as pycsp
        pycsp.configure(security="none", linger=0)
        try:
            pycsp.Channel("caf\\udcff")
            print("HOMED")
        except ValueError as exc:
            print("REFUSED", "UTF-8" in str(exc))
        print("FINE", pycsp.Channel("café").name)
    """, timeout=50)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["REFUSED True", "FINE café"], result.stdout
