"""The types that pycsp's public signatures name (for type checkers; README "Types").

Channel ends are named by what they do (Protocols), so that one annotation
fits every backend's ends: the in-process ones, the shared-memory ones of
pycsp.processes and pycsp.parallel, and pycsp.common.trace's wrappers.
Only annotations use these: no channel operation runs anything here.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar, Union

if TYPE_CHECKING:
    from typing import TypeAlias

    from csp_ext import InputGuard, OutputGuard, SkipGuard, TimeoutGuard

    from ._process import Process

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
T_contra = TypeVar("T_contra", contravariant=True)
R = TypeVar("R")
P = ParamSpec("P")


class ReadEnd(Protocol[T_co]):
    """A reader end of any backend: ``msg = cin()``."""

    def __call__(self) -> T_co: ...
    def retire(self) -> None: ...
    def poison(self) -> None: ...


class WriteEnd(Protocol[T_contra]):
    """A writer end of any backend: ``cout(msg)``."""

    def __call__(self, msg: T_contra, /) -> None: ...
    def retire(self) -> None: ...
    def poison(self) -> None: ...


class HasReader(Protocol[T_co]):
    """A channel, whose ``reader()`` gives a ``T_co``."""

    def reader(self) -> T_co: ...


class HasWriter(Protocol[T_co]):
    """A channel, whose ``writer()`` gives a ``T_co``."""

    def writer(self) -> T_co: ...


class Poisonable(Protocol):
    def poison(self) -> None: ...


class Retirable(Protocol):
    def retire(self) -> None: ...


# poison() and retire() take ends (poison also channels), or lists and tuples of them.
PoisonTargets: TypeAlias = Union[Poisonable, Sequence["PoisonTargets"]]
RetireTargets: TypeAlias = Union[Retirable, Sequence["RetireTargets"]]

# What a guard runs when it is chosen: a callable (called with channel_input=msg
# for an input guard), a string of Python code, or nothing.
Action: TypeAlias = Union[Callable[..., object], str, None]

# One guard of AltSelect/PriSelect/FairSelect: a reader end, (writer end, msg),
# or a guard object.
Guard: TypeAlias = Union[ReadEnd[Any], "tuple[WriteEnd[Any], Any]", "InputGuard", "OutputGuard",
                         "SkipGuard", "TimeoutGuard"]
# One item of Alternation's list: a guard, {guard: action}, (guard, action) or
# (writer end, msg, action).
AlternationItem: TypeAlias = Union[Guard, "dict[Guard, Action]", "tuple[Guard, Action]",
                                   "tuple[WriteEnd[Any], Any, Action]"]
# What Alternation.select(), execute() and the selects return: the chosen
# guard's end (or the SkipGuard/TimeoutGuard itself) and the message read
# (None for any other guard).
Chosen: TypeAlias = "tuple[object, Any]"

# What Parallel, Sequence and Spawn take: processes, or lists and tuples of them.
ProcessItems: TypeAlias = Union["Process", Sequence["ProcessItems"]]
