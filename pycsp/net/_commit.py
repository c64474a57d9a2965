"""The commit protocol of channels across hosts, as a state machine (issue #16).

Pure: no sockets, no threads, no clock, no csp_ext.  The node's agent drives
it: every method takes one incoming message (or one local event: an operation
starts, a timeout fires, a node is declared dead) and returns what to do, a
list of ``Send(dest, message)`` and ``Outcome(...)`` (an operation ended: wake
its process).  ``tests/test_net_commit.py`` drives it over an in-memory network
that reorders, kills and partitions (hypothesis).

The protocol, in short (``models/net_commit.pml`` is the full version, checked
with spin; each method below names the model's step it stands for):

- A channel lives on its home node; the home keeps its offers and, for a
  buffered channel, its buffer.  A process's record, kept by its own node's
  agent, is the commit point: WAITING -> CLAIMED (by one channel's home) ->
  DONE, with a new epoch per operation; an operation sends one OFFER per guard.
- A home holding a reader's and a writer's offer on a channel runs one matcher
  for it (at most one at a time per channel).  The matcher CLAIMs the two
  parties in process order (node, then pid), through their agents; a claim on
  a record another matcher holds waits in that record's queue.  A failed
  first claim drops that offer; a failed second one drops it and RELEASEs the
  first party.  With both claimed: FINISH the reader, and the writer only once
  the reader's agent has ACKed (or is known dead), so that no writer is told
  DONE for a value that no reader has.
- A record that ends (DONE, LOST, POISONED, RETIRED, TIMED_OUT) fails its
  queued claims and WITHDRAWs its other offers.  A home keeps, per process,
  the last epoch known over and ignores older offers, and an agent queues a
  claim that overtook its channel's RELEASE, so that nothing here needs the
  transport's per-link order (ZeroMQ keeps it, the model assumes it, the
  tests do not).
- A node declared dead is fenced (whatever it sent is ignored from then on; a
  node that comes back is a new incarnation).  Each other agent, at its own
  moment, drops the dead node's processes' offers at its homes, takes their
  claims as failed, and ends LOST each operation of its own with a guard homed
  there (one claimed by a live matcher elsewhere: if that matcher releases
  it).  An operation started after its node knows a guard's home dead is LOST
  at once.  Delivery is at most once.  LOST is ``ChannelLostException``
  (a ``ChannelPoisonException``) for the process.
- Poison and retire (not in the model) happen at the home: every offer there
  and every later one is answered CLOSED; a matcher not yet committed releases
  its parties, which end POISONED.  Retire follows the API: no reader left
  retires the writers; no writer left retires the readers once the buffer is
  empty.

The agent's policies stay outside: when to fire a skip guard (at once) or a
timeout guard, which joins a dead node held (to poison them), pickling and big
payloads.  An alternation's priority order (PriSelect) is not kept across
homes: any ready guard may win, as with AltSelect.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any, Hashable, Sequence, Union

READ = "read"
WRITE = "write"

# A record's status; the last five are final (the operation's result).
IDLE = "IDLE"
WAITING = "WAITING"
CLAIMED = "CLAIMED"
DONE = "DONE"
LOST = "LOST"
POISONED = "POISONED"
RETIRED = "RETIRED"
TIMED_OUT = "TIMED_OUT"
FINAL = frozenset({DONE, LOST, POISONED, RETIRED, TIMED_OUT})

Node = Hashable


class ProtocolError(AssertionError):
    """A message arrived that the protocol says cannot arrive (the model's
    assertions): a bug here or a peer that does not follow the protocol."""


@dataclass(frozen=True, order=True)
class ProcessId:
    """A CSP process: its node and a number unique there.  The order of these
    (node, then pid) is the global order in which matchers claim."""
    node: Node
    pid: int


@dataclass(frozen=True)
class ChannelId:
    name: str
    home: Node


@dataclass(frozen=True)
class Guard:
    channel: ChannelId
    direction: str            # READ or WRITE
    value: Any = None         # what a WRITE guard writes


# ------------------------------------------------------------------ messages

@dataclass(frozen=True)
class Offer:                  # process's node -> home
    proc: ProcessId
    channel: ChannelId
    epoch: int
    direction: str
    value: Any = None


@dataclass(frozen=True)
class Withdraw:               # process's node -> home
    proc: ProcessId
    channel: ChannelId
    epoch: int


@dataclass(frozen=True)
class Claim:                  # home -> process's node
    proc: ProcessId
    channel: ChannelId
    epoch: int


@dataclass(frozen=True)
class Release:                # home -> process's node
    proc: ProcessId
    channel: ChannelId
    epoch: int


@dataclass(frozen=True)
class Finish:                 # home -> process's node
    proc: ProcessId
    channel: ChannelId
    epoch: int
    direction: str
    value: Any = None


@dataclass(frozen=True)
class ClaimOk:                # process's node -> home
    proc: ProcessId
    channel: ChannelId
    epoch: int


@dataclass(frozen=True)
class ClaimFail:              # process's node -> home
    proc: ProcessId
    channel: ChannelId
    epoch: int


@dataclass(frozen=True)
class Ack:                    # reader's node -> home, after a FINISH
    proc: ProcessId
    channel: ChannelId
    epoch: int


@dataclass(frozen=True)
class Closed:                 # home -> process's node: POISONED or RETIRED
    proc: ProcessId
    channel: ChannelId
    epoch: int
    reason: str


@dataclass(frozen=True)
class Poison:                 # anyone -> home
    channel: ChannelId


@dataclass(frozen=True)
class Retire:                 # anyone -> home: one join of that direction leaves
    channel: ChannelId
    direction: str


Message = Union[Offer, Withdraw, Claim, Release, Finish, ClaimOk, ClaimFail, Ack,
                Closed, Poison, Retire]


@dataclass(frozen=True)
class Send:
    dest: Node
    message: Message


@dataclass(frozen=True)
class Outcome:
    """An operation ended: ``result`` is a final status; ``guard`` the index
    of the guard that committed (DONE only), ``value`` what a read got."""
    proc: ProcessId
    epoch: int
    result: str
    guard: int | None = None
    value: Any = None


Effect = Union[Send, Outcome]


# ------------------------------------------------------------------ records

@dataclass
class Record:
    """A process's commit point, kept by its node's agent."""
    proc: ProcessId
    epoch: int = 0
    status: str = IDLE
    guards: tuple[Guard, ...] = ()
    claimer: ChannelId | None = None
    # What the operation ends as if its claimer releases it (the model's
    # lose_on_release, widened to poison, retire and timeouts).
    end_on_release: str | None = None
    queued: collections.deque[tuple[ChannelId, int]] = field(default_factory=collections.deque)
    offered: bool = False


# ------------------------------------------------------------------ a channel's home

class _Matcher:
    """One matcher of a channel (``proctype Matcher``): a rendezvous pair, or
    one party against the buffer (``put``: a writer into it, ``take``: a
    reader from it)."""

    __slots__ = ("kind", "reader", "writer", "order", "step")

    def __init__(self, kind: str, reader: Offer | None, writer: Offer | None) -> None:
        self.kind = kind
        self.reader = reader
        self.writer = writer
        parties = [o for o in (reader, writer) if o is not None]
        self.order = sorted(parties, key=lambda o: o.proc)   # claims in process order
        self.step = 0          # index in order of the party whose answer is awaited


class ChannelHome:
    """A channel at its home: its offers, its buffer, its matcher."""

    def __init__(self, channel: ChannelId, buffer: int = 0, readers: int = 1,
                 writers: int = 1, known_dead: set[Node] | None = None) -> None:
        self.channel = channel
        self.capacity = buffer
        self.buffer: collections.deque[Any] = collections.deque()
        self.readers_left = readers
        self.writers_left = writers
        self.poisoned = False
        # Offers by (process, direction), in arrival order (the pair picked
        # is the oldest reader and the oldest writer: one of the model's choices).
        self.offers: dict[tuple[ProcessId, str], Offer] = {}
        # Per process, the last epoch known over: older offers are stale.
        self.over: dict[ProcessId, int] = {}
        self.matcher: _Matcher | None = None
        self.known_dead = known_dead if known_dead is not None else set()

    # -- helpers

    def _drop(self, proc: ProcessId, epoch: int) -> None:
        """The model's drop(x, p, e), for both directions; remembers the epoch over."""
        if epoch > self.over.get(proc, 0):
            self.over[proc] = epoch
        for d in (READ, WRITE):
            o = self.offers.get((proc, d))
            if o is not None and o.epoch <= epoch:
                del self.offers[(proc, d)]

    def _closed_reason(self, direction: str) -> str | None:
        if self.poisoned:
            return POISONED
        if direction == WRITE and self.readers_left <= 0:
            return RETIRED
        if direction == READ and self.writers_left <= 0 and not self.buffer:
            return RETIRED
        return None

    def _close_offers(self) -> list[Effect]:
        """Answers CLOSED to every offer the channel's state now refuses."""
        out: list[Effect] = []
        for key, o in list(self.offers.items()):
            reason = self._closed_reason(o.direction)
            if reason is not None:
                del self.offers[key]
                out.append(Send(o.proc.node, Closed(o.proc, self.channel, o.epoch, reason)))
        return out

    def _try_start(self) -> list[Effect]:
        """try_start(x): a matcher if none runs and a match is there."""
        if self.matcher is not None or self.poisoned:
            return []
        readers = [o for o in self.offers.values() if o.direction == READ]
        writers = [o for o in self.offers.values() if o.direction == WRITE]
        m = None
        if self.capacity == 0:
            for r in readers:
                w = next((w for w in writers if w.proc != r.proc), None)
                if w is not None:
                    m = _Matcher("pair", r, w)
                    break
        elif readers and self.buffer:
            m = _Matcher("take", readers[0], None)
        elif writers and len(self.buffer) < self.capacity:
            m = _Matcher("put", None, writers[0])
        if m is None:
            return []
        self.matcher = m
        return [self._claim(m.order[0])]

    def _claim(self, o: Offer) -> Effect:
        return Send(o.proc.node, Claim(o.proc, self.channel, o.epoch))

    def _release(self, o: Offer) -> Effect:
        return Send(o.proc.node, Release(o.proc, self.channel, o.epoch))

    def _finish(self, o: Offer, value: Any = None) -> Effect:
        return Send(o.proc.node, Finish(o.proc, self.channel, o.epoch, o.direction, value))

    def _end_matcher(self) -> list[Effect]:
        """The matcher's ``out:``: busy[x] = 0; try_start(x) (and retire's
        CLOSED answers, which wait for no matcher to run)."""
        self.matcher = None
        return self._close_offers() + self._try_start()

    def _awaited(self) -> Offer | None:
        m = self.matcher
        if m is None:
            return None
        if m.step < len(m.order):
            return m.order[m.step]
        return m.reader        # step == len(order): awaiting the reader's ACK

    # -- messages

    def on_offer(self, msg: Offer) -> list[Effect]:
        """Agent, k == OFFER."""
        if msg.epoch <= self.over.get(msg.proc, 0):
            return []                                   # withdrawn or failed already
        reason = self._closed_reason(msg.direction)
        if reason is not None:
            return [Send(msg.proc.node, Closed(msg.proc, self.channel, msg.epoch, reason))]
        old = self.offers.get((msg.proc, msg.direction))
        if old is not None and old.epoch >= msg.epoch:
            return []
        self.offers.pop((msg.proc, msg.direction), None)
        self.offers[(msg.proc, msg.direction)] = msg
        return self._try_start()

    def on_withdraw(self, msg: Withdraw) -> list[Effect]:
        """Agent, k == WITHDRAW: drop(x, p, e)."""
        self._drop(msg.proc, msg.epoch)
        return []

    def on_answer(self, msg: ClaimOk | ClaimFail | Ack) -> list[Effect]:
        """A matcher's await(q, h) returning: OK, FAIL or ACK about q."""
        m = self.matcher
        q = self._awaited()
        if m is None or q is None or msg.proc != q.proc or msg.epoch != q.epoch:
            return []           # a late answer of a node declared dead: skipped
        if m.step == len(m.order):
            if not isinstance(msg, Ack):
                raise ProtocolError(f"{msg} while awaiting an ACK")
            return self._finish_writer()
        if isinstance(msg, Ack):
            raise ProtocolError(f"{msg} while awaiting a claim's answer")
        return self._answered(isinstance(msg, ClaimOk))

    def _answered(self, ok: bool) -> list[Effect]:
        m = self.matcher
        assert m is not None
        q = m.order[m.step]
        if not ok:
            # ans == FAIL: drop that offer; a second claim failing releases the first.
            self._drop(q.proc, q.epoch)
            out = [self._release(m.order[0])] if m.step == 1 else []
            return out + self._end_matcher()
        m.step += 1
        if self.poisoned:
            # Poisoned while claiming: release what is held (the parties had
            # CLOSED from the poison and end POISONED on release).
            out = [self._release(o) for o in m.order[:m.step]]
            return out + self._end_matcher()
        if m.step < len(m.order):
            nxt = m.order[m.step]
            if nxt.proc.node in self.known_dead:
                # await(q, h) with KNOWS(h, node_of[q]) already: FAIL, at once.
                return self._answered(False)
            return [self._claim(nxt)]
        # All claimed: the commit (drop both offers, FINISH the reader).
        for o in m.order:
            self._drop(o.proc, o.epoch)
        if m.kind == "put":
            assert m.writer is not None
            self.buffer.append(m.writer.value)
            return [self._finish(m.writer)] + self._end_matcher()
        r = m.reader
        assert r is not None
        if m.kind == "take":
            value = self.buffer.popleft()
        else:
            assert m.writer is not None
            value = m.writer.value
        out = [self._finish(r, value)]
        if m.kind == "take":
            return out + self._end_matcher()
        if not self._writer_awaits_ack(r):
            return out + self._finish_writer()
        return out                                      # await(r, h): the ACK

    def _writer_awaits_ack(self, reader: Offer) -> bool:
        """The writer is FINISHed only after the reader's ACK, unless the
        reader's node is known dead (the model's MUT_NO_ACK says why)."""
        return reader.proc.node not in self.known_dead

    def _finish_writer(self) -> list[Effect]:
        """After the reader's ACK (await(r, h)): FINISH the writer."""
        assert self.matcher is not None and self.matcher.writer is not None
        return [self._finish(self.matcher.writer)] + self._end_matcher()

    def on_poison(self) -> list[Effect]:
        """Poison at the home: every offer answered CLOSED, the buffer dropped."""
        if self.poisoned:
            return []
        self.poisoned = True
        self.buffer.clear()
        # A matcher not yet committed sees the flag at its next answer.
        return self._close_offers()

    def on_retire(self, direction: str) -> list[Effect]:
        if direction == READ:
            self.readers_left -= 1
        else:
            self.writers_left -= 1
        if self.matcher is not None:
            return []               # answered when the matcher ends
        return self._close_offers()

    def node_dead(self, c: Node) -> list[Effect]:
        """declare_dead, at a home: drop the offers of c's processes; a matcher
        awaiting an answer of c's takes it as FAIL (or ACK)."""
        for key in [k for k in self.offers if k[0].node == c]:
            del self.offers[key]
        q = self._awaited()
        m = self.matcher
        if m is None or q is None or q.proc.node != c:
            return self._try_start()
        if m.step == len(m.order):
            return self._finish_writer()
        return self._answered(False)


# ------------------------------------------------------------------ a node's agent

class Agent:
    """A node's agent (``proctype Agent``): its processes' records and the
    homes of the channels it homes.  Messages it sends to itself go out as
    Sends like any other (the driver may short-cut them)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.known_dead: set[Node] = set()
        self.records: dict[ProcessId, Record] = {}
        self.homes: dict[ChannelId, ChannelHome] = {}

    def home(self, name: str, buffer: int = 0, readers: int = 1, writers: int = 1) -> ChannelId:
        """A new channel homed here, with its count of joins per direction."""
        ch = ChannelId(name, self.node)
        self.homes[ch] = ChannelHome(ch, buffer, readers, writers, self.known_dead)
        return ch

    # -- local events

    def start(self, proc: ProcessId, guards: Sequence[Guard]) -> list[Effect]:
        """Process, one operation's first steps: a new epoch; LOST at once if a
        guard's home is known dead (the model's first finding); else WAITING
        and one OFFER per guard.  A skip or timeout guard is the driver's
        ``timeout`` call, at once or later."""
        if proc.node != self.node:
            raise ValueError(f"{proc} is not on node {self.node!r}")
        keys = [(g.channel, g.direction) for g in guards]
        if len(set(keys)) != len(keys):
            raise ValueError("two guards on the same channel in the same direction")
        rec = self.records.setdefault(proc, Record(proc))
        if rec.status in (WAITING, CLAIMED):
            raise ProtocolError(f"{proc} starts an operation while one is {rec.status}")
        rec.epoch += 1
        rec.guards = tuple(guards)
        rec.claimer = None
        rec.end_on_release = None
        rec.offered = False
        rec.queued.clear()
        if self._home_known_dead(guards):
            rec.status = LOST
            return [Outcome(proc, rec.epoch, LOST)]
        rec.status = WAITING
        rec.offered = True
        return [Send(g.channel.home, Offer(proc, g.channel, rec.epoch, g.direction,
                                           g.value if g.direction == WRITE else None))
                for g in guards]

    def _home_known_dead(self, guards: Sequence[Guard]) -> bool:
        """The model's first finding: an offer sent to a home known dead
        goes into the void, and its operation would wait for ever."""
        return any(g.channel.home in self.known_dead for g in guards)

    def timeout(self, proc: ProcessId, epoch: int) -> list[Effect]:
        """A skip or timeout guard of operation (proc, epoch) is ready: it
        commits if no channel's matcher holds the record, or on release."""
        rec = self.records.get(proc)
        if rec is None or rec.epoch != epoch:
            return []
        if rec.status == WAITING:
            return self._end(rec, TIMED_OUT)
        if rec.status == CLAIMED and rec.end_on_release is None:
            rec.end_on_release = TIMED_OUT
        return []

    def poison(self, channel: ChannelId) -> list[Effect]:
        return [Send(channel.home, Poison(channel))]

    def retire(self, channel: ChannelId, direction: str) -> list[Effect]:
        return [Send(channel.home, Retire(channel, direction))]

    def node_dead(self, c: Node) -> list[Effect]:
        """declare_dead(n, c): the failure detector says node c is dead."""
        if c == self.node or c in self.known_dead:
            return []
        self.known_dead.add(c)
        out: list[Effect] = []
        for h in self.homes.values():
            out += h.node_dead(c)
        for rec in self.records.values():
            if rec.status not in (WAITING, CLAIMED):
                continue
            if not any(g.channel.home == c for g in rec.guards):
                continue
            if rec.status == WAITING or (rec.claimer is not None and rec.claimer.home == c):
                out += self._end(rec, LOST)
            else:
                rec.end_on_release = LOST
        return out

    # -- messages

    def receive(self, src: Node, msg: Message) -> list[Effect]:
        """One message from node src (inbox[n]?...)."""
        if self._fenced(src):
            return []
        if isinstance(msg, (Offer, Withdraw, ClaimOk, ClaimFail, Ack, Poison, Retire)):
            h = self.homes.get(msg.channel)
            if h is None:
                raise ProtocolError(f"{msg} at {self.node!r}, not its home")
            if isinstance(msg, Offer):
                return h.on_offer(msg)
            if isinstance(msg, Withdraw):
                return h.on_withdraw(msg)
            if isinstance(msg, Poison):
                return h.on_poison()
            if isinstance(msg, Retire):
                return h.on_retire(msg.direction)
            return h.on_answer(msg)
        rec = self.records.get(msg.proc)
        if rec is None or msg.proc.node != self.node:
            raise ProtocolError(f"{msg} at {self.node!r}: no such process here")
        if isinstance(msg, Claim):
            return self._claim(rec, msg.channel, msg.epoch)
        if isinstance(msg, Release):
            return self._release(rec, msg)
        if isinstance(msg, Finish):
            return self._finish(rec, msg)
        if isinstance(msg, Closed):
            return self._closed(rec, msg)
        raise ProtocolError(f"unknown message {msg!r}")

    def _fenced(self, src: Node) -> bool:
        """Whatever a node declared dead sent is ignored, even if it comes back."""
        return src != self.node and src in self.known_dead

    def _claim(self, rec: Record, channel: ChannelId, epoch: int) -> list[Effect]:
        """claim(p, x, e)."""
        if epoch != rec.epoch or rec.status in FINAL:
            return [Send(channel.home, ClaimFail(rec.proc, channel, epoch))]
        if rec.status == WAITING:
            rec.status = CLAIMED
            rec.claimer = channel
            return [Send(channel.home, ClaimOk(rec.proc, channel, epoch))]
        if rec.status != CLAIMED:
            raise ProtocolError(f"claim by {channel} of {rec}")
        # Held by another matcher: queue.  The model asserts that the holder is
        # not this channel's matcher; without per-link order it can be: that
        # matcher RELEASEd the record, and the channel's next matcher's CLAIM
        # overtook the RELEASE.  Queued, it is served once the RELEASE arrives.
        rec.queued.append((channel, epoch))
        return []

    def _release(self, rec: Record, msg: Release) -> list[Effect]:
        """k == RELEASE."""
        if not (rec.status == CLAIMED and rec.claimer == msg.channel and rec.epoch == msg.epoch):
            raise ProtocolError(f"{msg} of {rec}")
        if rec.end_on_release is not None:
            return self._end(rec, rec.end_on_release)
        rec.status = WAITING
        rec.claimer = None
        out: list[Effect] = []
        while rec.queued and rec.status == WAITING:
            channel, epoch = rec.queued.popleft()
            out += self._claim(rec, channel, epoch)
        return out

    def _finish(self, rec: Record, msg: Finish) -> list[Effect]:
        """k == FINISH: DONE, ACK a read, fail the queued claims, withdraw."""
        if not (rec.status == CLAIMED and rec.claimer == msg.channel and rec.epoch == msg.epoch):
            raise ProtocolError(f"{msg} of {rec}")
        index = next(i for i, g in enumerate(rec.guards)
                     if g.channel == msg.channel and g.direction == msg.direction)
        out: list[Effect] = []
        if msg.direction == READ:
            out.append(Send(msg.channel.home, Ack(rec.proc, msg.channel, msg.epoch)))
        return out + self._end(rec, DONE, index, msg.value)

    def _closed(self, rec: Record, msg: Closed) -> list[Effect]:
        """The home of one guard's channel refuses it (poison or retire)."""
        if msg.epoch != rec.epoch or rec.status in FINAL:
            return []
        if rec.status == WAITING:
            return self._end(rec, msg.reason)
        if rec.end_on_release is None:
            rec.end_on_release = msg.reason
        return []

    def _end(self, rec: Record, result: str, index: int | None = None,
             value: Any = None) -> list[Effect]:
        """lose(p), and FINISH's ending: final status, queued claims FAIL, the
        other offers withdrawn (Process, after end_wait)."""
        rec.status = result
        rec.claimer = None
        rec.end_on_release = None
        out: list[Effect] = []
        while rec.queued:
            channel, epoch = rec.queued.popleft()
            out.append(Send(channel.home, ClaimFail(rec.proc, channel, epoch)))
        if rec.offered:
            for i, g in enumerate(rec.guards):
                if i != index and g.channel.home not in self.known_dead:
                    out.append(Send(g.channel.home, Withdraw(rec.proc, g.channel, rec.epoch)))
        out.append(Outcome(rec.proc, rec.epoch, result, index, value))
        return out
