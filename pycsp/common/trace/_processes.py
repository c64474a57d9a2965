"""Traced processes: ``process``, ``Process``, ``Parallel``, ``Sequence``, ``Spawn``.

A traced process is the backend's Process whose function is a ``TracedBody``:
it records a slice from the start of the body to its end on the process's
own track.  Parallel and Sequence record a slice on the track of the process
that waits in them; Spawn a moment.
"""
from ..._process import Process as _CoreProcess, _function_reference, name_of
from ..._runtime import flatten
from . import _recorder as rec
from . import _wrapped


class TracedBody:
    """A process function that records its start and end (``args.outcome``:
    ``ok``, ``poisoned``, ``retired`` or what it raised)."""

    def __init__(self, fn):
        self.fn = fn
        self.__name__ = getattr(fn, "__name__", "process")
        self.__qualname__ = getattr(fn, "__qualname__", self.__name__)
        self.__doc__ = getattr(fn, "__doc__", None)

    def __call__(self, *args, **kwargs):
        name = self.__name__
        recorded = rec.begin(name, "process", {}, fn_name=name)
        outcome = None
        try:
            return self.fn(*args, **kwargs)
        except BaseException as exc:
            outcome = exc
            raise
        finally:
            if recorded:
                rec.end(name, "process", {"outcome": rec.describe_outcome(outcome)})

    def __reduce__(self):
        # The spawn start: the function pickles by the name of its @process
        # wrapper; the child records into this session.
        return (_rebuild_body, (_function_reference(self.fn), rec.state()))

    def __repr__(self):
        return f"<traced {self.fn!r}>"


def _rebuild_body(fn, session_state):
    rec.adopt(session_state)
    if session_state is not None:
        _wrapped.adopt(session_state[3])
    return TracedBody(fn)


def process(fn):
    """Decorator, as the backend's ``@process``: ``fn(args)`` returns a Process
    (of the backend) whose body is recorded.  Raises TypeError if ``fn`` is not
    callable."""
    if not callable(fn):
        raise TypeError(f"@process decorates a function, not {type(fn).__name__}")
    body = TracedBody(fn)

    def make_process(*args, **kwargs):
        return _wrapped.backend().Process(body, *args, **kwargs)

    make_process.__name__ = body.__name__
    make_process.__qualname__ = body.__qualname__
    make_process.__doc__ = body.__doc__
    make_process.__module__ = getattr(fn, "__module__", None)  # pickles by its user's name
    make_process.__wrapped__ = fn
    return make_process


class Process(_CoreProcess):
    """``Process(fn, *args, **kwargs)``, as the backend's, with a recorded body."""

    __slots__ = ()

    def __init__(self, fn, *args, **kwargs):
        if not callable(fn):
            raise TypeError(f"Process needs a callable, not {type(fn).__name__}")
        super().__init__(fn if isinstance(fn, TracedBody) else TracedBody(fn), *args, **kwargs)


def _described(items, what):
    try:
        procs = flatten(items, what)
    except TypeError:
        return []
    return [f"{name_of(p)} {p.id}" for p in procs]


def _waited(what, run, items):
    recorded = rec.begin(what, "parallel", {})
    try:
        result = run(*items)
    except BaseException as exc:
        if recorded:
            rec.end(what, "parallel", {"processes": _described(items, what),
                                       "outcome": rec.describe_outcome(exc)})
        raise
    if recorded:
        rec.end(what, "parallel", {"processes": _described(items, what), "outcome": "ok"})
    return result


def Parallel(*items):
    """The backend's Parallel, recorded: blocks until every process of
    ``items`` (processes or lists of them) has ended, returns their values in
    order, raises the first failure."""
    return _waited("Parallel", _wrapped.backend().Parallel, items)


def Sequence(*items):
    """The backend's Sequence, recorded: runs the processes of ``items`` one
    after the other."""
    return _waited("Sequence", _wrapped.backend().Sequence, items)


def Spawn(*items):
    """The backend's Spawn, recorded: starts the processes of ``items`` and
    returns at once."""
    _wrapped.backend().Spawn(*items)
    rec.instant("Spawn", "spawn", {"processes": _described(items, "Spawn")})
