"""Alternation over channels homed in other programs (pycsp.net, issue #16 item 2).

Every test runs real programs on 127.0.0.1: homes (``start_home``) and peers
(``run_peer``/``start_script``), with CurveZMQ.  What must hold is API.md's:
exactly one guard of an alternation commits, whoever its partner is (a
process of the home, a remote plain read or write, or another program's
alternation), and every message is received exactly once.
"""
import collections
import textwrap
import signal
import time

import pytest
from net_support import finish, peer_source, run_peer, start_home, stop, values

from conftest import start_script

pytest.importorskip("zmq")

pytestmark = pytest.mark.timeout(180)

# A home of channel NAME whose process writes the values of WRITES, one every
# DELAY seconds, then serves on (the test stops it).
WRITING_HOME = """
    C = pycsp.Channel({name!r})
    print("PORT", C.address[1], flush=True)
    @pycsp.process
    def write(cout):
        import time
        for value in {writes!r}:
            time.sleep({delay})
            cout(value)
        print("WROTE", "all", flush=True)
    pycsp.Parallel(write(-C))
    import time; time.sleep(120)
"""

# A home of channel NAME with nobody of its own on it.
IDLE_HOME = """
    C = pycsp.Channel({name!r}{buffer})
    print("PORT", C.address[1], flush=True)
    import time; time.sleep(120)
"""


def idle_home(key_file, name, buffer=0):
    return start_home(IDLE_HOME.format(name=name, buffer=f", buffer={buffer}" if buffer else ""),
                      key_file)


def test_an_alternation_reads_from_two_homes_as_their_writers_come(key_file):
    """Guards on channels homed in two programs; each home's own process writes
    later than the alternation armed: each message is read exactly once."""
    home_a, port_a = start_home(WRITING_HOME.format(name="A", writes=[1, 2], delay=0.3),
                                key_file)
    home_b, port_b = start_home(WRITING_HOME.format(name="B", writes=[10, 20], delay=0.5),
                                key_file)
    try:
        out = run_peer("""
            a = +pycsp.Channel("A", connect=("127.0.0.1", PORT[0]))
            b = +pycsp.Channel("B", connect=("127.0.0.1", PORT[1]))
            for _ in range(4):
                print("GOT", pycsp.AltSelect(a, b)[1], flush=True)
        """, key_file, (port_a, port_b))
        assert sorted(values(out, "GOT")) == [1, 2, 10, 20]
    finally:
        stop(home_a)
        stop(home_b)


def test_an_output_guard_commits_once_and_the_other_home_gets_nothing(key_file, tmp_path):
    """PriSelect over two output guards: the home with a reader takes its
    message; the other guard was armed and is withdrawn, so a reader that
    comes there later finds no writer."""
    flag = tmp_path / "peer-done"
    home_a, port_a = start_home("""
        C = pycsp.Channel("A")
        print("PORT", C.address[1], flush=True)
        @pycsp.process
        def read(cin):
            import time; time.sleep(0.5)
            print("A-READ", cin(), flush=True)
        pycsp.Parallel(read(+C))
        import time; time.sleep(120)
    """, key_file)
    home_b, port_b = start_home("""
        C = pycsp.Channel("B")
        print("PORT", C.address[1], flush=True)
        import os, time
        while not os.path.exists(FLAG):  # the peer is done
            time.sleep(0.05)
        print("B-LATE", pycsp.AltSelect(+C, pycsp.TimeoutGuard(0.5))[1], flush=True)
        import time; time.sleep(120)
    """.replace("FLAG", repr(str(flag))), key_file)
    try:
        out = run_peer("""
            a = -pycsp.Channel("A", connect=("127.0.0.1", PORT[0]))
            b = -pycsp.Channel("B", connect=("127.0.0.1", PORT[1]))
            guard, _ = pycsp.PriSelect((b, "to-b"), (a, "to-a"))
            print("CHOSE", repr("a" if guard is a else "b"), flush=True)
        """, key_file, (port_a, port_b))
        assert values(out, "CHOSE") == ["a"]
        flag.touch()
        assert home_a.stdout.readline().split() == ["A-READ", "to-a"]
        assert home_b.stdout.readline().split() == ["B-LATE", "None"]
    finally:
        stop(home_a)
        stop(home_b)


def test_priselect_takes_the_first_ready_guard_across_homes(key_file):
    """Three homes: the first has nobody on its channel, the second's and the
    third's writers wait.  PriSelect commits the second guard, every time."""
    home_a, port_a = idle_home(key_file, "A")
    home_b, port_b = start_home(WRITING_HOME.format(name="B", writes=["b"] * 5, delay=0),
                                key_file)
    home_c, port_c = start_home(WRITING_HOME.format(name="C", writes=["c"] * 5, delay=0),
                                key_file)
    try:
        out = run_peer("""
            import time
            a = +pycsp.Channel("A", connect=("127.0.0.1", PORT[0]))
            b = +pycsp.Channel("B", connect=("127.0.0.1", PORT[1]))
            c = +pycsp.Channel("C", connect=("127.0.0.1", PORT[2]))
            got = []
            for _ in range(5):
                time.sleep(0.3)  # the writers of B and C wait (again) by now
                got.append(pycsp.PriSelect(a, b, c)[1])
            print("GOT", got, flush=True)
        """, key_file, (port_a, port_b, port_c))
        assert values(out, "GOT") == [["b"] * 5]
    finally:
        stop(home_a)
        stop(home_b)
        stop(home_c)


def test_two_programs_alternating_on_one_channel_homed_in_a_third_meet(key_file):
    """Neither party is in the home's core: the home matches the two armed
    guards itself (claims both, hands the message over)."""
    home, port = idle_home(key_file, "A")
    try:
        reader = start_script(peer_source("""
            cin = +pycsp.Channel("A", connect=("127.0.0.1", PORT))
            other = +pycsp.Channel("A", connect=("127.0.0.1", PORT))
            guard, msg = pycsp.AltSelect(cin, pycsp.TimeoutGuard(30))
            print("READ", repr(msg), flush=True)
        """, key_file, port))
        time.sleep(1.0)  # the reader is armed first
        out = run_peer("""
            cout = -pycsp.Channel("A", connect=("127.0.0.1", PORT))
            print("WROTE", pycsp.AltSelect((cout, {"n": 5}), pycsp.TimeoutGuard(30))[0] is cout,
                  flush=True)
        """, key_file, port)
        assert values(out, "WROTE") == [True]
        code, out, err = finish(reader)
        assert code == 0, err
        assert values(out, "READ") == [{"n": 5}]
    finally:
        stop(home)


def test_every_message_is_read_exactly_once_by_competing_alternations(key_file):
    """Writers in two programs write numbered messages to channels homed in two
    others; two programs alternate over both channels, and the homes' own
    processes alternate too: the union of what was read is what was written."""
    n = 60
    readers_home = """
        C = pycsp.Channel({name!r})
        D = pycsp.Channel({name!r} + "-done", buffer=100)
        print("PORT", C.address[1], flush=True)
        @pycsp.process
        def local_reader(cin):
            import time
            got = []
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                guard, msg = pycsp.AltSelect(cin, pycsp.TimeoutGuard(1.5))
                if guard is cin:
                    got.append(msg)
                elif got:
                    break
            print("LOCAL", repr(got), flush=True)
        pycsp.Parallel(local_reader(+C))
        import time; time.sleep(120)
    """
    home_a, port_a = start_home(readers_home.format(name="A"), key_file)
    home_b, port_b = start_home(readers_home.format(name="B"), key_file)
    reader_source = """
        a = +pycsp.Channel("A", connect=("127.0.0.1", PORT[0]))
        b = +pycsp.Channel("B", connect=("127.0.0.1", PORT[1]))
        got = []
        while True:
            guard, msg = pycsp.AltSelect(a, b, pycsp.TimeoutGuard(3))
            if guard is not a and guard is not b:
                break
            got.append(msg)
        print("GOT", repr(got), flush=True)
    """
    writer_source = """
        a = -pycsp.Channel("A", connect=("127.0.0.1", PORT[0]))
        b = -pycsp.Channel("B", connect=("127.0.0.1", PORT[1]))
        for i in range({n}):
            (a if i % 2 else b)(({tag!r}, i))
    """
    ports = (port_a, port_b)
    try:
        readers = [start_script(peer_source(reader_source, key_file, ports)) for _ in range(2)]
        writers = [start_script(peer_source(writer_source.format(n=n, tag=tag), key_file, ports))
                   for tag in ("w1", "w2")]
        for proc in writers:
            code, out, err = finish(proc, timeout=120)
            assert code == 0, err
        got = []
        for proc in readers:
            code, out, err = finish(proc, timeout=60)
            assert code == 0, err
            got += values(out, "GOT")[0]
        for home in (home_a, home_b):
            line = home.stdout.readline()
            assert line.startswith("LOCAL "), line
            got += values(line, "LOCAL")[0]
        counts = collections.Counter(got)
        assert sorted(counts) == sorted((tag, i) for tag in ("w1", "w2") for i in range(n))
        assert set(counts.values()) == {1}
    finally:
        stop(home_a)
        stop(home_b)


def test_skip_only_tries_and_leaves_nothing_armed(key_file, tmp_path):
    """With a Skip, nothing ready: Skip is chosen, and no guard stays armed at
    the home (a writer that comes later is not taken by it)."""
    flag = tmp_path / "peer-done"
    home, port = start_home("""
        C = pycsp.Channel("A")
        print("PORT", C.address[1], flush=True)
        import os, time
        while not os.path.exists(FLAG):  # the peer is done
            time.sleep(0.05)
        cout = -C
        print("LATE", pycsp.AltSelect((cout, 1), pycsp.TimeoutGuard(0.5))[0] is cout, flush=True)
        import time; time.sleep(120)
    """.replace("FLAG", repr(str(flag))), key_file)
    try:
        out = run_peer("""
            cin = +pycsp.Channel("A", connect=("127.0.0.1", PORT))
            guard, msg = pycsp.PriSelect(cin, pycsp.SkipGuard())
            print("SKIPPED", isinstance(guard, pycsp.SkipGuard), flush=True)
        """, key_file, port)
        assert values(out, "SKIPPED") == [True]
        flag.touch()
        assert home.stdout.readline().split() == ["LATE", "False"]
    finally:
        stop(home)


def test_a_timeout_ends_the_wait_and_withdraws_the_guards(key_file, tmp_path):
    flag = tmp_path / "peer-done"
    home, port = start_home("""
        C = pycsp.Channel("A")
        print("PORT", C.address[1], flush=True)
        import os, time
        while not os.path.exists(FLAG):  # the peer is done
            time.sleep(0.05)
        cout = -C
        print("LATE", pycsp.AltSelect((cout, 1), pycsp.TimeoutGuard(0.5))[0] is cout, flush=True)
        import time; time.sleep(120)
    """.replace("FLAG", repr(str(flag))), key_file)
    try:
        out = run_peer("""
            import time
            cin = +pycsp.Channel("A", connect=("127.0.0.1", PORT))
            t0 = time.monotonic()
            guard, msg = pycsp.AltSelect(cin, pycsp.TimeoutGuard(0.4))
            print("TIMEOUT", isinstance(guard, pycsp.TimeoutGuard), flush=True)
            print("WAITED", time.monotonic() - t0 >= 0.4, flush=True)
        """, key_file, port)
        assert values(out, "TIMEOUT") == [True]
        assert values(out, "WAITED") == [True]
        flag.touch()
        assert home.stdout.readline().split() == ["LATE", "False"]
    finally:
        stop(home)


def test_poison_of_an_armed_guards_channel_reaches_the_alternation(key_file):
    home, port = start_home("""
        C = pycsp.Channel("A")
        print("PORT", C.address[1], flush=True)
        import time
        time.sleep(1.0)
        C.poison()
        time.sleep(120)
    """, key_file)
    try:
        out = run_peer("""
            cin = +pycsp.Channel("A", connect=("127.0.0.1", PORT))
            try:
                pycsp.AltSelect(cin, pycsp.TimeoutGuard(30))
            except pycsp.ChannelPoisonException:
                print("POISONED", True, flush=True)
        """, key_file, port)
        assert values(out, "POISONED") == [True]
    finally:
        stop(home)


def test_buffered_channels_and_actions(key_file):
    """A buffered channel homed elsewhere: an output guard fills the buffer at
    once, an input guard drains it; Alternation.execute runs the action."""
    home, port = idle_home(key_file, "A", buffer=2)
    try:
        out = run_peer("""
            ch = pycsp.Channel("A", connect=("127.0.0.1", PORT))
            cin, cout = +ch, -ch
            for i in range(2):
                print("PUT", pycsp.AltSelect((cout, i))[0] is cout, flush=True)
            got = []
            for _ in range(2):
                pycsp.Alternation([{cin: lambda channel_input: got.append(channel_input)}]).execute()
            print("GOT", repr(got), flush=True)
            print("FAIR", pycsp.FairSelect(pycsp.InputGuard(cin), pycsp.SkipGuard())[0]
                  is not cin, flush=True)
        """, key_file, port)
        assert values(out, "PUT") == [True, True]
        assert values(out, "GOT") == [[0, 1]]
        assert values(out, "FAIR") == [True]
    finally:
        stop(home)


def test_an_alternation_mixes_channels_of_its_program_with_channels_homed_elsewhere(key_file):
    """A plain channel of the alternating program (its writer a process of that
    program) beside a channel homed in another program: each message is read
    once, and the program ends at once afterwards (nothing waits at its node)."""
    home, port = start_home(WRITING_HOME.format(name="A", writes=["remote"], delay=1.0),
                            key_file)
    try:
        t0 = time.monotonic()
        out = run_peer("""
            cin = +pycsp.Channel("A", connect=("127.0.0.1", PORT))
            local = pycsp.Channel()
            @pycsp.process
            def write_later(cout):
                import time; time.sleep(0.3)
                cout("local")
            pycsp.Spawn(write_later(-local))
            lin = +local
            got = []
            for _ in range(2):
                guard, msg = pycsp.AltSelect(cin, lin)
                got.append((msg, guard is lin))
            print("GOT", repr(sorted(got)), flush=True)
        """, key_file, port)
        assert values(out, "GOT") == [[("local", True), ("remote", False)]]
        assert time.monotonic() - t0 < 8
    finally:
        stop(home)


def test_an_armed_party_killed_poisons_its_channel_and_nothing_hangs(key_file):
    """A party killed while its guard is armed: declared dead, its join's
    channel is poisoned (as for any operation in progress), so the home's
    writer, which the armed guard was waiting for, stops; and the home goes
    on serving alternations on its other channels."""
    home, port = start_home("""
        C = pycsp.Channel("A")
        B = pycsp.Channel("B", buffer=1)
        print("PORT", C.address[1], flush=True)
        cout = -C
        import time; time.sleep(1.5)  # the peer armed, then was killed
        try:
            cout("x")
        except pycsp.ChannelPoisonException:
            print("POISONED", True, flush=True)
        (-B)("still here")
        time.sleep(120)
    """, key_file, heartbeat=(0.2, 1.0))
    try:
        doomed = start_script(peer_source("""
            cin = +pycsp.Channel("A", connect=("127.0.0.1", PORT))
            print("ARMING", flush=True)
            pycsp.AltSelect(cin, pycsp.TimeoutGuard(60))
        """, key_file, port, heartbeat=(0.2, 1.0)))
        assert doomed.stdout.readline().strip() == "ARMING"
        time.sleep(0.5)
        doomed.send_signal(signal.SIGKILL)
        doomed.communicate()
        assert home.stdout.readline().split() == ["POISONED", "True"]
        out = run_peer("""
            b = +pycsp.Channel("B", connect=("127.0.0.1", PORT))
            print("GOT", repr(pycsp.AltSelect(b, pycsp.TimeoutGuard(20))[1]), flush=True)
        """, key_file, port, heartbeat=(0.2, 1.0))
        assert values(out, "GOT") == ["still here"]
    finally:
        stop(home)


def test_alternating_writers_meet_alternating_readers_across_two_homes(key_file):
    """Every party alternates and none is in a home's core: two writer programs
    choose between output guards on channels homed in two programs, two reader
    programs between input guards on the same two.  Homes match armed guards
    pairwise, claiming parties that other homes claim too (in party order):
    nothing hangs, and every message is read exactly once."""
    n = 40
    home_a, port_a = idle_home(key_file, "A")
    home_b, port_b = idle_home(key_file, "B")
    reader_source = """
        a = +pycsp.Channel("A", connect=("127.0.0.1", PORT[0]))
        b = +pycsp.Channel("B", connect=("127.0.0.1", PORT[1]))
        got = []
        while True:
            guard, msg = pycsp.AltSelect(a, b, pycsp.TimeoutGuard(4))
            if guard is not a and guard is not b:
                break
            got.append(msg)
        print("GOT", repr(got), flush=True)
    """
    writer_source = """
        a = -pycsp.Channel("A", connect=("127.0.0.1", PORT[0]))
        b = -pycsp.Channel("B", connect=("127.0.0.1", PORT[1]))
        for i in range({n}):
            pycsp.AltSelect((a, ({tag!r}, i)), (b, ({tag!r}, i)))
        print("DONE", True, flush=True)
    """
    ports = (port_a, port_b)
    try:
        readers = [start_script(peer_source(reader_source, key_file, ports)) for _ in range(2)]
        writers = [start_script(peer_source(writer_source.format(n=n, tag=tag), key_file, ports))
                   for tag in ("w1", "w2")]
        for proc in writers:
            code, out, err = finish(proc, timeout=150)
            assert code == 0, err
            assert values(out, "DONE") == [True]
        got = []
        for proc in readers:
            code, out, err = finish(proc, timeout=60)
            assert code == 0, err
            got += values(out, "GOT")[0]
        counts = collections.Counter(got)
        assert sorted(counts) == sorted((tag, i) for tag in ("w1", "w2") for i in range(n))
        assert set(counts.values()) == {1}
    finally:
        stop(home_a)
        stop(home_b)


def test_an_alternation_interrupted_while_arming_leaves_nothing_armed(key_file, tmp_path):
    """A Ctrl-C that lands while an ARM's reply is awaited: the home may keep
    that guard armed, so the alternation's end must withdraw it there too.
    Else the home claims the dead alternation, which never answers, and every
    later guard on that side of the channel waits behind it (here the same
    program's next alternation, which the home's writer then never reaches)."""
    flag = tmp_path / "peer-armed-again"
    home, port = start_home("""
        C = pycsp.Channel("A")
        print("PORT", C.address[1], flush=True)
        import os, time
        while not os.path.exists(FLAG):
            time.sleep(0.05)
        time.sleep(0.5)  # the peer's second alternation is armed by now
        cout = -C
        print("WROTE", pycsp.AltSelect((cout, "x"), pycsp.TimeoutGuard(8))[0] is cout, flush=True)
        time.sleep(120)
    """.replace("FLAG", repr(str(flag))), key_file)
    try:
        out = run_peer("""
            import pathlib
            from pycsp.net import _remote, _wire
            cin = +pycsp.Channel("A", connect=("127.0.0.1", PORT))
            request, await_reply = _remote._Link.request, _remote._Link._await_reply
            def interrupted_wait(self, seq):  # sent; the Ctrl-C comes before the reply
                _remote._Link._await_reply = await_reply  # once
                raise KeyboardInterrupt
            def interrupted_arm(self, op, *args, **kwargs):
                if op == _wire.ARM:
                    _remote._Link._await_reply = interrupted_wait
                return request(self, op, *args, **kwargs)
            _remote._Link.request = interrupted_arm
            try:
                pycsp.AltSelect(cin, pycsp.TimeoutGuard(30))
            except KeyboardInterrupt:
                print("INTERRUPTED", True, flush=True)
            _remote._Link.request = request
            pathlib.Path(FLAG).touch()
            guard, msg = pycsp.AltSelect(cin, pycsp.TimeoutGuard(5))
            print("GOT", repr(msg), flush=True)
        """.replace("FLAG", repr(str(flag))), key_file, port)
        assert values(out, "INTERRUPTED") == [True]
        assert values(out, "GOT") == ["x"]
        assert home.stdout.readline().split() == ["WROTE", "True"]
    finally:
        stop(home)


# Stress: guards of every kind over three homes.  Each party picks, per
# operation, a PriSelect with a Skip (retried later if skipped), an AltSelect
# with a short Timeout (retried), a FairSelect, or a plain write, over a random
# choice of the channels; each program's choices are seeded.
STRESS_CHOICE = """
    import os, random, time
    rng = random.Random({seed})
    FLAG = {flag!r}

    def send(ends, msg):
        while True:
            chosen = rng.sample(ends, rng.randint(1, len(ends)))
            r = rng.random()
            if r < 0.2:
                guard = pycsp.PriSelect(*[(end, msg) for end in chosen], pycsp.SkipGuard())[0]
                if guard in chosen:
                    return
                time.sleep(0.005)
            elif r < 0.4:
                guards = [(end, msg) for end in chosen] + [pycsp.TimeoutGuard(0.05)]
                guard = pycsp.AltSelect(*guards)[0]
                if guard in chosen:
                    return
            elif r < 0.5:
                chosen[0](msg)
                return
            else:
                pycsp.FairSelect(*[(end, msg) for end in chosen])
                return

    def receive_all(ends):
        got, quiet = [], 0
        while quiet < 2:
            r = rng.random()
            if r < 0.2:
                guard, msg = pycsp.PriSelect(*ends, pycsp.SkipGuard())
                if guard not in ends:
                    time.sleep(0.005)
                    continue
            else:
                select = pycsp.FairSelect if r < 0.5 else pycsp.AltSelect
                guard, msg = select(*ends, pycsp.TimeoutGuard(0.5))
                if guard not in ends:
                    quiet = quiet + 1 if os.path.exists(FLAG) else 0
                    continue
            quiet = 0
            got.append(msg)
        return got

    def exchange(ins, outs, msgs):
        # reads from ins and writes msgs to outs, in one choice each time
        got, quiet, sent = [], 0, 0
        while quiet < 2:
            guards = list(ins)
            if sent < len(msgs):
                chosen = rng.sample(outs, rng.randint(1, len(outs)))
                guards += [(end, msgs[sent]) for end in chosen]
            guard, msg = pycsp.AltSelect(*guards, pycsp.TimeoutGuard(0.5))
            if guard in ins:
                got.append(msg)
                quiet = 0
            elif guard in outs:
                sent += 1
                quiet = 0
                if sent == len(msgs):
                    print("SENT", True, flush=True)
            elif sent == len(msgs) and os.path.exists(FLAG):
                quiet += 1
        return got
"""


@pytest.mark.timeout(120)
def test_stress_alternating_parties_over_three_homes_each_message_once(key_file, tmp_path):
    """Two writer and two reader programs alternate (Skip, Timeout, Fair and
    plain mixed) over a rendezvous channel homed in one program, a buffered one
    in another, and a rendezvous one in a third whose own processes alternate
    on it too, and a fifth program reads and writes in the same alternations:
    every message is received exactly once, and nothing hangs."""
    n, n_local = 30, 15
    flag = str(tmp_path / "writers-done")
    home_a, port_a = idle_home(key_file, "A")
    home_b, port_b = idle_home(key_file, "B", buffer=2)
    home_c, port_c = start_home(STRESS_CHOICE.format(seed=3, flag=flag) + """
    C = pycsp.Channel("C")
    print("PORT", C.address[1], flush=True)
    @pycsp.process
    def local_writer(cout):
        for i in range({n_local}):
            send([cout], ("home", i))
        print("LOCALWROTE", True, flush=True)
    @pycsp.process
    def local_reader(cin):
        print("LOCAL", repr(receive_all([cin])), flush=True)
    pycsp.Parallel(local_writer(-C), local_reader(+C))
    time.sleep(120)
    """.format(n_local=n_local), key_file)
    ports = (port_a, port_b, port_c)
    connect = """
        chans = [pycsp.Channel(name, connect=("127.0.0.1", port))
                 for name, port in zip("ABC", PORT)]
    """
    writer = connect + """
        ends = [-ch for ch in chans]
        for i in range({n}):
            send(ends, ({tag!r}, i))
        print("DONE", True, flush=True)
    """
    reader = connect + """
        print("GOT", repr(receive_all([+ch for ch in chans])), flush=True)
    """
    # Reads and writes in one alternation: an input and an output guard on one
    # channel, and guards of both directions at each home.
    both = connect + """
        msgs = [("x", i) for i in range({n})]
        print("GOT", repr(exchange([+ch for ch in chans], [-ch for ch in chans], msgs)),
              flush=True)
    """
    choice = textwrap.dedent(STRESS_CHOICE)
    try:
        readers = [start_script(peer_source(choice.format(seed=10 + k, flag=flag)
                                            + textwrap.dedent(reader), key_file, ports))
                   for k in range(2)]
        writers = [start_script(peer_source(choice.format(seed=20 + k, flag=flag)
                                            + textwrap.dedent(writer).format(n=n, tag=tag),
                                            key_file, ports))
                   for k, tag in enumerate(("w1", "w2"))]
        mixed = start_script(peer_source(choice.format(seed=30, flag=flag)
                                         + textwrap.dedent(both).format(n=n_local),
                                         key_file, ports))
        for proc in writers:
            code, out, err = finish(proc, timeout=60)
            assert code == 0, err
            assert values(out, "DONE") == [True]
        assert mixed.stdout.readline().split() == ["SENT", "True"]
        lines = [home_c.stdout.readline()]
        assert lines[0].startswith("LOCALWROTE "), lines
        open(flag, "w").close()
        got = []
        for proc in readers + [mixed]:
            code, out, err = finish(proc, timeout=30)
            assert code == 0, err
            got += values(out, "GOT")[0]
        line = home_c.stdout.readline()
        assert line.startswith("LOCAL "), line
        got += values(line, "LOCAL")[0]
        counts = collections.Counter(got)
        expected = [(tag, i) for tag in ("w1", "w2") for i in range(n)]
        expected += [(tag, i) for tag in ("home", "x") for i in range(n_local)]
        assert sorted(counts) == sorted(expected)
        assert set(counts.values()) == {1}
    finally:
        for home in (home_a, home_b, home_c):
            stop(home)


def test_a_party_with_both_guards_on_one_channel_meets_others_never_itself(key_file):
    """An input and an output guard of one alternation on the same channel
    homed elsewhere: alone, it times out (its guards never match each other);
    with another program's reader there, its output guard commits."""
    home, port = idle_home(key_file, "A")
    try:
        both = start_script(peer_source("""
            ch = pycsp.Channel("A", connect=("127.0.0.1", PORT))
            cin, cout = +ch, -ch
            guard, msg = pycsp.AltSelect(cin, (cout, "self"), pycsp.TimeoutGuard(0.5))
            print("ALONE", isinstance(guard, pycsp.TimeoutGuard), flush=True)
            guard, msg = pycsp.AltSelect(cin, (cout, "out"), pycsp.TimeoutGuard(20))
            print("CHOSE", repr("cout" if guard is cout else str(guard)), flush=True)
        """, key_file, port))
        assert both.stdout.readline().split() == ["ALONE", "True"]
        out = run_peer("""
            print("GOT", repr((+pycsp.Channel("A", connect=("127.0.0.1", PORT)))()), flush=True)
        """, key_file, port)
        assert values(out, "GOT") == ["out"]
        code, out, err = finish(both)
        assert code == 0, err
        assert values(out, "CHOSE") == ["cout"]
    finally:
        stop(home)


def test_ctrl_c_while_waiting_for_a_claim_withdraws_the_guard(key_file, tmp_path):
    """A real SIGINT in the alternation's wait: KeyboardInterrupt, and the
    guard is withdrawn at its home (the program's next alternation there gets
    the home's message, which nothing took for the interrupted one)."""
    flag = tmp_path / "peer-armed-again"
    home, port = start_home("""
        C = pycsp.Channel("A")
        print("PORT", C.address[1], flush=True)
        import os, time
        while not os.path.exists(FLAG):
            time.sleep(0.05)
        time.sleep(0.5)
        cout = -C
        print("WROTE", pycsp.AltSelect((cout, "x"), pycsp.TimeoutGuard(8))[0] is cout, flush=True)
        time.sleep(120)
    """.replace("FLAG", repr(str(flag))), key_file)
    try:
        out = run_peer("""
            import os, pathlib, signal, threading
            cin = +pycsp.Channel("A", connect=("127.0.0.1", PORT))
            threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
            try:
                pycsp.AltSelect(cin, pycsp.TimeoutGuard(30))
            except KeyboardInterrupt:
                print("INTERRUPTED", True, flush=True)
            pathlib.Path(FLAG).touch()
            print("GOT", repr(pycsp.AltSelect(cin, pycsp.TimeoutGuard(5))[1]), flush=True)
        """.replace("FLAG", repr(str(flag))), key_file, port)
        assert values(out, "INTERRUPTED") == [True]
        assert values(out, "GOT") == ["x"]
        assert home.stdout.readline().split() == ["WROTE", "True"]
    finally:
        stop(home)


# A home of channel A whose process, once FLAG exists, offers "x" for up to 8 s.
LATE_WRITER_HOME = """
    C = pycsp.Channel("A")
    print("PORT", C.address[1], flush=True)
    import os, time
    while not os.path.exists(FLAG):
        time.sleep(0.05)
    time.sleep(0.5)
    cout = -C
    print("WROTE", pycsp.AltSelect((cout, "x"), pycsp.TimeoutGuard(8))[0] is cout, flush=True)
    time.sleep(120)
"""

# The peer's first alternation loses its DISARM (a Ctrl-C between two homes'
# DISARMs, say): its guard stays armed at the home.
LOST_DISARM = """
    import pathlib
    from pycsp.net import _alt
    cin = +pycsp.Channel("A", connect=("127.0.0.1", PORT))
    disarm = _alt._disarm
    _alt._disarm = lambda armed, alternation: None
    print("FIRST", isinstance(pycsp.AltSelect(cin, pycsp.TimeoutGuard(0.3))[0],
                              pycsp.TimeoutGuard), flush=True)
    _alt._disarm = disarm
    pathlib.Path(FLAG).touch()
"""


def test_a_later_alternation_of_a_party_drops_its_earlier_ones_at_the_home(key_file, tmp_path):
    """A party alternates once at a time: its ARM of a later alternation tells
    the home that the earlier ones ended, even if their DISARM never came.
    Else the home claims the earlier one, which never answers, and the later
    one on the same side of the channel waits behind it."""
    flag = tmp_path / "peer-armed-again"
    home, port = start_home(LATE_WRITER_HOME.replace("FLAG", repr(str(flag))), key_file)
    try:
        out = run_peer((textwrap.dedent(LOST_DISARM) + textwrap.dedent("""
            print("GOT", repr(pycsp.AltSelect(cin, pycsp.TimeoutGuard(5))[1]), flush=True)
        """)).replace("FLAG", repr(str(flag))), key_file, port)
        assert values(out, "FIRST") == [True]
        assert values(out, "GOT") == ["x"]
        assert home.stdout.readline().split() == ["WROTE", "True"]
    finally:
        stop(home)


def test_a_party_that_ends_leaves_nothing_armed_at_the_home(key_file, tmp_path):
    """A program whose alternation lost its DISARM ends normally (BYE): the
    home drops that program's guards, so another program's alternation on
    the same side of the channel gets the home's message."""
    flag = tmp_path / "second-armed"
    home, port = start_home(LATE_WRITER_HOME.replace("FLAG", repr(str(flag))), key_file)
    try:
        out = run_peer(LOST_DISARM.replace("FLAG", repr(str(tmp_path / "unused"))), key_file,
                       port)
        assert values(out, "FIRST") == [True]
        out = run_peer("""
            import pathlib
            cin = +pycsp.Channel("A", connect=("127.0.0.1", PORT))
            pathlib.Path(FLAG).touch()
            print("GOT", repr(pycsp.AltSelect(cin, pycsp.TimeoutGuard(5))[1]), flush=True)
        """.replace("FLAG", repr(str(flag))), key_file, port)
        assert values(out, "GOT") == ["x"]
        assert home.stdout.readline().split() == ["WROTE", "True"]
    finally:
        stop(home)
