"""pycsp: Communicating Sequential Processes for Python, with a C core.

Pick how processes run by the import alone::

    import pycsp.threads as pycsp     # OS threads (also plain ``import pycsp``)
    import pycsp.greenlets as pycsp   # greenlets on a scheduler in C
    import pycsp.processes as pycsp   # OS processes over shared memory
"""
from .threads import *  # noqa: F403
from .threads import __all__, version  # noqa: F401
from ._version import __version__  # noqa: F401
