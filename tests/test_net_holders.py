"""pycsp.net where mobile ends, the agent's threads and node death meet: who holds a
join and who leaves it, when a process ends, a send fails or a process dies.  Two or
three programs on 127.0.0.1 (net_support)."""
import gc
import sys
import threading
import time

import pytest
from conftest import run_script
from net_support import finish, peer_source, run_peer, start_home, stop, values

pytestmark = pytest.mark.timeout(90)


def test_a_csp_process_that_joined_and_ended_without_retiring_leaves_the_home(key_file):
    """The join is made inside a CSP process of the other program (a forked child, which
    ends by os._exit: no atexit handler); it ends without retiring its end.  It says
    BYE to the home, and it must also say LEAVE: else the home waits its whole linger
    (the default, 10 s) for a party that is gone."""
    proc, port = start_home("""
        A = pycsp.Channel("A")
        print("PORT", A.address[1], flush=True)
        cin = +A
        print("GOT", cin(), flush=True)
    """, key_file, linger=None)
    try:
        run_peer("""
            @pycsp.process
            def producer():
                cout = pycsp.Channel("A", connect=("127.0.0.1", PORT)).writer()
                cout(42)
            pycsp.Parallel(producer())
        """, key_file, port)
        t0 = time.monotonic()
        code, out, err = finish(proc)
        assert code == 0, err
        assert values(out, "GOT") == [42]
        assert time.monotonic() - t0 < 5, err  # not the default linger, 10 s
    finally:
        stop(proc)


@pytest.mark.timeout(60)
def test_declaring_a_process_dead_while_the_registry_thread_adopts_an_end():
    """The agent's main thread declares a peer dead (it walks the joins) while its
    registry thread adopts an end that a process of the program sends away (it adds a
    join): the walk must not fail ("dictionary changed size during iteration"), which
    would end the agent's loop, and with it every channel it homes."""
    from pycsp.net import _agent
    from pycsp.net._liveness import Peer, PeerWatch

    agent = _agent.Agent.__new__(_agent.Agent)
    agent.watch, agent.channels = PeerWatch(1.0), {}
    agent.arms = _agent.Arms(agent)
    agent.joins = {number: _agent._Join(None, None) for number in range(1, 300_001)}
    adding = threading.Event()
    done = threading.Event()

    def adopt_ends():
        number = len(agent.joins)
        while not done.is_set():
            number += 1
            agent.joins[number] = _agent._Join(None, None)
            adding.set()

    def switch_threads(phase, info):
        time.sleep(0)  # a collection during the walk lets the adopter run (as a finalizer may)

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    gc.callbacks.append(switch_threads)
    adopter = threading.Thread(target=adopt_ends, daemon=True)
    adopter.start()
    try:
        adding.wait(10)
        for _ in range(5):
            agent.declare_dead(Peer(7, 1234, 0.0))
    finally:
        gc.callbacks.remove(switch_threads)
        done.set()
        adopter.join(10)
        sys.setswitchinterval(switch)


def test_a_csp_process_that_handed_its_end_to_a_sibling_does_not_leave_it(key_file):
    """A CSP process joins, sends its end to a sibling over a channel of their program,
    and ends: the sibling holds the join now, so the first one's end must not tell the
    home that the program left it (the home, which ended meanwhile, would stop serving
    the sibling)."""
    proc, port = start_home("""
        import time
        A = pycsp.Channel("A", buffer=5)
        print("PORT", A.address[1], flush=True)
        time.sleep(1.0)  # the other program joined by now; then serve it while it holds
    """, key_file, linger=20.0)
    try:
        out = run_peer("""
            import time
            @pycsp.process
            def joiner(hand_on):
                hand_on(pycsp.Channel("A", connect=("127.0.0.1", PORT)).writer())
            @pycsp.process
            def sibling(handed):
                cout = handed()
                time.sleep(2.5)  # the joiner ended, and the home's program too
                cout(42)
                print("WROTE", 42, flush=True)
                cout.retire()
            L = pycsp.Channel()
            pycsp.Parallel(joiner(-L), sibling(+L))
        """, key_file, port)
        assert values(out, "WROTE") == [42]
        code, out, err = finish(proc)
        assert code == 0, err
    finally:
        stop(proc)


def test_a_process_killed_while_holding_an_end_its_sibling_joined_poisons_the_join(key_file):
    """A CSP process joins, hands its end to a sibling over a channel of their program and
    ends normally (BYE); the sibling writes once and is killed (-9) between writes.  The
    home's reader waits for a second message: the join's holder is dead, so its channel
    must be poisoned within the heartbeat timeout, as when the one that joined is killed
    (the sibling holds the join now: its death counts, not the joiner's BYE)."""
    heartbeat = (0.25, 2.0)
    proc, port = start_home("""
        A = pycsp.Channel("A")
        print("PORT", A.address[1], flush=True)
        cin = +A
        print("GOT", cin(), flush=True)
        try:
            print("GOT", cin(), flush=True)
        except pycsp.ChannelPoisonException:
            print("POISONED", 1, flush=True)
    """, key_file, heartbeat=heartbeat)
    try:
        run_script(peer_source("""
            import os, signal, time
            @pycsp.process
            def joiner(hand_on):
                hand_on(pycsp.Channel("A", connect=("127.0.0.1", PORT)).writer())
            @pycsp.process
            def sibling(handed):
                cout = handed()
                time.sleep(1.0)  # the joiner ended (and said BYE) by now
                cout(1)
                os.kill(os.getpid(), signal.SIGKILL)
            L = pycsp.Channel()
            pycsp.Parallel(joiner(-L), sibling(+L))
        """, key_file, port, heartbeat=heartbeat), timeout=30)
        code, out, err = finish(proc, timeout=20)
        assert values(out, "GOT") == [1]
        assert values(out, "POISONED") == [1], err
    finally:
        stop(proc)


def test_an_end_whose_sending_failed_is_still_left_at_its_home(key_file):
    """A program tries to send its end of A (homed in one program) in a message on a
    poisoned channel C (homed in another): the write raises, nobody received the end, so
    the program still holds it and, ending without retiring it, must tell A's home
    (LEAVE), which would else serve it for its whole linger (the default, 10 s)."""
    proc, port = start_home("""
        import time
        A = pycsp.Channel("A")
        print("PORT", A.address[1], flush=True)
        time.sleep(1.5)  # the other program joined A by now
    """, key_file, linger=None)
    carrier_home, carrier_port = start_home("""
        import time
        C = pycsp.Channel("C")
        print("PORT", C.address[1], flush=True)
        C.poison()
        time.sleep(1.5)
    """, key_file)
    try:
        out = run_peer(f"""
            cout = pycsp.Channel("A", connect=("127.0.0.1", PORT)).writer()
            carrier = pycsp.Channel("C", connect=("127.0.0.1", {carrier_port})).writer()
            try:
                carrier(cout)
            except pycsp.ChannelPoisonException:
                print("REFUSED", 1, flush=True)
        """, key_file, port)
        assert values(out, "REFUSED") == [1]
        t0 = time.monotonic()
        code, out, err = finish(proc)
        assert code == 0, err
        assert time.monotonic() - t0 < 5, err  # not the default linger, 10 s
        assert finish(carrier_home)[0] == 0
    finally:
        stop(proc)
        stop(carrier_home)


def test_an_end_sent_back_home_in_a_refused_write_is_still_held_by_its_sender(key_file):
    """A program tries to send its end of A back to A's home, on a poisoned channel C of
    the same home: the write is refused, so the program still holds the end, and the
    home (whose own program ended meanwhile) must go on serving it within its linger.
    The home's agent unpickled the message (it reclaims the end there): only a write
    that a reader took hands the end back."""
    proc, port = start_home("""
        import time
        A = pycsp.Channel("A", buffer=1)
        C = pycsp.Channel("C")
        print("PORT", A.address[1], flush=True)
        C.poison()
        time.sleep(1.5)  # the other program joined A by now
    """, key_file, linger=20.0)
    try:
        out = run_peer("""
            import time
            cout = pycsp.Channel("A", connect=("127.0.0.1", PORT)).writer()
            carrier = pycsp.Channel("C", connect=("127.0.0.1", PORT)).writer()
            try:
                carrier(cout)
            except pycsp.ChannelPoisonException:
                print("REFUSED", 1, flush=True)
            time.sleep(2.5)  # the home's program ended by now; its agent serves on
            cout(42)
            print("WROTE", 42, flush=True)
            cout.retire()
        """, key_file, port)
        assert values(out, "REFUSED") == [1]
        assert values(out, "WROTE") == [42]
        code, out, err = finish(proc)
        assert code == 0, err
    finally:
        stop(proc)
