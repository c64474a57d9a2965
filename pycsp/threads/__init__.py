"""pycsp.threads: every CSP process is an OS thread.

The channel machinery is the C core (csp_ext); a blocked process releases the
GIL and sleeps on a futex after a short spin.
"""
from .._names import *  # noqa: F403 - the API's names
from .._names import API_NAMES as __all__, VERSION  # noqa: F401
from .._process import Runtime, io  # noqa: F401
from ._start import start_threads

_runtime = Runtime(start_threads)
Parallel = _runtime.Parallel
Sequence = _runtime.Sequence
Spawn = _runtime.Spawn
shutdown = _runtime.shutdown
version = VERSION + ("threads",)
