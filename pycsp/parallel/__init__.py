"""pycsp.parallel: PyCSP 0.9.2's module of that name.

``@process`` runs a CSP process as an OS thread, ``@multiprocess`` (or
``MultiProcess(fn, ...)``) as an OS process, and both kinds mix in one
``Parallel``, ``Sequence`` or ``Spawn``: they share pycsp.processes'
shared-memory channels, which every thread of every process can use.
Deadlock is detected across both kinds.  ``sshprocess`` and
``clusterprocess`` make pycsp.net's processes on other hosts, and
``Channel(name, connect=...)`` reaches a channel that another program homes
with pycsp.net (pyzmq needed then).
"""
from typing import TYPE_CHECKING

import csp_ext as _csp_ext

from .. import processes as _processes  # the shared arena (made here unless a spawned child)
from .._errors import ChannelBindException as ChannelBindException
from .._errors import ChannelConnectException as ChannelConnectException
from .._errors import ChannelLostException as ChannelLostException
from .._errors import ChannelSocketException as ChannelSocketException
from .._errors import FatalException as FatalException, InfoException as InfoException
from .._names import *  # noqa: F403 - the API's names
from .._names import API_NAMES, VERSION
from .._process import io as io  # a plain call, as in 0.9.2's pycsp.parallel
from ._mixed import runtime as _runtime, shutdown as shutdown
from ._multiprocess import MultiProcess as MultiProcess, multiprocess as multiprocess
from ._network import PYCSP_HOST as PYCSP_HOST, PYCSP_PORT as PYCSP_PORT
from ._network import SOCKETS_BIND_RETRY_DELAY as SOCKETS_BIND_RETRY_DELAY
from ._network import SOCKETS_BIND_TIMEOUT as SOCKETS_BIND_TIMEOUT
from ._network import SOCKETS_CONNECT_RETRY_DELAY as SOCKETS_CONNECT_RETRY_DELAY
from ._network import SOCKETS_CONNECT_TIMEOUT as SOCKETS_CONNECT_TIMEOUT
from ._network import SOCKETS_STRICT_MODE as SOCKETS_STRICT_MODE
from ._network import ClusterProcess as ClusterProcess, Configuration as Configuration
from ._network import SSHProcess as SSHProcess, clusterprocess as clusterprocess
from ._network import sshprocess as sshprocess

if TYPE_CHECKING:  # what Channel(...) makes without connect= (with it: pycsp.net's RemoteChannel)
    from csp_ext import ShmChannel

    Channel = ShmChannel
else:
    from ._channel import Channel

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


# Type checkers see no __all__ (they cannot read API_NAMES): they export
# every public name bound here, which is the same list.
if not TYPE_CHECKING:
    __all__ = API_NAMES + [
        "MultiProcess", "multiprocess", "SSHProcess", "sshprocess", "ClusterProcess",
        "clusterprocess", "ProcessCrashed", "ChannelSocketException", "ChannelConnectException",
        "ChannelBindException", "ChannelLostException", "InfoException", "FatalException", "Io",
        "Configuration", "SOCKETS_CONNECT_TIMEOUT", "SOCKETS_CONNECT_RETRY_DELAY",
        "SOCKETS_BIND_TIMEOUT", "SOCKETS_BIND_RETRY_DELAY", "PYCSP_PORT", "PYCSP_HOST",
        "SOCKETS_STRICT_MODE",
    ]
