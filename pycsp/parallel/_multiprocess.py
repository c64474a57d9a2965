"""MultiProcess and @multiprocess: a CSP process that runs as an OS process.

In pycsp.parallel's Parallel, Sequence and Spawn a MultiProcess runs as a
child OS process (as every process does in pycsp.processes), beside the
threads that other processes run as.  Its arguments and return value travel
as with pycsp.processes (pickled when they cross).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, overload

from .._process import Process, factory
from ._network import refuse_listening_address

if TYPE_CHECKING:
    from collections.abc import Callable

    from .._typing import P


class MultiProcess(Process):
    """``MultiProcess(fn, *args, **kwargs)``: a process that runs as an OS process.

    ``pycsp_host`` and ``pycsp_port`` (PyCSP 0.9.2: where the process listens
    for other interpreters) are taken out of the keyword arguments; left empty
    they mean "anywhere" and change nothing; any other value raises
    NotImplementedError (that comes with pycsp.net).
    """

    __slots__ = ()

    def __init__(self, fn: Callable[..., object], *args: Any, pycsp_host: str = "",
                 pycsp_port: int | None = None, **kwargs: Any) -> None:
        refuse_listening_address(pycsp_host, pycsp_port)
        super().__init__(fn, *args, **kwargs)


@overload
def multiprocess(func: Callable[P, object]) -> Callable[P, MultiProcess]: ...
@overload
def multiprocess(func: None = None, pycsp_host: str = "", pycsp_port: int | None = None
                 ) -> Callable[[Callable[P, object]], Callable[P, MultiProcess]]: ...


def multiprocess(func: Callable[..., object] | None = None, pycsp_host: str = "",
                 pycsp_port: int | None = None) -> Any:
    """Decorator: calling ``func(args)`` returns a ``MultiProcess`` (an OS process).

    Also ``@multiprocess(pycsp_host=..., pycsp_port=...)`` as in PyCSP 0.9.2;
    see MultiProcess for those two.
    """
    if func is not None:
        return factory(func, MultiProcess, "@multiprocess")

    def decorate(fn):
        make = factory(fn, MultiProcess, "@multiprocess")
        if pycsp_host == "" and pycsp_port is None:
            return make

        def make_with_address(*args, **kwargs):
            return make(*args, pycsp_host=pycsp_host, pycsp_port=pycsp_port, **kwargs)

        for name in ("__name__", "__qualname__", "__doc__", "__module__", "__wrapped__"):
            setattr(make_with_address, name, getattr(make, name))
        return make_with_address

    return decorate
