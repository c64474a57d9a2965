"""Channels and channel ends in messages between programs: what travels, what arrives.

An end travels as where its join is kept: its channel's home (address and
number), the channel's name there, the join's number at that home, and
reader or writer.  Never an arena offset: the home looks the join's number up
in its own table, so a message cannot name memory of the home's arena.  The
home's number (drawn by each program's node, given in HELLO's reply) tells a
program that an end is of its own channel, whatever address the sender
reached the home by (two hosts' loopback addresses look alike).

- An end of a channel homed in another program (a RemoteChannelEnd) travels
  as its join at that home.
- An end of a channel of this program (a plain ``Channel()``, or one homed
  here by name) is handed to this program's agent first (``adopt``): the
  agent homes the channel if it is not yet (under a made-up name: sending an
  end makes its channel a network channel) and keeps a copy of the end, which
  stands for the same join, under a new number.  The same end object sent
  again travels as the same join.
- What arrives is a RemoteChannelEnd of that join, which tells the home that
  its program holds the join now (``_remote._RemoteEnd.hold``); in the
  channel's home program it is the home's own end again (``reclaim``), a core
  end that also works in alternation.  A retired end arrives retired.
- A channel travels as its home and name (a plain one is homed first) and
  arrives as a RemoteChannel, or in its home program as the channel itself.

Sending an end adds no join: the end sent and the end that arrives stand for
one join, as between the OS processes of one program, so retire it in one
place.  A RemoteChannelEnd that was sent (a reader took the message: a
write refused sends nothing) is no longer held by its sender: at
its exit the sender does not tell the home to stop waiting for it (LEAVE),
whoever holds it now does.

A home's agent unpickles and pickles the messages that pass through it (a
remote writer's to a reader of the program, a local writer's to a remote
reader): it hands ends on there, and holds none (``serve_as_agent``).
"""
from __future__ import annotations

import sys

from csp_ext import ShmChannel, ShmChannelEndRead, ShmChannelEndWrite

from . import _node, _remote, _wire
from ._channel import HomedChannel
from ._remote import RemoteChannel, RemoteChannelEndRead, RemoteChannelEndWrite


_PRUNE_FROM = 64  # ends in ``_ProgramSide.adopted`` before it is pruned


def _unshared_refcount() -> int:
    """What sys.getrefcount says, in ``prune_adopted``'s loop, of an end that
    only ``adopted`` holds (measured so: interpreters count differently)."""
    held = {0: (object(), None, None)}
    for _, (thing, _, _) in list(held.items()):
        return sys.getrefcount(thing)
    raise AssertionError("unreachable")


class _ProgramSide:
    """The home of this program's channels, seen from one of its processes:
    the node's agent, asked through the registry."""

    def __init__(self) -> None:
        # id(end) -> (end, channel name, join number): each end object sent
        # stays one join at the agent however often it is sent (kept alive
        # here, so the id is not reused).
        self.adopted: dict[int, tuple[object, str, int]] = {}
        self.prune_adopted_at = _PRUNE_FROM
        self.twins: dict[int, tuple[object, object]] = {}  # id(end) -> (end, its twin)

    def address(self) -> tuple[str, int]:
        return _node.this_node().address

    def number(self) -> int | None:
        node = _node.current()
        return node.home_number if node is not None else None

    def max_message(self) -> int:
        return _node.this_node().settings.max_message

    def adopt(self, end) -> tuple[str, int]:
        known = self.adopted.get(id(end))
        if known is not None:
            return known[1], known[2]
        name, number = _answer(_node.this_node().ask("adopt", None, end))
        self.adopted[id(end)] = (end, name, number)
        if len(self.adopted) >= self.prune_adopted_at:
            self.prune_adopted()
        return name, number

    def prune_adopted(self) -> None:
        """Forget the ends that nothing but ``adopted`` holds: they cannot be
        sent again (a reply channel per request would grow it for good, and
        keep every such channel alive).  Amortised: when it doubled."""
        unshared = _unshared_refcount()
        for key, (end, _, _) in list(self.adopted.items()):
            if sys.getrefcount(end) <= unshared:
                self.adopted.pop(key, None)
        self.prune_adopted_at = max(_PRUNE_FROM, 2 * len(self.adopted))

    def name_of(self, channel: ShmChannel) -> str:
        return _answer(_node.this_node().ask("name", None, channel))

    def twin(self, end) -> RemoteChannelEndRead | RemoteChannelEndWrite:
        """An end of this program's node for the same join as ``end``, to
        choose with guards homed elsewhere (``_guards``); one per end object."""
        known = self.twins.get(id(end))
        if known is None:
            name, number = _answer(_node.this_node().ask("twin", None, end))
            channel = _remote._rebuild_channel(name, self.address(), end.channel.buffer,
                                               self.max_message(), self.number() or 0)
            kind = RemoteChannelEndWrite if isinstance(end, ShmChannelEndWrite) \
                else RemoteChannelEndRead
            known = self.twins[id(end)] = (end, kind(channel, number, held=False))
        return known[1]

    def reclaim(self, number: int):
        return _answer(_node.this_node().ask("reclaim", number))

    def channel(self, name: str) -> ShmChannel | None:
        return _answer(_node.this_node().ask("channel", name))


class _AgentSide:
    """The home of this program's channels, seen from its agent."""

    def __init__(self, agent) -> None:
        self.agent = agent

    def address(self) -> tuple[str, int]:
        return self.agent.address

    def number(self) -> int:
        return self.agent.home

    def max_message(self) -> int:
        return self.agent.max_message

    def adopt(self, end) -> tuple[str, int]:
        return self.agent.adopt(end)

    def name_of(self, channel: ShmChannel) -> str:
        return self.agent.name_of(channel)

    def reclaim(self, number: int):
        return self.agent.reclaim(number)

    def channel(self, name: str) -> ShmChannel | None:
        return self.agent.channels.get(name)


_here: _ProgramSide | _AgentSide = _ProgramSide()


def serve_as_agent(agent) -> None:
    """In a home's agent: ends of its program are its own joins, and ends of
    other homes pass through without being held."""
    global _here
    _here = _AgentSide(agent)
    _remote.agent_process = True


def _answer(reply):
    """The agent's answer, or the error it met raised."""
    if isinstance(reply, Exception):
        raise reply
    return reply


# ---------------------------------------------------------------- sending

def _reduce(obj):
    """How ``obj`` travels (``_wire``'s pickler calls this for the types below)."""
    if isinstance(obj, (ShmChannelEndRead, ShmChannelEndWrite)):
        return _local_end(obj)
    if isinstance(obj, (RemoteChannelEndRead, RemoteChannelEndWrite)):
        _remote.moving(obj)
        channel = obj.channel
        return arrive_end, (_home_of(channel), channel.name, channel.buffer,
                            channel.max_message, obj.number, obj.is_writer, obj.retired)
    if isinstance(obj, RemoteChannel):
        return arrive_channel, (_home_of(obj), obj.name, obj.buffer, obj.max_message)
    channel = obj.channel if isinstance(obj, HomedChannel) else obj
    name = _here.name_of(channel)  # first: it may start this program's node
    return arrive_channel, (_home_here(), name, channel.buffer, _here.max_message())


def _local_end(end):
    channel = end.channel
    if end.retired:
        # Nothing to join: it arrives retired (its channel is named all the same).
        name, number = _here.name_of(channel), 0
    else:
        name, number = _here.adopt(end)
    return arrive_end, (_home_here(), name, channel.buffer, _here.max_message(), number,
                        isinstance(end, ShmChannelEndWrite), end.retired)


def _home_here() -> tuple[tuple[str, int], int]:
    """This program's home: (address, number)."""
    return _here.address(), _here.number()


def _home_of(channel: RemoteChannel) -> tuple[tuple[str, int], int]:
    return channel.address, channel.home


_wire.let_travel((ShmChannel, ShmChannelEndRead, ShmChannelEndWrite, HomedChannel,
                  RemoteChannel, RemoteChannelEndRead, RemoteChannelEndWrite), _reduce)


# ---------------------------------------------------------------- arriving

def _is_here(home_number) -> bool:
    return bool(home_number) and home_number == _here.number()


def arrive_end(home, name, buffer, max_message, number, is_writer, retired):
    """An end as it arrives (unpickled from a message of an authenticated peer)."""
    (host, port), home_number = home
    address = (str(host), int(port))
    if not retired and _is_here(home_number):
        end = _here.reclaim(int(number))
        if end is None:
            raise ValueError(f"pycsp.net: a message holds an end of channel {name!r} that "
                             f"its home (this program) does not know (join {number})")
        return end
    channel = _remote._rebuild_channel(str(name), address, int(buffer), int(max_message),
                                       int(home_number))
    kind = RemoteChannelEndWrite if is_writer else RemoteChannelEndRead
    end = kind(channel, int(number), bool(retired), held=False)
    end.hold()
    return end


def arrive_channel(home, name, buffer, max_message):
    """A channel as it arrives: a RemoteChannel, or this program's own."""
    (host, port), home_number = home
    address = (str(host), int(port))
    if _is_here(home_number):
        channel = _here.channel(name)
        if channel is None:
            raise ValueError(f"pycsp.net: a message names channel {name!r}, which is not "
                             f"homed in this program")
        return HomedChannel(channel, _here.address()) if channel.name == name else channel
    return _remote._rebuild_channel(str(name), address, int(buffer), int(max_message),
                                    int(home_number))
