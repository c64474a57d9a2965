"""Starting CSP processes as greenlets on the C scheduler."""
from csp_ext import green_spawn


def start_greenlets(procs, join):
    """Queue one greenlet per process; each calls ``join.done()`` at its end.

    The greenlet's body is C (greensched.c): it calls ``proc.fn`` with no Python
    frame beneath it, which keeps each suspended greenlet's saved stack small,
    and hands any exception to ``proc._failed``.
    """
    for proc in procs:
        green_spawn(proc.task, proc, join)
