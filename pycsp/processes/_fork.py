"""Running CSP processes as OS processes, and watching them.

The parent starts one child per process (by fork, or by "spawn": see
set_start_method), keeps a pidfd per child and polls them.  A child sends
its result (or its exception with the traceback text) through a buffered
shared channel and leaves with os._exit.  A child that ends any other way
(kill -9, os._exit, a crash in C) has its channel ends poisoned at once and is
reported as ProcessCrashed.  Children die with their parent (PR_SET_PDEATHSIG).

A child whose body Spawned processes that still run lingers after its result
is sent, waiting for them (they would die with it), as an OS thread's Spawns
outlive the process that made them.  It tells a parent waiting in Parallel so
through the group's notify pipe, and that Parallel returns without waiting for
it; shutdown() waits for such lingering children.
"""
from __future__ import annotations

import errno
import os
import pickle
import select
import signal
import struct
import sys
import threading
import time
import traceback

import csp_ext

from .. import _dump, _runtime
from .._ends import poison_all
from .._in_process import KILL_GRACE_SECONDS
from .._process import name_of
from .._runtime import Runtime
from ._forker import run_on_a_lasting_thread


class ProcessCrashed(Exception):
    """A child OS process ended without returning or raising (killed, os._exit, crash).

    ``Parallel`` raises it once every process has ended; the message states
    the exit code or the signal.  The crashed process's channel ends were
    poisoned, so that its peers stopped instead of hanging.
    """


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a child process (set as ``__cause__``)."""

    def __init__(self, text):
        super().__init__(text)
        self.text = text

    def __str__(self):
        return self.text


_INDEX = struct.Struct("=i")  # a lingering child's index on its group's notify pipe
# Python frames a forked child inherited from its ancestors (see _own_recursion_limit).
_inherited_frames = 0

START_METHODS = ("fork", "spawn")
_start_method = None


def set_start_method(method: str) -> str:
    """How pycsp.processes starts a child: ``"fork"`` (the default) or ``"spawn"``.

    fork is fast (about a millisecond) and the child has everything the parent had;
    it is unsafe when the parent runs other threads.  spawn starts a fresh Python
    (tens of milliseconds): the process function and its arguments must pickle,
    and a script needs the ``if __name__ == "__main__":`` guard, as with
    multiprocessing's spawn.  The environment variable PYCSP_START_METHOD sets the
    default.

    Args:
        method: ``"fork"`` or ``"spawn"``.

    Returns:
        str: the previous method.

    Raises:
        ValueError: ``method`` is neither.
    """
    global _start_method
    if method not in START_METHODS:
        raise ValueError(f"start method must be one of {', '.join(START_METHODS)}, "
                         f"not {method!r}")
    previous = get_start_method()
    _start_method = method
    return previous


def get_start_method() -> str:
    """The start method in use: ``"fork"`` or ``"spawn"``.

    Raises:
        ValueError: the environment variable PYCSP_START_METHOD names neither.
    """
    global _start_method
    if _start_method is None:
        method = os.environ.get("PYCSP_START_METHOD", "fork")
        if method not in START_METHODS:
            raise ValueError(f"PYCSP_START_METHOD must be one of {', '.join(START_METHODS)}, "
                             f"not {method!r}")
        _start_method = method
    return _start_method


def _describe_exit(exitcode):
    """`exitcode` as from os.waitstatus_to_exitcode: negative for a signal."""
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"was killed by {name}"
    return f"exited with code {exitcode} without returning"


def _error_payload(exc):
    """What the parent needs to raise ``exc`` again: the pickled exception if it
    survives a round trip, else its type name and message; and the traceback."""
    text = "".join(traceback.format_exception(exc))
    try:
        data = pickle.dumps(exc)
        pickle.loads(data)
    except Exception:  # e.g. an __init__ that pickle cannot call again
        data = None
    return ("error", data, f"{type(exc).__module__}.{type(exc).__qualname__}", str(exc), text)


def _rebuild_error(payload, proc):
    _, data, type_name, message, text = payload
    exc = None
    if data is not None:
        try:
            exc = pickle.loads(data)
        except Exception:
            exc = None
    if exc is None:
        exc = RuntimeError(f"{type_name}: {message} (raised in child process {proc.id}; "
                           f"the exception could not be rebuilt here)")
    exc.__cause__ = RemoteTraceback(f"\n\nTraceback in child process {proc.id}:\n{text}")
    return exc


def _own_recursion_limit():
    """Give this forked child its own recursion budget.

    A child forked inside its parent's process body runs on top of every frame
    the parent had (its own ancestors' too): a chain of processes that each
    Spawn the next would run out of recursion depth after a few hundred links,
    where threads and greenlets start each process on an empty stack.
    """
    global _inherited_frames
    frames = 0
    frame = sys._getframe(1)
    while frame is not None:
        frames += 1
        frame = frame.f_back
    sys.setrecursionlimit(max(sys.getrecursionlimit() - _inherited_frames, 1) + frames)
    _inherited_frames = frames


_child_end_hooks: list = []


def on_child_end(hook) -> None:
    """Run ``hook()`` in each CSP process started here after its body ended
    (returned or raised) and its result was sent: it leaves with os._exit,
    which runs no atexit handler (pycsp.net leaves its ends at their homes,
    then says goodbye).  As atexit does, the hook registered last runs first."""
    _child_end_hooks.append(hook)


def _run_child_end_hooks():
    for hook in reversed(_child_end_hooks):
        try:
            hook()
        except Exception:  # noqa: BLE001 - the process's outcome is sent already
            traceback.print_exc()


def _child(proc, index, results, parent_pid, notify_fd=-1):
    """Body of a forked child; never returns.

    ``notify_fd``: the write end of the group's notify pipe (a Parallel's
    group), or -1 (a Spawn's group: nobody waits for the result).
    """
    code = 0
    try:
        csp_ext.set_parent_death_signal(signal.SIGKILL)
        if os.getppid() != parent_pid:
            os._exit(70)
        csp_ext.current_task().process_id = proc.id  # for current_process_id()
        _dump.answer_in_a_forked_child()
        _own_recursion_limit()
        _runtime.forget_inherited()
        proc._run_body()
        if proc.exception is None:
            try:
                results((index, ("ok", proc.return_value)))
            except Exception as exc:  # the return value cannot be pickled
                results((index, _error_payload(TypeError(
                    f"the return value of process {name_of(proc)} cannot be pickled: {exc}"))))
        else:
            results((index, _error_payload(proc.exception)))
        if _runtime.has_unfinished():
            # Still counted as running: it waits for its Spawns as any
            # process waits for its children (deadlock accounting included).
            if notify_fd >= 0:
                csp_ext.shm_linger()  # the parent's wake-up on the notify pipe counts
                try:
                    os.write(notify_fd, _INDEX.pack(index))
                except OSError:  # the parent is gone (or was stopped): nobody waits to be told
                    pass
            _runtime.shutdown_every_runtime()
        _run_child_end_hooks()
        csp_ext.shm_end_body()
    except BaseException:  # noqa: B036 - nothing may escape a forked child
        traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        csp_ext.shm_exit(code)  # os._exit(code), freeing the message blocks it holds


class _Child:
    __slots__ = ("proc", "index", "pid", "record", "spawned", "exitcode", "lingered")

    def __init__(self, proc, index, pid, record, spawned=None):
        self.proc, self.index, self.pid, self.record = proc, index, pid, record
        self.spawned = spawned  # the multiprocessing.Process of a spawned child
        self.exitcode = None
        self.lingered = False  # sent its result, then waited for its own Spawns

    def wait(self):
        """Reap the ended child (through multiprocessing if it started it)."""
        if self.spawned is not None:
            self.spawned.join()
            self.exitcode = self.spawned.exitcode
        else:
            _, status = os.waitpid(self.pid, 0)
            self.exitcode = os.waitstatus_to_exitcode(status)
        return self.exitcode

    def end(self):
        """It has ended: reap it and its waiter records; true if it crashed."""
        crashed = self.wait() != 0
        csp_ext.shm_reap(self.pid, crashed)
        return crashed

    def stop(self):
        """Ctrl-C or an error in the parent: end it now (its ends are poisoned)."""
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def end_stopped(self, fd, deadline):
        """After stop(): reap it (it ends at once) and close its pidfd."""
        os.close(fd)
        self.wait()
        csp_ext.shm_reap(self.pid, True)


class OSProcessBackend:
    """For _runtime.Runtime: each process is a child OS process; a group is a
    ChildGroup."""

    makes_tasks = False  # a child's Task is its own

    def __init__(self, group_type=None):
        self._group_type = group_type or ChildGroup  # pycsp.parallel's mixes in threads
        self._unfinished = ()
        self._sigchld_previous = None  # set once the SIGCHLD reaper is installed
        self._reaping = False

    def start(self, procs, parallel):
        group = self._group_type(procs, parallel)
        group.start()
        return group

    @staticmethod
    def wait(group):
        group.wait()
        return not group.lingering

    @staticmethod
    def wait_ended(group):
        group.wait_ended()

    @staticmethod
    def kill(procs, group):
        group.kill()

    @staticmethod
    def collect(procs, group):
        return group.collect()

    def watch(self, unfinished):
        """Reap Spawned and lingering children as soon as they end, not only in
        shutdown(): one killed meanwhile has its ends poisoned at once and stops
        counting as running (a peer blocked on it would hang otherwise).  A
        SIGCHLD handler does it, installed once from the main thread; it runs
        the handler it replaced.  A blocked main thread notices the signal
        (sigwatch.c) and runs it."""
        self._unfinished = unfinished
        if self._sigchld_previous is None:
            self._install_reaper()
        # Its children that ended before it was listed (or the reaper installed).
        self._reap_unfinished(newest_only=True)

    def _install_reaper(self):
        if threading.current_thread() is not threading.main_thread():
            return  # signal.signal works only there; shutdown() still reaps them
        previous = signal.getsignal(signal.SIGCHLD)
        self._sigchld_previous = previous if previous is not None else signal.SIG_DFL

        def on_child_ended(signum, frame):
            self._reap_unfinished()
            if callable(previous):
                previous(signum, frame)

        signal.signal(signal.SIGCHLD, on_child_ended)

    def _reap_unfinished(self, newest_only=False):
        if self._reaping:
            return
        self._reaping = True
        try:
            for _, group, _ in self._unfinished[-1:] if newest_only else list(self._unfinished):
                if not group.busy:
                    group.reap_ended()
        except Exception as exc:  # a signal handler must not raise into the program
            print(f"pycsp: reaping ended child processes failed: {exc!r}", file=sys.stderr)
        finally:
            self._reaping = False


class ChildGroup:
    """Children started together: forked, watched, reaped, their results read.

    A Parallel's group (``parallel=True``) also has a notify pipe on which a
    child that lingers for its own Spawns writes its index.

    ``children`` maps a file descriptor that becomes readable when the child
    has ended (a pidfd) to the child: ``proc``, ``index``, ``record`` (its
    waiter record), ``lingered``, ``end()``, ``stop()`` and
    ``end_stopped(fd, deadline)`` as _Child has them.  pycsp.parallel adds
    children of another kind (threads) through that.
    """

    def __init__(self, procs, parallel):
        self.procs = procs
        self.parallel = parallel
        self.results = csp_ext.ShmChannel(buffer=max(1, len(procs)))
        self.results_in = self.results.reader()
        self.results_out = self.results.writer()
        self.children = {}   # pidfd -> _Child, still to wait for
        self.lingering = {}  # pidfd -> _Child whose result is in but which waits for its Spawns
        self.crashed = []
        self.crashes_collected = 0
        self.has_result = set()  # indices of the children whose result was collected
        self.sent = {}  # index -> result, read off the results channel, not yet collected
        self.undecodable = []  # results read off when a child was reaped that did not unpickle
        # A wait or a kill on this group runs: the SIGCHLD reaper, which may
        # run between any two of their steps, keeps off.
        self.busy = False
        self.notify_in = self.notify_out = -1
        if parallel and self.may_linger(procs):
            # Writes block (the waiting parent drains the pipe at every wake-up):
            # a notice that could not be written would leave the count wrong.
            self.notify_in, self.notify_out = os.pipe()
            os.set_blocking(self.notify_in, False)

    @staticmethod
    def may_linger(procs):
        """Whether a process of ``procs`` may linger for its Spawns (and say so
        on the notify pipe)."""
        return True

    def start(self):
        csp_ext.shm_init()
        self.start_os_children(enumerate(self.procs))

    def start_os_children(self, indexed_procs):
        """Start a child OS process for each (index, proc)."""
        parent = os.getpid()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        method = get_start_method()
        for index, proc in indexed_procs:
            record = csp_ext.shm_precount()  # counted as running from before the start
            try:
                pid, spawned = run_on_a_lasting_thread(self._start_child, index, proc, record,
                                                       method, parent)
            except BaseException:
                csp_ext.shm_forget(record)
                self.kill()
                raise
            csp_ext.shm_set_pid(record, pid)
            self.children[fd_with_room(os.pidfd_open, pid)] = _Child(proc, index, pid, record,
                                                                     spawned)

    def _start_child(self, index, proc, record, method, parent):
        """Fork or spawn the child; return its pid and (spawn) its
        multiprocessing.Process.  In a forked child, runs it: never returns."""
        if method == "spawn":
            from . import _spawn

            spawned = _spawn.start(proc, index, self.results_out, parent, record, method,
                                   self.notify_out)
            return spawned.pid, spawned
        pid = os.fork()
        if pid == 0:
            csp_ext.shm_adopt(record)
            if self.notify_in >= 0:
                os.close(self.notify_in)
            _child(proc, index, self.results_out, parent, self.notify_out)
        return pid, None

    def _reap(self, fd, children):
        child = children.pop(fd)
        os.close(fd)
        crashed = child.end()
        # (A child that lingered sent its result: the SIGCHLD reaper may run
        # while collect() holds it, read off but not yet noted.)
        if (not crashed and isinstance(child, _Child) and not child.lingered
                and not self._result_sent(child.index)):
            # It left with status 0 (os._exit(0)) without returning or raising:
            # a crash as any other; the processes it spawned died with it.
            csp_ext.shm_reap(child.pid, True)
            crashed = True
        if crashed:
            # Poison its ends now, so that its peers stop instead of hanging.
            poison_all(child.proc.args, child.proc.kwargs)
            self.crashed.append(child)

    def _note_lingering(self, poller):
        """Children that wrote their index on the notify pipe: their result is
        in and they only wait for their own Spawns; stop waiting for them."""
        try:
            data = os.read(self.notify_in, 4096)
        except BlockingIOError:
            return
        by_index = {child.index: fd for fd, child in self.children.items()}
        for (index,) in _INDEX.iter_unpack(data[:len(data) - len(data) % _INDEX.size]):
            fd = by_index.get(index)
            if fd is not None:
                poller.unregister(fd)
                child = self.lingering[fd] = self.children.pop(fd)
                child.lingered = True
                csp_ext.shm_linger_seen(child.record)

    def wait(self):
        """Until every child has ended, or (a Parallel's) lingers for its Spawns."""
        self._wait_for(self.children, self.notify_in)
        self._close_notify()

    def wait_ended(self):
        """Until every child has ended, those that linger for their Spawns too."""
        self._wait_for(self.children, -1)
        self._wait_for(self.lingering, -1)

    def _wait_for(self, children, notify_in):
        self.busy = True
        try:
            self._wait_loop(children, notify_in)
        finally:
            self.busy = False

    def reap_ended(self):
        """Reap, without waiting, the children (or lingering ones) that have ended."""
        for children in (self.children, self.lingering):
            if not children:
                continue
            poller = select.poll()
            for fd in children:
                poller.register(fd, select.POLLIN)
            for fd, _ in poller.poll(0):
                if fd in children:
                    self._reap(fd, children)

    def _wait_loop(self, children, notify_in):
        poller = select.poll()
        for fd in children:
            poller.register(fd, select.POLLIN)
        if notify_in >= 0:
            poller.register(notify_in, select.POLLIN)
        # While it waits, this process is not running (deadlock accounting):
        # a child that ends meanwhile hands its count to this process's
        # wake-up, so the count never touches zero between the two.
        while children:
            records = [child.record for child in children.values()]
            slept = None
            try:
                slept = csp_ext.shm_wait_children(records, True)
                ready = poller.poll()
            except BaseException:  # Ctrl-C: the runtime kills the group
                if slept is not None:
                    csp_ext.shm_wait_children(records, False, slept)
                raise
            csp_ext.shm_wait_children(records, False, slept)
            for fd, _ in ready:
                if fd == notify_in:
                    self._note_lingering(poller)
                elif fd in children:
                    poller.unregister(fd)
                    self._reap(fd, children)

    def _close_notify(self):
        for fd in (self.notify_in, self.notify_out):
            if fd >= 0:
                os.close(fd)
        self.notify_in = self.notify_out = -1

    def kill(self):
        """Ctrl-C or an error in the parent: end every child now (those that
        linger for their Spawns too)."""
        self.busy = True
        try:
            self._kill()
        finally:
            self.busy = False

    def _kill(self):
        self._close_notify()
        self.children.update(self.lingering)
        self.lingering.clear()
        for child in self.children.values():
            poison_all(child.proc.args, child.proc.kwargs)
            child.stop()
        deadline = time.monotonic() + KILL_GRACE_SECONDS
        for fd in list(self.children):
            self.children.pop(fd).end_stopped(fd, deadline)

    def _take_results(self):
        """Read the results sent so far off the channel, in the order they came
        (failures are numbered in time)."""
        while True:
            index, msg = csp_ext.select((self.results_in, csp_ext.SkipGuard()))
            if index == 1:
                return
            self.sent[msg[0]] = msg[1]

    def _result_sent(self, index):
        """Whether the child ``index`` (ended: what it sent is in) sent its result."""
        if index in self.has_result or index in self.sent:
            return True
        try:
            self._take_results()
        except Exception as exc:  # a return value that does not unpickle: collect() raises it
            self.undecodable.append(exc)
            return True  # a result came, whose child is not known
        return index in self.sent

    def collect(self):
        """Give each process its return value, or its exception (ProcessCrashed
        for a child that died without sending one, or while it lingered);
        return those that failed since the last call."""
        if self.undecodable:  # as the read below would have raised it, once every child ended
            raise self.undecodable.pop(0)
        self._take_results()
        outcome, self.sent = self.sent, {}
        self.has_result.update(outcome)
        failed = [self.procs[index] for index, got in outcome.items()
                  if self.take_outcome(self.procs[index], got)]
        crashed = self.crashed[self.crashes_collected:]
        self.crashes_collected = len(self.crashed)
        for child in crashed:
            if child.lingered:
                when = " while waiting for the processes it spawned"
            elif child.index not in self.has_result:
                when = ""
            else:
                continue  # ended badly after sending its result: its Parallel got that
            child.proc._note_failure(ProcessCrashed(
                f"process {name_of(child.proc)} (pid {child.pid}) "
                f"{_describe_exit(child.exitcode)}{when}; its channel ends were poisoned"))
            failed.append(child.proc)
        return failed

    @staticmethod
    def take_outcome(proc, got):
        """Give ``proc`` what its child sent; true if that is a failure."""
        if got[0] == "error":
            proc._note_failure(_rebuild_error(got, proc))
            return True
        proc.return_value = got[1]
        return False


def fd_with_room(make, *args):
    """``make(*args)``, a call that opens a file descriptor; on running out of
    descriptors, once more with the soft limit raised to the hard one."""
    try:
        return make(*args)
    except OSError as exc:
        if exc.errno != errno.EMFILE:
            raise
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            return make(*args)
        raise


runtime = Runtime(OSProcessBackend())
