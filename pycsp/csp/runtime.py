"""What a generated CSP program calls at run time (the design's section 2, "Mapping onto pycsp").

The generated module is backend-neutral: ``run`` receives the backend's name,
builds each parallel command's channel plan (one channel per ordered pair of
instances and per message shape the receiver accepts), and runs one function
per process instance.  ``Proc`` is a running instance: its ends, the set of
partners it knows to have terminated, and the communication commands.
"""
from __future__ import annotations

import ast
import importlib
import sys
import traceback

import pycsp as _api   # exception classes are shared by every backend
from .errors import CSPFailure

ChannelRetireException = _api.ChannelRetireException
ChannelPoisonException = _api.ChannelPoisonException
DeadlockError = _api.DeadlockError

__all__ = ["CSPFailure", "Msg", "CSPArray", "run", "main", "irange"]


class Msg:
    """A constructed value ``has(3)``: a name and a tuple of arguments (picklable)."""

    __slots__ = ("name", "args")

    def __init__(self, name, args=()):
        self.name, self.args = name, tuple(args)

    def __reduce__(self):
        return Msg, (self.name, self.args)

    def __eq__(self, other):
        return isinstance(other, Msg) and (self.name, self.args) == (other.name, other.args)

    def __hash__(self):
        return hash((self.name, self.args))

    def __repr__(self):
        return f"{self.name}({', '.join(map(repr, self.args))})"


class CSPArray:
    """``a : (lo..hi) integer``: Hoare indexing; ``a[i]`` in Python too, bounds checked."""

    def __init__(self, lo, hi):
        self.lo, self.hi = lo, hi
        self.items = [None] * max(0, hi - lo + 1)

    def _index(self, i):
        if not self.lo <= i <= self.hi:
            raise IndexError(f"subscript {i} outside the array's bounds {self.lo}..{self.hi}")
        return i - self.lo

    def __getitem__(self, i):
        return self.items[self._index(i)]

    def __setitem__(self, i, value):
        self.items[self._index(i)] = value

    def __iter__(self):
        return iter(self.items)

    def __len__(self):
        return len(self.items)

    def __repr__(self):
        return f"CSPArray({self.lo}..{self.hi}: {self.items!r})"


def irange(lo, hi):
    """Hoare's ``lo..hi``: both ends included."""
    return range(lo, hi + 1)


def instance_name(family, subs):
    return f"{family}({','.join(map(str, subs))})" if subs else family


def shape_of(value):
    """The channel a sender routes ``value`` to, most specific first."""
    if isinstance(value, Msg):
        return (f"{value.name}/{len(value.args)}", "")
    if isinstance(value, tuple):
        return (f"()/{len(value)}", "")
    return ("",)


def _wire(value):
    """Arrays travel as tuple snapshots (threads and greenlets pass references)."""
    return tuple(value) if isinstance(value, CSPArray) else value


class Context:
    """What every instance of one program run shares.

    ``source`` and ``defines``: the generated program and the -D values, which a
    spawned child needs to compile the program again (see run_instance_spawned).
    """

    def __init__(self, backend, progname, choice, filename, positions, source=None, defines=None):
        self.backend, self.progname, self.choice = backend, progname, choice
        self.filename, self.positions = filename, positions
        self.source, self.defines = source, dict(defines or {})

    def where(self, pos):
        return f"{self.progname}:{pos[0]}:{pos[1]}"


class Family:
    """One process label of a parallel command: ``fac(i : 1..LIMIT) :: ...``.

    ``instances()`` gives each instance's subscripts; ``fn(proc, *subs)`` is its
    body; ``comms`` lists ``(direction, partner, targets, shape)`` with
    ``targets(*subs)`` the partner subscripts (NameError: known only at run time).
    """

    def __init__(self, name, fn, instances, comms, pos):
        self.name, self.fn, self.instances, self.comms, self.pos = name, fn, instances, comms, pos


class Proc:
    """A running process instance."""

    def __init__(self, name, ends, ctx, known=()):
        self.name, self.ctx = name, ctx
        self.inp = ends.get("in", {}) if ends else {}
        self.out = ends.get("out", {}) if ends else {}
        self.ends = ends
        self.known = set(known)
        self.dead = set()

    # ---- naming and failure ----
    def name_of(self, family, subs=()):
        return instance_name(family, subs)

    def fail(self, pos, what):
        raise CSPFailure(f"{self.ctx.where(pos)}: failure in process {self.name}: {what}")

    def match(self, value, kind, arity, pos):
        """The parts of ``value`` if it has the pattern's shape, else a failure."""
        if kind == "()":
            if isinstance(value, CSPArray):
                value = tuple(value)
            if isinstance(value, tuple) and len(value) == arity:
                return value
            self.fail(pos, f"{value!r} does not match a {arity}-tuple pattern")
        if isinstance(value, Msg) and value.name == kind and len(value.args) == arity:
            return value.args
        self.fail(pos, f"{value!r} does not match the pattern {kind}/{arity}")

    # ---- communication ----
    def _route(self, target, value, pos):
        if target not in self.known:
            self.fail(pos, f"output to {target} failed: there is no process {target}")
        shapes = self.out.get(target, {})
        for shape in shape_of(value):
            if shape in shapes:
                return shapes[shape]
        if not shapes:
            self.fail(pos, f"output to {target} failed: {target} never inputs from {self.name}")
        self.fail(pos, f"output to {target} failed: {target} accepts no {shape_of(value)[0] or 'plain value'} "
                       f"from {self.name}")

    def output(self, target, value, pos):
        if target in self.dead:
            self.fail(pos, f"output to {target} failed: {target} has terminated")
        end = self._route(target, value, pos)
        try:
            end(_wire(value))
        except ChannelRetireException:
            self.dead.add(target)
            self.fail(pos, f"output to {target} failed: {target} has terminated")

    def input(self, source, shape, pos):
        if source not in self.known:
            self.fail(pos, f"input from {source} failed: there is no process {source}")
        if source in self.dead:
            self.fail(pos, f"input from {source} failed: {source} has terminated")
        end = self.inp.get(source, {}).get(shape)
        if end is None:
            self.fail(pos, f"input from {source} failed: no channel for this pattern")
        try:
            return end()
        except ChannelRetireException:
            self.dead.add(source)
            self.fail(pos, f"input from {source} failed: {source} has terminated")

    def step(self):
        return Step(self)

    # ---- parallel command ----
    def parallel(self, families, pos):
        run_parallel(self, families, pos)


class Step:
    """One step of an alternative or repetitive command with communication guards."""

    def __init__(self, proc):
        self.proc = proc
        self.offers = []        # (branch, bound, kind, partner, end, value)
        self.ready = None       # (branch, bound) of the first boolean-only guard that holds

    def input(self, branch, source, shape, bound=()):
        p = self.proc
        if source in p.dead or source not in p.known:
            return
        end = p.inp.get(source, {}).get(shape)
        if end is not None:
            self.offers.append((branch, bound, "in", source, end, None))

    def output(self, branch, target, value, bound=()):
        p = self.proc
        if target in p.dead or target not in p.known:
            return
        shapes = p.out.get(target, {})
        for shape in shape_of(value):
            if shape in shapes:
                self.offers.append((branch, bound, "out", target, shapes[shape], _wire(value)))
                return

    def skip(self, branch, bound=()):
        if self.ready is None:
            self.ready = (branch, bound)

    def choose(self, repetitive, pos):
        """``(branch, bound, message)``; ``(None, None, None)`` when a repetitive
        command ends; a failure when an alternative command has no guard left."""
        p = self.proc
        backend = p.ctx.backend
        select = backend.PriSelect if p.ctx.choice == "pri" else backend.FairSelect
        while True:
            offers, seen = [], set()
            for offer in self.offers:
                if offer[3] not in p.dead and id(offer[4]) not in seen:
                    seen.add(id(offer[4]))
                    offers.append(offer)
            if not offers:
                if self.ready is not None:
                    return self.ready + (None,)
                if repetitive:
                    return None, None, None
                p.fail(pos, "every guard of the alternative command fails")
            guards = [backend.InputGuard(o[4]) if o[2] == "in" else backend.OutputGuard(o[4], o[5])
                      for o in offers]
            if self.ready is not None:
                guards.append(backend.SkipGuard())
            try:
                chosen, msg = select(*guards)
            except ChannelRetireException:
                before = len(p.dead)
                for o in offers:
                    stats = o[4].channel.statistics()
                    if stats["writers_retired" if o[2] == "in" else "readers_retired"]:
                        p.dead.add(o[3])
                if len(p.dead) == before:
                    raise
                continue
            for o in offers:
                if o[4] is chosen:
                    return o[0], o[1], msg
            return self.ready + (None,)


# ---- parallel command: channel plan and instances ----

def run_parallel(parent, families, pos):
    ctx = parent.ctx
    backend = ctx.backend
    instances = []          # (family, subs, name)
    members = {}
    for fam in families:
        for subs in fam.instances():
            subs = tuple(subs)
            name = instance_name(fam.name, subs)
            if any(name == other for _, _, other in instances):
                parent.fail(fam.pos, f"process {name} is defined twice")
            instances.append((fam, subs, name))
            members.setdefault(fam.name, []).append(name)
    names = {name for _, _, name in instances}
    channels = {}           # (sender, receiver, shape) -> Channel
    for fam, subs, receiver in instances:
        for direction, partner, targets, shape in fam.comms:
            if direction != "in":
                continue
            senders = members.get(partner, [])
            if targets is not None:
                try:
                    senders = [instance_name(partner, t) for t in targets(*subs)]
                except NameError:   # a run-time variable: any member may be meant
                    pass
            for sender in senders:
                if sender in names:
                    key = (sender, receiver, shape)
                    if key not in channels:
                        label = f"{sender}->{receiver}" + (f":{shape}" if shape else "")
                        channels[key] = backend.Channel(name=label)
    ends = {name: {"in": {}, "out": {}} for name in names}
    for (sender, receiver, shape), ch in channels.items():
        ends[sender]["out"].setdefault(receiver, {})[shape] = ch.writer()
        ends[receiver]["in"].setdefault(sender, {})[shape] = ch.reader()
    if _spawning(backend):
        # A fresh interpreter cannot unpickle a nested function: it compiles
        # the program again and rebuilds the body from its name and closure.
        processes = [backend.Process(_SpawnedInstance(name), ctx.source, ctx.progname, ctx.defines,
                                     ctx.choice, ctx.filename, fam.fn.__code__.co_name,
                                     _closure_values(fam.fn), name, subs, ends[name], sorted(names))
                     for fam, subs, name in instances]
    else:
        processes = [backend.Process(_Instance(name), fam.fn, name, subs, ends[name], ctx,
                                     sorted(names))
                     for fam, subs, name in instances]
    # The ends are the instances' alone: a deadlock report would name this
    # frame, waiting in Parallel, as holding every channel's other end.
    del channels, ends
    backend.Parallel(*processes)


def __pycsp_site__(frame):
    """For pycsp's deadlock reports: the .csp position of a blocked input,
    output or alternation (a frame of Proc or Step with its ``pos``)."""
    pos, owner = frame.f_locals.get("pos"), frame.f_locals.get("self")
    proc = getattr(owner, "proc", owner)
    if pos is None or not isinstance(proc, Proc):
        return None
    return proc.ctx.where(pos)


class _Instance:
    """run_instance under the instance's own name (``fac(3)``), which pycsp's
    deadlock reports and failure messages show for a process."""

    __slots__ = ("__name__", "__qualname__")

    def __init__(self, name):
        self.__name__ = self.__qualname__ = name

    def __call__(self, *args):
        return run_instance(*args)


class _SpawnedInstance(_Instance):
    """run_instance_spawned under the instance's own name."""

    __slots__ = ()

    def __call__(self, *args):
        return run_instance_spawned(*args)


def _spawning(backend):
    return backend.__name__ == "pycsp.processes" and backend.get_start_method() == "spawn"


_EMPTY_CELL = "<pycsp.csp: an empty cell>"


def _closure_values(fn):
    """The values of ``fn``'s free variables (the enclosing process's CSP variables)."""
    values = []
    for cell in fn.__closure__ or ():
        try:
            values.append(cell.cell_contents)
        except ValueError:   # declared after the parallel command: not yet bound
            values.append(_EMPTY_CELL)
    return values


_compiled = {}   # (source, defines) -> module globals, one compilation per interpreter


def run_instance_spawned(source, progname, defines, choice, filename, fn_name, closure,
                         name, subs, ends, known):
    """The body of an instance started by "spawn" (module level, so it pickles):
    compile the generated program ``source`` again (once per interpreter),
    rebuild the process function ``fn_name`` around the enclosing process's
    variables ``closure``, and run it as run_instance does."""
    import types

    key = (source, tuple(sorted(defines.items(), key=repr)))
    namespace = _compiled.get(key)
    if namespace is None:
        namespace = {"__name__": "__pycsp_csp__", "__csp_filename__": filename}
        exec(compile(source, filename, "exec"), namespace)
        namespace.update(defines)
        _compiled[key] = namespace
        for stream in (sys.stdout, sys.stderr):
            if hasattr(stream, "reconfigure"):
                stream.reconfigure(line_buffering=True, write_through=False)
    code = _find_code(namespace["_program"].__code__, fn_name)
    cells = tuple(types.CellType() if isinstance(v, str) and v == _EMPTY_CELL else types.CellType(v)
                  for v in closure)
    fn = types.FunctionType(code, namespace, fn_name, None, cells)
    ctx = Context(load_backend("processes"), progname, choice, filename, namespace["_POSITIONS"],
                  source, defines)
    return run_instance(fn, name, subs, ends, ctx, known)


def _find_code(code, name):
    for const in code.co_consts:
        if hasattr(const, "co_name"):
            if const.co_name == name:
                return const
            found = _find_code(const, name)
            if found is not None:
                return found
    return None


def run_instance(fn, name, subs, ends, ctx, known):
    """Body of every CSP process: run the command list, then retire every end
    (Hoare's termination); a Python exception becomes a CSPFailure at its
    .csp position."""
    proc = Proc(name, ends, ctx, known)
    try:
        fn(proc, *subs)
    except (CSPFailure, ChannelPoisonException, DeadlockError):
        raise
    except ChannelRetireException as e:
        raise CSPFailure(f"{ctx.progname}: failure in process {name}: {e}") from None
    except Exception as e:
        raise CSPFailure(python_failure(e, name, ctx)) from None
    for end in _all_ends(ends):
        end.retire()


def _all_ends(ends):
    for direction in ("in", "out"):
        for shapes in ends[direction].values():
            yield from shapes.values()


def python_failure(exc, name, ctx):
    """``file:L:C: failure in process NAME: TypeError: ...`` at the innermost
    generated line that maps to a .csp position."""
    pos = None
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_filename == ctx.filename and lineno in ctx.positions:
            pos = ctx.positions[lineno]
    what = f"{type(exc).__name__}: {exc}"
    if pos is None:
        return f"{ctx.progname}: failure in process {name}: {what}"
    return f"{ctx.where(pos)}: failure in process {name}: {what}"


# ---- running a program ----

def parse_define(text):
    """``NAME=VALUE`` -> (NAME, value): a Python literal if it is one, else the string."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip().isidentifier():
        raise ValueError(f"-D takes NAME=VALUE, not {text!r}")
    try:
        return name.strip(), ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return name.strip(), value


def load_backend(name):
    if name not in ("threads", "processes", "greenlets"):
        raise ValueError(f"unknown backend {name!r} (threads, processes or greenlets)")
    return importlib.import_module(f"pycsp.{name}")


def run(namespace, backend="threads", defines=None, choice="fair", start_method=None):
    """Run the generated program whose module globals are ``namespace``
    (``__csp_source__`` its source, which the "spawn" start method needs)."""
    if choice not in ("fair", "pri"):
        raise ValueError(f"choice is 'fair' or 'pri', not {choice!r}")
    if start_method is not None:
        if backend != "processes":
            raise ValueError("a start method is for the processes backend only")
        load_backend(backend).set_start_method(start_method)
    namespace.update(defines or {})
    for stream in (sys.stdout, sys.stderr):
        # One write per line (also under python -u, which writes print's
        # text and its newline apart): lines of different OS processes then
        # appear whole and in causal order.
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(line_buffering=True, write_through=False)
    ctx = Context(load_backend(backend), namespace["PROGNAME"], choice,
                  namespace["__csp_filename__"], namespace["_POSITIONS"],
                  namespace.get("__csp_source__"), defines)
    main_proc = Proc("main", None, ctx)
    try:
        namespace["_program"](main_proc)
    except (CSPFailure, ChannelPoisonException, ChannelRetireException, DeadlockError):
        raise
    except Exception as e:
        raise CSPFailure(python_failure(e, "main", ctx)) from None


def main(namespace):
    """Entry point of an emitted program: ``python prog.py [--backend B] [-D N=V]... [--choice C]``."""
    import argparse
    parser = argparse.ArgumentParser(description=f"{namespace['PROGNAME']} (generated by pycsp.csp)")
    parser.add_argument("--backend", default=namespace["BACKEND"])
    parser.add_argument("-D", dest="defines", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--choice", default=namespace["CHOICE"], choices=("fair", "pri"))
    parser.add_argument("--start-method", choices=("fork", "spawn"), help="processes backend only")
    args = parser.parse_args()
    namespace["__csp_filename__"] = namespace.get("__file__", "")
    if namespace["__csp_filename__"]:
        with open(namespace["__csp_filename__"], encoding="utf-8") as f:
            namespace["__csp_source__"] = f.read()
    return report(lambda: run(namespace, args.backend, dict(map(parse_define, args.defines)), args.choice,
                              args.start_method))


def report(action):
    """Run ``action``; print a failure or deadlock to stderr; return the exit status."""
    try:
        action()
    except CSPFailure as e:
        print(str(e).split("\n")[0], file=sys.stderr)
        return 1
    except DeadlockError as e:
        print(e, file=sys.stderr)   # the report: the wait-for cycle, then every blocked process
        return 3
    except (ChannelPoisonException, ChannelRetireException) as e:
        print(f"failure: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0
