"""Finding channel ends inside process arguments.

Used for poison/retire propagation when a process body ends, and for
``Process * n``, which gives every copy fresh ends joined to the same channels.
"""
from csp_ext import (Channel, ChannelEndRead, ChannelEndWrite, ShmChannel, ShmChannelEndRead,
                     ShmChannelEndWrite)

READ_ENDS = (ChannelEndRead, ShmChannelEndRead)
WRITE_ENDS = (ChannelEndWrite, ShmChannelEndWrite)
_END_TYPES = READ_ENDS + WRITE_ENDS
_CHANNEL_TYPES = (Channel, ShmChannel)


def register_end_types(read_ends=(), write_ends=(), channels=()):
    """Let propagation and ``Process * n`` know ends and channels of other types.

    For wrappers of the core's ends (pycsp.common.trace's): a read or write end
    type has ``channel``, ``retire()`` and ``poison()``, and its ``channel`` has
    ``reader()``, ``writer()`` and ``poison()``.  The alternation does not use
    these tuples (it has its own hook), so the core's guards are untouched.
    """
    global READ_ENDS, WRITE_ENDS, _END_TYPES, _CHANNEL_TYPES
    READ_ENDS += tuple(t for t in read_ends if t not in READ_ENDS)
    WRITE_ENDS += tuple(t for t in write_ends if t not in WRITE_ENDS)
    _END_TYPES = READ_ENDS + WRITE_ENDS
    _CHANNEL_TYPES += tuple(t for t in channels if t not in _CHANNEL_TYPES)


def find_ends(*roots):
    """Yield every channel end and channel inside ``roots``.

    Searches lists, tuples, dicts (keys and values), sets and frozensets, each
    container once, so cyclic structures end.
    """
    seen = set()
    stack = list(roots)
    while stack:
        obj = stack.pop()
        if isinstance(obj, _END_TYPES) or isinstance(obj, _CHANNEL_TYPES):
            yield obj
        elif isinstance(obj, (list, tuple, set, frozenset, dict)):
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            if isinstance(obj, dict):
                stack.extend(obj.keys())
                stack.extend(obj.values())
            else:
                stack.extend(obj)


def poison_all(*roots):
    """Poison every channel reachable from ``roots``."""
    for end in find_ends(*roots):
        end.poison()


def retire_all(*roots):
    """Retire every channel end reachable from ``roots`` (channels themselves have no end to retire)."""
    for end in find_ends(*roots):
        if isinstance(end, _END_TYPES):
            end.retire()


def map_leaves(obj, replace):
    """A copy of ``obj`` with ``replace(x)`` for every x that is not a list, a
    plain tuple, a dict (its values), a set or a frozenset, searched inside those."""
    if isinstance(obj, list):
        return [map_leaves(x, replace) for x in obj]
    if isinstance(obj, tuple):
        return type(obj)(map_leaves(x, replace) for x in obj) if type(obj) is tuple else obj
    if isinstance(obj, dict):
        return {k: map_leaves(v, replace) for k, v in obj.items()}
    if isinstance(obj, (set, frozenset)):
        return type(obj)(map_leaves(x, replace) for x in obj)
    return replace(obj)


def _fresh_end(obj):
    if isinstance(obj, READ_ENDS):
        return obj.channel.reader()
    if isinstance(obj, WRITE_ENDS):
        return obj.channel.writer()
    return obj


def with_fresh_ends(obj):
    """A copy of ``obj`` where every channel end is replaced by a new end of the same channel."""
    return map_leaves(obj, _fresh_end)
