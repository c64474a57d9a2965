"""Signal handlers while a remote operation waits (pyzmq runs them inside its calls, so
inside that wait): a handler may use channels, of the same home too; a handler that
raises takes the operation back at its home (CANCEL), as pycsp.processes withdraws a
blocked operation's offers, so no message is lost to a signal.  Each test failed before
the sixteenth session's fixes.  Hand-played homes for the same: test_net_link.py."""
import os
import textwrap

import pytest
from net_support import finish, run_peer, start_home, stop, values

pytestmark = pytest.mark.timeout(90)

_INJECT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "net_inject")

_NAP = """
    import time
    @pycsp.io
    def nap(seconds):
        time.sleep(seconds)
"""

# A and B fed by two processes of the home once the other program wrote GO twice,
# A's message after A_DELAY s, B's after B_DELAY s; IDLE is never written.
TWO_FEEDS = _NAP + """
    A, B, GO = pycsp.Channel("A"), pycsp.Channel("B"), pycsp.Channel("GO", buffer=2)
    IDLE = pycsp.Channel("IDLE")
    print("PORT", A.address[1], flush=True)

    @pycsp.process
    def feed(go, cout, delay, msg):
        go()
        nap(delay)
        cout(msg)

    pycsp.Parallel(feed(+GO, -A, {a_delay}, "for the interrupted"),
                   feed(+GO, -B, {b_delay}, "for the handler"))
"""

# A fed 1, then 2, NAP s after the other program wrote GO.
FEED_AFTER_GO = _NAP + """
    A, GO = pycsp.Channel("A"), pycsp.Channel("GO")
    print("PORT", A.address[1], flush=True)

    @pycsp.process
    def feed(go, cout):
        go()
        nap({nap})
        cout(1)
        cout(2)

    pycsp.Parallel(feed(+GO, -A))
"""

# The other program's ends of A and GO; SIGALRM raises KeyboardInterrupt.
ENDS = """
    import signal
    a_in = +pycsp.Channel("A", connect=("127.0.0.1", PORT))
    go = -pycsp.Channel("GO", connect=("127.0.0.1", PORT))
    signal.signal(signal.SIGALRM, signal.default_int_handler)
"""


def joined(*parts):
    """Program parts, each indented its own way, as one program."""
    return "".join(textwrap.dedent(part) for part in parts)


def run_against(home, peer, key_file):
    """Run ``peer`` (after ENDS) against the home program ``home``; the peer's output."""
    proc, port = start_home(home, key_file)
    try:
        out = run_peer(joined(ENDS, peer), key_file, port, timeout=30)
        code, _, err = finish(proc)
        assert code == 0, err
        return out
    finally:
        stop(proc)


@pytest.mark.parametrize("interrupted", [
    "a_in()",
    "pycsp.AltSelect(pycsp.InputGuard(a_in), pycsp.InputGuard(idle_in))[1]",
], ids=["read", "alternation"])
def test_a_signal_handler_may_use_the_home_that_the_interrupted_wait_is_on(key_file,
                                                                           interrupted):
    """The handler's own read of another channel of that home must not take, and drop,
    the reply (or the home's claim) that the interrupted operation waits for: here it
    comes while the handler waits, and the interrupted operation still gets it, as on
    pycsp.processes (its wait used to end only with the home)."""
    out = run_against(TWO_FEEDS.format(a_delay=0.6, b_delay=1.0), f"""
        b_in = +pycsp.Channel("B", connect=("127.0.0.1", PORT))
        idle_in = +pycsp.Channel("IDLE", connect=("127.0.0.1", PORT))
        got = []

        def handler(signum, frame):
            got.append(("handler", b_in()))

        signal.signal(signal.SIGALRM, handler)
        go("go")
        go("go")
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        got.append(("interrupted", {interrupted}))
        print("GOT", got, flush=True)
    """, key_file)
    assert values(out, "GOT") == [[("handler", "for the handler"),
                                   ("interrupted", "for the interrupted")]]


# The read of A that the alarm interrupts after ALARM s (a handler raising CAUGHT),
# then two more reads.
INTERRUPTED_READ = """
    go("go")
    signal.setitimer(signal.ITIMER_REAL, {alarm})
    try:
        a_in()
        print("NOT INTERRUPTED", flush=True)
    except {caught}:
        pass
    print("GOT", [a_in(), a_in()], flush=True)
"""

TIMED_OUT = """
    def timed_out(signum, frame):
        raise TimeoutError("no message within 0.3 s")

    signal.signal(signal.SIGALRM, timed_out)
"""


@pytest.mark.parametrize("handler, caught", [("", "KeyboardInterrupt"),
                                             (TIMED_OUT, "TimeoutError")],
                         ids=["ctrl_c", "timeout_error"])
def test_a_remote_read_that_a_signal_handler_interrupts_is_withdrawn_at_its_home(
        key_file, handler, caught):
    """Ctrl-C in a remote read that the program survives: the next message goes to the
    next read (the home used to keep the read, and the message it took was dropped
    with its reply).  The same for the signal.alarm idiom, a handler that raises
    TimeoutError, which a request raises itself too."""
    out = run_against(FEED_AFTER_GO.format(nap=0.6), joined(
        handler, INTERRUPTED_READ.format(alarm=0.3, caught=caught)), key_file)
    assert values(out, "GOT") == [[1, 2]], out


def test_a_read_completed_by_its_worker_before_its_cancel_keeps_its_message(
        key_file, monkeypatch):
    """The home's worker took message 1 for the read, and its reply still waited to be
    sent when the CANCEL came: too late to withdraw (it used to be answered CANCELLED,
    and 1 was lost); 1 is the end's next read's."""
    monkeypatch.syspath_prepend(_INJECT)  # the home's agent hands its replies back late
    monkeypatch.setenv("PYCSP_TEST_HANDBACK_DELAY", "1.0")
    proc, port = start_home(FEED_AFTER_GO.format(nap=0.3), key_file)
    monkeypatch.delenv("PYCSP_TEST_HANDBACK_DELAY")
    try:
        # 1 taken at 0.3 s, its reply sent at 1.3 s
        peer = joined(ENDS, INTERRUPTED_READ.format(alarm=0.8, caught="KeyboardInterrupt"))
        out = run_peer(peer, key_file, port, timeout=30)
        assert values(out, "GOT") == [[1, 2]], out
        code, _, err = finish(proc)
        assert code == 0, err
    finally:
        stop(proc)


def test_a_remote_write_that_a_signal_handler_interrupts_is_withdrawn_at_its_home(key_file):
    """The message an interrupted write offered is never taken (it used to be delivered
    after the writer had seen KeyboardInterrupt)."""
    proc, port = start_home(joined(_NAP, """
        A, GO = pycsp.Channel("A"), pycsp.Channel("GO")
        print("PORT", A.address[1], flush=True)

        @pycsp.process
        def drain(go, cin):
            go()
            nap(0.6)  # the other program's write was interrupted at 0.3 s
            first = cin()
            g, more = pycsp.AltSelect(pycsp.InputGuard(cin), pycsp.TimeoutGuard(0.5))
            return [first, more]

        print("GOT", pycsp.Parallel(drain(+GO, +A))[0], flush=True)
    """), key_file)
    try:
        run_peer("""
            import signal
            a_out = -pycsp.Channel("A", connect=("127.0.0.1", PORT))
            go = -pycsp.Channel("GO", connect=("127.0.0.1", PORT))
            signal.signal(signal.SIGALRM, signal.default_int_handler)
            go("go")
            signal.setitimer(signal.ITIMER_REAL, 0.3)
            try:
                a_out("interrupted")
            except KeyboardInterrupt:
                pass
            a_out("after")
        """, key_file, port, timeout=30)
        code, out, err = finish(proc)
        assert code == 0, err
        assert values(out, "GOT") == [["after", None]], out
    finally:
        stop(proc)


def test_an_interrupted_read_queued_behind_another_threads_read_is_withdrawn_at_once(
        key_file):
    """Two threads read one remote end: the home serves their reads in order, so the
    main thread's waits behind the other thread's.  Interrupted, it is withdrawn at
    once (not when the read before it completes, which here waits for the main
    thread itself: that would never end), and each message goes to a read."""
    out = run_against(FEED_AFTER_GO.format(nap=0), """
        import threading, time
        first = []
        other = threading.Thread(target=lambda: first.append(a_in()))
        other.start()
        time.sleep(0.3)  # its read waits at the home
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        try:
            a_in()
            print("NOT INTERRUPTED", flush=True)
        except KeyboardInterrupt:
            pass
        go("go")
        other.join()
        print("GOT", [first[0], a_in()], flush=True)
    """, key_file)
    assert values(out, "GOT") == [[1, 2]], out


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
        run_peer(joined(ENDS, """
            import threading, time
            other = threading.Thread(target=a_in)
            other.start()
            time.sleep(0.3)  # its read waits in the join's worker
            signal.setitimer(signal.ITIMER_REAL, 0.3)
            try:
                a_in.retire()  # waits behind that read
            except KeyboardInterrupt:
                pass
            go("go")
            other.join()
        """), key_file, port, timeout=30)
        code, out, err = finish(proc, timeout=15)
        assert values(out, "RETIRED") == [True], out + err
    finally:
        stop(proc)


def test_a_reply_lost_to_a_handler_in_its_receive_leaves_nothing_waiting(key_file):
    """A handler that raises inside pyzmq's receive of a read's reply (the frame taken
    off the socket already): the CANCEL that follows finds the read answered, and the
    home's answer to the CANCEL ends the wait (it used to wait for ever for a reply
    that had come).  That message is lost with the frame (README); the next read gets
    the next one."""
    proc, port = start_home("""
        A = pycsp.Channel("A", buffer=2)
        print("PORT", A.address[1], flush=True)
        cout = -A
        cout("lost with its frame")
        cout("next")
        (+pycsp.Channel("DONE"))()
    """, key_file)
    try:
        out = run_peer("""
            from pycsp.net import _remote
            a_in = +pycsp.Channel("A", connect=("127.0.0.1", PORT))
            done = -pycsp.Channel("DONE", connect=("127.0.0.1", PORT))
            received, interrupt = _remote._recv, [True]

            def receive_then_interrupt(socket, flags, copy):
                frame = received(socket, flags, copy)
                if interrupt:  # as a handler that pyzmq ran once the frame was taken
                    interrupt.clear()
                    raise KeyboardInterrupt
                return frame

            _remote._recv = receive_then_interrupt
            try:
                a_in()
                print("NOT INTERRUPTED", flush=True)
            except KeyboardInterrupt:
                pass
            _remote._recv = received
            print("GOT", repr(a_in()), flush=True)
            done("done")
        """, key_file, port, timeout=30)
        assert values(out, "GOT") == ["next"], out
        code, _, err = finish(proc)
        assert code == 0, err
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
