"""Starting CSP processes as OS threads with small stacks."""
import _thread
import os
import threading

from csp_ext import Join

# Small enough that 10,000 threads fit in the address space, large enough for
# Python's default recursion limit through C calls (512 KiB crashed at ~850).
_STACK_SIZE = int(os.environ.get("PYCSP_THREAD_STACK_SIZE", 2 * 1024 * 1024))
_start_lock = threading.Lock()


def _bootstrap(proc, join):
    task = proc.task
    task.enter()
    try:
        proc._run_body()
    finally:
        task.finish(join)


def start_threads(procs, parallel):
    """Start one OS thread per process; return the Join that each counts down
    when it ends."""
    join = Join(len(procs))
    with _start_lock:
        previous = _thread.stack_size(_STACK_SIZE)
        started = 0
        try:
            for proc in procs:
                _thread.start_new_thread(_bootstrap, (proc, join))
                started += 1
        except RuntimeError as exc:
            for proc in procs[started:]:
                proc.task.abandon()
                join.done()
            raise RuntimeError(f"pycsp.threads could not start thread {started + 1} of "
                               f"{len(procs)}: {exc}") from exc
        finally:
            _thread.stack_size(previous)
    return join
