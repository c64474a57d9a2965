"""pycsp.net's Channel: homed here when named, or reached in another program with ``connect=``.

``Channel()`` (no name) is pycsp.processes' shared-memory channel: nobody
outside the program can name it.  ``Channel("A")`` is that channel too, and
is also homed on this program's node under the name "A" (its agent is
started on the first one); ``.address`` is where other programs reach it.
Its ends are the core's own, so it works in alternation as any local
channel.  ``Channel("A", connect=(host, port))`` reaches the channel that
another program homes as "A" (``_remote.RemoteChannel``).
"""
from __future__ import annotations

import types

from csp_ext import ShmChannel, ShmChannelEndRead, ShmChannelEndWrite

from . import _node
from ._remote import RemoteChannel, RemoteChannelEndRead, RemoteChannelEndWrite


class HomedChannel:
    """A shared-memory channel of this program that other programs reach by name.

    ``address`` is its home's (host, port).  Everything else is the channel's
    own: ends, poison, statistics, use by every process of this program.
    """

    __slots__ = ("channel", "address")

    def __init__(self, channel: ShmChannel, address: tuple[str, int]) -> None:
        self.channel, self.address = channel, address

    @property
    def name(self):
        return self.channel.name

    @property
    def buffer(self):
        return self.channel.buffer

    def reader(self):
        """Join as one more reader: a ChannelEndRead (also ``+ch``)."""
        return self.channel.reader()

    def writer(self):
        """Join as one more writer: a ChannelEndWrite (also ``-ch``)."""
        return self.channel.writer()

    __pos__ = reader
    __neg__ = writer

    def poison(self):
        """Poison the channel, for its parties here and in other programs."""
        self.channel.poison()

    def statistics(self):
        return self.channel.statistics()

    def __reduce__(self):
        return (HomedChannel, (self.channel, self.address))

    def __repr__(self):
        host, port = self.address
        return f"<Channel {self.name!r} buffer={self.buffer} homed here at {host}:{port}>"


def home(name: str, buffer: int) -> HomedChannel:
    if not isinstance(name, str):
        raise TypeError(f"pycsp.net: a channel's name is a str, not {type(name).__name__}")
    try:
        name.encode("utf-8")  # as it travels in every HELLO and JOIN
    except UnicodeEncodeError:
        raise ValueError(f"pycsp.net: a channel's name travels as UTF-8; {name!r} cannot "
                         f"(a lone surrogate), so no other program could reach it") from None
    node = _node.this_node()
    channel = ShmChannel(name=name, buffer=buffer)
    node.home(channel, name)
    return HomedChannel(channel, node.address)


class _ChannelType(type):
    """Makes ``Channel(...)`` the right kind; every kind is an instance of Channel."""

    def __call__(cls, name=None, buffer=0, connect=None):
        if connect is not None:
            if name is None:
                raise ValueError("pycsp.net: Channel(connect=...) needs the name the channel "
                                 "is homed under")
            return RemoteChannel(name, connect)
        if name is None:
            return ShmChannel(buffer=buffer)
        return home(name, buffer)

    def __instancecheck__(cls, obj):
        return isinstance(obj, (ShmChannel, HomedChannel, RemoteChannel))

    def __subclasscheck__(cls, other):
        return issubclass(other, (ShmChannel, HomedChannel, RemoteChannel))


class Channel(metaclass=_ChannelType):
    """``Channel(name=None, buffer=0, connect=None)``: an any-to-any channel.

    Without ``name``: a channel of this program (pycsp.processes'). With
    ``name``: the same, also homed here for other programs; ``.address`` is
    the (host, port) they connect to.  With ``connect=(host, port)``: the
    channel that another program homes under ``name`` (its ``buffer``
    applies; this one's is ignored).

    Raises:
        ChannelConnectException: nothing answered for ``connect`` within
            0.9.2's SOCKETS_CONNECT_TIMEOUT, or no channel of that name is
            homed there.
        ChannelBindException: this program's home could not bind its port.
        ValueError: a channel of that name is homed here already.
    """

    __class_getitem__ = classmethod(types.GenericAlias)


class _EndType(type):
    """Every kind of reader (writer) end is an instance of ChannelEndRead (ChannelEndWrite)."""

    def __instancecheck__(cls, obj):
        return isinstance(obj, cls._kinds)

    def __subclasscheck__(cls, other):
        return issubclass(other, cls._kinds)


class ChannelEndRead(metaclass=_EndType):
    """A reader end: of a channel of this program (pycsp.processes') or of
    one homed in another program."""

    _kinds = (ShmChannelEndRead, RemoteChannelEndRead)
    __class_getitem__ = classmethod(types.GenericAlias)


class ChannelEndWrite(metaclass=_EndType):
    """A writer end: of a channel of this program (pycsp.processes') or of
    one homed in another program."""

    _kinds = (ShmChannelEndWrite, RemoteChannelEndWrite)
    __class_getitem__ = classmethod(types.GenericAlias)
