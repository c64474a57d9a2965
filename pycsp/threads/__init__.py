"""pycsp.threads: every CSP process is an OS thread.

The channel machinery is the C core (csp_ext); a blocked process releases the
GIL and sleeps on a futex after a short spin.
"""
from typing import TYPE_CHECKING

from csp_ext import Channel as Channel, ChannelEndRead as ChannelEndRead
from csp_ext import ChannelEndWrite as ChannelEndWrite

from .._names import *  # noqa: F403 - the API's names
from .._names import API_NAMES, VERSION
from .._in_process import InProcessBackend
from .._process import io as io
from .._runtime import Runtime
from ._start import start_threads

_runtime = Runtime(InProcessBackend(start_threads))
Parallel = _runtime.Parallel
Sequence = _runtime.Sequence
Spawn = _runtime.Spawn
shutdown = _runtime.shutdown
#: ``(major, minor, patch, "threads")``: the version of pycsp and the backend's name.
version = VERSION + ("threads",)

# Type checkers see no __all__ (they cannot read API_NAMES): they export
# every public name bound here, which is the same list.
if not TYPE_CHECKING:
    __all__ = API_NAMES
