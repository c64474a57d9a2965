"""pycsp.common.trace on every backend: what it records, the file it writes,
the pictures it draws, and that the traced program behaves as the untraced one.

Tracing is state of the whole program (one session per OS process tree), so
each case is a program of its own, written to a file and run in a fresh
Python (processes' children are forked, or spawned from that file).  The
program prints one RESULT line of JSON; the test reads it and the trace.
"""
import json
import math
import os
import random
import struct
import subprocess
import sys
import textwrap
from collections import Counter, defaultdict

import pytest

from conftest import BACKENDS, ROOT, _child_env

CHROME_PHASES = {"B", "E", "X", "i", "s", "f", "M"}


def run_program(tmp_path, source, *args, env=None, timeout=60, expect_ok=True):
    """Run ``source`` as tmp_path/program.py (cwd tmp_path) with this checkout's
    pycsp first on the path; return (RESULT dict or None, CompletedProcess)."""
    script = tmp_path / "program.py"
    script.write_text(textwrap.dedent(source))
    full_env = _child_env()
    full_env["PYTHONPATH"] = os.pathsep.join([ROOT, full_env.get("PYTHONPATH", "")])
    full_env["PYTHONFAULTHANDLER"] = "1"
    full_env.update(env or {})
    try:
        proc = subprocess.run([sys.executable, str(script), *args], capture_output=True,
                              text=True, timeout=timeout, env=full_env, cwd=str(tmp_path))
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"program did not finish within {timeout}s\n--- stdout ---\n{exc.stdout}"
                    f"\n--- stderr ---\n{exc.stderr}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if expect_ok:
        assert proc.returncode == 0 and lines, (
            f"exit {proc.returncode}\n--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}")
    return (json.loads(lines[-1][len("RESULT "):]) if lines else None), proc


def load_trace(path):
    with open(path) as source:
        return json.load(source)


def assert_chrome_trace(trace):
    """The fields Perfetto and chrome://tracing need, and the rules they assume."""
    assert isinstance(trace, dict) and isinstance(trace["traceEvents"], list)
    assert trace["displayTimeUnit"] in ("ms", "ns")
    events = trace["traceEvents"]
    thread_names, pid_of_tid = {}, {}
    flows = defaultdict(list)
    stacks = defaultdict(list)
    for event in events:
        assert event["ph"] in CHROME_PHASES, event
        assert isinstance(event["pid"], int) and 0 < event["pid"] < 2 ** 32, event
        assert isinstance(event["name"], str), event
        if event["ph"] == "M":
            assert event["name"] in ("process_name", "thread_name"), event
            assert isinstance(event["args"]["name"], str), event
            if event["name"] == "thread_name":
                thread_names[(event["pid"], event["tid"])] = event["args"]["name"]
            continue
        assert isinstance(event["ts"], (int, float)) and event["ts"] >= 0, event
        assert isinstance(event["tid"], int) and 0 < event["tid"] < 2 ** 32, event
        assert isinstance(event["cat"], str), event
        # A tid is one track: never shared by two OS processes.
        assert pid_of_tid.setdefault(event["tid"], event["pid"]) == event["pid"], event
        track = (event["pid"], event["tid"])
        if event["ph"] == "X":
            assert isinstance(event["dur"], (int, float)) and event["dur"] >= 0, event
        elif event["ph"] == "i":
            assert event["s"] in ("t", "p", "g"), event
        elif event["ph"] in ("s", "f"):
            assert int(event["id"], 16) > 0, event
            flows[event["id"]].append(event)
            if event["ph"] == "f":
                assert event["bp"] == "e", event
        elif event["ph"] == "B":
            stacks[track].append(event)
        elif event["ph"] == "E":
            assert stacks[track], f"E without B: {event}"
            begin = stacks[track].pop()
            assert begin["name"] == event["name"] and begin["ts"] <= event["ts"], (begin, event)
        if event["ph"] != "s" and event["ph"] != "f":
            assert track in thread_names, f"track without a thread_name: {event}"
    for flow_id, pair in flows.items():
        assert sorted(e["ph"] for e in pair) == ["f", "s"], pair
        start, finish = sorted(pair, key=lambda e: e["ph"] == "f")
        assert (start["cat"], start["name"]) == (finish["cat"], finish["name"]), pair
        assert start["ts"] <= finish["ts"], pair
    ordered = [e["ts"] for e in events if e["ph"] != "M"]
    assert ordered == sorted(ordered), "events are not in time order"
    return stacks  # the slices that did not end, per track


def counts(trace):
    return Counter((e.get("cat", e["name"]), e["ph"]) for e in trace["traceEvents"])


def slices_by_track(trace):
    tracks = defaultdict(list)
    for event in trace["traceEvents"]:
        if event["ph"] != "M":
            tracks[(event["pid"], event["tid"])].append(event)
    return tracks


def track_names(trace):
    return {(e["pid"], e["tid"]): e["args"]["name"] for e in trace["traceEvents"]
            if e["ph"] == "M" and e["name"] == "thread_name"}


def flows_of(trace, cat, name_prefix):
    return [e["args"].get("flow") for e in trace["traceEvents"]
            if e["ph"] == "X" and e["cat"] == cat and e["name"].startswith(name_prefix)]


def png_size(path):
    with open(path, "rb") as image:
        head = image.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


# ---------------------------------------------------------------------------
# A small known network, recorded on each backend.

KNOWN = """
import json, os, sys
from pycsp.{backend} import *
from pycsp.common.trace import *

@process
def producer(cout, n):
    for i in range(n):
        cout(i)
    retire(cout)

@process
def relay(cin, cout):
    while True:        # ends by retire: propagation retires cin and cout
        cout(cin())

@process
def consumer(cin):
    total = 0
    try:
        while True:
            total += cin()
    except ChannelRetireException:
        return total

@process
def writer(cout, name, n):
    for i in range(n):
        cout([name, i])

@process
def chooser(ina, inb):
    got, guards_ok = [], True
    for _ in range(4):
        guard, msg = Alternation([{{ina: None}}, {{inb: None}}]).select()
        guards_ok = guards_ok and (guard is ina or guard is inb)
        got.append(msg)
    poison(ina, inb)
    return sorted(got), guards_ok, os.getpid()

if __name__ == "__main__":
    TraceInit(sys.argv[1])
    data, relayed, a, b = Channel("data"), Channel("relayed"), Channel("a"), Channel("b")
    values = Parallel(producer(-data, 5), relay(+data, -relayed), consumer(+relayed),
                      writer(-a, "a", 2), writer(-b, "b", 2), chooser(+a, +b))
    TraceMsg("hello")
    written = TraceQuit()
    print("RESULT " + json.dumps({{"values": values, "written": written, "pid": os.getpid(),
                                  "parts_left": os.path.exists(sys.argv[1] + ".parts")}}))
"""


@pytest.fixture
def known_trace(backend, tmp_path):
    path = str(tmp_path / "known.json")
    result, _ = run_program(tmp_path, KNOWN.format(backend=backend), path)
    return result, load_trace(path), path


@pytest.mark.timeout(90)
def test_known_network_records_every_event(backend, known_trace):
    result, trace, path = known_trace
    values = result["values"]
    assert values[:5] == [None, None, 10, None, None]  # the program ran as untraced
    got, guards_ok, _ = values[5]
    assert got == [["a", 0], ["a", 1], ["b", 0], ["b", 1]] and guards_ok
    assert result["written"] == path and not result["parts_left"]

    unended = assert_chrome_trace(trace)
    assert not any(unended.values()), unended
    c = counts(trace)
    assert c[("process", "B")] == c[("process", "E")] == 6
    assert c[("write", "X")] == 14   # producer 5, relay 5, writers 2 + 2
    assert c[("read", "X")] == 12    # relay and consumer: 5 each, and the read that was retired
    assert c[("alt", "X")] == 4
    assert c[("retire", "i")] == 3   # the producer's, and the relay's two by propagation
    assert c[("poison", "i")] == 2
    assert c[("message", "s")] == c[("message", "f")] == 14  # every message has its arrow
    assert c[("parallel", "B")] == c[("parallel", "E")] == 1
    assert c[("msg", "i")] == 1 and c[("trace", "i")] == 2
    outcomes = Counter(e["args"].get("outcome", "ok") for e in trace["traceEvents"]
                       if e["ph"] == "X")
    assert outcomes == {"ok": 28, "retired": 2}
    chosen = Counter(e["args"]["chosen"] for e in trace["traceEvents"] if e.get("cat") == "alt")
    assert chosen == {"read a": 2, "read b": 2}

    # Order where it is defined: a process's body encloses its operations, and
    # one writer's messages on a channel are read in the order written.
    names = track_names(trace)
    for track, events in slices_by_track(trace).items():
        bodies = [e for e in events if e.get("cat") == "process"]
        if not bodies:
            continue
        begin, end = bodies
        assert events[0] is begin, names[track]
        for op in (e for e in events if e["ph"] == "X"):
            assert begin["ts"] <= op["ts"] and op["ts"] + op["dur"] <= end["ts"], names[track]
    assert flows_of(trace, "write", "write data") == flows_of(trace, "read", "read data")[:5]
    assert (flows_of(trace, "write", "write relayed")
            == flows_of(trace, "read", "read relayed")[:5])
    assert sorted(n.split(" ")[0] for n in names.values()) == [
        "chooser", "consumer", "main", "producer", "relay", "writer", "writer"]


@pytest.mark.timeout(90)
def test_each_os_process_records_into_the_one_file(backend, known_trace):
    result, trace, _ = known_trace
    body_pids = {e["pid"] for e in trace["traceEvents"] if e.get("cat") == "process"}
    chooser_pid = result["values"][5][2]
    if backend == "processes":
        # Six processes, six OS processes, none of them the program.
        assert len(body_pids) == 6 and result["pid"] not in body_pids
        assert chooser_pid in body_pids
        names = [e["args"]["name"] for e in trace["traceEvents"] if e["name"] == "process_name"]
        assert len(names) == 7 and "pycsp program (pycsp.processes)" in names
    else:
        assert body_pids == {result["pid"]} == {chooser_pid}


# ---------------------------------------------------------------------------
# Pictures

def _colours_in(path):
    from matplotlib.image import imread

    pixels = (imread(path)[:, :, :3] * 255).round().astype(int)
    return {tuple(p) for p in pixels.reshape(-1, 3)}


@pytest.mark.timeout(120)
def test_render_draws_timeline_and_network(backend, known_trace, tmp_path):
    _, _, path = known_trace
    out = tmp_path / "pictures" / "known.png"
    out.parent.mkdir()
    env = _child_env()
    env["PYTHONPATH"] = os.pathsep.join([ROOT, env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-m", "pycsp.common.trace", "render", path,
                           "-o", str(out)], capture_output=True, text=True, timeout=100,
                          env=env, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    network = tmp_path / "pictures" / "known-network.png"
    assert proc.stdout.split() == [str(out), str(network)]
    width, height = png_size(out)
    assert width >= 1000 and 300 <= height <= 2000, (width, height)
    width, height = png_size(network)
    assert width >= 500 and height >= 400, (width, height)
    assert os.path.getsize(out) > 20_000 and os.path.getsize(network) > 10_000
    # Drawn, not blank: the running colour, and the colours of the channels
    # (data and relayed are the first two: blue and orange).
    timeline_colours = _colours_in(out)
    assert {(0xA6, 0xDB, 0xA0), (0x1F, 0x77, 0xB4), (0xFF, 0x7F, 0x0E)} <= timeline_colours
    assert {(0x1F, 0x77, 0xB4), (0xFF, 0x7F, 0x0E)} <= _colours_in(network)


@pytest.mark.timeout(60)
def test_render_without_matplotlib_says_what_to_install(tmp_path):
    source = """
    import json, sys
    sys.modules["matplotlib"] = None   # as if it were not installed
    import pycsp.threads
    from pycsp.common.trace import *
    import pycsp.common.trace as trace
    from pycsp.common.trace.__main__ import main
    TraceInit("t.json")
    ch = Channel("c")
    Parallel(process(lambda cout: cout(1))(-ch), process(lambda cin: cin())(+ch))
    TraceQuit()
    try:
        trace.render("t.json")
        error = None
    except ImportError as exc:
        error = str(exc)
    status = main(["render", "t.json"])
    print("RESULT " + json.dumps({"error": error, "status": status,
                                  "imported": "matplotlib.pyplot" in sys.modules}))
    """
    result, proc = run_program(tmp_path, source)
    assert "needs matplotlib" in result["error"] and "pycsp[trace]" in result["error"]
    assert result["status"] == 2 and "needs matplotlib" in proc.stderr
    assert not result["imported"]


@pytest.mark.timeout(60)
def test_recording_does_not_import_matplotlib(tmp_path):
    source = """
    import json, sys
    import pycsp.greenlets
    from pycsp.common.trace import *
    TraceInit("t.json")
    ch = Channel()
    Parallel(process(lambda cout: cout(1))(-ch), process(lambda cin: cin())(+ch))
    TraceQuit()
    print("RESULT " + json.dumps(sorted(m for m in sys.modules if m.startswith("matplotlib"))))
    """
    result, _ = run_program(tmp_path, source)
    assert result == []


@pytest.mark.timeout(60)
def test_render_rejects_a_file_that_is_not_a_trace(tmp_path):
    (tmp_path / "not.json").write_text('{"hello": 1}')
    (tmp_path / "broken.json").write_text('{"traceEvents": [')
    env = _child_env()
    env["PYTHONPATH"] = os.pathsep.join([ROOT, env.get("PYTHONPATH", "")])
    for name in ("not.json", "broken.json", "missing.json"):
        proc = subprocess.run([sys.executable, "-m", "pycsp.common.trace", "render", name],
                              capture_output=True, text=True, timeout=50, env=env,
                              cwd=str(tmp_path))
        assert proc.returncode == 1 and f"cannot render {name}" in proc.stderr, proc.stderr
    assert not list(tmp_path.glob("*.png"))


# ---------------------------------------------------------------------------
# Crashes

CRASH = """
import json, os, signal, sys
from pycsp.processes import *
from pycsp.common.trace import *

@process
def crasher(cout):
    cout("first")
    cout("second")
    os.kill(os.getpid(), signal.SIGKILL)   # in the middle of its work

@process
def reader(cin):
    got = []
    try:
        while True:
            got.append(cin())
    except ChannelPoisonException:    # the crash poisons the crasher's ends
        return got

if __name__ == "__main__":
    TraceInit(sys.argv[1])
    ch = Channel("doomed")  # a rendezvous: both messages were read before the crash
    try:
        Parallel(crasher(-ch), reader(+ch))
        raised = None
    except ProcessCrashed as exc:
        raised = str(exc)
    TraceQuit()
    print("RESULT " + json.dumps({{"raised": raised}}))
"""


@pytest.mark.timeout(90)
@pytest.mark.skipif("processes" not in BACKENDS, reason="processes backend not selected")
@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_crashing_child_leaves_a_readable_trace(tmp_path, start_method):
    path = str(tmp_path / "crash.json")
    result, _ = run_program(tmp_path, CRASH.format(), path,
                            env={"PYCSP_START_METHOD": start_method})
    assert "SIGKILL" in result["raised"]
    trace = load_trace(path)
    unended = assert_chrome_trace(trace)
    names = track_names(trace)
    # The crasher started and never ended; what it did before is there.
    assert [names[track].split(" ")[0] for track, stack in unended.items() if stack] == ["crasher"]
    assert trace["otherData"]["torn_lines"] == 0
    c = counts(trace)
    assert c[("process", "B")] == 2 and c[("process", "E")] == 1
    assert flows_of(trace, "write", "write doomed") == flows_of(trace, "read", "read doomed")[:2]
    assert c[("message", "s")] == 2
    # And it draws, the crasher marked as not ended.
    drawn, _ = run_program(tmp_path, f"""
    import json
    from pycsp.common.trace import _model, render
    paths = render({path!r}, "crash.png")
    ended = [t.span[2] for t in _model.load({path!r}).tracks if t.name.startswith("crasher")]
    print("RESULT " + json.dumps({{"paths": paths, "ended": ended}}))
    """)
    assert drawn["ended"] == [False]
    timeline, network = (os.path.join(tmp_path, p) for p in drawn["paths"])
    assert png_size(timeline)[0] >= 1000 and png_size(network)[0] >= 500


KILLED = """
import json, os, sys
from pycsp.{backend} import *
from pycsp.common.trace import *

@process
def count(cout):
    for i in range(3):
        cout(i)
    retire(cout)

@process
def take(cin):
    try:
        while True:
            cin()
    except ChannelRetireException:
        pass

TraceInit(sys.argv[1])
ch = Channel("c")
Parallel(count(-ch), take(+ch))
print("RESULT {{}}", flush=True)
os._exit(0)   # killed: no TraceQuit, no exit handlers
"""


@pytest.mark.timeout(90)
def test_merge_recovers_a_trace_the_program_never_finished(backend, tmp_path):
    path = str(tmp_path / "killed.json")
    run_program(tmp_path, KILLED.format(backend=backend), path)
    assert not os.path.exists(path) and os.path.isdir(path + ".parts")
    env = _child_env()
    env["PYTHONPATH"] = os.pathsep.join([ROOT, env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-m", "pycsp.common.trace", "merge", path],
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    trace = load_trace(path)
    assert_chrome_trace(trace)
    c = counts(trace)
    assert c[("write", "X")] == 3 and c[("read", "X")] == 4 and c[("message", "s")] == 3
    assert trace["otherData"]["backend"] == f"pycsp.{backend}"
    assert not os.path.exists(path + ".parts")


FORGOT = KILLED.split("TraceInit(")[0] + """
TraceInit(sys.argv[1])
ch, spawned = Channel("c"), Channel("spawned")
Parallel(count(-ch), take(+ch))
Spawn(count(-spawned), take(+spawned))
print("RESULT {{}}")   # and no TraceQuit
"""


@pytest.mark.timeout(90)
def test_a_program_that_forgets_trace_quit_still_writes_its_trace(backend, tmp_path):
    path = str(tmp_path / "forgot.json")
    run_program(tmp_path, FORGOT.format(backend=backend), path)
    trace = load_trace(path)
    assert_chrome_trace(trace)
    c = counts(trace)
    # The Spawned processes ran to their end before the trace was written.
    assert c[("process", "E")] == 4 and c[("message", "s")] == 6
    assert c[("spawn", "i")] == 1


# ---------------------------------------------------------------------------
# The traced program behaves as the untraced one.

SEMANTICS = """
import json, os, sys
from pycsp.{backend} import *
import pycsp.{backend} as plain
from pycsp.common.trace import *

@process
def feed(cout, items, end=False):
    for x in items:
        cout(x)
    if end:
        retire(cout)

@process
def chooser(cin1, cin2, cout):
    got = []
    def keep(channel_input):
        got.append(channel_input)
    Alternation([{{cin1: keep}}, (cin2, keep)]).execute()
    Alternation([{{cin1: "got.append(channel_input)", cin2: "got.append(channel_input)"}}]).execute()
    got.append(AltSelect(InputGuard(cin1), InputGuard(cin2))[1])
    got.append(FairSelect(cin1, cin2)[1])
    got.append(plain.PriSelect(cin1, cin2)[1])           # the backend's select, traced ends
    guard, _ = Alternation([(cout, "x", None)]).select()
    assert guard is cout
    PriSelect(OutputGuard(cout, "y"))
    alt = plain.Alternation([{{(cout, "z"): None}}])      # the backend's Alternation
    assert isinstance(alt, Alternation) and isinstance(alt, plain.Alternation)
    alt.select()
    return sorted(got)

@process
def sink(cin, n):
    return [cin() for _ in range(n)]

@process
def double(cin, cout):
    while True:
        cout(2 * cin())

@process
def collect(cin):
    got = []
    try:
        while True:
            got.append(cin())
    except ChannelRetireException:
        return sorted(got)

@process
def count_then_poison(cout):
    cout(1)
    cout(2)
    poison(cout)

@plain.process
def untraced_relay(cin, cout):     # the backend's @process, given traced ends
    while True:
        cout(cin())

@process
def until_poisoned(cin):
    got = []
    try:
        while True:
            got.append(cin())
    except ChannelPoisonException:
        return got

@process
def send_end(ends_out):
    mobile = Channel("mobile")
    ends_out(mobile.writer())
    return mobile.reader()()

@process
def use_end(ends_in):
    ends_in()("over a sent end")

if __name__ == "__main__":
    TraceInit(sys.argv[1])
    c1, c2, out = Channel("c1"), Channel("c2"), Channel("out")
    alternated = Parallel(feed(-c1, [1, 2, 3]), feed(-c2, [10, 20]), chooser(+c1, +c2, -out),
                          sink(+out, 3))
    jobs, doubled = Channel("jobs"), Channel("doubled")
    doublers = 3 * double(+jobs, -doubled)
    readers = jobs.statistics()["readers"]
    multiplied = Parallel(feed(-jobs, range(6), True), doublers, collect(+doubled))
    upstream, downstream = Channel("upstream"), Channel("downstream")
    relayed = Parallel(count_then_poison(-upstream), untraced_relay(+upstream, -downstream),
                       until_poisoned(+downstream))
    ends = Channel("ends")
    mobile = Parallel(send_end(-ends), use_end(+ends))
    TraceQuit()
    print("RESULT " + json.dumps({{"alternated": alternated[2:], "readers": readers,
                                  "multiplied": multiplied[-1], "relayed": relayed[2],
                                  "mobile": mobile[0]}}))
"""


@pytest.mark.timeout(120)
def test_traced_program_behaves_as_untraced(backend, tmp_path):
    path = str(tmp_path / "semantics.json")
    result, _ = run_program(tmp_path, SEMANTICS.format(backend=backend), path)
    assert result["alternated"] == [[1, 2, 3, 10, 20], ["x", "y", "z"]]
    assert result["readers"] == 3  # 3 * P: each copy has an end of its own
    assert result["multiplied"] == [0, 2, 4, 6, 8, 10]
    assert result["relayed"] == [1, 2]
    assert result["mobile"] == "over a sent end"

    trace = load_trace(path)
    assert_chrome_trace(trace)
    alts = [e for e in trace["traceEvents"] if e.get("cat") == "alt"]
    assert Counter(e["args"]["op"] for e in alts) == {"read": 5, "write": 3}
    assert all("flow" in e["args"] for e in alts)
    # The backend's @process, given traced ends, propagates poison through
    # them (recorded): count_then_poison's, then the relay's two.
    poisoned = Counter(e["args"]["channel"] for e in trace["traceEvents"] if e.get("cat") == "poison")
    assert poisoned == {"upstream": 2, "downstream": 1}
    sent = [e for e in trace["traceEvents"] if e["ph"] == "X" and e["name"] == "write mobile"]
    assert len(sent) == 1 and sent[0]["args"]["flow"] in flows_of(trace, "read", "read mobile")
    # Every message of the run has its arrow.
    assert counts(trace)[("message", "s")] == len(
        [e for e in trace["traceEvents"] if e["ph"] == "X" and e["args"].get("flow")]) // 2


# ---------------------------------------------------------------------------
# Which backend the names wrap; what the module exports; errors.

RULE = """
import json, sys
{imports}
from pycsp.common.trace import *
import pycsp.common.trace as trace, csp_ext
ch = Channel()
print("RESULT " + json.dumps({{"backend": trace.backend().__name__,
                              "shared": isinstance(ch._channel, csp_ext.ShmChannel)}}))
"""


@pytest.mark.timeout(90)
@pytest.mark.parametrize("imports, expected", [
    ("from pycsp.greenlets import *", "pycsp.greenlets"),
    ("from pycsp.processes import *", "pycsp.processes"),
    ("import pycsp.processes as csp", "pycsp.processes"),
    ("import pycsp", "pycsp.threads"),
    ("import pycsp.greenlets", "pycsp.greenlets"),                       # most recent
    ("import pycsp.processes\nimport pycsp.threads as csp", "pycsp.threads"),  # the one held
    ("import pycsp.greenlets\nfrom pycsp.threads import *", "pycsp.threads"),
], ids=["star-greenlets", "star-processes", "as-processes", "pycsp", "most-recent",
        "held-beats-recent", "star-beats-recent"])
def test_backend_rule(tmp_path, imports, expected):
    result, _ = run_program(tmp_path, RULE.format(imports=imports))
    assert result == {"backend": expected, "shared": expected == "pycsp.processes"}


@pytest.mark.timeout(60)
def test_names_and_errors(backend, tmp_path):
    source = f"""
    import json, os, sys
    import pycsp.{backend} as plain
    before = {{name: getattr(plain, name) for name in plain.__all__}}
    import pycsp.common.trace as trace
    from pycsp.common.trace import *
    errors = {{}}
    def error(key, call):
        try:
            call()
        except Exception as exc:
            errors[key] = type(exc).__name__ + ": " + str(exc)
    error("quit before init", TraceQuit)
    error("set_backend", lambda: trace.set_backend("fibres"))
    error("bad file", lambda: TraceInit(42))
    error("no folder", lambda: TraceInit("no/such/folder/t.json"))
    TraceInit("t.json")
    error("init twice", lambda: TraceInit("u.json"))
    error("bad guard", lambda: Alternation([42]))
    error("bad process", lambda: process(42))
    @process
    def quits():
        TraceQuit()
    if plain.version[3] == "processes":
        error("quit in a process", lambda: Parallel(quits()))
    TraceQuit()
    print("RESULT " + json.dumps({{
        "untouched": all(getattr(plain, n) is v for n, v in before.items()),
        "exported": sorted(set(trace.__all__) - set(plain.__all__)),
        "same": [n for n in plain.__all__ if n not in trace.TRACED_NAMES
                 and getattr(trace, n) is not getattr(plain, n)],
        "errors": errors}}))
    """
    result, _ = run_program(tmp_path, source)
    assert result["untouched"]  # importing the trace changes no name of the backend
    assert result["exported"] == ["TraceInit", "TraceMsg", "TraceQuit"]
    assert result["same"] == []
    errors = result["errors"]
    assert errors["quit before init"].startswith("RuntimeError: TraceQuit: tracing is not on")
    assert errors["set_backend"].startswith("ValueError: set_backend: not a pycsp backend")
    assert errors["bad file"].startswith("TypeError: TraceInit: file must be a path")
    assert errors["no folder"].startswith("FileNotFoundError")
    assert errors["init twice"].startswith("RuntimeError: TraceInit: tracing is already on")
    assert errors["bad guard"].startswith("TypeError: Alternation guard 0: not a guard")
    assert errors["bad process"].startswith("TypeError: @process decorates a function")
    if backend == "processes":  # a child is another OS process than TraceInit's
        assert errors["quit in a process"].startswith("RuntimeError: TraceQuit: call it in the OS")


# ---------------------------------------------------------------------------
# The example

@pytest.mark.timeout(120)
def test_example_mcpi_traced(backend, tmp_path):
    env = _child_env()
    env["PYTHONPATH"] = os.pathsep.join([ROOT, env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "mcpi_traced.py"),
                           backend], capture_output=True, text=True, timeout=110, env=env,
                          cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    # One seed per job: the same darts, so the same estimate, on every backend
    # (and as examples/montecarlo_pi.py's).
    hits = 0
    for seed in range(40):
        rng = random.Random(seed)
        hits += sum(rng.random() ** 2 + rng.random() ** 2 < 1.0 for _ in range(5000))
    estimate = 4 * hits / 200_000
    assert lines == [
        f"Monte-Carlo Pi on {backend}, traced: 200000 darts in 40 jobs, 4 workers",
        f"{hits} landed in the quarter circle: pi is about {estimate:.6f} "
        f"(off by {abs(estimate - math.pi):.6f})",
        "trace: mcpi_traced.json (open it in ui.perfetto.dev or chrome://tracing)",
        "pictures: mcpi_traced.png (timeline), mcpi_traced-network.png (network)"]
    trace = load_trace(tmp_path / "mcpi_traced.json")
    assert_chrome_trace(trace)
    c = counts(trace)
    assert c[("process", "B")] == 6 and c[("message", "s")] == 80
    assert png_size(tmp_path / "mcpi_traced.png")[0] >= 1000
    assert png_size(tmp_path / "mcpi_traced-network.png")[0] >= 500


FIBONACCI = """
import json, sys
from pycsp.{backend} import *
from pycsp.common.plugNplay import Delta2, Pairs, Prefix
from pycsp.common.trace import *

@process
def printer(cin, count):
    numbers = [cin() for _ in range(count)]
    poison(cin)
    return numbers

if __name__ == "__main__":
    TraceInit(sys.argv[1])
    a, b, c, d, out = (Channel(name) for name in ("a", "b", "c", "d", "out"))
    *_, numbers = Parallel(Prefix(+b, -a, prefix=0), Prefix(+c, -b, prefix=1), Pairs(+d, -c),
                           Delta2(+a, -d, -out), printer(+out, 10))
    TraceQuit()
    print("RESULT " + json.dumps(numbers))
"""


@pytest.mark.timeout(90)
def test_plugnplay_components_on_traced_channels(backend, tmp_path):
    # PyCSP's components are the backend's processes: given traced ends they
    # record through them (Delta2's choice among its outputs included), and
    # their tracks are named after the function they run.
    path = str(tmp_path / "fibonacci.json")
    numbers, _ = run_program(tmp_path, FIBONACCI.format(backend=backend), path)
    assert numbers == [0, 1, 1, 2, 3, 5, 8, 13, 21, 34]
    trace = load_trace(path)
    assert_chrome_trace(trace)
    names = Counter(name.split(" ")[0] for name in track_names(trace).values())
    assert names["Prefix"] == 2 and names["Delta2"] >= 1 and names["printer"] == 1
    delta2_choices = [e for e in trace["traceEvents"] if e.get("cat") == "alt"
                      and track_names(trace)[(e["pid"], e["tid"])].startswith("Delta2")]
    # Each committed choice wrote; one may have ended by the poison instead.
    assert {e["args"].get("op", e["args"].get("outcome")) for e in delta2_choices} <= {
        "write", "poisoned"}
    assert sum(e["args"].get("op") == "write" for e in delta2_choices) >= 10
    assert counts(trace)[("message", "s")] >= 40  # the loop's messages have their arrows


@pytest.mark.timeout(60)
def test_pairs_inner_network_on_traced_shared_channels_is_os_processes(tmp_path):
    """Traced ends of shared channels count as shared: Pairs' inner network on
    pycsp.processes runs as OS processes, as it does untraced (it ran as
    threads inside the child, whose waits do not count across processes)."""
    if "processes" not in BACKENDS:
        return
    result, proc = run_program(tmp_path, """
        import json
        import pycsp.processes
        from pycsp.processes import *
        from pycsp.common.trace import *
        from pycsp.common._backend import backend_for
        TraceInit("t.json")
        ch = Channel("c")
        backends = [backend_for(ch.reader()).__name__, backend_for(ch.writer()).__name__]
        TraceQuit()
        print("RESULT " + json.dumps(backends))
    """)
    assert result == ["pycsp.processes", "pycsp.processes"], proc.stdout + proc.stderr
