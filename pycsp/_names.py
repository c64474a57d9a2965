"""The names every backend exports (API.md), minus those a backend supplies itself."""
from csp_ext import (Channel, ChannelEndRead, ChannelEndWrite, ChannelPoisonException,
                     ChannelRetireException, DeadlockError, InputGuard, OutputGuard, SkipGuard,
                     TimeoutGuard)

from ._alternation import AltSelect, Alternation, FairSelect, PriSelect, Skip, Timeout, choice
from ._dump import dump_state, dump_state_on
from ._process import Process, current_process_id, process

VERSION = (0, 10, 0)


def IN(channel):
    """A new reader end of ``channel`` (same as ``channel.reader()`` and ``+channel``)."""
    return channel.reader()


def OUT(channel):
    """A new writer end of ``channel`` (same as ``channel.writer()`` and ``-channel``)."""
    return channel.writer()


def poison(*ends):
    """Poison the channels of ``ends`` (channel ends or channels)."""
    for end in ends:
        end.poison()


def retire(*ends):
    """Retire ``ends``: each leaves its channel."""
    for end in ends:
        end.retire()


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
