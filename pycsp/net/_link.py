"""The secured ZeroMQ sockets of pycsp.net: CurveZMQ unless security="none" was asked for.

A home binds one ROUTER socket.  Under CurveZMQ it is a CURVE server whose
ZAP handler (``ZapHandler``, answered in the home's own poll loop) admits
exactly the public keys of its allow-list; a peer with a wrong key or none
never completes the handshake, so nothing it sends reaches the home.  The
home also checks each message's ZAP user id before it reads the body
(``authenticated``).  ``ZMQ_MAXMSGSIZE`` caps what a peer may send: libzmq
drops the connection of a peer that sends more, before the message is
delivered.  Bytes that are not ZMTP (junk on the port) end the connection in
libzmq's handshake.
"""
from __future__ import annotations

import warnings
from typing import NamedTuple

import zmq
from zmq.utils import z85
from zmq.utils.monitor import recv_monitor_message

from ._keys import KeyPair, new_key_pair, read_key_file
from ._wire import OUT_OF_BAND_FROM

ZAP_ENDPOINT = "inproc://zeromq.zap.01"  # where libzmq asks (RFC 27)
ZAP_DOMAIN = b"pycsp"
PEER_USER_ID = "pycsp-peer"  # what the ZAP handler names an admitted peer
#: The largest message a home accepts by default (bytes); ``configure(max_message=)``.
DEFAULT_MAX_MESSAGE = 256 * 1024 * 1024
SECURITY_MODES = ("curve", "none")
# pyzmq's flags as plain ints: its enum members cost about a microsecond a use
NOBLOCK, SNDMORE = int(zmq.NOBLOCK), int(zmq.SNDMORE)
# pyzmq's own send and recv, and zmq_poll, without its Python layer (the sugar
# Socket.send's routing_id/group handling, Poller.poll): a few us per message.
# Positional arguments: send(socket, data, flags, copy), recv(socket, flags, copy),
# zmq_poll([(socket or fd, events)], timeout ms or -1).
raw_send, raw_recv, zmq_poll = zmq.backend.Socket.send, zmq.backend.Socket.recv, zmq.zmq_poll


class InsecureLinkWarning(UserWarning):
    """pycsp.net was asked to run its links without CurveZMQ (``security="none"``):
    anyone who reaches the port can read, write and inject messages."""


class Security(NamedTuple):
    curve: bool
    keys: KeyPair | None  # this node's, under CurveZMQ
    allowed: frozenset[bytes]  # Z85 public keys of the peers a home admits


def security_from(mode: str, key_file: str | None) -> Security:
    """The links' security for ``mode`` ("curve" or "none") and an optional key file.

    Under "curve" without a key file, a key pair is made for the run: links to
    programs started separately need the key file both name.  "none" warns
    (InsecureLinkWarning).
    """
    if mode not in SECURITY_MODES:
        raise ValueError(f"pycsp.net: security must be one of {', '.join(SECURITY_MODES)}, "
                         f"not {mode!r}")
    if mode == "none":
        warnings.warn("pycsp.net: security='none': links are neither authenticated nor "
                      "encrypted; anyone who reaches the port can read and inject messages, "
                      "and the home unpickles what they send", InsecureLinkWarning, stacklevel=3)
        return Security(False, None, frozenset())
    keys = read_key_file(key_file) if key_file else new_key_pair()
    return Security(True, keys, frozenset((keys.public,)))


def bind_home(context: zmq.Context, security: Security, host: str, port: int,
              max_message: int) -> tuple[zmq.Socket, int]:
    """A home's ROUTER socket bound to ``host:port`` (port 0: any free one), and its port.

    Raises:
        zmq.ZMQError: the bind failed (EADDRINUSE: the port is taken).
    """
    sock = context.socket(zmq.ROUTER)
    sock.linger = 1000  # replies still queued when the home stops get a second to leave
    sock.maxmsgsize = max_message
    if security.curve:
        assert security.keys is not None
        sock.curve_server = True
        sock.curve_publickey = security.keys.public
        sock.curve_secretkey = security.keys.secret
        sock.zap_domain = ZAP_DOMAIN
    try:
        sock.bind(f"tcp://{host}:{port or '*'}")
    except zmq.ZMQError:
        sock.close(0)
        raise
    endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
    return sock, int(endpoint.rsplit(":", 1)[1])


def connect_to_home(context: zmq.Context, security: Security, host: str, port: int,
                    heartbeat: tuple[float, float], *, only_when_connected: bool = False,
                    connect_timeout: float = 0.0) -> zmq.Socket:
    """A DEALER socket to a home at ``host:port`` (the connection is made in the background).

    ``heartbeat``: (interval, timeout) in seconds of ZMTP's heartbeats: a home
    that answers none for the timeout ends the connection (taken as lost).
    ``only_when_connected``: a send while no connection is up fails
    (zmq.Again) instead of waiting for one.  ``connect_timeout``: seconds
    before a TCP connect that goes unanswered is tried again (0: the
    system's, minutes).
    """
    sock = context.socket(zmq.DEALER)
    sock.linger = 0
    sock.heartbeat_ivl = int(heartbeat[0] * 1000)
    sock.heartbeat_timeout = int(heartbeat[1] * 1000)
    sock.immediate = only_when_connected
    sock.connect_timeout = int(connect_timeout * 1000)
    if security.curve:
        assert security.keys is not None
        # The key file's public key is the home's: the handshake fails unless
        # the home holds the same file's secret key.
        sock.curve_serverkey = security.keys.public
        sock.curve_publickey = security.keys.public
        sock.curve_secretkey = security.keys.secret
    sock.connect(f"tcp://{host}:{port}")
    return sock


def frames_of(body) -> list:
    """A message's body as frames: none (None), one (bytes), or a list as it is."""
    if body is None:
        return []
    return body if isinstance(body, list) else [body]


def send_frames(socket: zmq.Socket, frames: list) -> None:
    """Send ``frames`` as one message.  pyzmq copies frames under its
    copy_threshold (64 KiB) and sends bigger ones without a copy: they refer
    to their owner's memory until libzmq has sent them.  Frame by frame,
    because send_multipart costs about 2 us more a message."""
    for frame in frames:
        # as send_multipart does: a frame that is no buffer is refused before
        # any frame leaves (else the next message would join a half-sent one)
        if not isinstance(frame, (bytes, zmq.Frame)):
            memoryview(frame)
    last = len(frames) - 1
    send = socket.send
    for index, frame in enumerate(frames):
        try:
            send(frame, SNDMORE if index < last else 0, copy=False)
        except zmq.ZMQError:
            raise
        except BaseException:
            send_rest(socket, frames[index + 1:])
            raise


def send_rest(socket: zmq.Socket, frames: list) -> None:
    """The frames left of a message whose send a signal handler interrupted
    (pyzmq runs handlers in its calls, before or after the frame is queued):
    never half a message, which would take in the next one's frames.  Had the
    interrupted frame not been queued, these arrive as a message of their own,
    which a home drops (it does not parse) or refuses (a body without a frame)."""
    last = len(frames) - 1
    for index, frame in enumerate(frames):
        while True:
            try:
                socket.send(frame, SNDMORE if index < last else 0, copy=False)
                break
            except zmq.ZMQError:
                return
            except BaseException:
                # yet another handler: sent again (twice at worst: a body that
                # the home refuses, where half a message would swallow the next)
                continue


def receive_rest(socket: zmq.Socket, frames: list) -> list:
    """``frames`` with the rest of the message being received appended (its
    last frame received said more): bytes, or the zmq.Frame received for one
    of OUT_OF_BAND_FROM bytes or more (not copied: a message's out-of-band
    buffers become views of it).  recv_multipart costs about 3 us more a
    message, and asking the socket for RCVMORE 1 us a frame."""
    while True:
        frame = raw_recv(socket, 0, False)
        frames.append(frame if len(frame) >= OUT_OF_BAND_FROM else frame.bytes)
        if not frame.more:
            return frames


def authenticated(frame: zmq.Frame, security: Security) -> bool:
    """Whether ``frame`` came from a peer that the ZAP handler admitted."""
    if not security.curve:
        return True
    try:
        return frame.get("User-Id") == PEER_USER_ID
    except zmq.ZMQError:
        return False


class ZapHandler:
    """Answers libzmq's authentication requests for the home's socket (RFC 27):
    CURVE clients whose public key is in ``allowed`` pass, nothing else does.
    Bound before the home's socket; ``answer()`` when its socket is readable."""

    def __init__(self, context: zmq.Context, allowed: frozenset[bytes]) -> None:
        self.allowed_binary = frozenset(z85.decode(key) for key in allowed)
        self.socket = context.socket(zmq.REP)
        self.socket.linger = 0
        self.socket.bind(ZAP_ENDPOINT)
        self.refused = 0  # handshakes refused, for tests and statistics

    def answer(self) -> None:
        frames = self.socket.recv_multipart()
        request_id = frames[1] if len(frames) > 1 else b""
        ok = (len(frames) == 7 and frames[0] == b"1.0" and frames[5] == b"CURVE"
              and frames[6] in self.allowed_binary)
        if not ok:
            self.refused += 1
        self.socket.send_multipart([b"1.0", request_id, b"200" if ok else b"400",
                                    b"OK" if ok else b"key not allowed",
                                    PEER_USER_ID.encode() if ok else b"", b""])

    def close(self) -> None:
        self.socket.close(0)


def pending_events(monitor: zmq.Socket):
    """The events a socket's monitor has queued (``get_monitor_socket``), without waiting."""
    while True:
        try:
            yield recv_monitor_message(monitor, zmq.NOBLOCK)["event"]
        except zmq.Again:
            return
