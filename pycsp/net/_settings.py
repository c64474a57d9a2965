"""How this program's links are set up: ``pycsp.net.configure()`` and its environment.

Read once, when the first network channel is made (homed or connected);
configure() after that raises, since the home's socket is already bound.
PyCSP 0.9.2's ``Configuration().set(PYCSP_HOST/PYCSP_PORT, ...)`` and the
environment variables PYCSP_HOST and PYCSP_PORT say where a home binds;
PYCSP_NET_KEY_FILE names the key file (see pycsp.net.keys).
"""
from __future__ import annotations

import os
import threading
from typing import NamedTuple

from . import _link
from ._keys import KeyPair

DEFAULT_LINGER = 10.0
DEFAULT_HEARTBEAT_INTERVAL = 1.0
DEFAULT_HEARTBEAT_TIMEOUT = 5.0
_lock = threading.Lock()
_asked: dict = {}  # what configure() was given
_in_use: Settings | None = None


class Settings(NamedTuple):
    security: _link.Security
    host: str
    port: int
    max_message: int
    connect_timeout: float
    bind_timeout: float
    bind_retry_delay: float
    linger: float
    heartbeat_interval: float
    heartbeat_timeout: float


def configure(*, key_file: str | None = None, security: str | None = None,
              host: str | None = None, port: int | None = None,
              max_message: int | None = None, linger: float | None = None,
              heartbeat_interval: float | None = None,
              heartbeat_timeout: float | None = None) -> None:
    """Set up this program's network links; call it before the first network channel.

    Args:
        key_file: the key file that this program and its peers name
            (``python -m pycsp.net.keys new FILE``); default: PYCSP_NET_KEY_FILE,
            else a key pair made for this run (no program started separately
            can connect then).
        security: ``"curve"`` (the default: CurveZMQ, authenticated and
            encrypted) or ``"none"``, which warns (InsecureLinkWarning).
        host: the address a home binds (default: PYCSP_HOST, 0.9.2's
            Configuration, else 127.0.0.1: only this machine).
        port: the port a home binds (default: PYCSP_PORT, 0.9.2's
            Configuration, else any free port; see ``Channel.address``).
        max_message: the largest message (bytes) a home accepts from a peer.
        linger: how long (seconds, default 10) this program, when it ends,
            keeps its homed channels served for parties in other programs
            that still hold ends of them: until each has retired (or its
            program ended) or the channel is poisoned.
        heartbeat_interval: how often (seconds, default 1) each process of
            this program tells the homes it talks to that it lives.
        heartbeat_timeout: how long (seconds, default 5) a side stays silent
            before the other gives it up: a home declares a process of
            another program dead (it poisons the channels of the joins that
            process held, and fences it if it comes back), and a process
            takes a home it hears nothing from as lost (ChannelLostException).
            Longer than the interval; longer than the longest a process
            holds the GIL (its heartbeat thread needs it).

    Raises:
        RuntimeError: a network channel was made already.
        ValueError: ``security`` is neither mode, or the heartbeat settings
            are not positive with the interval below the timeout.
    """
    given = {"key_file": key_file, "security": security, "host": host, "port": port,
             "max_message": max_message, "linger": linger,
             "heartbeat_interval": heartbeat_interval, "heartbeat_timeout": heartbeat_timeout}
    with _lock:
        if _in_use is not None:
            raise RuntimeError("pycsp.net.configure(): a network channel was made already; "
                               "configure the links before the first one")
        if security is not None and security not in _link.SECURITY_MODES:
            raise ValueError(f"pycsp.net: security must be one of "
                             f"{', '.join(_link.SECURITY_MODES)}, not {security!r}")
        if security == "none":  # warns here, where the program asked for it
            _link.security_from("none", None)
        interval, timeout = _heartbeat_of({**_asked, **{k: v for k, v in given.items()
                                                        if v is not None}})
        if not 0 < interval < timeout:
            raise ValueError(f"pycsp.net: heartbeat_interval ({interval:g} s) must be positive "
                             f"and below heartbeat_timeout ({timeout:g} s)")
        _asked.update({k: v for k, v in given.items() if v is not None})


def _heartbeat_of(asked: dict) -> tuple[float, float]:
    return (float(asked.get("heartbeat_interval", DEFAULT_HEARTBEAT_INTERVAL)),
            float(asked.get("heartbeat_timeout", DEFAULT_HEARTBEAT_TIMEOUT)))


def adopt_handover(curve: bool, keys: tuple[bytes, bytes] | None,
                   heartbeat: tuple[float, float] | None = None) -> None:
    """In a node started on another host (pycsp.net.node): the links'
    security and heartbeat settings of the program that started it, handed
    over by its launcher."""
    with _lock:
        if _in_use is not None:
            raise RuntimeError("pycsp.net: a network channel was made before the handover")
        _asked["handed_over"] = (curve, keys)
        if heartbeat is not None:
            _asked["heartbeat_interval"], _asked["heartbeat_timeout"] = heartbeat


def current() -> Settings:
    """The settings in force (fixed on the first call)."""
    global _in_use
    with _lock:
        if _in_use is None:
            _in_use = _resolve()
        return _in_use


def _resolve() -> Settings:
    from ..parallel import _network  # 0.9.2's Configuration and its keys

    config = _network.Configuration()
    mode = _asked.get("security", "curve")
    if "handed_over" in _asked:   # warned, if "none", where the program asked for it
        curve, keys = _asked["handed_over"]
        security = (_link.Security(True, KeyPair(*keys), frozenset((keys[0],))) if curve
                    else _link.Security(False, None, frozenset()))
    elif mode == "none":
        security = _link.Security(False, None, frozenset())  # warned in configure()
    else:
        security = _link.security_from(mode, _asked.get("key_file")
                                       or os.environ.get("PYCSP_NET_KEY_FILE"))
    host = (_asked.get("host") or config.get(_network.PYCSP_HOST)
            or os.environ.get("PYCSP_HOST") or "127.0.0.1")
    port = int(_asked.get("port") or config.get(_network.PYCSP_PORT)
               or os.environ.get("PYCSP_PORT") or 0)
    return Settings(security, host, port,
                    int(_asked.get("max_message", _link.DEFAULT_MAX_MESSAGE)),
                    float(config.get(_network.SOCKETS_CONNECT_TIMEOUT)),
                    float(config.get(_network.SOCKETS_BIND_TIMEOUT)),
                    float(config.get(_network.SOCKETS_BIND_RETRY_DELAY)),
                    float(_asked.get("linger", DEFAULT_LINGER)),
                    *_heartbeat_of(_asked))


def closed_run() -> bool:
    """Whether no program but this one and the nodes it starts can reach its
    channels: CurveZMQ with keys made for the run (no key file), in a program
    that was not itself started as a node.  Only then is a run's deadlock
    across programs detected (``_quiescence``)."""
    settings = current()
    return (settings.security.curve and "handed_over" not in _asked
            and not (_asked.get("key_file") or os.environ.get("PYCSP_NET_KEY_FILE")))


def is_node() -> bool:
    """Whether this program was started on a host by another (pycsp.net.node)."""
    return "handed_over" in _asked
