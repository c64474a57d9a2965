"""pycsp.parallel's backend object: threads and OS processes in one group.

In one Parallel (Sequence, Spawn), a ``MultiProcess`` runs as a child OS
process exactly as in pycsp.processes, and any other ``Process`` as an OS
thread of this process.  Both use the shared-memory channels, which every
thread of every process can use.

The group is pycsp.processes' ``ChildGroup`` with threads added as children of
another kind, so one wait loop watches both and one deadlock accounting
covers both.  Every thread gets, before it starts, a waiter record counted
as running (as a forked child does) and adopts it; when its body has ended it
stops counting (``shm_end_body``: a credit for the parent if the parent is
waiting for it, as a child's exit is) and then signals its eventfd, which the
parent polls beside the children's pidfds.  So a thread blocked on a channel,
an OS process blocked on a channel and a parent waiting for both count as
blocked, and when nothing else runs they raise DeadlockError.

The OS children are forked before the threads start, so a Parallel in a
program that has no other threads forks while it has none; a thread's
Parallel has them forked by a thread that lasts (processes/_forker.py).
"""
import os
import select
import threading
import time

import csp_ext
from csp_ext import Task

from .._errors import InfoException
from .._runtime import Runtime
from ..processes._fork import ChildGroup, OSProcessBackend, fd_with_room
from ..threads._start import start_os_threads
from ._multiprocess import MultiProcess

# .process: the Process a thread started by a mixed group runs (else absent).
_this_thread = threading.local()

# What a thread sends on its group's results channel when its body has ended:
# its outcome is on its Process already; the message only orders failures in
# time among those the OS children send.
_THREAD_ENDED = ("thread",)


class _ThreadChild:
    """A process of a mixed group that runs as a thread of this OS process."""

    __slots__ = ("proc", "index", "record", "fd", "lock", "signalled", "abandoned")
    lingered = False  # a thread's Spawns are this process's: it never lingers

    def __init__(self, proc, index, record, fd):
        self.proc, self.index, self.record, self.fd = proc, index, record, fd
        # signalled / abandoned decide who closes fd (see signal_ended and end_stopped).
        self.lock = threading.Lock()
        self.signalled = False
        self.abandoned = False

    def signal_ended(self):
        """In the thread, last: tell the parent (it closes fd from then on),
        or close fd if the parent gave up waiting for this thread."""
        with self.lock:
            if self.abandoned:
                os.close(self.fd)
            else:
                os.eventfd_write(self.fd, 1)
                self.signalled = True

    def end(self):
        """It has ended: free its waiter record.  A thread does not crash."""
        csp_ext.shm_forget(self.record)
        return False

    def stop(self):
        """Ctrl-C or an error in the parent: the thread stops at its next
        channel operation on a poisoned channel (its ends are poisoned)."""
        self.proc.task.kill()

    def end_stopped(self, fd, deadline):
        """After stop(): wait for it until ``deadline`` (a thread cannot be
        killed); one that ends by then is reaped, one that does not keeps its
        record (it still counts as running) and closes fd itself."""
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.poll(max(0.0, deadline - time.monotonic()) * 1000)
        with self.lock:
            if not self.signalled:
                self.abandoned = True
                return
        os.close(fd)
        self.end()


def _thread_body(child, results):
    """Body of a thread started for ``child``; ``results``: its own writer end
    of the group's results channel."""
    proc = child.proc
    try:
        _this_thread.process = proc
        proc.task.enter()
        csp_ext.shm_adopt(child.record)  # counted as running since before the start
        proc._run_body()
        results((child.index, _THREAD_ENDED))
    finally:
        proc.task.finish(None)
        csp_ext.shm_end_body()
        child.signal_ended()


class MixedGroup(ChildGroup):
    """A group of OS processes (MultiProcess) and threads (any other Process)."""

    @staticmethod
    def may_linger(procs):
        # A thread's Spawns are this process's own: only an OS child lingers.
        return any(isinstance(p, MultiProcess) for p in procs)

    def start(self):
        """Fork the OS processes, then start the threads; on an error (or
        Ctrl-C) stop what started, undo the rest, and raise."""
        csp_ext.shm_init()
        indexed = list(enumerate(self.procs))
        self.start_os_children([(i, p) for i, p in indexed if isinstance(p, MultiProcess)])
        threads = []
        try:
            for index, proc in indexed:
                if not isinstance(proc, MultiProcess):
                    threads.append(self._thread_child(index, proc))
            # Each thread writes its own end: no end is shared between threads.
            arguments = [(child, self.results.writer()) for child in threads]
        except BaseException:
            for child in threads:
                self._unstart(child)
            self.kill()
            raise
        started, error = start_os_threads(_thread_body, arguments)
        for child in threads[started:]:
            self._unstart(child)
        if error is not None:
            self.kill()
            raise error

    def _thread_child(self, index, proc):
        proc.task = Task()
        proc.task.process_id = proc.id
        record = csp_ext.shm_precount()  # counted as running from before the start
        try:
            fd = fd_with_room(os.eventfd, 0, os.EFD_CLOEXEC)
        except BaseException:
            proc.task.abandon()
            csp_ext.shm_forget(record)
            raise
        child = self.children[fd] = _ThreadChild(proc, index, record, fd)
        return child

    def _unstart(self, child):
        """``child``'s thread was never started: undo what was made for it."""
        del self.children[child.fd]
        os.close(child.fd)
        child.proc.task.abandon()
        csp_ext.shm_forget(child.record)

    @staticmethod
    def take_outcome(proc, got):
        if got[0] == _THREAD_ENDED[0]:
            if proc.exception is None:
                return False
            proc._note_failure(proc.exception)  # numbered again, in the order of the results
            return True
        return ChildGroup.take_outcome(proc, got)


runtime = Runtime(OSProcessBackend(MixedGroup))


def shutdown():
    """Wait for every Spawned process (threads and OS processes) to end;
    report on stderr those that failed.  Also runs at exit.

    Raises InfoException in a ``@process`` (a thread), as PyCSP 0.9.2 did: it
    shares the program's Spawns, and would wait for itself.  A
    ``@multiprocess`` may call it: it waits for its own Spawns.
    """
    proc = getattr(_this_thread, "process", None)
    if proc is not None:
        raise InfoException(
            f"shutdown() called in process {proc.id} ({getattr(proc.fn, '__name__', proc.fn)}), "
            f"a thread of the main program: it would wait for every Spawned process, itself "
            f"included.  Call it from the main program, or run the process as @multiprocess")
    runtime.shutdown()
