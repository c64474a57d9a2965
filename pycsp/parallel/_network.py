"""The names of PyCSP 0.9.2's pycsp.parallel that need a network.

Processes on other machines (``sshprocess``, ``clusterprocess``) are
pycsp.net's, imported when the first one is made (pyzmq needed then, not
before: a module that only defines one imports without it), and so is a
channel hosted by another program (``Channel(name, connect=...)``), and so
is the node of a MultiProcess given ``pycsp_host``/``pycsp_port``: the
channels it names are homed there, for other programs to connect to.
``Configuration`` keeps its settings for pycsp.net.
"""
import contextlib

from .._process import Process, factory

# True in the OS process of a MultiProcess given pycsp_host/pycsp_port, while
# its body runs: Channel(name) there is homed on its node.
_listening = False


def listening_address(pycsp_host, pycsp_port):
    """Where a MultiProcess homes the channels it names: (host, port), or None
    when neither is given ('' and None or 0: a plain OS process).  ``host``
    '' is the program's (pycsp.net.configure, PYCSP_HOST, else 127.0.0.1),
    port 0 any free one.  NotImplementedError without pyzmq."""
    if pycsp_host in ("", None) and pycsp_port in (None, 0):
        return None
    if not isinstance(pycsp_host, (str, type(None))):
        raise TypeError(f"pycsp.parallel: pycsp_host is a str, not {type(pycsp_host).__name__}")
    if isinstance(pycsp_port, bool) or not isinstance(pycsp_port, (int, type(None))):
        raise TypeError(f"pycsp.parallel: pycsp_port is an int, not {type(pycsp_port).__name__}")
    if pycsp_port is not None and not 0 <= pycsp_port <= 65535:
        raise ValueError(f"pycsp.parallel: pycsp_port={pycsp_port} is no TCP port")
    _net_module("_node", "a MultiProcess with pycsp_host/pycsp_port (its channels homed for "
                "other programs)")
    return (pycsp_host or "", pycsp_port or 0)


@contextlib.contextmanager
def listening_at(address):
    """While the body of a MultiProcess runs in its OS process: a node of its
    own bound at ``address``, which homes the channels it names."""
    global _listening
    with _net_module("_node", "").listening_at(*address):
        _listening = True
        try:
            yield
        finally:
            _listening = False


def named_channel(name, buffer):
    """``Channel(name)``: homed on this process's node when it listens (a
    pycsp.net HomedChannel), else None (a channel of this program alone)."""
    if not _listening:
        return None
    return _net_module("_channel", "").home(name, buffer)


def homed_channel_types():
    """pycsp.net's channel kinds that Channel(name) may make, once imported."""
    import sys

    module = sys.modules.get("pycsp.net._channel")
    return (module.HomedChannel,) if module is not None else ()


def _net_module(name, what):
    """pycsp.net's module ``name``, imported on first use (pyzmq needed then)."""
    import importlib

    try:
        return importlib.import_module(f"pycsp.net.{name}")
    except ImportError as e:
        raise NotImplementedError(
            f"pycsp.parallel: {what} needs pycsp.net, which needs pyzmq: "
            f"pip install \"pycsp[net]\" ({e})") from None


def remote_channel(name, connect):
    """pycsp.net's channel homed under ``name`` by another program, at ``connect``."""
    if name is None:
        raise ValueError("pycsp.parallel: Channel(connect=...) needs the name the channel is "
                         "homed under in the other program")
    return _net_module("_remote", "Channel(connect=...)").RemoteChannel(name, tuple(connect))


def _net_hosts():
    """pycsp.net's processes on other hosts, imported on first use: pycsp.parallel
    itself needs no pyzmq, and only a program that makes such a process does."""
    return _net_module("_hosts", "a process on another host")


class SSHProcess(Process):
    """PyCSP 0.9.2: ``SSHProcess(fn, *args, ssh_host=..., **kwargs)``, a process
    started on a host over ssh: pycsp.net's SSHProcess (made by this call;
    NotImplementedError without pyzmq).  In a Parallel of pycsp.parallel it
    is watched by a thread of this process."""

    __slots__ = ()

    def __new__(cls, fn, *args, **kwargs):
        return _net_hosts().SSHProcess(fn, *args, **kwargs)


class ClusterProcess(Process):
    """PyCSP 0.9.2: ``ClusterProcess(fn, *args, **kwargs)``, a process placed on
    a host of the allocation (Slurm, or a PBS nodefile): pycsp.net's
    ClusterProcess (made by this call; NotImplementedError without pyzmq)."""

    __slots__ = ()

    def __new__(cls, fn, *args, **kwargs):
        return _net_hosts().ClusterProcess(fn, *args, **kwargs)


_SSH_SETTINGS = ("ssh_host", "ssh_port", "ssh_user", "ssh_password", "ssh_python",
                 "pycsp_host", "pycsp_port")
_CLUSTER_SETTINGS = ("cluster_nodefile", "cluster_pin", "cluster_hint", "cluster_ssh_port",
                     "cluster_python")


def _remote_decorator(kind, names, decorator):
    def decorate(func=None, **settings):
        unknown = set(settings) - set(names)
        if unknown:
            raise TypeError(f"{decorator}: unknown settings {sorted(unknown)}; "
                            f"known: {', '.join(names)}")
        if func is not None:
            return factory(func, kind, decorator)

        def with_settings(fn):
            made = factory(fn, kind, decorator)

            def make_process(*args, **kwargs):
                return kind(fn, *args, **{**settings, **kwargs})

            for attr in ("__name__", "__qualname__", "__doc__", "__module__", "__wrapped__"):
                setattr(make_process, attr, getattr(made, attr))
            return make_process
        return with_settings

    decorate.__name__ = decorator.lstrip("@")
    decorate.__doc__ = (f"PyCSP 0.9.2's {decorator}, on a function ``func`` or with settings "
                        f"(``{decorator}(**settings)``): its processes run on other hosts "
                        f"(pycsp.net's {decorator}; NotImplementedError without pyzmq).")
    return decorate


sshprocess = _remote_decorator(SSHProcess, _SSH_SETTINGS, "@sshprocess")
clusterprocess = _remote_decorator(ClusterProcess, _CLUSTER_SETTINGS, "@clusterprocess")

# PyCSP 0.9.2's keys of Configuration, with its values.
#: Configuration key (PyCSP 0.9.2): how long a connect may take, in seconds.
SOCKETS_CONNECT_TIMEOUT = 0
#: Configuration key (PyCSP 0.9.2): the pause between two connect attempts, in seconds.
SOCKETS_CONNECT_RETRY_DELAY = 1
#: Configuration key (PyCSP 0.9.2): how long pycsp tries to bind its port, in seconds.
SOCKETS_BIND_TIMEOUT = 2
#: Configuration key (PyCSP 0.9.2): the pause between two bind attempts, in seconds.
SOCKETS_BIND_RETRY_DELAY = 3
#: Configuration key (PyCSP 0.9.2): whether a lost connection is an error.
SOCKETS_STRICT_MODE = 4
#: Configuration key (PyCSP 0.9.2): the port that channels are hosted on.
PYCSP_PORT = 5
#: Configuration key (PyCSP 0.9.2): the host that channels are hosted on.
PYCSP_HOST = 6


class Configuration:
    """PyCSP 0.9.2's settings of its sockets: ``Configuration().get(KEY)`` and
    ``.set(KEY, value)``, one instance for the program.  Kept for pycsp.net;
    nothing on one machine reads them."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            instance = super().__new__(cls)
            instance._settings = {
                SOCKETS_CONNECT_TIMEOUT: 2, SOCKETS_CONNECT_RETRY_DELAY: 0.2,
                SOCKETS_BIND_TIMEOUT: 2, SOCKETS_BIND_RETRY_DELAY: 0.2,
                PYCSP_PORT: 0, PYCSP_HOST: "", SOCKETS_STRICT_MODE: False,
            }
            cls._instance = instance
        return cls._instance

    def get(self, key):
        """The value of ``key``; KeyError for a key that is none of the constants."""
        return self._settings[key]

    def set(self, key, value):
        """Set ``key``; KeyError for a key that is none of the constants."""
        if key not in self._settings:
            raise KeyError(f"Configuration has no setting {key!r}")
        self._settings[key] = value
