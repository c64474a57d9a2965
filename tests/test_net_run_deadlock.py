"""A deadlock across the programs of a run (pycsp.net._quiescence): a program
and the nodes it started with @sshprocess, every process of them blocked on
channels or waiting for one another, raise DeadlockError instead of hanging;
a run that can go on is never taken as deadlocked.

The nodes run on this host (ssh_host="localhost" starts pycsp.net.node
without a launcher); tests/test_net_sshprocess.py runs one over ssh.  Each
case is a program of its own, from a file (a node loads the functions of its
process from there)."""
import os
import tempfile
import textwrap

import pytest

from conftest import run_script

pytest.importorskip("zmq")
pytestmark = pytest.mark.timeout(120)

PRELUDE = """
import os, sys, threading, time
import pycsp.net as pycsp

def watchdog(seconds):
    # A plain thread (no CSP): ends a program that hangs, saying so.
    def bark():
        time.sleep(seconds)
        print("HUNG", flush=True)
        os._exit(3)
    threading.Thread(target=bark, daemon=True).start()

@pycsp.sshprocess(ssh_host="localhost")
def remote_reader(cin, cout):
    try:
        cout(cin())
    except pycsp.DeadlockError:
        print("REMOTE DEADLOCK", file=sys.stderr, flush=True)
        raise

@pycsp.process
def local_reader(cin):
    return cin()
"""


def run_program(body, *, timeout=60, env=None, functions=""):
    # The node loads this file for its functions: the program runs only as __main__.
    main = "\nif __name__ == '__main__':\n" + textwrap.indent(textwrap.dedent(body), "    ")
    with tempfile.NamedTemporaryFile("w", suffix=".py", prefix="net_run_", delete=False) as f:
        f.write(PRELUDE + functions + main)
    try:
        return run_script(f"import runpy; runpy.run_path({f.name!r}, run_name='__main__')",
                          timeout=timeout, env=env)
    finally:
        os.unlink(f.name)


def test_a_deadlock_across_a_program_and_its_node_raises_in_both():
    """Before, the program hung: its wait on a channel that the node may use,
    and the node's wait for the program's answer, counted as running."""
    result = run_program("""
        watchdog(40)
        a, b = pycsp.Channel("a"), pycsp.Channel("b")
        started = time.monotonic()
        try:
            pycsp.Parallel(remote_reader(+a, -b), local_reader(+b))
        except pycsp.DeadlockError as error:
            print("DEADLOCK", round(time.monotonic() - started, 1), flush=True)
            print("BLOCKED", sorted(e.name for e in error.blocked), flush=True)
    """)
    assert "HUNG" not in result.stdout, result.stdout + result.stderr
    assert "DEADLOCK" in result.stdout, result.stdout + result.stderr
    assert "REMOTE DEADLOCK" in result.stderr, result.stderr
    assert "BLOCKED ['local_reader', 'remote_reader']" in result.stdout, result.stdout


def test_a_deadlock_of_two_nodes_waiting_on_each_other_raises():
    """Nothing of the program itself waits on a channel: only its Parallel."""
    result = run_program("""
        watchdog(40)
        a, b = pycsp.Channel("a"), pycsp.Channel("b")
        try:
            pycsp.Parallel(remote_reader(+a, -b), remote_reader(+b, -a))
        except pycsp.DeadlockError as error:
            print("DEADLOCK", flush=True)
    """)
    assert "DEADLOCK" in result.stdout, result.stdout + result.stderr
    assert result.stderr.count("REMOTE DEADLOCK") == 2, result.stderr


ECHO = """
@pycsp.sshprocess(ssh_host="localhost")
def echo(cin, cout, n):
    for _ in range(n):
        cout(cin())

@pycsp.process
def ask(cout, cin, n):
    for i in range(n):
        cout(i)
        assert cin() == i
    return n
"""


def exchange(n):
    """A program's body: n messages to a node and back (ECHO)."""
    return f"""
        watchdog(50)
        a, b = pycsp.Channel("a"), pycsp.Channel("b")
        p = ask(-a, +b, {n})
        pycsp.Parallel(echo(+a, -b, {n}), p)
        print("ECHO", p.return_value, flush=True)
    """


def test_a_deadlock_after_a_node_that_ended_is_still_seen():
    """A node that talked with the program and ended leaves its last counts
    there (else the program's counts of messages with it would never balance
    again, and no later deadlock of the run would be seen)."""
    result = run_program(functions=ECHO, body=exchange(50) + """
        c, d = pycsp.Channel("c"), pycsp.Channel("d")
        try:
            pycsp.Parallel(remote_reader(+c, -d), local_reader(+d))
        except pycsp.DeadlockError:
            print("DEADLOCK", flush=True)
    """)
    assert "ECHO 50" in result.stdout and "DEADLOCK" in result.stdout, \
        result.stdout + result.stderr


SLOW = """
@pycsp.sshprocess(ssh_host="localhost")
def slow_writer(cout, seconds):
    time.sleep(seconds)  # busy: not blocked on a channel
    cout("late")

@pycsp.sshprocess(ssh_host="localhost")
def timed_reader(cin, cout):
    while True:  # waits with a deadline: never blocked for good
        i, msg = pycsp.AltSelect(pycsp.InputGuard(cin), pycsp.TimeoutGuard(seconds=0.05))
        if msg is not None:
            cout(msg)
            return
"""


def test_a_run_that_goes_on_is_not_taken_for_a_deadlock():
    """A node busy for seconds, and one polling with a timeout, while the
    program waits on channels: a second or more of quiet each way."""
    result = run_program(functions=SLOW, body="""
        watchdog(50)
        a, b, c = pycsp.Channel("a"), pycsp.Channel("b"), pycsp.Channel("c")
        pycsp.Parallel(slow_writer(-a, 3.0), local_reader(+a))
        print("SLOW OK", flush=True)
        pycsp.Parallel(timed_reader(+b, -c), local_reader(+c),
                       pycsp.Process(lambda cout: (time.sleep(3.0), cout("x")), -b))
        print("TIMED OK", flush=True)
    """)
    assert "SLOW OK" in result.stdout and "TIMED OK" in result.stdout, \
        result.stdout + result.stderr




def test_a_message_in_flight_keeps_the_run_going():
    """Many short exchanges between the program and a node: between two of
    them every process may be waiting while a message is on its way."""
    result = run_program(functions=ECHO, body=exchange(3000))
    assert "ECHO 3000" in result.stdout, result.stdout + result.stderr


def test_an_open_run_is_never_taken_for_a_deadlock(tmp_path):
    """With a key file, programs started separately may join: a wait on a
    channel they may use can end from there."""
    key_file = tmp_path / "run.key"
    run_script(f"from pycsp.net.keys import main; main(['new', {str(key_file)!r}])")
    result = run_program("""
        watchdog(8)
        a, b = pycsp.Channel("a"), pycsp.Channel("b")
        pycsp.Parallel(remote_reader(+a, -b), local_reader(+b))
    """, env={"PYCSP_NET_KEY_FILE": str(key_file)})
    assert "HUNG" in result.stdout, result.stdout + result.stderr
