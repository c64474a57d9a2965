"""pycsp.parallel: PyCSP 0.9.2's module of that name.

``@process`` runs a CSP process as an OS thread, ``@multiprocess`` (or
``MultiProcess(fn, ...)``) as an OS process, and both kinds mix in one
``Parallel``, ``Sequence`` or ``Spawn``: they share pycsp.processes'
shared-memory channels, which every thread of every process can use.
Deadlock is detected across both kinds.  The names that need a network
(``sshprocess``, ``clusterprocess``, ``Channel(connect=...)``) raise
NotImplementedError until pycsp.net exists.
"""
import csp_ext as _csp_ext

from .. import processes as _processes  # the shared arena (made here unless a spawned child)
from .._errors import (ChannelBindException, ChannelConnectException, ChannelLostException,
                       ChannelSocketException, FatalException, InfoException)
from .._names import *  # noqa: F403 - the API's names
from .._names import API_NAMES, VERSION
from .._process import io  # noqa: F401 - a plain call, as in 0.9.2's pycsp.parallel
from ._channel import Channel
from ._mixed import runtime as _runtime, shutdown
from ._multiprocess import MultiProcess, multiprocess
from ._network import (PYCSP_HOST, PYCSP_PORT, SOCKETS_BIND_RETRY_DELAY, SOCKETS_BIND_TIMEOUT,
                       SOCKETS_CONNECT_RETRY_DELAY, SOCKETS_CONNECT_TIMEOUT, SOCKETS_STRICT_MODE,
                       ClusterProcess, Configuration, SSHProcess, clusterprocess, sshprocess)

ProcessCrashed = _processes.ProcessCrashed  # what Parallel raises for a MultiProcess that died
ChannelEndRead = _csp_ext.ShmChannelEndRead
ChannelEndWrite = _csp_ext.ShmChannelEndWrite
Parallel = _runtime.Parallel
Sequence = _runtime.Sequence
Spawn = _runtime.Spawn
version = VERSION + ("parallel",)


class Io:
    """PyCSP 0.9.2 exported this empty class (pycsp.parallel.compat); kept so
    that programs importing it run."""


__all__ = API_NAMES + [
    "MultiProcess", "multiprocess", "SSHProcess", "sshprocess", "ClusterProcess",
    "clusterprocess", "ProcessCrashed", "ChannelSocketException", "ChannelConnectException",
    "ChannelBindException", "ChannelLostException", "InfoException", "FatalException", "Io",
    "Configuration", "SOCKETS_CONNECT_TIMEOUT", "SOCKETS_CONNECT_RETRY_DELAY",
    "SOCKETS_BIND_TIMEOUT", "SOCKETS_BIND_RETRY_DELAY", "PYCSP_PORT", "PYCSP_HOST",
    "SOCKETS_STRICT_MODE",
]
