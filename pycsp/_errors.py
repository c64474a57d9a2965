"""Exceptions of PyCSP 0.9.2 beyond the API's own (which csp_ext defines).

The socket family (``ChannelSocketException`` and its subclasses) is what
PyCSP 0.9.2's pycsp.parallel raised for channels between interpreters; pycsp.net
(running beyond one machine) raises them.  They exist now so that programs
that name them import and run.  ``InfoException`` and ``FatalException`` are
0.9.2's usage and internal errors.  Each class is one object, whichever module
exports it.
"""
from __future__ import annotations

from typing import Any

from csp_ext import ChannelPoisonException


class ChannelSocketException(Exception):
    """A channel between interpreters failed: ``ChannelSocketException(addr, msg)``.

    ``addr`` is the (host, port) concerned (or None), ``msg`` what went wrong.
    """

    def __init__(self, addr: tuple[str, int] | None, msg: Any) -> None:
        super().__init__(addr, msg)
        self.addr = addr
        self.msg = msg

    def __str__(self) -> str:
        return f"{self.msg} {self.addr}" if self.addr is not None else str(self.msg)


class ChannelConnectException(ChannelSocketException):
    """A channel could not connect to the address it was given (``connect=``),
    or a mobile channel end could not reach its channel's host."""


class ChannelBindException(ChannelSocketException):
    """pycsp could not bind to a port to host channels."""


class ChannelLostException(ChannelSocketException, ChannelPoisonException):
    """A channel's connection broke and could not be made again.  It is also a
    ChannelPoisonException: a process that does not catch it poisons the
    channel ends in its arguments as for poison, so that its peers stop."""


class InfoException(Exception):
    """PyCSP was used in a way it does not support; the message says what to do."""

    def __init__(self, msg: Any) -> None:
        super().__init__(msg)
        self.msg = msg


class FatalException(Exception):
    """PyCSP is in a state it cannot recover from."""

    def __init__(self, msg: Any) -> None:
        super().__init__(msg)
        self.msg = msg
