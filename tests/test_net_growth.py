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


def test_reply_ends_that_wait_at_the_home_do_not_leave_a_thread_each(key_file):
    """Each reply is written before its reader waits, so the requester's agent serves
    it in a worker thread.  Before: a thread (and its waiter record) per reply end, kept
    for the program's life; now idle workers are reused."""
    proc, port = start_home(SERVER.format(retires=False), key_file)
    try:
        out = run_peer("""
            import time
            import csp_ext
            requests = -pycsp.Channel("requests", connect=("127.0.0.1", PORT))

            def ask(i):
                reply = pycsp.Channel()
                requests((i, -reply))
                time.sleep(0.05)  # the reply comes first: it waits at this home
                return (+reply)()

            assert [ask(i) for i in range(3)] == [1, 2, 3]
            before = csp_ext.shm_stats()["waiters"]
            assert [ask(i) for i in range(20)] == list(range(1, 21))
            print("GREW", csp_ext.shm_stats()["waiters"] - before)
            requests.channel.poison()
        """, key_file, port)
        assert values(out, "GREW")[0] <= 2, out
        code, _, err = finish(proc)
        assert code == 0, err
    finally:
        stop(proc)


def test_reply_channels_whose_ends_were_retired_are_freed(key_file):
    """The replying program retires each reply end it used: the requester's agent
    forgets the channel it homed for that end, and the requester the end it sent,
    so the channel's memory in the arena is freed.  Before: one arena block (and
    the agent's tables) more per request, for the program's life."""
    proc, port = start_home(SERVER.format(retires=True), key_file)
    try:
        out = run_peer("""
            import csp_ext
            requests = -pycsp.Channel("requests", connect=("127.0.0.1", PORT))

            def ask(i):
                reply = pycsp.Channel()
                requests((i, -reply))
                return (+reply)()

            assert [ask(i) for i in range(50)] == list(range(1, 51))
            before = csp_ext.shm_stats()["blocks_in_use"]
            assert [ask(i) for i in range(300)] == list(range(1, 301))
            print("GREW", csp_ext.shm_stats()["blocks_in_use"] - before)
            requests.channel.poison()
        """, key_file, port)
        assert values(out, "GREW")[0] < 100, out
        code, _, err = finish(proc)
        assert code == 0, err
    finally:
        stop(proc)
