"""Alternation over ends of channels homed elsewhere: refused, clearly, until it is built.

Choosing among guards whose channels live in other programs needs the
cross-host commit protocol (NET.md, models/README.md).  Until it exists, an
end of such a channel in ``InputGuard``/``OutputGuard``, an ``Alternation``
or a select raises NotImplementedError naming what is missing, never a
weaker choice.  Ends of channels homed here are the core's and choose as
always.
"""
from __future__ import annotations

import csp_ext

from .. import _guard_kinds
from .._alternation import Alternation
from ._remote import RemoteChannelEndRead, RemoteChannelEndWrite, refuse_alternation


class _RefusedAlternation(Alternation):
    __slots__ = ()

    def __init__(self, guards):
        for guard in guards:
            end = guard[0] if isinstance(guard, tuple) and guard else guard
            if isinstance(end, (RemoteChannelEndRead, RemoteChannelEndWrite)):
                raise refuse_alternation(end)
        raise refuse_alternation(guards)


class _Refuse:
    Alternation = _RefusedAlternation

    @staticmethod
    def select(guards, fair, frame):
        _RefusedAlternation.__init__(None, guards)


_guard_kinds.register((RemoteChannelEndRead, RemoteChannelEndWrite), _Refuse)


class _GuardType(type):
    def __instancecheck__(cls, obj):
        return isinstance(obj, cls._core)

    def __subclasscheck__(cls, other):
        return issubclass(other, cls._core)


class InputGuard(metaclass=_GuardType):
    """``InputGuard(ch, action=None)``: the core's input guard; NotImplementedError
    for an end of a channel homed in another program (not built yet)."""

    _core = csp_ext.InputGuard

    def __new__(cls, ch, action=None):
        if isinstance(ch, (RemoteChannelEndRead, RemoteChannelEndWrite)):
            raise refuse_alternation(ch)
        return csp_ext.InputGuard(ch, action)


class OutputGuard(metaclass=_GuardType):
    """``OutputGuard(ch, msg, action=None)``: the core's output guard;
    NotImplementedError for an end of a channel homed in another program."""

    _core = csp_ext.OutputGuard

    def __new__(cls, ch, msg, action=None):
        if isinstance(ch, (RemoteChannelEndRead, RemoteChannelEndWrite)):
            raise refuse_alternation(ch)
        return csp_ext.OutputGuard(ch, msg, action)
