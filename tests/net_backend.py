"""The shared suite's ``net`` and ``net-curve`` backends: pycsp.net with every channel elsewhere.

A test gets a module that looks like a backend: pycsp.net's names (those of
pycsp.processes, every CSP process an OS process), except that ``Channel(name=None,
buffer=0)`` homes a new channel in one of two home programs (``net_home.py``,
started once per session on 127.0.0.1) and returns what a user program gets
from ``pycsp.net.Channel(name, connect=(host, port))``: a RemoteChannel, whose
every join, read, write, poison and retire is a round trip over TCP.  The homes
take turns (channel 1 at home A, channel 2 at home B, ...), so an alternation
over two channels spans two homes.

"net" uses ``security="none"`` (which warns: the warning is asked for, and
filtered here); "net-curve" uses CurveZMQ with a key file made for the session
by ``python -m pycsp.net.keys new``.  A program has one security for all its
links (``pycsp.net.configure`` is fixed at its first channel), so one test run
takes one of the two.

What a test sees differently from pycsp.processes: a channel's ``name`` is the
one it is homed under, unique in its home for the session: ``Channel("A")`` is
"A" the first time, "A~17" after that; ``Channel()`` is "channel~18".
"""
import itertools
import os
import secrets
import subprocess
import sys
import types
import warnings
from multiprocessing.connection import Client

NET_BACKENDS = ("net", "net-curve")

_HERE = os.path.dirname(os.path.abspath(__file__))
_START_TIMEOUT = 60


class Homes:
    """The session's two home programs, and which one homes the next channel."""

    def __init__(self, security_or_key_file, env):
        self.authkey = secrets.token_bytes(32)
        env = dict(env, PYCSP_TEST_HOME_AUTHKEY=self.authkey.hex())
        self.programs = [subprocess.Popen(
            [sys.executable, os.path.join(_HERE, "net_home.py"), security_or_key_file],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
            for _ in range(2)]
        self.control, self.channels = [], []
        for program in self.programs:
            line = program.stdout.readline().split()
            if not line or line[0] != "READY":
                self.stop()
                raise RuntimeError(f"a net_home.py did not start: {line!r}")
            self.control.append(("127.0.0.1", int(line[1])))
            self.channels.append(("127.0.0.1", int(line[2])))
        self.turns = itertools.count()

    def ask(self, which, request):
        with Client(self.control[which], authkey=self.authkey) as conn:
            conn.send(request)
            return conn.recv()

    def home(self, name, buffer):
        """Home a new channel in the next home: (its unique name, the home's address)."""
        which = next(self.turns) % len(self.programs)
        outcome, detail = self.ask(which, ("home", name, buffer))
        if outcome == "error":
            raise detail
        return detail, self.channels[which]

    def stop(self):
        for which, program in enumerate(self.programs):
            if program.poll() is None and which < len(self.control):
                try:
                    self.ask(which, ("stop",))
                except OSError:
                    pass
            try:
                program.stdin.close()
                program.stdout.close()
                program.wait(timeout=10)
            except subprocess.TimeoutExpired:
                program.kill()
                program.wait()


def configure_this_program(variant, key_file):
    """Set this (test) program's links up for ``variant``, before its first channel."""
    import pycsp.net

    if variant == "net":
        with warnings.catch_warnings():
            # Deliberate: this variant tests the links without CurveZMQ.
            warnings.simplefilter("ignore", pycsp.net.InsecureLinkWarning)
            pycsp.net.configure(security="none")
    else:
        pycsp.net.configure(key_file=key_file)


def backend_module(variant, homes):
    """A module with pycsp.net's names whose Channel homes channels in ``homes``."""
    import pycsp.net as net

    class _HomedElsewhere(type):
        def __call__(cls, name=None, buffer=0):
            unique, address = homes.home(name, buffer)
            return net.Channel(unique, connect=address)

        def __instancecheck__(cls, obj):
            return isinstance(obj, net.Channel)

        def __subclasscheck__(cls, other):
            return issubclass(other, net.Channel)

    class Channel(metaclass=_HomedElsewhere):
        """``Channel(name=None, buffer=0)``: a new channel homed in another program."""

        __class_getitem__ = classmethod(types.GenericAlias)

    module = types.ModuleType(f"pycsp.{variant}", net.__doc__)
    for name in dir(net):
        if not name.startswith("__"):
            setattr(module, name, getattr(net, name))
    module.__all__ = list(net.__all__)
    module.Channel = Channel
    return module


# Why a test does not run on the net backends (``@pytest.mark.local_only(reason)``).
DEADLOCK_IS_LOCAL = (
    "expects DeadlockError: a program raises it when all its processes wait on its own "
    "channels; one that waits on a channel homed in another program may be woken from "
    "there, so no deadlock is declared (termination detection across programs, NET.md, "
    "is not built)")
STATISTICS_ARE_THE_HOMES = (
    "reads Channel.statistics(): the home's in-process counters; a channel reached with "
    "connect= has none")
MULTIPLYING_MAKES_CHANNELS = (
    "Channel * n makes n new channels: a channel reached with connect= stands for one "
    "channel that another program homes, and cannot make more")
DUMP_SEES_THE_ARENA = (
    "dump_state reports what this program's arena records: a process waiting in a round "
    "trip to another program's home waits on no channel of the arena")
