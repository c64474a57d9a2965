"""PyCSP's plug-and-play processes: small components to build networks from.

Each is a process factory, as if made with ``@process``: ``Identity(+a, -b)``
returns a process to give to ``Parallel``.  They run on the backend of the
program that uses them.  None of them ends on its own (but SkipProcess): each
runs until a channel it uses is poisoned or retired, and then, as every
process does, poisons or retires all of its channel ends, so that the end of
a network spreads through it.

Import after the backend::

    from pycsp.greenlets import *
    from pycsp.common.plugNplay import *
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from csp_ext import ChannelRetireException

from .._alternation import FairSelect, PriSelect, Skip
from .._names import retire
from ._backend import backend_for
from ._component import component

if TYPE_CHECKING:
    from .._typing import ReadEnd, T, WriteEnd

__all__ = ["Identity", "Prefix", "Successor", "Delta2", "Plus", "Tail", "Pairs",
           "SkipProcess", "Mux2"]


@component(readers=["cin"], writers=["cout"])
def Identity(cin: ReadEnd[T], cout: WriteEnd[T]) -> None:
    """Copy ``cin`` to ``cout``: a one-place buffer in a stream."""
    while True:
        cout(cin())


@component(readers=["cin"], writers=["cout"])
def Prefix(cin: ReadEnd[T], cout: WriteEnd[T], prefix: Any = None) -> None:
    """Write ``prefix`` to ``cout``, then copy ``cin`` to ``cout``."""
    cout(prefix)
    while True:
        cout(cin())


@component(readers=["cin"], writers=["cout"])
def Successor(cin: ReadEnd[int], cout: WriteEnd[int]) -> None:
    """Write each value read from ``cin``, plus 1, to ``cout``."""
    while True:
        cout(cin() + 1)


@component(readers=["cin"], writers=["cout1", "cout2"])
def Delta2(cin: ReadEnd[T], cout1: WriteEnd[T], cout2: WriteEnd[T]) -> None:
    """Copy each value read from ``cin`` to both ``cout1`` and ``cout2``, to
    whichever is ready first, then to the other."""
    while True:
        msg = cin()
        first, _ = PriSelect((cout1, msg), (cout2, msg))
        if first is cout1:
            cout2(msg)
        else:
            cout1(msg)


@component(readers=["cin1", "cin2"], writers=["cout"])
def Plus(cin1: ReadEnd[Any], cin2: ReadEnd[Any], cout: WriteEnd[Any]) -> None:
    """Read one value from ``cin1``, then one from ``cin2``; write their sum to ``cout``."""
    while True:
        cout(cin1() + cin2())


@component(readers=["cin"], writers=["cout"])
def Tail(cin: ReadEnd[T], cout: WriteEnd[T]) -> None:
    """Drop the first value read from ``cin``; copy the rest to ``cout``."""
    cin()
    while True:
        cout(cin())


@component(readers=["cin"], writers=["cout"])
def Pairs(cin: ReadEnd[Any], cout: WriteEnd[Any]) -> None:
    """Write the sum of each two consecutive values of ``cin`` to ``cout``.

    A network of its own, as in PyCSP: Delta2 feeds Plus directly and through
    Tail.  Its three processes run on the same backend as Pairs itself (OS
    processes under pycsp.processes).
    """
    backend = backend_for(cin, cout)
    direct = backend.Channel("Pairs.direct")
    to_tail = backend.Channel("Pairs.to_tail")
    shifted = backend.Channel("Pairs.shifted")
    backend.Parallel(
        Delta2(cin, direct.writer(), to_tail.writer()),
        Plus(direct.reader(), shifted.reader(), cout),
        Tail(to_tail.reader(), shifted.writer()),
    )


@component()
def SkipProcess() -> None:
    """Do nothing and end."""


@component(readers=["cin1", "cin2"], writers=["cout"])
def Mux2(cin1: ReadEnd[T], cin2: ReadEnd[T], cout: WriteEnd[T]) -> None:
    """Copy the values of ``cin1`` and ``cin2`` to ``cout`` as they come.

    When both have a value waiting, the one least recently taken goes first,
    so neither input can starve the other.  Once one input is retired it goes
    on with the other; when both are, it retires ``cout``.  (PyCSP 0.9.2's
    ended at the first retired input, dropping what the other still had.)
    """
    open_inputs = [cin1, cin2]
    while open_inputs:
        try:
            _, msg = FairSelect(*open_inputs)
        except ChannelRetireException:
            open_inputs = [cin for cin in open_inputs if not _retired_now(cin, cout)]
            continue
        cout(msg)
    retire(cout)


def _retired_now(cin, cout):
    """Whether the channel of ``cin`` is retired (then ``cin`` is retired too).
    A message that was ready on it meanwhile is passed on to ``cout``."""
    try:
        ready, msg = PriSelect(cin, Skip())
    except ChannelRetireException:
        cin.retire()
        return True
    if ready is cin:
        cout(msg)
    return False
