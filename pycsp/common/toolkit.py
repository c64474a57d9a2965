"""PyCSP's toolkit: files and external commands as channels.

``which(cmd)``
    the path of a program on PATH.
``file_r(cout, file, retire_on_eof=True, sep="\\n")``, ``file_w(cin, file)``
    processes that read a file into a channel and write a channel into a file.
``execute(command, stdinChEnd, stdoutChEnd, stderrChEnd)``
    a process that runs an external command with its standard streams as channels.
``runner(cin)``
    a process that runs the commands it reads, one after the other.

As in PyCSP, a message carrying text is a *record*: a list of lines (each
with its line ending).  ``file_r`` sends one list per record, a record ending
with the first line that contains ``sep`` (so, by default, one line per
message); ``execute`` sends each line of output as a one-line list; and
``file_w`` and a command's standard input take such lists or plain strings.
So the output of one tool plugs into the input of another.

Blocking file and pipe operations run as ``@io`` calls of the backend in use
(under greenlets, in a worker thread while the other greenlets go on).  Under
pycsp.processes with the spawn start, pass files as paths: an open file object
cannot be pickled to the child (the fork start inherits it).
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from typing import IO, TYPE_CHECKING, Any, Union

from csp_ext import ChannelPoisonException, ChannelRetireException

from .._names import poison, retire
from .._process import process
from ._backend import local_backend
from ._component import check_end, component

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .._process import Process
    from .._typing import ReadEnd, WriteEnd

    _File = Union[str, os.PathLike[str], IO[Any]]

__all__ = ["which", "file_r", "file_w", "runner", "execute"]


def which(cmd: str | os.PathLike[str]) -> str | None:
    """The path of the program ``cmd`` as found on PATH, or None if there is none.

    Raises TypeError unless ``cmd`` is a string or a path.
    """
    if not isinstance(cmd, (str, os.PathLike)):
        raise TypeError(f"which: cmd must be a str, not {type(cmd).__name__}")
    return shutil.which(cmd)


def _blocking(fn):
    """``fn`` as an ``@io`` call of the backend running the caller."""
    return local_backend().io(fn)


def _check_file(owner, file, needs):
    if isinstance(file, (str, bytes, os.PathLike)) or hasattr(file, needs):
        return
    raise TypeError(f"{owner}: file must be a path or a file object with .{needs}(), "
                    f"not {type(file).__name__}")


def _as_text(owner, data):
    """A message (a string, bytes, or a list or tuple of strings) as one string or bytes."""
    if isinstance(data, (str, bytes, bytearray)):
        return data
    if isinstance(data, (list, tuple)) and all(isinstance(part, str) for part in data):
        return "".join(data)
    raise TypeError(f"{owner}: a message to write must be a str or a list of str, "
                    f"not {type(data).__name__}: {data!r:.80}")


@component(writers=["cout"])
def _file_r(cout, file, retire_on_eof=True, sep="\n"):
    opened = not hasattr(file, "readline")
    source = open(file) if opened else file
    try:
        readline = _blocking(source.readline)
        record = []
        line = readline()
        marker = sep if isinstance(line, str) else sep.encode()
        while line:
            record.append(line)
            if marker in line:
                cout(record)
                record = []
            line = readline()
        if record:
            cout(record)
    finally:
        if opened:
            source.close()
    if retire_on_eof:
        retire(cout)


def file_r(cout: WriteEnd[Any], file: _File, retire_on_eof: bool = True, sep: str = "\n"
           ) -> Process:
    """A process that reads ``file`` (a path, or a file object opened for reading)
    and writes it to ``cout`` record by record: a list of lines ending with the
    first line that contains ``sep``; the rest of the file, if any, as a last
    record.  At the end of the file it retires ``cout`` (unless not
    ``retire_on_eof``) and ends.  A file it opened it also closes.

    Raises TypeError or ValueError here for bad arguments.  While running, a
    read error ends it with that exception, raised by ``Parallel``.
    """
    _check_file("file_r", file, "readline")
    if not isinstance(sep, str) or not sep:
        raise ValueError(f"file_r: sep must be a non-empty str, not {sep!r}")
    return _file_r(cout, file, retire_on_eof, sep)


@component(readers=["cin"])
def _file_w(cin, file):
    opened = not hasattr(file, "write")
    sink = open(file, "w") if opened else file

    def write(data):
        sink.write(data)
        sink.flush()

    write = _blocking(write)
    try:
        while True:
            write(_as_text("file_w", cin()))
    finally:
        if opened:
            sink.close()


def file_w(cin: ReadEnd[Any], file: _File) -> Process:
    """A process that writes every message read from ``cin`` to ``file`` (a path,
    opened for writing, or a file object), flushing after each, until ``cin`` is
    retired or poisoned; then it retires or poisons ``cin`` and ends.  A file it
    opened it also closes.

    A message is a str (or bytes, for a binary file) or a list of str (joined).
    Raises TypeError here for a bad ``cin`` or ``file``; a message of another
    type ends the process with TypeError, raised by ``Parallel``.
    """
    _check_file("file_w", file, "write")
    return _file_w(cin, file)


def _command_args(command, shell):
    """``command`` checked, as Popen's args: a str is split as a shell would
    (but run without one) unless ``shell``."""
    if not isinstance(shell, bool):
        raise TypeError(f"execute: shell must be True or False, not {shell!r}")
    if isinstance(command, (str, os.PathLike)):
        args = os.fspath(command)
        if not shell:
            args = shlex.split(args)
    elif isinstance(command, (list, tuple)):
        if shell:
            raise ValueError("execute: with shell=True, give the command as one str")
        args = list(command)
        for arg in args:
            if not isinstance(arg, (str, bytes, os.PathLike)):
                raise TypeError(f"execute: command arguments must be str, not "
                                f"{type(arg).__name__} ({arg!r})")
    else:
        raise TypeError(f"execute: command must be a str or a list of str, "
                        f"not {type(command).__name__}")
    if not args:
        raise ValueError("execute: the command is empty")
    return args


def _check_command(command, stdinChEnd, stdoutChEnd, stderrChEnd, shell):
    check_end("execute", "stdinChEnd", stdinChEnd, reader=True, optional=True)
    check_end("execute", "stdoutChEnd", stdoutChEnd, reader=False, optional=True)
    check_end("execute", "stderrChEnd", stderrChEnd, reader=False, optional=True)
    return _command_args(command, shell)


class _Stopper:
    """What the pumps of one command share: how to stop it all.

    The first pump that meets poison, or fails, kills the command and poisons
    every end given for it, so that the other pumps stop too (their reads and
    writes raise) and nothing waits on a command that nobody serves.
    """

    def __init__(self, command, ends):
        self.command, self.ends, self.stopped = command, ends, False

    def stop(self):
        if not self.stopped:
            self.stopped = True
            if self.command.poll() is None:
                self.command.kill()
            poison(*self.ends)


@component(readers=["cin"])
def _feed_stdin(cin, pipe, stopper):
    """Write what comes from ``cin`` to the command's stdin; close it (end of file
    for the command) when ``cin`` is retired."""

    def write(data):
        pipe.write(data)
        pipe.flush()

    def close():
        try:
            pipe.close()
        except BrokenPipeError:  # unflushed data the command no longer reads
            pass

    write, close = _blocking(write), _blocking(close)
    try:
        while True:
            write(_as_text("execute stdin", cin()))
    except ChannelRetireException:
        close()
        raise
    except BrokenPipeError:
        # The command closed its stdin (or ended): this reader leaves the channel.
        close()
        retire(cin)
    except BaseException:  # noqa: B036 - poison, or a bad message: stop the command
        stopper.stop()
        raise


@component(writers=["cout"])
def _forward_lines(pipe, cout, retire_on_eof, stopper):
    """Write each line of ``pipe`` to ``cout`` as a one-line record."""
    readline, close = _blocking(pipe.readline), _blocking(pipe.close)
    try:
        for line in iter(readline, ""):
            cout([line])
    except ChannelRetireException:
        # Nobody reads any more: closing the pipe gives the command a broken
        # pipe at its next write, as the end of a shell pipeline does.
        close()
        raise
    except BaseException:  # noqa: B036 - poison, or output that is not text
        stopper.stop()
        raise
    if retire_on_eof:
        retire(cout)


def _run_command(args, stdinChEnd, stdoutChEnd, stderrChEnd, retire_on_eof, shell):
    """Run one command with its streams on the given ends; return its exit code.

    Raises ChannelPoisonException (having killed the command and poisoned its
    ends) if one of its channels was poisoned.
    """
    backend = local_backend()
    pipe_or_inherit = {True: subprocess.PIPE, False: None}
    command = subprocess.Popen(
        args, shell=shell, text=True, bufsize=1,
        stdin=pipe_or_inherit[stdinChEnd is not None],
        stdout=pipe_or_inherit[stdoutChEnd is not None],
        stderr=pipe_or_inherit[stderrChEnd is not None])
    with command:
        ends = [end for end in (stdinChEnd, stdoutChEnd, stderrChEnd) if end is not None]
        stopper = _Stopper(command, ends)
        pumps = []
        if stdinChEnd is not None:
            pumps.append(_feed_stdin(stdinChEnd, command.stdin, stopper))
        if stdoutChEnd is not None:
            pumps.append(_forward_lines(command.stdout, stdoutChEnd, retire_on_eof, stopper))
        if stderrChEnd is not None:
            pumps.append(_forward_lines(command.stderr, stderrChEnd, retire_on_eof, stopper))
        # The pumps run beside this process, on its backend's threads or
        # greenlets: they share the pipes with it.
        backend.Parallel(pumps)
        exit_code = backend.io(command.wait)()
    if stopper.stopped:
        raise ChannelPoisonException(f"execute {args!r}: a channel of the command was poisoned")
    return exit_code


@process  # its ends were checked by execute()
def _execute(args, stdinChEnd, stdoutChEnd, stderrChEnd, retire_on_eof, shell):
    return _run_command(args, stdinChEnd, stdoutChEnd, stderrChEnd, retire_on_eof, shell)


def execute(command: str | Sequence[str], stdinChEnd: ReadEnd[Any] | None = None,
            stdoutChEnd: WriteEnd[Any] | None = None, stderrChEnd: WriteEnd[Any] | None = None,
            retire_on_eof: bool = True, shell: bool = False) -> Process:
    """A process that runs the external ``command`` with its standard streams as
    channels, and returns its exit code.

    ``command`` is a list of arguments, or a str split into arguments as a shell
    would; it runs without a shell (no expansion, no redirection) unless
    ``shell=True``, which runs the str through ``/bin/sh``.  Each stream that has
    an end is a pipe, each other one is this program's own:

    - ``stdinChEnd`` (reader): every message read is written to the command's
      stdin (a str, or a list of str); once the channel is retired, stdin is
      closed.  If the command stops reading, the end is retired.
    - ``stdoutChEnd``, ``stderrChEnd`` (writers): every line of output is
      written as a one-line list; at the end of the output the end is retired
      (unless not ``retire_on_eof``).  If its channel's readers retire, the
      pipe is closed: the command gets a broken pipe, as at the end of a shell
      pipeline.

    If one of these channels is poisoned the command is killed and every end
    given is poisoned.  Raises TypeError or ValueError here for bad arguments;
    a command that cannot be started ends the process with OSError (e.g.
    FileNotFoundError), raised by ``Parallel``.
    """
    args = _check_command(command, stdinChEnd, stdoutChEnd, stderrChEnd, shell)
    return _execute(args, stdinChEnd, stdoutChEnd, stderrChEnd, retire_on_eof, shell)


@component(readers=["cin"])
def runner(cin: ReadEnd[Any]) -> None:
    """A process that runs commands, one after the other, until ``cin`` is retired
    or poisoned: it reads ``(command, stdinChEnd, stdoutChEnd, stderrChEnd)``
    tuples and runs each as ``execute`` would.  A command whose channels are
    poisoned is stopped (its ends poisoned) and the runner goes on with the next.

    A message that is not such a tuple ends it with TypeError, raised by
    ``Parallel``.
    """
    while True:
        job = cin()
        if not isinstance(job, (tuple, list)) or len(job) != 4:
            raise TypeError(f"runner: each message must be (command, stdinChEnd, "
                            f"stdoutChEnd, stderrChEnd), not {job!r:.80}")
        command, stdinChEnd, stdoutChEnd, stderrChEnd = job
        args = _check_command(command, stdinChEnd, stdoutChEnd, stderrChEnd, False)
        try:
            _run_command(args, stdinChEnd, stdoutChEnd, stderrChEnd, True, False)
        except ChannelPoisonException:
            pass  # that command's ends are poisoned already; the next one may run
