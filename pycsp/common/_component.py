"""@component: PyCSP's @process, with the arguments checked at the call.

``Identity(+a, -b)`` returns a ``Process`` exactly as ``@process`` does; but
a missing or unknown argument, or a writer end where a reader end belongs,
raises ``TypeError`` at that call, naming the component and the parameter,
instead of failing later inside the running process.
"""
from __future__ import annotations

import functools
import inspect
from typing import TYPE_CHECKING, Any

from csp_ext import Channel, ShmChannel

from .. import _ends
from .._process import Process

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from .._typing import P


def _looks_like_end(value):
    # A channel end of another kind (a tracing wrapper, say): callable, and
    # it can leave or poison its channel.  Its direction cannot be checked.
    return callable(value) and hasattr(value, "retire") and hasattr(value, "poison")


def check_end(owner, parameter, value, reader, optional=False):
    """Raise TypeError unless ``value`` is a reader end (``reader``) or a writer
    end (or None when ``optional``); ``owner`` and ``parameter`` name the place."""
    if value is None and optional:
        return
    wanted = "a reader end (+channel)" if reader else "a writer end (-channel)"
    # _ends' tuples, read now: types registered later (pycsp.net's) count too.
    if isinstance(value, _ends.READ_ENDS + _ends.WRITE_ENDS):
        if isinstance(value, _ends.READ_ENDS) == reader:
            return
        got = "a writer end" if reader else "a reader end"
    elif isinstance(value, (Channel, ShmChannel)):
        got = "a Channel (pass one of its ends)"
    elif _looks_like_end(value):
        return
    else:
        got = type(value).__name__
    if optional:
        wanted += " or None"
    raise TypeError(f"{owner}: {parameter} must be {wanted}, not {got}")


def component(readers: Iterable[str] = (), writers: Iterable[str] = ()
              ) -> Callable[[Callable[P, object]], Callable[P, Process]]:
    """Decorator: like ``@process``; ``readers`` and ``writers`` name the
    parameters that take reader and writer ends (None is accepted where the
    parameter's default is None)."""

    def decorate(fn: Callable[P, object]) -> Callable[P, Process]:
        signature = inspect.signature(fn)
        roles = {name: True for name in readers}
        roles.update({name: False for name in writers})
        unknown = set(roles) - set(signature.parameters)
        if unknown:
            raise TypeError(f"@component {fn.__name__}: no parameter {sorted(unknown)}")
        optional = {name for name in roles if signature.parameters[name].default is None}

        # functools.wraps sets __wrapped__ = fn: Process pickling (the processes
        # backend's spawn start) finds fn through the module attribute that wraps it.
        @functools.wraps(fn)
        def make_process(*args: P.args, **kwargs: P.kwargs) -> Process:
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError as exc:
                raise TypeError(f"{fn.__name__}: {exc}") from None
            for name, value in bound.arguments.items():
                if name in roles:
                    check_end(fn.__name__, name, value, roles[name], name in optional)
            return Process(fn, *args, **kwargs)

        return make_process

    return decorate
