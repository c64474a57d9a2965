"""Deadlock reports: which CSP process is blocked on what, where, and why
nobody can wake it.

When every CSP process is blocked, the core wakes each blocked operation
with a deadlock (csp_ext); the operation then calls ``make_error`` in the
blocked process itself, which knows who it is and where it blocked (its own
Python stack), while the core says what it was blocked on.  Each process
fails with its DeadlockError, carrying its ``Blocked`` entry; ``Parallel``
gathers the entries of the processes it waited for (``gather``), across OS
processes too (the entries travel with the pickled exception), and the
message is written from all of them (``describe``): the wait-for cycle
first, then every blocked process.

Nothing here runs unless there is a deadlock.
"""
import dataclasses
import itertools
import os
import sys
import weakref

import csp_ext
from csp_ext import DeadlockError

HEADLINE = "deadlock: every CSP process is blocked on a channel"


@dataclasses.dataclass(frozen=True)
class Blocked:
    """One blocked CSP process of a deadlock report.

    ``waits`` is ``"read"``, ``"write"`` or ``"alternation"``; ``channels``
    the channels it waited on as ``(label, "read" | "write")``; ``site`` the
    ``file:line`` of the blocking call; ``holds`` the channel ends among its
    arguments (what it could use), as ``(label, "read" | "write")``.
    """

    id: str
    name: str
    waits: str
    channels: tuple
    site: str
    holds: tuple = ()

    def __str__(self):
        what = ", ".join(f"{verb(d)} {label}" for label, d in self.channels)
        if self.waits == "alternation":
            what = f"alternation: {what}"
        return f"{self.name or 'process'} [{self.id}] at {self.site}: {what}"


def verb(direction):
    return "reads" if direction == "read" else "writes"


def other(direction):
    return "write" if direction == "read" else "read"


# ---------------------------------------------------------------- channel labels

_unnamed = weakref.WeakKeyDictionary()
_next_unnamed = itertools.count(1)


def label(channel):
    """How a report names a channel: its name, or a short id that stays the
    same for the channel's life (in every OS process, for shared ones)."""
    if isinstance(channel, tuple):  # (offset, name) of a shared channel, from the core
        offset, name = channel
    else:
        name = channel.name
        offset = getattr(channel, "_offset", None)
    if name is not None:
        return repr(name)
    if offset is not None:
        return f"#{offset:x}"
    number = _unnamed.get(channel)
    if number is None:
        number = _unnamed[channel] = next(_next_unnamed)
    return f"#{number}"


def ends_held(*roots):
    """``(label, direction)`` of every channel end (or channel: both
    directions) among ``roots``, as ``_ends.find_ends`` finds them."""
    from ._ends import READ_ENDS, WRITE_ENDS, find_ends
    held = set()
    for end in find_ends(*roots):
        if isinstance(end, READ_ENDS):
            held.add((label(end.channel), "read"))
        elif isinstance(end, WRITE_ENDS):
            held.add((label(end.channel), "write"))
        else:
            held.update({(label(end), "read"), (label(end), "write")})
    return tuple(sorted(held))


# ---------------------------------------------------------------- made in the blocked process

def ends_on_stack(frame, budget=10_000):
    """``ends_held`` of the local variables of the process's own frames
    (ends it received in messages or made itself), looking at no more than
    ``budget`` objects: a main program's stack may hold large structures."""
    from ._ends import READ_ENDS, WRITE_ENDS, _CHANNEL_TYPES
    found, seen, stack = [], set(), []
    while frame is not None and frame.f_code.co_name != "_run_body":
        stack.extend(frame.f_locals.values())
        frame = frame.f_back
    while stack and budget > 0:
        obj = stack.pop()
        budget -= 1
        if isinstance(obj, READ_ENDS + WRITE_ENDS + _CHANNEL_TYPES):
            found.append(obj)
        elif isinstance(obj, (list, tuple, set, frozenset, dict)) and id(obj) not in seen:
            seen.add(id(obj))
            stack.extend(obj.values() if isinstance(obj, dict) else obj)
    return ends_held(found)


def blocking_site(frame):
    """``file:line`` of the first frame outside pycsp's own modules (the
    user's blocking call)."""
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        internal = module == "csp_ext" or (
            module.startswith("pycsp.") and any(part.startswith("_") for part in module.split(".")))
        if not internal:
            return f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}"
        frame = frame.f_back
    return "?"


# The entries of the last deadlock seen in this OS process, by kind of
# channel (in-process, shared): every process of one deadlock adds its own,
# so a Parallel finds those of processes whose failures do not reach it
# (Spawned ones, the main program).  Only the last: a report is gathered as
# soon as its processes end, and an old one must not keep memory.
_last = {}


def make_error(blocked_on, is_select):
    """The DeadlockError of the operation that the core just woke with a
    deadlock, made in the blocked process (the core calls this)."""
    from ._process import current_process_id
    scope, generation, woken, waits = blocked_on
    channels = tuple((label(ch), "write" if is_write else "read") for ch, is_write in waits)
    pid = current_process_id()
    entry = Blocked(
        id=pid,
        name="main program" if ".main" in pid else "",  # a process: Process._failed names it
        waits="alternation" if is_select else (channels[0][1] if channels else "read"),
        channels=channels,
        site=blocking_site(sys._getframe(1)),
        holds=tuple(sorted(set(channels) | set(ends_on_stack(sys._getframe(1))))),
    )
    key = (scope, os.getpid() if scope == "local" else 0, generation)
    last_key, entries = _last.get(scope, (None, None))
    if last_key != key:
        entries = {}
        _last[scope] = (key, entries)
    entries[pid] = entry
    exc = DeadlockError(HEADLINE)
    exc.blocked = [entry]
    exc.deadlock = (key, woken)
    exc.args = (describe(exc.blocked, woken),)
    return exc


def name_entry(exc, proc):
    """``proc``'s body ended with ``exc``: name its own entry (the core does
    not know the function) and add the ends it was given."""
    blocked = getattr(exc, "blocked", None)
    if not blocked:
        return
    for i, entry in enumerate(blocked):
        if entry.id == proc.id and not entry.name:
            from ._process import name_of
            holds = tuple(sorted(set(entry.holds) | set(ends_held(proc.args, proc.kwargs))))
            blocked[i] = dataclasses.replace(entry, name=name_of(proc), holds=holds)
            exc.args = (describe(blocked, exc.deadlock[1]),)


def gather(exc, failures):
    """``exc``, the DeadlockError a Parallel raises: give it every entry of its
    deadlock known here (its processes' failures, and this OS process's
    other blocked processes) and write its message from all of them."""
    deadlock = getattr(exc, "deadlock", None)
    if deadlock is None:
        return
    key, woken = deadlock
    entries = {}
    for failure in failures:
        if getattr(failure, "deadlock", (None,))[0] == key:
            for entry in failure.blocked:
                if entry.name or entry.id not in entries:
                    entries[entry.id] = entry
    last_key, last_entries = _last.get(key[0], (None, {}))
    if last_key == key:
        for pid, entry in last_entries.items():
            entries.setdefault(pid, entry)
    exc.blocked = sorted(entries.values(), key=in_start_order)
    exc.args = (describe(exc.blocked, woken),)


# ---------------------------------------------------------------- the message

def in_start_order(entry):
    """Ids are "ospid.n" (or "ospid.mainN"): order by OS process, then n."""
    head, _, tail = entry.id.partition(".")
    digits = "".join(c for c in tail if c.isdigit())
    return (tail.startswith("main"), int(head) if head.isdigit() else 0,
            int(digits) if digits else 0, entry.id)


def describe(blocked, woken):
    """The report: the wait-for cycle (or the channel nobody serves), then
    every blocked process."""
    complete = len(blocked) >= woken
    lines = [HEADLINE]
    why = cycle_lines(blocked) or stranded_lines(blocked, complete)
    if why:
        lines.extend(why)
    lines.append(f"blocked ({len(blocked)}):")
    lines.extend(f"  {entry}" for entry in blocked)
    if not complete:
        lines.append(f"  and {woken - len(blocked)} more whose report did not reach here "
                     f"(Spawned, or in another Parallel)")
    return "\n".join(lines)


def partners(blocked, me, channel, direction):
    """The other blocked processes that could serve ``me``'s wait on
    ``channel``: those holding its other end."""
    wanted = (channel, other(direction))
    return [e for e in blocked if e is not me and wanted in e.holds]


def who(entry):
    return f"{entry.name or entry.id} ({entry.site})"


def served_by(names, channel, direction):
    if len(names) == 1:
        return f"only {names[0]} {verb(other(direction))} {channel}"
    return f"{' and '.join(names)} {verb(other(direction))[:-1]} {channel}"


def cycle_lines(blocked):
    """The first wait-for cycle (each process waits for the next, the last
    for the first), as lines; [] if there is none."""
    edges = {e.id: [(q.id, ch, d) for ch, d in e.channels for q in partners(blocked, e, ch, d)]
             for e in blocked}
    by_id = {e.id: e for e in blocked}
    done = set()

    def search(node, path, on_path):
        # Depth first; path holds (process, channel, direction) edges taken.
        for q, ch, d in edges[node]:
            if q in on_path:
                return path[on_path[q]:] + [(node, ch, d)]
            if q not in done:
                on_path[q] = len(path) + 1
                found = search(q, path + [(node, ch, d)], on_path)
                if found:
                    return found
                del on_path[q]
                done.add(q)
        return None

    for e in blocked:
        if e.id in done:
            continue
        cycle = search(e.id, [], {e.id: 0})
        if cycle:
            lines = ["wait-for cycle:"]
            for pid, ch, d in cycle:
                me = by_id[pid]
                names = [p.name or p.id for p in partners(blocked, me, ch, d)]
                lines.append(f"  {who(me)} {verb(d)} {ch} — {served_by(names, ch, d)}")
            return lines
        done.add(e.id)
    return []


def stranded_lines(blocked, complete):
    """A wait that no blocked process can serve."""
    lines = []
    for e in blocked:
        for ch, d in e.channels:
            if not partners(blocked, e, ch, d):
                if complete:
                    lines.append(f"  {who(e)} {verb(d)} {ch} — no process left on its other end")
                else:
                    lines.append(f"  {who(e)} {verb(d)} {ch} — no blocked process reported "
                                 f"here holds its other end")
    return ["nobody can serve:"] + lines if lines else []


# A DeadlockError without a report (only Parallels were waiting, or the
# report failed) still answers .blocked.
DeadlockError.blocked = ()
csp_ext._set_deadlock_report(make_error)
