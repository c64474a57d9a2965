"""Starting child OS processes from a thread that lives as long as this process.

A child learns of its parent's death by PR_SET_PDEATHSIG, which Linux sends
when the *thread* that forked the child ends, not when its process does.  A
child started from a thread other than the main one (a pycsp.parallel
``@process``, a ``threading.Thread`` of the program) would be killed as soon
as that thread ends, its Spawned processes and lingering children with it.
So such a start is handed to one daemon thread, started on first need, that
does nothing else for the rest of the process's life.
"""
import os
import queue
import threading

_requests = None  # the forker thread's queue, once it runs
_requests_lock = threading.Lock()


def run_on_a_lasting_thread(function, *args):
    """``function(*args)`` on the main thread if that is the caller, else on
    the forker thread; returns its value or raises its exception.  Blocks the
    caller meanwhile.  In a child forked by ``function``, never returns."""
    if threading.current_thread() is threading.main_thread():
        return function(*args)
    reply = queue.SimpleQueue()
    _forker_queue().put((function, args, reply))
    succeeded, value = reply.get()
    if succeeded:
        return value
    raise value


def _forker_queue():
    global _requests
    with _requests_lock:
        if _requests is None:
            requests = queue.SimpleQueue()
            threading.Thread(target=_serve, args=(requests,), name="pycsp forker",
                             daemon=True).start()
            _requests = requests
    return _requests


def _serve(requests):
    while True:
        function, args, reply = requests.get()
        try:
            reply.put((True, function(*args)))
        except BaseException as exc:  # noqa: B036 - raised again in the caller
            reply.put((False, exc))
        del function, args, reply  # nothing kept alive until the next request


def _forget_in_child():
    # The forker thread is not in a forked child (the thread that forked is,
    # and it is the child's main thread); a lock held by another thread at the
    # fork would stay held.
    global _requests, _requests_lock
    _requests = None
    _requests_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_in_child)
