"""The trace file: a session's parts merged into one Chrome Trace Event file.

The file is the Trace Event Format's JSON object, which Perfetto
(ui.perfetto.dev) and chrome://tracing open as it is::

    {"traceEvents": [...], "displayTimeUnit": "ms", "otherData": {...}}

Its events (``cat`` / ``ph``), ``ts`` and ``dur`` in microseconds since
TraceInit, ``pid`` the OS process, ``tid`` a track (one per CSP process):

==============  ====  ==========================================================
process         B/E   a CSP process's body (``args.outcome`` on the E)
read, write     X     a channel operation from its call to its return: the time
                      the process was blocked on ``args.channel``; a message's
                      two ends share ``args.flow``
alt             X     an alternation from its call to its choice (``args.op``,
                      ``args.channel``, ``args.guards``)
poison, retire  i     an end or channel poisoned, an end retired
msg             i     TraceMsg(text); ``output``: a line printed (stdout=True)
parallel        B/E   Parallel or Sequence, on the track of the process that waits
spawn           i     Spawn
message         s/f   an arrow from a write to the read that took its message
trace           i     TraceInit, TraceQuit
(metadata)      M     ``process_name``, ``thread_name``
==============  ====  ==========================================================
"""
import itertools
import json
import os
import shutil

# Track numbers that are never a pid (Linux pids stay below 2**22), so that no
# track is taken for another process's main thread.
TID_BASE = 1 << 22


def read_parts(parts):
    """Every event in the part files of ``parts``; and how many lines were torn
    (a process killed in the middle of writing one) and skipped."""
    events, torn = [], 0
    for name in sorted(os.listdir(parts)):
        if not name.endswith(".jsonl"):
            continue
        with open(os.path.join(parts, name), "rb") as part:
            for line in part:
                try:
                    event = json.loads(line)
                except ValueError:
                    torn += 1
                    continue
                if isinstance(event, dict) and "ph" in event and "pid" in event:
                    events.append(event)
                else:
                    torn += 1
    return events, torn


def _is_send(event):
    return event["cat"] == "write" or (event["cat"] == "alt" and event["args"].get("op") == "write")


def _flow_events(slices):
    """An ``s`` and an ``f`` event for each message whose write and read were both recorded.

    Each is bound to the slice that encloses its timestamp (the write's, the
    read's), so it is put strictly inside that slice, where the two overlap if
    they do (a rendezvous), and the start before the end.
    """
    sends, receives = {}, {}
    for event in slices:
        flow = event["args"].get("flow")
        if flow is not None:
            (sends if _is_send(event) else receives)[flow] = event
    arrows = []
    for flow, w in sends.items():
        r = receives.get(flow)
        if r is None:
            continue  # dropped by poison, or still buffered at TraceQuit
        ws, we = round(w["ts"] * 1000), round((w["ts"] + w["dur"]) * 1000)
        rs, re = round(r["ts"] * 1000), round((r["ts"] + r["dur"]) * 1000)
        low, high = max(ws, rs), min(we, re)
        if low < high:
            start, finish = low + (high - low) // 3, low + 2 * (high - low) // 3
        else:
            start, finish = (ws + we) // 2, (rs + re) // 2
        if finish < start:
            continue  # read before written: not one message
        label = w["args"].get("channel", "message")
        arrows.append({"ph": "s", "id": flow, "cat": "message", "name": label,
                       "ts": start / 1000, "pid": w["pid"], "tid": w["tid"]})
        arrows.append({"ph": "f", "bp": "e", "id": flow, "cat": "message", "name": label,
                       "ts": finish / 1000, "pid": r["pid"], "tid": r["tid"]})
    return arrows


def _process_names(timed, owner_pid, backend_name):
    names = {}
    for event in timed:
        pid = event["pid"]
        if pid not in names:
            names[pid] = None
        if names[pid] is None and event["ph"] == "B" and event["cat"] == "process":
            names[pid] = event["name"]
    metadata = []
    for pid, first_process in names.items():
        if pid == owner_pid:
            label = f"pycsp program ({backend_name})"
        elif first_process is not None:
            label = f"pycsp process {first_process}"
        else:
            label = "pycsp OS process"
        metadata.append({"ph": "M", "name": "process_name", "pid": pid, "args": {"name": label}})
    return metadata


def build(events, owner_pid, backend_name, other_data):
    """The trace object from the events of every part."""
    timed = sorted((e for e in events if e["ph"] != "M"), key=lambda e: e["ts"])
    metadata = [e for e in events if e["ph"] == "M"]
    # Tracks unique across OS processes: the first track of each OS process
    # (in time) takes its pid, as a main thread does; the others numbers from
    # TID_BASE.
    tids, numbers, has_main = {}, itertools.count(TID_BASE), set()
    for event in itertools.chain(timed, metadata):
        if "tid" not in event:
            continue
        key = (event["pid"], event["tid"])
        if key not in tids:
            if event["pid"] in has_main:
                tids[key] = next(numbers)
            else:
                tids[key] = event["pid"]
                has_main.add(event["pid"])
    for event in events:
        if "tid" in event:
            event["tid"] = tids[(event["pid"], event["tid"])]
    arrows = _flow_events([e for e in timed if e["ph"] == "X"])
    ordered = sorted(timed + arrows, key=lambda e: e["ts"])  # stable: a slice before its arrow
    # displayTimeUnit first: Perfetto reads it only from the file's first chunk.
    return {
        "displayTimeUnit": "ms",
        "traceEvents": _process_names(timed, owner_pid, backend_name) + metadata + ordered,
        "otherData": dict(other_data, backend=backend_name, owner_pid=str(owner_pid)),
    }


def write(trace, target):
    """Write ``trace`` to ``target``: a path (replaced whole, never half
    written) or a writable file object."""
    if hasattr(target, "write"):
        json.dump(trace, target)
        return
    temporary = f"{target}.tmp"
    with open(temporary, "w") as out:
        json.dump(trace, out)
    os.replace(temporary, target)


def merge(parts, target, owner_pid, backend_name, other_data):
    """Merge the part files in ``parts`` into the trace ``target``, then remove
    ``parts``; return (number of events, number of torn lines skipped)."""
    events, torn = read_parts(parts)
    trace = build(events, owner_pid, backend_name, dict(other_data, torn_lines=torn))
    write(trace, target)
    shutil.rmtree(parts, ignore_errors=True)
    return len(trace["traceEvents"]), torn
