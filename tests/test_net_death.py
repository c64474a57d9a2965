"""A process of another program that dies or goes silent, seen from a channel's home
(issue #16 item 3): killed with -9, its joins' channels are poisoned within the
heartbeat timeout; stopped past the timeout and continued, it is fenced; alive but
idle, it is not declared dead.  Two programs on 127.0.0.1, with short heartbeats."""
import ast
import os
import queue
import signal
import threading
import time

import pytest
from conftest import start_script
from net_support import finish, new_key_file, peer_source, start_home, stop

pytestmark = pytest.mark.timeout(90)

INTERVAL, TIMEOUT = 0.25, 2.0
HEARTBEAT = (INTERVAL, TIMEOUT)
# What a detection may take beyond the timeout on two loaded cores.
MARGIN = 6.0


@pytest.fixture
def key_file(tmp_path):
    return new_key_file(tmp_path)


class Lines:
    """A program's stdout (or stderr) lines as they come, waited for with a timeout."""

    def __init__(self, proc, stream="stdout"):
        self.proc, self.lines, self.seen = proc, queue.Queue(), []
        threading.Thread(target=self._read, args=(getattr(proc, stream),), daemon=True).start()

    def _read(self, stream):
        for line in stream:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for_text(self, text, timeout=30):
        """The first line not taken yet that holds ``text``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no line with {text!r} within {timeout} s; got {self.seen}")
            if line is None:
                pytest.fail(f"the program ended before printing {text!r}; got {self.seen}")
            self.seen.append(line)
            if text in line:
                return line

    def wait_for(self, tag, timeout=30):
        """The value printed on the first line ``TAG value`` not taken yet."""
        line = self.wait_for_text(tag + " ", timeout)
        while not line.startswith(tag + " "):
            line = self.wait_for_text(tag + " ", timeout)
        return ast.literal_eval(line.split(" ", 1)[1])

    def rest(self, timeout=30):
        """(returncode, stdout lines not read yet, stderr) once the program ended."""
        self.proc.wait(timeout)
        out = []
        while (line := self.lines.get(timeout=timeout)) is not None:
            out.append(line)
        return self.proc.returncode, "".join(out), self.proc.stderr.read()


def start_peer(body, key_file, port):
    return start_script(peer_source(body, key_file, port, heartbeat=HEARTBEAT))


POISONED_READER = """
    import time
    A = pycsp.Channel("A")
    print("PORT", A.address[1], flush=True)
    @pycsp.process
    def reader(cin):
        got = []
        try:
            while True:
                got.append(cin())
                time.sleep(0.01)
        except pycsp.ChannelPoisonException:
            return got, time.monotonic()
    got, when = pycsp.Parallel(reader(+A))[0]
    print("GOT", got, flush=True)
    print("POISONED_AT", when, flush=True)
"""


def test_a_program_killed_while_holding_a_join_poisons_the_channel_at_its_home(key_file):
    """The reader here has no writer but the other program's join: it would wait for
    ever once that program is killed, without the home's watch."""
    home, port = start_home(POISONED_READER, key_file, heartbeat=HEARTBEAT)
    peer = start_peer("""
        import time
        A = pycsp.Channel("A", connect=("127.0.0.1", PORT))
        cout = -A
        print("JOINED", True, flush=True)
        time.sleep(60)
    """, key_file, port)
    try:
        assert Lines(peer).wait_for("JOINED") is True
        time.sleep(0.5)
        killed_at = time.monotonic()
        peer.kill()
        lines = Lines(home)
        assert lines.wait_for("GOT") == []
        poisoned_at = lines.wait_for("POISONED_AT")
        code, _, err = lines.rest()
        assert code == 0, err
        assert poisoned_at - killed_at < TIMEOUT + MARGIN
        assert "declared dead" in err and "'A'" in err, err
    finally:
        stop(peer)
        stop(home)


def test_a_writer_killed_mid_stream_leaves_each_message_once_then_poison(key_file):
    """kill -9 while the writer streams (most often blocked in a write that the home
    holds): what the reader got is 0..k in order, nothing twice, then poison."""
    home, port = start_home(POISONED_READER, key_file, heartbeat=HEARTBEAT)
    peer = start_peer("""
        A = pycsp.Channel("A", connect=("127.0.0.1", PORT))
        cout = -A
        i = 0
        while True:
            cout(i)
            print("WROTE", i, flush=True)
            i += 1
    """, key_file, port)
    try:
        peer_lines = Lines(peer)
        while peer_lines.wait_for("WROTE") < 30:
            pass
        killed_at = time.monotonic()
        peer.kill()
        peer.wait(10)
        lines = Lines(home)
        got = lines.wait_for("GOT")
        poisoned_at = lines.wait_for("POISONED_AT")
        code, _, err = lines.rest()
        assert code == 0, err
        assert got == list(range(len(got))), got
        assert len(got) >= 31  # each write that returned was read
        assert poisoned_at - killed_at < TIMEOUT + MARGIN
    finally:
        stop(peer)
        stop(home)


def test_a_dead_writers_pending_message_is_never_taken(key_file, tmp_path):
    """The writer is killed while its write waits at the home for a reader; a reader
    that comes after the home declared the writer dead gets poison, not the message."""
    go = tmp_path / "go"
    home, port = start_home(f"""
        import os, time
        A = pycsp.Channel("A")
        print("PORT", A.address[1], flush=True)
        while not os.path.exists({str(go)!r}):
            time.sleep(0.05)
        try:
            print("READ", repr((+A)()), flush=True)
        except pycsp.ChannelPoisonException:
            print("READ", repr("poisoned"), flush=True)
    """, key_file, heartbeat=HEARTBEAT)
    peer = start_peer("""
        A = pycsp.Channel("A", connect=("127.0.0.1", PORT))
        cout = -A
        print("WRITING", True, flush=True)
        cout("from a dead writer")
        print("WROTE", True, flush=True)
    """, key_file, port)
    try:
        assert Lines(peer).wait_for("WRITING") is True
        time.sleep(0.5)  # the write waits at the home
        peer.kill()
        home_stderr = Lines(home, stream="stderr")
        assert "'A'" in home_stderr.wait_for_text("declared dead", timeout=TIMEOUT + MARGIN)
        go.touch()
        lines = Lines(home)
        assert lines.wait_for("READ") == "poisoned"
        assert home.wait(30) == 0, home_stderr.seen
    finally:
        stop(peer)
        stop(home)


def test_a_program_stopped_past_the_timeout_is_fenced_when_it_continues(key_file, tmp_path):
    """SIGSTOP: the home declares it dead and poisons its joins; SIGCONT: the home
    refuses it, and its operations on channels homed there raise ChannelLostException."""
    resume, done = tmp_path / "resume", tmp_path / "done"
    home, port = start_home(POISONED_READER + f"""
    import os
    while not os.path.exists({str(done)!r}):   # serve the fenced program until it is done
        time.sleep(0.05)
    """, key_file, heartbeat=HEARTBEAT)
    peer = start_peer(f"""
        import os, time
        A = pycsp.Channel("A", connect=("127.0.0.1", PORT))
        cout = -A
        print("JOINED", True, flush=True)
        while not os.path.exists({str(resume)!r}):
            time.sleep(0.05)
        time.sleep(1.0)  # heartbeats go out again, and the home answers them
        for what, op in (("WRITE", lambda: cout(1)), ("JOIN", lambda: A.writer()),
                         ("POISON_AND_RETIRE", lambda: (A.poison(), cout.retire()))):
            try:
                op()
                print(what, repr("done"), flush=True)
            except pycsp.ChannelLostException as exc:
                print(what, repr("fenced" if "fenced" in str(exc) else str(exc)), flush=True)
    """, key_file, port)
    try:
        peer_lines, lines = Lines(peer), Lines(home)
        assert peer_lines.wait_for("JOINED") is True
        stopped_at = time.monotonic()
        os.kill(peer.pid, signal.SIGSTOP)
        try:
            assert lines.wait_for("GOT") == []
            poisoned_at = lines.wait_for("POISONED_AT")
        finally:
            os.kill(peer.pid, signal.SIGCONT)
        resume.touch()
        assert peer_lines.wait_for("WRITE") == "fenced"
        assert peer_lines.wait_for("JOIN") == "fenced"
        # Poison and retire of a lost home do nothing, as for a home that ended.
        assert peer_lines.wait_for("POISON_AND_RETIRE") == "done"
        code, _, err = peer_lines.rest()
        assert code == 0, err
        done.touch()
        code, _, err = lines.rest()
        assert code == 0, err
        assert poisoned_at - stopped_at < TIMEOUT + MARGIN
    finally:
        for proc in (peer, home):
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
            stop(proc)


def test_a_program_alive_but_idle_is_not_declared_dead(key_file):
    """One end blocked in a read that the home serves (the first request of the CSP
    process that reads), another end unused, for three heartbeat timeouts: the home
    still counts the program alive."""
    home, port = start_home(f"""
        import time
        A = pycsp.Channel("A")
        B = pycsp.Channel("B")
        print("PORT", A.address[1], flush=True)
        cout, cin = -A, +B
        time.sleep({3 * TIMEOUT})
        cout("late")
        print("BACK", repr(cin()), flush=True)
    """, key_file, heartbeat=HEARTBEAT)
    peer = start_peer("""
        A = pycsp.Channel("A", connect=("127.0.0.1", PORT))
        B = pycsp.Channel("B", connect=("127.0.0.1", PORT))
        @pycsp.process
        def relay(cin, cout):
            got = cin()
            cout(got + " and back")
            return got
        print("READ", repr(pycsp.Parallel(relay(+A, -B))[0]), flush=True)
    """, key_file, port)
    try:
        code, out, err = finish(peer, timeout=60)
        assert code == 0, err
        assert "READ 'late'" in out
        code, out, err = finish(home, timeout=30)
        assert code == 0, err
        assert "BACK 'late and back'" in out
        assert "declared dead" not in err, err
    finally:
        stop(peer)
        stop(home)


def test_a_program_that_ends_normally_is_not_declared_dead(key_file):
    """Its CSP processes (forked children) and the program itself say goodbye: a
    channel whose joins they held without retiring is not poisoned afterwards."""
    home, port = start_home(f"""
        import time
        A = pycsp.Channel("A", buffer=10)
        print("PORT", A.address[1], flush=True)
        cin = +A
        print("FIRST", cin(), flush=True)
        time.sleep({2 * TIMEOUT + 1})
        print("SECOND", cin(), flush=True)
    """, key_file, heartbeat=HEARTBEAT)
    try:
        peer = start_peer("""
            A = pycsp.Channel("A", connect=("127.0.0.1", PORT))
            @pycsp.process
            def writer(channel, n):
                (-channel)(n)        # the child's own join, neither retired nor left
            pycsp.Parallel(writer(A, 1))
            pycsp.Parallel(writer(A, 2))
        """, key_file, port)
        code, _, err = finish(peer, timeout=60)
        assert code == 0, err
        code, out, err = finish(home, timeout=60)
        assert code == 0, err
        assert "FIRST 1" in out and "SECOND 2" in out, out
        assert "declared dead" not in err, err
    finally:
        stop(home)


def test_configure_refuses_heartbeat_settings_that_cannot_work():
    from conftest import run_script

    result = run_script("""
        import pycsp.net as pycsp
        for kwargs in ({"heartbeat_interval": 2, "heartbeat_timeout": 1},
                       {"heartbeat_timeout": 0.5}, {"heartbeat_interval": 0}):
            try:
                pycsp.configure(**kwargs)
                print("accepted", kwargs)
            except ValueError as e:
                print("ValueError", "heartbeat_interval" in str(e))
        pycsp.configure(heartbeat_interval=0.1, heartbeat_timeout=0.5)
        print("ok")
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:4] == ["ValueError True"] * 3 + ["ok"], result.stdout


def _port_line(proc):
    line = proc.stdout.readline()
    assert line.startswith("PORT "), line + proc.stderr.read()
    return int(line.split()[1])


def test_a_moved_end_is_its_holders_the_senders_death_does_not_poison_it(key_file):
    """P joins the home's channel and sends its writer end to Q (a mobile end); P is
    then killed: the channel must live on (Q holds that join now), and Q's write
    arrives.  Then Q is killed: now the channel is poisoned.  Before the home handed
    the join over at Q's HOLD, P's death poisoned the channel Q was using; and before
    HOLD started Q's heartbeat, Q (which sent the home nothing else) was declared dead."""
    home, port = start_home(POISONED_READER, key_file, heartbeat=HEARTBEAT)
    q = p = None
    try:
        q = start_peer(f"""
            import time
            mail = pycsp.Channel("mail", buffer=1)
            print("PORT", mail.address[1], flush=True)
            w = (+mail)()
            print("HAVE", True, flush=True)
            time.sleep({2 * TIMEOUT + MARGIN / 2})  # past P's death being seen at the home
            w("from Q")
            print("WROTE", True, flush=True)
            time.sleep(60)
        """, key_file, port)
        p = start_peer(f"""
            import time
            A = pycsp.Channel("A", connect=("127.0.0.1", PORT))
            mail = pycsp.Channel("mail", connect=("127.0.0.1", {_port_line(q)}))
            (-mail)(-A)
            print("SENT", True, flush=True)
            time.sleep(60)
        """, key_file, port)
        assert Lines(p).wait_for("SENT") is True
        q_lines = Lines(q)
        assert q_lines.wait_for("HAVE") is True
        p.kill()
        assert q_lines.wait_for("WROTE", timeout=2 * TIMEOUT + 2 * MARGIN) is True
        q.kill()
        lines = Lines(home)
        assert lines.wait_for("GOT", timeout=TIMEOUT + 2 * MARGIN) == ["from Q"]
        code, _, err = lines.rest()
        assert code == 0, err
    finally:
        for proc in (p, q, home):
            if proc is not None:
                stop(proc)
