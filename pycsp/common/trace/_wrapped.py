"""Which backend the traced names wrap.

The rule, in order:

1. the one named by ``set_backend(...)``, if it was called;
2. the one whose names the importing module holds: ``from pycsp.X import *``
   (its ``Parallel``) or ``import pycsp.X as name`` (the module);
3. the one imported most recently of ``pycsp.threads``, ``pycsp.greenlets``,
   ``pycsp.processes`` (and ``pycsp.parallel``), as ``pycsp.current`` was in
   PyCSP.  ``import pycsp`` imports ``pycsp.threads``, so there always is one.
"""
from __future__ import annotations

import importlib
import sys
import types

BACKENDS = ("pycsp.threads", "pycsp.greenlets", "pycsp.processes", "pycsp.parallel")

_chosen = None  # set_backend's choice
_found = None   # what the rule found when the names were imported


def _loaded():
    return [sys.modules[name] for name in BACKENDS if name in sys.modules]


def held_by(namespace):
    """The backend whose names ``namespace`` (a module's globals) holds, or None."""
    loaded = _loaded()
    parallel = namespace.get("Parallel")
    for module in loaded:
        if parallel is not None and getattr(module, "Parallel", None) is parallel:
            return module
    held = [module for module in loaded if any(value is module for value in namespace.values())]
    return held[0] if len(held) == 1 else None


def most_recent():
    """The backend module imported last (sys.modules keeps the order of import)."""
    for name in reversed(list(sys.modules)):
        if name in BACKENDS:
            return sys.modules[name]
    return importlib.import_module("pycsp.threads")


def importing_namespace(depth):
    """The globals of the module that imports ``pycsp.common.trace``: the first
    frame above ``depth`` that is neither the import machinery nor this package."""
    frame = sys._getframe(depth + 1)
    while frame is not None:
        module = frame.f_globals.get("__name__") or ""
        if not (frame.f_code.co_filename.startswith("<frozen importlib")
                or module.startswith("pycsp.common.trace")):
            return frame.f_globals
        frame = frame.f_back
    return {}


def find(namespace):
    """Apply the rule at import time; remember and return the backend."""
    global _found
    _found = held_by(namespace) or most_recent()
    return _found


def backend() -> types.ModuleType:
    """The backend module the traced names use now."""
    return _chosen or _found or find({})


def set_backend(which: types.ModuleType | str) -> types.ModuleType:
    """Make the traced names wrap ``which``: a backend module or its name
    (``"processes"`` or ``"pycsp.processes"``).  Call it before making channels
    and processes: those made before keep the backend they were made on.

    Raises ValueError for anything that is not one of the backends.
    """
    global _chosen
    name = which.__name__ if hasattr(which, "__name__") else which
    if isinstance(name, str) and not name.startswith("pycsp."):
        name = f"pycsp.{name}"
    if name not in BACKENDS:
        raise ValueError(f"set_backend: not a pycsp backend: {which!r} "
                         f"(one of {', '.join(BACKENDS)})")
    _chosen = importlib.import_module(name)
    return _chosen


def adopt(name):
    """In a spawned child: the backend its parent's trace used, unless chosen here."""
    global _found
    if _chosen is None and name in BACKENDS:
        _found = importlib.import_module(name)
