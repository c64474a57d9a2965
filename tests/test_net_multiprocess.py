"""MultiProcess(fn, pycsp_host=, pycsp_port=): a process whose named channels
are homed on a node of its own at that address (PyCSP 0.9.2's meaning), for
programs that connect to them by name."""
import socket
import pytest
from conftest import run_script
from net_support import finish, new_key_file, start_home, stop

pytest.importorskip("zmq")

# A peer that connects to "A" at PORT once the home has it, writes 3 numbers, retires.
_WRITER = """
    import sys, time
    from pycsp.parallel import *
    import pycsp.net
    pycsp.net.configure(key_file={key_file!r})
    deadline = time.monotonic() + 20
    while True:
        try:
            A = Channel("A", connect=("127.0.0.1", {port}))
            break
        except ChannelConnectException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    out = A.writer()
    for i in range(3):
        out(i * 10)
    out.retire()
    print("WROTE")
"""


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(90)
def test_a_0_9_2_multiprocess_homes_its_named_channels_at_its_address(tmp_path):
    key_file = new_key_file(tmp_path)
    port = _free_port()
    home, _ = start_home(f"""
        from pycsp.parallel import *
        print("PORT", {port}, flush=True)

        @multiprocess(pycsp_host="127.0.0.1", pycsp_port={port})
        def server(n):
            A = Channel("A")
            assert isinstance(A, Channel), A
            print("ADDRESS", A.address, flush=True)
            cin = A.reader()
            return [cin() for _ in range(n)]

        print("GOT", Parallel(server(3)), flush=True)
    """, key_file)
    try:
        writer = run_script(_WRITER.format(key_file=key_file, port=port), timeout=60)
        assert writer.returncode == 0, writer.stderr
        code, out, err = finish(home, timeout=60)
    finally:
        stop(home)
    assert code == 0, err
    assert f"ADDRESS ('127.0.0.1', {port})" in out
    assert "GOT [[0, 10, 20]]" in out


@pytest.mark.timeout(90)
def test_pycsp_nets_multiprocess_on_any_port_says_its_address(tmp_path):
    """pycsp.net has MultiProcess too; port 0 binds any free port, which
    ``.address`` of its channels gives; its forked children home there too."""
    key_file = new_key_file(tmp_path)
    home, _ = start_home("""
        print("PORT 0", flush=True)

        @pycsp.process
        def child(out):
            B = pycsp.Channel("B")
            out(B.address)
            return B.reader()()

        def server(out):
            A = pycsp.Channel("A")
            out(A.address)
            got = A.reader()()
            inner = pycsp.Channel()
            return got, pycsp.Parallel(child(inner.writer()), pycsp.Process(
                lambda cin: print("CHILD", cin(), flush=True), inner.reader()))

        addresses = pycsp.Channel(buffer=1)
        pycsp.Parallel(pycsp.MultiProcess(server, -addresses, pycsp_host="127.0.0.1"),
                       pycsp.Process(lambda cin: print("ADDRESS", cin(), flush=True),
                                     +addresses))
    """, key_file)
    try:
        line = home.stdout.readline()
        assert line.startswith("ADDRESS ('127.0.0.1', "), line
        port = int(line.split(", ")[1].rstrip(")\n"))
        peer = run_script(_WRITER.format(key_file=key_file, port=port)
                          .replace("for i in range(3)", "for i in range(1)"), timeout=60)
        assert peer.returncode == 0, peer.stderr
        line = home.stdout.readline()
        assert line == f"CHILD ('127.0.0.1', {port})\n", line
        peer_b = run_script(_WRITER.format(key_file=key_file, port=port)
                            .replace('"A"', '"B"').replace("for i in range(3)",
                                                           "for i in range(1)"), timeout=60)
        assert peer_b.returncode == 0, peer_b.stderr
        code, out, err = finish(home, timeout=60)
    finally:
        stop(home)
    assert code == 0, err


@pytest.mark.timeout(60)
def test_a_port_already_taken_raises_channel_bind_exception_from_parallel():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_script(f"""
            from pycsp.parallel import *
            Configuration().set(SOCKETS_BIND_TIMEOUT, 0.5)

            @multiprocess(pycsp_host="127.0.0.1", pycsp_port={port})
            def server():
                return Channel("A")

            try:
                Parallel(server())
            except ChannelBindException as e:
                print("REFUSED", {port} in e.args[0] if isinstance(e.args[0], tuple) else e)
        """, timeout=50)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("REFUSED"), result.stdout + result.stderr


@pytest.mark.parametrize("settings, error", [
    ({"pycsp_port": -1}, ValueError),
    ({"pycsp_port": 70000}, ValueError),
    ({"pycsp_port": "9998"}, TypeError),
    ({"pycsp_port": True}, TypeError),
    ({"pycsp_host": 127}, TypeError),
])
def test_a_listening_address_that_cannot_be_is_refused_when_made(settings, error):
    import pycsp.parallel as par

    with pytest.raises(error, match="pycsp_"):
        par.MultiProcess(print, 1, **settings)


@pytest.mark.timeout(60)
def test_without_pyzmq_a_listening_multiprocess_says_what_to_install():
    result = run_script("""
        import sys
        sys.modules["zmq"] = None   # as if pyzmq were not installed
        import pycsp.parallel as par
        par.MultiProcess(print, 1)   # no address: a plain OS process, no pyzmq needed
        try:
            par.MultiProcess(print, 1, pycsp_port=9998)
        except NotImplementedError as e:
            print("REFUSED", 'pip install "pycsp[net]"' in str(e))
    """, timeout=50)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["REFUSED", "True"]
