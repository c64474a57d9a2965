"""pycsp.greenlets: every CSP process is a greenlet on a scheduler written in C.

Channels work from the main program too: it is the root of the scheduler.
``@io`` functions run in a worker thread while the other greenlets go on.
"""
try:
    import greenlet as _greenlet  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError("pycsp.greenlets needs the 'greenlet' package: "
                      "pip install greenlet (or pip install 'pycsp[greenlets]')") from exc

import csp_ext as _csp_ext

if not _csp_ext.HAVE_GREENLET_SCHEDULER:  # pragma: no cover
    raise ImportError("csp_ext was built without greenlet.h: reinstall pycsp with greenlet "
                      "installed (pip install greenlet && pip install --force-reinstall pycsp)")

from typing import TYPE_CHECKING  # noqa: E402

from csp_ext import Channel as Channel, ChannelEndRead as ChannelEndRead  # noqa: E402
from csp_ext import ChannelEndWrite as ChannelEndWrite  # noqa: E402

from .._names import *  # noqa: E402,F403 - the API's names
from .._names import API_NAMES, VERSION  # noqa: E402
from .._in_process import InProcessBackend  # noqa: E402
from .._runtime import Runtime  # noqa: E402
from ._io import io as io  # noqa: E402
from ._start import start_greenlets  # noqa: E402

_runtime = Runtime(InProcessBackend(start_greenlets))
Parallel = _runtime.Parallel
Sequence = _runtime.Sequence
Spawn = _runtime.Spawn
shutdown = _runtime.shutdown
#: ``(major, minor, patch, "greenlets")``: the version of pycsp and the backend's name.
version = VERSION + ("greenlets",)

# Type checkers see no __all__ (they cannot read API_NAMES): they export
# every public name bound here, which is the same list.
if not TYPE_CHECKING:
    __all__ = API_NAMES
