"""Starting CSP processes as OS threads with small stacks."""
import _thread
import os
import threading

from csp_ext import Join

# Small enough that 10,000 threads fit in the address space, large enough for
# Python's default recursion limit through C calls (512 KiB crashed at ~850).
_STACK_SIZE = int(os.environ.get("PYCSP_THREAD_STACK_SIZE", 2 * 1024 * 1024))
# _thread.stack_size is process-wide: one batch of starts at a time.
_start_lock = threading.Lock()


def _new_start_lock():
    # A child forked by one thread while another held the lock (pycsp.parallel
    # forks and starts threads from any thread) would find it held for good.
    global _start_lock
    _start_lock = threading.Lock()


os.register_at_fork(after_in_child=_new_start_lock)


def _bootstrap(proc, join):
    task = proc.task
    task.enter()
    try:
        proc._run_body()
    finally:
        task.finish(join)


def start_os_threads(bootstrap, arguments):
    """Start an OS thread running ``bootstrap(*args)`` for each tuple in
    ``arguments``, with pycsp's thread stack size.  Returns how many started
    and None; or, when the OS refused one (or Ctrl-C came meanwhile), how many
    started before that and the exception to raise once the caller has undone
    what it prepared for the others."""
    with _start_lock:
        previous = _thread.stack_size(_STACK_SIZE)
        started = 0
        try:
            for args in arguments:
                _thread.start_new_thread(bootstrap, args)
                started += 1
        except RuntimeError as exc:
            error = RuntimeError(f"pycsp could not start thread {started + 1} of "
                                 f"{len(arguments)}: {exc}")
            error.__cause__ = exc
            return started, error
        except BaseException as exc:  # noqa: B036 - KeyboardInterrupt: the caller raises it
            return started, exc
        finally:
            _thread.stack_size(previous)
    return started, None


def start_threads(procs, parallel):
    """Start one OS thread per process; return the Join that each counts down
    when it ends."""
    join = Join(len(procs))
    started, error = start_os_threads(_bootstrap, [(proc, join) for proc in procs])
    if error is not None:
        for proc in procs[started:]:
            proc.task.abandon()
            join.done()
        raise error
    return join
