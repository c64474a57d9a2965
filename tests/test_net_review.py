"""pycsp.net: cases where the day's three branches (mobile ends, out-of-band frames,
node death and fencing) meet, found in review.  Two programs on 127.0.0.1 (net_support)."""
import time

import pytest
from net_support import finish, run_peer, start_home, stop, values

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
