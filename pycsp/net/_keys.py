"""CurveZMQ key pairs for pycsp.net, and the key file that two programs share
(made by ``python -m pycsp.net.keys new FILE``: see pycsp.net.keys)."""
from __future__ import annotations

import datetime
import os
import stat
from typing import NamedTuple

import zmq
from zmq.auth import load_certificate


class KeyPair(NamedTuple):
    """A CurveZMQ key pair, each key Z85-encoded (40 bytes)."""

    public: bytes
    secret: bytes


def new_key_pair() -> KeyPair:
    """A fresh key pair (libsodium's random source)."""
    public, secret = zmq.curve_keypair()
    return KeyPair(public, secret)


def write_key_file(path: str | os.PathLike[str]) -> KeyPair:
    """Write a new key pair to ``path``, readable by its owner only; return it.

    Raises:
        FileExistsError: ``path`` exists (a key file is never overwritten).
    """
    keys = new_key_pair()
    when = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    text = (f"#   pycsp.net key file, made {when} by python -m pycsp.net.keys new\n"
            f"#   Both programs that meet through Channel(..., connect=) name it.\n"
            f"metadata\n"
            f"curve\n"
            f"    public-key = \"{keys.public.decode('ascii')}\"\n"
            f"    secret-key = \"{keys.secret.decode('ascii')}\"\n")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    return keys


def read_key_file(path: str | os.PathLike[str]) -> KeyPair:
    """The key pair in ``path``.

    Raises:
        PermissionError: the file can be read or written by its group or others.
        ValueError: the file holds no key pair (a public key alone is not enough).
    """
    mode = os.stat(path).st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PermissionError(
            f"pycsp.net: key file {os.fspath(path)!r} is open to its group or others "
            f"(mode {stat.S_IMODE(mode):04o}); chmod 600 it: its secret key admits a peer")
    public, secret = load_certificate(path)
    if secret is None:
        raise ValueError(f"pycsp.net: key file {os.fspath(path)!r} has no secret key; make "
                         f"one with: python -m pycsp.net.keys new FILE")
    return KeyPair(public, secret)
