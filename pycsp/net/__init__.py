"""pycsp.net: channels between programs (and hosts), over ZeroMQ with CurveZMQ.

``import pycsp.net as pycsp`` gives pycsp.processes' names (every CSP process
an OS process) plus channels that other programs reach::

    A = pycsp.Channel("A")                          # homed here; A.address -> (host, port)
    B = pycsp.Channel("B", connect=(host, port))    # homed in another program

``MultiProcess(fn, pycsp_host=, pycsp_port=)`` (PyCSP 0.9.2's) runs ``fn`` as
an OS process with a node of its own at that address: the channels it names
are homed there.

Issue #16 so far: plain reads and writes (rendezvous and buffered,
any-to-any), poison and retire across programs, secured by a key file both
programs name (``python -m pycsp.net.keys new FILE``, then
``pycsp.net.configure(key_file=FILE)``); channels and their ends sent in
messages to other programs (``_mobile``); big numpy buffers as frames of
their own; processes of other programs that die or go silent past the
heartbeat timeout: the channels of the ends they joined are poisoned at the
home, and one that comes back is fenced (``_liveness``, ``_heartbeat``);
processes on other hosts (``_hosts``, with the launchers ``_launch`` and
``_placement``); alternation over channels homed in several programs
(``_alt`` the alternating side, ``_arms`` the home's, with the core's proxy
offers).  Needs pyzmq
(``pip install "pycsp[net]"``); nothing else of pycsp imports it.
"""
from typing import TYPE_CHECKING

try:
    import zmq as _zmq  # noqa: F401 - only to say what is missing
except ImportError:  # pragma: no cover - the test environment has it
    raise ImportError('pycsp.net needs pyzmq: pip install "pycsp[net]"') from None

from .. import _ends
from .._errors import ChannelBindException as ChannelBindException
from .._errors import ChannelConnectException as ChannelConnectException
from .._errors import ChannelLostException as ChannelLostException
from .._errors import ChannelSocketException as ChannelSocketException
from .._names import VERSION
from ..processes import *  # noqa: F403 - the processes backend's names
from ..processes import __all__ as _processes_names
from ..parallel._multiprocess import MultiProcess as MultiProcess
from ..parallel._multiprocess import multiprocess as multiprocess
from . import _mobile  # noqa: F401 - channels and ends travel in messages between programs
from ._channel import Channel as Channel, HomedChannel
from ._channel import ChannelEndRead as ChannelEndRead, ChannelEndWrite as ChannelEndWrite
from ._guards import InputGuard as InputGuard, OutputGuard as OutputGuard
from ._hosts import ClusterProcess as ClusterProcess, HostLost as HostLost
from ._hosts import SSHProcess as SSHProcess, clusterprocess as clusterprocess
from ._hosts import sshprocess as sshprocess
from ._link import InsecureLinkWarning as InsecureLinkWarning
from ._remote import RemoteChannel, RemoteChannelEndRead, RemoteChannelEndWrite
from ._settings import configure as configure

#: ``(major, minor, patch, "net")``: the version of pycsp and the backend's name.
version = VERSION + ("net",)

# Poison and retire propagation, and Process * n, find these as they find the core's.
_ends.register_end_types(read_ends=(RemoteChannelEndRead,), write_ends=(RemoteChannelEndWrite,),
                         channels=(HomedChannel, RemoteChannel))

if not TYPE_CHECKING:
    __all__ = list(_processes_names) + [
        "ChannelSocketException", "ChannelConnectException", "ChannelBindException",
        "ChannelLostException", "InsecureLinkWarning", "configure",
        "SSHProcess", "sshprocess", "ClusterProcess", "clusterprocess", "HostLost",
        "MultiProcess", "multiprocess",
    ]
