"""pycsp.net's links: CurveZMQ by default; wrong keys, missing keys, junk, oversized and
unparsable messages are refused before anything is unpickled, and the home keeps serving.

Each attack carries a pickle whose unpickling would create a file (``Evil``); the
test checks that the file never appears.  ``test_an_admitted_write_is_unpickled``
sends the same pickle the admitted way and sees the file appear: the check can fail.
"""
import os
import pickle
import socket
import stat
import subprocess
import sys
import textwrap
import time

import pytest
import zmq
from conftest import run_script
from net_support import finish, new_key_file, peer_source, start_home, stop

from pycsp.net import _keys, _wire

pytestmark = pytest.mark.timeout(90)

# The home reads one message, prints it, and exits.
HOME_READS_ONCE = """
A = pycsp.Channel("A")
print("PORT", A.address[1], flush=True)
print("GOT", (+A)(), flush=True)
"""

GOOD_WRITE = """
A = pycsp.Channel("A", connect=("127.0.0.1", PORT))
(-A)("hello")
print("WROTE", flush=True)
"""


class Evil:
    """Unpickled, it creates the file at ``path``."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def evil_payload(tmp_path):
    path = tmp_path / "unpickled"
    return path, pickle.dumps(Evil(str(path)), protocol=5)


class RawPeer:
    """A DEALER that speaks the wire format by hand (CURVE with ``keys``, or none)."""

    def __init__(self, port, keys=None):
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.DEALER)
        self.socket.linger = 0
        if keys is not None:
            self.socket.curve_serverkey = keys.public
            self.socket.curve_publickey = keys.public
            self.socket.curve_secretkey = keys.secret
        self.socket.connect(f"tcp://127.0.0.1:{port}")
        self.seq = 0

    def send(self, op, ref=0, body=None, header=None):
        self.seq += 1
        frames = [header if header is not None
                  else _wire.pack(op, 12345, os.getpid(), 1, self.seq, ref)]
        if body is not None:
            frames.append(body)
        try:
            self.socket.send_multipart(frames, zmq.NOBLOCK)
        except zmq.Again:  # no connection took it (the home refused this peer)
            return False
        return True

    def reply(self, timeout=2.0):
        if not self.socket.poll(timeout * 1000):
            return None
        frames = self.socket.recv_multipart()
        return _wire.parse(frames[0], _wire.REPLIES), frames[1:]

    def request(self, op, ref=0, body=None):
        self.send(op, ref, body)
        return self.reply()

    def close(self):
        self.socket.close(0)
        self.context.term()


def good_writer_gets_through(key_file, port, proc):
    """The home still serves: an admitted writer's message arrives and the home ends."""
    result = run_script(peer_source(GOOD_WRITE, key_file, port), timeout=40)
    assert result.returncode == 0, result.stderr
    assert "WROTE" in result.stdout
    code, out, err = finish(proc)
    assert code == 0, err
    assert "GOT hello" in out


def test_key_file_command_makes_a_private_file_and_never_overwrites(tmp_path):
    path = new_key_file(tmp_path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    keys = _keys.read_key_file(path)
    assert len(keys.public) == 40 and len(keys.secret) == 40
    again = subprocess.run([sys.executable, "-m", "pycsp.net.keys", "new", path],
                           capture_output=True, text=True, timeout=30)
    assert again.returncode == 1 and "not overwritten" in again.stderr
    assert _keys.read_key_file(path) == keys
    os.chmod(path, 0o644)
    with pytest.raises(PermissionError, match="chmod 600"):
        _keys.read_key_file(path)


def test_a_wrong_key_is_refused_and_the_home_keeps_serving(tmp_path):
    key_file = new_key_file(tmp_path)
    other_key = new_key_file(tmp_path, "other.key")
    proc, port = start_home(HOME_READS_ONCE, key_file)
    try:
        result = run_script(peer_source("""
            try:
                pycsp.Channel("A", connect=("127.0.0.1", PORT))
            except pycsp.ChannelConnectException as exc:
                print("REFUSED", exc)
        """, other_key, port), timeout=40)
        assert result.returncode == 0, result.stderr
        assert "REFUSED" in result.stdout and "key file" in result.stdout
        good_writer_gets_through(key_file, port, proc)
    finally:
        stop(proc)


def test_no_key_is_refused_before_anything_is_unpickled(tmp_path):
    key_file = new_key_file(tmp_path)
    unpickled, payload = evil_payload(tmp_path)
    proc, port = start_home(HOME_READS_ONCE, key_file)
    try:
        peer = RawPeer(port)  # no CURVE: the home's handshake refuses it
        assert peer.request(_wire.HELLO, body=b"A") is None
        for end in range(1, 4):
            peer.send(_wire.WRITE, end, payload)
        time.sleep(0.5)
        peer.close()
        result = run_script(peer_source("""
            try:
                pycsp.Channel("A", connect=("127.0.0.1", PORT))
            except pycsp.ChannelConnectException as exc:
                print("REFUSED")
        """, None, port, security="none"), timeout=40)
        assert "REFUSED" in result.stdout, result.stderr
        good_writer_gets_through(key_file, port, proc)
    finally:
        stop(proc)
    assert not unpickled.exists()


def test_junk_bytes_on_the_port_are_refused_and_the_home_keeps_serving(tmp_path):
    key_file = new_key_file(tmp_path)
    unpickled, payload = evil_payload(tmp_path)
    proc, port = start_home(HOME_READS_ONCE, key_file)
    try:
        for junk in (b"\x00" * 64, os.urandom(4096), b"GET / HTTP/1.0\r\n\r\n", payload * 50):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                try:
                    sock.sendall(junk)
                    sock.settimeout(2)
                    while sock.recv(4096):  # the home ends the connection
                        pass
                except (ConnectionResetError, BrokenPipeError, socket.timeout):
                    pass
        good_writer_gets_through(key_file, port, proc)
    finally:
        stop(proc)
    assert not unpickled.exists()


def test_an_oversized_message_is_refused_before_it_is_unpickled(tmp_path):
    key_file = new_key_file(tmp_path)
    unpickled, payload = evil_payload(tmp_path)
    proc, port = start_home(HOME_READS_ONCE, key_file, max_message=4096)
    try:
        peer = RawPeer(port, _keys.read_key_file(key_file))
        header, body = peer.request(_wire.HELLO, body=b"A")
        assert header.op == _wire.OK and int(body[0]) == 4096
        header, _ = peer.request(_wire.JOIN, 1, b"A")
        assert header.op == _wire.OK
        end = header.ref
        # pickle ignores bytes after the STOP opcode: the payload stays valid
        peer.send(_wire.WRITE, end, payload + b"\x00" * 8192)
        assert peer.reply() is None  # libzmq dropped the connection, not the home
        peer.close()
        # pycsp's own writer is told, before it sends anything
        result = run_script(peer_source("""
            A = pycsp.Channel("A", connect=("127.0.0.1", PORT))
            try:
                (-A)(b"x" * 10000)
            except ValueError as exc:
                print("TOO BIG", exc)
        """, key_file, port), timeout=40)
        assert "TOO BIG" in result.stdout and "max_message" in result.stdout, result.stderr
        good_writer_gets_through(key_file, port, proc)
    finally:
        stop(proc)
    assert not unpickled.exists()


def test_a_message_whose_frames_together_are_oversized_is_refused_unpickled(tmp_path):
    """libzmq's cap is per frame; out-of-band buffers make a message several
    frames: the home refuses one whose frames together pass max_message."""
    key_file = new_key_file(tmp_path)
    unpickled, payload = evil_payload(tmp_path)
    proc, port = start_home(HOME_READS_ONCE, key_file, max_message=4096)
    try:
        peer = RawPeer(port, _keys.read_key_file(key_file))
        header, _ = peer.request(_wire.JOIN, 1, b"A")
        assert header.op == _wire.OK
        peer.seq += 1
        peer.socket.send_multipart([_wire.pack(_wire.WRITE, 12345, os.getpid(), 1, peer.seq,
                                               header.ref), payload, bytes(3000), bytes(3000)])
        header, body = peer.reply()
        assert header.op == _wire.ERROR and b"max_message" in body[0]
        peer.close()
        good_writer_gets_through(key_file, port, proc)
    finally:
        stop(proc)
    assert not unpickled.exists()


def test_a_frame_that_does_not_parse_is_dropped_unread(tmp_path):
    key_file = new_key_file(tmp_path)
    unpickled, payload = evil_payload(tmp_path)
    proc, port = start_home(HOME_READS_ONCE, key_file)
    try:
        peer = RawPeer(port, _keys.read_key_file(key_file))
        header, _ = peer.request(_wire.JOIN, 1, b"A")
        end = header.ref
        good = _wire.pack(_wire.WRITE, 12345, os.getpid(), 1, 100, end)
        for bad in (payload, good[:-1], b"XX" + good[2:], good[:2] + b"\x09" + good[3:],
                    good[:3] + b"\x63" + good[4:]):
            peer.send(_wire.WRITE, header=bad, body=payload)
            assert peer.reply(0.5) is None
        # a duplicate of an admitted request (same sender, same sequence number) too
        peer.send(_wire.HELLO, body=b"A")
        assert peer.reply()[0].op == _wire.OK
        peer.send(_wire.WRITE, end, payload, header=_wire.pack(_wire.WRITE, 12345, os.getpid(),
                                                               1, peer.seq - 1, end))
        assert peer.reply(0.5) is None
        peer.close()
        good_writer_gets_through(key_file, port, proc)
    finally:
        stop(proc)
    assert not unpickled.exists()


def test_an_admitted_write_is_unpickled(tmp_path):
    """The positive control of the tests above: the same payload, sent the admitted way."""
    key_file = new_key_file(tmp_path)
    unpickled, payload = evil_payload(tmp_path)
    proc, port = start_home(HOME_READS_ONCE, key_file)
    try:
        peer = RawPeer(port, _keys.read_key_file(key_file))
        header, _ = peer.request(_wire.JOIN, 1, b"A")
        header, body = peer.request(_wire.WRITE, header.ref, payload)
        # unpickled (the file exists), then refused by the channel: a file object
        # cannot be pickled into the home's channel
        assert header.op == _wire.ERROR, body
        assert unpickled.exists()
        peer.close()
        good_writer_gets_through(key_file, port, proc)
    finally:
        stop(proc)


def test_security_none_must_be_asked_for_and_warns(tmp_path):
    result = run_script("""
        import warnings
        import pycsp.net as pycsp
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pycsp.configure(security="none")
        assert [w.category for w in caught] == [pycsp.InsecureLinkWarning], caught
        A = pycsp.Channel("A", buffer=1)
        B = pycsp.Channel("A", connect=A.address)  # the same program, over TCP all the same
        (-B)(5)
        print("OK", B.buffer, (+A)())
    """, timeout=40)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["OK", "1", "5"]


def test_an_end_used_where_the_handshake_fails_raises_instead_of_hanging(tmp_path):
    """An end that reaches a process with the wrong key (a pickled end, say, in a child
    started by spawn that did not configure pycsp.net) fails its first operation with
    ChannelConnectException within the connect timeout."""
    key_file = new_key_file(tmp_path)
    other_key = new_key_file(tmp_path, "other.key")
    proc, port = start_home(HOME_READS_ONCE, key_file)
    try:
        made = run_script(peer_source("""
            import pickle, sys
            A = pycsp.Channel("A", connect=("127.0.0.1", PORT))
            sys.stdout.write(pickle.dumps(-A).hex())
        """, key_file, port), timeout=40)
        assert made.returncode == 0, made.stderr
        result = run_script(peer_source(f"""
            import pickle, time
            cout = pickle.loads(bytes.fromhex({made.stdout.strip()!r}))
            t0 = time.monotonic()
            try:
                cout("never")
            except pycsp.ChannelConnectException as exc:
                print("REFUSED", "key file" in str(exc), time.monotonic() - t0 < 10)
        """, other_key, port), timeout=40)
        assert result.stdout.split() == ["REFUSED", "True", "True"], result.stderr
        good_writer_gets_through(key_file, port, proc)
    finally:
        stop(proc)


def test_a_message_with_a_frame_that_is_no_buffer_leaves_nothing_behind():
    """send_frames refuses it before any frame leaves, as send_multipart does:
    else the next message would arrive joined to the half-sent one."""
    from pycsp.net import _link
    context = zmq.Context()
    receiver, sender = context.socket(zmq.PAIR), context.socket(zmq.PAIR)
    try:
        receiver.bind("inproc://frames")
        sender.connect("inproc://frames")
        with pytest.raises(TypeError):
            _link.send_frames(sender, [b"header", "text is no buffer"])
        _link.send_frames(sender, [b"next"])
        assert receiver.recv_multipart() == [b"next"]
    finally:
        receiver.close(0)
        sender.close(0)
        context.term()


# A program's start that plays a home by hand: a raw ROUTER socket ``home`` on
# ``port``, pycsp.net's modules imported, no CurveZMQ.
FAKE_HOME = textwrap.dedent("""
    import threading, time, warnings, zmq
    warnings.simplefilter("ignore")
    import pycsp.net as pycsp
    from pycsp.net import _remote, _settings, _wire
    pycsp.configure(security="none")
    context = zmq.Context()
    home = context.socket(zmq.ROUTER)
    port = home.bind_to_random_port("tcp://127.0.0.1")
""")


def test_a_link_lost_while_something_else_than_the_reply_came_raises(tmp_path):
    """A home that sends a CLAIM and goes away: the request that finds both the
    CLAIM and the disconnection at once raises ChannelLostException (it used
    to keep the CLAIM and wait for ever)."""
    result = run_script(FAKE_HOME + textwrap.dedent("""
        link = _remote._Link(("127.0.0.1", port), _settings.current())
        link.socket.send(b"hello")  # the home learns who it is
        identity, _ = home.recv_multipart()
        home.send_multipart([identity, _wire.pack(_wire.CLAIM, 0, 1, link.stream, 1, 1)])
        home.close(0)  # gone: the CLAIM and the disconnection wait for the request
        time.sleep(0.5)
        try:
            link.request(_wire.PING)
        except pycsp.ChannelLostException:
            print("LOST", len(link.claims), flush=True)
    """), timeout=30)
    assert result.stdout.split() == ["LOST", "1"], result.stderr


def test_a_write_answered_with_a_reply_it_does_not_expect_raises(tmp_path):
    """A write's reply is OK or names why it failed; anything else (a home that
    answers REFUSED, or DATA) raises ChannelSocketException, as a read does
    (it used to return as if a reader had taken the message)."""
    result = run_script(FAKE_HOME + textwrap.dedent("""
        def serve():
            for op in (_wire.REFUSED, _wire.DATA):
                identity, header, *body = home.recv_multipart()
                request = _wire.parse(header, _wire.REQUESTS)
                home.send_multipart([identity, _wire.pack(op, 0, 1, request.stream,
                                                          request.seq)])

        threading.Thread(target=serve, daemon=True).start()
        channel = _remote._rebuild_channel("A", ("127.0.0.1", port), 0, 0)
        cout = _remote.RemoteChannelEndWrite(channel, 1, held=False)
        for _ in range(2):
            try:
                cout("hello")
                print("RETURNED", flush=True)
            except pycsp.ChannelSocketException:
                print("RAISED", flush=True)
    """), timeout=30)
    assert result.stdout.split() == ["RAISED", "RAISED"], result.stdout + result.stderr


# A hand-played home that answers each request with ``respond(identity, request,
# body)`` (its ops in ``seen``), a reader end ``cin`` of its channel 1 read once (the
# link is handshaken then), and SIGALRM raising KeyboardInterrupt 0.3 s from then.
SERVED_THEN_INTERRUPTED = """
    import signal
    seen = []

    def answer(identity, request, op, seq, ref=0, message=None, frames=()):
        body = _wire.dumps(message) if message is not None else list(frames)
        home.send_multipart([identity, _wire.pack(op, 0, 1, request.stream, seq, ref), *body])

    def serve():
        while True:
            identity, header, *body = home.recv_multipart()
            request = _wire.parse(header, _wire.REQUESTS)
            seen.append(request.op)
            respond(identity, request, body)

    threading.Thread(target=serve, daemon=True).start()
    channel = _remote._rebuild_channel("A", ("127.0.0.1", port), 0, 0)
    cin = _remote.RemoteChannelEndRead(channel, 1, held=False)
    print("FIRST", cin(), flush=True)
    signal.signal(signal.SIGALRM, signal.default_int_handler)
    signal.setitimer(signal.ITIMER_REAL, 0.3)
"""


def test_a_read_that_completed_at_its_home_before_its_cancel_keeps_its_message(tmp_path):
    """A signal handler raised in a read, whose home had served it already when the
    CANCEL came: the message it took is the end's next read's, with no request
    (it used to be dropped with the reply)."""
    result = run_script(FAKE_HOME + textwrap.dedent("""
        def respond(identity, request, body):
            if request.op == _wire.READ and len(seen) == 2:
                return  # the read to interrupt: answered once its CANCEL came
            seq = request.ref if request.op == _wire.CANCEL else request.seq
            answer(identity, request, _wire.DATA, seq, message=f"reply to {seq}")
    """) + textwrap.dedent(SERVED_THEN_INTERRUPTED) + textwrap.dedent("""
        try:
            cin()
        except KeyboardInterrupt:
            print("INTERRUPTED", flush=True)
        print("KEPT", cin(), flush=True)
        print("NEXT", cin(), flush=True)
        print("OPS", seen, flush=True)
    """), timeout=30)
    assert result.stdout.splitlines() == [
        "FIRST reply to 1", "INTERRUPTED", "KEPT reply to 2", "NEXT reply to 4",
        f"OPS [{_wire.READ}, {_wire.READ}, {_wire.CANCEL}, {_wire.READ}]"], \
        result.stdout + result.stderr


def test_an_alternation_interrupted_after_its_yes_keeps_what_the_home_committed(tmp_path):
    """A signal handler raised while the alternation awaited the home's answer to
    its yes (ANSWER), and the home had committed the guard: the message read is the
    end's next read's (it used to be dropped with the answer)."""
    result = run_script(FAKE_HOME + textwrap.dedent("""
        position = None

        def respond(identity, request, body):
            global position
            if request.op == _wire.READ:
                answer(identity, request, _wire.DATA, request.seq, message=f"read {request.seq}")
            elif request.op == _wire.ARM:
                _, alternation, position, _ = _wire.ARM_BODY.unpack(body[0])
                answer(identity, request, _wire.ARMED, request.seq)
                answer(identity, request, _wire.CLAIM, alternation, 7)
            elif request.op == _wire.CANCEL:  # of the ANSWER, which committed first
                answer(identity, request, _wire.DATA, request.ref, position, "committed")
    """) + textwrap.dedent(SERVED_THEN_INTERRUPTED) + textwrap.dedent("""
        try:
            pycsp.AltSelect(pycsp.InputGuard(cin))
        except KeyboardInterrupt:
            print("INTERRUPTED", flush=True)
        print("KEPT", cin(), flush=True)
        print("OPS", seen, flush=True)
    """), timeout=30)
    lines = result.stdout.splitlines()
    assert lines[:3] == ["FIRST read 1", "INTERRUPTED", "KEPT committed"], \
        result.stdout + result.stderr
    # (then the alternation's DISARM, which may come after this line)
    assert lines[3].startswith(f"OPS {[_wire.READ, _wire.ARM, _wire.ANSWER, _wire.CANCEL]}"[:-1])
