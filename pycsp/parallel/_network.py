"""The names of PyCSP 0.9.2's pycsp.parallel that need a network.

Processes on other machines (``sshprocess``, ``clusterprocess``), channels
hosted by another interpreter (``Channel(connect=...)``) and where a process
listens (``pycsp_host``, ``pycsp_port``) come with pycsp.net, which is not
built yet: until then each raises NotImplementedError saying so, when a
process or channel is made (a module that only defines such a process still
imports).  ``Configuration`` keeps its settings for pycsp.net.
"""
from .._process import Process, factory

_NOT_YET = "comes with pycsp.net (running beyond one machine), which is not built yet"


def refuse_listening_address(pycsp_host, pycsp_port):
    """NotImplementedError unless (host, port) say "anywhere" ('' and None or 0)."""
    if pycsp_host not in ("", None) or pycsp_port not in (None, 0):
        raise NotImplementedError(
            f"pycsp.parallel: pycsp_host={pycsp_host!r}, pycsp_port={pycsp_port!r} set where a "
            f"process listens for other interpreters; that {_NOT_YET}.  Leave them out: the "
            f"channels of pycsp.parallel are shared memory between the threads and OS "
            f"processes of this program")


def refuse_connect(connect):
    raise NotImplementedError(
        f"pycsp.parallel: Channel(connect={connect!r}) reaches a channel hosted by another "
        f"interpreter; that {_NOT_YET}.  A Channel made here is shared by every thread "
        f"and OS process of this program (pass it, or its ends, to them)")


class _RemoteProcess(Process):
    """A process that would run on another machine: making one raises."""

    __slots__ = ()
    where = ""

    def __init__(self, fn, *args, **kwargs):
        raise NotImplementedError(
            f"pycsp.parallel: {type(self).__name__} runs {getattr(fn, '__name__', fn)!r} "
            f"{self.where}; that {_NOT_YET}.  On this machine use @multiprocess (an OS "
            f"process) or @process (a thread)")


class SSHProcess(_RemoteProcess):
    """PyCSP 0.9.2: ``SSHProcess(fn, *args, **kwargs)``, a process started on a
    host over ssh.  Not yet: making one raises NotImplementedError (see the
    module's doc)."""

    __slots__ = ()
    where = "on another host over ssh"


class ClusterProcess(_RemoteProcess):
    """PyCSP 0.9.2: ``ClusterProcess(fn, *args, **kwargs)``, a process placed on
    a node of a cluster.  Not yet: making one raises NotImplementedError (see
    the module's doc)."""

    __slots__ = ()
    where = "on a node of a cluster"


def _remote_decorator(kind, decorator):
    def decorate(func=None, **settings):
        if func is not None:
            return factory(func, kind, decorator)
        return lambda fn: factory(fn, kind, decorator)

    decorate.__name__ = decorator.lstrip("@")
    decorate.__doc__ = (f"PyCSP 0.9.2's {decorator}, on a function ``func`` or with settings "
                        f"(``{decorator}(**settings)``): making a process with it raises "
                        f"NotImplementedError; it {_NOT_YET}.")
    return decorate


sshprocess = _remote_decorator(SSHProcess, "@sshprocess")
clusterprocess = _remote_decorator(ClusterProcess, "@clusterprocess")

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
