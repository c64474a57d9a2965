"""Alternation over ends of channels homed in other programs.

An ``Alternation``, a select or a guard given such an end hands the whole
choice to ``_alt`` (the commit protocol across homes: ``_alt`` and
``_arms``).  Ends of channels homed here are the core's and choose as
always, in the core, when no guard is homed elsewhere; in a choice with
guards homed elsewhere they take part through this program's own node (the
same join, a "twin" end: one round trip on loopback per guard).
"""
from __future__ import annotations

import csp_ext

from .. import _alternation as core
from .. import _guard_kinds
from . import _alt, _mobile
from ._alt import RemoteInputGuard, RemoteOutputGuard
from ._remote import RemoteChannelEndRead, RemoteChannelEndWrite

_WRITER_ENDS = (*core.ChannelEndWrite, RemoteChannelEndWrite)
_REMOTE_GUARDS = (RemoteInputGuard, RemoteOutputGuard)
_SHARED_ENDS = (csp_ext.ShmChannelEndRead, csp_ext.ShmChannelEndWrite)
_MIXED = ("pycsp.net: an alternation over channels homed in other programs can take ends of "
          "pycsp.net's (pycsp.processes') channels besides, not of an in-process channel")


def _normalize(guard, action, where):
    """(guard for ``_alt``, user's guard, kind, action) for one guard spelling."""
    if isinstance(guard, RemoteChannelEndRead):
        return RemoteInputGuard(guard), guard, core._INPUT, core._check_action(action, where)
    if isinstance(guard, _REMOTE_GUARDS):
        kind = core._INPUT if isinstance(guard, RemoteInputGuard) else core._OUTPUT
        return guard, guard.end, kind, core._check_action(
            action if action is not None else guard.action, where)
    if isinstance(guard, tuple) and len(guard) == 2 and isinstance(guard[0], RemoteChannelEndWrite):
        return (RemoteOutputGuard(guard[0], guard[1]), guard[0], core._OUTPUT,
                core._check_action(action, where))
    if isinstance(guard, RemoteChannelEndWrite):
        raise TypeError(f"{where}: a writer end needs a message: use (cout, msg) or "
                        f"OutputGuard(cout, msg)")
    try:
        entry = core._normalize(guard, action, where)
    except _guard_kinds.Found:  # a remote end in a spelling that is no guard
        raise TypeError(f"{where}: not a guard: {guard!r} (expected a reader end, (cout, msg), "
                        f"InputGuard, OutputGuard, SkipGuard or TimeoutGuard)") from None
    c_guard, end, kind, action = entry
    if isinstance(c_guard, (csp_ext.SkipGuard, csp_ext.TimeoutGuard)):
        return entry
    if not isinstance(end, _SHARED_ENDS):
        raise NotImplementedError(f"{where}: {guard!r}: {_MIXED}")
    if end.retired:
        raise csp_ext.ChannelRetireException(f"{end!r} is retired")
    # An end of this program's memory, with guards homed elsewhere: the same
    # join, reached through this program's own node as any remote party.
    twin = _mobile._here.twin(end)
    if kind == core._INPUT:
        return RemoteInputGuard(twin), end, kind, action
    return RemoteOutputGuard(twin, c_guard.msg), end, kind, action


def _choose(entries, fair=False):
    position, msg = _alt.choose([entry[0] for entry in entries], fair)
    return entries[position], msg


class NetAlternation(core.Alternation):
    """An Alternation with a guard homed in another program (``_alt``)."""

    __slots__ = ()

    def __init__(self, guards):
        self._entries = core._parse_alternation(guards, _normalize, _WRITER_ENDS)
        self._c_guards = ()

    def _choose(self):
        return _choose(self._entries)


def _select(guards, fair, frame):
    entries = [_normalize(guard, None, f"guard {n}") for n, guard in enumerate(guards)]
    if not entries:
        raise ValueError("a select needs at least one guard")
    entry, msg = _choose(entries, fair)
    core._run_action(entry[3], entry[2], msg, frame)
    return entry[1], msg


class _Handler:
    """What the core's alternation hands a choice with a remote guard to."""

    Alternation = NetAlternation

    @staticmethod
    def select(guards, fair, frame):
        return _select(guards, fair, frame)


_guard_kinds.register((RemoteChannelEndRead, RemoteChannelEndWrite, *_REMOTE_GUARDS), _Handler)


class _GuardType(type):
    def __instancecheck__(cls, obj):
        return isinstance(obj, cls._kinds)

    def __subclasscheck__(cls, other):
        return issubclass(other, cls._kinds)


class InputGuard(metaclass=_GuardType):
    """``InputGuard(ch, action=None)``: an input guard on a reader end, the
    core's or one of a channel homed in another program."""

    _kinds = (csp_ext.InputGuard, RemoteInputGuard)

    def __new__(cls, ch, action=None):
        if isinstance(ch, RemoteChannelEndRead):
            return RemoteInputGuard(ch, action)
        if isinstance(ch, RemoteChannelEndWrite):
            raise TypeError("InputGuard needs a reader end, not a writer end")
        return csp_ext.InputGuard(ch, action)


class OutputGuard(metaclass=_GuardType):
    """``OutputGuard(ch, msg, action=None)``: an output guard on a writer end,
    the core's or one of a channel homed in another program."""

    _kinds = (csp_ext.OutputGuard, RemoteOutputGuard)

    def __new__(cls, ch, msg, action=None):
        if isinstance(ch, RemoteChannelEndWrite):
            return RemoteOutputGuard(ch, msg, action)
        if isinstance(ch, RemoteChannelEndRead):
            raise TypeError("OutputGuard needs a writer end, not a reader end")
        return csp_ext.OutputGuard(ch, msg, action)

