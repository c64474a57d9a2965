"""@io for greenlets: the call runs in a worker thread; the caller's greenlet
waits (counted as running) while the others go on."""
from __future__ import annotations

import _thread
import functools
import queue
import threading
from typing import TYPE_CHECKING

from csp_ext import green_io_begin, green_io_done, green_io_wait

if TYPE_CHECKING:
    from collections.abc import Callable

    from .._typing import P, R


class _Call:
    __slots__ = ("fn", "args", "kwargs", "task", "ticket", "value", "error")

    def __init__(self, fn, args, kwargs, task, ticket):
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.task, self.ticket = task, ticket
        self.value = self.error = None

    def run(self):
        try:
            self.value = self.fn(*self.args, **self.kwargs)
        except BaseException as exc:  # noqa: B036 - re-raised in the caller
            self.error = exc
        green_io_done(self.task, self.ticket)


class _Workers:
    """Threads that run @io calls; one more is started whenever none is idle."""

    def __init__(self):
        self._calls = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0

    def submit(self, call):
        with self._lock:
            if self._idle:
                self._idle -= 1
            else:
                _thread.start_new_thread(self._work, ())
        self._calls.put(call)

    def _work(self):
        while True:
            self._calls.get().run()
            with self._lock:
                self._idle += 1


_workers = _Workers()


def io(fn: Callable[P, R]) -> Callable[P, R]:
    """Mark ``fn`` as blocking in the OS (sleep, file or socket I/O, a C call
    that releases the GIL).

    A call of the decorated function runs ``fn`` in a worker thread while the
    other greenlets keep running, and returns its value (or raises its
    exception) in the caller.  While it runs, its caller counts as running
    for deadlock detection.

    Args:
        fn: the function that blocks.

    Raises:
        TypeError: ``fn`` is not callable.
    """
    if not callable(fn):
        raise TypeError(f"@io decorates a function, not {type(fn).__name__}")

    @functools.wraps(fn)
    def call_in_worker(*args: P.args, **kwargs: P.kwargs) -> R:
        task, ticket = green_io_begin()
        call = _Call(fn, args, kwargs, task, ticket)
        _workers.submit(call)
        green_io_wait(task)
        if call.error is not None:
            raise call.error
        return call.value

    return call_in_worker
