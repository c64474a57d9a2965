"""A live dump of every CSP process's state, without stopping the program:
``dump_state()`` and ``dump_state_on(signal)``, as ``faulthandler`` does for
stacks.

Each OS process describes its own CSP processes (threads or greenlets: the
core's Tasks), running or blocked on what, and where (the user's line, from
the Python stack).  The processes backend adds what the shared arena says of
the other OS processes (blocked on what); with ``dump_state_on`` the signal
is passed on to the child processes, which then describe themselves, sites
included.  Nothing here runs until asked.
"""
from __future__ import annotations

import gc
import os
import signal
import sys
from typing import TYPE_CHECKING, TextIO

import csp_ext
from csp_ext import Task

from ._deadlock import blocking_site, label

if TYPE_CHECKING:
    import types


def _frame_of(task, frames):
    """The innermost Python frame of the task's stack, or None."""
    greenlet = task.greenlet
    if greenlet is None:
        return frames.get(task.thread_ident)
    if greenlet.gr_frame is None and greenlet.__class__.getcurrent() is greenlet:
        return sys._getframe()  # the running greenlet: this call's own stack
    return greenlet.gr_frame


def _name_of(task, frame):
    """The function of the CSP process, or "main program"."""
    outermost = None
    while frame is not None:
        if frame.f_code.co_name == "_run_body" and "self" in frame.f_locals:
            fn = getattr(frame.f_locals["self"], "fn", None)
            return getattr(fn, "__name__", repr(fn))
        outermost = frame
        frame = frame.f_back
    if outermost is None:
        if task.is_main_thread:
            return "main program"  # a main greenlet may keep no frame while suspended
        unstarted = task.process  # a greenlet not started yet
        return getattr(getattr(unstarted, "fn", None), "__name__", "-")
    if task.is_main_thread or outermost.f_code.co_name == "<module>":
        return "main program"
    return outermost.f_code.co_name


def _waits_in_parallel(frame):
    """"Parallel" or "shutdown" if the process waits there (OS processes:
    the processes backend waits in Python)."""
    while frame is not None:
        if frame.f_code.co_name == "_run_body":
            return None  # below it: the stack of the parent this child was forked from
        if (frame.f_globals.get("__name__") == "pycsp._runtime"
                and frame.f_code.co_name in ("Parallel", "shutdown")):
            return frame.f_code.co_name
        frame = frame.f_back
    return None


def _what(waits):
    if not waits:
        return "waits for a timeout"
    parts = ", ".join(f"{'writing' if w else 'reading'} {label(ch)}" for ch, w in waits)
    return f"alternation: {parts}" if len(waits) > 1 else f"blocked {parts}"


def _state(task, frame, current):
    shared = csp_ext._interrupted_shared_wait() if current else None
    state = ("channel",) + shared if shared else csp_ext._blocked_on(task)
    if state is None:
        if frame is None:
            return "not started yet"
        where = _waits_in_parallel(frame)
        return f"waits in {where}" if where else "running"
    kind, waits, timed = state
    if kind == "parallel":
        return "waits for its Parallel"
    if kind == "io":
        return "in an @io call"
    return _what(waits) + (" (with a timeout)" if timed is True and waits else "")


def describe_state(others=True):
    """The text of a state dump of this OS process; ``others``: add what the
    shared arena says of the program's other OS processes."""
    frames = sys._current_frames()
    me = csp_ext.current_task()
    lines = []
    for task in sorted((o for o in gc.get_objects() if type(o) is Task and o.live),
                       key=lambda t: (not t.is_main_thread, str(t.process_id))):
        frame = _frame_of(task, frames)
        pid = task.process_id or "main"
        lines.append(f"  {_name_of(task, frame)} [{pid}] at {blocking_site(frame)}: "
                     f"{_state(task, frame, task is me)}")
    head = f"pycsp: state of OS process {os.getpid()} ({len(lines)} CSP processes)"
    records = csp_ext._shared_waits()
    others = [(p, parent, waits) for p, parent, _, waits in records
              if p != os.getpid()] if others else []
    if others:
        lines.append(f"  other OS processes of the program ({len(others)}):")
        for p, parent, waits in others:
            state = "running, or waiting with a timeout" if waits is None else _what(waits)
            lines.append(f"    OS process {p} (started by {parent or '-'}): {state}")
    return "\n".join([head] + lines) + "\n"


def dump_state(file: TextIO | None = None, *, others: bool = True) -> None:
    """Write every CSP process's state (running, or blocked on what, where),
    without stopping anything.

    Covers the CSP processes of this OS process.  On the processes backend
    the program's other OS processes are listed too (what they are blocked
    on; ``dump_state_on`` has them say where).

    Args:
        file: a text file to write to (default ``sys.stderr``).
        others: list the program's other OS processes (processes backend).
    """
    file = sys.stderr if file is None else file
    file.write(describe_state(others))
    file.flush()


# (signal, file) of dump_state_on in this OS process, or None: a child
# started by spawn (a new interpreter) is given it, and a forked one has it.
_dump_on = None


def dump_state_on(signum: int = signal.SIGUSR1, file: TextIO | None = None) -> None:
    """From now on, signal ``signum`` writes a state dump (``dump_state(file)``).

    The signal is passed on to the child OS processes of the program that
    answer it too: those started after this call (a child started before
    it, or still starting, is not sent the signal, which could kill it).
    Call it from the main thread.

    Args:
        signum: the signal number (default ``signal.SIGUSR1``).
        file: where each dump goes (default ``sys.stderr``).

    Raises:
        TypeError: ``signum`` is not an int.
        ValueError: called from a thread other than the main one (as
            ``signal.signal`` raises).
    """
    global _dump_on
    if not isinstance(signum, int) or isinstance(signum, bool):
        raise TypeError(f"dump_state_on takes a signal number, not {type(signum).__name__}")

    def on_signal(received: int, frame: types.FrameType | None) -> None:
        # A signal handler must not raise into the program, whatever the dump meets.
        try:
            records = csp_ext._shared_waits()
            me = os.getpid()
            # Each OS process answers for itself; the list of the others is
            # written once, by the program's first process.
            is_child = any(p == me and parent for p, parent, _, _ in records)
            dump_state(file, others=not is_child)
            children = {p for p, parent, answers, _ in records
                        if parent == me and p > 0 and p != me and answers == received}
            for child in sorted(children):
                try:
                    os.kill(child, received)
                except OSError:
                    pass  # ended meanwhile
        except Exception as exc:  # noqa: BLE001
            try:
                print(f"pycsp: the state dump failed: {exc!r}", file=sys.__stderr__, flush=True)
            except Exception:  # noqa: BLE001 - no stderr to tell
                pass

    signal.signal(signum, on_signal)
    _dump_on = (signum, file)
    csp_ext._shm_answer_dump_signal(signum)


def answer_in_a_forked_child():
    """In a child forked after dump_state_on: it has the handler; say so in
    its record, so that its parent passes the signal on to it."""
    if _dump_on is not None:
        csp_ext._shm_answer_dump_signal(_dump_on[0])


def for_a_new_interpreter():
    """What a child started in a new interpreter needs to answer the dump
    signal as its parent does (picklable), or None."""
    if _dump_on is None:
        return None
    signum, file = _dump_on
    if file is sys.stdout:
        return (signum, "stdout")
    return (signum, "stderr")  # another file object cannot follow it there


def in_a_new_interpreter(setting):
    """In such a child: answer the dump signal (``for_a_new_interpreter()``)."""
    if setting is not None:
        signum, stream = setting
        dump_state_on(signum, getattr(sys, stream))
