"""The Python floor of processes: the benchmark kernels in forked Python processes
on the bare C network's channel (floor_pyext.c, floor_processes.c's one-place
shared word with the same waiting modes), behind the few pycsp names the kernels
use (Channel, process, Parallel, poison and the two exceptions).

It is what any implementation called from Python processes pays at least: the
interpreter running the kernel, one C call per channel operation, an int made
per read.  kernels.py's backend "py-floor:MODE" (MODE futex, spin or hybrid, the
default) loads this file by path with load(); the extension is compiled at run
time like the C floors (kernels.build_c_library, with the interpreter's headers).

Parallel forks one child per process, as pycsp.processes does (the parent only
waits), and returns the children's return values in order.
"""
import os
import pickle
import sys

Channel = poison = ChannelPoisonException = None


class ChannelRetireException(Exception):
    """Never raised: the floor has no retire (the kernels name it)."""


_ext = None


def load(ext_path, mode):
    """Import the compiled extension at ext_path and set its waiting mode."""
    global _ext, Channel, poison, ChannelPoisonException
    if _ext is None:
        import importlib.machinery
        import importlib.util
        loader = importlib.machinery.ExtensionFileLoader('floor_pyext', ext_path)
        spec = importlib.util.spec_from_file_location('floor_pyext', ext_path, loader=loader)
        _ext = importlib.util.module_from_spec(spec)
        loader.exec_module(_ext)
        Channel, poison = _ext.Channel, _ext.poison
        ChannelPoisonException = _ext.ChannelPoisonException
    _ext.set_mode(mode)


def process(fn):
    """fn(*args) becomes a process to hand to Parallel."""
    return lambda *args, **kwargs: (fn, args, kwargs)


def io(fn):
    return fn


def Parallel(*procs):
    """Run each process in a forked child; wait for all; their return values."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    children = []
    for fn, args, kwargs in procs:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            code = 0
            try:
                result = fn(*args, **kwargs)
            except BaseException as e:      # reported by the parent
                result, code = repr(e), 1
            with os.fdopen(w, 'wb') as f:
                f.write(pickle.dumps(result))
            os._exit(code)
        os.close(w)
        children.append((pid, r))
    results, failed = [], []
    for pid, r in children:
        with os.fdopen(r, 'rb') as f:
            data = f.read()
        _, status = os.waitpid(pid, 0)
        result = pickle.loads(data) if data else None
        if status:
            failed.append(result)
        results.append(result)
    if failed:
        raise RuntimeError('py-floor: a process failed: %s' % failed[0])
    return results
