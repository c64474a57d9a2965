"""Which processes of other programs a home counts alive, and which it declared dead.

Every process that talks to a home sends it a heartbeat from a thread of its
own (``_heartbeat``) every ``heartbeat_interval`` seconds for as long as it
lives, whatever its other threads do: blocked in a read that the home
serves, or just holding ends.  The home notes when it last heard from each
process, by incarnation (a random number drawn per process, so that a pid
used again is another process).  A process not heard from for
``heartbeat_timeout`` seconds is declared dead (killed, stopped, its host
or link down); the agent then poisons the channels of the joins it made (or
holds: an end that arrived in a message is its holder's) and of the joins
with an operation of it in progress, and refuses (FENCED)
whatever it sends afterwards: a process that comes back is fenced for good.
A process that ends normally says BYE and is forgotten.

A home that did not run for a while (stopped, starved) heard nobody then:
its watch starts afresh instead of declaring everyone dead.
"""
from __future__ import annotations

import time


class Peer:
    """A process of another program that talks to this home."""

    __slots__ = ("incarnation", "pid", "last_heard", "made")

    def __init__(self, incarnation: int, pid: int, now: float) -> None:
        self.incarnation, self.pid, self.last_heard = incarnation, pid, now
        self.made: set[int] = set()  # numbers of the joins it made here


class PeerWatch:
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.peers: dict[int, Peer] = {}
        self.dead: set[int] = set()  # incarnations declared dead: fenced for good
        self.last_turn = self.last_look = time.monotonic()

    def heard(self, incarnation: int, pid: int) -> bool:
        """A request came from ``incarnation``; False if it was declared dead."""
        if incarnation in self.dead:
            return False
        now = time.monotonic()
        peer = self.peers.get(incarnation)
        if peer is None:
            self.peers[incarnation] = Peer(incarnation, pid, now)
        else:
            peer.last_heard = now
        return True

    def is_dead(self, incarnation: int) -> bool:
        return incarnation in self.dead

    def made_join(self, incarnation: int, number: int) -> None:
        peer = self.peers.get(incarnation)
        if peer is not None:
            peer.made.add(number)

    def hand_over(self, number: int, incarnation: int) -> None:
        """Join ``number`` moved in a message to ``incarnation`` (HOLD): it is
        that process's from now on; its sender's death no longer poisons it."""
        for peer in self.peers.values():
            peer.made.discard(number)
        self.made_join(incarnation, number)

    def forget_join(self, number: int) -> None:
        """Join ``number`` was retired: nobody's death poisons it now."""
        for peer in self.peers.values():
            peer.made.discard(number)

    def goodbye(self, incarnation: int) -> None:
        """The process ends normally: its silence from now on is no death."""
        self.peers.pop(incarnation, None)

    def overdue(self) -> list[Peer]:
        """The peers not heard from for the timeout, declared dead by this call.
        Called on every turn of the home's loop; looks at most every 1/8 timeout."""
        now = time.monotonic()
        if now - self.last_turn > self.timeout / 2:
            # This home did not run for that long: it cannot tell who was silent.
            for peer in self.peers.values():
                peer.last_heard = max(peer.last_heard, now)
        self.last_turn = now
        if now - self.last_look < self.timeout / 8:
            return []
        self.last_look = now
        late = [peer for peer in self.peers.values() if now - peer.last_heard > self.timeout]
        for peer in late:
            del self.peers[peer.incarnation]
            self.dead.add(peer.incarnation)
        return late

    def poll_ms(self) -> int | None:
        """How long the home may wait for a request before it looks again (ms)."""
        return max(10, int(self.timeout * 125)) if self.peers else None
