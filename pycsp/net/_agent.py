"""A node's agent: the separate process that homes this program's network channels.

It is started by ``_node.Node`` with a fresh interpreter (never a fork: the
program's forked children must not touch ZeroMQ, which is not fork-safe),
maps the program's arena before anything of pycsp is imported (``BOOT``),
and then serves one ROUTER socket:

- A remote party's plain read or write becomes the same operation on the
  home's channel in the shared core, on the end that the agent holds for
  the remote party's join: at once in the main thread when a party here is
  already waiting (a select with a skip), else by a worker thread, the
  join's until none of its requests waits (idle workers are kept for other
  joins, a few at most).  The reply (OK or DATA) is sent only when that operation completed,
  so a remote writer returns only once a reader took its message
  (rendezvous holds across programs).  A request that its party gives up
  (CANCEL: a signal handler raised in its wait) is withdrawn unless it has
  completed: answered CANCELLED.  Poison and retire
  reach the home's channel, hence every party of it, local or remote.
- Requests that do not parse, that come from a peer the ZAP handler did not
  admit, or that repeat a (incarnation, pid, stream) sequence number already
  seen are dropped before any body is read.  Only a WRITE's body is
  unpickled, in the worker, from an admitted peer.
- Every process that talks to the home sends it heartbeats; one not heard
  from for ``heartbeat_timeout`` is declared dead (``_liveness``): the
  channels of the joins it made, and of the joins with an operation of it in
  progress, are poisoned, so that the parties still here and elsewhere stop
  (a message such a writer had offered is never taken; a read that had
  already taken a message when its reader died loses that message: at most
  once), and whatever it sends afterwards is refused (FENCED).
- The agent's threads count as running for deadlock accounting only while
  they serve: a process of the program blocked on a channel homed here
  counts as running (a party in another program may come), so only the
  program's own channels make its deadlock.  In the root of a run, the agent
  also gathers its nodes' reports (STATUS, ``_quiescence``) and finds the
  run's deadlocks; an operation it serves for a party then is answered
  DEADLOCKED.

Channels are homed by ``_node`` through a shared-memory registry channel
(any process of the program can write it); the agent stops when its stdin
(a pipe from the program) closes, after the replies it queued have left.

Mobile ends (``_mobile``): an end of this program's channel that goes to
another program in a message becomes a join here (``adopt``: the agent keeps
a copy of the end, which stands for the same join, and homes its channel
under a made-up name if it was not homed); an end of a channel homed here
that comes back is the agent's copy again (``reclaim``; no other program
holds it once a reader took the message: a write refused leaves it held).  Messages that pass
through the agent, both ways, carry ends so: a local end read for a remote
reader travels as a join of this home.
"""
from __future__ import annotations

import collections
import itertools
import os
import pickle
import queue
import select
import signal
import sys
import threading
import time
import traceback

import zmq

import csp_ext

from . import _link, _mobile, _wire
from ._arms import Arms, error_text, hand_back_if_taken
from ._liveness import PeerWatch
from ._quiescence import RunWatch

# Run as ``python -c BOOT ARENA_FD``: maps the arena before pycsp.processes
# is imported (it would make a new one otherwise).  A terminal's Ctrl-C
# reaches the whole foreground process group: the agent leaves it to the
# program, which may go on (it ends the agent by closing its stdin).
BOOT = ("import signal; signal.signal(signal.SIGINT, signal.SIG_IGN); "
        "import sys, csp_ext; csp_ext.shm_attach(int(sys.argv[1])); "
        "from pycsp.net import _agent; _agent.main()")


_DRAIN_SECONDS = 2.0
_DRAIN_QUIET_SECONDS = 0.25


class _Join:
    """A remote party's end of a home channel, and the worker that serves its
    requests that had to wait, while it has some."""

    __slots__ = ("channel", "end", "worker", "pending", "pending_from", "left", "holder",
                 "adopted")

    def __init__(self, channel, end, adopted=False):
        self.channel = channel
        self.end = end
        self.adopted = adopted  # an end of this program sent away (``Agent.adopt``)
        self.worker = None  # a _Worker while requests are pending (main thread's)
        # Requests handed to the worker whose reply the main thread has not
        # sent yet (only the main thread changes it): while it is 0, a request
        # may be served at once in the main thread without passing an earlier one.
        self.pending = 0
        self.pending_from = collections.Counter()  # incarnation -> its requests among them
        self.left = False  # its program ended without retiring it (LEAVE)
        # The program that holds it, once it arrived in a message (HOLD):
        # only its LEAVE counts.  None: whoever joined it.
        self.holder = None


class _Worker:
    """A thread that performs the requests which cannot complete at once, in
    order, for the one join it serves until that join has none pending; then
    it waits, idle, to serve another (at most _IDLE_WORKERS wait so).

    A request that its process gives up (CANCEL) is withdrawn: skipped if
    the worker has not started it, else its operation is a select with a
    guard on the worker's own channel, which the main thread writes to stop
    it (``cancel``).  ``queued``, ``serving`` and ``cancelled`` (request keys:
    incarnation, pid, stream, seq) are shared with the main thread under
    ``lock``: a request neither queued nor being served is completed (its
    reply may still wait to be sent), and too late to withdraw."""

    __slots__ = ("requests", "stops", "stop_guard", "lock", "queued", "serving", "cancelled")

    def __init__(self):
        self.requests = queue.SimpleQueue()
        stops = csp_ext.ShmChannel(buffer=4)
        stops._mark_reachable()  # another program's CANCEL writes it
        self.stops = stops.writer()
        self.stop_guard = csp_ext.InputGuard(stops.reader())
        self.lock = threading.Lock()
        self.queued = set()  # given to it, not started
        self.serving = None  # started, not completed
        self.cancelled = set()


_IDLE_WORKERS = 4
_send, _recv, _zmq_poll = _link.raw_send, _link.raw_recv, _link.zmq_poll
_net_sent, _net_received = csp_ext.shm_net_sent, csp_ext.shm_net_received
_CONTROL = _wire.CONTROL
_run_handoff = csp_ext.shm_run_handoff
_SKIP = csp_ext.SkipGuard()
_NOT_READ = object()  # a WRITE's message left for the worker to unpickle
_INLINE_UNPICKLE_LIMIT = 64 * 1024  # bigger messages are unpickled off the main loop


class Agent:
    def __init__(self, config, registry_in):
        self.pid = os.getpid()  # in every reply's header (an agent never forks)
        self.security = config["security"]
        self.max_message = config["max_message"]
        self.home = config["home"]  # names this home in HELLO's reply and in mobile ends
        self.watch = PeerWatch(config["heartbeat_timeout"])
        self.context = zmq.Context()
        self.zap = _link.ZapHandler(self.context, self.security.allowed) \
            if self.security.curve else None
        self.router = None
        self.port = None
        self.address = None
        self.registry_in = registry_in
        self.channels = {}  # name -> ShmChannel homed here
        self.names = {}  # a homed channel's arena offset -> its name
        self.homing = threading.Lock()
        self.auto_names = itertools.count(1)
        self.joins = {}  # end number -> _Join
        self.idle_workers = []  # _Worker (main thread's)
        self.with_workers = {}  # request key -> the _Worker that has it (``cancel``)
        self.cancel_acks = {}  # request key -> its CANCEL, answered after it (``cancel``)
        # Join numbers are handed out in order (under ``homing``): a number
        # handed out that names no join now was retired through one holder,
        # and another may still name it (an end sent on and used after): it
        # is answered RETIRED, as a retired end is.
        self.last_end_number = 0
        # Channels homed only because ends of them went to other programs
        # (a reply channel per request): arena offset -> joins not retired.
        # The last one retired, the channel is forgotten here.
        self.for_ends_only = {}
        # The joins of this home that the message a thread is unpickling
        # carries back (``reclaim``): handed back only if a reader takes it.
        self.unpickling = threading.local()
        self.last_seq = {}  # (incarnation, pid, stream) -> the last sequence number served
        self.replies = queue.SimpleQueue()  # frames that workers want sent
        self.wake_in, self.wake_out = os.pipe()
        os.set_blocking(self.wake_in, False)
        os.set_blocking(self.wake_out, False)
        self.dropped = 0
        self.arms = Arms(self)  # remote parties' alternations (``_arms``)
        self.run = RunWatch()  # the nodes this program started (``_quiescence``)

    def bind(self, host, port, timeout, retry_delay):
        """Bind the home socket, retrying a taken port until ``timeout`` (0.9.2's
        SOCKETS_BIND_TIMEOUT); the error text, or None."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.router, self.port = _link.bind_home(self.context, self.security, host, port,
                                                         self.max_message)
                self.address = (host, self.port)
                return None
            except zmq.ZMQError as exc:
                if exc.errno != zmq.EADDRINUSE or time.monotonic() >= deadline:
                    return f"cannot bind {host}:{port}: {exc.strerror}"
                time.sleep(max(0.01, retry_delay))

    # -- homing channels (the registry thread) --------------------------

    def serve_registry(self, counted=None):
        # It counts as running while it serves a request (the process that
        # asked waits for its reply), but a deadlock never wakes it.
        try:
            csp_ext.shm_serve_quietly(True)  # the program's own requests
        finally:
            if counted is not None:
                counted.set()
        while True:
            kind, name, thing, reply = self.registry_in()
            try:
                answer = self.answer(kind, name, thing)
            except Exception as exc:  # a bug here must not stop the registry
                answer = RuntimeError(f"pycsp.net: this program's agent: "
                                      f"{type(exc).__name__}: {exc}")
            reply(answer)

    def answer(self, kind, name, thing):
        """A process of the program asks (``_node.Node.ask``)."""
        if kind == "home":
            with self.homing:
                if name in self.channels:
                    return f"a channel named {name!r} is homed in this program already"
                self.channels[name] = thing
                self.names.setdefault(thing._offset, name)
                self.for_ends_only.pop(thing._offset, None)  # homed by name: for good
            thing._mark_reachable()
            return None
        if kind == "adopt":
            return self.adopt(thing)
        if kind == "twin":
            return self.twin(thing)
        if kind == "name":
            return self.name_of(thing)
        if kind == "reclaim":
            return self.reclaim(name)
        if kind == "channel":
            return self.channels.get(name)
        if kind == "member":
            return self.run.member(name, thing)
        raise ValueError(f"no registry request {kind!r}")

    # -- mobile ends (any thread) ------------------------------------------

    def name_of(self, channel):
        """The name ``channel`` is homed under, homing it under a made-up
        name if it is not yet (it is going to another program)."""
        with self.homing:
            return self.homed_name(channel)

    def homed_name(self, channel, for_an_end=False):
        """``name_of`` under ``homing``: the channel itself goes to another
        program (it stays homed here for good), or, ``for_an_end``, an end of
        it (forgotten once no such end is held: ``forget_join``)."""
        name = self.names.get(channel._offset)
        if name is None:
            name = f"_pycsp_sent_{os.getpid()}_{next(self.auto_names)}"
            self.channels[name] = channel
            self.names[channel._offset] = name
            channel._mark_reachable()
            if for_an_end:
                self.for_ends_only[channel._offset] = 0
        elif not for_an_end:
            self.for_ends_only.pop(channel._offset, None)
        return name

    def new_end_number(self):
        """Under ``homing``."""
        self.last_end_number += 1
        return self.last_end_number

    def adopt(self, end):
        """(channel name, join number) for an end of this program that goes
        to another program; ``end`` (a copy: the same join) is kept for it.
        Until its new holder retires or leaves it, the home serves it on at
        its exit (``awaited``)."""
        with self.homing:
            name = self.homed_name(end.channel, for_an_end=True)
            number = self.new_end_number()
            self.joins[number] = _Join(self.channels[name], end, adopted=True)
            if end.channel._offset in self.for_ends_only:
                self.for_ends_only[end.channel._offset] += 1
        return name, number

    def forget_join(self, number, join):
        """``join`` is retired: nothing names it here now (main thread)."""
        self.watch.forget_join(number)
        with self.homing:
            if self.joins.pop(number, None) is not join or not join.adopted:
                return  # retired twice (the first one counted), or joined by name
            offset = join.channel._offset
            left = self.for_ends_only.get(offset)
            if left is not None:
                if left > 1:
                    self.for_ends_only[offset] = left - 1
                else:  # no program holds an end of it now: forget the channel
                    del self.for_ends_only[offset]
                    self.channels.pop(self.names.pop(offset), None)

    def twin(self, end):
        """(channel name, join number) for an end that a process of this
        program uses in an alternation with guards homed elsewhere (``_alt``
        reaches it through this home as any remote party): its program is
        this one, so the home never waits for it at its exit."""
        name, number = self.adopt(end)
        self.joins[number].left = True
        return name, number

    def reclaim(self, number):
        """The end of join ``number``, which came back to this program in a
        message (None if there is no such join): no other program holds it now."""
        join = self.joins.get(number)
        if join is None:
            return None
        carried = getattr(self.unpickling, "joins", None)
        if carried is None:
            join.left = True  # a process of the program received it (the registry)
        else:
            carried.append(join)
        return join.end

    def note_holder(self, join, op, body):
        """HOLD: the program named in ``body`` holds the join now; LEAVE: the
        program that holds it ended (a LEAVE of a program that sent it away,
        or of another holder of a copy, does not count)."""
        holder = bytes(body[0]) if body else None
        if op == _wire.HOLD:
            join.holder, join.left = holder, False
        elif join.holder is None or holder == join.holder:
            join.left = True

    # -- the socket (the main thread) -----------------------------------

    def serve(self, stop_fd, linger):
        """Serve until the program ends (``stop_fd`` closes), then on while
        parties in other programs still hold joins (see ``awaited``), for at
        most ``linger`` seconds more."""
        items = [(self.router, zmq.POLLIN), (self.wake_in, zmq.POLLIN), (stop_fd, zmq.POLLIN)]
        if self.zap is not None:
            items.append((self.zap.socket, zmq.POLLIN))
        deadline = None
        while deadline is None or (time.monotonic() < deadline and self.awaited()):
            wait = self.watch.poll_ms()
            if deadline is not None:
                wait = 100 if wait is None else min(wait, 100)
            # Waiting for requests, it counts as blocked: this program's own
            # processes alone make a deadlock (those waiting on a channel
            # homed here count as running: csp_ext's _mark_reachable).
            try:  # (a signal that lands in shm_idle(True) still meets the finally)
                csp_ext.shm_idle(True)
                ready = _zmq_poll(items, -1 if wait is None else wait)
            finally:
                csp_ext.shm_idle(False)
            for what, _ in ready:
                if what is self.router:
                    self.take_request()
                elif what == self.wake_in:
                    self.send_replies()
                    if self.arms.poked:
                        self.arms.on_poke()
                elif what == stop_fd:
                    if not os.read(stop_fd, 4096):
                        items.remove((stop_fd, zmq.POLLIN))
                        deadline = time.monotonic() + linger
                else:
                    self.zap.answer()
            for peer in self.watch.overdue():
                self.declare_dead(peer)
        self.drain()

    def awaited(self):
        """Whether a party in another program may still use a channel homed
        here: it holds a join that it has neither retired nor left, on a
        channel that is not poisoned (a retired channel still answers it)."""
        return any(not join.left and not join.channel.statistics()["poisoned"]
                   for join in list(self.joins.values()))

    def drain(self):
        """Before stopping: send the replies of operations that completed.

        The program may end right after its last read matched a remote writer,
        before the worker that wrote has queued its OK.  Workers with requests
        pending either just completed one (its reply comes within
        milliseconds) or wait for a party that will not come now; wait for
        replies until none came for a while (bounded).
        """
        deadline = time.monotonic() + _DRAIN_SECONDS
        while (any(join.pending for join in list(self.joins.values()))
               and time.monotonic() < deadline):
            self.send_replies()
            if not select.select([self.wake_in], [], [], _DRAIN_QUIET_SECONDS)[0]:
                break
        self.send_replies()

    def send_replies(self):
        try:
            os.read(self.wake_in, 4096)
        except BlockingIOError:
            pass
        while True:
            try:
                number, join, header, frames = self.replies.get_nowait()
            except queue.Empty:
                return
            _run_handoff(-1)  # (this thread runs)
            key = (header.incarnation, header.pid, header.stream, header.seq)
            self.with_workers.pop(key, None)
            cancel = self.cancel_acks.pop(key, None) if self.cancel_acks else None
            if frames is None:
                pass  # a request cancelled before its worker came to it: answered then
            elif self.watch.is_dead(header.incarnation):
                _net_sent()
                _link.send_frames(self.router, self.fenced_reply(frames[0], header))
            else:
                _net_sent()
                _link.send_frames(self.router, frames)
                if cancel is not None:  # its CANCEL's answer, after its own
                    self.reply(frames[0], cancel, _wire.OK)
            join.pending -= 1
            join.pending_from[header.incarnation] -= 1
            if not join.pending_from[header.incarnation]:
                del join.pending_from[header.incarnation]
            if not join.pending:
                self.release_worker(join)
            if frames is not None:  # (a request skipped did nothing)
                self.after(number, join, header.op)

    def take_request(self):
        router = self.router
        try:
            first = _recv(router, _link.NOBLOCK, False)  # the sender's identity
        except zmq.Again:
            return
        identity = first.bytes
        # the header as received: its metadata says whom the ZAP handler admitted
        header_frame = _recv(router, 0, False) if first.more else None
        more = header_frame is not None and header_frame.more
        body = _link.receive_rest(router, []) if more else []
        header = None if header_frame is None else _wire.parse(header_frame.bytes, _wire.REQUESTS)
        if header is None or not _link.authenticated(header_frame, self.security):
            self.dropped += 1
            return
        op = header.op
        if op not in _CONTROL:
            _net_received()
        elif op == _wire.STATUS:  # a node of this program's run (no heartbeats of its own)
            self.reply(identity, header, _wire.OK, self.run.report(body))
            return
        if not self.watch.heard(header.incarnation, header.pid):
            if op not in _CONTROL:
                _net_sent()
            _link.send_frames(router, self.fenced_reply(identity, header))
            return
        sender = (header.incarnation, header.pid, header.stream)
        last_seq = self.last_seq.get(sender, 0)
        if header.seq <= last_seq:
            self.dropped += 1  # a duplicate: served once already
            return
        self.last_seq[sender] = header.seq
        if op == _wire.WRITE or op == _wire.READ:  # the usual request, first
            join = self.joins.get(header.ref)
            if join is not None:
                self.serve_on(header.ref, join, identity, header, body)
                return
        if op == _wire.PING:
            return
        if op == _wire.BYE:
            self.watch.goodbye(header.incarnation)
            self.arms.peer_dead(header.incarnation)  # a guard whose DISARM was lost
            self.reply(identity, header, _wire.OK)
            return
        if op == _wire.ANSWER:
            self.arms.answer(identity, header)
            return
        if op == _wire.DISARM:
            self.arms.disarm(header, body)
            return
        if op == _wire.CANCEL:
            self.cancel(identity, header, last_seq)
            return
        if op in (_wire.WRITE, _wire.READ, _wire.RETIRE, _wire.LEAVE, _wire.HOLD, _wire.ARM):
            join = self.joins.get(header.ref)
            if join is None and 0 < header.ref <= self.last_end_number:
                self.reply(identity, header, _wire.RETIRED)
            elif join is None:
                self.reply(identity, header, _wire.ERROR, f"no end {header.ref} here".encode())
            elif op in (_wire.LEAVE, _wire.HOLD):
                self.note_holder(join, op, body)
                if op == _wire.HOLD:  # its holder's death poisons it now, not its sender's
                    self.watch.hand_over(header.ref, header.incarnation)
                    # Not answered: its sender never waits for it (an answer it
                    # might never read would count as in flight for good: _quiescence).
                else:
                    self.reply(identity, header, _wire.OK)
            elif op == _wire.ARM:
                self.arms.arm(identity, header, join, body)
            else:
                self.serve_on(header.ref, join, identity, header, body)
            return
        name = bytes(body[0]).decode("utf-8", "replace") if body else ""
        channel = self.channels.get(name)
        if channel is None:
            self.reply(identity, header, _wire.NO_CHANNEL, name.encode())
        elif op == _wire.HELLO:
            self.reply(identity, header, _wire.OK, str(self.max_message).encode(),
                       ref=channel.buffer, home=self.home)
        elif op == _wire.JOIN:
            end = channel.writer() if header.ref else channel.reader()
            with self.homing:
                number = self.new_end_number()
                self.joins[number] = _Join(channel, end)
                # its name is known elsewhere now: homed for good
                self.for_ends_only.pop(channel._offset, None)
            self.watch.made_join(header.incarnation, number)
            self.reply(identity, header, _wire.OK, ref=number)
        elif op == _wire.POISON:
            channel.poison()
            self.reply(identity, header, _wire.OK)

    def reply(self, identity, header, op, body=None, ref=0, home=0):
        head = _wire.pack(op, home, self.pid, header.stream, header.seq, ref)
        if header.op not in _CONTROL:
            _net_sent()
        if body is None or type(body) is bytes:  # the usual replies, without send_frames
            router = self.router
            _send(router, identity, _link.SNDMORE, False)
            if body is None:
                _send(router, head, 0, False)
            else:
                _send(router, head, _link.SNDMORE, False)
                _send(router, body, 0, False)
        else:
            _link.send_frames(self.router, [identity, head, *_link.frames_of(body)])

    def fenced_reply(self, identity, header):
        """The frames that refuse a request of a process declared dead."""
        return [identity, _wire.pack(_wire.FENCED, 0, self.pid, header.stream, header.seq),
                f"declared dead: no heartbeat for {self.watch.timeout:g} s".encode()]

    # -- processes of other programs that died -------------------------

    def declare_dead(self, peer):
        """Poison the channels of the joins ``peer`` made (and did not leave)
        and of the joins with an operation of it in progress."""
        # A copy: the registry thread adds joins meanwhile (adopt).  dict.copy()
        # runs without a switch of threads; list(d.items()) does not (the tuples
        # it makes may start the garbage collector, which may run Python code).
        held = [join for number, join in self.joins.copy().items()
                if (number in peer.made and not join.left)
                or join.pending_from.get(peer.incarnation)]
        self.arms.peer_dead(peer.incarnation)
        channels = list({id(join.channel): join.channel for join in held}.values())
        for channel in channels:
            channel.poison()
        if channels:
            names = ", ".join(sorted(repr(self.names.get(c._offset)) for c in channels))
            print(f"pycsp.net: no heartbeat from process {peer.pid} of another program for "
                  f"{self.watch.timeout:g} s: declared dead; the channels it held are "
                  f"poisoned: {names}", file=sys.stderr, flush=True)

    # -- a remote party's end -------------------------------------------

    def serve_on(self, number, join, identity, header, body):
        """Serve a request on a join: at once in this thread when it completes
        without blocking (a party here is waiting for it: the usual case, and
        no thread hand-off), else in the join's worker, in order."""
        op = header.op
        message, carried = _NOT_READ, ()
        if op == _wire.WRITE:
            size = len(body[0]) if len(body) == 1 and type(body[0]) is bytes else _wire.size(body)
            if not body or size > self.max_message:
                self.reply(identity, header, _wire.ERROR, self.refusal(body, "a write", size))
                return
            if size <= _INLINE_UNPICKLE_LIMIT:
                try:
                    message, carried = self.load(body)
                except Exception as exc:
                    self.reply(identity, header, _wire.ERROR, error_text(exc))
                    return
        if join.pending == 0 and (op != _wire.WRITE or message is not _NOT_READ):
            csp_ext.shm_hold_wakes(True)  # ``with wakes_held``, without its two Python calls
            try:
                outcome = self.perform(join, op, message, at_once=True)
                if outcome is not None:
                    hand_back_if_taken(outcome, carried)
                    self.reply(identity, header, *outcome)
            finally:
                csp_ext.shm_hold_wakes(False)
            if outcome is not None:
                self.after(number, join, op)
                return
        join.pending += 1
        join.pending_from[header.incarnation] += 1
        if join.worker is None:
            join.worker = self.idle_workers.pop() if self.idle_workers else self.new_worker()
        worker = join.worker
        key = (header.incarnation, header.pid, header.stream, header.seq)
        self.with_workers[key] = worker
        with worker.lock:
            worker.queued.add(key)
        _run_handoff(1)  # handed over: the worker, idle until it takes it, is not (_quiescence)
        worker.requests.put((number, join, identity, header, body, message, carried))

    def cancel(self, identity, header, last_seq):
        """CANCEL: withdraw the request ``header.ref`` of that stream if a
        worker still has it, or if it never came (its sender was interrupted
        before it left: ``last_seq`` is the stream's last before the CANCEL);
        else it was answered, and its reply stands.  The CANCEL itself is
        answered OK after the request's answer (``send_replies`` does it for
        a request that its worker stops)."""
        key = (header.incarnation, header.pid, header.stream, header.ref)
        worker = self.with_workers.get(key)
        if worker is not None:  # its reply is not sent yet
            with worker.lock:
                queued, serving = key in worker.queued, worker.serving == key
                if queued or serving:
                    worker.cancelled.add(key)
            if not queued:  # answered after its reply: CANCELLED if stopped, else its outcome
                self.cancel_acks[key] = header
                if serving:  # its select wakes (a full buffer of stops wakes it as well)
                    csp_ext.select((csp_ext.OutputGuard(worker.stops, None), _SKIP))
                return
            # queued behind another request of its join: the worker skips it
        elif header.ref <= last_seq:
            self.reply(identity, header, _wire.OK)  # answered already
            return
        self.reply(identity, header._replace(seq=header.ref), _wire.CANCELLED)
        self.reply(identity, header, _wire.OK)

    def refusal(self, frames, what, size):
        """ERROR's text if a message's ``frames`` of ``size`` bytes cannot be
        taken (``what`` names the request), else None."""
        if not frames:
            return f"{what} without a message".encode()
        if size > self.max_message:
            # libzmq caps each frame; this caps the message's frames together
            return f"a message of {size} bytes is larger than max_message".encode()
        return None

    def after(self, number, join, op):
        """Bookkeeping once ``op`` on ``join`` was answered (main thread)."""
        if op == _wire.RETIRE:
            self.forget_join(number, join)

    def new_worker(self):
        worker = _Worker()
        threading.Thread(target=self.serve_as_worker, args=(worker,),
                         name="pycsp.net worker", daemon=True).start()
        return worker

    def release_worker(self, join):
        """``join`` has no request pending: its worker may serve another one
        (main thread).  A worker per join for good would grow the agent by a
        thread for each join that ever waited (a reply end per request)."""
        worker, join.worker = join.worker, None
        if len(self.idle_workers) < _IDLE_WORKERS:
            self.idle_workers.append(worker)
        else:
            worker.requests.put(None)  # it ends

    def serve_as_worker(self, worker):
        """A worker: serves the requests that had to wait, in the order given."""
        csp_ext.shm_serve_quietly()
        while True:
            try:
                csp_ext.shm_idle(True)  # a request comes from another program
                item = worker.requests.get()
            finally:
                csp_ext.shm_idle(False)
            if item is None:
                return
            _run_handoff(-1)  # taken: this thread runs
            number, join, identity, header, body, message, carried = item
            key = (header.incarnation, header.pid, header.stream, header.seq)
            with worker.lock:
                worker.queued.discard(key)
                skipped = key in worker.cancelled
                worker.cancelled.discard(key)
                if not skipped:
                    worker.serving = key
            if skipped:
                self.hand_back(number, join, identity, header, None)
                continue
            outcome = None
            if message is _NOT_READ and header.op == _wire.WRITE:
                try:
                    message, carried = self.load(body)
                except Exception as exc:
                    outcome = (_wire.ERROR, error_text(exc))
            if outcome is None:
                outcome = self.perform(join, header.op, message, stoppable=worker)
            with worker.lock:
                worker.serving = None
                worker.cancelled.discard(key)
            hand_back_if_taken(outcome, carried)
            self.hand_back(number, join, identity, header, outcome)

    def load(self, body):
        """A WRITE's message, and the joins of this home it carries back."""
        self.unpickling.joins = carried = []
        try:
            return _wire.loads(body), carried
        finally:
            self.unpickling.joins = None

    def hand_back(self, number, join, identity, header, outcome):
        """The reply to a worker's request, for the main thread to send (no
        ``outcome``: nothing to send, only the bookkeeping)."""
        frames = None
        if outcome is not None:
            op, data = outcome
            frames = [identity, _wire.pack(op, 0, self.pid, header.stream, header.seq),
                      *_link.frames_of(data)]
        _run_handoff(1)  # for the main thread, idle until it takes it (_quiescence)
        self.replies.put((number, join, header, frames))
        self.wake()

    def wake(self):
        """Wake the main thread (from another thread): replies, or a poke."""
        try:
            os.write(self.wake_out, b"!")
        except BlockingIOError:
            pass  # the pipe is full of wake-ups already

    @staticmethod
    def perform(join, op, message, at_once=False, stoppable=None):
        """Do ``op`` on the join's end; the reply's op and body.  ``at_once``:
        None instead if it would block.  ``stoppable``: the worker doing it,
        whose request may be cancelled meanwhile (CANCELLED)."""
        end = join.end
        try:
            if op == _wire.WRITE:
                if at_once:
                    if csp_ext.select((csp_ext.OutputGuard(end, message), _SKIP))[0] == 1:
                        return None
                elif stoppable is not None:
                    if _until_stopped(csp_ext.OutputGuard(end, message), stoppable) is _STOPPED:
                        return _wire.CANCELLED, None
                else:
                    end(message)
                return _wire.OK, None
            if op == _wire.READ:
                if at_once:
                    index, msg = csp_ext.select((csp_ext.InputGuard(end), _SKIP))
                    if index == 1:
                        return None
                elif stoppable is not None:
                    msg = _until_stopped(csp_ext.InputGuard(end), stoppable)
                    if msg is _STOPPED:
                        return _wire.CANCELLED, None
                else:
                    msg = end()
                try:
                    return _wire.DATA, _wire.dumps(msg)
                except Exception as exc:
                    return _wire.ERROR, f"the message read cannot travel: {exc}".encode()
            if op == _wire.RETIRE:
                end.retire()
            return _wire.OK, None
        except csp_ext.DeadlockError as exc:  # every program of the run is blocked
            # (_quiescence): the run's number for it, for the report there
            key = getattr(exc, "deadlock", (("run", 0, 0),))[0]
            return _wire.DEADLOCKED, str(key[2] if key[0] == "run" else 0).encode()
        except csp_ext.ChannelPoisonException:
            return _wire.POISONED, None
        except csp_ext.ChannelRetireException:
            return _wire.RETIRED, None
        except Exception as exc:
            return _wire.ERROR, error_text(exc)

    def close(self):
        self.arms.close()
        self.router.close(linger=1000)
        if self.zap is not None:
            self.zap.close()
        # Waits (at most the linger) for queued replies to leave; the
        # workers own no socket, so nothing else holds the context.
        self.context.term()


_STOPPED = object()


def _until_stopped(guard, worker):
    """Select ``guard`` or the worker's stop: the message read (None for a
    write), or _STOPPED if the request it serves was cancelled.  A stop left
    over from a request that completed first is passed over."""
    guards = (guard, worker.stop_guard)
    while True:
        index, msg = csp_ext.select(guards)
        if index == 0:
            return msg
        with worker.lock:
            if worker.serving in worker.cancelled:
                return _STOPPED


def main():
    config = pickle.load(sys.stdin.buffer)  # from the program, over a pipe only it holds
    csp_ext.shm_adopt(config["record"])
    csp_ext.set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != config["parent"]:
        csp_ext.shm_exit(0)
    agent = Agent(config, config["registry"])
    error = agent.bind(config["host"], config["port"], config["bind_timeout"],
                       config["bind_retry_delay"])
    _mobile.serve_as_agent(agent)
    sys.stdout.write(f"BIND {error}\n" if error else f"OK {agent.port}\n")
    sys.stdout.flush()
    if error:
        csp_ext.shm_end_body()
        csp_ext.shm_exit(1)
    registry_counted = threading.Event()
    threading.Thread(target=agent.serve_registry, args=(registry_counted,),
                     name="pycsp.net registry", daemon=True).start()
    # The program counted this process as running from before it started:
    # until the registry thread counts, a request to it must not look like
    # a wait for nobody.
    registry_counted.wait()
    csp_ext.shm_serve_quietly()
    try:
        agent.serve(sys.stdin.fileno(), config["linger"])
        agent.close()
    except BaseException:
        # shm_exit below ends the process before Python would print it
        traceback.print_exc()
        raise
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        csp_ext.shm_end_body()
        csp_ext.shm_exit(0)
