"""Recording events while the program runs: one part file per OS process.

Every OS process that records (the program, and each child of pycsp.processes,
forked or spawned) appends its events to ``TRACE.parts/PID.jsonl``: one JSON
object a line, each line written by one ``write()`` on an ``O_APPEND``
descriptor, nothing buffered.  A child killed at any moment leaves every event
it recorded before on disk.  ``TraceQuit`` (``_chrome.merge``) turns the parts
into the one Chrome trace file.

An event here is already a Chrome Trace Event (``ph``, ``name``, ``cat``,
``ts`` and ``dur`` in microseconds, ``pid``, ``tid``, ``args``), except that
``tid`` is a track number local to its OS process (one track per CSP process:
a thread, a greenlet or an OS process) that the merge makes unique, and that
the two ends of one message carry the same ``args.flow`` from which the merge
draws the arrow.

Timestamps are ``time.monotonic_ns()`` (one clock for every process of the
machine) less the session's start.
"""
from __future__ import annotations

import itertools
import json
import os
import sys
import threading
import time

from csp_ext import ChannelPoisonException, ChannelRetireException

from ..._process import Process, current_process_id

# The active session of this OS process, or None: read by every traced
# operation to know whether to record.
session = None


class Session:
    """Where the parts go and when the trace started; pickled into spawned
    children (``state()``) so that they record into the same parts."""

    __slots__ = ("parts", "t0_ns", "owner_pid", "backend_name")

    def __init__(self, parts, t0_ns, owner_pid, backend_name):
        self.parts = parts
        self.t0_ns = t0_ns
        self.owner_pid = owner_pid
        self.backend_name = backend_name

    def state(self):
        return (self.parts, self.t0_ns, self.owner_pid, self.backend_name)


def start(parts, backend_name):
    """Begin a session in this (the owner) OS process; ``parts`` exists and is empty."""
    global session
    _forget_part()
    session = Session(parts, time.monotonic_ns(), os.getpid(), backend_name)
    return session


def stop():
    """End recording in this OS process; return the session that was active."""
    global session
    ended, session = session, None
    _forget_part()
    return ended


def state():
    """The active session as a picklable tuple, or None."""
    return session.state() if session is not None else None


def adopt(session_state):
    """In a spawned child: record into its parent's session (if none is active here)."""
    global session
    if session is None and session_state is not None:
        session = Session(*session_state)


# ---------------------------------------------------------------------------
# This OS process's part file and tracks.  Reset in a forked child: it has its
# own pid, file and tracks.

_part_fd = -1  # -1: not opened yet; -2: cannot record here (the parts are gone)
_pid = 0
_tracks: dict[str, int] = {}  # CSP process id -> track number in this OS process
_track_numbers = itertools.count(1)
_flow_numbers = itertools.count(1)
_open_lock = threading.Lock()

_dumps = json.JSONEncoder(separators=(",", ":"), default=str).encode


def _forget_part():
    global _part_fd, _pid, _tracks, _track_numbers, _open_lock
    if _part_fd >= 0:
        try:
            os.close(_part_fd)
        except OSError:
            pass
    _part_fd = -1
    _pid = 0
    _tracks = {}
    _track_numbers = itertools.count(1)
    _open_lock = threading.Lock()  # a forked child may inherit it held


os.register_at_fork(after_in_child=_forget_part)


def _open_part():
    """Open this OS process's part file; return its fd, or -2 if that fails
    (TraceQuit already took the parts away: later events are not recorded)."""
    global _part_fd, _pid
    with _open_lock:
        if _part_fd != -1:
            return _part_fd
        pid = os.getpid()
        try:
            fd = os.open(os.path.join(session.parts, f"{pid}.jsonl"),
                         os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError:
            fd = -2
        _pid = pid
        _part_fd = fd
        return fd


def _write(event):
    fd = _part_fd
    if fd < 0:
        fd = _open_part() if fd == -1 else fd
        if fd < 0:
            return
    os.write(fd, (_dumps(event) + "\n").encode())


_RUN_BODY = Process._run_body.__code__


def _running_body_name():
    """The name of the function a process of the backend's own (not a traced
    one: a plugNplay component, say) runs: the frame just inside
    ``Process._run_body`` (threads, processes), or the outermost frame (a
    greenlet, whose body the scheduler calls from C)."""
    frame, inner = sys._getframe(2), None
    while frame is not None and frame.f_code is not _RUN_BODY:
        frame, inner = frame.f_back, frame
    return inner.f_code.co_name if inner is not None else None


def _track(fn_name=None):
    """This CSP process's track number (new tracks are named by a metadata event)."""
    process_id = current_process_id()
    track = _tracks.get(process_id)
    if track is None:
        if _part_fd == -1:
            _open_part()
        track = _tracks[process_id] = next(_track_numbers)
        if ".main" in process_id:  # the program, or a thread pycsp did not start
            label = "main" if process_id.endswith(".main1") else f"thread {process_id}"
        else:
            label = f"{fn_name or _running_body_name() or 'process'} {process_id}"
        _write({"ph": "M", "name": "thread_name", "pid": _pid, "tid": track,
                "args": {"name": label, "process": process_id}})
    return track


def clock():
    """Now, in nanoseconds on the recording clock."""
    return time.monotonic_ns()


def _us(ns, s):
    return round((ns - s.t0_ns) / 1000, 3)


def new_flow():
    """A number naming one message, unique across the OS processes of a trace."""
    if _part_fd == -1:
        _open_part()
    return (_pid << 32) | next(_flow_numbers)


def flow_name(flow):
    return f"0x{flow:x}"


# ---------------------------------------------------------------------------
# Events.  Each returns at once when no session is active.

def begin(name, cat, args, fn_name=None):
    """Open a slice on this CSP process's track; true if it was recorded."""
    s = session
    if s is None:
        return False
    track = _track(fn_name)
    _write({"ph": "B", "name": name, "cat": cat, "ts": _us(clock(), s), "pid": _pid,
            "tid": track, "args": args})
    return True


def end(name, cat, args):
    """Close the slice that ``begin`` opened on this track."""
    s = session
    if s is None:
        return
    track = _track()
    _write({"ph": "E", "name": name, "cat": cat, "ts": _us(clock(), s), "pid": _pid,
            "tid": track, "args": args})


def complete(name, cat, start_ns, args):
    """A slice from ``start_ns`` (``clock()``) until now."""
    s = session
    if s is None:
        return
    now = clock()
    track = _track()
    ts = _us(start_ns, s)
    _write({"ph": "X", "name": name, "cat": cat, "ts": ts,
            "dur": max(0.0, round(_us(now, s) - ts, 3)), "pid": _pid, "tid": track,
            "args": args})


def instant(name, cat, args):
    """A moment on this CSP process's track."""
    s = session
    if s is None:
        return
    track = _track()
    _write({"ph": "i", "s": "t", "name": name, "cat": cat, "ts": _us(clock(), s), "pid": _pid,
            "tid": track, "args": args})


def describe_outcome(exc):
    """How an operation or process ended, for an event's ``args``."""
    if exc is None:
        return "ok"
    if isinstance(exc, ChannelPoisonException):
        return "poisoned"
    if isinstance(exc, ChannelRetireException):
        return "retired"
    return f"raised {type(exc).__name__}: {exc}"
