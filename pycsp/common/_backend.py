"""Which backend a component's inner network runs on: the one running the caller.

Most components only read, write and alternate, and those are the same
objects on every backend.  A component that starts processes of its own
(plugNplay's Pairs, toolkit's execute) needs the ``Parallel`` and ``Channel``
of the backend that runs it, whichever the program imported (a program, and
this test suite, may have imported several).
"""
import sys
import threading

from csp_ext import ShmChannel, ShmChannelEndRead, ShmChannelEndWrite

from .._ends import find_ends

_SHARED_MEMORY_TYPES = (ShmChannel, ShmChannelEndRead, ShmChannelEndWrite)


def _in_greenlet_process():
    if "pycsp.greenlets" not in sys.modules:  # greenlets cannot run without it
        return False
    import greenlet

    # A pycsp greenlet runs under the thread's main greenlet (the scheduler's
    # root); the main program, a thread or an OS process is a main greenlet.
    return greenlet.getcurrent().parent is not None


def local_backend():
    """The backend whose processes share the caller's memory and scheduler:
    ``pycsp.greenlets`` inside a greenlet process, ``pycsp.threads`` anywhere
    else (an OS process included: its threads may use its channels)."""
    if _in_greenlet_process():
        import pycsp.greenlets

        return pycsp.greenlets
    import pycsp.threads

    return pycsp.threads


def _unwrapped(end):
    """The backend's own end or channel inside a wrapper (a traced one)."""
    return getattr(end, "_end", None) or getattr(end, "_channel", None) or end


def backend_for(*ends):
    """The backend a network inside the calling process runs on, given the
    channel ends (or containers of them) the process was started with.

    When the caller holds shared-memory channels (pycsp.processes',
    pycsp.parallel's): ``pycsp.processes`` in the main thread of an OS
    process (the inner processes are OS processes too), ``pycsp.parallel``
    in another thread (they are threads that count in the same accounting,
    as a pycsp.parallel ``@process`` does); so deadlock detection keeps
    counting every one of them.  Otherwise ``local_backend()``.
    """
    if (not _in_greenlet_process()
            and any(isinstance(_unwrapped(end), _SHARED_MEMORY_TYPES) for end in find_ends(ends))):
        if threading.current_thread() is threading.main_thread():
            import pycsp.processes

            return pycsp.processes
        import pycsp.parallel

        return pycsp.parallel
    return local_backend()
