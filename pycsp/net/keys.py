"""CurveZMQ key pairs for pycsp.net, and the key file that two programs share.

Two programs started separately (one homes ``Channel("A")``, the other
connects with ``Channel("A", connect=(host, port))``) authenticate each other
with one key file that both name::

    python -m pycsp.net.keys new FILE     # made once, mode 0600

and in both programs ``pycsp.net.configure(key_file=FILE)`` (or the
environment variable ``PYCSP_NET_KEY_FILE=FILE``).  The home's agent accepts
exactly the public key of that file; a connecting program proves it holds the
file's secret key, and checks that the home does too.  Keep the file as
private as an ssh key: a program that refuses a file readable by others says
so.  The file is ZeroMQ's certificate format (``zmq.auth.load_certificate``
reads it).
"""
from __future__ import annotations

import sys

from ._keys import KeyPair, new_key_pair, read_key_file, write_key_file

__all__ = ["KeyPair", "new_key_pair", "read_key_file", "write_key_file", "main"]


def main(argv: list[str] | None = None) -> int:
    """``python -m pycsp.net.keys new FILE``: write a new key file."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "new":
        print("usage: python -m pycsp.net.keys new FILE\n"
              "  writes a new CurveZMQ key pair to FILE (mode 0600) for programs that meet\n"
              "  through pycsp.net's Channel(name, connect=(host, port)); both name FILE\n"
              "  with pycsp.net.configure(key_file=FILE) or PYCSP_NET_KEY_FILE=FILE",
              file=sys.stderr)
        return 2
    try:
        keys = write_key_file(args[1])
    except FileExistsError:
        print(f"pycsp.net.keys: {args[1]} exists; not overwritten", file=sys.stderr)
        return 1
    print(f"{args[1]}: public key {keys.public.decode('ascii')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
