"""A long-lived program over pycsp.net does not grow with each request: the request/reply
pattern of PyCSP's programs sends a fresh reply channel's end with every request, and
the replying program may drop it without retiring it.  Two programs on 127.0.0.1."""
import pytest
from net_support import finish, run_peer, start_home, stop, values

pytestmark = pytest.mark.timeout(90)

SERVER = """
    requests = pycsp.Channel("requests")
    print("PORT", requests.address[1], flush=True)
    RETIRES = {retires}

    @pycsp.process
    def serve(cin):
        while True:
            x, reply = cin()
            reply(x + 1)
            if RETIRES:
                reply.retire()

    try:
        pycsp.Parallel(serve(+requests))
    except pycsp.ChannelPoisonException:
        pass
"""


def growth(key_file, *, retires, statistic, warm_up, requests, pause=0.0):
    """How much ``csp_ext.shm_stats()[statistic]`` of the requesting program grew over
    ``requests`` requests (after ``warm_up``), each with a fresh reply channel's end,
    its reply read ``pause`` seconds after the request was written."""
    proc, port = start_home(SERVER.format(retires=retires), key_file)
    try:
        out = run_peer(f"""
            import time
            import csp_ext
            requests = -pycsp.Channel("requests", connect=("127.0.0.1", PORT))

            def ask(i):
                reply = pycsp.Channel()
                requests((i, -reply))
                time.sleep({pause})
                return (+reply)()

            assert [ask(i) for i in range({warm_up})] == list(range(1, {warm_up} + 1))
            before = csp_ext.shm_stats()[{statistic!r}]
            assert [ask(i) for i in range({requests})] == list(range(1, {requests} + 1))
            print("GREW", csp_ext.shm_stats()[{statistic!r}] - before)
            requests.channel.poison()
        """, key_file, port)
        code, _, err = finish(proc)
        assert code == 0, err
        return values(out, "GREW")[0]
    finally:
        stop(proc)


def test_reply_ends_that_wait_at_the_home_do_not_leave_a_thread_each(key_file):
    """Each reply is written before its reader waits (the pause), so the requester's
    agent serves it in a worker thread.  Before: a thread (and its waiter record) per
    reply end, kept for the program's life (20 here); now idle workers are reused."""
    assert growth(key_file, retires=False, statistic="waiters", warm_up=3, requests=20,
                  pause=0.05) <= 2


def test_reply_channels_whose_ends_were_retired_are_freed(key_file):
    """The replying program retires each reply end it used: the requester's agent
    forgets the channel it homed for that end, and the requester the end it sent,
    so the channel's memory in the arena is freed.  Before: one arena block (and
    the agent's tables) more per request, for the program's life (299 here)."""
    assert growth(key_file, retires=True, statistic="blocks_in_use", warm_up=50,
                  requests=300) < 100


SERVER_JOINS_BY_NAME = """
    requests = pycsp.Channel("requests")
    print("PORT", requests.address[1], flush=True)
    cin = +requests
    x, reply = cin()
    extra = reply.channel.reader()    # a join made by name at the requester's home
    extra.retire()                    # ... retired: not one of the ends sent away
    try:
        again = reply.channel.writer()
        print("JOIN_AFTER", repr("ok"), flush=True)
        again.retire()
    except Exception as exc:
        print("JOIN_AFTER", repr(type(exc).__name__ + ": " + str(exc)), flush=True)
    reply(x + 1)                      # the end that was sent is still served
    reply.retire()
"""


def test_retiring_a_join_made_by_name_does_not_forget_the_channel(key_file):
    """A program that got an end also joins its channel by name, then retires that
    join: the channel is homed for good (its name is known), and the end sent is
    still served (before: the retire counted as the sent end's, the channel was
    forgotten, and a later join by name failed).  Found by review."""
    proc, port = start_home(SERVER_JOINS_BY_NAME, key_file)
    try:
        out = run_peer('''
            requests = -pycsp.Channel("requests", connect=("127.0.0.1", PORT))
            reply = pycsp.Channel()
            requests((1, -reply))
            print("GOT", (+reply)())
        ''', key_file, port)
        assert values(out, "GOT") == [2], out
        code, sout, err = finish(proc)
        assert code == 0, err
        assert values(sout, "JOIN_AFTER") == ["ok"], sout + err
    finally:
        stop(proc)


SERVER_TWICE = """
    import threading, time
    requests = pycsp.Channel("requests")
    print("PORT", requests.address[1], flush=True)
    cin = +requests
    ends = [cin()[1] for _ in range(3)]   # one join, sent three times
    other = cin()[1]                      # another end of the same channel
    t1 = threading.Thread(target=ends[0], args=("x",))
    t1.start()
    time.sleep(0.3)   # its write waits at the requester's home (a worker has it)
    retires = [threading.Thread(target=e.retire) for e in ends[1:]]
    for t in retires:
        t.start()      # two RETIREs of the join queue behind the write
    for t in [t1, *retires]:
        t.join()
    try:
        other.channel.writer().retire()
        print("JOIN_AFTER", repr("ok"), flush=True)
    except Exception as exc:
        print("JOIN_AFTER", repr(type(exc).__name__), flush=True)
    other("y")
    other.retire()
"""


def test_a_join_retired_twice_is_counted_once(key_file):
    """One end sent three times is one join; two RETIREs of it queue behind a
    write that waits.  Only the first counts: another end of the channel, still
    held, keeps it homed (before: each counted, and it was forgotten).  Found by
    review."""
    proc, port = start_home(SERVER_TWICE, key_file)
    try:
        out = run_peer('''
            import time
            requests = -pycsp.Channel("requests", connect=("127.0.0.1", PORT))
            reply = pycsp.Channel()
            w = -reply
            for _ in range(3):
                requests(("same", w))
            requests(("other", -reply))
            r = +reply
            time.sleep(1.0)
            print("GOT", repr(r()))
            print("GOT", repr(r()))
        ''', key_file, port)
        assert values(out, "GOT") == ["x", "y"], out
        code, sout, err = finish(proc)
        assert code == 0, err
        assert values(sout, "JOIN_AFTER") == ["ok"], sout + err
    finally:
        stop(proc)
