"""How a program starts itself on another host: through the launchers users
already have (NET.md), never a daemon of ours.

    ssh    OpenSSH's client, with the user's own configuration, keys and agent
           (~/.ssh/config); PYCSP_SSH_OPTIONS adds options to every call
           (e.g. ``-F /path/ssh_config``), parsed as a shell would.
    srun   Slurm, inside an allocation: one task on the named node.

What the started program must know in secret (its CurveZMQ keys, the root's
key and address) goes on the launcher's stdin, which ssh and srun carry over
their own authenticated channel; never on a command line or in the
environment, which other users of that host can read (ps, /proc).  The
remote program reads it with `read_handover`.

The remote command runs in the caller's working directory with the caller's
interpreter path unless told otherwise (0.9.2 started ``python`` in the same
directory): the hosts of a cluster share a file system.
"""
from __future__ import annotations

import os
import shlex
import struct
import subprocess
import sys
from typing import BinaryIO, Sequence

_HANDOVER_MAGIC = b"PYCSPHO1"
_HANDOVER_MAX = 1 << 20


class LaunchError(RuntimeError):
    """A launcher that cannot be used (missing, or a bad setting)."""


def _remote_shell_command(argv: Sequence[str], cwd: str | None) -> str:
    """One command line for a POSIX login shell on the remote host."""
    command = "exec " + " ".join(shlex.quote(str(a)) for a in argv)
    if cwd:
        command = f"cd {shlex.quote(cwd)} && {command}"
    return command


def ssh_argv(host: str, argv: Sequence[str], *, port: int | None = None,
             user: str | None = None, cwd: str | None = None,
             options: Sequence[str] | None = None) -> list[str]:
    """The ssh command line that runs `argv` on `host` (in `cwd`).

    BatchMode: a launch never stops to ask for a password on a terminal
    (0.9.2's ssh_password is refused; use keys or an agent)."""
    if not host or host.startswith("-"):
        raise LaunchError(f"ssh host {host!r} is not a host name")
    extra = list(options) if options is not None else shlex.split(
        os.environ.get("PYCSP_SSH_OPTIONS", ""))
    cmd = ["ssh", "-o", "BatchMode=yes", "-T"]
    if port is not None and port != 22:
        cmd += ["-p", str(int(port))]
    if user:
        cmd += ["-l", user]
    return cmd + extra + ["--", host, _remote_shell_command(argv, cwd)]


def srun_argv(host: str, argv: Sequence[str], *, cwd: str | None = None) -> list[str]:
    """The srun command line that runs `argv` as one task on node `host` of
    the current allocation, with this environment (``--export=ALL``)."""
    if not host or host.startswith("-"):
        raise LaunchError(f"node {host!r} is not a host name")
    cmd = ["srun", "--nodes=1", "--ntasks=1", f"--nodelist={host}", "--export=ALL",
           "--kill-on-bad-exit=1", "--quiet"]
    if cwd:
        cmd.append(f"--chdir={cwd}")
    return cmd + [str(a) for a in argv]


def start(launcher_argv: Sequence[str], handover: bytes, **popen) -> subprocess.Popen:
    """Start a launcher and give the remote program `handover` on its stdin
    (framed: see `read_handover`).  stdin is closed after it, so the remote
    program sees end of file when its launcher's link drops."""
    if len(handover) > _HANDOVER_MAX:
        raise LaunchError(f"handover of {len(handover)} bytes is over {_HANDOVER_MAX}")
    try:
        proc = subprocess.Popen(list(launcher_argv), stdin=subprocess.PIPE, **popen)
    except FileNotFoundError:
        raise LaunchError(f"{launcher_argv[0]}: not found on PATH") from None
    assert proc.stdin is not None
    try:
        proc.stdin.write(_HANDOVER_MAGIC + struct.pack("!I", len(handover)) + handover)
        proc.stdin.close()
    except BrokenPipeError:
        # The launcher failed at once: its exit status says why.
        try:
            proc.stdin.close()
        except BrokenPipeError:
            pass
    proc.stdin = None   # closed: communicate() and wait() must not touch it
    return proc


def read_handover(stream: BinaryIO | None = None) -> bytes:
    """In the started program: the bytes `start` sent (ValueError if what
    arrived is not a handover)."""
    stream = stream if stream is not None else sys.stdin.buffer
    head = _read_exactly(stream, len(_HANDOVER_MAGIC) + 4)
    if head[:len(_HANDOVER_MAGIC)] != _HANDOVER_MAGIC:
        raise ValueError("stdin does not start with a pycsp handover")
    (size,) = struct.unpack("!I", head[len(_HANDOVER_MAGIC):])
    if size > _HANDOVER_MAX:
        raise ValueError(f"handover of {size} bytes is over {_HANDOVER_MAX}")
    return _read_exactly(stream, size)


def _read_exactly(stream: BinaryIO, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = stream.read(n - len(data))
        if not chunk:
            raise ValueError(f"stdin ended after {len(data)} of {n} bytes of the handover")
        data += chunk
    return data
