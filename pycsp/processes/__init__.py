"""pycsp.processes: every CSP process is an OS process.

Channels, their queues and messages live in a shared arena made by csp_ext
(one memfd, nothing in /dev/shm); messages travel pickled (protocol 5, large
buffers copied once).  Processes start by fork (Linux), or by "spawn" in a
fresh Python: see set_start_method.
"""
from typing import TYPE_CHECKING

import csp_ext as _csp_ext

from .._names import *  # noqa: F403 - the API's names
from .._names import API_NAMES, VERSION
from .._process import io as io  # a plain call here
from . import _spawn
from ._fork import ProcessCrashed as ProcessCrashed, get_start_method as get_start_method
from ._fork import runtime as _runtime, set_start_method as set_start_method

Channel = _csp_ext.ShmChannel
ChannelEndRead = _csp_ext.ShmChannelEndRead
ChannelEndWrite = _csp_ext.ShmChannelEndWrite
Parallel = _runtime.Parallel
Sequence = _runtime.Sequence
Spawn = _runtime.Spawn
shutdown = _runtime.shutdown
#: ``(major, minor, patch, "processes")``: the version of pycsp and the backend's name.
version = VERSION + ("processes",)

# Type checkers see no __all__ (they cannot read API_NAMES): they export
# every public name bound here, which is the same list.
if not TYPE_CHECKING:
    __all__ = API_NAMES + ["ProcessCrashed", "set_start_method", "get_start_method"]

if not _spawn.inheriting():  # a spawned child maps its parent's arena instead
    _csp_ext.shm_init()
