"""Parallel, Sequence, Spawn and shutdown: written once for every backend.

What they mean (API.md) lives here: which arguments they take, that a Process
runs once, which failure Parallel raises, what shutdown() waits for and how it
reports failures, what Ctrl-C stops.  A backend supplies only how its processes
start, are waited for and are stopped: an object with

``makes_tasks``
    whether each process needs a ``csp_ext.Task`` of this interpreter (threads
    and greenlets; an OS process makes its own).
``start(procs, parallel)``
    start the prepared processes ``procs``, a Parallel's (``parallel``) or a
    Spawn's, and return what the other calls take to know them as a group; or
    raise, having stopped what it started or left it running.
``wait(group)``
    until every process has its outcome; true if every one has also ended.
    (An OS process whose body Spawned processes sends its outcome and runs on
    until they end; shutdown() waits for it.)
``wait_ended(group)``
    until every process has ended.
``kill(procs, group)``
    stop them now (Ctrl-C while waiting).
``collect(procs, group)``
    give each process its ``return_value`` or ``exception``; return the
    processes that failed since the last call.
``watch(unfinished)``
    called each time an entry ``(procs, group, parallel)`` joins
    ``unfinished``, the list that shutdown() waits for (the same list object
    for good); a backend may reap them meanwhile (processes does, on SIGCHLD).

The runtime puts no object of its own between these calls: for threads and
greenlets, ``group`` is a ``csp_ext.Join``, ``start`` the function that starts
the threads or greenlets and ``wait`` is ``Join.wait`` itself, so a Parallel
costs no more Python calls than when they had a runtime of their own.
"""
from __future__ import annotations

import atexit
import sys
import traceback
from typing import TYPE_CHECKING, Any

from csp_ext import DeadlockError

from ._deadlock import gather
from ._process import Process, name_of

if TYPE_CHECKING:
    from ._typing import ProcessItems


# Every Runtime of this interpreter (one per backend imported): a forked child
# forgets what its parent started in each, and waits for its own Spawns in each.
_every_runtime: list[Runtime] = []


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


def first_error(failed):
    return min(failed, key=lambda p: p._error_order).exception


def report_failure(proc, what):
    """On stderr: nobody can receive this failure (a Spawned process's)."""
    print(f"pycsp: {what} {proc.id} ({name_of(proc)}) failed:", file=sys.stderr)
    traceback.print_exception(proc.exception, file=sys.stderr)


class Runtime:
    """Parallel, Sequence, Spawn and shutdown over one backend (see above)."""

    def __init__(self, backend):
        self._backend = backend
        # Looked up once: a Parallel of one greenlet costs a few microseconds.
        self._makes_tasks = backend.makes_tasks
        self._start, self._wait, self._collect = backend.start, backend.wait, backend.collect
        # (procs, group, parallel) of Spawns, and of Parallels with a process
        # still running; oldest first.  One list object for good: watch() keeps it.
        self._unfinished = []
        _every_runtime.append(self)
        atexit.register(self.shutdown)

    def _keep_for_shutdown(self, procs, group, parallel):
        self._unfinished.append((procs, group, parallel))
        self._backend.watch(self._unfinished)

    def Parallel(self, *items: ProcessItems) -> list[Any]:
        """Run the processes concurrently; return their values in order once all ended.

        Args:
            items: processes, or lists (tuples) of processes, nested too.

        Returns:
            list: the processes' return values, in the order given (lists
            flattened); ``[]`` for no process.

        Raises:
            Exception: the first exception in time that a process raised
                (other than poison or retire), after every process has ended;
                its channel ends were poisoned so that its peers stopped.
            DeadlockError: every CSP process is blocked on a channel; the
                message says who waits for what.
            TypeError: an item is not a process or a list of them.
            RuntimeError: a process was already started (a Process runs once).
            KeyboardInterrupt: Ctrl-C while waiting; the processes were stopped.
        """
        procs = flatten(items, "Parallel")
        if not procs:
            return []
        if self._makes_tasks:  # p._prepare() is the fastest call (1% of a Parallel of 1000)
            for p in procs:  # a process given twice fails here, before any starts
                p._prepare()
        else:
            for p in procs:
                p._prepare(make_task=False)
        group = self._start(procs, True)
        try:
            all_ended = self._wait(group)
        except BaseException:  # Ctrl-C, or this process being stopped
            self._backend.kill(procs, group)
            raise
        if not all_ended:
            self._keep_for_shutdown(procs, group, True)
        failed = self._collect(procs, group)
        if failed:
            error = first_error(failed)
            if isinstance(error, DeadlockError):
                gather(error, [p.exception for p in failed], procs)
            raise error
        return [p.return_value for p in procs]

    def Sequence(self, *items: ProcessItems) -> list[Any]:
        """Run the processes one after the other; return their values in order.

        Args:
            items: processes, or lists (tuples) of processes, nested too.

        Returns:
            list: the processes' return values, in the order given.

        Raises:
            Exception: as ``Parallel``, at the first process that fails (the
                later ones do not run).
        """
        return [value for p in flatten(items, "Sequence") for value in self.Parallel(p)]

    def Spawn(self, *items: ProcessItems) -> None:
        """Start the processes and return at once; ``shutdown()`` waits for them.

        A spawned process that fails is reported on stderr by ``shutdown()``
        (nobody else could receive its exception).

        Args:
            items: processes, or lists (tuples) of processes, nested too.

        Raises:
            TypeError: an item is not a process or a list of them.
            RuntimeError: a process was already started.
        """
        procs = flatten(items, "Spawn")
        if not procs:
            return
        for p in procs:
            p._prepare(self._makes_tasks)
        self._keep_for_shutdown(procs, self._start(procs, False), False)

    def shutdown(self) -> None:
        """Wait for every spawned process; report (on stderr) any that failed.

        Each failure gets a line ``pycsp: spawned process ID (NAME) failed:``
        and its traceback.  Also runs at interpreter exit.

        Raises:
            KeyboardInterrupt: Ctrl-C while waiting; the processes waited for
                were stopped.
        """
        # One group at a time: one that an exception (Ctrl-C) interrupts stays
        # listed, and so do those after it.  Groups added meanwhile (a Spawn
        # inside a Spawned process) are waited for too.
        backend = self._backend
        while self._unfinished:
            procs, group, parallel = self._unfinished[0]
            try:
                backend.wait_ended(group)
            except BaseException:  # Ctrl-C stops what it waits for
                backend.kill(procs, group)
                raise
            del self._unfinished[0]
            what = "process" if parallel else "spawned process"
            for proc in backend.collect(procs, group):
                report_failure(proc, what)


def has_unfinished():
    """True if shutdown() of some runtime would wait for something."""
    return any(runtime._unfinished for runtime in _every_runtime)


def shutdown_every_runtime():
    """shutdown() of every runtime, until none has anything left to wait for
    (a process Spawned in one may Spawn in another)."""
    while has_unfinished():
        for runtime in _every_runtime:
            runtime.shutdown()


def forget_inherited():
    """In a forked child: the processes its parent started, in any runtime,
    are not its own."""
    for runtime in _every_runtime:
        runtime._unfinished.clear()
