"""A node's agent: the separate process that homes this program's network channels.

It is started by ``_node.Node`` with a fresh interpreter (never a fork: the
program's forked children must not touch ZeroMQ, which is not fork-safe),
maps the program's arena before anything of pycsp is imported (``BOOT``),
and then serves one ROUTER socket:

- A remote party's plain read or write becomes the same operation on the
  home's channel in the shared core, made by a worker thread of the agent
  that holds the remote end's join; the reply (OK or DATA) is sent only when
  that operation completed, so a remote writer returns only once a reader
  took its message (rendezvous holds across programs).  Poison and retire
  reach the home's channel, hence every party of it, local or remote.
- Requests that do not parse, that come from a peer the ZAP handler did not
  admit, or that repeat a (incarnation, pid, stream) sequence number already
  seen are dropped before any body is read.  Only a WRITE's body is
  unpickled, in the worker, from an admitted peer.
- The agent counts as a running process for deadlock accounting for as long
  as it lives: a party in another program may always come, so the program
  never raises DeadlockError while it homes network channels.

Channels are homed by ``_node`` through a shared-memory registry channel
(any process of the program can write it); the agent stops when its stdin
(a pipe from the program) closes, after the replies it queued have left.
"""
from __future__ import annotations

import itertools
import os
import pickle
import queue
import select
import signal
import sys
import threading
import time

import zmq

import csp_ext

from . import _link, _wire

# Run as ``python -c BOOT ARENA_FD``: maps the arena before pycsp.processes
# is imported (it would make a new one otherwise).
BOOT = ("import sys, csp_ext; csp_ext.shm_attach(int(sys.argv[1])); "
        "from pycsp.net import _agent; _agent.main()")


_DRAIN_SECONDS = 2.0
_DRAIN_QUIET_SECONDS = 0.25


class _Join:
    """A remote party's end of a home channel, and the worker thread that uses it."""

    __slots__ = ("channel", "end", "requests", "thread", "performing", "left")

    def __init__(self, channel, end):
        self.channel = channel
        self.end = end
        self.left = False  # its program ended without retiring it (LEAVE)
        self.requests = queue.SimpleQueue()
        self.thread = None
        self.performing = False  # from taking a request until its reply is queued


class Agent:
    def __init__(self, config, registry_in):
        self.security = config["security"]
        self.max_message = config["max_message"]
        self.context = zmq.Context()
        self.zap = _link.ZapHandler(self.context, self.security.allowed) \
            if self.security.curve else None
        self.router = None
        self.port = None
        self.registry_in = registry_in
        self.channels = {}  # name -> ShmChannel homed here
        self.joins = {}  # end number -> _Join
        self.end_numbers = itertools.count(1)
        self.last_seq = {}  # (incarnation, pid, stream) -> the last sequence number served
        self.replies = queue.SimpleQueue()  # frames that workers want sent
        self.wake_in, self.wake_out = os.pipe()
        os.set_blocking(self.wake_in, False)
        os.set_blocking(self.wake_out, False)
        self.dropped = 0

    def bind(self, host, port, timeout, retry_delay):
        """Bind the home socket, retrying a taken port until ``timeout`` (0.9.2's
        SOCKETS_BIND_TIMEOUT); the error text, or None."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.router, self.port = _link.bind_home(self.context, self.security, host, port,
                                                         self.max_message)
                return None
            except zmq.ZMQError as exc:
                if exc.errno != zmq.EADDRINUSE or time.monotonic() >= deadline:
                    return f"cannot bind {host}:{port}: {exc.strerror}"
                time.sleep(max(0.01, retry_delay))

    # -- homing channels (the registry thread) --------------------------

    def serve_registry(self):
        while True:
            kind, name, channel, reply = self.registry_in()
            if kind == "home":
                if name in self.channels:
                    reply(f"a channel named {name!r} is homed in this program already")
                else:
                    self.channels[name] = channel
                    reply(None)

    # -- the socket (the main thread) -----------------------------------

    def serve(self, stop_fd, linger):
        """Serve until the program ends (``stop_fd`` closes), then on while
        parties in other programs still hold joins (see ``awaited``), for at
        most ``linger`` seconds more."""
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        poller.register(self.wake_in, zmq.POLLIN)
        poller.register(stop_fd, zmq.POLLIN)
        if self.zap is not None:
            poller.register(self.zap.socket, zmq.POLLIN)
        deadline = None
        while deadline is None or (time.monotonic() < deadline and self.awaited()):
            for what, _ in poller.poll(None if deadline is None else 100):
                if what is self.router:
                    self.take_request()
                elif what == self.wake_in:
                    self.send_replies()
                elif what == stop_fd:
                    if not os.read(stop_fd, 4096):
                        poller.unregister(stop_fd)
                        deadline = time.monotonic() + linger
                else:
                    self.zap.answer()
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
        before the worker that wrote has queued its OK.  Workers still
        performing either just completed (their reply comes within
        milliseconds) or wait for a party that will not come now; wait for
        replies until none came for a while (bounded).
        """
        deadline = time.monotonic() + _DRAIN_SECONDS
        while (any(join.performing for join in list(self.joins.values()))
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
                frames = self.replies.get_nowait()
            except queue.Empty:
                return
            self.router.send_multipart(frames, copy=False)

    def take_request(self):
        try:
            frames = self.router.recv_multipart(zmq.NOBLOCK, copy=False)
        except zmq.Again:
            return
        header = _wire.parse(frames[1].bytes, _wire.REQUESTS) if len(frames) >= 2 else None
        if header is None or not _link.authenticated(frames[1], self.security):
            self.dropped += 1
            return
        sender = (header.incarnation, header.pid, header.stream)
        if header.seq <= self.last_seq.get(sender, 0):
            self.dropped += 1  # a duplicate: served once already
            return
        self.last_seq[sender] = header.seq
        identity, body = frames[0], frames[2:]
        op = header.op
        if op in (_wire.WRITE, _wire.READ, _wire.RETIRE, _wire.LEAVE):
            join = self.joins.get(header.ref)
            if join is None:
                self.reply(identity, header, _wire.ERROR, f"no end {header.ref} here".encode())
            else:
                join.requests.put((identity, header, body))
            return
        name = body[0].bytes.decode("utf-8", "replace") if body else ""
        channel = self.channels.get(name)
        if channel is None:
            self.reply(identity, header, _wire.NO_CHANNEL, name.encode())
        elif op == _wire.HELLO:
            self.reply(identity, header, _wire.OK, str(self.max_message).encode(),
                       ref=channel.buffer)
        elif op == _wire.JOIN:
            number = next(self.end_numbers)
            join = self.joins[number] = _Join(channel, channel.writer() if header.ref
                                              else channel.reader())
            join.thread = threading.Thread(target=self.serve_join, args=(number, join),
                                           name=f"pycsp.net end {number}", daemon=True)
            join.thread.start()
            self.reply(identity, header, _wire.OK, ref=number)
        elif op == _wire.POISON:
            channel.poison()
            self.reply(identity, header, _wire.OK)

    def reply(self, identity, header, op, body=None, ref=0):
        frames = [identity, _wire.pack(op, 0, os.getpid(), header.stream, header.seq, ref)]
        if body is not None:
            frames.append(body)
        self.router.send_multipart(frames, copy=False)

    # -- a remote party's end (its worker thread) -----------------------

    def serve_join(self, number, join):
        end = join.end
        while True:
            identity, header, body = join.requests.get()
            join.performing = True
            op, data = self.perform(end, header.op, body)
            frames = [identity, _wire.pack(op, 0, os.getpid(), header.stream, header.seq)]
            if data is not None:
                frames.append(data)
            self.replies.put(frames)
            join.performing = False
            try:
                os.write(self.wake_out, b"!")
            except BlockingIOError:
                pass  # the pipe is full of wake-ups already
            if header.op == _wire.RETIRE:
                del self.joins[number]
                return
            if header.op == _wire.LEAVE:
                join.left = True

    @staticmethod
    def perform(end, op, body):
        """Do ``op`` on ``end``; the reply's op and body."""
        try:
            if op == _wire.WRITE:
                if not body:
                    return _wire.ERROR, b"a write without a message"
                end(_wire.loads(body[0].buffer))
                return _wire.OK, None
            if op == _wire.READ:
                msg = end()
                try:
                    return _wire.DATA, _wire.dumps(msg)
                except Exception as exc:
                    return _wire.ERROR, f"the message read cannot travel: {exc}".encode()
            if op == _wire.RETIRE:
                end.retire()
            return _wire.OK, None
        except csp_ext.ChannelPoisonException:
            return _wire.POISONED, None
        except csp_ext.ChannelRetireException:
            return _wire.RETIRED, None
        except Exception as exc:
            return _wire.ERROR, f"{type(exc).__name__}: {exc}".encode("utf-8", "replace")

    def close(self):
        self.router.close(linger=1000)
        if self.zap is not None:
            self.zap.close()
        # Waits (at most the linger) for queued replies to leave; the
        # workers own no socket, so nothing else holds the context.
        self.context.term()


def main():
    config = pickle.load(sys.stdin.buffer)  # from the program, over a pipe only it holds
    csp_ext.shm_adopt(config["record"])
    csp_ext.set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != config["parent"]:
        csp_ext.shm_exit(0)
    agent = Agent(config, config["registry"])
    error = agent.bind(config["host"], config["port"], config["bind_timeout"],
                       config["bind_retry_delay"])
    sys.stdout.write(f"BIND {error}\n" if error else f"OK {agent.port}\n")
    sys.stdout.flush()
    if error:
        csp_ext.shm_end_body()
        csp_ext.shm_exit(1)
    threading.Thread(target=agent.serve_registry, name="pycsp.net registry",
                     daemon=True).start()
    try:
        agent.serve(sys.stdin.fileno(), config["linger"])
        agent.close()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        csp_ext.shm_end_body()
        csp_ext.shm_exit(0)
