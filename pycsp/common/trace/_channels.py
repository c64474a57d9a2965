"""Traced channels and channel ends.

A traced ``Channel`` holds a channel of the backend; its ends wrap the
backend's ends.  While a session records, a write sends its message inside a
``Tagged`` that names it (a flow number) and the read that takes it unwraps
it, so the two operations of one message are known to belong together: the
trace draws an arrow between them and counts messages per pair of processes.
A traced end always unwraps, so messages written before TraceInit or after
TraceQuit pass as they are.
"""
import itertools
import os
import types

from ..._ends import register_end_types
from . import _recorder as rec
from ._wrapped import backend

_channel_numbers = itertools.count(1)


class Tagged:
    """A message and the flow number that names it in the trace."""

    __slots__ = ("flow", "msg")

    def __init__(self, flow, msg):
        self.flow = flow
        self.msg = msg

    def __reduce__(self):
        return (Tagged, (self.flow, self.msg))


def tag(msg):
    """``msg`` as a traced write sends it: Tagged while recording."""
    if rec.session is None:
        return msg
    return Tagged(rec.new_flow(), msg)


def channel_args(channel, flow=None, outcome=None):
    """The ``args`` of an event on ``channel`` (a traced Channel)."""
    args = {"channel": channel.label, "channel_id": channel.key}
    if flow is not None:
        args["flow"] = rec.flow_name(flow)
    if outcome is not None:
        args["outcome"] = rec.describe_outcome(outcome)
    return args


class Channel:
    """``Channel(name=None, buffer=0)``: a channel of the backend whose ends
    record every read, write, poison and retire.  As the backend's Channel:
    ``reader()``/``+ch``/``IN(ch)``, ``writer()``/``-ch``/``OUT(ch)``,
    ``poison()``, ``name``, ``buffer``, ``ch * n``.

    Raises what the backend's Channel raises for a bad ``buffer``.

    Attributes:
        key: the channel's id in the trace, the same in every OS process.
        label: how the trace names the channel (its name, or ``channelN``).
    """

    __slots__ = ("_channel", "key", "label", "__weakref__")
    __class_getitem__ = classmethod(types.GenericAlias)  # Channel[int](), as the backends'

    def __init__(self, name=None, buffer=0):
        self._wrap(backend().Channel(name, buffer), None, None)

    def _wrap(self, channel, key, label):
        self._channel = channel
        if key is None:
            number = next(_channel_numbers)
            key = f"{os.getpid()}.{number}"
            label = str(channel.name) if channel.name is not None else f"channel{number}"
        self.key = key
        self.label = label
        return self

    @classmethod
    def _of(cls, channel, key=None, label=None, session_state=None):
        rec.adopt(session_state)
        return cls.__new__(cls)._wrap(channel, key, label)

    def __reduce__(self):
        return (Channel._of, (self._channel, self.key, self.label, rec.state()))

    @property
    def name(self):
        """The backend channel's name."""
        return self._channel.name

    @property
    def buffer(self):
        """How many messages may wait in the channel; 0 for a rendezvous."""
        return self._channel.buffer

    def reader(self):
        """A new traced reader end (joins the channel as one more reader)."""
        return ChannelEndRead(self._channel.reader(), self)

    def writer(self):
        """A new traced writer end (joins the channel as one more writer)."""
        return ChannelEndWrite(self._channel.writer(), self)

    __pos__ = reader
    __neg__ = writer

    def poison(self):
        """Poison the channel (recorded)."""
        self._channel.poison()
        rec.instant(f"poison {self.label}", "poison", channel_args(self))

    def statistics(self):
        """The backend channel's ``statistics()``."""
        return self._channel.statistics()

    def __mul__(self, n):
        # The backend's channel checks n and raises for a bad one.
        return [Channel._of(c) for c in self._channel * n]

    __rmul__ = __mul__

    def __repr__(self):
        return f"<traced {self._channel!r}>"


class _End:
    __slots__ = ("_end", "channel")
    __class_getitem__ = classmethod(types.GenericAlias)  # ChannelEndRead[int], as the backends'

    def __init__(self, end, channel):
        self._end = end
        self.channel = channel

    def __reduce__(self):
        return (type(self), (self._end, self.channel))

    @property
    def retired(self):
        """True once ``retire()`` was called on this end."""
        return self._end.retired

    def retire(self):
        """Leave the channel (recorded the first time)."""
        if not self._end.retired:
            self._end.retire()
            rec.instant(f"retire {self.channel.label}", "retire", channel_args(self.channel))

    def poison(self):
        """Poison the channel (recorded)."""
        self._end.poison()
        rec.instant(f"poison {self.channel.label}", "poison", channel_args(self.channel))

    def __repr__(self):
        return f"<traced {self._end!r}>"


class ChannelEndRead(_End):
    """A traced reader end: ``cin()`` reads, blocking as the backend's end does,
    and raises what it raises (poison, retire, DeadlockError).

    Made by a traced Channel's ``reader()``: ``end`` is the backend's end that
    it wraps, ``channel`` the traced Channel (also the attribute ``channel``).
    """

    __slots__ = ()

    def __call__(self):
        if rec.session is None:
            msg = self._end()
            return msg.msg if type(msg) is Tagged else msg
        start = rec.clock()
        try:
            msg = self._end()
        except BaseException as exc:
            rec.complete(f"read {self.channel.label}", "read", start,
                         channel_args(self.channel, outcome=exc))
            raise
        flow = None
        if type(msg) is Tagged:
            flow, msg = msg.flow, msg.msg
        rec.complete(f"read {self.channel.label}", "read", start, channel_args(self.channel, flow))
        return msg


class ChannelEndWrite(_End):
    """A traced writer end: ``cout(msg)`` writes, blocking as the backend's end
    does, and raises what it raises (poison, retire, DeadlockError, pickling
    errors on processes).

    Made by a traced Channel's ``writer()``: ``end`` is the backend's end that
    it wraps, ``channel`` the traced Channel (also the attribute ``channel``).
    """

    __slots__ = ()

    def __call__(self, msg):
        if rec.session is None:
            return self._end(msg)
        flow = rec.new_flow()
        start = rec.clock()
        try:
            self._end(Tagged(flow, msg))
        except BaseException as exc:
            rec.complete(f"write {self.channel.label}", "write", start,
                         channel_args(self.channel, outcome=exc))
            raise
        rec.complete(f"write {self.channel.label}", "write", start, channel_args(self.channel, flow))


# Poison/retire propagation and Process * n find traced ends and channels too.
register_end_types((ChannelEndRead,), (ChannelEndWrite,), (Channel,))
