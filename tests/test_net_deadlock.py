"""Deadlock detection in a program that homes pycsp.net channels.

The program's agent serves other programs: it counts as running only while
it serves a request, never while it waits for one.  A process blocked on a
channel that other programs may use (homed here, or whose end went to
another program) counts as running: a party elsewhere may still come.  So
a deadlock among the program's own channels raises DeadlockError, as under
pycsp.processes, and a wait that another program can end never does."""
import textwrap

import pytest
from net_support import finish, run_peer, start_home, stop, values

pytestmark = pytest.mark.timeout(120)

# Two processes of the home that wait on each other over channels of its own.
CROSSED = textwrap.dedent("""
    @pycsp.process
    def crossed(cout, cin):
        cout(1)
        cin()

    x, y = pycsp.Channel(), pycsp.Channel()  # named, they would be homed
    try:
        pycsp.Parallel(crossed(-x, +y), crossed(-y, +x))
    except pycsp.DeadlockError as error:
        print("DEADLOCK", len(error.blocked), flush=True)
""")


def test_a_deadlock_among_its_own_channels_raises_and_the_home_serves_on(key_file):
    """Before, the agent counted as running for good: this program hung."""
    proc, _ = start_home(textwrap.dedent("""
        homed = pycsp.Channel("A")
        print("PORT", homed.address[1], flush=True)
    """) + CROSSED + textwrap.dedent("""
        # the agent's registry was not woken by the deadlock: it homes another
        print("HOMED", pycsp.Channel("B").address[1] > 0, flush=True)
    """), key_file)
    try:
        code, out, err = finish(proc, timeout=60)
        assert code == 0, err
        assert values(out, "DEADLOCK") == [2], out + err
        assert values(out, "HOMED") == [True]
    finally:
        stop(proc)


def test_a_wait_on_a_homed_channel_is_no_deadlock(key_file):
    """Every process of the home blocks, one of them on its homed channel; another
    program writes there a second later, and the home goes on."""
    proc, port = start_home("""
        homed = pycsp.Channel("A")
        print("PORT", homed.address[1], flush=True)

        @pycsp.process
        def forward(cin, cout):
            cout(cin())

        @pycsp.process
        def show(cin):
            print("GOT", repr(cin()), flush=True)

        inner = pycsp.Channel()
        pycsp.Parallel(forward(+homed, -inner), show(+inner))
    """, key_file)
    try:
        run_peer("""
            import time
            time.sleep(1.0)
            (-pycsp.Channel("A", connect=("127.0.0.1", PORT)))("hello")
        """, key_file, port)
        code, out, err = finish(proc, timeout=60)
        assert code == 0, err
        assert values(out, "GOT") == ["hello"]
    finally:
        stop(proc)


@pytest.mark.parametrize("send", ["write", "alternation"])
@pytest.mark.parametrize("buffer", [0, 1], ids=["rendezvous", "buffered"])
def test_a_channel_whose_end_went_to_another_program_is_no_deadlock(key_file, buffer, send):
    """The reader of a private channel waits; a sibling sends the channel's writer end
    through a homed channel (or leaves it in the homed channel's buffer) and ends.  The
    reader's channel is reachable from the other program from then on: the other
    program takes the end a second later and writes on it."""
    send_it = "box_out(cout)" if send == "write" else \
        "pycsp.AltSelect(pycsp.OutputGuard(box_out, cout))"
    proc, port = start_home(f"""
        import time
        box = pycsp.Channel("box", buffer={buffer})
        print("PORT", box.address[1], flush=True)

        @pycsp.process
        def wait_for_it(cin):
            print("GOT", repr(cin()), flush=True)

        @pycsp.process
        def send_end_away(box_out, cout):
            time.sleep(0.3)  # the reader waits already
            {send_it}

        private = pycsp.Channel()
        pycsp.Parallel(wait_for_it(+private), send_end_away(-box, -private))
    """, key_file)
    try:
        run_peer("""
            import time
            time.sleep(1.0)
            end = (+pycsp.Channel("box", connect=("127.0.0.1", PORT)))()
            time.sleep(1.0)
            end("from afar")
        """, key_file, port)
        code, out, err = finish(proc, timeout=60)
        assert code == 0, err
        assert values(out, "GOT") == ["from afar"]
    finally:
        stop(proc)


def test_an_end_in_the_buffer_of_a_channel_that_becomes_reachable_is_reachable(key_file):
    """The writer end of the waiting reader's channel sits in the buffer of a second
    private channel, whose reader end then goes to another program: that program reads
    the first end out of the buffer and writes on it."""
    proc, port = start_home("""
        import time
        box = pycsp.Channel("box")
        print("PORT", box.address[1], flush=True)

        @pycsp.process
        def wait_for_it(cin):
            print("GOT", repr(cin()), flush=True)

        @pycsp.process
        def send_ends_away(box_out, parcel_out, parcel_in, cout):
            time.sleep(0.3)  # the reader waits already
            parcel_out(cout)  # into the buffer
            box_out(parcel_in)

        private, parcel = pycsp.Channel(), pycsp.Channel(buffer=1)
        pycsp.Parallel(wait_for_it(+private),
                       send_ends_away(-box, -parcel, +parcel, -private))
    """, key_file)
    try:
        run_peer("""
            import time
            time.sleep(1.0)
            parcel_in = (+pycsp.Channel("box", connect=("127.0.0.1", PORT)))()
            time.sleep(1.0)
            parcel_in()("through two channels")
        """, key_file, port)
        code, out, err = finish(proc, timeout=60)
        assert code == 0, err
        assert values(out, "GOT") == ["through two channels"]
    finally:
        stop(proc)


def test_an_idle_worker_of_the_agent_does_not_hide_a_deadlock(key_file):
    """Another program's read waits at the home (a worker thread of the agent serves
    it) until a process of the home writes; the worker then waits for the next request,
    and a deadlock of the home's processes is found all the same."""
    proc, port = start_home(textwrap.dedent("""
        import time
        homed = pycsp.Channel("A")
        print("PORT", homed.address[1], flush=True)
        while homed.statistics()["blocked_readers"] == 0:  # the other program's read
            time.sleep(0.01)
        (-homed)("for the worker")
    """) + CROSSED, key_file)
    try:
        out = run_peer("""
            print("READ", repr((+pycsp.Channel("A", connect=("127.0.0.1", PORT)))()))
        """, key_file, port)
        assert values(out, "READ") == ["for the worker"]
        code, hout, err = finish(proc, timeout=60)
        assert code == 0, err
        assert values(hout, "DEADLOCK") == [2], hout + err
    finally:
        stop(proc)
