"""This process's heartbeat to the homes it talks to, and its fencing by them.

A thread of its own (started once a home first answered, in each process:
a forked child starts its own) sends PING to each home that answered this
process, every ``heartbeat_interval`` seconds, for as long as the process
lives, so that a home counts it alive however long its other threads wait
(``_liveness``).  When the process ends normally it says BYE to each (at
exit; a CSP process forked or spawned by pycsp.processes, whose end runs no
atexit handler, when its body ended), so that no home takes its silence for
death.

A home that declared this process dead answers FENCED to whatever it sends
afterwards, a heartbeat or an operation: from then on every operation of
this process on a channel homed there raises ChannelLostException at once,
and the functions given to ``on_fenced`` run (pycsp.net.node ends there).
"""
from __future__ import annotations

import atexit
import os
import threading
import time

import zmq

from ..processes import _fork
from . import _link, _wire

_BYE_TIMEOUT = 3.0  # a home still connecting under load may take a while
_fenced_hooks: list = []


class _Home:
    """The heartbeat's socket to one home, and what its monitor said of the link."""

    def __init__(self, address, context, settings):
        self.address, self.seq = address, 0
        # A link that comes back is found within an interval (a fenced
        # process learns it then), not after the system's connect timeout.
        self.socket = _link.connect_to_home(
            context, settings.security, *address,
            (settings.heartbeat_interval, settings.heartbeat_timeout),
            connect_timeout=max(0.1, settings.heartbeat_interval))
        self.monitor = self.socket.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED
                                                      | zmq.EVENT_DISCONNECTED)
        self.up = self.was_up = False

    def note_events(self):
        for event in _link.pending_events(self.monitor):
            self.up = event == zmq.EVENT_HANDSHAKE_SUCCEEDED
            self.was_up = self.was_up or self.up

    def lost(self):
        """Whether the link broke after it was made (a home that ended, say)."""
        return self.was_up and not self.up

    def close(self):
        self.socket.disable_monitor()
        self.monitor.close(0)
        self.socket.close(0)


class _Heartbeat:
    """The thread and its sockets (one per home) of one process."""

    def __init__(self, context, settings, incarnation, stream):
        self.context, self.settings = context, settings
        self.incarnation, self.stream = incarnation, stream
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.new_homes: list = []  # addresses the thread has no socket for yet
        self.homes: set = set()
        self.fenced: set = set()  # addresses of the homes that fenced this process
        self.stopping = False
        self.wake_in, self.wake_out = os.pipe()
        self.thread = threading.Thread(target=self.run, name="pycsp.net heartbeat", daemon=True)
        self.thread.start()

    def add(self, address):
        with self.lock:
            if address in self.homes:
                return
            self.homes.add(address)
            self.new_homes.append(address)
        os.write(self.wake_out, b"!")

    def stop(self):
        """Say BYE to every home (at most ``_BYE_TIMEOUT`` for their answers) and stop."""
        self.stopping = True
        os.write(self.wake_out, b"!")
        self.thread.join(_BYE_TIMEOUT + 1.0)

    def run(self):
        homes = {}  # socket or monitor -> _Home
        poller = zmq.Poller()
        poller.register(self.wake_in, zmq.POLLIN)
        next_beat = time.monotonic()
        try:
            while not self.stopping:
                self.open_new(homes, poller)
                now = time.monotonic()
                if now >= next_beat:
                    self.send_all(homes, _wire.PING)
                    next_beat = now + self.settings.heartbeat_interval
                for what, _ in poller.poll(max(0.0, next_beat - time.monotonic()) * 1000):
                    if what == self.wake_in:
                        os.read(self.wake_in, 4096)
                    else:
                        self.take(homes[what], what)
            self.open_new(homes, poller)  # a process that ends at once beat to none yet
            self.say_goodbye(homes, poller)
        except zmq.ContextTerminated:
            pass  # the process is ending
        finally:
            for home in set(homes.values()):
                home.close()

    def open_new(self, homes, poller):
        """A socket (and its monitor) for each home added since the last call."""
        with self.lock:
            new, self.new_homes = self.new_homes, []
        for address in new:
            home = _Home(address, self.context, self.settings)
            for sock in (home.socket, home.monitor):
                homes[sock] = home
                poller.register(sock, zmq.POLLIN)

    def send_all(self, homes, op):
        """Send ``op`` to every home that did not fence this process; those it went to."""
        sent = []
        for home in set(homes.values()):
            if home.address in self.fenced:
                continue
            home.seq += 1
            try:
                home.socket.send(_wire.pack(op, self.incarnation, self.pid, self.stream,
                                            home.seq), zmq.NOBLOCK)
                sent.append(home)
            except zmq.Again:
                pass  # heartbeats queued to a link that is down: enough of them
        return sent

    def take(self, home, what):
        """Read what came on ``what`` (the home's socket or its monitor); the
        header of a reply (FENCED, or BYE's OK), else None."""
        if what is home.monitor:
            home.note_events()
            return None
        try:
            frames = home.socket.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return None
        header = _wire.parse(frames[0], _wire.REPLIES) if frames else None
        if header is not None and header.op == _wire.FENCED:
            fence(home.address)
        return header

    def say_goodbye(self, homes, poller):
        """BYE to every home; wait for their answers, but not for a home whose
        link broke (one that is still connecting may be one that is there)."""
        waiting = set(self.send_all(homes, _wire.BYE))
        deadline = time.monotonic() + _BYE_TIMEOUT
        while waiting and time.monotonic() < deadline:
            for what, _ in poller.poll(max(0.0, deadline - time.monotonic()) * 1000):
                home = homes.get(what)
                if home is not None and self.take(home, what) is not None:
                    waiting.discard(home)
            waiting = {home for home in waiting if not home.lost()}


_beat: _Heartbeat | None = None
_beat_lock = threading.Lock()


def _after_fork_in_child():
    global _beat, _beat_lock
    _beat = None  # the parent's thread is not here; its sockets are never touched
    _beat_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def watch(address, context, settings, incarnation, stream) -> None:
    """Beat to the home at ``address`` from now on (this process's thread starts on the first)."""
    global _beat
    with _beat_lock:
        if _beat is None:
            _beat = _Heartbeat(context, settings, incarnation, stream)
            # Registered after the context's atexit handler: runs before it destroys the context.
            atexit.register(_goodbye)
    _beat.add(address)


def _goodbye():
    """This process ends normally: BYE to every home it beat to."""
    beat = _beat
    if beat is not None and beat.pid == os.getpid():
        beat.stop()


_fork.on_child_end(_goodbye)


def fence(address) -> None:
    """The home at ``address`` declared this process dead: refuse its operations there."""
    beat = _beat
    if beat is None or beat.pid != os.getpid():
        return
    with beat.lock:
        if address in beat.fenced:
            return
        beat.fenced.add(address)
    for hook in list(_fenced_hooks):
        hook(address)


def is_fenced(address) -> bool:
    beat = _beat
    # the set first: usually empty, and getpid() is a system call
    return beat is not None and address in beat.fenced and beat.pid == os.getpid()


def on_fenced(hook) -> None:
    """Run ``hook(address)`` when a home fences this process (or a child it forks later)."""
    _fenced_hooks.append(hook)
