"""Starting CSP processes as greenlets on the C scheduler."""
from functools import partial

from csp_ext import green_spawn


def _bootstrap(proc, join):
    try:
        proc._run_body()
    finally:
        proc.task.finish(join)
    # Handed to the root greenlet (the parent), which then drops this greenlet.
    return proc.task


def start_greenlets(procs, join):
    """Put one new greenlet per process on the run queue; each calls ``join.done()`` at its end."""
    for proc in procs:
        green_spawn(proc.task, partial(_bootstrap, proc, join))
