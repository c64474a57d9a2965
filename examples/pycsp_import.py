"""The backend named on the command line, for the examples (as in PyCSP's).

    python examples/NAME.py [threads|processes|greenlets]     (threads if none)

``from pycsp_import import *`` gives the example every name of that backend,
as ``from pycsp.threads import *`` would, and ``BACKEND``, the name chosen.
"""
import importlib
import os
import sys
from typing import TYPE_CHECKING

BACKENDS = ("threads", "processes", "greenlets")

# Run from a checkout, the examples use that checkout's pycsp (as PyCSP's did).
_checkout = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.exists(os.path.join(_checkout, "pycsp", "__init__.py")) and _checkout not in sys.path:
    sys.path.insert(0, _checkout)

BACKEND = sys.argv[1] if len(sys.argv) > 1 else "threads"
if BACKEND not in BACKENDS:
    sys.exit(f"usage: python {sys.argv[0]} [{'|'.join(BACKENDS)}]")

if TYPE_CHECKING:  # every backend has these names and types; a checker sees threads'
    from pycsp.threads import *  # noqa: F403

_backend = importlib.import_module("pycsp." + BACKEND)
globals().update((name, getattr(_backend, name)) for name in _backend.__all__)
if not TYPE_CHECKING:
    __all__ = [*_backend.__all__, "BACKEND"]
