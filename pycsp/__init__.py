"""pycsp: Communicating Sequential Processes for Python, with a C core.

Pick how processes run by the import alone::

    import pycsp.threads as pycsp     # OS threads (also plain ``import pycsp``)
    import pycsp.greenlets as pycsp   # greenlets on a scheduler in C
    import pycsp.processes as pycsp   # OS processes over shared memory
"""
from typing import TYPE_CHECKING

from .threads import *  # noqa: F403
from .threads import version as version

if not TYPE_CHECKING:  # type checkers take the names of pycsp.threads' (the same list)
    from .threads import __all__
from ._version import __version__ as __version__
