"""A channel homed in another program: ``Channel(name, connect=(host, port))`` and its ends.

Each operation is one round trip to the home's agent: a request, then the
reply once the operation completed there (a write returns when a reader
took the message).  Each process, and each thread in it, has its own ZeroMQ
socket to a home, made on first use in that process: a forked child never
touches a socket or context of its parent (ZeroMQ is not fork-safe), it
makes its own.

Joins: ``reader()``/``writer()`` join the home's channel as one more reader
or writer (one round trip); the join belongs to the home's agent, which
holds it until the end retires.  Ends of such a channel take part in
alternations through ``_alt`` (the commit protocol across homes).

An end can also arrive in a message (``_mobile``): it stands for the join
that was sent, and registers its program with the home as the join's holder
(HOLD, sent without waiting for the answer); the program that sent it no
longer leaves it at the home when it ends.
"""
from __future__ import annotations

import atexit
import collections
import itertools
import os
import random
import threading
import time

import zmq

import csp_ext

from .._errors import ChannelConnectException, ChannelLostException, ChannelSocketException
from ..processes import _fork
from . import _heartbeat, _link, _settings, _wire

_LAST_REPLY_GRACE_MS = 200
# The requests taken back when a signal handler raises in them: those that
# may wait at the home, or commit there.  (A RETIRE, a JOIN, a POISON... is
# left to its home: its reply is dropped.)
_WITHDRAWN = frozenset((_wire.READ, _wire.WRITE, _wire.ARM, _wire.ANSWER))
_NOTHING_RECEIVED = [b""]  # a link's ``received`` once its request took its reply
_send, _recv, _zmq_poll = _link.raw_send, _link.raw_recv, _link.zmq_poll
# For a deadlock across programs (``_quiescence``): this thread waits for a
# home's answer; a message to or from a home (the arrival ends such a wait).
_remote_wait = csp_ext.shm_remote_wait
_net_sent, _net_received = csp_ext.shm_net_sent, csp_ext.shm_net_received
_LEAVE_TIMEOUT = 1.0


class _PerProcess(threading.local):
    """This thread's sockets, of this process (a forked child starts afresh)."""

    def __init__(self):
        self.pid = os.getpid()
        self.links = {}  # (host, port) -> _Link
        self.spares = {}  # (host, port) -> [_Link]: for signal handlers (``_link_to``)


_context: zmq.Context | None = None
_context_pid = 0
_context_lock = threading.Lock()
_incarnation = random.getrandbits(63)
_streams = itertools.count(1)
_mine = _PerProcess()
_parents_links: list[_PerProcess] = []  # in a forked child: its ancestors' (never used)
# Names this program (its processes share it: not drawn again at fork) as
# the holder of ends that arrived in messages.
_HOLDER = _wire.HOLDER.pack(random.getrandbits(63))
# Set in a home's agent, which hands ends on in messages without holding them.
agent_process = False


def _after_fork_in_child():
    global _context, _context_pid, _incarnation, _streams, _context_lock, _mine, _kept_lock
    _context, _context_pid = None, 0  # the parent's: never used, never closed, here
    # The forking thread's links are the parent's sockets: kept referenced, so
    # that pyzmq never collects them here (it would warn of unclosed sockets).
    _parents_links.append(_mine)
    _mine = _PerProcess()
    _incarnation = random.getrandbits(63)
    _streams = itertools.count(1)
    _context_lock = threading.Lock()
    kept.clear()  # the parent's, which it reads itself
    _kept_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _zmq_context():
    global _context, _context_pid
    with _context_lock:
        if _context is None or _context_pid != os.getpid():
            _context, _context_pid = zmq.Context(), os.getpid()
            atexit.register(_close_at_exit, _context, _context_pid)
        return _context


def _close_at_exit(context, pid):
    # Nothing waits to be sent at exit (every request waited for its reply);
    # a socket still retrying a refused handshake would hold term() forever.
    if os.getpid() == pid:
        context.destroy(linger=0)


class _Link:
    """One thread's socket to one home, its sequence numbers, and whether the home is lost.

    A home whose connection breaks after its handshake succeeded is lost for
    good (nothing is resent after a reconnect: a request might have been
    served already): the request waiting then, and every later one, raises
    ChannelLostException.  ZeroMQ's heartbeats find a silent peer.  So does a
    home that fenced this process (``_heartbeat``), for every thread's link.
    """

    def __init__(self, address, settings):
        self.address, self.settings = address, settings
        self.pid = os.getpid()
        self.connect_timeout = settings.connect_timeout
        self.socket = _link.connect_to_home(
            _zmq_context(), settings.security, *address,
            (settings.heartbeat_interval, settings.heartbeat_timeout))
        self.monitor = self.socket.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED
                                                      | zmq.EVENT_DISCONNECTED)
        self.stream = next(_streams)
        self.seq = 0
        self.handshaken = False
        self.beating = False  # this process sends the home heartbeats
        self.lost = False
        self.claims = []  # CLAIMs that came while waiting for a reply (``_alt``)
        # The reply of the last request that a signal handler interrupted, if
        # it completed at the home all the same (``_withdraw``), else None.
        self.late = None
        self.failing = None  # the exception a request raises itself (``_fail``)
        # The last message received: a request interrupted before it looked at
        # it finds its reply here (``_withdraw``).
        self.received = _NOTHING_RECEIVED
        self.busy = 0  # requests and alternations of this thread using it now (``_link_to``)
        self.poll_items = [(self.socket, zmq.POLLIN), (self.monitor, zmq.POLLIN)]

    def __del__(self):
        # The thread that made this link ended (its threading.local went):
        # close its sockets here, not leave them to the garbage collector,
        # which warns (ResourceWarning).  Never a parent's socket in a
        # forked child: ZeroMQ is not fork-safe.
        if getattr(self, "pid", None) == os.getpid():  # None: __init__ did not finish
            for socket in (getattr(self, "monitor", None), getattr(self, "socket", None)):
                if socket is not None:
                    socket.close(linger=0)

    def _note_events(self):
        for event in _link.pending_events(self.monitor):
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self.handshaken = True
                self._beat()
            elif event == zmq.EVENT_DISCONNECTED and self.handshaken:
                self.lost = True

    def _beat(self):
        """A home is there (not before: nothing to tell a home that never
        answered): from now on it watches this process, which sends it heartbeats."""
        if not self.beating:
            self.beating = True
            _heartbeat.watch(self.address, _zmq_context(), self.settings, _incarnation,
                             next(_streams))

    def _lost(self):
        host, port = self.address
        if _heartbeat.is_fenced(self.address):
            return ChannelLostException(
                self.address, f"pycsp.net: the home at {host}:{port} declared this process "
                f"dead (it heard no heartbeat from it within its timeout: stopped, or cut "
                f"off) and fenced it; its channels are lost to this process")
        return ChannelLostException(self.address, f"pycsp.net: the connection to the home at "
                                    f"{host}:{port} broke (it ended, or its host is gone); "
                                    f"its channels are lost to this process")

    def request(self, op, ref=0, body=None, timeout=None):
        """Send a request; its reply's header and body frames (TimeoutError
        past ``timeout`` seconds).  A reply to an older request is dropped.
        Until the first handshake succeeded, waits at most 0.9.2's
        SOCKETS_CONNECT_TIMEOUT for it (ChannelConnectException)."""
        if self.lost or _heartbeat.is_fenced(self.address):
            self.late = None
            raise self._lost()
        self.busy += 1
        try:
            self.seq = seq = self.seq + 1
            try:
                self._send_request(_wire.pack(op, _incarnation, self.pid, self.stream, seq, ref),
                                   body)
                _remote_wait(True)  # (its reply's arrival ends it: _net_received)
                if timeout is None and self.handshaken:
                    reply = self._await_reply(seq)
                    if reply is not None:
                        return reply
                return self._wait_for_reply(seq, timeout)
            except BaseException as exc:
                self.late = None
                if exc is self.failing or isinstance(exc, zmq.ZMQError):
                    self.failing = None
                    raise  # the request's own failure, not a handler's exception
                if op in _WITHDRAWN:
                    # A signal handler raised (pyzmq runs them in its calls):
                    # take the request back, as pycsp.processes withdraws a
                    # blocked operation's offers, or learn that it completed.
                    self.late = self._withdraw(seq)
                raise
        finally:
            _remote_wait(False)
            self.busy -= 1

    def _fail(self, exc):
        """``exc``, noted as the request's own failure (``request``: not a
        signal handler's exception, whatever its type)."""
        self.failing = exc
        return exc

    def _withdraw(self, seq):
        """Take back the request ``seq``, which a signal handler interrupted:
        its reply if it completed at the home first (the caller keeps what it
        brought: ``late``), else None (withdrawn there, never sent, or the
        home is lost).  The home answers a CANCEL at once: CANCELLED, or the
        request's own reply, already on its way; then it acknowledges the CANCEL
        (so that a reply lost to a handler leaves nothing to wait for)."""
        header = _wire.parse(self.received[0], _wire.FROM_HOME)
        if header is not None and header.seq == seq and header.op != _wire.CLAIM:
            return header, self.received[1:]  # it came, and the handler ran just after
        while True:
            try:
                self.send_only(_wire.CANCEL, seq)
                break
            except zmq.ZMQError:
                return None
            except BaseException:
                continue  # another handler raised: a CANCEL more is harmless
        cancel_seq = self.seq
        while True:
            try:
                # (bounded by the handshake's timeout if the link has not made it yet)
                reply = self._wait_for_reply(seq, None, cancel_seq)
            except BaseException as exc:
                if exc is self.failing or isinstance(exc, zmq.ZMQError):
                    self.failing = None
                    return None  # the home is lost, or was never reached
                continue  # another handler raised: this one is being taken back all the same
            if reply[0].seq == cancel_seq:
                # The home acknowledges a CANCEL after the request's own answer:
                # that never came here (a handler raised in the very receive of
                # it, which pyzmq had taken off the socket).
                return None
            return None if reply[0].op == _wire.CANCELLED else reply

    def _wait_for_reply(self, seq, timeout, or_seq=0):
        """The general wait of a request: the handshake, a timeout, the monitor's
        news.  ``or_seq``: the reply to that request ends the wait too."""
        deadline = None if timeout is None else time.monotonic() + timeout
        handshake_by = None if self.handshaken else time.monotonic() + self.connect_timeout
        while True:
            if deadline is None and handshake_by is None:
                wait = None
            else:
                ends = [t for t in (deadline, handshake_by) if t is not None]
                wait = max(0.0, min(ends) - time.monotonic()) * 1000
            ready = _zmq_poll(self.poll_items, -1 if wait is None else int(wait))
            replied = any(what is self.socket for what, _ in ready)
            if not ready:
                if deadline is not None and time.monotonic() >= deadline:
                    raise self._fail(TimeoutError())
                if handshake_by is not None and not self.handshaken:
                    raise self._fail(self._no_handshake())
            elif not replied or len(ready) > 1:  # the monitor has news
                self._note_events()
                if self.handshaken:
                    handshake_by = None
                if self.lost and not replied:
                    # A reply that the home sent just before it ended may be
                    # behind the event that says so: a moment for it to come.
                    replied = bool(self.socket.poll(_LAST_REPLY_GRACE_MS))
            if replied:
                self.received = reply = self._receive()
                header = _wire.parse(reply[0], _wire.FROM_HOME)
                if header is not None and header.op == _wire.CLAIM:
                    self.claims.append(header)  # for the alternation that armed it
                elif header is not None and (header.seq == seq or header.seq == or_seq):
                    if not self.handshaken:
                        self.handshaken = True
                        self._beat()
                    if header.op == _wire.FENCED:
                        _heartbeat.fence(self.address)
                        raise self._fail(self._lost())
                    self.received = _NOTHING_RECEIVED
                    return header, reply[1:]
                _remote_wait(True)  # not its reply (a claim, an older request's): wait on
                if self.lost and not self.socket.poll(_LAST_REPLY_GRACE_MS):
                    raise self._fail(self._lost())  # not the reply; nothing more comes
            elif self.lost:
                raise self._fail(self._lost())

    def _send_request(self, header, body):
        """A request's frames: the header, then the body (None, bytes, or frames).
        A signal handler that raises inside a send is raised once the other
        frames are sent (``_link.send_rest``)."""
        socket = self.socket
        _net_sent()
        if type(body) is bytes:  # the usual body, without send_frames' checks
            try:
                _send(socket, header, _link.SNDMORE, False)
            except BaseException:
                _link.send_rest(socket, [body])
                raise
            _send(socket, body, 0, False)
        elif body is None:
            _send(socket, header, 0, False)
        else:
            _link.send_frames(socket, [header, *_link.frames_of(body)])

    def _await_reply(self, seq, or_seq=0):
        """The wait of a request in the steady state (handshaken, no
        timeout): its reply's (header, body frames), or None once the monitor
        has news (the caller's general wait deals with it).  The common case
        without pyzmq's Python layer: one zmq_poll, the frames, one parse.
        ``or_seq``: the reply to that request ends the wait too."""
        socket, items = self.socket, self.poll_items
        while True:
            ready = _zmq_poll(items, -1)
            if len(ready) != 1 or ready[0][0] is not socket:
                return None
            first = _recv(socket, 0, False)
            self.received = reply = ([first.bytes] if not first.more
                                     else _link.receive_rest(socket, [first.bytes]))
            _net_received()
            header = _wire.parse(reply[0], _wire.FROM_HOME)
            if header is None:
                pass
            elif header.op == _wire.CLAIM:
                self.claims.append(header)  # for the alternation that armed it (``_alt``)
            elif header.seq == seq or header.seq == or_seq:
                if header.op == _wire.FENCED:
                    _heartbeat.fence(self.address)
                    raise self._fail(self._lost())
                self.received = _NOTHING_RECEIVED  # (not to hold a big message's frames)
                return header, reply[1:]
            _remote_wait(True)  # not its reply: wait on

    def send_only(self, op, ref=0, body=None):
        """Send a request without waiting for its reply: the reply is dropped
        when it comes, as a reply to an older request than the next one."""
        if self.lost:
            return
        self.seq += 1
        self.busy += 1  # a signal handler between its frames must not send its own here
        try:
            self._send_request(_wire.pack(op, _incarnation, self.pid, self.stream, self.seq, ref),
                               body)
        finally:
            self.busy -= 1
        # The home is there (the end came from it), and from now on it watches
        # this process, which may send nothing else for a long time.
        self._beat()

    def take_claims(self):
        """Without waiting: the CLAIMs that came (kept while waiting for replies,
        then read from the socket); replies to older requests are dropped.
        ChannelLostException if the home is lost."""
        while self.socket.poll(0):
            header = _wire.parse(self._receive()[0], _wire.FROM_HOME)
            if header is not None and header.op == _wire.CLAIM:
                self.claims.append(header)
        if self.monitor.poll(0):
            self._note_events()
        if self.lost and not self.claims:
            raise self._lost()
        claims, self.claims = self.claims, []
        return claims

    def _receive(self):
        """A reply's frames, as bytes, but a big one as the zmq.Frame received:
        not copied (a message's out-of-band buffers become views of it)."""
        first = _recv(self.socket, 0, False)
        frames = (_link.receive_rest(self.socket, [first.bytes]) if first.more
                  else [first.bytes])
        _net_received()
        return frames

    def _no_handshake(self):
        host, port = self.address
        return ChannelConnectException(
            self.address, f"pycsp.net: no secure connection to {host}:{port} within "
            f"{self.connect_timeout:g} s (is the home running there, and does this process "
            f"name the same key file? A child started by 'spawn' needs pycsp.net.configure() "
            f"at import, or PYCSP_NET_KEY_FILE)")


def _link_to(address):
    # A forked child starts with a fresh _mine (_after_fork_in_child): no
    # getpid() (a system call) per request.
    link = _mine.links.get(address)
    if link is None or link.busy:
        return _another_link(address)
    return link


def _another_link(address):
    """This thread's first link to ``address``, or a spare one while that is busy.

    A link is busy while a request or an alternation of this thread uses it.
    Only a signal handler, which Python runs inside the wait of that request
    (pyzmq's poll runs handlers and polls again), asks for a link then: a
    request of its own on the busy link would read, and drop, the reply that
    the interrupted request waits for, and that wait would never end.  On a
    spare link of its own the handler's request is another stream to the home,
    as another thread's; the interrupted wait finds its reply when it resumes."""
    links = _mine.links
    if address not in links:
        link = links[address] = _Link(address, _settings.current())
        return link
    spares = _mine.spares.setdefault(address, [])
    for spare in spares:
        if not spare.busy:
            return spare
    spare = _Link(address, _settings.current())
    spares.append(spare)
    return spare


class RemoteChannel:
    """A channel homed in another program, reached at ``address`` = (host, port).

    Made by ``Channel(name, connect=(host, port))``, which asks the home once
    (0.9.2's SOCKETS_CONNECT_TIMEOUT bounds the wait).
    """

    __slots__ = ("name", "address", "buffer", "max_message", "home")

    def __init__(self, name: str, address: tuple[str, int]) -> None:
        host, port = address
        self.name, self.address = name, (str(host), int(port))
        settings = _settings.current()
        timeout = settings.connect_timeout
        try:
            header, body = _link_to(self.address).request(_wire.HELLO, body=name.encode(),
                                                          timeout=timeout)
        except TimeoutError:
            raise ChannelConnectException(
                self.address, f"pycsp.net: no answer for channel {name!r} within {timeout:g} s "
                f"(is its home running there, and do both programs name the same key "
                f"file?)") from None
        if header.op == _wire.NO_CHANNEL:
            raise ChannelConnectException(self.address,
                                          f"pycsp.net: no channel named {name!r} is homed at")
        self.buffer = header.ref
        self.max_message = int(body[0]) if body else 0
        self.home = header.incarnation  # the home's number (``_mobile``)

    def _request(self, op, ref=0, body=None, timeout=None):
        header, reply = _link_to(self.address).request(op, ref, body, timeout)
        if header.op == _wire.NO_CHANNEL:
            raise self._no_longer_homed()
        return header, reply

    def _no_longer_homed(self):
        return ChannelSocketException(self.address,
                                      f"pycsp.net: channel {self.name!r} is no longer homed at")

    def _join(self, writer):
        header, reply = self._request(_wire.JOIN, 1 if writer else 0, self.name.encode())
        return header.ref

    def reader(self) -> RemoteChannelEndRead:
        """Join as one more reader (one round trip to the home)."""
        return RemoteChannelEndRead(self, self._join(False))

    def writer(self) -> RemoteChannelEndWrite:
        """Join as one more writer (one round trip to the home)."""
        return RemoteChannelEndWrite(self, self._join(True))

    __pos__ = reader
    __neg__ = writer

    def poison(self) -> None:
        """Poison the channel at its home: every party, in every program, sees it.
        A lost home has nothing left to poison: then it does nothing."""
        try:
            self._request(_wire.POISON, 0, self.name.encode())
        except ChannelLostException:
            pass

    def __reduce__(self):
        return (_rebuild_channel, (self.name, self.address, self.buffer, self.max_message,
                                   self.home))

    def __repr__(self):
        host, port = self.address
        return f"<Channel {self.name!r} homed at {host}:{port} buffer={self.buffer}>"


def _rebuild_channel(name, address, buffer, max_message, home=0):
    channel = RemoteChannel.__new__(RemoteChannel)
    channel.name, channel.address, channel.buffer = name, address, buffer
    channel.max_message, channel.home = max_message, home
    return channel


class _RemoteEnd:
    # moved: sent to another program in a message (this one no longer holds
    # it at the home); held: this program holds it (False: it arrived in a
    # message and has not told the home yet, or it is in a home's agent);
    # shared: pickled for another process of this program, which may hold it now.
    __slots__ = ("channel", "number", "retired", "moved", "held", "shared", "fair_stamp")
    is_writer = False

    def __init__(self, channel: RemoteChannel, number: int, retired: bool = False,
                 held: bool = True) -> None:
        self.channel, self.number, self.retired = channel, number, retired
        self.moved, self.held, self.shared = False, held, False
        self.fair_stamp = 0  # when FairSelect last chose it (``_alt``)
        if held and not agent_process:
            _note_made_here(self)

    def hold(self) -> None:
        """This program holds the end now (it arrived in a message): tell its
        home, without waiting; nothing in a home's agent."""
        if self.held or agent_process:
            return
        self.held = True
        _note_made_here(self)
        if not self.retired:
            _link_to(self.channel.address).send_only(_wire.HOLD, self.number, _HOLDER)

    def _check(self):
        if self.retired:
            raise csp_ext.ChannelRetireException(f"{self!r} is retired")

    def _outcome(self, header, reply):
        if header.op == _wire.NO_CHANNEL:
            raise self.channel._no_longer_homed()
        if header.op == _wire.POISONED:
            raise csp_ext.ChannelPoisonException(f"channel {self.channel.name!r} is poisoned")
        if header.op == _wire.RETIRED:
            raise csp_ext.ChannelRetireException(f"channel {self.channel.name!r} is retired")
        if header.op == _wire.DEADLOCKED:  # every program of the run is blocked (_quiescence)
            from .._deadlock import make_error

            number = int(reply[0]) if reply and bytes(reply[0]).isdigit() else 0
            raise make_error(("run", number, -1, [((0, repr(self.channel.name)),
                                                   self.is_writer)]), False)
        if header.op == _wire.ERROR:
            raise ChannelSocketException(self.channel.address, "pycsp.net: the home refused: "
                                         + (reply[0].decode("utf-8", "replace") if reply else ""))

    def retire(self) -> None:
        """Leave the channel (at its home); harmless twice."""
        if not self.retired:
            self.retired = True
            _forget_made_here(self)  # nothing to leave at the exit
            try:
                self.channel._request(_wire.RETIRE, self.number)
            except ChannelLostException:
                pass  # a lost home holds no join any more

    def poison(self) -> None:
        """Poison the channel at its home."""
        self.channel.poison()

    def __reduce__(self):
        self.shared = True
        return (_rebuild_end, (type(self), self.channel, self.number, self.retired, self.held))

    def __repr__(self):
        kind = "ChannelEndWrite" if self.is_writer else "ChannelEndRead"
        return f"<{kind} on {self.channel!r}{' (retired)' if self.retired else ''}>"


# Ends made in this process, kept until it ends even when the program drops
# them (a dropped end is not retired, here as locally): each one that is
# not retired then is left at its home.  One per join: an end that arrives
# again (a reply end sent with every request) replaces the one before.
_made_here: dict[tuple[tuple[str, int], int], _RemoteEnd] = {}
_made_here_pid = 0


def _note_made_here(end):
    global _made_here, _made_here_pid
    if _made_here_pid != os.getpid():  # a forked child's ends are its own
        _made_here, _made_here_pid = {}, os.getpid()
        _zmq_context()  # closed at exit after the ends left (atexit: last in, first out)
        atexit.register(_leave_at_exit, os.getpid())
    _made_here[(end.channel.address, end.number)] = end


def _forget_made_here(end):
    key = (end.channel.address, end.number)
    if _made_here_pid == os.getpid() and _made_here.get(key) is end:
        del _made_here[key]


def _leave_at_exit(pid, keep_shared=False):
    """This program ends: tell each home of an end it did not retire, so that
    the home does not wait for it when it ends itself (_agent.Agent.serve).
    ``keep_shared``: not the ends handed to other processes of the program.
    To each home, every LEAVE but the last is sent without waiting; the last
    one's reply comes after the others were served (one socket keeps order),
    so an exit costs one round trip per home, not one per end."""
    if os.getpid() != pid:
        return
    by_home = {}
    for end in list(_made_here.values()):
        if not end.retired and not end.moved and not (keep_shared and end.shared):
            by_home.setdefault(end.channel.address, []).append(end)
    for address, ends in by_home.items():
        try:
            link = _link_to(address)
            for end in ends[:-1]:
                link.send_only(_wire.LEAVE, end.number, _HOLDER)
            ends[-1].channel._request(_wire.LEAVE, ends[-1].number, _HOLDER,
                                      timeout=_LEAVE_TIMEOUT)
        except (TimeoutError, ChannelSocketException, zmq.ZMQError):
            pass  # the home is gone or does not answer: nothing waits there


def _leave_at_child_end():
    """A CSP process of pycsp.processes ends by os._exit, which runs no atexit
    handler: it leaves the ends it made or received from another program here
    (before its BYE: on_child_end runs the hooks last registered first, and
    _heartbeat registered its own first).  Not one it handed to another
    process of the program: LEAVE is the program's, and that one may hold it."""
    if _made_here_pid == os.getpid():
        _leave_at_exit(_made_here_pid, keep_shared=True)


_fork.on_child_end(_leave_at_child_end)


def _rebuild_end(kind, channel, number, retired, held=True):
    """The end as pickled by a process of this program (the same join), or
    handed on by the agent from another program: the process it arrives in
    holds it at the home from now on (HOLD: its death poisons the join, not
    the death or the BYE of the process that sent it), whether the sender
    held it (``held``) or not."""
    end = kind(channel, number, retired, held=False)
    end.hold()
    return end


# The core's words for a wrong call (csp_ext's arguments.c), so that a
# program reads the same TypeError whichever channel its end belongs to.
_WRITER_CALL = ("a writer end takes exactly one message: cout(msg); "
                "to read, use a reader end (ch.reader(), +ch or IN(ch))")
_READER_CALL = ("a reader end is called with no arguments: msg = cin(); "
                "to write, use a writer end (ch.writer(), -ch or OUT(ch))")


class RemoteChannelEndRead(_RemoteEnd):
    """A reader end of a channel homed in another program: ``cin()`` reads."""

    __slots__ = ()

    def __call__(self, *args, **kwargs):
        if args or kwargs:
            raise TypeError(_READER_CALL)
        if kept:
            message = take_kept(self)
            if message is not NOTHING_KEPT:
                return message
        if self.retired:
            self._check()
        link = _link_to(self.channel.address)
        try:
            header, reply = link.request(_wire.READ, self.number)
        except BaseException:
            keep_late(self, link, ())
            raise
        if header.op == _wire.DATA:
            try:
                return _wire.loads(reply)
            except BaseException:  # a handler that raised in it, or the message itself
                link.late = header, reply
                keep_late(self, link, ())  # (if it loads now, for the next read)
                raise
        self._outcome(header, reply)
        raise ChannelSocketException(self.channel.address, f"pycsp.net: unexpected reply "
                                     f"{header.op} to a read")


class RemoteChannelEndWrite(_RemoteEnd):
    """A writer end of a channel homed in another program: ``cout(msg)`` writes;
    it returns once a reader took the message (rendezvous), or once the home's
    buffer took it."""

    __slots__ = ()
    is_writer = True

    def __call__(self, *args, **kwargs):
        if len(args) != 1 or kwargs:
            raise TypeError(_WRITER_CALL)
        msg, = args
        if self.retired:
            self._check()
        frames, carried = message_frames(self.channel, msg)
        link = _link_to(self.channel.address)
        try:
            header, reply = link.request(_wire.WRITE, self.number,
                                         frames[0] if len(frames) == 1 else frames)
        except BaseException:
            keep_late(self, link, carried)
            raise
        if header.op != _wire.OK:
            self._outcome(header, reply)
            raise ChannelSocketException(self.channel.address, f"pycsp.net: unexpected reply "
                                         f"{header.op} to a write")
        for end in carried:  # a reader has them now, not this program
            end.moved = True


# Messages that reads took at their homes after all, when a signal handler had
# raised in them (``_Link._withdraw``): each end's, for its next read (or the
# next alternation over it) before any other, as pycsp.processes would never
# have taken them.
kept: dict[_RemoteEnd, collections.deque] = {}
_kept_lock = threading.Lock()
NOTHING_KEPT = object()


def keep_late(end, link, carried):
    """After a signal handler raised in an operation of ``end`` through
    ``link``: what the operation did at its home all the same stays done (a
    message read is kept for the end's next read; the ends a message written
    carried are the reader's now)."""
    late, link.late = link.late, None
    if late is None:
        return
    header, body = late
    if header.op == _wire.DATA:
        try:
            message = _wire.loads(body)
        except Exception:
            return  # not for this program: as a read of it would have raised
        with _kept_lock:
            kept.setdefault(end, collections.deque()).append(message)
    elif header.op == _wire.OK:
        for moved in carried:
            moved.moved = True


def take_kept(end):
    """The end's first kept message, or NOTHING_KEPT (another thread took it)."""
    with _kept_lock:
        messages = kept.get(end)
        if not messages:
            return NOTHING_KEPT
        message = messages.popleft()
        if not messages:
            del kept[end]
        return message


# The remote ends that the message being written by this thread carries:
# moved only once a reader took it (a write refused leaves them held here).
_sending = threading.local()


def message_frames(channel: RemoteChannel, msg: object) -> tuple[list, list]:
    """``msg`` pickled for ``channel``'s home: its frames, and the remote ends
    it carries (moved once a reader took it).  ValueError if it is larger than
    the home accepts."""
    if type(msg) in _wire.PLAIN_TYPES:  # it carries no end; one frame of bytes
        frames = _wire.dumps(msg)
        if channel.max_message and len(frames[0]) > channel.max_message:
            raise _too_big(channel, len(frames[0]))
        return frames, []
    _sending.ends = carried = []
    try:
        frames = _wire.dumps(msg)
    finally:
        _sending.ends = None
    size = _wire.size(frames)
    if channel.max_message and size > channel.max_message:
        raise _too_big(channel, size)
    return frames, carried


def _too_big(channel: RemoteChannel, size: int) -> ValueError:
    return ValueError(f"pycsp.net: a message of {size} bytes pickled is larger than "
                      f"channel {channel.name!r}'s home accepts "
                      f"({channel.max_message}; configure(max_message=) there)")


def moving(end: _RemoteEnd) -> None:
    """``end`` is being pickled into a message for another program (``_mobile``)."""
    carried = getattr(_sending, "ends", None)
    if carried is None:
        end.moved = True  # not a write of this process's (the agent hands it on)
    else:
        carried.append(end)


REMOTE_TYPES = (RemoteChannel, RemoteChannelEndRead, RemoteChannelEndWrite)
