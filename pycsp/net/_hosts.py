"""CSP processes on other hosts: ``@sshprocess`` and ``@clusterprocess``
(PyCSP 0.9.2's names and settings), run by ``Parallel`` like any process.

Such a process is, here, an OS process of the program (pycsp.processes) that
starts ``python -m pycsp.net.node`` on the host through a launcher (ssh, or
srun inside a Slurm allocation: ``_launch``), hands it over what it needs on
the launcher's stdin (the run's CurveZMQ keys; the function, by module and
name; its arguments, channel ends replaced by where their channel is homed),
and waits for the node's answer on the launcher's stdout: the function's
return value or exception.  The node reaches the channels through their
homes here (``_remote``); a channel that is not homed yet is homed when the
process is made, under a name made up for it.

A host that is lost (the launcher ends without an answer: ssh's link broke,
the node was killed, the host went down) raises ``HostLost`` from the
process, a ``ProcessCrashed``: as for a crashed local process, its channel
ends here are poisoned and ``Parallel`` raises it.  The node watches its
stdin: when the launcher here goes, it ends too (fenced: it never outlives
the program that started it).
"""
from __future__ import annotations

import itertools
import os
import pickle
import random
import struct
import subprocess
import sys

import csp_ext
from csp_ext import ShmChannel

from .._ends import find_ends, map_leaves, retire_all
from .._process import Process
from ..parallel._network import _CLUSTER_SETTINGS, _SSH_SETTINGS, _remote_decorator
from ..processes._fork import ProcessCrashed
from . import _launch, _node, _settings
from ._channel import HomedChannel
from ._placement import Placement, allocation_hosts

_RESULT_MAGIC = b"PYCSPRS1"
#: How pycsp.net.node exits when a home fenced it (``node._exit_when_fenced``).
FENCED_EXIT_STATUS = 4
_auto_names = itertools.count(1)


class HostLost(ProcessCrashed):
    """A process on another host ended without an answer: the host, its link or
    the node running the process was lost (the message says which host and
    what its launcher reported), or the node was fenced: a home declared it
    dead (no heartbeat within its timeout) and refused it when it came back.
    Its channel ends here were poisoned."""


class EndOnHost:
    """A channel end as it travels to another host: where its channel is homed."""

    __slots__ = ("name", "address", "is_reader")

    def __init__(self, name: str, address: tuple[str, int], is_reader: bool) -> None:
        self.name, self.address, self.is_reader = name, address, is_reader

    def rebuild(self):
        from ._remote import RemoteChannel

        channel = RemoteChannel(self.name, self.address)
        return channel.reader() if self.is_reader else channel.writer()

    def __reduce__(self):
        return (EndOnHost, (self.name, self.address, self.is_reader))


def _home_of(channel: ShmChannel) -> tuple[str, tuple[str, int]]:
    """(name, address) under which `channel` is homed here, homing it if needed."""
    node = _node.this_node()
    name = node.name_of(channel)
    if name is None:
        name = f"_pycsp_{os.getpid()}_{next(_auto_names)}"
        node.home(channel, name)
    return name, node.address


_LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")


def _for_host(obj, host: str):
    """`obj` with the channel ends in it (in lists, tuples, dicts, sets) made
    EndOnHost; other channel objects cannot go."""
    return map_leaves(obj, lambda x: _end_for_host(x, host))


def _end_for_host(obj, host: str):
    from ..processes import ChannelEndRead, ChannelEndWrite

    if isinstance(obj, (ChannelEndRead, ChannelEndWrite)):
        if obj.retired:
            raise ValueError(f"pycsp.net: a retired channel end cannot go to {host}")
        name, address = _home_of(obj.channel)
        if address[0] in _LOCAL_NAMES and host not in _LOCAL_NAMES:
            raise ValueError(
                f"pycsp.net: channels are homed at {address[0]}:{address[1]}, which {host} "
                f"cannot reach; set the address homes bind, reachable from there, before the "
                f"first network channel: pycsp.net.configure(host=...) or PYCSP_HOST")
        return EndOnHost(name, address, isinstance(obj, ChannelEndRead))
    if isinstance(obj, (ShmChannel, HomedChannel)):
        raise TypeError(f"pycsp.net: pass channel ends (+ch, -ch) to a process on {host}, "
                        f"not the channel {obj!r}")
    return obj


def _function_reference(fn) -> tuple[str, str, str | None]:
    """(module, qualname, file) by which the node finds `fn`."""
    fn = getattr(fn, "__wrapped__", fn)
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", "")
    if not module or "<locals>" in qualname or "<lambda>" in qualname:
        raise TypeError(f"pycsp.net: {fn!r} must be a function defined at a module's top "
                        f"level to run on another host (found there by module and name)")
    mod = sys.modules.get(module)
    path = getattr(mod, "__file__", None)
    if module == "__main__" and not path:
        raise TypeError(f"pycsp.net: {qualname} is defined in an interactive __main__ "
                        f"(python -c, a REPL); define it in a file to run it on another host")
    return module, qualname, os.path.abspath(path) if path else None


class _OnHost:
    """The body of a process on another host, run in this program's OS
    process that stands for it: launch, hand over, wait for the answer."""

    def __init__(self, fn, where: str, launcher_argv_for, python: str | None,
                 args: tuple, kwargs: dict) -> None:
        # Made in the program (not in the OS process that will stand for it):
        # channels are homed by the program's node, which lives as long as it.
        self.where = where
        self.__name__ = getattr(fn, "__name__", "process")
        self.__qualname__ = getattr(fn, "__qualname__", self.__name__)
        settings = _settings.current()
        security = settings.security
        # Where the node reports to the root of the run, in a closed run
        # (_quiescence); a node's own nodes are not reported to the root.
        self.member = random.getrandbits(63) or 1
        run = None
        if _settings.closed_run():
            run = (_node.this_node().address, self.member)
        self.in_run = run is not None
        self.handover = pickle.dumps({
            "run": run,
            "function": _function_reference(fn),
            "args": _for_host(args, where), "kwargs": _for_host(dict(kwargs), where),
            "curve": security.curve, "keys": tuple(security.keys) if security.keys else None,
            "heartbeat": (settings.heartbeat_interval, settings.heartbeat_timeout),
            "sys_path": [p for p in sys.path if p],
        }, protocol=5)
        # The same pycsp and csp_ext as here, found first (a checkout, say).
        node_argv = ["env", f"PYTHONPATH={_node.same_modules_path()}",
                     python or sys.executable, "-m", "pycsp.net.node"]
        # This host: no launcher needed (0.9.2 went through ssh to localhost).
        self.argv = node_argv if where in _LOCAL_NAMES else launcher_argv_for(where, node_argv)

    def __call__(self, *args, **kwargs):
        # args and kwargs are the ends here (poisoned if the host is lost);
        # the handover carries where their channels are homed.
        host, argv, handover = self.where, self.argv, self.handover

        # A member of the run from before it starts until its answer is read:
        # meanwhile its waits are the node's (it reports them to the root).
        node = _node.current() if not _settings.is_node() else None
        last_counts = None
        csp_ext.shm_run_member(True)  # (whether or not a watch of the run knows it)
        try:
            if node is not None:
                node.ask("member", self.member, True)
            try:
                outcome, code, last_counts = self._run_node(argv, handover, args, kwargs,
                                                            watched=node is not None)
            finally:
                if node is not None:
                    node.ask("member", self.member, False)
        finally:
            # Its last counts join this program's (none: the run's sums can
            # never be trusted again here).
            csp_ext.shm_run_member(last_counts)
        if outcome is None:
            # Its channels are poisoned (the ends here may be retired already).
            for end in find_ends(args, kwargs):
                end.channel.poison()
            if code == FENCED_EXIT_STATUS:
                raise HostLost(f"{self.__name__} on {host}: its node was fenced: a home "
                               f"declared it dead (no heartbeat within its timeout) and "
                               f"refused it when it came back; the node ended")
            raise HostLost(f"{self.__name__} on {host}: no answer; its launcher "
                           f"({argv[0]}) exited with status {code} (its own messages, "
                           f"if any, are on stderr above)")
        ok, value = outcome
        if ok:
            return value
        raise value

    def _run_node(self, argv, handover, args, kwargs, watched):
        """Start the node and wait for its answer: (outcome or None, exit
        status, its last counts or None).  ``watched``: the wait for its answer
        is a wait for another program of the run (``_quiescence``)."""
        # stderr is this process's: what the function prints there, and the
        # launcher's own complaints, show up as they come.
        proc = _launch.start(argv, handover, stdout=subprocess.PIPE)
        outcome = code = last_counts = None
        try:
            frame = _read_frame(proc.stdout)
            if frame is not None and frame[0] == _JOINED:
                # The node holds joins of its own now; these ends here stood
                # for them until then (so that no channel retired meanwhile).
                retire_all(args, kwargs)
                frame = _wait_for_answer(proc.stdout) if watched else _read_frame(proc.stdout)
            if frame is not None and frame[0] == _RESULT:
                outcome = pickle.loads(frame[1])
                if self.in_run:
                    frame = _read_frame(proc.stdout)  # the node's last counts, as it ends
                    if frame is not None and frame[0] == _COUNTS \
                            and len(frame[1]) == _COUNT.size:
                        last_counts = _COUNT.unpack(frame[1])
            code = proc.wait()
        finally:
            proc.stdout.close()
            try:
                proc.stdin.close()   # the node's cue to end, if it has not
            except BrokenPipeError:
                pass
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        return outcome, code, last_counts


# The node's answer on its stdout: frames of magic, kind, length, body.
# JOINED: the node has joined every channel of its arguments (its ends here
# can go); RESULT: (ok, value), the function's return value or exception.
_JOINED, _RESULT = b"J", b"R"
# COUNTS: the messages the node sent and received to and from other programs
# in all, written last, as it ends (``_quiescence``).
_COUNTS = b"C"
_COUNT = struct.Struct("!QQ")
_FRAME_HEAD = struct.Struct("!8scI")


def _read_frame(stream):
    """(kind, body) of the next frame, or None at end of file or on garbage."""
    head = stream.read(_FRAME_HEAD.size)
    if len(head) < _FRAME_HEAD.size:
        return None
    magic, kind, size = _FRAME_HEAD.unpack(head)
    if magic != _RESULT_MAGIC:
        return None
    body = stream.read(size)
    return (kind, body) if len(body) == size else None


def _wait_for_answer(stream):
    """The node's answer: a wait for another program (``_quiescence``)."""
    csp_ext.shm_remote_wait(True)
    try:
        return _read_frame(stream)
    finally:
        csp_ext.shm_remote_wait(False)


def write_frame(fd: int, kind: bytes, body: bytes = b"") -> None:
    """In the node: one frame of its answer on `fd` (the launcher's stdout)."""
    data = _FRAME_HEAD.pack(_RESULT_MAGIC, kind, len(body)) + body
    while data:
        data = data[os.write(fd, data):]


def write_last_counts(fd: int) -> None:
    """In the node, as it ends: its last counts of messages (``_COUNTS``), if
    they are (nothing: the root's watch can no longer trust its sums)."""
    from ._quiescence import last_counts

    counts = last_counts()
    if counts is not None:
        write_frame(fd, _COUNTS, _COUNT.pack(*counts))


def write_result(fd: int, ok: bool, value) -> None:
    """In the node: the function's outcome, the last frame."""
    try:
        body = pickle.dumps((ok, value), protocol=5)
    except Exception as e:  # a value or exception that cannot travel
        body = pickle.dumps((False, RuntimeError(
            f"pycsp.net: the process's {'result' if ok else 'exception'} could not be "
            f"pickled to go back: {e!r}: {value!r}")), protocol=5)
    write_frame(fd, _RESULT, body)


class SSHProcess(Process):
    """``SSHProcess(fn, *args, ssh_host=..., **kwargs)``: PyCSP 0.9.2's process
    on another host, started there over ssh (OpenSSH, with your ssh config,
    keys and agent; ``PYCSP_SSH_OPTIONS`` adds options).  Settings:
    ``ssh_host``, ``ssh_port`` (22), ``ssh_user``, ``ssh_python`` (this
    interpreter's path: the hosts share its file system) and, as in 0.9.2,
    ``pycsp_host``/``pycsp_port`` (ignored: the node homes no channel).
    ``ssh_password`` is refused: use a key.

    The function must be defined at the top level of a module or of the
    program's file (the host loads it from there, as 0.9.2 did).  Channel
    ends in the arguments are reached from the host through their channels'
    homes here (a channel not homed yet is homed under a made-up name), so
    homes must bind an address the host reaches: ``configure(host=...)``.
    The ends are handed over: once the host has joined their channels, the
    ends here retire (the process moved away), so give such a process ends
    of its own (``+A``, ``-A``), not ones this program goes on using.

    Args:
        fn: the function.
        args: its positional arguments (picklable; channel ends anywhere in
            lists, tuples and dicts).
        kwargs: its keyword arguments, and the ssh settings above.

    Raises:
        ValueError: ``ssh_password`` given, or channels homed on loopback.
        TypeError: ``fn`` is not defined at a module's top level.
    """

    __slots__ = ()

    def __init__(self, fn, *args, **kwargs):
        opts = {k: kwargs.pop(k) for k in list(kwargs) if k in _SSH_SETTINGS}
        if opts.get("ssh_password"):
            raise ValueError("pycsp.net: ssh_password is not supported: log in with a key "
                             "(ssh-copy-id) or an agent")
        host = opts.get("ssh_host", "localhost")
        launch = _ssh_launcher(opts.get("ssh_port", 22), opts.get("ssh_user"))
        super().__init__(_OnHost(fn, host, launch, opts.get("ssh_python"), args, kwargs),
                         *args, **kwargs)


class ClusterProcess(Process):
    """``ClusterProcess(fn, *args, **kwargs)``: PyCSP 0.9.2's process placed on
    a host of the allocation: inside a Slurm allocation started with srun on
    one of its nodes, else on a host of ``cluster_nodefile`` (default
    ``$PBS_NODEFILE``) over ssh.  Settings: ``cluster_nodefile``,
    ``cluster_pin`` (line X of the host list), ``cluster_hint`` ("blocked",
    "strided" or "local"), ``cluster_ssh_port``, ``cluster_python``.  As for
    SSHProcess, the function is found by its module and name there.

    Args:
        fn: the function.
        args: its positional arguments.
        kwargs: its keyword arguments, and the cluster settings above.

    Raises:
        ValueError: no host list (not in an allocation, no nodefile), or a
            bad ``cluster_hint`` or ``cluster_pin``.
    """

    __slots__ = ()

    def __init__(self, fn, *args, **kwargs):
        opts = {k: kwargs.pop(k) for k in list(kwargs) if k in _CLUSTER_SETTINGS}
        nodefile = opts.get("cluster_nodefile", "$PBS_NODEFILE")
        kind, hosts = allocation_hosts(nodefile)
        placement = _placements.setdefault((kind, tuple(hosts)), Placement(hosts))
        pin = opts.get("cluster_pin")
        host = placement.pinned(pin) if pin is not None else \
            placement.next(opts.get("cluster_hint", "blocked"))
        if kind == "slurm":
            def launch(h, argv):
                return _launch.srun_argv(h, argv, cwd=os.getcwd())
        else:
            launch = _ssh_launcher(opts.get("cluster_ssh_port", 22), None)
        super().__init__(_OnHost(fn, host, launch, opts.get("cluster_python"), args, kwargs),
                         *args, **kwargs)


_placements: dict = {}


def _ssh_launcher(port, user):
    def launch(host, argv):
        return _launch.ssh_argv(host, argv, port=port, user=user, cwd=os.getcwd())
    return launch


sshprocess = _remote_decorator(SSHProcess, _SSH_SETTINGS, "@sshprocess")
sshprocess.__doc__ = """PyCSP 0.9.2's ``@sshprocess``: the function's processes run on
another host, started there over ssh (see SSHProcess)::

    @sshprocess(ssh_host="node2")
    def filt(cin, cout): ...

    Parallel(producer(-A), filt(+A, -B), consumer(+B))

Args:
    func: the function (``@sshprocess`` without settings: ``ssh_host`` is
        then "localhost", run without ssh).
    settings: ``ssh_host``, ``ssh_port`` (22), ``ssh_user``, ``ssh_python``
        (default: this interpreter's path), and 0.9.2's ``pycsp_host``,
        ``pycsp_port`` (accepted, unused); each may also be given, or
        overridden, when a process is made: ``filt(+A, -B, ssh_host="n3")``.

Raises:
    TypeError: a setting that is none of those.
"""
clusterprocess = _remote_decorator(ClusterProcess, _CLUSTER_SETTINGS, "@clusterprocess")
clusterprocess.__doc__ = """PyCSP 0.9.2's ``@clusterprocess``: the function's processes run
on the hosts of the allocation: with Slurm's srun inside a Slurm allocation,
else over ssh on the hosts of a PBS nodefile (see ClusterProcess).

Args:
    func: the function (``@clusterprocess`` without settings).
    settings: ``cluster_nodefile`` ("$PBS_NODEFILE": a path, or $NAME for
        the path in an environment variable), ``cluster_pin`` (line X of the
        host list), ``cluster_hint`` ("blocked": fill each host's lines first;
        "strided": alternate hosts; "local": this host), ``cluster_ssh_port``
        (22), ``cluster_python`` (default: this interpreter's path).

Raises:
    TypeError: a setting that is none of those.
"""
