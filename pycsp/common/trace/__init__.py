"""pycsp.common.trace: record what a CSP program does, as PyCSP's trace module did.

::

    from pycsp.processes import *        # any backend
    from pycsp.common.trace import *     # after it
    TraceInit("run.json")
    ...                                  # the program, unchanged
    TraceQuit()                          # writes run.json

and ``python -m pycsp.common.trace render run.json -o run.png`` draws it.

The file is in the Chrome Trace Event format (``_chrome.py`` lists its events):
it opens as it is in Perfetto (ui.perfetto.dev) and chrome://tracing, one
track per CSP process: its body, each read, write and alternation (the time
it was blocked, on which channel), poison and retire, with an arrow from each
write to the read that took the message.  Every OS process records (the
children of pycsp.processes too, forked or spawned); a child that crashes
leaves what it recorded.

After ``from pycsp.common.trace import *`` the names ``process``, ``Process``,
``Parallel``, ``Sequence``, ``Spawn``, ``Channel`` (its ends
``ChannelEndRead``, ``ChannelEndWrite``), ``Alternation``, ``AltSelect``,
``PriSelect``, ``FairSelect``, ``InputGuard`` and ``OutputGuard`` are traced
wrappers over the backend's; the backend's other names come along unchanged
(``retire``, ``shutdown``, ``version``...), as PyCSP's trace module gave them.
They record only between TraceInit and TraceQuit.  The backend's own names
are untouched: a program that does not use the traced ones runs exactly the
code it ran before.

Which backend the names wrap: ``_wrapped.py`` (the one the importing module
holds, else the most recently imported one; ``set_backend`` to choose).
"""
from __future__ import annotations

import atexit
import json
import os
import shutil
import sys
import tempfile
from typing import IO, TYPE_CHECKING, Any

from . import _chrome, _recorder as rec, _wrapped
from ._wrapped import backend as backend, set_backend as set_backend

if TYPE_CHECKING:
    # The traced names take and give what the backend's do: a type checker
    # sees the backend's (pycsp.threads', every backend's are alike), and the
    # backend's other names, which ``import *`` brings along at runtime.
    from pycsp.threads import *  # noqa: F403
else:
    from ._alternation import (AltSelect, Alternation, FairSelect, InputGuard, OutputGuard,
                               PriSelect)
    from ._channels import Channel, ChannelEndRead, ChannelEndWrite
    from ._processes import Parallel, Process, Sequence, Spawn, process

DEFAULT_FILE = "pycsp_trace.json"

TRACED_NAMES = [
    "process", "Process", "Parallel", "Sequence", "Spawn", "Channel", "ChannelEndRead",
    "ChannelEndWrite", "Alternation", "AltSelect", "PriSelect", "FairSelect", "InputGuard",
    "OutputGuard",
]

_target = None          # where TraceQuit writes: a path or a file object
_stdout_wrapper = None  # sys.stdout while TraceInit(stdout=True) records it
_exit_hook = False


class _RecordedOutput:
    """sys.stdout that records each line printed (TraceInit(stdout=True))."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text):
        if text.strip():
            rec.instant(text.strip()[:80], "output", {"text": text})
        return self._stream.write(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def TraceInit(file: str | os.PathLike[str] | IO[str] | None = None, stdout: bool = False
              ) -> None:
    """Start recording, into ``file`` (a path, default ``pycsp_trace.json``, or
    a writable text file object); TraceQuit writes it.  With ``stdout`` true,
    each line printed is recorded too.

    The events of each OS process go to ``FILE.parts/`` meanwhile (for a file
    object, a temporary folder).  Raises RuntimeError if tracing is already on,
    TypeError for a ``file`` that is neither a path nor writable, OSError if
    ``FILE.parts`` cannot be made.
    """
    global _target, _stdout_wrapper, _exit_hook
    if rec.session is not None:
        raise RuntimeError("TraceInit: tracing is already on; call TraceQuit first")
    if file is None:
        file = DEFAULT_FILE
    if hasattr(file, "write"):
        target, parts = file, tempfile.mkdtemp(prefix="pycsp-trace-")
    else:
        try:
            target = os.fspath(file)
        except TypeError:
            raise TypeError(f"TraceInit: file must be a path or a writable file object, "
                            f"not {type(file).__name__}") from None
        parts = f"{target}.parts"
        shutil.rmtree(parts, ignore_errors=True)
        os.mkdir(parts)
    backend_name = backend().__name__
    session = rec.start(parts, backend_name)
    _target = target
    with open(os.path.join(parts, "session.json"), "w") as out:
        json.dump({"owner_pid": session.owner_pid, "backend": backend_name,
                   "target": target if isinstance(target, str) else None}, out)
    if stdout:
        _stdout_wrapper = sys.stdout = _RecordedOutput(sys.stdout)
    if not _exit_hook:
        atexit.register(_quit_at_exit)
        _exit_hook = True
    rec.instant("TraceInit", "trace", {"backend": backend_name})


def TraceQuit() -> str | None:
    """Stop recording and write the trace file: the events of every OS process
    merged (call it after the processes ended: after Parallel, or after
    ``shutdown()`` for Spawned ones).  Returns the path written (None for a
    file object).  Raises RuntimeError if tracing is not on, or if called in
    another OS process than TraceInit's.
    """
    global _target, _stdout_wrapper
    session = rec.session
    if session is None:
        raise RuntimeError("TraceQuit: tracing is not on; call TraceInit first")
    if os.getpid() != session.owner_pid:
        raise RuntimeError(f"TraceQuit: call it in the OS process that called TraceInit "
                           f"(pid {session.owner_pid}), not in pid {os.getpid()}")
    rec.instant("TraceQuit", "trace", {})
    rec.stop()
    if _stdout_wrapper is not None:
        if sys.stdout is _stdout_wrapper:
            sys.stdout = _stdout_wrapper._stream
        _stdout_wrapper = None
    target, _target = _target, None
    _chrome.merge(session.parts, target, session.owner_pid, session.backend_name,
                  {"generator": "pycsp.common.trace"})
    return target if isinstance(target, str) else None


def TraceMsg(text: object) -> None:
    """Record ``text`` (any object, as str) at this moment on the calling
    process's track.  Does nothing while tracing is off."""
    text = str(text)
    rec.instant(text[:80], "msg", {"msg": text})


def render(trace: str | os.PathLike[str], out: str | os.PathLike[str] | None = None
           ) -> Any:
    """Draw the trace file ``trace`` as two PNG pictures, the timeline at
    ``out`` (default: TRACE with .png) and the network beside it
    (``NAME-network.png``); return their paths.  Needs matplotlib (ImportError
    saying so without it); ValueError for a file that is not such a trace."""
    from ._render import render as draw

    return draw(trace, out)


def _quit_at_exit():
    """A program that ends without TraceQuit still leaves its trace (after
    waiting for its Spawned processes, as it would at exit anyway)."""
    session = rec.session
    if session is None or os.getpid() != session.owner_pid:
        return
    try:
        backend().shutdown()
    finally:
        TraceQuit()


# The backend's names, traced ones replaced: what `import *` gives.
_backend = _wrapped.find(_wrapped.importing_namespace(0))
_name = None
for _name in getattr(_backend, "__all__", ()):
    if _name not in TRACED_NAMES:
        globals()[_name] = getattr(_backend, _name)
if not TYPE_CHECKING:  # a type checker exports the public names bound above
    __all__ = [n for n in getattr(_backend, "__all__", ()) if n not in TRACED_NAMES]
    __all__ += TRACED_NAMES + ["TraceInit", "TraceQuit", "TraceMsg"]
del _name
