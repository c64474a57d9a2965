"""Signal handlers that raise while a remote operation waits: the cases a review found
(each failed on f97806d).  The simpler ones are in test_net_channels.py (handlers that
use channels, reads and writes withdrawn) and test_net_link.py (hand-played homes)."""
import os

import pytest
from net_support import finish, run_peer, start_home, stop, values

pytestmark = pytest.mark.timeout(90)

_INJECT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "net_inject")

FEED_AFTER_GO = """
    import time
    A, GO = pycsp.Channel("A"), pycsp.Channel("GO")
    print("PORT", A.address[1], flush=True)

    @pycsp.io
    def nap(seconds):
        time.sleep(seconds)

    @pycsp.process
    def feed(go, cout):
        go()
        nap({nap})
        cout(1)
        cout(2)

    pycsp.Parallel(feed(+GO, -A))
"""


def test_a_read_completed_by_its_worker_before_its_cancel_keeps_its_message(
        key_file, monkeypatch):
    """The home's worker took message 1 for the read, and its reply still waited to be
    sent when the CANCEL came: the read is too late to withdraw (it used to be answered
    CANCELLED, and 1 was lost); 1 is the end's next read's."""
    monkeypatch.syspath_prepend(_INJECT)
    monkeypatch.setenv("PYCSP_TEST_HANDBACK_DELAY", "1.0")
    proc, port = start_home(FEED_AFTER_GO.format(nap=0.3), key_file)
    monkeypatch.delenv("PYCSP_TEST_HANDBACK_DELAY")
    try:
        out = run_peer("""
            import signal
            a_in = +pycsp.Channel("A", connect=("127.0.0.1", PORT))
            go = -pycsp.Channel("GO", connect=("127.0.0.1", PORT))
            signal.signal(signal.SIGALRM, signal.default_int_handler)
            go("go")
            signal.setitimer(signal.ITIMER_REAL, 0.8)  # 1 taken at 0.3 s, its reply at 1.3 s
            try:
                a_in()
                print("NOT INTERRUPTED", flush=True)
            except KeyboardInterrupt:
                pass
            print("GOT", [a_in(), a_in()], flush=True)
        """, key_file, port, timeout=30)
        assert values(out, "GOT") == [[1, 2]], out
        code, _, err = finish(proc)
        assert code == 0, err
    finally:
        stop(proc)


def test_a_read_that_a_handler_times_out_with_timeout_error_is_withdrawn(key_file):
    """The signal.alarm idiom: the handler raises TimeoutError, which a request raises
    itself too; the read is withdrawn all the same (it used to be left at the home,
    which gave it message 1, lost)."""
    proc, port = start_home(FEED_AFTER_GO.format(nap=0.6), key_file)
    try:
        out = run_peer("""
            import signal
            a_in = +pycsp.Channel("A", connect=("127.0.0.1", PORT))
            go = -pycsp.Channel("GO", connect=("127.0.0.1", PORT))

            def timed_out(signum, frame):
                raise TimeoutError("no message within 0.3 s")

            signal.signal(signal.SIGALRM, timed_out)
            go("go")
            signal.setitimer(signal.ITIMER_REAL, 0.3)
            try:
                a_in()
                print("NOT TIMED OUT", flush=True)
            except TimeoutError:
                pass
            print("GOT", [a_in(), a_in()], flush=True)
        """, key_file, port, timeout=30)
        assert values(out, "GOT") == [[1, 2]], out
        code, _, err = finish(proc)
        assert code == 0, err
    finally:
        stop(proc)


def test_a_retire_interrupted_behind_another_threads_read_still_retires(key_file):
    """A retire waits at the home behind another thread's read of the same end; a
    handler raises meanwhile.  The retire is not taken back (the end counts as retired
    here already), and it happens: the home's writer gets ChannelRetireException (the
    home used to drop the retire with the join, and the writer waited for ever)."""
    proc, port = start_home("""
        A, GO = pycsp.Channel("A"), pycsp.Channel("GO")
        print("PORT", A.address[1], flush=True)

        @pycsp.process
        def feed(go, cout):
            go()
            cout(1)  # for the other thread's read
            try:
                cout(2)
                print("TAKEN", True, flush=True)
            except pycsp.ChannelRetireException:
                print("RETIRED", True, flush=True)

        pycsp.Parallel(feed(+GO, -A))
    """, key_file)
    try:
        run_peer("""
            import signal, threading, time
            a_in = +pycsp.Channel("A", connect=("127.0.0.1", PORT))
            go = -pycsp.Channel("GO", connect=("127.0.0.1", PORT))
            other = threading.Thread(target=a_in)
            other.start()
            time.sleep(0.3)  # its read waits in the join's worker
            signal.signal(signal.SIGALRM, signal.default_int_handler)
            signal.setitimer(signal.ITIMER_REAL, 0.3)
            try:
                a_in.retire()  # waits behind that read
            except KeyboardInterrupt:
                pass
            go("go")
            other.join()
        """, key_file, port, timeout=30)
        code, out, err = finish(proc, timeout=15)
        assert values(out, "RETIRED") == [True], out + err
    finally:
        stop(proc)


def test_the_homes_agent_leaves_ctrl_c_to_its_program(key_file):
    """A terminal's Ctrl-C reaches the whole foreground process group, the home's agent
    too: the agent ignores it, so a program that goes on after KeyboardInterrupt still
    serves the other programs (its agent used to die: their channels were lost)."""
    proc, port = start_home("""
        import os, signal, subprocess, time
        A = pycsp.Channel("A")
        print("PORT", A.address[1], flush=True)
        listed = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(os.getpid())],
                                capture_output=True, text=True).stdout
        agents = [int(line.split()[0]) for line in listed.splitlines() if "_agent" in line]
        try:
            for pid in agents + [os.getpid()]:  # as a terminal's Ctrl-C (its whole group)
                os.kill(pid, signal.SIGINT)
            time.sleep(1)
        except KeyboardInterrupt:
            print("INTERRUPTED", True, flush=True)
        print("ALIVE", [os.waitpid(a, os.WNOHANG) == (0, 0) for a in agents], flush=True)
        print("GOT", repr((+A)()), flush=True)
    """, key_file)
    try:
        run_peer("""
            (-pycsp.Channel("A", connect=("127.0.0.1", PORT)))("after Ctrl-C")
        """, key_file, port, timeout=30)
        code, out, err = finish(proc)
        assert code == 0, err
        assert values(out, "INTERRUPTED") == [True]
        assert values(out, "ALIVE") == [[True]], out + err
        assert values(out, "GOT") == ["after Ctrl-C"]
    finally:
        stop(proc)
