"""pycsp.threads: every CSP process is an OS thread.

The channel machinery is the C core (csp_ext); a blocked process releases the
GIL and sleeps on a futex after a short spin.
"""
from .._names import *  # noqa: F403 - the API's names
from .._names import API_NAMES as __all__, VERSION  # noqa: F401
from .._in_process import InProcessBackend
from .._process import io  # noqa: F401
from .._runtime import Runtime
from ._start import start_threads

_runtime = Runtime(InProcessBackend(start_threads))
Parallel = _runtime.Parallel
Sequence = _runtime.Sequence
Spawn = _runtime.Spawn
shutdown = _runtime.shutdown
#: ``(major, minor, patch, "threads")``: the version of pycsp and the backend's name.
version = VERSION + ("threads",)
