"""Traced alternation: ``Alternation``, ``AltSelect``, ``PriSelect``,
``FairSelect``, ``InputGuard``, ``OutputGuard``.

The guards a program gives (with traced ends among them) are translated, at
each choice, into the core's guards over the backend's ends, output messages
tagged afresh; the core makes the choice (``csp_ext.select``) and its entry
is translated back: the guard the program gave, the message untagged.  Each
choice is recorded as a slice ``alt`` from the call to the choice.

Registered with the core's alternation (``pycsp._guard_kinds``), so that the
core's Alternation and selects hand a choice among traced ends to this module:
components written against the backend (plugNplay's) work on traced channels.
"""
import sys

import csp_ext
from csp_ext import SkipGuard, TimeoutGuard

from ... import _alternation as core, _guard_kinds
from . import _recorder as rec
from ._channels import ChannelEndRead, ChannelEndWrite, Tagged, channel_args, tag


class InputGuard:
    """``InputGuard(end, action=None)``: ready when ``end`` (a traced or a
    backend's reader end) can be read.

    Attributes:
        end: the reader end.
        action: run when the guard is chosen, or None (as the core's guards).
    """

    __slots__ = ("end", "action")

    def __init__(self, end, action=None):
        if not isinstance(end, ChannelEndRead):
            csp_ext.InputGuard(end, action)  # the core's checks and errors
        self.end, self.action = end, action


class OutputGuard:
    """``OutputGuard(end, msg, action=None)``: ready when ``msg`` can be written
    to ``end`` (a traced or a backend's writer end).

    Attributes:
        end: the writer end.
        msg: the message offered.
        action: run when the guard is chosen, or None (as the core's guards).
    """

    __slots__ = ("end", "msg", "action")

    def __init__(self, end, msg, action=None):
        if not isinstance(end, ChannelEndWrite):
            csp_ext.OutputGuard(end, msg, action)  # the core's checks and errors
        self.end, self.msg, self.action = end, msg, action


def _untagged(msg):
    return msg


def _core_guard(guard, traced_ends, tag):
    """The core's spelling of one guard; traced ends become the backend's
    (remembered in ``traced_ends``: id of the backend end -> traced end), and
    ``tag`` is applied to output messages."""
    if isinstance(guard, ChannelEndRead):
        traced_ends[id(guard._end)] = guard
        return guard._end
    if isinstance(guard, InputGuard):
        return csp_ext.InputGuard(_core_end(guard.end, traced_ends), guard.action)
    if isinstance(guard, OutputGuard):
        return csp_ext.OutputGuard(_core_end(guard.end, traced_ends), tag(guard.msg), guard.action)
    if isinstance(guard, tuple) and len(guard) == 2 and isinstance(guard[0], ChannelEndWrite):
        return (_core_end(guard[0], traced_ends), tag(guard[1]))
    return guard


def _core_end(end, traced_ends):
    if isinstance(end, (ChannelEndRead, ChannelEndWrite)):
        traced_ends[id(end._end)] = end
        return end._end
    return end


def _core_item(item, traced_ends, tag):
    """One item of an Alternation's list, in the core's spelling."""
    if isinstance(item, dict):
        return {_core_guard(g, traced_ends, tag): action for g, action in item.items()}
    if isinstance(item, tuple) and len(item) == 3 and isinstance(item[0], ChannelEndWrite):
        return (_core_end(item[0], traced_ends), tag(item[1]), item[2])
    if isinstance(item, tuple) and len(item) == 2 and not isinstance(item[0], ChannelEndWrite):
        return (_core_guard(item[0], traced_ends, tag), item[1])
    return _core_guard(item, traced_ends, tag)


def _describe(entry, traced_ends):
    c_guard, end, kind, _ = entry[:4]
    if kind == core._INPUT or kind == core._OUTPUT:
        traced = traced_ends.get(id(end))
        label = traced.channel.label if traced is not None else str(end.channel.name)
        return ("read " if kind == core._INPUT else "write ") + label
    if isinstance(c_guard, TimeoutGuard):
        return f"timeout {c_guard.seconds}"
    return "skip"


def _choose(entries, traced_ends, fair):
    """Make the choice among core ``entries``; record it; return
    (entry, the guard as the program gave it, the message untagged)."""
    guards = tuple(e[0] for e in entries)
    if rec.session is None:
        index, msg = csp_ext.select(guards, fair)
        entry = entries[index]
        if type(msg) is Tagged:
            msg = msg.msg
        return entry, traced_ends.get(id(entry[1]), entry[1]), msg
    start = rec.clock()
    try:
        index, msg = csp_ext.select(guards, fair)
    except BaseException as exc:
        rec.complete("alt", "alt", start, {"guards": [_describe(e, traced_ends) for e in entries],
                                           "outcome": rec.describe_outcome(exc)})
        raise
    entry = entries[index]
    chosen = _describe(entry, traced_ends)
    flow = None
    if type(msg) is Tagged:
        flow, msg = msg.flow, msg.msg
    elif entry[2] == core._OUTPUT and type(entry[0].msg) is Tagged:
        flow = entry[0].msg.flow
    traced = traced_ends.get(id(entry[1]))
    args = channel_args(traced.channel, flow) if traced is not None else {}
    args.update(op=chosen.split(" ")[0], chosen=chosen,
                guards=[_describe(e, traced_ends) for e in entries])
    rec.complete(f"alt: {chosen}", "alt", start, args)
    return entry, traced if traced is not None else entry[1], msg


class Alternation(core.Alternation):
    """External choice over a list of guards, order is priority, as the
    backend's Alternation; each choice is recorded.  ``select()`` blocks until
    a guard is ready and returns ``(guard, msg)``; ``execute()`` also runs the
    guard's action.  Bad guards raise TypeError/ValueError here, as the
    backend's do."""

    __slots__ = ()  # the core's slots: _entries holds the guards as given

    def __init__(self, guards):
        if hasattr(guards, "__iter__") and not isinstance(guards, (str, bytes)):
            guards = list(guards)
        self._prepare(guards, _untagged)  # bad guards raise here, not at select
        self._entries = guards
        self._c_guards = None

    @staticmethod
    def _prepare(guards, tag=tag):
        """The core's entries for this choice (output messages tagged afresh)."""
        traced_ends = {}
        if isinstance(guards, list):
            guards = [_core_item(item, traced_ends, tag) for item in guards]
        return core._parse_alternation(guards), traced_ends  # not a list: the core says why

    def select(self):
        """As the backend's ``Alternation.select()``, recorded."""
        entries, traced_ends = self._prepare(self._entries)
        _, guard, msg = _choose(entries, traced_ends, False)
        return guard, msg

    def execute(self):
        """As the backend's ``Alternation.execute()``, recorded."""
        entries, traced_ends = self._prepare(self._entries)
        entry, guard, msg = _choose(entries, traced_ends, False)
        core._run_action(entry[3], entry[2], msg, sys._getframe(1))
        return guard, msg


def _select(guards, fair, frame):
    traced_ends = {}
    entries = [core._normalize(_core_guard(g, traced_ends, tag), None, f"guard {n}")
               for n, g in enumerate(guards)]
    if not entries:
        raise ValueError("a select needs at least one guard")
    entry, guard, msg = _choose(entries, traced_ends, fair)
    core._run_action(entry[3], entry[2], msg, frame)
    return guard, msg


def AltSelect(*guards):
    """Commit one ready guard (blocking until one is), run its action, return
    ``(guard_end, msg)``; recorded.  ``guards`` as the backend's AltSelect."""
    return _select(guards, False, sys._getframe(1))


def PriSelect(*guards):
    """Like AltSelect, always committing the first ready guard of ``guards`` in order."""
    return _select(guards, False, sys._getframe(1))


def FairSelect(*guards):
    """Like AltSelect, preferring the ready ``guards`` least recently chosen."""
    return _select(guards, True, sys._getframe(1))


class _Handler:
    """What the core's alternation hands a choice among traced ends to."""

    Alternation = Alternation

    @staticmethod
    def select(guards, fair, frame):
        return _select(guards, fair, frame)


_guard_kinds.register((ChannelEndRead, ChannelEndWrite, InputGuard, OutputGuard), _Handler)
