"""How threads and greenlets are waited for and stopped, for _runtime.Runtime:
processes of this interpreter, a group counted down by one ``csp_ext.Join``.

A backend gives ``start(procs, parallel)``: it makes the group's Join, runs
each process somewhere (an OS thread: ``Process._run_body``; a greenlet: the
same steps in C, greensched.c) with the process's ``csp_ext.Task`` bound, which
then calls ``task.finish(join)``, and returns the Join.  On failure it calls
``task.abandon()`` and ``join.done()`` for each process it did not start, and
raises.  Waiting happens in C (``csp_ext.Join.wait``), where the GIL is
released, Ctrl-C is honoured and deadlock is detected.
"""
from csp_ext import Join

from ._ends import poison_all

# After Ctrl-C, how long Parallel waits for its stopped processes to end
# before raising (a thread in a long computation cannot be stopped sooner).
KILL_GRACE_SECONDS = 1.0


class InProcessBackend:
    makes_tasks = True

    def __init__(self, start):
        self.start = start

    # Returns True once every process has ended: a thread or greenlet has its
    # outcome only then.
    wait = wait_ended = staticmethod(Join.wait)

    @staticmethod
    def kill(procs, join):
        """Stop them at their next channel operation (a thread cannot be
        stopped otherwise), and give them a moment to end."""
        for p in procs:
            p.task.kill()
            poison_all(p.args, p.kwargs)
        try:
            join.wait(timeout=KILL_GRACE_SECONDS)
        except BaseException:  # noqa: B036 - a second Ctrl-C stops the grace wait
            pass

    @staticmethod
    def collect(procs, join):
        # Each process set its own return_value or exception as it ended;
        # collect is called once per group.
        return [p for p in procs if p.exception is not None]

    def watch(self, unfinished):
        pass  # an ended thread or greenlet leaves nothing to reap
