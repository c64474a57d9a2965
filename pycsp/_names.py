"""The names every backend exports (API.md), minus those a backend supplies itself."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from csp_ext import (ChannelPoisonException, ChannelRetireException, DeadlockError, InputGuard,
                     OutputGuard, SkipGuard, TimeoutGuard)

from ._alternation import AltSelect, Alternation, FairSelect, PriSelect, Skip, Timeout, choice
from ._dump import dump_state, dump_state_on
from ._process import Process, current_process_id, process
from ._version import __version__

if TYPE_CHECKING:
    from ._typing import HasReader, HasWriter, PoisonTargets, RetireTargets, T

# (major, minor, patch) of __version__; a backend's ``version`` adds its name (API.md).
VERSION = tuple(int(part) for part in re.match(r"(\d+)\.(\d+)\.(\d+)", __version__).groups())


def IN(channel: HasReader[T]) -> T:
    """A new reader end of ``channel`` (same as ``channel.reader()`` and ``+channel``).

    Args:
        channel: the channel to join as one more reader.
    """
    return channel.reader()


def OUT(channel: HasWriter[T]) -> T:
    """A new writer end of ``channel`` (same as ``channel.writer()`` and ``-channel``).

    Args:
        channel: the channel to join as one more writer.
    """
    return channel.writer()


def poison(*ends: PoisonTargets) -> None:
    """Poison the channels of ``ends`` at once.

    Every blocked and every later read or write on them raises
    ChannelPoisonException; buffered messages are dropped.

    Args:
        ends: channel ends or channels, or lists (tuples) of them, nested too
            (as PyCSP 0.9.2's pycsp.parallel took).

    Raises:
        TypeError: an argument is none of these; then nothing is poisoned.
    """
    for end in _each(ends, "poison"):
        end.poison()


def retire(*ends: RetireTargets) -> None:
    """Retire ``ends``: each leaves its channel (``end.retire()`` for each).

    When every reader of a channel has retired, writes on it raise
    ChannelRetireException; when every writer has, reads do once the buffer
    is empty. Retiring an end twice is harmless.

    Args:
        ends: channel ends, or lists (tuples) of them, nested too.

    Raises:
        TypeError: an argument is none of these (a channel has no end to
            retire); then nothing is retired.
    """
    for end in _each(ends, "retire"):
        end.retire()


def _each(ends, what):
    """The ends in ``ends``, lists and tuples unpacked (nested too); each
    checked before any is used, so a bad argument changes nothing."""
    found = []
    stack = list(reversed(ends))
    while stack:
        end = stack.pop()
        if isinstance(end, (list, tuple)):
            stack.extend(reversed(end))
        elif callable(getattr(end, what, None)):
            found.append(end)
        else:
            takes = "channel ends or channels" if what == "poison" else "channel ends"
            raise TypeError(f"{what}() takes {takes} (or lists of them), "
                            f"not {type(end).__name__} {end!r}")
    return found


# Bound here; each backend adds Channel, ChannelEndRead, ChannelEndWrite, Parallel,
# Sequence, Spawn, io, shutdown and version.
__all__ = [
    "IN", "OUT", "poison", "retire",
    "ChannelPoisonException", "ChannelRetireException", "DeadlockError",
    "process", "Process", "current_process_id", "Alternation", "choice", "AltSelect",
    "FairSelect", "PriSelect", "InputGuard", "OutputGuard", "SkipGuard", "TimeoutGuard",
    "Skip", "Timeout", "dump_state", "dump_state_on",
]

# Every name of API.md.
API_NAMES = [
    "Channel", "ChannelEndRead", "ChannelEndWrite", "IN", "OUT", "poison", "retire",
    "ChannelPoisonException", "ChannelRetireException", "DeadlockError",
    "process", "Process", "Parallel", "Sequence", "Spawn", "io", "current_process_id",
    "shutdown", "Alternation", "choice", "AltSelect", "FairSelect", "PriSelect",
    "InputGuard", "OutputGuard", "SkipGuard", "TimeoutGuard", "Skip", "Timeout", "version",
    "dump_state", "dump_state_on",
]
