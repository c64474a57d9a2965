"""Starting CSP processes as greenlets on the C scheduler."""
from csp_ext import Join, green_spawn


def start_greenlets(procs, parallel):
    """Queue one greenlet per process; return the Join that each counts down
    at its end.

    The greenlet's body is C (greensched.c): it calls ``proc.fn`` with no Python
    frame beneath it, which keeps each suspended greenlet's saved stack small,
    and hands any exception to ``proc._failed``.
    """
    join = Join(len(procs))
    for proc in procs:
        green_spawn(proc.task, proc, join)
    return join
