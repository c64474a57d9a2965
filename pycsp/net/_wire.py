"""The messages between a program and a channel's home: one header frame, then a body.

The header is fixed-size binary, parsed without pickle; a frame that does not
parse is dropped.  Every request carries who sent it (the sender's
incarnation, a random number drawn per process, its pid, and a stream per
thread) and a sequence number, so that the home drops a duplicate; a reply
echoes the sequence number of its request.

LEAVE tells the home that the program holding an end has ended without
retiring it: the home no longer waits for it at its own exit (the join
stays, as a local end that was never retired does).  HOLD tells it that a
program now holds an end that arrived in a message (``_mobile``; not
answered); a LEAVE counts only from the program that holds the end.

ARM, DISARM, ANSWER and CLAIM are an alternation over ends homed in other
programs (``_alt`` is the alternating side, ``_arms`` the home's): ARM tries
one guard at its home and, if it is not ready, leaves it armed there (ARMED);
a home that finds a guard ready CLAIMs the party, which ANSWERs (yes: the
reply is the guard's commit, DATA or OK, or RELEASED); DISARM withdraws every
guard of an alternation that ended.

PING is a process's heartbeat to a home it talks to (no reply while the
home counts it alive); BYE says that the process ends normally, so the home
stops watching it (answered OK).  FENCED answers any request of a process
that the home declared dead (``_liveness``): it must not go on.

Bodies: a channel name (UTF-8) for HELLO, JOIN and POISON; for WRITE and
DATA a pickled message (protocol 5), one frame, then each of its large
out-of-band buffers (contiguous numpy arrays, PickleBuffer; not bytes or
bytearray, which pickle copies) as a frame of its own, so that they are sent
and received without copies in user space; UTF-8 text for ERROR and
REFUSED; the program's number (``HOLDER``) for HOLD and LEAVE.  Channels
and channel ends in messages travel as ``_mobile`` says (where their channel
is homed and the join's number there); the core's own pickle of a
shared-memory end names an offset in the sender's memory, so it is refused
both ways instead of being rebuilt in the wrong arena.
"""
from __future__ import annotations

import io
import pickle
import re
import struct
from typing import NamedTuple

import csp_ext

MAGIC = b"PN"
VERSION = 1

# Requests (program -> home)
HELLO, JOIN, WRITE, READ, RETIRE, POISON, LEAVE, HOLD, PING, BYE = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
ARM, DISARM, ANSWER = 11, 12, 13  # alternation across homes (``_alt``, ``_arms``)
# A read or write given up by its process (a signal handler raised in its
# wait): withdraw it if it has not completed (ref: its seq).  The request
# given up is answered CANCELLED, or as usual if too late; then the CANCEL OK.
CANCEL = 14
# A node's report to the root of its run (``_quiescence``): whether all its
# processes are blocked; the reply says whether every program of the run is.
STATUS = 15
REQUESTS = frozenset((HELLO, JOIN, WRITE, READ, RETIRE, POISON, LEAVE, HOLD, PING, BYE,
                      ARM, DISARM, ANSWER, CANCEL, STATUS))
# Requests that are not the program's CSP: heartbeats and reports.  Neither
# they nor their replies count as messages between programs (``_quiescence``).
CONTROL = frozenset((PING, BYE, STATUS))
# Replies (home -> program)
OK, DATA, POISONED, RETIRED, NO_CHANNEL, ERROR, REFUSED, FENCED = 20, 21, 22, 23, 24, 25, 26, 27
ARMED, RELEASED, CANCELLED = 29, 30, 31
# Every program of the run is blocked for good: the operation raises DeadlockError.
DEADLOCKED = 32
REPLIES = frozenset((OK, DATA, POISONED, RETIRED, NO_CHANNEL, ERROR, REFUSED, FENCED,
                     ARMED, RELEASED, CANCELLED, DEADLOCKED))
# Sent by a home unasked, to a process whose alternation it armed: "may this
# guard commit?" (seq: the alternation, ref: the claim's number).
CLAIM = 28
FROM_HOME = REPLIES | {CLAIM}
# ARM's first body frame: the alternating party (a number per thread; the
# header's incarnation names the process), its alternation, the guard's index
# in it, and whether to try only (never arm).
ARM_BODY = struct.Struct("!QQqB")
DISARM_BODY = struct.Struct("!QQ")  # the party and its alternation

_HEADER = struct.Struct("!2sBBQIIQq")  # magic, version, op, incarnation, pid, stream, seq, ref
HOLDER = struct.Struct("!Q")  # HOLD's and LEAVE's body: the program that holds the end


class Header(NamedTuple):
    op: int
    incarnation: int  # in HELLO's reply: the home's number (``_mobile``)
    pid: int
    stream: int
    seq: int
    ref: int  # an end's number at the home (JOIN: 1 for a writer, 0 for a reader; OK: a number)


_new_tuple = tuple.__new__


def pack(op: int, incarnation: int, pid: int, stream: int, seq: int, ref: int = 0) -> bytes:
    return _HEADER.pack(MAGIC, VERSION, op, incarnation, pid, stream, seq, ref)


def parse(frame: bytes, expected: frozenset[int]) -> Header | None:
    """The header in ``frame``, or None if it is not one of ``expected``'s ops."""
    if len(frame) != _HEADER.size:
        return None
    fields = _HEADER.unpack(frame)
    if fields[0] != MAGIC or fields[1] != VERSION or fields[2] not in expected:
        return None
    # Header(*fields[2:]) without the Python frame of a NamedTuple's __new__
    return _new_tuple(Header, fields[2:])


_local_only = (csp_ext.Channel, csp_ext.ChannelEndRead, csp_ext.ChannelEndWrite)
_LOCAL_REBUILDERS = frozenset(("_shm_rebuild_channel", "_shm_rebuild_end"))
_travellers: tuple[type, ...] = ()
_reduce_traveller = None


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj):
        if isinstance(obj, _travellers):
            return _reduce_traveller(obj)
        if isinstance(obj, _local_only):
            raise TypeError(
                f"pycsp.net: {obj!r} cannot be sent to another program: it is a channel of "
                f"one OS process; use pycsp.net's channels (Channel(), Channel(name))")
        return NotImplemented


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if module == "csp_ext" and name in _LOCAL_REBUILDERS:
            raise pickle.UnpicklingError(
                "pycsp.net: a message names a channel of another program's memory; refused")
        return super().find_class(module, name)


def let_travel(types: tuple[type, ...], reduce) -> None:
    """Pickle objects of ``types`` in messages as ``reduce(obj)`` says
    (channels and their ends: ``_mobile``), before their own pickling."""
    global _travellers, _reduce_traveller
    _travellers, _reduce_traveller = tuple(types), reduce


# Smaller buffers are copied into the pickle: a frame of their own (and the
# zero-copy send's bookkeeping) costs more than the copy.
OUT_OF_BAND_FROM = 64 * 1024
# Messages that ``dumps`` pickles as they are: nothing in them is a channel
# or a buffer (pickle copies bytes and str into the pickle, whatever their size).
PLAIN_TYPES = frozenset((bytes, str, int, float, bool, type(None)))


def dumps(obj: object) -> list[bytes | memoryview]:
    """``obj`` pickled for another program, as frames: the pickle, then each of
    its contiguous buffers of OUT_OF_BAND_FROM bytes or more, not copied (the
    frames refer to ``obj``'s memory: send them before changing it).
    TypeError for a channel of one OS process."""
    if type(obj) in PLAIN_TYPES:
        # The pickle is the same, without a Pickler made for it (2.7 us -> 0.56 here).
        return [pickle.dumps(obj, 5)]
    buffers = []

    def out_of_band(buffer: pickle.PickleBuffer) -> bool:
        try:
            raw = buffer.raw()
        except BufferError:  # not contiguous: pickle copies it in-band (or refuses)
            return True
        if raw.nbytes < OUT_OF_BAND_FROM:
            return True
        buffers.append(raw)
        return False

    out = io.BytesIO()
    _Pickler(out, protocol=5, buffer_callback=out_of_band).dump(obj)
    return [out.getbuffer(), *buffers]


def size(frames: list) -> int:
    """The bytes of a message's frames, together."""
    return sum(memoryview(frame).nbytes for frame in frames)


def loads(frames: list) -> object:
    """A message from an authenticated peer: ``dumps``'s frames, received
    (never call it on any other's bytes).  Its out-of-band buffers become
    objects over the frames' memory, without a copy: a numpy array is a
    writable view of its frame."""
    data = frames[0]
    if len(frames) == 1 and type(data) is bytes and not _may_name_a_rebuilder(data):
        # What names a global in it names it as text (GLOBAL, INST of
        # protocols 0-3), and never a rebuilder that _Unpickler refuses: the
        # same object without an Unpickler made for it (1.2 -> 0.4 us).
        return pickle.loads(data)
    return _Unpickler(io.BytesIO(data), buffers=frames[1:]).load()


# A pickle that may make find_class look up one of _LOCAL_REBUILDERS: one with
# a byte that could be an opcode taking the name from the stack or the copyreg
# registry (STACK_GLOBAL, EXT1/2/4), or with a rebuilder's name as text.  (A
# data byte that matches only takes the long way.)
_may_name_a_rebuilder = re.compile(b"[" + re.escape(b"".join(
    (pickle.STACK_GLOBAL, pickle.EXT1, pickle.EXT2, pickle.EXT4))) + b"]|"
    + b"|".join(re.escape(name.encode()) for name in sorted(_LOCAL_REBUILDERS))).search
