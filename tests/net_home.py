"""A home program for the shared suite's ``net`` backends: it homes channels on request.

Started once per test session (``net_backend.Homes``), twice: every channel a
test makes is homed in one of these programs and reached over TCP.

    python tests/net_home.py none          # security="none"
    python tests/net_home.py KEY_FILE      # CurveZMQ with that key file

It prints ``READY <control port> <channel port>``, then serves requests on
the control port (multiprocessing.connection, the authkey in the environment
as PYCSP_TEST_HOME_AUTHKEY, hex), one connection per request so that any
process of the test program, forked or not, may ask:

    ("home", name, buffer) -> ("ok", name it is homed under) or ("error", the exception)
    ("stop",)              -> ("ok", None), then the program ends

Names are made unique here: a name keeps itself the first time, a later
channel of that name (a session makes many called "A") and a channel
without a name get a number ("A~17", "channel~18").  The channels stay
homed until the program ends.  It also ends when its stdin
closes: the test run that started it is gone.
"""
import os
import sys
import threading
import warnings
from multiprocessing.connection import Listener

# The agent's linger at exit: a session's tests leave many ends unretired.
_LINGER = 0.5


def _end_with_the_test_run():
    while os.read(0, 4096):
        pass
    os._exit(0)


def main():
    where = sys.argv[1]
    warnings.simplefilter("ignore")  # security="none" warns: asked for here on purpose
    import pycsp.net as pycsp

    if where == "none":
        pycsp.configure(security="none", linger=_LINGER)
    else:
        pycsp.configure(key_file=where, linger=_LINGER)
    homed = [pycsp.Channel("_home_started")]  # starts the agent: its port is known
    listener = Listener(("127.0.0.1", 0), authkey=bytes.fromhex(
        os.environ["PYCSP_TEST_HOME_AUTHKEY"]))
    threading.Thread(target=_end_with_the_test_run, daemon=True).start()
    print("READY", listener.address[1], homed[0].address[1], flush=True)
    serial, taken = 0, set()
    while True:
        try:
            conn = listener.accept()
        except Exception:  # a connection that failed the authkey: not ours
            continue
        with conn:
            request = conn.recv()
            if request[0] == "stop":
                conn.send(("ok", None))
                return
            _, name, buffer = request
            serial += 1
            unique = name if name and name not in taken else f"{name or 'channel'}~{serial}"
            taken.add(unique)
            try:
                homed.append(pycsp.Channel(unique, buffer=buffer))
            except Exception as exc:  # raised again in the test (a bad buffer, say)
                conn.send(("error", exc))
            else:
                conn.send(("ok", unique))


if __name__ == "__main__":
    main()
