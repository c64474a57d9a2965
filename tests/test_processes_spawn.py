"""pycsp.processes with the "spawn" start method (a fresh Python per child).

A spawned child imports the program's __main__ as multiprocessing does, so
each case is a script file with module-level processes and the __main__
guard, run in its own Python.  The script prints one RESULT line of JSON.
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import BACKENDS, _child_env

pytestmark = pytest.mark.skipif("processes" not in BACKENDS,
                                reason="processes backend not selected")

COMMON = """
import json, os, sys
import pycsp.processes as csp

@csp.process
def producer(cout, n):
    for i in range(n):
        cout(i)
    csp.retire(cout)

@csp.process
def consumer(cin):
    total = 0
    try:
        while True:
            total += cin()
    except csp.ChannelRetireException:
        return total

@csp.process
def doubler(cin, cout):
    try:
        while True:
            cout(cin() * 2)
    except csp.ChannelRetireException:
        csp.retire(cout)

@csp.process
def pipeline(cout, n):
    ch = csp.Channel()
    csp.Parallel(producer(ch.writer(), n), doubler(ch.reader(), cout))
    return csp.get_start_method()

@csp.process
def ends_sender(ends_out):
    ch = csp.Channel()
    ends_out(ch.writer())
    ends_out(ch.reader())

@csp.process
def ends_user(ends_in):
    w = ends_in()
    r = ends_in()
    return csp.Parallel(producer(w, 5), consumer(r))[1]

class Boom(Exception):
    pass

@csp.process
def boom(cin):
    raise Boom("from a spawned child")

@csp.process
def dies(cout):
    os._exit(7)

@csp.process
def pid():
    return os.getpid(), os.getppid()

@csp.process
def reader_alone(cin):
    cin()

def children_of(parent):
    # command lines of the live child processes of `parent`, from /proc
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
            found.append(cmd)
    return found

def report(**kw):
    print("RESULT " + json.dumps(kw), flush=True)
"""


def run_case(tmp_path, body, env=None, timeout=90):
    script = tmp_path / "case.py"
    script.write_text(COMMON + "\nif __name__ == '__main__':\n" +
                      textwrap.indent(textwrap.dedent(body), "    "))
    full_env = _child_env()  # imports pycsp from where this run does
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=timeout, env=full_env, cwd=str(tmp_path))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, (
        f"exit {proc.returncode}\n--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}")
    return json.loads(lines[-1][len("RESULT "):])


@pytest.mark.timeout(120)
def test_spawned_children_talk_and_return_values(tmp_path):
    got = run_case(tmp_path, """
        csp.set_start_method("spawn")
        ch = csp.Channel()
        values = csp.Parallel(producer(ch.writer(), 1000), consumer(ch.reader()))
        a, b = csp.Parallel(pid(), pid())
        left = [cmd for cmd in children_of(os.getpid()) if "resource_tracker" not in cmd]
        report(values=values, me=os.getpid(), pids=[a, b], left=left)
    """)
    assert got["left"] == []  # multiprocessing's resource tracker lives until exit
    assert got["values"] == [None, 499500]
    for child_pid, parent_pid in got["pids"]:
        assert parent_pid == got["me"] and child_pid != got["me"]


@pytest.mark.timeout(120)
def test_spawned_child_runs_nested_parallel_the_same_way(tmp_path):
    got = run_case(tmp_path, """
        csp.set_start_method("spawn")
        ch = csp.Channel()
        method, total = csp.Parallel(pipeline(ch.writer(), 10), consumer(ch.reader()))
        report(method=method, total=total)
    """)
    assert got == {"method": "spawn", "total": 90}


@pytest.mark.timeout(120)
def test_channel_ends_move_between_spawned_children(tmp_path):
    got = run_case(tmp_path, """
        csp.set_start_method("spawn")
        ch = csp.Channel()
        report(values=csp.Parallel(ends_sender(ch.writer()), ends_user(ch.reader())))
    """)
    assert got["values"] == [None, 10]


@pytest.mark.timeout(120)
def test_spawned_child_exception_and_crash(tmp_path):
    got = run_case(tmp_path, """
        csp.set_start_method("spawn")
        ch = csp.Channel()
        try:
            csp.Parallel(boom(ch.reader()), reader_alone(ch.reader()))
        except Boom as exc:
            raised = [type(exc).__name__, str(exc), "Traceback" in str(exc.__cause__)]
        ch = csp.Channel()
        try:
            csp.Parallel(dies(ch.writer()), reader_alone(ch.reader()))
        except csp.ProcessCrashed as exc:
            crashed = str(exc)
        report(raised=raised, crashed=crashed)
    """)
    assert got["raised"] == ["Boom", "from a spawned child", True]
    assert "exited with code 7" in got["crashed"]


@pytest.mark.timeout(120)
def test_deadlock_is_detected_across_spawned_children(tmp_path):
    got = run_case(tmp_path, """
        csp.set_start_method("spawn")
        ch = csp.Channel()
        try:
            csp.Parallel(reader_alone(ch.reader()), reader_alone(ch.reader()))
        except Exception as exc:
            report(error=type(exc).__name__, text=str(exc))
    """)
    assert got["error"] == "DeadlockError", got


@pytest.mark.timeout(120)
def test_start_method_from_the_environment(tmp_path):
    got = run_case(tmp_path, """
        a, b = csp.Parallel(pid(), pid())
        report(method=csp.get_start_method())
    """, env={"PYCSP_START_METHOD": "spawn"})
    assert got == {"method": "spawn"}


@pytest.mark.timeout(120)
def test_a_process_function_that_cannot_be_pickled_fails_at_parallel(tmp_path):
    got = run_case(tmp_path, """
        csp.set_start_method("spawn")
        local = csp.process(lambda: 1)
        try:
            csp.Parallel(local())
        except Exception as exc:
            error = type(exc).__name__
        ch = csp.Channel()
        values = csp.Parallel(producer(ch.writer(), 3), consumer(ch.reader()))
        report(error=error, values=values)
    """)
    assert got["error"] in ("PicklingError", "AttributeError", "TypeError")
    assert got["values"] == [None, 3]


@pytest.mark.timeout(120)
def test_spawn_from_several_threads_at_once(tmp_path):
    got = run_case(tmp_path, """
        import threading
        csp.set_start_method("spawn")
        outs = [[] for _ in range(3)]

        def worker(k):
            for i in range(4):
                try:
                    outs[k].append(csp.Parallel(pid(), pid()))
                except Exception as exc:
                    outs[k].append(repr(exc))

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        import csp_ext, time
        # A thread stops counting as running when its OS thread has ended,
        # a moment after join() returns.
        give_up = time.monotonic() + 10
        while csp_ext.shm_stats()["n_active"] > 1 and time.monotonic() < give_up:
            time.sleep(0.01)
        report(errors=[o for out in outs for o in out if isinstance(o, str)],
               runs=sum(len(out) for out in outs), n_active=csp_ext.shm_stats()["n_active"])
    """)
    assert got == {"errors": [], "runs": 12, "n_active": 1}


def test_unknown_start_method_is_refused():
    import pycsp.processes as csp

    with pytest.raises(ValueError, match="fork, spawn"):
        csp.set_start_method("forkserver")
    assert csp.get_start_method() in ("fork", "spawn")
