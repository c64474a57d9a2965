"""pycsp.parallel's Channel: the shared-memory channel, with PyCSP 0.9.2's signature."""
import types

from csp_ext import ShmChannel

from ._network import remote_channel


class _ChannelType(type):
    """Makes ``Channel(...)`` a ShmChannel, and ShmChannels instances of Channel."""

    def __call__(cls, name=None, buffer=0, connect=None):
        if connect is not None:
            return remote_channel(name, connect)
        return ShmChannel(name=name, buffer=buffer)

    def __instancecheck__(cls, obj):
        return isinstance(obj, ShmChannel)

    def __subclasscheck__(cls, other):
        return issubclass(other, ShmChannel)


class Channel(metaclass=_ChannelType):
    """``Channel(name=None, buffer=0, connect=None)``: an any-to-any channel
    that every thread and OS process of the program can use (pycsp.processes'
    shared-memory channel; messages travel pickled).

    ``name`` labels it; ``buffer=N`` lets N messages wait.  ``connect=(host,
    port)`` (PyCSP 0.9.2: a channel hosted by another interpreter) reaches
    the channel that another program homes under ``name`` with pycsp.net
    (pycsp.net's ``Channel(name, connect=)``; pyzmq needed then).
    """

    __class_getitem__ = classmethod(types.GenericAlias)  # Channel[int](), as the backends'
