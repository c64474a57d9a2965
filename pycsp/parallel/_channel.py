"""pycsp.parallel's Channel: the shared-memory channel, with PyCSP 0.9.2's signature."""
import types

from csp_ext import ShmChannel

from ._network import homed_channel_types, named_channel, remote_channel


class _ChannelType(type):
    """Makes ``Channel(...)`` a ShmChannel, and ShmChannels instances of Channel."""

    def __call__(cls, name=None, buffer=0, connect=None):
        if connect is not None:
            return remote_channel(name, connect)
        if name is not None:
            homed = named_channel(name, buffer)
            if homed is not None:
                return homed
        return ShmChannel(name=name, buffer=buffer)

    def __instancecheck__(cls, obj):
        return isinstance(obj, (ShmChannel, *homed_channel_types()))

    def __subclasscheck__(cls, other):
        return issubclass(other, (ShmChannel, *homed_channel_types()))


class Channel(metaclass=_ChannelType):
    """``Channel(name=None, buffer=0, connect=None)``: an any-to-any channel
    that every thread and OS process of the program can use (pycsp.processes'
    shared-memory channel; messages travel pickled).

    ``name`` labels it; ``buffer=N`` lets N messages wait.  In a
    MultiProcess given ``pycsp_host``/``pycsp_port``, a named channel is also
    homed on its node for other programs (pycsp.net's; ``.address``).
    ``connect=(host,
    port)`` (PyCSP 0.9.2: a channel hosted by another interpreter) reaches
    the channel that another program homes under ``name`` with pycsp.net
    (pycsp.net's ``Channel(name, connect=)``; pyzmq needed then).
    """

    __class_getitem__ = classmethod(types.GenericAlias)  # Channel[int](), as the backends'
