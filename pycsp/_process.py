"""Processes and their composition: Process, @process, Parallel, Sequence, Spawn.

Shared by the in-interpreter backends.  A backend supplies a ``start`` function
that runs each process somewhere (an OS thread: ``Process._run_body``; a
greenlet: the same steps in C, greensched.c) with the process's
``csp_ext.Task`` bound, and then calls ``task.finish(join)``.  Waiting happens in C (``csp_ext.Join.wait``), where the
GIL is released, Ctrl-C is honoured and deadlock is detected.
"""
import atexit
import itertools
import os
import sys
import traceback
import types

import csp_ext
from csp_ext import ChannelPoisonException, ChannelRetireException, Join, Task

from ._ends import poison_all, retire_all, with_fresh_ends

_ids = itertools.count(1)
# Shared by every Process without keyword arguments (a million processes, one
# object), read-only so that writing into one Process's kwargs cannot reach others.
_NO_KWARGS = types.MappingProxyType({})
_error_clock = itertools.count()  # orders failures in time: Parallel raises the first

# After Ctrl-C, how long Parallel waits for its stopped processes to end
# before raising (a thread in a long computation cannot be stopped sooner).
KILL_GRACE_SECONDS = 1.0


class Process:
    """A CSP process that has not started: ``Process(fn, *args, **kwargs)``.

    Run it with ``Parallel``, ``Sequence`` or ``Spawn``.  ``P * n`` gives n
    processes of the same function, the copies with fresh channel ends joined
    to the same channels.
    """

    __slots__ = ("fn", "args", "kwargs", "return_value", "exception", "id", "task",
                 "_error_order", "__weakref__")

    def __init__(self, fn, *args, **kwargs):
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

    def __repr__(self):
        return f"<Process {getattr(self.fn, '__name__', self.fn)!r} id={self.id}>"

    def __reduce__(self):
        # For pycsp.processes' "spawn" start: the function of an @process is
        # pickled by the name of its decorated wrapper (the name it is known by).
        return (_rebuild_process,
                (_function_reference(self.fn), self.args, dict(self.kwargs), self.id))

    def __mul__(self, n):
        if not isinstance(n, int) or isinstance(n, bool):
            return NotImplemented
        if n < 1:
            raise ValueError(f"Process * n needs n >= 1, got {n}")
        return [self] + [Process(self.fn, *with_fresh_ends(list(self.args)),
                                 **with_fresh_ends(self.kwargs)) for _ in range(n - 1)]

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
            self._note_failure(exc)
            poison_all(self.args, self.kwargs)

    def _note_failure(self, exc):
        self.exception = exc
        self._error_order = next(_error_clock)


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


def _rebuild_process(fn, args, kwargs, id_):
    proc = Process(fn, *args, **kwargs)
    proc.id = id_
    return proc


def process(fn):
    """Decorator: calling ``fn(args)`` returns a ``Process`` instead of running it."""
    if not callable(fn):
        raise TypeError(f"@process decorates a function, not {type(fn).__name__}")

    def make_process(*args, **kwargs):
        return Process(fn, *args, **kwargs)

    make_process.__name__ = getattr(fn, "__name__", "process")
    make_process.__qualname__ = getattr(fn, "__qualname__", make_process.__name__)
    make_process.__doc__ = getattr(fn, "__doc__", None)
    make_process.__module__ = getattr(fn, "__module__", None)  # pickles by its user's name
    make_process.__wrapped__ = fn
    return make_process


def io(fn):
    """Mark ``fn`` as blocking in the OS.  In this backend it is a plain call."""
    if not callable(fn):
        raise TypeError(f"@io decorates a function, not {type(fn).__name__}")
    return fn


def name_of(proc):
    return getattr(proc.fn, "__name__", repr(proc.fn))


def flatten(items, what):
    procs = []
    for item in items:
        if isinstance(item, Process):
            procs.append(item)
        elif isinstance(item, (list, tuple)):
            procs.extend(flatten(item, what))
        else:
            raise TypeError(f"{what} takes processes or lists of processes, "
                            f"not {type(item).__name__} ({item!r})")
    return procs


def report_failure(proc, what="spawned process"):
    """On stderr, for a failure that no caller can receive (a Spawned process)."""
    print(f"pycsp: {what} {proc.id} ({name_of(proc)}) failed:", file=sys.stderr)
    traceback.print_exception(proc.exception, file=sys.stderr)


def first_error(procs):
    failed = [p for p in procs if p.exception is not None]
    if not failed:
        return None
    return min(failed, key=lambda p: p._error_order).exception


def _stop(procs, join):
    """Ctrl-C (or this process being stopped) while waiting for ``procs``: stop
    them at their next channel operation, and give them a moment to end."""
    for p in procs:
        p.task.kill()
        poison_all(p.args, p.kwargs)
    try:
        join.wait(timeout=KILL_GRACE_SECONDS)
    except BaseException:  # noqa: B036 - a second Ctrl-C stops the grace wait
        pass


class Runtime:
    """Parallel, Sequence, Spawn and shutdown over one way of starting processes.

    ``start(procs, join)`` starts every prepared process; on failure it must
    call ``task.abandon()`` and ``join.done()`` for each one it did not start
    and then raise.
    """

    def __init__(self, start):
        self._start = start
        self._spawned = Join(0)
        self._spawned_procs = []
        atexit.register(self.shutdown)

    def Parallel(self, *items):
        """Run the processes concurrently; return their values in order once all ended.

        An exception in a process (other than poison or retire) is raised here
        after every process has ended.
        """
        procs = flatten(items, "Parallel")
        if not procs:
            return []
        for p in procs:
            p._prepare()
        join = Join(len(procs))
        self._start(procs, join)
        try:
            join.wait()
        except BaseException:
            _stop(procs, join)
            raise
        error = first_error(procs)
        if error is not None:
            raise error
        return [p.return_value for p in procs]

    def Sequence(self, *items):
        """Run the processes one after the other; return their values in order."""
        procs = flatten(items, "Sequence")
        results = []
        for p in procs:
            results.extend(self.Parallel(p))
        return results

    def Spawn(self, *items):
        """Start the processes and return at once; ``shutdown()`` waits for them."""
        procs = flatten(items, "Spawn")
        for p in procs:
            p._prepare()
        self._spawned.add(len(procs))
        self._spawned_procs.extend(procs)
        self._start(procs, self._spawned)

    def shutdown(self):
        """Wait for every spawned process; report (on stderr) any that failed."""
        try:
            self._spawned.wait()
        except BaseException:
            _stop(self._spawned_procs, self._spawned)
            raise
        procs, self._spawned_procs = self._spawned_procs, []
        for p in procs:
            if p.exception is not None:
                report_failure(p)


def current_process_id():
    """A string unique to the running CSP process (the main program included)."""
    task = csp_ext.current_task()
    pid = task.process_id
    if pid is None:
        pid = task.process_id = f"{os.getpid()}.main{next(_ids)}"
    return pid
