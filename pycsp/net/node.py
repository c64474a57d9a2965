"""``python -m pycsp.net.node``: runs one CSP process for a program on another
host, as started there by ``@sshprocess`` or ``@clusterprocess`` (``_hosts``).

It reads the handover on stdin (the run's keys, the function by module and
name, its arguments), runs the function as a process of its own program
(poison and retire spread as in any process), and writes the answer to its
stdout, which only the answer uses: whatever the function prints goes to
stderr.  It watches stdin after the handover: end of file means the
program that started it is gone, and it ends at once (exit status 3), so it
never outlives that program.  Nor does it outlive being declared dead: when
the program's home fences it (it heard no heartbeat from the node within its
timeout: the node was stopped, or its link was down), any process of the
node that learns it makes the node exit at once with ``FENCED_EXIT_STATUS``.
"""
from __future__ import annotations

import atexit
import importlib
import importlib.util
import os
import pickle
import sys
import threading


def _load_function(module: str, qualname: str, path: str | None):
    if module == "__main__":
        if not path:
            raise ImportError("the function was defined in an interactive __main__; "
                              "define it in a file to run it on another host")
        spec = importlib.util.spec_from_file_location("__pycsp_main__", path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {path!r}")
        mod = importlib.util.module_from_spec(spec)
        sys.modules["__pycsp_main__"] = mod
        spec.loader.exec_module(mod)
        # The handover's arguments name the program's classes as __main__'s.
        sys.modules["__main__"] = mod
    else:
        mod = importlib.import_module(module)
    obj = mod
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return getattr(obj, "__wrapped__", obj)


def _watch_launcher() -> None:
    """End this node when its launcher's stdin closes (the program went)."""
    try:
        while os.read(0, 65536):   # raw: a buffered stdin would block shutdown
            pass
    finally:
        os._exit(3)


def _exit_when_fenced() -> None:
    """End the node (status FENCED_EXIT_STATUS) once a home fenced any of its processes.

    The CSP process runs in a child of this one: a pipe inherited by it
    carries the news to a thread here."""
    from . import _heartbeat
    from ._hosts import FENCED_EXIT_STATUS

    fenced_in, fenced_out = os.pipe()

    def tell(address):
        os.write(fenced_out, f"{address[0]}:{address[1]}\n".encode())

    def wait():
        where = os.read(fenced_in, 4096).decode(errors="replace").split("\n")[0]
        print(f"pycsp.net.node: the home at {where} declared this node dead and fenced it; "
              f"ending", file=sys.stderr, flush=True)
        os._exit(FENCED_EXIT_STATUS)

    _heartbeat.on_fenced(tell)
    threading.Thread(target=wait, daemon=True, name="pycsp-net-fenced").start()


def main() -> int:
    answer_fd = os.dup(1)
    os.dup2(2, 1)      # the function's prints go to stderr; stdout is the answer's
    from ._launch import read_handover

    handover = pickle.loads(read_handover())
    if handover.get("run"):
        # The last frame, after what the node's modules do at its exit (they
        # register later; this runs before pycsp's own runtimes' shutdowns,
        # so it shuts them down first).
        atexit.register(_last_counts, answer_fd)
    sys.path[:0] = [p for p in handover["sys_path"] if p not in sys.path]
    threading.Thread(target=_watch_launcher, daemon=True, name="pycsp-net-launcher").start()

    from . import _settings
    from ._hosts import _JOINED, write_frame, write_result

    _settings.adopt_handover(handover["curve"], handover["keys"], handover.get("heartbeat"))
    _exit_when_fenced()
    if handover.get("run"):
        import csp_ext

        from ._quiescence import report_to_root

        # This process's record first: running, it counts as busy in the reports.
        csp_ext.shm_init()
        report_to_root(*handover["run"])
    try:
        fn = _load_function(*handover["function"])
        args = _rebuild(handover["args"])
        kwargs = _rebuild(handover["kwargs"])
        write_frame(answer_fd, _JOINED)
        from .. import processes

        proc = processes.Process(fn, *args, **kwargs)
        processes.Parallel(proc)
        outcome = (True, proc.return_value)
    except BaseException as e:  # the process's exception goes back to Parallel there
        outcome = (False, e)
    write_result(answer_fd, *outcome)
    if not handover.get("run"):
        os.close(answer_fd)
    return 0    # a normal exit: the remote ends leave their homes (atexit)


def _last_counts(answer_fd: int) -> None:
    from ._hosts import write_last_counts

    try:
        write_last_counts(answer_fd)
    except Exception as exc:  # no last counts: the root stops trusting its sums
        print(f"pycsp.net.node: its last counts: {exc!r}", file=sys.stderr, flush=True)
    finally:
        try:
            os.close(answer_fd)
        except OSError:
            pass


def _rebuild(obj):
    from .._ends import map_leaves
    from ._hosts import EndOnHost

    return map_leaves(obj, lambda x: x.rebuild() if isinstance(x, EndOnHost) else x)


if __name__ == "__main__":
    sys.exit(main())
