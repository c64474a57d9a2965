"""Deadlock reports: which CSP process is blocked on what, where, and why
nobody can wake it.

When every CSP process is blocked, the core wakes each blocked operation
with a deadlock (csp_ext); the operation then calls ``make_error`` in the
blocked process itself, which knows who it is and where it blocked (its own
Python stack), while the core says what it was blocked on.  Each process
fails with its DeadlockError, carrying its ``Blocked`` entry; each
``Parallel`` the failure passes through adds its caller (which waits for
the processes it started, and may hold ends they need) and gathers the
entries of the processes it waited for (``gather``), across OS processes too
(the entries travel with the pickled exception).  The message is written
from all of them (``describe``): the wait-for cycle first, then every
blocked process.

Nothing here runs unless there is a deadlock, and nothing here may turn a
DeadlockError into another exception: a report that fails leaves the
exception as it was.
"""
from __future__ import annotations

import dataclasses
import itertools
import os
import sys
import threading
import weakref
from typing import Any

import csp_ext
from csp_ext import DeadlockError

HEADLINE = "deadlock: every CSP process is blocked on a channel"


@dataclasses.dataclass(frozen=True)
class Blocked:
    """One blocked CSP process of a deadlock report.

    ``waits`` is ``"read"``, ``"write"``, ``"alternation"`` (on ``channels``,
    as ``(label, "read" | "write")``) or ``"parallel"`` (for the processes
    whose ids are ``waits_for``); ``site`` the ``file:line`` of the blocking
    call; ``holds`` the channel ends it has (its arguments, its waits, its
    local variables) as ``(label, "read" | "write")``.
    """

    id: str
    name: str
    waits: str
    channels: tuple
    site: str
    holds: tuple = ()
    waits_for: tuple = ()

    def __str__(self):
        if self.waits == "parallel":
            what = "waits in Parallel"
        else:
            what = ", ".join(f"{verb(d)} {label}" for label, d in self.channels)
            if self.waits == "alternation":
                what = f"alternation: {what}"
        return f"{self.name or 'process'} [{self.id}] at {self.site}: {what}"


def verb(direction):
    return "reads" if direction == "read" else "writes"


def other(direction):
    return "write" if direction == "read" else "read"


# ---------------------------------------------------------------- channel labels

_unnamed: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
_next_unnamed = itertools.count(1)


def label(channel):
    """How a report names a channel: the repr of its name, or a short id that
    stays the same for the channel's life (in every OS process, for shared
    ones, whose label the arena keeps)."""
    if isinstance(channel, tuple):  # (offset, label) of a shared channel, from the core
        offset, text = channel
        return text if text is not None else f"#{offset:x}"
    offset = getattr(channel, "_offset", None)
    if offset is not None:
        text = channel._label
        return text if text is not None else f"#{offset:x}"
    if channel.name is not None:
        return repr(channel.name)
    number = _unnamed.get(channel)
    if number is None:
        number = _unnamed[channel] = next(_next_unnamed)
    return f"#{number}"


def ends_held(ends, channels_too=True):
    """``(label, direction)`` of each of ``ends``; a channel stands for both
    of its directions (unless ``channels_too`` is false: then it is left out)."""
    from ._ends import READ_ENDS, WRITE_ENDS
    held = set()
    for end in ends:
        if isinstance(end, READ_ENDS):
            held.add((label(end.channel), "read"))
        elif isinstance(end, WRITE_ENDS):
            held.add((label(end.channel), "write"))
        elif channels_too:
            held.update({(label(end), "read"), (label(end), "write")})
    return held


def ends_of_arguments(proc):
    from ._ends import find_ends
    return ends_held(find_ends(proc.args, proc.kwargs))


def ends_on_stack(frame, budget=10_000, channels_too=True):
    """``ends_held`` of the local variables of the process's own frames
    (ends it received in messages or made itself), looking at no more than
    ``budget`` objects: a main program's stack may hold large structures."""
    from ._ends import _CHANNEL_TYPES, READ_ENDS, WRITE_ENDS
    found, seen, stack = [], set(), []
    while frame is not None and frame.f_code.co_name != "_run_body":
        stack.extend(itertools.islice(frame.f_locals.values(), budget))
        frame = frame.f_back
    while stack and budget > 0:
        obj = stack.pop()
        budget -= 1
        if isinstance(obj, READ_ENDS + WRITE_ENDS + _CHANNEL_TYPES):
            found.append(obj)
        elif isinstance(obj, (list, tuple, set, frozenset, dict)) and id(obj) not in seen:
            seen.add(id(obj))
            items = obj.values() if isinstance(obj, dict) else obj
            stack.extend(itertools.islice(items, max(budget - len(stack), 0)))
    return ends_held(found, channels_too)


# ---------------------------------------------------------------- made in the blocked process

def blocking_site(frame):
    """``file:line`` of the first frame outside pycsp's own modules (the
    user's blocking call).  A module that runs programs of its own language
    (pycsp.csp) names the site in that program: its ``__pycsp_site__(frame)``
    gives it, or None."""
    while frame is not None:
        site_in_program = frame.f_globals.get("__pycsp_site__")
        if site_in_program is not None:
            site = site_in_program(frame)
            if site:
                return site
        module = frame.f_globals.get("__name__", "")
        internal = module == "csp_ext" or (
            module.startswith("pycsp.") and any(part.startswith("_") for part in module.split(".")))
        if not internal:
            return f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}"
        frame = frame.f_back
    return "?"


def name_of_caller(pid):
    """The name of a caller that is not a pycsp process (its id is made by
    current_process_id for the main program and for other threads), or ""
    for a process (Process._failed names it)."""
    if ".main" not in pid:
        return ""
    thread = threading.current_thread()
    return "main program" if thread is threading.main_thread() else f"thread {thread.name!r}"


# The entries of the last deadlock seen in this OS process, by kind of
# channel (in-process, shared): every process of one deadlock adds its own,
# so a Parallel finds those of processes whose failures do not reach it
# (Spawned ones, the main program).  Only the last: a report is gathered as
# soon as its processes end, and an old one must not keep memory.
_last: dict[Any, Any] = {}


def make_error(blocked_on, is_select):
    """The DeadlockError of the operation that the core just woke with a
    deadlock, made in the blocked process (the core calls this)."""
    from ._process import current_process_id
    scope, generation, woken, waits = blocked_on
    channels = tuple((label(ch), "write" if is_write else "read") for ch, is_write in waits)
    pid = current_process_id()
    caller = sys._getframe(1)
    entry = Blocked(
        id=pid,
        name=name_of_caller(pid),
        waits="alternation" if is_select else (channels[0][1] if channels else "read"),
        channels=channels,
        site=blocking_site(caller),
        holds=tuple(sorted(set(channels) | ends_on_stack(caller))),
    )
    key = (scope, os.getpid() if scope == "local" else 0, generation)
    last_key, entries = _last.get(scope, (None, None))
    if last_key != key:
        entries = {}
        _last[scope] = (key, entries)
    entries[pid] = entry
    exc = DeadlockError(HEADLINE)
    exc.deadlock = (key, woken)
    set_entries(exc, [entry])
    return exc


def set_entries(exc, entries):
    """Give ``exc`` its report: ``.blocked`` (the processes blocked on
    channels), ``.waiting_in_parallel`` (callers of Parallel waiting for
    them: they may hold what a blocked process needs) and the message."""
    exc.entries = entries
    exc.blocked = [e for e in entries if e.waits != "parallel"]
    exc.waiting_in_parallel = [e for e in entries if e.waits == "parallel"]
    exc.args = (describe(entries, exc.deadlock[1]),)


def name_entry(exc, proc):
    """``proc``'s body ended with ``exc``: name its own entry (the core does
    not know the function) and add the ends it was given."""
    try:
        entries = list(getattr(exc, "entries", ()))
        for i, entry in enumerate(entries):
            if entry.id == proc.id and not entry.name:
                from ._process import name_of
                holds = set(entry.holds) | ends_of_arguments(proc)
                entries[i] = dataclasses.replace(entry, name=name_of(proc),
                                                 holds=tuple(sorted(holds)))
                set_entries(exc, entries)
    except Exception:  # noqa: BLE001 - a report must not replace the DeadlockError
        pass


def gather(exc, failures, procs):
    """``exc``, the DeadlockError the caller's Parallel of ``procs`` raises:
    give it every entry of its deadlock known here (its processes' failures,
    this OS process's other blocked processes, and the caller itself, which
    waits for ``procs``) and write its message from all of them."""
    try:
        deadlock = getattr(exc, "deadlock", None)
        if deadlock is None:
            return
        key, woken = deadlock
        entries = {}
        for failure in failures:
            if getattr(failure, "deadlock", (None,))[0] == key:
                for entry in failure.entries:
                    if entry.name or entry.id not in entries:
                        entries[entry.id] = entry
        last_key, last_entries = _last.get(key[0], (None, {}))
        if last_key == key:
            for pid, entry in last_entries.items():
                entries.setdefault(pid, entry)
        from ._process import current_process_id
        pid = current_process_id()
        caller = sys._getframe(2)  # the caller of Parallel
        # Channels it holds do not count: it could make ends of them only
        # after the Parallel, while ends it holds may be what a process waits for.
        entries[pid] = Blocked(
            id=pid, name=name_of_caller(pid), waits="parallel", channels=(),
            site=blocking_site(caller), holds=tuple(sorted(ends_on_stack(caller, channels_too=False))),
            waits_for=tuple(p.id for p in procs))
        set_entries(exc, sorted(entries.values(), key=in_start_order))
    except Exception:  # noqa: BLE001 - a report must not replace the DeadlockError
        pass


# ---------------------------------------------------------------- the message

def in_start_order(entry):
    """Ids are "ospid.n" (or "ospid.mainN"): order by OS process, then n."""
    head, _, tail = entry.id.partition(".")
    digits = "".join(c for c in tail if c.isdigit())
    return (tail.startswith("main"), int(head) if head.isdigit() else 0,
            int(digits) if digits else 0, entry.id)


class WaitFor:
    """Who waits for whom among the entries of a report."""

    def __init__(self, blocked):
        self.blocked = blocked
        self.by_id = {e.id: e for e in blocked}
        self.holders = {}
        for e in blocked:
            for held in e.holds:
                self.holders.setdefault(held, []).append(e)

    def partners(self, me, channel, direction):
        """The other processes that could serve ``me``'s wait on ``channel``:
        those holding its other end."""
        return [e for e in self.holders.get((channel, other(direction)), ()) if e is not me]

    def edges(self, e):
        """(process waited for, channel, direction); channel None for a Parallel's wait."""
        if e.waits == "parallel":
            return [(self.by_id[q], None, None) for q in e.waits_for if q in self.by_id]
        return [(q, ch, d) for ch, d in e.channels for q in self.partners(e, ch, d)]

    def cycle(self):
        """The first wait-for cycle, as [(entry, channel, direction)], or []."""
        state = {}  # id -> 1 on the path, 2 done
        for start in self.blocked:
            if start.id in state:
                continue
            path = []
            stack = [(start, iter(self.edges(start)))]
            state[start.id] = 1
            while stack:
                node, edges = stack[-1]
                for q, ch, d in edges:
                    if state.get(q.id) == 1:
                        path.append((node, ch, d))
                        first = next(i for i, (e, _, _) in enumerate(path) if e is q)
                        return path[first:]
                    if q.id not in state:
                        state[q.id] = 1
                        path.append((node, ch, d))
                        stack.append((q, iter(self.edges(q))))
                        break
                else:
                    state[node.id] = 2
                    stack.pop()
                    if path:
                        path.pop()
        return []


def who(entry):
    return f"{entry.name or entry.id} ({entry.site})"


def served_by(names, channel, direction):
    if len(names) == 1:
        return f"only {names[0]} {verb(other(direction))} {channel}"
    return f"{' and '.join(names)} {verb(other(direction))[:-1]} {channel}"


def cycle_lines(graph):
    cycle = graph.cycle()
    if not cycle:
        return []
    lines = ["wait-for cycle:"]
    for e, ch, d in cycle:
        if ch is None:
            names = [graph.by_id[q].name or q for q in e.waits_for if q in graph.by_id]
            lines.append(f"  {who(e)} waits in Parallel for {', '.join(names)}")
        else:
            names = [p.name or p.id for p in graph.partners(e, ch, d)]
            lines.append(f"  {who(e)} {verb(d)} {ch} — {served_by(names, ch, d)}")
    return lines


def stranded_lines(graph, complete):
    """Waits that no process of the report can serve."""
    lines = []
    for e in graph.blocked:  # Parallel waits have no channels
        for ch, d in e.channels:
            if not graph.partners(e, ch, d):
                if complete:
                    lines.append(f"  {who(e)} {verb(d)} {ch} — no process left on its other end")
                else:
                    lines.append(f"  {who(e)} {verb(d)} {ch} — no process reported here "
                                 f"holds its other end")
    return ["nobody can serve:"] + lines if lines else []


def describe(entries, woken):
    """The report: the wait-for cycle (or the channels nobody serves), then
    every process blocked on a channel.  ``woken``: how many channel waits
    the deadlock ended (-1: not known)."""
    blocked = [e for e in entries if e.waits != "parallel"]
    waiting_on_channels = len(blocked)
    complete = woken >= 0 and waiting_on_channels >= woken
    graph = WaitFor(entries)
    lines = [HEADLINE]
    lines.extend(cycle_lines(graph) or stranded_lines(graph, complete))
    lines.append(f"blocked ({len(blocked)}):")
    lines.extend(f"  {entry}" for entry in blocked)
    if woken < 0:
        lines.append("  (how many processes this deadlock stopped is not known)")
    elif not complete:
        lines.append(f"  and {woken - waiting_on_channels} more whose report did not reach here "
                     f"(Spawned, or in another Parallel)")
    return "\n".join(lines)


# A DeadlockError without a report (only Parallels were waiting, or the
# report failed) still answers .blocked.
DeadlockError.blocked = DeadlockError.waiting_in_parallel = DeadlockError.entries = ()
csp_ext._set_deadlock_report(make_error)
