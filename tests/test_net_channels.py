"""Named channels across two programs on 127.0.0.1: plain reads and writes (rendezvous
and buffered, any-to-any), poison and retire reaching both sides, connect and bind errors,
and alternation over a channel homed elsewhere refused (ends in messages:
test_net_mobile.py).  Every party that uses a channel is a CSP process (an OS process) of
its program unless said otherwise."""
import time

import pytest
from conftest import run_script, start_script
from net_support import finish, peer_source, run_peer, start_home, stop, values

pytestmark = pytest.mark.timeout(90)


def test_producer_here_consumer_there(key_file):
    """The home's consumer blocks first (no DeadlockError: a remote writer may come);
    the producer is a process of the other program.  That program ends without
    retiring its end: it tells the home, which then ends without lingering."""
    proc, port = start_home("""
        A = pycsp.Channel("A")
        print("PORT", A.address[1], flush=True)
        @pycsp.process
        def consumer(cin):
            return [cin() for _ in range(50)]
        print("GOT", pycsp.Parallel(consumer(+A))[0], flush=True)
    """, key_file, linger=None)
    try:
        run_peer("""
            import time
            time.sleep(0.5)  # the home's consumer is blocked by now
            A = pycsp.Channel("A", connect=("127.0.0.1", PORT))
            @pycsp.process
            def producer(cout):
                for i in range(50):
                    cout({"n": i, "data": bytes(i)})
            pycsp.Parallel(producer(-A))
        """, key_file, port)
        t0 = time.monotonic()
        code, out, err = finish(proc)
        assert code == 0, err
        assert values(out, "GOT") == [[{"n": i, "data": bytes(i)} for i in range(50)]]
        assert time.monotonic() - t0 < 5  # not the default linger, 10 s
    finally:
        stop(proc)


def test_a_remote_write_returns_only_when_a_reader_took_the_message(key_file):
    proc, port = start_home("""
        import time
        A = pycsp.Channel("A")
        B = pycsp.Channel("B", buffer=2)
        print("PORT", A.address[1], flush=True)
        cin = +A
        time.sleep(1.5)  # nobody reads A for 1.5 s
        print("READ", repr(cin()), flush=True)
        cin_b = +B
        time.sleep(1.0)
        print("READ", [cin_b() for _ in range(3)], flush=True)
    """, key_file)
    try:
        out = run_peer("""
            import time
            A = pycsp.Channel("A", connect=("127.0.0.1", PORT))
            B = pycsp.Channel("B", connect=("127.0.0.1", PORT))
            cout, cout_b = -A, -B
            t0 = time.monotonic()
            cout("first")
            print("RENDEZVOUS", time.monotonic() - t0)
            t0 = time.monotonic()
            cout_b(1)
            cout_b(2)
            print("BUFFERED", time.monotonic() - t0)  # two fit in the home's buffer
            cout_b(3)
            print("FULL", time.monotonic() - t0)  # the third waits for the reader
            print("BUFFER", B.buffer)
        """, key_file, port)
        assert values(out, "RENDEZVOUS")[0] > 1.0
        assert values(out, "BUFFERED")[0] < 0.8
        assert values(out, "FULL")[0] > 0.8
        assert values(out, "BUFFER") == [2]
        code, hout, err = finish(proc)
        assert code == 0, err
        assert values(hout, "READ") == ["first", [1, 2, 3]]
    finally:
        stop(proc)


def test_many_to_many_across_both_programs_delivers_each_message_once(key_file):
    """Two readers and a writer here, two writers and a reader there, on a rendezvous
    channel and a buffered one; writers retire when done, which ends the readers."""
    home = """
        A = pycsp.Channel("A", buffer=BUFFER)
        ready = pycsp.Channel("ready")
        print("PORT", A.address[1], flush=True)
        ins = [+A, +A]
        out = -A
        (+ready)()  # the other program has joined its ends
        @pycsp.process
        def writer(cout, tag):
            for i in range(20):
                cout(f"{tag}{i}")
            pycsp.retire(cout)
        @pycsp.process
        def reader(cin):
            got = []
            try:
                while True:
                    got.append(cin())
            except pycsp.ChannelRetireException:
                return got
        print("GOT", pycsp.Parallel(writer(out, "h"), reader(ins[0]), reader(ins[1])))
    """
    peer = """
        A = pycsp.Channel("A", connect=("127.0.0.1", PORT))
        outs, cin = [-A, -A], +A
        (-pycsp.Channel("ready", connect=("127.0.0.1", PORT)))(True)
        @pycsp.process
        def writer(cout, tag):
            for i in range(20):
                cout(f"{tag}{i}")
            pycsp.retire(cout)
        @pycsp.process
        def reader(cin):
            got = []
            try:
                while True:
                    got.append(cin())
            except pycsp.ChannelRetireException:
                return got
            except pycsp.ChannelPoisonException as exc:
                print("READER", repr(repr(exc)), repr(got), flush=True)
                raise
        print("GOT", pycsp.Parallel(writer(outs[0], "p"), writer(outs[1], "q"), reader(cin)))
    """
    for buffer in (0, 3):
        # The default linger: the home serves the other program's reader until it
        # has its ChannelRetireException and retires (it would get ChannelLostException
        # if the home ended first); the home does not wait the whole linger for that.
        t0 = time.monotonic()
        proc, port = start_home(home.replace("BUFFER", str(buffer)), key_file, linger=None)
        try:
            out = run_peer(peer, key_file, port)
            code, hout, err = finish(proc)
            assert code == 0, err
            peer_results = values(out, "GOT")[0]
            home_results = values(hout, "GOT")[0]
            readers = [home_results[1], home_results[2], peer_results[2]]
            assert None not in readers, (out, hout, err)
            received = home_results[1] + home_results[2] + peer_results[2]
            expected = [f"{tag}{i}" for tag in "hpq" for i in range(20)]
            assert sorted(received) == sorted(expected), buffer
            # each writer's messages arrive in its order, at each reader
            for got in (home_results[1], home_results[2], peer_results[2]):
                for tag in "hpq":
                    mine = [int(m[1:]) for m in got if m[0] == tag]
                    assert mine == sorted(mine)
            assert peer_results[2], "the remote reader took part"
            assert time.monotonic() - t0 < 8
        finally:
            stop(proc)


def test_poison_from_the_home_reaches_a_blocked_remote_reader_and_back(key_file):
    proc, port = start_home("""
        import time
        A = pycsp.Channel("A")
        B = pycsp.Channel("B")
        print("PORT", A.address[1], flush=True)
        time.sleep(1.0)  # the remote reader of A blocks
        A.poison()
        cin = +B
        try:
            cin()  # blocks until the other program poisons B
        except pycsp.ChannelPoisonException:
            print("HOME_POISONED", True, flush=True)
        try:
            (-A)(1)
        except pycsp.ChannelPoisonException:
            print("STILL_POISONED", True, flush=True)
        time.sleep(1.5)  # the other program's later read reaches this home
    """, key_file)
    try:
        out = run_peer("""
            A = pycsp.Channel("A", connect=("127.0.0.1", PORT))
            B = pycsp.Channel("B", connect=("127.0.0.1", PORT))
            @pycsp.process
            def reader(cin, cout_b):
                try:
                    cin()
                except pycsp.ChannelPoisonException:
                    print("PEER_POISONED", True, flush=True)
                    raise  # propagation poisons B (an argument) at its home
            pycsp.Parallel(reader(+A, -B))
            try:
                (+A)()
            except pycsp.ChannelPoisonException as exc:
                print("LATER_READ_POISONED", repr(type(exc).__name__), flush=True)
        """, key_file, port)
        assert values(out, "PEER_POISONED") == [True]
        assert values(out, "LATER_READ_POISONED") == ["ChannelPoisonException"]
        code, hout, err = finish(proc)
        assert code == 0, err
        assert values(hout, "HOME_POISONED") == [True]
        assert values(hout, "STILL_POISONED") == [True]
    finally:
        stop(proc)


def test_retire_of_the_last_remote_reader_retires_the_channel_at_its_home(key_file):
    proc, port = start_home("""
        A = pycsp.Channel("A")
        print("PORT", A.address[1], flush=True)
        cout = -A
        cout("one")
        try:
            cout("two")  # the only reader, in the other program, retires
        except pycsp.ChannelRetireException:
            print("RETIRED", True, flush=True)
    """, key_file)
    try:
        out = run_peer("""
            A = pycsp.Channel("A", connect=("127.0.0.1", PORT))
            cin = +A
            print("GOT", repr(cin()))
            cin.retire()
            cin.retire()  # harmless twice
            try:
                cin()
            except pycsp.ChannelRetireException:
                print("USE_AFTER_RETIRE", True)
        """, key_file, port)
        assert values(out, "GOT") == ["one"]
        assert values(out, "USE_AFTER_RETIRE") == [True]
        code, hout, err = finish(proc)
        assert code == 0, err
        assert values(hout, "RETIRED") == [True]
    finally:
        stop(proc)


def test_connect_errors_name_the_address(key_file):
    proc, port = start_home("""
        A = pycsp.Channel("A")
        print("PORT", A.address[1], flush=True)
        import time; time.sleep(60)
    """, key_file)
    try:
        out = run_peer("""
            import socket, time
            from pycsp.parallel import Configuration, SOCKETS_CONNECT_TIMEOUT
            Configuration().set(SOCKETS_CONNECT_TIMEOUT, 1.0)
            try:
                pycsp.Channel("B", connect=("127.0.0.1", PORT))
            except pycsp.ChannelConnectException as exc:
                print("NO_CHANNEL", repr(str(exc)))
            free = socket.socket(); free.bind(("127.0.0.1", 0)); unused = free.getsockname()[1]
            free.close()
            t0 = time.monotonic()
            try:
                pycsp.Channel("A", connect=("127.0.0.1", unused))
            except pycsp.ChannelConnectException as exc:
                print("NOBODY", repr(str(exc)), exc.addr == ("127.0.0.1", unused))
                print("WAITED", time.monotonic() - t0)
        """, key_file, port)
        assert "no channel named 'B'" in values(out, "NO_CHANNEL")[0]
        assert "1 s" in out and "True" in out
        assert 0.9 < values(out, "WAITED")[0] < 5
    finally:
        proc.stdin.close() if proc.stdin else None
        stop(proc)


def test_a_taken_port_raises_channel_bind_exception(key_file):
    result = run_script(f"""
        import socket, warnings
        import pycsp.net as pycsp
        from pycsp.parallel import Configuration, SOCKETS_BIND_TIMEOUT
        Configuration().set(SOCKETS_BIND_TIMEOUT, 0.5)
        taken = socket.socket(); taken.bind(("127.0.0.1", 0)); taken.listen()
        port = taken.getsockname()[1]
        pycsp.configure(key_file={key_file!r}, port=port)
        try:
            pycsp.Channel("A")
        except pycsp.ChannelBindException as exc:
            print("BIND", exc.addr == ("127.0.0.1", port), "in use" in str(exc).lower())
        A = pycsp.Channel()  # channels without a name still work
        print("LOCAL", A.buffer)
    """, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["BIND", "True", "True", "LOCAL", "0"]


def test_every_alternation_spelling_takes_ends_homed_elsewhere(key_file):
    """Each spelling of a choice takes ends of a channel homed in another
    program (the protocol itself: test_net_alternation.py); the home's own
    process alternates over the same channel in the core."""
    proc, port = start_home("""
        A = pycsp.Channel("A", buffer=10)
        print("PORT", A.address[1], flush=True)
        L = pycsp.Channel("L")  # homed here: its ends are the core's and alternate
        lin, lout = +L, -L
        @pycsp.process
        def feed(cout):
            cout(7)
        pycsp.Spawn(feed(lout))
        print("LOCAL", pycsp.AltSelect(pycsp.InputGuard(lin))[1], flush=True)
        import time; time.sleep(60)
    """, key_file)
    try:
        assert proc.stdout.readline().split() == ["LOCAL", "7"]
        out = run_peer("""
            A = pycsp.Channel("A", connect=("127.0.0.1", PORT))
            cin, cout = +A, -A
            pycsp.PriSelect((cout, 1))
            pycsp.AltSelect(pycsp.OutputGuard(cout, 2))
            pycsp.Alternation([(cout, 3, None)]).execute()
            got = [pycsp.AltSelect(cin)[1], pycsp.FairSelect(pycsp.InputGuard(cin))[1],
                   pycsp.Alternation([{cin: None}]).select()[1]]
            print("GOT", repr(got))
        """, key_file, port)
        assert values(out, "GOT") == [[1, 2, 3]]
    finally:
        stop(proc)


def test_a_home_program_with_only_local_parties_still_ends(key_file):
    """Homing a channel starts the node's agent; the program ends as usual (the agent
    with it, at once: no party elsewhere holds an end), and its local processes use
    the homed channel as any other."""
    t0 = time.monotonic()
    proc = start_script(peer_source("""
        A = pycsp.Channel("A", buffer=1)
        @pycsp.process
        def ping(cout):
            cout("ping")
        @pycsp.process
        def pong(cin):
            return cin()
        print("RESULT", pycsp.Parallel(ping(-A), pong(+A)))
    """, key_file, 0))
    code, out, err = finish(proc, timeout=30)
    assert code == 0, err
    assert values(out, "RESULT") == [[None, "ping"]]
    assert time.monotonic() - t0 < 4  # the agent is not killed after a timeout


def test_a_home_that_ends_leaves_its_remote_parties_a_channel_lost_exception(key_file):
    """Not a fault test (those come with lost-node detection): a home program that ends
    while a party elsewhere waits on its channel; nothing is resent after the break."""
    proc, port = start_home("""
        import time
        A = pycsp.Channel("A")
        print("PORT", A.address[1], flush=True)
        time.sleep(1.5)  # the remote reader blocks, then this program ends
    """, key_file)
    try:
        out = run_peer("""
            import time
            A = pycsp.Channel("A", connect=("127.0.0.1", PORT))
            cin = +A
            t0 = time.monotonic()
            try:
                cin()
            except pycsp.ChannelLostException as exc:
                print("LOST", isinstance(exc, pycsp.ChannelPoisonException))
                print("AFTER", time.monotonic() - t0)
            try:
                (-A)(1)
            except pycsp.ChannelLostException:
                print("STILL_LOST", True)
            A.poison()  # nothing left to poison: does nothing
            cin.retire()
            print("DONE", True)
        """, key_file, port)
        assert values(out, "LOST") == [True]
        assert values(out, "AFTER")[0] < 10
        assert values(out, "STILL_LOST") == [True]
        assert values(out, "DONE") == [True]
        code, _, err = finish(proc)
        assert code == 0, err
    finally:
        stop(proc)


def test_channels_of_one_os_process_do_not_travel_between_programs(key_file):
    """pycsp.net's channels and ends travel in messages (tests/test_net_mobile.py);
    pycsp.threads' channels live in one OS process: a message that holds one is refused
    at the writer, which can go on writing."""
    proc, port = start_home("""
        A = pycsp.Channel("A", buffer=1)
        print("PORT", A.address[1], flush=True)
        print("GOT", repr((+A)()), flush=True)
    """, key_file)
    try:
        out = run_peer("""
            from pycsp import threads
            A = pycsp.Channel("A", connect=("127.0.0.1", PORT))
            cout = -A
            local = threads.Channel()
            for what in (local, +local, [1, {"x": -local}]):
                try:
                    cout(what)
                except TypeError as exc:
                    print("REFUSED", repr("one OS process" in str(exc)))
            cout("plain")
        """, key_file, port)
        assert values(out, "REFUSED") == [True] * 3
        code, hout, err = finish(proc)
        assert code == 0, err
        assert values(hout, "GOT") == ["plain"]
    finally:
        stop(proc)


def test_a_0_9_2_program_reaches_a_homed_channel_with_channel_connect(key_file):
    """pycsp.parallel's Channel(name, connect=) is pycsp.net's: a PyCSP 0.9.2
    style program writes to a channel another program homes."""
    proc, port = start_home("""
        A = pycsp.Channel("A")
        print("PORT", A.address[1], flush=True)
        @pycsp.process
        def consumer(cin):
            return [cin() for _ in range(3)]
        print("GOT", pycsp.Parallel(consumer(+A))[0], flush=True)
    """, key_file, linger=None)
    try:
        result = run_script(f"""
            import os
            os.environ["PYCSP_NET_KEY_FILE"] = {key_file!r}
            from pycsp.parallel import *
            A = Channel("A", connect=("127.0.0.1", {port}))

            @process
            def producer(cout):
                for i in range(3):
                    cout(("from 0.9.2", i))

            Parallel(producer(A.writer()))
            shutdown()
        """, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        code, out, err = finish(proc)
        assert code == 0, err
        assert values(out, "GOT") == [[("from 0.9.2", i) for i in range(3)]]
    finally:
        stop(proc)


def test_a_thread_that_used_a_remote_channel_leaves_no_socket_open(key_file):
    """A plain thread has sockets of its own to each home; when it ends they
    are closed, not left to the garbage collector (which warns)."""
    proc, port = start_home("""
        A, done = pycsp.Channel("A", buffer=2), pycsp.Channel("done")
        print("PORT", A.address[1], flush=True)
        cout = -A
        cout("for the thread")
        cout("for the main thread")
        (+done)()
    """, key_file)
    try:
        result = run_script(peer_source("""
            import gc, threading, warnings
            warnings.simplefilter("always", ResourceWarning)
            A = pycsp.Channel("A", connect=("127.0.0.1", PORT))
            got = []
            reader = threading.Thread(target=lambda: got.append((+A)()))
            reader.start()
            reader.join()
            gc.collect()
            print("GOT", repr(got + [(+A)()]), flush=True)
            (-pycsp.Channel("done", connect=("127.0.0.1", PORT)))(True)
        """, key_file, port), timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        assert values(result.stdout, "GOT") == [["for the thread", "for the main thread"]]
        assert "Unclosed socket" not in result.stderr, result.stderr
        finish(proc)
    finally:
        stop(proc)


def test_a_forked_child_uses_a_socket_of_its_own(key_file):
    """The parent's link to a home is not the child's after os.fork() (ZeroMQ is not
    fork-safe: the parent's socket would never send the child's request): the child
    makes its own, found without asking for the pid per request."""
    proc, port = start_home("""
        A = pycsp.Channel("A", buffer=3)
        print("PORT", A.address[1], flush=True)
        cin = +A
        print("GOT", sorted(cin() for _ in range(3)), flush=True)
    """, key_file)
    try:
        result = run_script(peer_source("""
            import os
            cout = -pycsp.Channel("A", connect=("127.0.0.1", PORT))
            cout("parent, before")
            child = os.fork()
            if child == 0:
                cout("child")
                os._exit(0)
            _, status = os.waitpid(child, 0)
            cout("parent, after")
            print("CHILD", os.waitstatus_to_exitcode(status), flush=True)
        """, key_file, port), timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        assert values(result.stdout, "CHILD") == [0]
        code, out, err = finish(proc)
        assert code == 0, err
        assert values(out, "GOT") == [["child", "parent, after", "parent, before"]]
    finally:
        stop(proc)


def test_forked_children_leave_their_parents_links_alone(key_file):
    """CSP processes forked after the program used a remote channel touch none of its
    sockets, and drop none of them either (pyzmq would warn of unclosed sockets)."""
    proc, port = start_home("""
        A = pycsp.Channel("A", buffer=2)
        print("PORT", A.address[1], flush=True)
        cin = +A
        print("GOT", [cin(), cin()], flush=True)
    """, key_file)
    try:
        result = run_script(peer_source("""
            import gc, warnings
            warnings.simplefilter("always", ResourceWarning)
            cout = -pycsp.Channel("A", connect=("127.0.0.1", PORT))
            cout("before")

            @pycsp.process
            def local_only(n):
                gc.collect()
                return 2 * n

            print("RESULTS", pycsp.Parallel(*(local_only(i) for i in range(3))), flush=True)
            cout("after")
        """, key_file, port), timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        assert values(result.stdout, "RESULTS") == [[0, 2, 4]]
        assert "Unclosed socket" not in result.stderr, result.stderr
        code, out, err = finish(proc)
        assert code == 0, err
        assert values(out, "GOT") == [["before", "after"]]
    finally:
        stop(proc)
