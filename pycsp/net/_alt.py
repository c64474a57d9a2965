"""An alternation over ends of channels homed in other programs: the alternating side.

The commit point of an alternation in one program is a compare-and-swap on
the alternating party's record (rules/match.h, C1).  Across programs the
party is its own arbiter: one thread, which says yes to at most one home at
a time, so that exactly one guard commits.

1. In guard order, each channel guard is ARMed at its home (one round trip).
   The home tries it at once (a party there waits for it: it commits, and
   the alternation is done) or keeps it armed and answers ARMED.  A Skip (or
   a Timeout of no time) ends the pass: the guards before it are only tried,
   never left armed (the home answers ARMED without keeping them).
2. Then the party waits for a home to CLAIM it: a home claims an armed
   guard when it finds it ready (``_arms``: a party of the home's program
   came, or another program's armed guard matches it).  The party ANSWERs
   the first claim; the reply is the commit of that guard (DATA or OK) or
   RELEASED (its partner went away meanwhile: the party waits on).  Claims
   that come meanwhile wait for that reply, so a home that holds another
   party's claim never waits on a party that waits on it (homes claim two
   parties in a fixed order: ``_arms``).
3. Once it committed, timed out or failed, the party DISARMs its guards at
   every home that holds one (claims still in flight there are dropped).

A Timeout guard is the wait's deadline; it is chosen only if no home holds
a claim of the party then.  PriSelect's order holds for the guards tried in
step 1; afterwards whichever home claims first wins (AltSelect's any), and
FairSelect tries channel guards least recently chosen first, as the core does.
"""
from __future__ import annotations

import itertools
import os
import threading
import time

import zmq

import csp_ext

from .._errors import ChannelSocketException
from . import _wire
from ._remote import NOTHING_KEPT, _link_to, keep_late, kept, message_frames, take_kept


class RemoteInputGuard:
    """An input guard on an end of a channel homed in another program."""

    __slots__ = ("end", "action")

    def __init__(self, end, action=None):
        self.end, self.action = end, action


class RemoteOutputGuard:
    """An output guard on an end of a channel homed in another program."""

    __slots__ = ("end", "msg", "action")

    def __init__(self, end, msg, action=None):
        self.end, self.msg, self.action = end, msg, action


class _Party(threading.local):
    """This thread as an alternating party: its number (with the process's
    incarnation, it names the party at every home) and its alternations."""

    numbers = itertools.count(1)

    def __init__(self):
        self.pid = os.getpid()
        self.number = next(_Party.numbers)
        self.alternations = itertools.count(1)


_party = _Party()


def _reset_at_fork():
    _Party.numbers = itertools.count(1)  # the child's incarnation is new: numbers may repeat


os.register_at_fork(after_in_child=_reset_at_fork)


def choose(guards, fair=False):
    """Commit exactly one of ``guards``: (position, message read or None).

    ``guards``: in scan order, each RemoteInputGuard, RemoteOutputGuard,
    SkipGuard or TimeoutGuard."""
    order = _fair_order(guards) if fair else list(range(len(guards)))
    if kept:  # a read that a signal handler interrupted took this message after all
        for position in order:
            guard = guards[position]
            if isinstance(guard, csp_ext.SkipGuard) or (
                    isinstance(guard, csp_ext.TimeoutGuard) and guard.seconds <= 0):
                break  # ready before it, in PriSelect's order
            if isinstance(guard, RemoteInputGuard):
                message = take_kept(guard.end)
                if message is not NOTHING_KEPT:
                    return _chose(guards, (position, message))
    alternation = next(_party.alternations)
    armed = {}  # link -> True: homes that keep a guard of this alternation
    carried = {}  # position -> the ends its message carries (output guards)
    deadline = None
    try:
        for position in order:
            guard = guards[position]
            if isinstance(guard, csp_ext.SkipGuard):
                return position, None
            if isinstance(guard, csp_ext.TimeoutGuard):
                if guard.seconds <= 0:
                    return position, None
                if deadline is None or time.monotonic() + guard.seconds < deadline[0]:
                    deadline = (time.monotonic() + guard.seconds, position)
                continue
            try_only = _ends_early(guards, order, position)
            link = _link_to(guard.end.channel.address)
            held_before = link in armed
            if not try_only:
                # Before the ARM leaves: if its reply never comes (Ctrl-C), the
                # home may keep the guard all the same, and only DISARM drops it.
                armed[link] = True
            outcome = _arm(link, guard, position, alternation, try_only, carried)
            if outcome is not None:
                if not held_before:
                    armed.pop(link, None)  # it answered: it keeps nothing of this one
                return _chose(guards, (position, outcome[0]))
        return _chose(guards, _wait(guards, armed, deadline, alternation, carried))
    finally:
        _disarm(armed, alternation)


_fair_clock = itertools.count(1)
_CHANNEL_GUARDS = (RemoteInputGuard, RemoteOutputGuard)


def _fair_order(guards):
    """FairSelect's scan order, as the core's: channel guards least recently
    chosen first (by their end), then Skip and Timeout guards in order."""
    channel_guards = sorted((p for p, g in enumerate(guards) if isinstance(g, _CHANNEL_GUARDS)),
                            key=lambda p: guards[p].end.fair_stamp)
    return channel_guards + [p for p, g in enumerate(guards)
                             if not isinstance(g, _CHANNEL_GUARDS)]


def _chose(guards, outcome):
    """Stamp the chosen guard's end for FairSelect; ``outcome`` unchanged."""
    guard = guards[outcome[0]]
    if isinstance(guard, _CHANNEL_GUARDS):
        guard.end.fair_stamp = next(_fair_clock)
    return outcome


def _ends_early(guards, order, position):
    """Whether a Skip or a Timeout of no time comes after ``position``."""
    later = order[order.index(position) + 1:]
    return any(isinstance(guards[p], csp_ext.SkipGuard)
               or (isinstance(guards[p], csp_ext.TimeoutGuard) and guards[p].seconds <= 0)
               for p in later)


def _arm(link, guard, position, alternation, try_only, carried_by):
    """ARM one guard at its home: (message,) if it committed, None if armed."""
    end = guard.end
    end._check()
    body = [_wire.ARM_BODY.pack(_party.number, alternation, position, 1 if try_only else 0)]
    carried = ()
    if isinstance(guard, RemoteOutputGuard):
        frames, carried = message_frames(end.channel, guard.msg)
        carried_by[position] = carried
        body += frames
    try:
        header, reply = link.request(_wire.ARM, end.number, body)
    except BaseException:
        keep_late(end, link, carried)  # it committed at once after all
        raise
    if header.op == _wire.ARMED:
        return None
    return (_committed(guard, header, reply, carried),)


def _committed(guard, header, reply, carried):
    """The message of a guard that committed (None for an output guard)."""
    end = guard.end
    if header.op == _wire.DATA:
        return _wire.loads(reply)
    if header.op == _wire.OK:
        for moved in carried:  # a reader has them now
            moved.moved = True
        return None
    end._outcome(header, reply)
    raise ChannelSocketException(end.channel.address, f"pycsp.net: unexpected reply "
                                 f"{header.op} to an alternation")


def _wait(guards, armed, deadline, alternation, carried):
    """Wait for a claim of a home that keeps a guard, answer it: the commit.
    The links to those homes are busy meanwhile (``_remote._link_to``): a
    signal handler that runs in the poll below and used one of them would
    read claims that the poll, resumed, would then wait for."""
    poller = zmq.Poller()
    waiting_on = list(armed)
    for link in waiting_on:
        poller.register(link.socket, zmq.POLLIN)
        poller.register(link.monitor, zmq.POLLIN)
        link.busy += 1
    try:
        return _claimed(guards, armed, deadline, alternation, carried, poller)
    finally:
        for link in waiting_on:
            link.busy -= 1


def _claimed(guards, armed, deadline, alternation, carried, poller):
    while True:
        for link in armed:
            for claim in link.take_claims():
                outcome = _answer(guards, link, claim, alternation, carried)
                if outcome is not None:
                    del armed[link]  # the home that committed dropped the rest itself
                    return outcome
        if any(link.claims for link in armed):
            # came while an answer was awaited: read off the socket already,
            # so the poll below would not see them
            continue
        if deadline is not None and time.monotonic() >= deadline[0]:
            return deadline[1], None
        wait = None if deadline is None else max(0.0, deadline[0] - time.monotonic()) * 1000
        poller.poll(wait)


def _answer(guards, link, claim, alternation, carried):
    """Say yes to a home's claim: (position, message) if the guard committed,
    None if the home released the party (or the claim is of an earlier
    alternation, which ended: the home dropped it on that one's DISARM)."""
    if claim.seq != alternation:
        return None
    try:
        header, reply = link.request(_wire.ANSWER, claim.ref)
    except BaseException:
        late = link.late
        if late is not None and 0 <= late[0].ref < len(guards):  # it committed after all
            keep_late(guards[late[0].ref].end, link, carried.get(late[0].ref, ()))
        raise
    if header.op == _wire.RELEASED:
        return None
    position = header.ref
    if not 0 <= position < len(guards):
        raise ChannelSocketException(link.address, "pycsp.net: a home committed a guard "
                                     "that the alternation does not have")
    return position, _committed(guards[position], header, reply, carried.get(position, ()))


def _disarm(armed, alternation):
    """Withdraw the alternation's guards at every home that keeps one."""
    body = _wire.DISARM_BODY.pack(_party.number, alternation)
    for link in armed:
        try:
            link.send_only(_wire.DISARM, 0, body)
        except zmq.ZMQError:
            pass  # a home gone keeps nothing
