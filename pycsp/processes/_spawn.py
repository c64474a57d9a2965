"""Starting a CSP process in a fresh interpreter (the "spawn" start method).

The child is started by multiprocessing's "spawn" context, which runs a new
Python, prepares ``__main__`` as multiprocessing does (so a script needs the
``if __name__ == "__main__":`` guard) and unpickles the child's arguments.  The
first argument pickles as "map the parent's arena and adopt this waiter
record": multiprocessing passes the arena's memfd to the child as an inherited
file descriptor, and the channel ends among the arguments that follow are
unpickled into the mapped arena.  From then on the child runs exactly as a
forked one (``_fork._child``).
"""
import sys

import csp_ext


def inheriting():
    """True while multiprocessing's spawn machinery prepares this (child) process:
    pycsp.processes then leaves the arena alone; the parent's is mapped later."""
    mp_process = sys.modules.get("multiprocessing.process")
    return mp_process is not None and getattr(mp_process.current_process(), "_inheriting", False)


class _Arena:
    """Pickles as "map the parent's arena and adopt `record`" (spawn start only)."""

    __slots__ = ("record",)

    def __init__(self, record):
        self.record = record

    def __reduce__(self):
        from multiprocessing import reduction

        return (_attach, (reduction.DupFd(csp_ext.shm_arena_fd()), self.record))


class _InheritedFd:
    """Pickles as a duplicate of `fd` passed to the spawned child."""

    __slots__ = ("fd",)

    def __init__(self, fd):
        self.fd = fd

    def __reduce__(self):
        from multiprocessing import reduction

        return (_detach, (reduction.DupFd(self.fd),))


def _detach(dup_fd):
    return dup_fd.detach()


def _attach(dup_fd, record):
    try:
        csp_ext.shm_attach(dup_fd.detach())
    except RuntimeError as exc:
        raise RuntimeError(f"pycsp: a spawned child could not map its parent's arena ({exc}); "
                           f"was a channel made while __main__ was imported?") from None
    csp_ext.shm_adopt(record)


def _main(arena, proc, index, results, parent_pid, start_method, notify=None, dump_on=None):
    """The child's body: its arguments are unpickled (the arena first)."""
    from .. import _dump
    from . import _fork

    _fork.set_start_method(start_method)  # nested Parallels start the same way
    _dump.in_a_new_interpreter(dump_on)  # answers the dump signal as its parent does
    _fork._child(proc, index, results, parent_pid, -1 if notify is None else notify)


def start(proc, index, results, parent_pid, record, start_method, notify_fd=-1):
    """Start `proc` in a new interpreter; return the multiprocessing.Process.
    ``notify_fd``: the group's notify pipe (see _fork._child), or -1."""
    import multiprocessing

    from .. import _dump

    context = multiprocessing.get_context("spawn")
    notify = _InheritedFd(notify_fd) if notify_fd >= 0 else None
    child = context.Process(target=_main, name=f"pycsp {proc.id}",
                            args=(_Arena(record), proc, index, results, parent_pid, start_method,
                                  notify, _dump.for_a_new_interpreter()))
    child.start()
    return child
