"""Guards of other kinds in the alternation: wrappers of the core's ends.

pycsp.common.trace wraps channel ends; a program, or a component written
against the backend (plugNplay's), may give such ends to the core's
Alternation or selects.  Their kind registers here a handler that runs the
whole choice.  ``_alternation`` looks here only once a guard turned out to be
of no core kind (just before it would raise TypeError), so the core's
alternations never pay for it.
"""
from __future__ import annotations

from typing import Any

_handlers: dict[type, Any] = {}  # type of end or guard -> handler


class Found(Exception):
    """A guard belongs to a registered kind: ``handler`` runs the whole choice."""

    def __init__(self, handler):
        super().__init__(handler)
        self.handler = handler


def register(types, handler):
    """Let the alternation take guards of ``types``.

    An ``Alternation`` or select given one of them (alone, as ``(end, msg)`` or
    as an action's key) hands the whole choice to ``handler``:
    ``handler.Alternation`` is a subclass of ``Alternation`` with the same slots,
    which the new object becomes, and ``handler.select(guards, fair, frame)``
    runs an ``AltSelect``/``PriSelect`` (``fair`` false) or ``FairSelect``.
    Raises TypeError for a handler whose Alternation is not such a subclass.
    """
    from ._alternation import Alternation

    if not issubclass(handler.Alternation, Alternation):
        raise TypeError("register: handler.Alternation must subclass Alternation")
    for kind in types:
        _handlers[kind] = handler


def check(guard):
    """Raise Found if ``guard`` (or the end of ``(end, msg)``) is of a registered kind."""
    if _handlers:
        end = guard[0] if isinstance(guard, tuple) and guard else guard
        handler = _handlers.get(type(end))
        if handler is not None:
            raise Found(handler)
