"""An alternation over ends of channels homed in other programs: the home's side.

A remote party's guard that was not ready when it came (ARM) is kept armed
here until a partner comes, its alternation ends (DISARM) or its process is
declared dead.  Partners are found two ways:

- In the core: a party of this program (or a remote party's plain read or
  write, which the agent performs in the core) on the guard's channel.  The
  core's commit needs a record to claim, which a remote party has not here,
  so the agent keeps a *proxy offer* in the channel's queue instead
  (``csp_ext._ShmProxy``): a party that pops it cannot claim it, drops it,
  queues itself as usual, and wakes the agent.  ``arm`` of the proxy looks
  for a partner and links the offer in one step under the channel's lock,
  so no partner goes unnoticed between the two.
- Here: a remote party's armed guard against another one's of the opposite
  direction on a rendezvous channel (neither is in the core's queues).

Either way the agent CLAIMs the remote party (two, in a fixed order: the
lower party first, so that homes claiming the same parties never wait on
each other) and only when it said yes makes the commit: an attempt that does
not block in the core (a select with a Skip; if the partner went away
meanwhile, the party is RELEASED and its guard stays armed), or the message
handed from one armed writer to one armed reader.  So a remote party
commits exactly one guard (``_alt``) and a party here is committed by the
core's own claim.
"""
from __future__ import annotations

import itertools
import threading

import csp_ext

from . import _link, _wire


class _Arm:
    """One armed guard of a remote party's alternation."""

    __slots__ = ("party", "alternation", "join", "position", "is_write", "frames", "message",
                 "carried", "identity", "stream", "match", "claimed")

    def __init__(self, party, alternation, join, position, is_write, frames, message, carried,
                 identity, stream):
        self.party, self.alternation = party, alternation
        self.join, self.position = join, position
        self.is_write, self.frames, self.message, self.carried = is_write, frames, message, carried
        self.identity, self.stream = identity, stream
        self.match = None  # the match it is part of, if any
        self.claimed = False  # its party was sent the match's claim


class _Match:
    """A commit in the making: claims of one armed guard (against the core)
    or of an armed reader and an armed writer (the first claimed first)."""

    __slots__ = ("number", "arms", "answers")

    def __init__(self, number, arms):
        self.number, self.arms = number, arms
        self.answers = {}  # arm -> (identity, header) of its party's yes, awaiting the outcome


class Arms:
    def __init__(self, agent):
        self.agent = agent
        self.by_alternation = {}  # (party, alternation) -> [_Arm]
        self.by_channel = {}  # channel offset -> (channel, [reader arms], [writer arms])
        self.matches = {}  # claim number -> _Match
        self.claim_numbers = itertools.count(1)
        self.proxy = None
        self.poked = False

    # -- requests (the agent's main thread) -------------------------------

    def arm(self, identity, header, join, body):
        """ARM: try the guard at once; if it is not ready, keep it armed."""
        agent = self.agent
        if not body or len(body[0]) != _wire.ARM_BODY.size:
            agent.reply(identity, header, _wire.ERROR, b"an ARM without its guard")
            return
        party_number, alternation, position, try_only = _wire.ARM_BODY.unpack(body[0])
        self.drop_earlier((header.incarnation, party_number), alternation)
        is_write = isinstance(join.end, csp_ext.ShmChannelEndWrite)
        frames, message, carried = body[1:], None, ()
        if is_write:
            refused = agent.refusal(frames, "an output guard", _wire.size(frames))
            if refused is not None:
                agent.reply(identity, header, _wire.ERROR, refused)
                return
            try:
                message, carried = agent.load(frames)
            except Exception as exc:
                agent.reply(identity, header, _wire.ERROR, error_text(exc))
                return
        with wakes_held:
            outcome = agent.perform(join, _wire.WRITE if is_write else _wire.READ, message,
                                    at_once=True)
            if outcome is not None:
                hand_back_if_taken(outcome, carried)
                agent.reply(identity, header, *outcome, ref=position)
        if outcome is not None:
            return
        agent.reply(identity, header, _wire.ARMED)
        if try_only:
            return
        arm = _Arm((header.incarnation, party_number), alternation, join, position, is_write,
                   frames, message, carried, identity, header.stream)
        self.by_alternation.setdefault((arm.party, alternation), []).append(arm)
        offset = join.channel._offset
        entry = self.by_channel.get(offset)
        if entry is None:
            entry = self.by_channel[offset] = (join.channel, [], [])
        entry[2 if is_write else 1].append(arm)
        self._start_proxy()
        self.match(offset)

    def disarm(self, header, body):
        """DISARM: the party's alternation ended; drop its guards (no reply)."""
        if body and len(body[0]) == _wire.DISARM_BODY.size:
            party_number, alternation = _wire.DISARM_BODY.unpack(body[0])
            self.drop((header.incarnation, party_number), alternation)

    def drop_earlier(self, party, alternation):
        """A party alternates once at a time: its ARM of ``alternation`` means
        its earlier ones ended, even where their DISARM never came (a Ctrl-C
        between two homes' DISARMs); a guard of one left armed would be
        claimed, never answered, and hold up its side of the channel."""
        for key in [key for key in self.by_alternation
                    if key[0] == party and key[1] < alternation]:
            self.drop(*key)

    def answer(self, identity, header):
        """ANSWER: the party says yes to claim ``header.ref``."""
        match = self.matches.get(header.ref)
        arm = None if match is None else next(
            (a for a in match.arms if a.claimed and a.stream == header.stream
             and a.party[0] == header.incarnation), None)
        if arm is None:  # a claim dropped meanwhile (its partner's alternation ended)
            self.agent.reply(identity, header, _wire.RELEASED)
            return
        match.answers[arm] = (identity, header)
        if len(match.answers) < len(match.arms):
            self.claim(match.arms[len(match.answers)], match)  # the second party now
        elif len(match.arms) == 1:
            self.commit_in_core(match)
        else:
            self.commit_pair(match)

    def peer_dead(self, incarnation):
        """A process declared dead, or that ended (BYE): its alternations end."""
        offsets = set()
        for party, alternation in [key for key in self.by_alternation if key[0][0] == incarnation]:
            offsets.update(self.drop(party, alternation, rematch=False))
        for offset in offsets:
            self.match(offset)

    def on_poke(self):
        """A party popped a proxy offer: look at every channel with guards armed."""
        self.poked = False
        for offset in list(self.by_channel):
            self.match(offset)

    # -- matching -----------------------------------------------------------

    def match(self, offset):
        """Start a match for each side of the channel that has an armed guard
        not being claimed, if its partner is here; else leave the proxy linked."""
        entry = self.by_channel.get(offset)
        if entry is None:
            return
        channel, readers, writers = entry
        if not readers and not writers:
            del self.by_channel[offset]
            if self.proxy is not None:
                self.proxy.disarm(channel, False)
                self.proxy.disarm(channel, True)
            return
        for is_write, arms in ((False, readers), (True, writers)):
            if _in_a_match(arms):  # that side waits for its match to end
                continue
            free = [arm for arm in arms if arm.match is None]
            if not free:
                if not arms:
                    self.proxy.disarm(channel, is_write)
                continue
            if not is_write and channel.buffer == 0 and not _in_a_match(writers):
                pair = next(((r, w) for r in free for w in writers
                             if w.match is None and w.party != r.party), None)
                if pair is not None:
                    self.proxy.disarm(channel, False)
                    self.proxy.disarm(channel, True)
                    self.start(sorted(pair, key=lambda a: a.party))
                    break
            if self.proxy.arm(channel, is_write):
                self.start([free[0]])

    def start(self, arms):
        """A match of ``arms`` (claimed in that order); their sides start no
        other match until it ends."""
        match = _Match(next(self.claim_numbers), arms)
        self.matches[match.number] = match
        for arm in arms:
            arm.match = match
        self.claim(arms[0], match)

    def claim(self, arm, match):
        """Ask ``arm``'s party whether the guard may commit (it answers with ANSWER)."""
        arm.claimed = True
        csp_ext.shm_net_sent()
        _link.send_frames(self.agent.router, [
            arm.identity, _wire.pack(_wire.CLAIM, self.agent.home, self.agent.pid, arm.stream,
                                     arm.alternation, match.number)])

    def commit_in_core(self, match):
        (arm,) = match.arms
        agent = self.agent
        identity, header = match.answers[arm]
        with wakes_held:
            outcome = agent.perform(arm.join, _wire.WRITE if arm.is_write else _wire.READ,
                                    arm.message, at_once=True)
            if outcome is not None:
                hand_back_if_taken(outcome, arm.carried)
                agent.reply(identity, header, *outcome, ref=arm.position)
        self.end_match(match)
        offsets = ()
        if outcome is None:  # the partner went away: the guard stays armed
            agent.reply(identity, header, _wire.RELEASED)
        else:
            offsets = self.drop(arm.party, arm.alternation, rematch=False)
        for offset in {arm.join.channel._offset, *offsets}:
            self.match(offset)

    def commit_pair(self, match):
        """Hand the armed writer's message to the armed reader (both said yes)."""
        reader, writer = sorted(match.arms, key=lambda a: a.is_write)
        agent = self.agent
        channel = reader.join.channel
        self.end_match(match)
        if channel.statistics()["poisoned"]:
            outcomes = {reader: (_wire.POISONED, None), writer: (_wire.POISONED, None)}
        else:
            # The message goes on as its writer's frames: ends in it that
            # belong to this home stay with the reader, as a join of this home.
            outcomes = {reader: (_wire.DATA, writer.frames), writer: (_wire.OK, None)}
        offsets = {channel._offset}
        for arm, (op, body) in outcomes.items():
            identity, header = match.answers[arm]
            agent.reply(identity, header, op, body, ref=arm.position)
            offsets.update(self.drop(arm.party, arm.alternation, rematch=False))
        for offset in offsets:
            self.match(offset)

    def end_match(self, match):
        self.matches.pop(match.number, None)
        for arm in match.arms:
            arm.match, arm.claimed = None, False

    def drop(self, party, alternation, rematch=True):
        """Drop every guard of an alternation; a match in flight with one of
        them is cancelled (a partner that said yes already is RELEASED).
        The channels it was armed on are matched again, unless ``rematch`` is
        false (the caller does it, after dropping more); their offsets."""
        arms = self.by_alternation.pop((party, alternation), ())
        offsets = set()
        for arm in arms:
            entry = self.by_channel.get(arm.join.channel._offset)
            if entry is not None:
                side = entry[2 if arm.is_write else 1]
                if arm in side:
                    side.remove(arm)
            offsets.add(arm.join.channel._offset)
            match = arm.match
            if match is not None:
                for other, (identity, header) in match.answers.items():
                    if other is not arm:
                        self.agent.reply(identity, header, _wire.RELEASED)
                self.end_match(match)
                offsets.update(a.join.channel._offset for a in match.arms)
        if rematch:
            for offset in offsets:
                self.match(offset)
        return offsets

    # -- the proxy's thread -----------------------------------------------

    def _start_proxy(self):
        if self.proxy is None:
            self.proxy = csp_ext._ShmProxy()
            threading.Thread(target=self._wait_for_pokes, name="pycsp.net proxy",
                             daemon=True).start()

    def _wait_for_pokes(self):
        proxy = self.proxy
        while not proxy.closed:
            try:
                poked = proxy.wait(None)
            except ValueError:  # closed meanwhile: the agent stops
                return
            if poked:
                self.poked = True
                self.agent.wake()

    def close(self):
        if self.proxy is not None:
            self.proxy.close()


def _in_a_match(arms):
    return any(arm.match is not None for arm in arms)


class _WakesHeld:
    """``with wakes_held:`` the parties here that an operation meets are woken
    at its end, once the reply to the remote party has left: woken at once,
    one would take this CPU before the reply goes (scopes nest)."""

    __slots__ = ()

    def __enter__(self):
        csp_ext.shm_hold_wakes(True)

    def __exit__(self, *exc_info):
        csp_ext.shm_hold_wakes(False)


wakes_held = _WakesHeld()


def hand_back_if_taken(outcome, carried):
    """A write carrying joins of this home back succeeded: no other program
    holds them now (a write refused leaves them with their sender)."""
    if outcome[0] == _wire.OK:
        for join in carried:
            join.left = True


def error_text(exc):
    return f"{type(exc).__name__}: {exc}".encode("utf-8", "replace")

