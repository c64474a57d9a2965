"""A trace file read back for drawing: processes, what they waited on, messages.

Reads what ``_chrome`` writes (no matplotlib here).  Times are in
milliseconds since TraceInit.
"""
import json


class Operation:
    """A read, write or alternation: the process was blocked from ``start`` to ``end``."""

    __slots__ = ("start", "end", "kind", "channel", "outcome")

    def __init__(self, start, end, kind, channel, outcome):
        self.start, self.end, self.kind, self.channel, self.outcome = (
            start, end, kind, channel, outcome)


class Track:
    """One CSP process (or the main program): its row in the timeline, its node
    in the network."""

    __slots__ = ("key", "name", "process_id", "start", "end", "ended", "operations", "marks",
                 "waits", "first_seen", "last_seen")

    def __init__(self, key, name, process_id):
        self.key = key
        self.name = name
        self.process_id = process_id  # pycsp's current_process_id(), e.g. "4242.7"
        self.start = self.end = None  # the body's slice, if it is a traced process
        self.ended = False
        self.operations = []
        self.marks = []   # (time, kind, text): poison, retire, msg, output
        self.waits = []   # (start, end, what): Parallel / Sequence
        self.first_seen = self.last_seen = None

    def seen(self, t):
        if self.first_seen is None or t < self.first_seen:
            self.first_seen = t
        if self.last_seen is None or t > self.last_seen:
            self.last_seen = t

    def order(self):
        """Where the row goes: the main program first, then processes in the
        order they were made (their ids: pid of the maker, then a count)."""
        numbers = []
        for part in (self.process_id or "").split("."):
            numbers.append(int(part) if part.isdigit() else -1)
        return (self.start is not None, numbers, self.span[0] or 0)

    @property
    def span(self):
        """(start, end, ended) of the row's life: the body if recorded, else
        from its first to its last event."""
        if self.start is not None:
            return self.start, self.end, self.ended
        return self.first_seen, self.last_seen, True


class Message:
    """One message: written by ``writer`` (ending at ``sent``), read by
    ``reader`` (ending at ``received``) on ``channel`` (its label)."""

    __slots__ = ("writer", "reader", "channel", "channel_id", "sent", "received")

    def __init__(self, writer, reader, channel, channel_id, sent, received):
        self.writer, self.reader, self.channel, self.channel_id = writer, reader, channel, channel_id
        self.sent, self.received = sent, received


class Trace:
    __slots__ = ("tracks", "messages", "end", "backend")

    def __init__(self, tracks, messages, end, backend):
        self.tracks = tracks      # in the order they first appear
        self.messages = messages
        self.end = end
        self.backend = backend


def _operation_kind(event):
    if event["cat"] == "alt":
        return "alt"
    return event["cat"]


def load(path):
    """Read the trace file at ``path``.  Raises ValueError if it is not a
    Chrome trace (JSON with traceEvents), OSError if it cannot be read."""
    with open(path) as source:
        try:
            document = json.load(source)
        except ValueError as exc:
            raise ValueError(f"{path}: not a JSON trace file ({exc})") from None
    events = document.get("traceEvents") if isinstance(document, dict) else document
    if not isinstance(events, list):
        raise ValueError(f"{path}: not a Chrome trace (no traceEvents list)")
    backend = document.get("otherData", {}).get("backend", "") if isinstance(document, dict) else ""
    return build(events, backend)


def build(events, backend=""):
    tracks = {}
    names = {}
    for event in events:
        if event.get("ph") == "M" and event.get("name") == "thread_name":
            args = event.get("args") or {}
            names[(event.get("pid"), event.get("tid"))] = (args.get("name", "?"), args.get("process"))

    def track(event):
        key = (event.get("pid"), event.get("tid"))
        found = tracks.get(key)
        if found is None:
            found = tracks[key] = Track(key, *names.get(key, (f"{key[0]}/{key[1]}", None)))
        return found

    sends, receives = {}, {}
    open_waits = {}
    end = 0.0
    timed = sorted((e for e in events if e.get("ph") in ("B", "E", "X", "i", "I")),
                   key=lambda e: e.get("ts", 0))
    for event in timed:
        ph, cat, args = event["ph"], event.get("cat", ""), event.get("args") or {}
        t = event.get("ts", 0) / 1000
        t_end = t + event.get("dur", 0) / 1000
        end = max(end, t_end)
        row = track(event)
        row.seen(t)
        row.seen(t_end)
        if cat == "process" and ph == "B":
            row.start, row.end = t, None
        elif cat == "process" and ph == "E":
            row.end, row.ended = t, True
        elif cat == "parallel" and ph == "B":
            open_waits.setdefault(row.key, []).append((t, event.get("name", "")))
        elif cat == "parallel" and ph == "E" and open_waits.get(row.key):
            start, what = open_waits[row.key].pop()
            row.waits.append((start, t, what))
        elif ph == "X" and cat in ("read", "write", "alt"):
            row.operations.append(Operation(t, t_end, _operation_kind(event),
                                            args.get("channel"), args.get("outcome")))
            flow = args.get("flow")
            if flow is not None:
                sending = cat == "write" or (cat == "alt" and args.get("op") == "write")
                (sends if sending else receives)[flow] = (row, t_end, args)
        elif ph in ("i", "I") and cat in ("poison", "retire", "msg", "output"):
            text = args.get("channel") or args.get("msg") or args.get("text") or ""
            row.marks.append((t, cat, str(text)))
    for row in tracks.values():
        if row.start is not None and row.end is None:
            row.end = end  # did not end (crashed, or still running at TraceQuit)
    for key, waits in open_waits.items():
        for start, what in waits:
            tracks[key].waits.append((start, end, what))
    messages = []
    for flow, (writer, sent, args) in sends.items():
        received = receives.get(flow)
        if received is not None:
            reader, when, _ = received
            messages.append(Message(writer, reader, args.get("channel", "?"),
                                    args.get("channel_id", args.get("channel")), sent, when))
    messages.sort(key=lambda m: m.received)
    ordered = sorted(tracks.values(), key=Track.order)
    return Trace(ordered, messages, end, backend)
