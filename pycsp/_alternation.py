"""Alternation (external choice) on top of ``csp_ext.select``.

The commit itself — exactly one ready guard, performed atomically — is in C.
This module turns PyCSP's guard spellings (dicts, tuples, guard objects) into
the tuple that ``csp_ext.select`` takes, once, and runs actions.
"""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import csp_ext
from csp_ext import InputGuard, OutputGuard, SkipGuard, TimeoutGuard

from . import _guard_kinds as _other_kinds  # one name: this module's globals stay as they were
from ._ends import READ_ENDS as ChannelEndRead, WRITE_ENDS as ChannelEndWrite

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from ._typing import AlternationItem, Chosen, Guard, P

#: Another name for SkipGuard: ``Skip()`` is ``SkipGuard()``.
Skip = SkipGuard
#: Another name for TimeoutGuard: ``Timeout(seconds)`` is ``TimeoutGuard(seconds)``.
Timeout = TimeoutGuard

_INPUT, _OUTPUT, _OTHER = 0, 1, 2


class Choice:
    """A deferred call made by a ``@choice`` function: run by ``Alternation.execute``."""

    __slots__ = ("fn", "args", "kwargs")

    def __init__(self, fn: Callable[..., object], args: tuple[Any, ...],
                 kwargs: Mapping[str, Any]) -> None:
        self.fn, self.args, self.kwargs = fn, args, kwargs

    def __call__(self, **extra: Any) -> object:
        return self.fn(*self.args, **self.kwargs, **extra)

    def __repr__(self) -> str:
        return f"<Choice {getattr(self.fn, '__name__', self.fn)!r}>"


def choice(fn: Callable[P, object]) -> Callable[P, Choice]:
    """Decorator: ``fn(args)`` returns a ``Choice`` to use as a guard action.

    The choice's call runs only if its guard is chosen; for an input guard the
    function is then called with the keyword ``channel_input`` bound to the
    message received.

    Args:
        fn: the action's function.

    Raises:
        TypeError: ``fn`` is not callable.
    """
    if not callable(fn):
        raise TypeError(f"@choice decorates a function, not {type(fn).__name__}")

    def make_choice(*args, **kwargs):
        return Choice(fn, args, kwargs)

    make_choice.__name__ = getattr(fn, "__name__", "choice")
    make_choice.__doc__ = getattr(fn, "__doc__", None)
    make_choice.__wrapped__ = fn  # type: ignore[attr-defined]
    return make_choice


def _check_action(action, where):
    if action is None or isinstance(action, str) or callable(action):
        return action
    raise TypeError(f"{where}: an action must be callable, a string of code or None, "
                    f"not {type(action).__name__}")


def _normalize(guard, action, where):
    """Return (c_guard, user_guard, kind, action) for one guard spelling."""
    if isinstance(guard, ChannelEndRead):
        return guard, guard, _INPUT, _check_action(action, where)
    if isinstance(guard, InputGuard):
        return guard, guard.end, _INPUT, _check_action(action if action is not None else guard.action, where)
    if isinstance(guard, OutputGuard):
        return guard, guard.end, _OUTPUT, _check_action(action if action is not None else guard.action, where)
    if isinstance(guard, (SkipGuard, TimeoutGuard)):
        return guard, guard, _OTHER, _check_action(action if action is not None else guard.action, where)
    if isinstance(guard, tuple) and len(guard) == 2 and isinstance(guard[0], ChannelEndWrite):
        return OutputGuard(guard[0], guard[1]), guard[0], _OUTPUT, _check_action(action, where)
    if isinstance(guard, ChannelEndWrite):
        raise TypeError(f"{where}: a writer end needs a message: use (cout, msg) or "
                        f"OutputGuard(cout, msg)")
    _other_kinds.check(guard)
    raise TypeError(f"{where}: not a guard: {guard!r} (expected a reader end, (cout, msg), "
                    f"InputGuard, OutputGuard, SkipGuard or TimeoutGuard)")


def _parse_alternation(guards, normalize=None, writer_ends=ChannelEndWrite):
    """Entries for ``guards``; ``normalize`` and ``writer_ends`` let another
    kind of end (pycsp.net's) reuse the spellings."""
    normalize = normalize or _normalize
    if isinstance(guards, (str, bytes)) or not hasattr(guards, "__iter__"):
        raise TypeError(f"Alternation takes a list of guards, not {type(guards).__name__}")
    entries = []
    for n, item in enumerate(guards):
        where = f"Alternation guard {n}"
        if isinstance(item, dict):
            for g, action in item.items():
                entries.append(normalize(g, action, where))
        elif isinstance(item, tuple) and len(item) == 3:
            cout, msg, action = item
            if not isinstance(cout, writer_ends):
                _other_kinds.check(cout)
                raise TypeError(f"{where}: (cout, msg, action) needs a writer end first, "
                                f"not {type(cout).__name__}")
            entries.append(normalize((cout, msg), action, where))
        elif isinstance(item, tuple) and len(item) == 2 and not isinstance(item[0], writer_ends):
            g, action = item
            entries.append(normalize(g, action, where))
        else:
            entries.append(normalize(item, None, where))
    if not entries:
        raise ValueError("an Alternation needs at least one guard")
    return entries


def _run_action(action, kind, msg, frame):
    if action is None:
        return None
    if isinstance(action, str):
        if frame.f_locals is frame.f_globals:
            # Module level: the action runs in the module, its assignments stick.
            frame.f_globals["channel_input"] = msg
            exec(action, frame.f_globals)
        else:
            local_ns = dict(frame.f_locals)
            local_ns["channel_input"] = msg
            exec(action, frame.f_globals, local_ns)
        return None
    if kind == _INPUT:
        return action(channel_input=msg)
    return action()


class Alternation:
    """External choice over a list of guards; order is priority.

    ``Alternation([{cin: action}, (cout, msg, action), {Skip(): None}])``.
    ``select()`` commits exactly one ready guard (blocking until one is) and
    returns ``(guard, msg)``; ``execute()`` also runs that guard's action.

    An action is a ``@choice`` call, a plain callable (called with
    ``channel_input=msg`` for input guards, with no argument otherwise), a
    string of Python code (run in the caller's frame with ``channel_input``
    bound), or None.

    Args:
        guards: a list of dicts ``{guard: action}``, tuples ``(guard, action)``
            and ``(cout, msg, action)``, and guards alone.  A guard is a
            reader end, ``(cout, msg)``, or an InputGuard, OutputGuard,
            SkipGuard or TimeoutGuard.

    Raises:
        TypeError: ``guards`` is not a list, or holds something that is no guard
            or no action.
        ValueError: ``guards`` is empty.
    """

    __slots__ = ("_entries", "_c_guards")

    def __init__(self, guards: Iterable[AlternationItem]) -> None:
        try:
            self._entries = _parse_alternation(guards)
        except _other_kinds.Found as other:  # free when not raised
            self.__class__ = other.handler.Alternation
            self.__init__(guards)  # type: ignore[misc]
            return
        self._c_guards = tuple(e[0] for e in self._entries)

    def _choose(self):
        index, msg = csp_ext.select(self._c_guards)
        return self._entries[index], msg

    def select(self) -> Chosen:
        """Commit exactly one ready guard, blocking until one is; do not run its action.

        Returns:
            tuple: ``(guard, msg)``: the guard's channel end (or its Skip or
            Timeout guard), and the message read (None for other guards).

        Raises:
            ChannelPoisonException: a guard's channel is poisoned.
            ChannelRetireException: a guard's end, or the other side, retired.
            DeadlockError: every CSP process is blocked.
        """
        entry, msg = self._choose()
        return entry[1], msg

    def execute(self) -> Chosen:
        """Like ``select()``, then run the chosen guard's action.

        Returns:
            tuple: ``(guard, msg)``, as ``select()``.

        Raises:
            Exception: as ``select()``, or what the action raises.
        """
        entry, msg = self._choose()
        _run_action(entry[3], entry[2], msg, sys._getframe(1))
        return entry[1], msg


def _select(guards, fair, frame):
    try:
        entries = [_normalize(g, None, f"guard {n}") for n, g in enumerate(guards)]
    except _other_kinds.Found as other:  # free when not raised
        return other.handler.select(guards, fair, frame)
    if not entries:
        raise ValueError("a select needs at least one guard")
    index, msg = csp_ext.select(tuple(e[0] for e in entries), fair)
    entry = entries[index]
    _run_action(entry[3], entry[2], msg, frame)
    return entry[1], msg


def AltSelect(*guards: Guard) -> Chosen:
    """Commit one ready guard (blocking until one is), run its action, return
    ``(guard_end, msg)``.

    Any ready guard may be chosen (here the first ready one in order, as
    PriSelect does: no program should rely on it).

    Args:
        guards: reader ends, ``(cout, msg)`` tuples, and InputGuard,
            OutputGuard, SkipGuard or TimeoutGuard objects (these carry
            the actions).

    Returns:
        tuple: the chosen guard's channel end (or its Skip or Timeout guard)
        and the message read (None for other guards).

    Raises:
        TypeError: an argument is no guard.
        ValueError: no guard given.
        ChannelPoisonException: a guard's channel is poisoned.
        ChannelRetireException: a guard's end, or the other side, retired.
        DeadlockError: every CSP process is blocked.
    """
    return _select(guards, False, sys._getframe(1))


def PriSelect(*guards: Guard) -> Chosen:
    """Like AltSelect, always committing the first ready guard in order.

    Args:
        guards: as AltSelect's.
    """
    return _select(guards, False, sys._getframe(1))


def FairSelect(*guards: Guard) -> Chosen:
    """Like AltSelect, preferring the ready guards least recently chosen.

    Channel guards come first, least recently chosen first; Skip and Timeout
    guards after them.  No ready guard is starved.

    Args:
        guards: as AltSelect's.
    """
    return _select(guards, True, sys._getframe(1))
