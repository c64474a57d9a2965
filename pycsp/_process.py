"""A CSP process: Process, @process, @io (a plain call), current_process_id.

How processes are run (Parallel, Sequence, Spawn) is _runtime.py.
"""
from __future__ import annotations

import itertools
import os
import sys
import types
from typing import TYPE_CHECKING, Any

import csp_ext
from csp_ext import ChannelPoisonException, ChannelRetireException, DeadlockError, Task

from ._deadlock import name_entry
from ._ends import poison_all, retire_all, with_fresh_ends
from ._typing import P, R

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import SupportsInt, TypeVar

    _ProcessT = TypeVar("_ProcessT", bound="Process")

_ids = itertools.count(1)
# Shared by every Process without keyword arguments (a million processes, one
# object), read-only so that writing into one Process's kwargs cannot reach others.
_NO_KWARGS: types.MappingProxyType[str, Any] = types.MappingProxyType({})
_error_clock = itertools.count()  # orders failures in time: Parallel raises the first


class Process:
    """A CSP process that has not started: ``Process(fn, *args, **kwargs)``.

    Run it with ``Parallel``, ``Sequence`` or ``Spawn``; a Process runs once.
    ``P * n`` (or ``n * P``) gives n processes of the same function, the
    copies with fresh channel ends joined to the same channels.  When ``fn``
    ends with ChannelPoisonException, the channel ends and channels found in
    its arguments (inside lists, tuples, dicts and sets too) are poisoned;
    with ChannelRetireException, those ends are retired; either way the
    process ends normally.  Any other exception poisons them too, and
    ``Parallel`` raises it.

    Args:
        fn: the function the process runs.
        args: its positional arguments.
        kwargs: its keyword arguments.

    Raises:
        TypeError: ``fn`` is not callable.

    Attributes:
        fn: the function.
        args: the positional arguments (a tuple).
        kwargs: the keyword arguments (a read-only mapping).
        return_value: what ``fn`` returned, once the process has ended.
        exception: what ``fn`` raised (other than poison or retire), or None.
        id: the process's id (``current_process_id()`` inside it), once started.
        task: the C core's record of the process while it runs (threads and
            greenlets), for pycsp itself.
    """

    __slots__ = ("fn", "args", "kwargs", "return_value", "exception", "id", "task",
                 "_error_order", "__weakref__")
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    return_value: Any
    exception: BaseException | None
    id: str | None
    task: Task | None

    def __init__(self, fn: Callable[P, object], *args: P.args, **kwargs: P.kwargs) -> None:
        if not callable(fn):
            raise TypeError(f"Process needs a callable, not {type(fn).__name__}")
        self.fn = fn
        self.args = args
        self.kwargs = kwargs or _NO_KWARGS  # shared: a million processes, a million empty dicts
        self.return_value = None
        self.exception = None
        self.id = None
        self.task = None
        self._error_order = None

    def __repr__(self) -> str:
        return f"<Process {getattr(self.fn, '__name__', self.fn)!r} id={self.id}>"

    def __reduce__(self):
        # For pycsp.processes' "spawn" start and processes sent in messages: the
        # function of an @process is pickled by the name of its decorated
        # wrapper (the name it is known by); the class says how it runs
        # (pycsp.parallel's MultiProcess).
        return (_rebuild_process,
                (_function_reference(self.fn), self.args, dict(self.kwargs), self.id, type(self)))

    def __mul__(self: _ProcessT, n: SupportsInt) -> list[_ProcessT]:
        """``P * n``: P and n - 1 copies (of P's own class) with fresh channel ends.

        n is a whole number: an int, or what ``int(n)`` turns into an equal int
        (``3.0``, a numpy integer), as PyCSP 0.9.2 took ``(P / 2) * proc``.
        Raises TypeError for anything else (``2.5``, ``"3"``, ``True``) and
        ValueError for n < 1.
        """
        count = _whole_number(n)
        if count is None:
            return NotImplemented
        if count < 1:
            raise ValueError(f"Process * n needs n >= 1, got {n}")
        make = type(self)
        return [self] + [make(self.fn, *with_fresh_ends(list(self.args)),
                              **with_fresh_ends(self.kwargs)) for _ in range(count - 1)]

    __rmul__ = __mul__

    def _prepare(self, make_task=True):
        if self.id is not None:
            raise RuntimeError(f"{self!r} was already started; a Process runs once")
        self.id = f"{os.getpid()}.{next(_ids)}"
        if make_task:
            self.task = Task()
            self.task.process_id = self.id

    def _run_body(self):
        """Run the function; propagate poison/retire; keep any other exception."""
        try:
            self.return_value = self.fn(*self.args, **self.kwargs)
        except BaseException as exc:  # noqa: B036 - the caller of Parallel gets it
            self._failed(exc)

    def _failed(self, exc):
        """The function raised ``exc`` (the greenlets backend calls this from C)."""
        if isinstance(exc, ChannelPoisonException):
            poison_all(self.args, self.kwargs)
        elif isinstance(exc, ChannelRetireException):
            retire_all(self.args, self.kwargs)
        else:
            if isinstance(exc, DeadlockError):
                name_entry(exc, self)
            self._note_failure(exc)
            poison_all(self.args, self.kwargs)

    def _note_failure(self, exc):
        self.exception = exc
        self._error_order = next(_error_clock)


def _whole_number(n):
    """``int(n)`` when that equals n; None for what is no number at all (so
    that ``*`` says "unsupported operand"); TypeError for a number with a
    fraction, or a bool."""
    if isinstance(n, int) and not isinstance(n, bool):
        return n
    if isinstance(n, (bool, str, bytes, bytearray)):
        raise TypeError(f"Process * n needs a whole number of processes, "
                        f"not {type(n).__name__} {n!r}")
    try:
        count = int(n)
    except (TypeError, AttributeError):
        return None
    except (ValueError, OverflowError):  # nan, inf
        count = None
    if count is None or count != n:
        raise TypeError(f"Process * n needs a whole number of processes, got {n!r}")
    return count


def _unwrap(wrapper):
    return wrapper.__wrapped__


def _function_reference(fn):
    """``fn`` itself, or (when a module attribute of the same name is an @process
    wrapper of it) something that pickles by that wrapper's name."""
    module = sys.modules.get(getattr(fn, "__module__", None) or "")
    obj = module
    for part in (getattr(fn, "__qualname__", "") or "").split("."):
        obj = getattr(obj, part, None)
    if obj is not fn and obj is not None and getattr(obj, "__wrapped__", None) is fn:
        return _Unwrapped(obj)
    return fn


class _Unwrapped:
    __slots__ = ("wrapper",)

    def __init__(self, wrapper):
        self.wrapper = wrapper

    def __reduce__(self):
        return (_unwrap, (self.wrapper,))


def _rebuild_process(fn, args, kwargs, id_, kind=Process):
    proc = kind(fn, *args, **kwargs)
    proc.id = id_
    return proc


def process(fn: Callable[P, object]) -> Callable[P, Process]:
    """Decorator: calling ``fn(args)`` returns a ``Process`` instead of running it.

    Args:
        fn: the body of the process.

    Raises:
        TypeError: ``fn`` is not callable.
    """
    return factory(fn, Process, "@process")


def factory(fn, kind, decorator):
    """What ``decorator`` (``"@process"``) makes of ``fn``: a function that
    returns ``kind(fn, args)`` (a Process or a subclass) instead of running fn."""
    if not callable(fn):
        raise TypeError(f"{decorator} decorates a function, not {type(fn).__name__}")

    def make_process(*args, **kwargs):
        return kind(fn, *args, **kwargs)

    make_process.__name__ = getattr(fn, "__name__", "process")
    make_process.__qualname__ = getattr(fn, "__qualname__", make_process.__name__)
    make_process.__doc__ = getattr(fn, "__doc__", None)
    make_process.__module__ = getattr(fn, "__module__", None)  # pickles by its user's name
    make_process.__wrapped__ = fn
    return make_process


def io(fn: Callable[P, R]) -> Callable[P, R]:
    """Mark ``fn`` as blocking in the OS (sleep, file or socket I/O, a C call
    that releases the GIL).  In this backend it is a plain call: ``fn``
    itself is returned.

    Args:
        fn: the function that blocks.

    Raises:
        TypeError: ``fn`` is not callable.
    """
    if not callable(fn):
        raise TypeError(f"@io decorates a function, not {type(fn).__name__}")
    return fn


def name_of(proc):
    return getattr(proc.fn, "__name__", repr(proc.fn))


def current_process_id() -> str:
    """A string unique to the running CSP process, such as ``"20817.3"``.

    The main program and each thread that pycsp did not start count as one
    process each.
    """
    # The id lives on the thread's or greenlet's Task: a forked child sets its
    # own there when it starts.
    task = csp_ext.current_task()
    pid = task.process_id
    if pid is None:
        pid = task.process_id = f"{os.getpid()}.main{next(_ids)}"
    return pid
