"""Channel ends (and channels) sent in messages between programs on 127.0.0.1 (pycsp.net's
mobile ends): the reply-channel pattern, an end passed on twice, retire and poison through a
moved end, the sender ending after the move, an end that comes back to its home program, and
what a message cannot make a home do."""
import textwrap
import time

import pytest
from conftest import start_script
from net_support import finish, peer_source, run_peer, start_home, stop, values

pytestmark = pytest.mark.timeout(120)


def test_reply_channel_pattern_and_retire_through_the_moved_end(key_file):
    """A client sends the writer end of its own plain channel with each request (the same
    end each time: one join); the server, another program, answers on it, then retires it:
    it was the channel's only writer, so the client's next read raises retire.  Sending the
    end added no writer to the client's channel."""
    proc, port = start_home("""
        requests = pycsp.Channel("requests")
        print("PORT", requests.address[1], flush=True)
        @pycsp.process
        def server(cin):
            kinds = set()
            for _ in range(3):
                n, reply = cin()
                kinds.add(type(reply).__name__)
                reply(n * n)
            reply.retire()
            return sorted(kinds)
        print("KINDS", pycsp.Parallel(server(+requests))[0], flush=True)
    """, key_file)
    try:
        out = run_peer("""
            requests = pycsp.Channel("requests", connect=("127.0.0.1", PORT))
            answers = pycsp.Channel()
            answer_out, answer_in = -answers, +answers
            ask = -requests
            got = []
            for n in range(3):
                ask((n, answer_out))
                got.append(answer_in())
                if n == 0:  # (after the last answer the server may have retired it)
                    print("WRITERS", answers.statistics()["writers"])
            try:
                answer_in()
            except pycsp.ChannelRetireException:
                got.append("retired")
            print("GOT", got)
        """, key_file, port)
        assert values(out, "GOT") == [[0, 1, 4, "retired"]]
        assert values(out, "WRITERS") == [1]
        code, hout, err = finish(proc)
        assert code == 0, err
        assert values(hout, "KINDS") == [["RemoteChannelEndWrite"]]
    finally:
        stop(proc)


def test_reply_end_sent_from_a_process_poisoned_by_the_server(key_file):
    """The client is a CSP process (a forked child); the server poisons the reply end it
    got: the client's blocked read raises poison."""
    proc, port = start_home("""
        requests = pycsp.Channel("requests")
        print("PORT", requests.address[1], flush=True)
        n, reply = (+requests)()
        reply(n + 1)
        reply.poison()
        print("SERVED", True, flush=True)
    """, key_file)
    try:
        out = run_peer("""
            requests = pycsp.Channel("requests", connect=("127.0.0.1", PORT))
            @pycsp.process
            def client(ask):
                answers = pycsp.Channel()
                answer_in = +answers
                ask((41, -answers))
                got = [answer_in()]
                try:
                    answer_in()
                except pycsp.ChannelPoisonException:
                    got.append("poisoned")
                return got
            print("GOT", pycsp.Parallel(client(-requests))[0])
        """, key_file, port)
        assert values(out, "GOT") == [[42, "poisoned"]]
        code, hout, err = finish(proc)
        assert code == 0, err
        assert values(hout, "SERVED") == [True]
    finally:
        stop(proc)


def test_an_end_read_from_the_home_by_a_remote_reader_is_usable_and_comes_back_home(key_file):
    """The home's own process writes a plain channel's end (and channels) into a homed
    channel; the reader is in the other program (the home's agent reads them for it: this
    was answered ERROR and the message lost).  The reader uses the end, then sends it back:
    in its home program it is the core's end again, which works in alternation; so is an
    end the other program joined by another name of the home's host."""
    proc, port = start_home("""
        A = pycsp.Channel("A")
        B = pycsp.Channel("B")
        print("PORT", A.address[1], flush=True)
        data = pycsp.Channel()
        data_in = +data
        (-A)((-data, data, A))
        print("READ", repr(data_in()), flush=True)
        back = (+B)()
        print("BACK", type(back).__name__, back is not None, flush=True)
        print("BACK_BY_NAME", type((+B)()).__name__, flush=True)
        @pycsp.process
        def use(cout):
            cout("through the returned end")
        @pycsp.process
        def select(cin):
            return pycsp.AltSelect(pycsp.InputGuard(cin))[1]
        print("ALT", repr(pycsp.Parallel(use(back), select(data_in))[1]), flush=True)
        print("WRITERS", data.statistics()["writers"], flush=True)
    """, key_file)
    try:
        out = run_peer("""
            A = pycsp.Channel("A", connect=("127.0.0.1", PORT))
            B = pycsp.Channel("B", connect=("127.0.0.1", PORT))
            end, channel, named = (+A)()
            print("TYPES", [type(x).__name__ for x in (end, channel, named)])
            print("CHANNELS", [isinstance(x, pycsp.Channel) for x in (channel, named)])
            print("NAMED", named.name, named.address == A.address)
            end("from the other program")
            (-B)(end)
            by_name = pycsp.Channel("A", connect=("localhost", PORT))
            (-B)(+by_name)
        """, key_file, port)
        assert values(out, "TYPES") == [["RemoteChannelEndWrite", "RemoteChannel",
                                          "RemoteChannel"]]
        assert values(out, "CHANNELS") == [[True, True]]
        assert "NAMED A True" in out
        code, hout, err = finish(proc)
        assert code == 0, err
        assert values(hout, "READ") == ["from the other program"]
        assert "BACK ChannelEndWrite True" in hout
        assert "BACK_BY_NAME ChannelEndRead" in hout
        assert values(hout, "ALT") == ["through the returned end"]
        assert values(hout, "WRITERS") == [1]
    finally:
        stop(proc)


def test_an_end_passed_on_twice_then_retired_by_its_last_holder(key_file):
    """A's own end goes A -> B (B reads it from A's channel) -> C (C reads it from B's
    channel, through B's agent); C writes on it to A's reader, and its retire, the last
    writer's, retires the channel at A."""
    a_proc, a_port = start_home("""
        to_b = pycsp.Channel("to_b")
        print("PORT", to_b.address[1], flush=True)
        data = pycsp.Channel()
        data_in = +data
        (-to_b)(-data)
        got = [data_in()]
        try:
            data_in()
        except pycsp.ChannelRetireException:
            got.append("retired")
        print("GOT", got, flush=True)
    """, key_file)
    b_proc = None
    try:
        b_proc = start_script(peer_source("""
            to_b = pycsp.Channel("to_b", connect=("127.0.0.1", PORT))
            to_c = pycsp.Channel("to_c")
            print("PORT", to_c.address[1], flush=True)
            end = (+to_b)()
            print("B_HAS", type(end).__name__, flush=True)
            (-to_c)(end)
        """, key_file, a_port))
        line = b_proc.stdout.readline()
        assert line.startswith("PORT "), line + b_proc.stderr.read()
        b_port = int(line.split()[1])
        out = run_peer(f"""
            to_c = pycsp.Channel("to_c", connect=("127.0.0.1", {b_port}))
            end = (+to_c)()
            print("C_HAS", type(end).__name__, end.channel.address[1] == PORT)
            end("from C")
            end.retire()
        """, key_file, a_port)
        assert "C_HAS RemoteChannelEndWrite True" in out
        code, bout, err = finish(b_proc)
        assert code == 0, err
        assert "B_HAS RemoteChannelEndWrite" in bout
        code, aout, err = finish(a_proc)
        assert code == 0, err
        assert values(aout, "GOT") == [["from C", "retired"]]
    finally:
        stop(a_proc)
        if b_proc is not None:
            stop(b_proc)


def test_a_sender_that_uses_an_end_after_sending_it_uses_the_same_join(key_file):
    """P sends its writer end of H's channel to Q (through a channel Q homes) and goes on
    writing on it: both programs' messages arrive (one join, in two places).  Q's retire
    retires that join, the channel's only writer: H's reader sees retire, and P's next
    write raises ChannelRetireException (not an error about an end H does not know)."""
    proc, port = start_home("""
        box = pycsp.Channel("box", buffer=2)
        used = pycsp.Channel("used", buffer=1)
        done = pycsp.Channel("done", buffer=1)
        print("PORT", box.address[1], flush=True)
        box_in = +box
        got = [box_in(), box_in()]
        try:
            box_in()
        except pycsp.ChannelRetireException:
            got.append("retired")
        print("GOT", got, flush=True)
    """, key_file)
    p_proc = q_proc = None
    try:
        q_proc = start_script(peer_source("""
            mail = pycsp.Channel("mail", buffer=1)
            print("PORT", mail.address[1], flush=True)
            e = (+mail)()
            (+pycsp.Channel("used", connect=("127.0.0.1", PORT)))()
            e("from Q")
            e.retire()
            (-pycsp.Channel("done", connect=("127.0.0.1", PORT)))(True)
        """, key_file, port))
        p_proc = start_script(peer_source(f"""
            box = pycsp.Channel("box", connect=("127.0.0.1", PORT))
            mail = pycsp.Channel("mail", connect=("127.0.0.1", {_first_port(q_proc)}))
            w = -box
            (-mail)(w)
            w("from P, after sending it")
            (-pycsp.Channel("used", connect=("127.0.0.1", PORT)))(True)
            (+pycsp.Channel("done", connect=("127.0.0.1", PORT)))()
            try:
                w("again")
            except pycsp.ChannelRetireException:
                print("P_RETIRED", True, flush=True)
        """, key_file, port))
        for other in (q_proc, p_proc):
            code, out, err = finish(other)
            assert code == 0, err
        assert values(out, "P_RETIRED") == [True]
        code, hout, err = finish(proc)
        assert code == 0, err
        assert values(hout, "GOT") == [["from P, after sending it", "from Q", "retired"]]
    finally:
        for other in (proc, p_proc, q_proc):
            if other is not None:
                stop(other)


def _first_port(proc):
    line = proc.stdout.readline()
    assert line.startswith("PORT "), line + proc.stderr.read()
    return int(line.split()[1])


@pytest.mark.parametrize("mail_home", ["receiver", "sender"])
def test_the_home_serves_a_moved_end_after_its_sender_ended(key_file, tmp_path, mail_home):
    """P joins H's channel and sends its writer end to Q, then ends; H's own program ends
    too.  H goes on serving the end until Q, which uses it only after both ended, retires
    it.  Sent through a channel Q homes, P's end moved (P does not leave it at H), and Q
    takes it from the buffer after P ended; sent through a channel P homes (P's own process
    wrote it there, its agent sent it on), P leaves it at H when it ends, but Q holds it by
    then, so H takes no notice."""
    go = tmp_path / "go"
    h_proc, h_port = start_home("""
        data = pycsp.Channel("data")
        sent = pycsp.Channel("sent")
        held = pycsp.Channel("held", buffer=1)
        print("PORT", data.address[1], flush=True)
        (+sent)()
        print("HOME_MAIN_DONE", True, flush=True)
    """, key_file, linger=30.0)
    q_source = textwrap.dedent(f"""
        import os, time
        if MAIL_PORT is None:
            mail = pycsp.Channel("mail", buffer=1)
            print("PORT", mail.address[1], flush=True)
        else:
            mail = pycsp.Channel("mail", connect=("127.0.0.1", MAIL_PORT))
        def wait_for_go():
            while not os.path.exists({str(go)!r}):
                time.sleep(0.05)
        if MAIL_PORT is None:
            wait_for_go()  # the end waited in the buffer while P ended
        mail_in = +mail
        moved = mail_in()
        mail_in.retire()
        if MAIL_PORT is not None:
            # After its HOLD, on the same link: H knows that Q holds it before P ends.
            held_out = -pycsp.Channel("held", connect=("127.0.0.1", PORT))
            held_out(True)
            held_out.retire()  # Q holds nothing else at H until it is told to go
        wait_for_go()
        data = pycsp.Channel("data", connect=("127.0.0.1", PORT))
        @pycsp.process
        def writer(cout):
            cout("after the sender ended")
            cout.retire()
        @pycsp.process
        def reader(cin):
            return cin()
        print("GOT", repr(pycsp.Parallel(writer(moved), reader(+data))[1]), flush=True)
    """)
    p_source = textwrap.dedent("""
        data = pycsp.Channel("data", connect=("127.0.0.1", PORT))
        sent = pycsp.Channel("sent", connect=("127.0.0.1", PORT))
        if MAIL_PORT is None:
            mail = pycsp.Channel("mail")
            print("PORT", mail.address[1], flush=True)
        else:
            mail = pycsp.Channel("mail", connect=("127.0.0.1", MAIL_PORT))
        (-mail)(-data)
        if MAIL_PORT is None:
            (+pycsp.Channel("held", connect=("127.0.0.1", PORT)))()
        (-sent)(True)
    """)
    q_proc = p_proc = None
    try:
        if mail_home == "receiver":
            q_proc = start_script(peer_source("MAIL_PORT = None\n" + q_source, key_file, h_port))
            p_proc = start_script(peer_source(f"MAIL_PORT = {_first_port(q_proc)}\n" + p_source,
                                              key_file, h_port))
        else:
            p_proc = start_script(peer_source("MAIL_PORT = None\n" + p_source, key_file, h_port))
            q_proc = start_script(peer_source(f"MAIL_PORT = {_first_port(p_proc)}\n" + q_source,
                                              key_file, h_port))
        code, _, err = finish(p_proc)
        assert code == 0, err
        assert h_proc.stdout.readline().strip() == "HOME_MAIN_DONE True"
        time.sleep(1.0)  # H's agent alone serves its channels now
        go.touch()
        code, qout, err = finish(q_proc)
        assert code == 0, err
        assert values(qout, "GOT") == ["after the sender ended"]
        t0 = time.monotonic()
        code, _, err = finish(h_proc)
        assert code == 0, err
        assert time.monotonic() - t0 < 10, err  # it stopped once Q retired, not at the linger
    finally:
        for proc in (h_proc, p_proc, q_proc):
            if proc is not None:
                stop(proc)


def test_a_message_cannot_name_a_join_or_arena_memory_the_home_does_not_hold(key_file):
    """A peer (admitted: it has the key) writes a message naming a join number the home
    never gave out, and one naming the home's arena the core's way: the home refuses both
    (the writer gets ChannelSocketException) and goes on serving."""
    proc, port = start_home("""
        A = pycsp.Channel("A", buffer=1)
        print("PORT", A.address[1], flush=True)
        print("GOT", repr((+A)()), flush=True)
    """, key_file)
    try:
        out = run_peer("""
            import pickle, csp_ext
            from pycsp.net import _mobile, _remote, _wire
            A = pycsp.Channel("A", connect=("127.0.0.1", PORT))
            cout = -A
            class ForgedEnd:
                def __reduce__(self):
                    home = (A.address, A.home)
                    return (_mobile.arrive_end, (home, "A", 0, 0, 10**6, True, False))
            class ArenaEnd:
                def __reduce__(self):
                    return (csp_ext._shm_rebuild_end, (4096, None, 1))
            for forged in (ForgedEnd(), ArenaEnd()):
                header, reply = _remote._link_to(A.address).request(
                    _wire.WRITE, cout.number, pickle.dumps(forged))
                print("REFUSED", header.op == _wire.ERROR)
            cout("plain")
        """, key_file, port)
        assert values(out, "REFUSED") == [True, True]
        code, hout, err = finish(proc)
        assert code == 0, err
        assert values(hout, "GOT") == ["plain"]
    finally:
        stop(proc)
