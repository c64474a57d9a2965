"""MultiProcess and @multiprocess: a CSP process that runs as an OS process.

In pycsp.parallel's Parallel, Sequence and Spawn a MultiProcess runs as a
child OS process (as every process does in pycsp.processes), beside the
threads that other processes run as.  Its arguments and return value travel
as with pycsp.processes (pickled when they cross).  Given ``pycsp_host`` or
``pycsp_port`` (PyCSP 0.9.2: where the process listens), the channels it
names are homed on a node of its own at that address (pycsp.net).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, overload

from .._process import Process, factory
from ._network import listening_address, listening_at

if TYPE_CHECKING:
    from collections.abc import Callable

    from .._typing import P


class MultiProcess(Process):
    """``MultiProcess(fn, *args, **kwargs)``: a process that runs as an OS process.

    ``pycsp_host`` and ``pycsp_port`` (PyCSP 0.9.2: where the process listens
    for other interpreters) are taken out of the keyword arguments.  Left
    empty ('' and None or 0) they change nothing.  Given, the process runs
    a pycsp.net node of its own bound there (host '': the program's,
    see pycsp.net.configure; port 0: any free one), and every channel its
    body makes with a name, ``Channel("A")``, is homed on it: another
    program reaches it with ``Channel("A", connect=(host, port))``, and
    ``.address`` says where.  The process ends once those channels are
    served (pycsp.net.configure's ``linger``).  Needs pyzmq
    (NotImplementedError when the process is made, without it); a port
    already taken raises ChannelBindException from the Parallel.

    Attributes:
        listen_at: (host, port) where the channels it names are homed, or
            None (neither was given).
    """

    __slots__ = ("listen_at",)
    listen_at: tuple[str, int] | None

    def __init__(self, fn: Callable[..., object], *args: Any, pycsp_host: str = "",
                 pycsp_port: int | None = None, **kwargs: Any) -> None:
        self.listen_at = listening_address(pycsp_host, pycsp_port)
        super().__init__(fn, *args, **kwargs)

    def _run_body(self):
        if self.listen_at is None:
            super()._run_body()
            return
        try:
            with listening_at(self.listen_at):
                super()._run_body()
        except Exception as exc:  # noqa: BLE001 - its node could not start: the process failed
            self._failed(exc)

    def __mul__(self, n):
        made = super().__mul__(n)
        if made is not NotImplemented:
            for copy in made[1:]:
                copy.listen_at = self.listen_at
        return made

    __rmul__ = __mul__

    def __reduce__(self):
        rebuild, args = super().__reduce__()
        return (_with_listen_address, (rebuild, args, self.listen_at))


def _with_listen_address(rebuild, args, listen_at):
    proc = rebuild(*args)
    proc.listen_at = listen_at
    return proc


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
