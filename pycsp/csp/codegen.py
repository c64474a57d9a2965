"""Generate one readable, backend-neutral PyCSP module from a checked program.

Each process label becomes a function ``def fac_1(_p, i)`` whose locals are
the CSP variables (so ``{x = x * 2}`` persists); ``_p`` is the running
instance (runtime.Proc) that performs every communication.  Every generated
line is mapped to the .csp position it came from (``_POSITIONS``), which
turns run-time errors back into .csp positions.
"""
from __future__ import annotations

from . import nodes as N

HEADER = '''\
"""{progname}, compiled from the CSP notation by pycsp.csp.

Run it by itself: python {stem}.py [--backend threads|processes|greenlets] [-D NAME=VALUE]... [--choice fair|pri]
    [--start-method fork|spawn]
"""
from pycsp.csp import runtime as _rt
from pycsp.csp.runtime import CSPArray, Msg, irange
'''


class _Emitter:
    def __init__(self):
        self.lines: list[str] = []
        self.positions: dict[int, tuple] = {}
        self.depth = 0
        self.counter = 0

    def emit(self, text, pos=None):
        for piece in text.split("\n"):
            self.lines.append("    " * self.depth + piece if piece else "")
            if pos is not None:
                self.positions[len(self.lines)] = tuple(pos)

    def fresh(self, stem):
        self.counter += 1
        return f"_{stem}{self.counter}"


def generate(program: N.Program, progname: str, backend: str = "threads", choice: str = "fair") -> str:
    gen = _Generator(program, progname)
    return gen.module(backend, choice)


class _Generator:
    def __init__(self, program, progname):
        self.program = program
        self.progname = progname
        self.defs = {d.name: d for d in program.definitions}
        self.out = _Emitter()
        self.arrays: list[set] = [set()]

    # ---- module ----
    def module(self, backend, choice):
        out = self.out
        stem = self.progname.rsplit(".", 1)[0]
        out.emit(HEADER.format(progname=self.progname, stem=stem).rstrip("\n"))
        if self.program.includes:
            out.emit("\n# ---- _include ----")
            for tok in self.program.includes:
                for k, line in enumerate(tok.value.split("\n")):
                    out.emit(line, tok.py_position(k + 1, 1))
        out.emit("\n")
        out.emit("def _program(_p):")
        out.depth += 1
        self.arrays.append(_declared_arrays(self.program.body, self.defs))
        self.commands(self.program.body)
        self.arrays.pop()
        out.depth -= 1
        out.emit("\n")
        out.emit(f"PROGNAME = {self.progname!r}")
        out.emit(f"BACKEND = {backend!r}")
        out.emit(f"CHOICE = {choice!r}")
        out.emit("# generated line -> (line, column) in the .csp file")
        table = ", ".join(f"{k}: {v}" for k, v in sorted(out.positions.items()))
        out.emit(f"_POSITIONS = {{{table}}}")
        out.emit("")
        out.emit('if __name__ == "__main__":')
        out.emit("    raise SystemExit(_rt.main(globals()))")
        return "\n".join(out.lines) + "\n"

    # ---- commands ----
    def commands(self, items):
        if not items:
            self.out.emit("pass")
        for item in items:
            self.command(item)

    def command(self, c):
        out = self.out
        if isinstance(c, N.Decl):
            for name in c.names:
                if c.bounds:
                    out.emit(f"{name} = CSPArray({self.expr(c.bounds[0])}, {self.expr(c.bounds[1])})", c.pos)
                else:
                    out.emit(f"{name} = None", c.pos)
        elif isinstance(c, N.Skip):
            out.emit("pass", c.pos)
        elif isinstance(c, N.PyStmt):
            for k, line in enumerate(c.token.value.split("\n")):
                out.emit(line, c.token.py_position(k + 1, 1))
        elif isinstance(c, N.Assign):
            self.bind(c.target, self.expr(c.expr), c.pos)
        elif isinstance(c, N.Output):
            out.emit(f"_p.output({self.procname(c.proc)}, {self.expr(c.expr)}, {c.pos})", c.pos)
        elif isinstance(c, N.Input):
            value = f"_p.input({self.procname(c.proc)}, {self.shape(c.target)!r}, {c.pos})"
            self.bind(c.target, value, c.pos)
        elif isinstance(c, N.DefUse):
            self.commands(self.defs[c.name].body)
        elif isinstance(c, N.Alternative):
            self.alternative(c)
        elif isinstance(c, N.Parallel):
            self.parallel(c)
        else:  # pragma: no cover - the parser makes no other node
            raise AssertionError(c)

    def procname(self, p: N.ProcName):
        if not p.subs:
            return repr(p.name)
        subs = [_unparenthesised(self.expr(s)) for s in p.subs]
        if any(c in sub for sub in subs for c in "'\"{}\\"):
            return f"_p.name_of({p.name!r}, ({''.join(sub + ', ' for sub in subs)}))"
        # the instance's name, as runtime.instance_name spells it: 'fac(3)'
        text = p.name + "(" + ",".join(sub if sub.isdigit() else "{" + sub + "}" for sub in subs) + ")"
        return f"f'{text}'" if "{" in text else repr(text)

    # ---- targets and patterns ----
    def is_array(self, name):
        return any(name in scope for scope in self.arrays)

    def shape(self, target):
        if isinstance(target, N.Call) and not self.is_array(target.name):
            return f"{target.name}/{len(target.args)}"
        if isinstance(target, N.TupleExpr) and not target.parenthesised_single:
            return f"()/{len(target.items)}"
        if isinstance(target, N.TupleExpr):
            return self.shape(target.items[0])
        return ""

    def bind(self, target, value, pos):
        out = self.out
        if isinstance(target, N.Name):
            out.emit(f"{target.name} = {value}", pos)
        elif isinstance(target, N.Call) and self.is_array(target.name):
            subs = ", ".join(self.expr(a) for a in target.args)
            out.emit(f"{target.name}[{subs}] = {value}", pos)
        elif isinstance(target, N.TupleExpr) and target.parenthesised_single:
            self.bind(target.items[0], value, pos)
        else:
            kind, parts = (target.name, target.args) if isinstance(target, N.Call) else ("()", target.items)
            tmp = out.fresh("m")
            out.emit(f"{tmp} = _p.match({value}, {kind!r}, {len(parts)}, {pos})", pos)
            for k, part in enumerate(parts):
                self.bind(part, f"{tmp}[{k}]", pos)

    # ---- expressions ----
    def expr(self, e):
        if isinstance(e, N.Const):
            return repr(e.value)
        if isinstance(e, N.PyExpr):
            return f"({e.token.value.strip()})"
        if isinstance(e, N.Name):
            return e.name
        if isinstance(e, N.Call):
            args = [self.expr(a) for a in e.args]
            if self.is_array(e.name):
                return f"{e.name}[{', '.join(args)}]"
            return f"Msg({e.name!r}, ({''.join(a + ', ' for a in args)}))"
        if isinstance(e, N.TupleExpr):
            if e.parenthesised_single:
                return f"({self.expr(e.items[0])})"
            return f"({''.join(self.expr(i) + ', ' for i in e.items)})"
        if isinstance(e, N.BinOp):
            return f"({self.expr(e.left)} {e.op} {self.expr(e.right)})"
        if isinstance(e, N.UnOp):
            return f"({e.op} {self.expr(e.operand)})" if e.op == "not" else f"(-{self.expr(e.operand)})"
        raise AssertionError(e)  # pragma: no cover

    def conditions(self, guard):
        conds = [self.expr(g) for g in guard if not isinstance(g, (N.Decl, N.Input, N.Output))]
        return " and ".join(conds) if conds else "True"

    def guard_decls(self, guard):
        for g in guard:
            if isinstance(g, N.Decl):
                self.command(g)

    # ---- alternative and repetitive commands ----
    def alternative(self, alt: N.Alternative):
        if any(g.comm or g.ranges for g in alt.guarded):
            return self.alternative_with_comms(alt)
        out = self.out
        if alt.repetitive:
            out.emit("while True:", alt.pos)
            out.depth += 1
        for g in alt.guarded:
            self.guard_decls(g.guard)
        for k, g in enumerate(alt.guarded):
            out.emit(f"{'if' if k == 0 else 'elif'} {self.conditions(g.guard)}:", g.pos)
            out.depth += 1
            self.commands(g.body)
            out.depth -= 1
        out.emit("else:", alt.pos)
        if alt.repetitive:
            out.emit("    break", alt.pos)
            out.depth -= 1
        else:
            out.emit('    _p.fail(%r, "every guard of the alternative command fails")' % (alt.pos,), alt.pos)

    def alternative_with_comms(self, alt: N.Alternative):
        out = self.out
        if alt.repetitive:
            out.emit("while True:", alt.pos)
            out.depth += 1
        step = out.fresh("step")
        out.emit(f"{step} = _p.step()", alt.pos)
        for k, g in enumerate(alt.guarded):
            opened = 0
            for r in g.ranges:
                out.emit(f"for {r.var} in irange({self.expr(r.lo)}, {self.expr(r.hi)}):", r.pos)
                out.depth += 1
                opened += 1
            self.guard_decls(g.guard)
            conditions = self.conditions(g.guard)
            if conditions != "True":
                out.emit(f"if {conditions}:", g.pos)
                out.depth += 1
                opened += 1
            bound = "(" + "".join(r.var + ", " for r in g.ranges) + ")"
            comm = g.comm
            if isinstance(comm, N.Input):
                out.emit(f"{step}.input({k}, {self.procname(comm.proc)}, {self.shape(comm.target)!r}, {bound})",
                         comm.pos)
            elif isinstance(comm, N.Output):
                out.emit(f"{step}.output({k}, {self.procname(comm.proc)}, {self.expr(comm.expr)}, {bound})",
                         comm.pos)
            else:
                out.emit(f"{step}.skip({k}, {bound})", g.pos)
            out.depth -= opened
        chosen = out.fresh("k")
        out.emit(f"{chosen}, _bound, _msg = {step}.choose({alt.repetitive}, {alt.pos})", alt.pos)
        if alt.repetitive:
            out.emit(f"if {chosen} is None:", alt.pos)
            out.emit("    break", alt.pos)
        for k, g in enumerate(alt.guarded):
            out.emit(f"{'if' if k == 0 else 'elif'} {chosen} == {k}:", g.pos)
            out.depth += 1
            if g.ranges:
                out.emit("(" + "".join(r.var + ", " for r in g.ranges) + ") = _bound", g.pos)
            if isinstance(g.comm, N.Input):
                self.bind(g.comm.target, "_msg", g.comm.pos)
            self.commands(g.body)
            out.depth -= 1
        if alt.repetitive:
            out.depth -= 1

    # ---- parallel command ----
    def parallel(self, par: N.Parallel):
        out = self.out
        families = []
        for n, proc in enumerate(par.processes):
            label = proc.label
            name = label.name if label else f"P{n + 1}"
            fn = out.fresh(name.lower() + "_")[1:]
            params = [s.var if isinstance(s, N.Range) else f"_s{k}" for k, s in enumerate(label.subs)] \
                if label else []
            out.emit(f"def {fn}({', '.join(['_p'] + params)}):", proc.pos)
            out.depth += 1
            self.arrays.append(_declared_arrays(proc.body, self.defs))
            self.commands(proc.body)
            self.arrays.pop()
            out.depth -= 1
            families.append((name, fn, label, params, proc))
        out.emit("_p.parallel([", par.pos)
        out.depth += 1
        for name, fn, label, params, proc in families:
            out.emit(f"_rt.Family({name!r}, {fn}, {self.instances(label)}, [", proc.pos)
            self.arrays.append(_declared_arrays(proc.body, self.defs))
            for direction, partner, targets, shape in self.comms(proc.body, params):
                out.emit(f"    ({direction!r}, {partner!r}, {targets}, {shape!r}),", proc.pos)
            self.arrays.pop()
            out.emit(f"], {proc.pos}),", proc.pos)
        out.depth -= 1
        out.emit(f"], {par.pos})", par.pos)

    def instances(self, label):
        if not label or not label.subs:
            return "lambda: [()]"
        loops, values = [], []
        for k, s in enumerate(label.subs):
            if isinstance(s, N.Range):
                loops.append(f"for {s.var} in irange({self.expr(s.lo)}, {self.expr(s.hi)})")
                values.append(s.var)
            else:
                values.append(self.expr(s))
        return f"lambda: [({''.join(v + ', ' for v in values)}) {' '.join(loops)}]".replace(" ]", "]")

    def comms(self, body, params):
        """(direction, partner, targets-lambda source or None, shape) for the plan."""
        found = []

        def walk(items, ranges):
            for c in items:
                if isinstance(c, (N.Input, N.Output)):
                    found.append(entry(c, ranges))
                elif isinstance(c, N.DefUse):
                    walk(self.defs[c.name].body, ranges)
                elif isinstance(c, N.Alternative):
                    for g in c.guarded:
                        inner = ranges + g.ranges
                        if g.comm:
                            found.append(entry(g.comm, inner))
                        walk(g.body, inner)

        def entry(c, ranges):
            direction = "in" if isinstance(c, N.Input) else "out"
            shape = self.shape(c.target) if direction == "in" else ""
            if not c.proc.subs:
                return direction, c.proc.name, None, shape
            subs = "(" + "".join(self.expr(s) + ", " for s in c.proc.subs) + ")"
            loops = " ".join(f"for {r.var} in irange({self.expr(r.lo)}, {self.expr(r.hi)})" for r in ranges)
            targets = f"lambda {', '.join(params)}: [{subs}{' ' + loops if loops else ''}]"
            return direction, c.proc.name, _Raw(targets), shape

        walk(body, [])
        unique = []
        for f in found:
            if f not in unique:
                unique.append(f)
        return unique


def _unparenthesised(text):
    """``(i - 1)`` -> ``i - 1`` when the outer parentheses enclose the whole text."""
    if not (text.startswith("(") and text.endswith(")")):
        return text
    depth = 0
    for k, c in enumerate(text):
        depth += (c == "(") - (c == ")")
        if depth == 0 and k < len(text) - 1:
            return text
    return text[1:-1]


class _Raw(str):
    """Source text that repr() leaves as it is (a lambda inside the plan)."""

    def __repr__(self):
        return str(self)


def _declared_arrays(items, defs, seen=None):
    names = set()
    seen = seen or set()
    for c in items:
        if isinstance(c, N.Decl) and c.bounds:
            names.update(c.names)
        elif isinstance(c, N.DefUse) and c.name in defs and c.name not in seen:
            names |= _declared_arrays(defs[c.name].body, defs, seen | {c.name})
        elif isinstance(c, N.Alternative):
            for g in c.guarded:
                names |= _declared_arrays(g.guard + g.body, defs, seen)
    return names
