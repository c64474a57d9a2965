"""Starting a CSP process in a fresh interpreter (the "spawn" start method).

The child is started by multiprocessing's "spawn" context, which runs a new
Python, prepares ``__main__`` as multiprocessing does (so a script needs the
``if __name__ == "__main__":`` guard) and unpickles the child's arguments.  The
arena's memfd is passed to the child as an inherited file descriptor; the
child maps it as it imports pycsp.processes, before the channel ends among its
arguments are unpickled.  From then on the child runs
exactly as a forked one (``_fork._child``).
"""
import os

import csp_ext


# Set in the environment of each child while it is started: "fd:record".  The
# child's import of pycsp.processes (while multiprocessing prepares __main__,
# or at the latest while it unpickles _main) maps the arena and adopts the
# record before anything can make a channel there (see attach_if_spawned).
ENV = "PYCSP_SPAWNED_ARENA"


def attach_if_spawned():
    """In a child started by spawn: map the parent's arena; True if done."""
    value = os.environ.pop(ENV, None)
    if value is None:
        return False
    try:
        fd, record = (int(x) for x in value.split(":"))
        csp_ext.shm_attach(fd)
    except (ValueError, OSError):
        return False  # not for us: e.g. a subprocess that inherited the environment
    csp_ext.shm_adopt(record)
    return True


class _ArenaFd:
    """Pickles so that multiprocessing passes the arena's memfd to the child."""

    __slots__ = ()

    def __reduce__(self):
        from multiprocessing import reduction

        return (_check_attached, (reduction.DupFd(csp_ext.shm_arena_fd()),))


def _check_attached(dup_fd):
    stats = csp_ext.shm_stats()
    if stats is None:
        raise RuntimeError(f"pycsp: a spawned child got no arena (fd {dup_fd.detach()})")
    return None


def _main(arena, proc, index, results, parent_pid, start_method):
    """The child's body: its arguments are unpickled (the arena first)."""
    from . import _fork

    _fork.set_start_method(start_method)  # nested Parallels start the same way
    _fork._child(proc, index, results, parent_pid)


def start(proc, index, results, parent_pid, record, start_method):
    """Start `proc` in a new interpreter; return the multiprocessing.Process."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    child = context.Process(target=_main, name=f"pycsp {proc.id}",
                            args=(_ArenaFd(), proc, index, results, parent_pid, start_method))
    previous = os.environ.get(ENV)
    os.environ[ENV] = f"{csp_ext.shm_arena_fd()}:{record}"
    try:
        child.start()
    finally:
        if previous is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = previous
    return child
