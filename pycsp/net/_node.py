"""This program's node: its agent process, started when the first channel is homed here.

The agent (``_agent``) is a fresh interpreter that maps the program's arena;
channels are handed to it through a shared-memory registry channel, so that
any process of the program (the main one or a forked child) can home one.
The agent counts as a running process from before it starts (its record is
counted here and adopted there), and stops when the program exits: the
program first waits for its spawned processes (``shutdown()``), then closes
the agent's stdin and waits for it, while the agent still serves the parties
of other programs that hold joins (at most ``linger`` seconds: see
``configure``) and sends what it queued.
"""
from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import os
import pickle
import random
import select
import subprocess
import sys
import threading

import csp_ext

from .._errors import ChannelBindException
from ..processes._forker import run_on_a_lasting_thread
from . import _settings
from ._agent import BOOT

_START_TIMEOUT = 30.0  # seconds for a new interpreter to import pycsp and bind
_STOP_TIMEOUT = 5.0

_lock = threading.Lock()
_node: Node | None = None


class Node:
    def __init__(self, settings: _settings.Settings) -> None:
        self.settings = settings
        # Names this program's home: an end that arrives with it is one of ours.
        self.home_number = random.getrandbits(63) or 1
        # What this process homed (a channel's hash and equality are its own).
        self.homed_here: dict[csp_ext.ShmChannel, str] = {}
        registry = csp_ext.ShmChannel(buffer=16)
        self.registry_out = registry.writer()
        record = csp_ext.shm_precount()  # counted as running from before it starts
        try:
            self.process = run_on_a_lasting_thread(self._start)
        except BaseException:
            csp_ext.shm_forget(record)
            raise
        csp_ext.shm_set_pid(record, self.process.pid)
        config = {"record": record, "parent": os.getpid(), "registry": registry.reader(),
                  "security": settings.security, "host": settings.host, "port": settings.port,
                  "max_message": settings.max_message, "bind_timeout": settings.bind_timeout,
                  "bind_retry_delay": settings.bind_retry_delay, "linger": settings.linger,
                  "home": self.home_number,
                  "heartbeat_timeout": settings.heartbeat_timeout}
        self.process.stdin.write(pickle.dumps(config))
        self.process.stdin.flush()
        line = self._first_line()
        if not line.startswith("OK "):
            self._reap()
            raise ChannelBindException((settings.host, settings.port),
                                       f"pycsp.net: the node's agent {line.strip() or 'died'}")
        self.address = (settings.host, int(line.split()[1]))

    @staticmethod
    def _start():
        # From a thread that lives as long as the program: the agent dies
        # with the thread that started it (PR_SET_PDEATHSIG).
        fd = csp_ext.shm_arena_fd()
        return subprocess.Popen([sys.executable, "-c", BOOT, str(fd)], pass_fds=(fd,),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                env=_same_modules_env())

    def _first_line(self):
        ready, _, _ = select.select([self.process.stdout], [], [], _START_TIMEOUT)
        return self.process.stdout.readline().decode("utf-8", "replace") if ready else ""

    def home(self, channel: csp_ext.ShmChannel, name: str) -> None:
        """Make ``channel`` reachable under ``name``; ValueError if the name is taken."""
        refused = self.ask("home", name, channel)
        if refused is not None:
            raise ValueError(f"pycsp.net: {refused}")
        self.homed_here[channel] = name

    def ask(self, kind: str, name: object = None, thing: object = None):
        """The agent's answer to one registry request (``_agent.Agent.answer``)."""
        answer = csp_ext.ShmChannel(buffer=1)
        self.registry_out((kind, name, thing, answer.writer()))
        return answer.reader()()

    def name_of(self, channel: csp_ext.ShmChannel) -> str | None:
        """The name this process homed ``channel`` under, or None."""
        return self.homed_here.get(channel)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()  # the agent's signal to send what it queued and end
        try:
            self.process.wait(self.settings.linger + _STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._reap()

    def _reap(self):
        try:
            self.process.stdin.close()
        except OSError:
            pass
        code = self.process.wait()
        csp_ext.shm_reap(self.process.pid, code != 0)


def same_modules_path() -> str:
    """PYTHONPATH with the folders that this program's pycsp and csp_ext came
    from first: the agent must map the arena with the same csp_ext (a
    checkout's in-place build, say) as the program, and a node on another
    host of a shared file system must run the same pycsp."""
    import pycsp

    folders = [os.path.dirname(os.path.dirname(os.path.abspath(pycsp.__file__))),
               os.path.dirname(os.path.abspath(csp_ext.__file__))]
    rest = os.environ.get("PYTHONPATH")
    return os.pathsep.join(dict.fromkeys(folders + ([rest] if rest else [])))


def _same_modules_env():
    return dict(os.environ, PYTHONPATH=same_modules_path())


def current() -> Node | None:
    """This program's node if its agent was started, else None."""
    return _node


def this_node() -> Node:
    """This program's node, its agent started on the first call (main program only)."""
    global _node
    with _lock:
        if _node is None:
            if multiprocessing.parent_process() is not None:
                raise RuntimeError("pycsp.net: home network channels in the main program (or "
                                   "a child it forked), not in a child started by 'spawn'")
            _node = Node(_settings.current())
            atexit.register(_stop_at_exit, os.getpid())
        return _node


@contextlib.contextmanager
def listening_at(host: str, port: int):
    """This OS process's node, while the body runs, is one of its own bound at
    (host, port) (host '': the program's setting; port 0: any free one):
    PyCSP 0.9.2's MultiProcess(pycsp_host=, pycsp_port=).  Its children
    forked meanwhile home their channels on it too.  On the way out it serves
    the parties of other programs that still hold ends (``linger``), then stops."""
    global _node
    if multiprocessing.parent_process() is not None:
        raise RuntimeError("pycsp.net: a process that listens for other programs runs in "
                           "the main program or a child it forked, not one started by 'spawn'")
    settings = _settings.current()
    settings = settings._replace(host=host or settings.host, port=port)
    own = Node(settings)
    with _lock:
        inherited, _node = _node, own
    try:
        yield own
    finally:
        with _lock:
            _node = inherited
        own.stop()


def _stop_at_exit(pid):
    if _node is None or os.getpid() != pid:
        return
    from .. import processes

    processes.shutdown()  # its spawned processes may still use channels homed here
    _node.stop()
