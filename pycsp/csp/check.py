"""Static checks of a parsed program (the design's section 4, "Errors"), before anything runs.

Errors raise CSPStaticError at the offending position; warnings are returned
as ``(line, col, message)``.
"""
from __future__ import annotations

import difflib

from . import nodes as N
from .errors import CSPStaticError, CSPSyntaxError
from .scope import check_scopes
from .targets import missing_targets


def check(program: N.Program, defines=None) -> list:
    """Raise the first static error; return the warnings. ``defines``: what -D sets."""
    checker = _Checker(program)
    checker.run()
    check_scopes(program, defines or {})
    return sorted(checker.warnings + missing_targets(program, defines))


def _literal(node):
    """The value of a constant subscript, or None when it needs evaluating."""
    if isinstance(node, N.Const):
        return node.value
    if isinstance(node, N.UnOp) and node.op == "-" and isinstance(node.operand, N.Const):
        return -node.operand.value
    return None


class _Checker:
    def __init__(self, program):
        self.program = program
        self.defs = {}
        self.warnings = []

    def run(self):
        for tok in self.program.includes:
            self.python(tok, "exec")
        for d in self.program.definitions:
            if d.name in self.defs:
                raise CSPStaticError(f"'def {d.name}' is defined twice", *d.pos)
            self.defs[d.name] = d
        for d in self.program.definitions:
            self.recursion(d.name, [d.name], d.body)
        self.commands(self.program.body, None)
        self.disjoint(self.program.body, set(), "the program")

    # ---- Python blocks ----
    def python(self, tok, mode):
        text = tok.value if mode == "exec" else "(" + tok.value.strip() + "\n)"
        try:
            compile(text, "<csp>", mode)
        except SyntaxError as e:
            lineno, offset = e.lineno or 1, e.offset or 1
            if mode == "eval":
                # undo the "(" added in front of the first line
                stripped = len(tok.value) - len(tok.value.lstrip())
                offset = offset - 1 + stripped if lineno == 1 else offset
            line, col = tok.py_position(lineno, offset)
            raise CSPSyntaxError(f"Python: {e.msg}", line, col) from None

    # ---- definitions ----
    def recursion(self, root, chain, items):
        for c in _walk(items):
            if isinstance(c, N.DefUse):
                if c.name not in self.defs:
                    continue  # reported where it is used
                if c.name in chain:
                    raise CSPStaticError(f"'def {root}' is recursive ({' -> '.join(chain + [c.name])})", *c.pos)
                self.recursion(root, chain + [c.name], self.defs[c.name].body)

    # ---- commands ----
    def commands(self, items, scope):
        """``scope``: (own family name, own label subs or None, {name: subscript count}) or None."""
        for c in _walk(items):
            if isinstance(c, N.DefUse) and c.name not in self.defs:
                hint = difflib.get_close_matches(c.name, list(self.defs), 1)
                more = f"; did you mean '{hint[0]}'?" if hint else ""
                raise CSPStaticError(f"'{c.name}' is not a defined command (no 'def {c.name} = ... end'){more}",
                                     *c.pos)
            if isinstance(c, N.DefUse):
                self.commands(self.defs[c.name].body, scope)
            elif isinstance(c, (N.Input, N.Output)):
                self.communication(c, scope)
            elif isinstance(c, N.Parallel):
                self.parallel(c)
            for expr in _expressions(c):
                for node in _expr_walk(expr):
                    if isinstance(node, N.PyExpr):
                        self.python(node.token, "eval")
            if isinstance(c, N.PyStmt):
                self.python(c.token, "exec")

    def parallel(self, par):
        counts, seen = {}, {}
        for proc in par.processes:
            label = proc.label
            if label is None:
                continue
            n = len(label.subs)
            if counts.setdefault(label.name, n) != n:
                raise CSPStaticError(f"process '{label.name}' has {n} subscripts here and "
                                     f"{counts[label.name]} elsewhere", *label.pos)
            key = (label.name, tuple(_literal(s) if _literal(s) is not None else id(s) for s in label.subs))
            if all(_literal(s) is not None for s in label.subs):
                if key in seen:
                    raise CSPStaticError(f"process '{label.name}"
                                         f"{'(' + ','.join(str(k) for k in key[1]) + ')' if label.subs else ''}' "
                                         f"is defined twice (first at {seen[key][0]}:{seen[key][1]})", *label.pos)
                seen[key] = label.pos
        inputs, outputs = {}, {}
        for proc in par.processes:
            own = proc.label.name if proc.label else None
            own_subs = proc.label.subs if proc.label else []
            self.commands(proc.body, (own, own_subs, counts))
            for c in _walk(proc.body, self.defs):
                if isinstance(c, N.Input):
                    inputs.setdefault((c.proc.name, own), c)
                elif isinstance(c, N.Output):
                    outputs.setdefault((own, c.proc.name), c)
        for (sender, receiver), c in outputs.items():
            if (sender, receiver) not in inputs:
                self.warnings.append((*c.pos, f"output to {receiver} has no matching input from {sender} "
                                               "(it fails if executed)"))
        for (sender, receiver), c in inputs.items():
            if (sender, receiver) not in outputs:
                self.warnings.append((*c.pos, f"input from {sender} has no matching output to {receiver}"))

    def communication(self, c, scope):
        if scope is None:
            raise CSPStaticError(f"'{c.proc.name}': a communication outside any process of a parallel "
                                 "command has nobody to name", *c.pos)
        own, own_subs, counts = scope
        name = c.proc.name
        if name not in counts:
            hint = difflib.get_close_matches(name, list(counts), 1)
            more = f"; did you mean '{hint[0]}'?" if hint else ""
            raise CSPStaticError(f"unknown process '{name}'{more}", *c.proc.pos)
        if len(c.proc.subs) != counts[name]:
            raise CSPStaticError(f"process '{name}' takes {counts[name]} subscripts, not {len(c.proc.subs)}",
                                 *c.proc.pos)
        if name == own and (not c.proc.subs or
                            [_label_value(s) for s in own_subs] == [_sub_key(s) for s in c.proc.subs]):
            raise CSPStaticError(f"process '{name}' communicates with itself", *c.proc.pos)


    # ---- Hoare's disjointness rule ----
    def disjoint(self, items, outer, where):
        """An inner process may not assign a variable of its enclosing process:
        it has its own copy (a Python local), so the write would be lost."""
        own = {name for c in _walk(items, self.defs) if isinstance(c, N.Decl) for name in c.names}
        for c in _walk(items, self.defs):
            if isinstance(c, (N.Assign, N.Input)):
                for name in _assigned(c.target):
                    if name in outer and name not in own:
                        raise CSPStaticError(f"{where} assigns '{name}', a variable of the process "
                                             "that contains it (processes of a parallel command "
                                             "share no variables)", *c.pos)
            if isinstance(c, N.Parallel):
                for proc in c.processes:
                    name = f"process '{proc.label.name}'" if proc.label else "a process"
                    self.disjoint(proc.body, outer | own, name)


def _assigned(target):
    if isinstance(target, N.Name):
        return [target.name]
    if isinstance(target, N.Call):   # an array element or a constructor pattern
        parts = [a for a in target.args if isinstance(a, (N.Name, N.Call, N.TupleExpr))]
        return [target.name] + [n for p in parts for n in _assigned(p)]
    if isinstance(target, N.TupleExpr):
        return [n for p in target.items for n in _assigned(p)]
    return []


def _label_value(sub):
    if isinstance(sub, N.Range):
        return ("var", sub.var)
    lit = _literal(sub)
    return ("lit", lit) if lit is not None else ("expr", id(sub))


def _sub_key(sub):
    if isinstance(sub, N.Name):
        return ("var", sub.name)
    lit = _literal(sub)
    return ("lit", lit) if lit is not None else ("other", id(sub))


def _walk(items, defs=None, seen=()):
    """Every command in ``items``, guards and bodies included, not entering nested parallels."""
    for c in items:
        yield c
        if isinstance(c, N.Alternative):
            for g in c.guarded:
                yield from _walk(g.guard, defs, seen)
                yield from _walk(g.body, defs, seen)
        elif defs and isinstance(c, N.DefUse) and c.name in defs and c.name not in seen:
            yield from _walk(defs[c.name].body, defs, seen + (c.name,))


def _expressions(c):
    if isinstance(c, N.Assign):
        return [c.target, c.expr]
    if isinstance(c, N.Output):
        return [c.expr, *c.proc.subs]
    if isinstance(c, N.Input):
        return [c.target, *c.proc.subs]
    if isinstance(c, N.Decl):
        return list(c.bounds or ())
    if isinstance(c, N.Alternative):
        return [e for g in c.guarded for r in g.ranges for e in (r.lo, r.hi)]
    if isinstance(c, N.Parallel):
        return [e for p in c.processes if p.label for s in p.label.subs
                for e in ((s.lo, s.hi) if isinstance(s, N.Range) else (s,))]
    if isinstance(c, (N.BinOp, N.UnOp, N.Const, N.PyExpr, N.Name, N.Call, N.TupleExpr)):
        return [c]   # a boolean element of a guard
    return []


def _expr_walk(e):
    yield e
    for child in (getattr(e, "left", None), getattr(e, "right", None), getattr(e, "operand", None)):
        if child is not None:
            yield from _expr_walk(child)
    for child in getattr(e, "args", None) or getattr(e, "items", None) or []:
        yield from _expr_walk(child)
