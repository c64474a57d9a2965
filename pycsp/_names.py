"""The names every backend exports (API.md), minus those a backend supplies itself."""
import re

from csp_ext import (Channel, ChannelEndRead, ChannelEndWrite, ChannelPoisonException,
                     ChannelRetireException, DeadlockError, InputGuard, OutputGuard, SkipGuard,
                     TimeoutGuard)

from ._alternation import AltSelect, Alternation, FairSelect, PriSelect, Skip, Timeout, choice
from ._dump import dump_state, dump_state_on
from ._process import Process, current_process_id, process
from ._version import __version__

# (major, minor, patch) of __version__; a backend's ``version`` adds its name (API.md).
VERSION = tuple(int(part) for part in re.match(r"(\d+)\.(\d+)\.(\d+)", __version__).groups())


def IN(channel):
    """A new reader end of ``channel`` (same as ``channel.reader()`` and ``+channel``)."""
    return channel.reader()


def OUT(channel):
    """A new writer end of ``channel`` (same as ``channel.writer()`` and ``-channel``)."""
    return channel.writer()


def poison(*ends):
    """Poison the channels of ``ends``: channel ends or channels, or lists of
    them (as PyCSP 0.9.2's pycsp.parallel took).  TypeError for anything else."""
    for end in _each(ends, "poison"):
        end.poison()


def retire(*ends):
    """Retire ``ends``, channel ends or lists of them: each leaves its channel.
    TypeError for anything else (a channel has no end to retire)."""
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


# Bound here; each backend adds Parallel, Sequence, Spawn, io, shutdown and version.
__all__ = [
    "Channel", "ChannelEndRead", "ChannelEndWrite", "IN", "OUT", "poison", "retire",
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
