"""A deadlock across the programs of a run: termination detection at the root (NET.md).

A run is a program (its root) and the nodes it started on other hosts with
``@sshprocess`` or ``@clusterprocess``.  With the keys made for the run
(the default) no other program can reach its channels, so when every
process of every program of the run waits on a channel or for another
program's answer, with nothing in flight between them, the run can never go
on: DeadlockError, as one program's deadlock raises it (API.md "Deadlock").
A run whose links use a key file or no security is open (another program
may come) and never takes its waits for a deadlock.

Each program tells what it can of itself (``csp_ext.shm_run_snapshot``):
how many of its processes are busy, a fingerprint of their progress, and
how many messages it sent to and received from other programs.  Every node
reports to the root's agent (STATUS) every ``_REPORT_INTERVAL``; the root
gathers them in waves (Mattern's counting method): a report counts for the
wave (epoch) that the node heard of before taking it, and the root takes its
own at the wave's start.  Two waves in a row in which every program had no
process busy and the same fingerprint and counts, with as many messages
received as sent, say that at the moment the second began every program was
blocked and nothing was in flight: nothing can ever wake any of them.  Then
the root ends every channel wait of its own with DeadlockError
(``csp_ext.shm_break_run_deadlock``), the nodes theirs as their next report
is answered, and a remote operation waiting at a home is answered DEADLOCKED,
which raises DeadlockError where it was made.

A node that is busy, that does not report (started, not yet reporting), or
that started nodes of its own (their processes are not in its report) keeps
the run from being taken as deadlocked: a wait may go on for ever then, never
is a run that can go on taken as deadlocked.
"""
from __future__ import annotations

import struct
import sys
import threading

import csp_ext

# (member, epoch seen, busy, fingerprint, sent, received)
_REPORT = struct.Struct("!QQqQQQ")
# (epoch, epoch of the last deadlock broken)
_ANSWER = struct.Struct("!QQ")
_REPORT_INTERVAL = 0.25  # seconds between a node's reports (a deadlock is seen in ~4)


class RunWatch:
    """In the root's agent: the members of the run and their reports."""

    def __init__(self) -> None:
        self.lock = threading.Lock()  # the registry thread adds members
        self.members: dict[int, tuple | None] = {}  # member -> its report for this epoch
        self.epoch = 1
        self.start: tuple | None = None  # the root's own snapshot for this epoch
        self.previous: dict | None = None  # the last whole wave
        self.broken = 0  # the epoch of the last deadlock broken

    def member(self, token: int, joined: bool) -> None:
        """A node of the run is about to start, or has ended (its last counts
        joined the arena's: ``csp_ext.shm_run_member``)."""
        with self.lock:
            if joined:
                self.members[token] = None
            else:
                self.members.pop(token, None)
            self.previous = None  # a wave is over the same programs
            self._next_epoch()

    def report(self, body: list) -> bytes:
        """A node's report (STATUS); the answer says the epoch and the last deadlock."""
        try:
            token, seen, *facts = _REPORT.unpack(bytes(body[0]))
        except (IndexError, struct.error):
            return _ANSWER.pack(self.epoch, self.broken)
        with self.lock:
            if token in self.members and seen == self.epoch:
                self.members[token] = tuple(facts)
                self._advance()
            return _ANSWER.pack(self.epoch, self.broken)

    def _advance(self) -> None:
        if self.start is None:
            self.start = csp_ext.shm_run_snapshot(True)
        if not self.members or any(r is None for r in self.members.values()):
            return
        root = self.start
        wave = dict(self.members)
        wave[None] = root[:4]
        # Every process standing for a node in this arena is a member here
        # (another agent of the program may watch others: it never decides).
        if wave == self.previous and root[4] == len(self.members) and _blocked_for_good(wave):
            self.broken = self.epoch
            self.previous = None
            csp_ext.shm_break_run_deadlock(self.broken, root[5])
        else:
            self.previous = wave
        self._next_epoch()

    def _next_epoch(self) -> None:
        self.epoch += 1
        self.start = None
        for token in self.members:
            self.members[token] = None


def _blocked_for_good(wave: dict) -> bool:
    """No program has a process busy, and no message is in flight (the
    counts of nodes that ended are in their standins' programs')."""
    return (all(busy == 0 for busy, _, _, _ in wave.values())
            and sum(sent for _, _, sent, _ in wave.values())
            == sum(received for _, _, _, received in wave.values()))


def report_to_root(address: tuple[str, int], token: int) -> None:
    """In a node (``pycsp.net.node``): a thread that reports to the root of the
    run until the node ends, and ends the node's waits when the root finds
    the run deadlocked."""
    threading.Thread(target=_report, args=(address, token), daemon=True,
                     name="pycsp-net-run-report").start()


def last_counts() -> tuple[int, int] | None:
    """In a node, as it ends (its processes and agent gone): the messages it
    sent and received in all; None if they are not its last (a process of
    it still lives) or not the whole story (nodes it started itself)."""
    from .._runtime import shutdown_every_runtime

    shutdown_every_runtime()  # (its Spawns: atexit would wait for them after this)
    _, _, sent, received, _, _, others, had_members = csp_ext.shm_run_snapshot(True)
    return None if others or had_members else (sent, received)


def _report(address, token):
    import zmq

    from . import _link, _settings, _wire
    from ._remote import _incarnation

    settings = _settings.current()
    context = zmq.Context.instance()
    socket = _link.connect_to_home(context, settings.security, *address,
                                   (settings.heartbeat_interval, settings.heartbeat_timeout))
    seq, seen, last_broken = 0, 0, None
    blocked_when = {}  # epoch -> what was blocked in the report for it
    try:
        while True:
            seq += 1
            busy, fingerprint, sent, received, _, blocked, _, had_members = \
                csp_ext.shm_run_snapshot(False)
            if had_members:
                busy += 1  # its own nodes are not in the run's sums: never idle
            # The first report that names an epoch is taken before any
            # decision of it (a later one may follow the root's break).
            blocked_when.setdefault(seen, blocked)
            for old in [e for e in blocked_when if e < seen - 4]:
                del blocked_when[old]
            socket.send_multipart([_wire.pack(_wire.STATUS, _incarnation, 0, 0, seq),
                                   _REPORT.pack(token, seen, busy, fingerprint, sent, received)])
            answer = None
            timeout_ms = int(settings.heartbeat_timeout * 1000)
            while answer is None and socket.poll(timeout_ms):
                frames = socket.recv_multipart()
                header = _wire.parse(frames[0], _wire.REPLIES)
                if header is not None and header.seq == seq and len(frames) == 2:
                    answer = _ANSWER.unpack(frames[1])  # (an older one is passed over)
            if answer is not None:
                seen, broken = answer
                if last_broken is None:
                    last_broken = broken  # (a deadlock broken before this node joined)
                elif broken != last_broken:
                    last_broken = broken
                    # Only the waits this node reported blocked in that deadlock
                    # (its processes woken meanwhile may have gone on).
                    if broken in blocked_when:
                        csp_ext.shm_break_run_deadlock(broken, blocked_when[broken])
            threading.Event().wait(_REPORT_INTERVAL)
    except Exception as exc:  # the node goes on; only its run's deadlocks are not seen
        print(f"pycsp.net.node: reports to the root of the run stopped: {exc!r}",
              file=sys.stderr, flush=True)
    finally:
        socket.close(0)
