"""A child that ends without returning, or with an exception.

usage: child_dies.py MODE     (MODE: exit3 | exit0 | segv | exception)

exit3:     the child calls os._exit(3).
exit0:     the child calls os._exit(0): status 0, but no return value either.
segv:      the child crashes in C (ctypes.string_at(0)).
exception: the child raises BoomError("boom 42", 7) deep in a helper.
In every mode a peer is blocked reading the child's channel and another peer
is blocked writing to it; both must be poisoned out.  The main program
reports what Parallel raised.
"""
import os
import sys
import time

import pycsp.processes as csp
from _common import finish, say

MODE = sys.argv[1]


class BoomError(Exception):
    pass


def deep_helper_that_fails(n):
    if n == 0:
        raise BoomError("boom 42", 7)
    deep_helper_that_fails(n - 1)


@csp.process
def victim(cout, cin):
    say("child", os.getpid())
    time.sleep(0.3)  # let the peers block
    if MODE == "exit3":
        os._exit(3)
    elif MODE == "exit0":
        os._exit(0)
    elif MODE == "segv":
        import ctypes

        ctypes.string_at(0)
    elif MODE == "exception":
        deep_helper_that_fails(3)
    say("UNEXPECTED victim went on")


@csp.process
def peer_reader(cin):
    say("child", os.getpid())
    try:
        cin()
        say("UNEXPECTED reader got a message")
    except csp.ChannelPoisonException:
        say("peer poisoned: reader")
        raise


@csp.process
def peer_writer(cout):
    say("child", os.getpid())
    try:
        cout("x")
        say("UNEXPECTED writer delivered")
    except csp.ChannelPoisonException:
        say("peer poisoned: writer")
        raise


out_ch, in_ch = csp.Channel(), csp.Channel()
try:
    csp.Parallel(victim(out_ch.writer(), in_ch.reader()),
                 peer_reader(out_ch.reader()), peer_writer(in_ch.writer()))
    say("no exception")
except csp.ProcessCrashed as exc:
    say("ProcessCrashed:", exc)
except BoomError as exc:
    say("BoomError:", repr(exc.args))
    say("same class:", type(exc) is BoomError)
    cause = exc.__cause__
    text = str(cause) if cause is not None else ""
    say("cause type:", type(cause).__name__)
    say("cause has helper:", "deep_helper_that_fails" in text)
    say("cause has victim:", "in victim" in text)
    say("cause has message:", "boom 42" in text)
except Exception as exc:
    say("OTHER:", type(exc).__name__, exc)
finish()
