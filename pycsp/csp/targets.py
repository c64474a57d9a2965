"""Warning: a communication whose partner, known at plan time, is outside its array.

Hoare's factorial has ``fac(i+1)`` in every ``fac(i : 1..LIMIT)``; for
``i = LIMIT`` there is no ``fac(LIMIT+1)``.  That is no error (the command
fails only if it is executed), but it is worth a warning.  A subscript is known
at plan time when it uses only constants, label and guard ranges with known
bounds, and names ``_include`` sets to a literal (or ``-D`` gives); anything
else (a variable, Python in ``{ }``) is a run-time subscript and not judged.
"""
from __future__ import annotations

import ast

from . import nodes as N
from .runtime import instance_name


class _Unknown(Exception):
    """The value depends on the run."""


def missing_targets(program: N.Program, defines=None) -> list:
    """``(line, col, message)`` for each plan-time target that names no instance."""
    env = _include_constants(program.includes)
    env.update(defines or {})
    finder = _Finder({d.name: d for d in program.definitions})
    finder.commands(program.body, env)
    return finder.warnings


def _include_constants(includes):
    """Names module-level ``_include`` code sets to a literal and never rebinds otherwise."""
    constants, rebound = {}, set()
    for tok in includes:
        try:
            tree = ast.parse(tok.value)
        except SyntaxError:
            continue
        for stmt in tree.body:
            if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                    and isinstance(stmt.targets[0], ast.Name)):
                try:
                    constants[stmt.targets[0].id] = ast.literal_eval(stmt.value)
                    continue
                except ValueError:
                    pass
            rebound |= _stored_names(stmt)
    return {k: v for k, v in constants.items() if k not in rebound}


def _stored_names(tree):
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {a.asname or a.name.split(".")[0] for a in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
    return names


def _value(e, env):
    if isinstance(e, N.Const):
        return e.value
    if isinstance(e, N.Name):
        if e.name in env:
            return env[e.name]
        raise _Unknown
    if isinstance(e, N.TupleExpr) and e.parenthesised_single:
        return _value(e.items[0], env)
    if isinstance(e, N.UnOp):
        operand = _value(e.operand, env)
        return (not operand) if e.op == "not" else -operand
    if isinstance(e, N.BinOp):
        left, right = _value(e.left, env), _value(e.right, env)
        try:
            return eval(f"_l {e.op} _r", {"__builtins__": {}}, {"_l": left, "_r": right})
        except Exception:
            raise _Unknown from None
    raise _Unknown   # Python in { }, a call, a tuple


def _range(r, env):
    lo, hi = _value(r.lo, env), _value(r.hi, env)
    if not (isinstance(lo, int) and isinstance(hi, int)):
        raise _Unknown
    return range(lo, hi + 1)


def _bindings(ranges, env):
    """Every env extended by one value of each range, or None when a bound is unknown."""
    envs = [env]
    for r in ranges:
        try:
            values = _range(r, env)
        except _Unknown:
            return None
        envs = [{**e, r.var: v} for e in envs for v in values]
    return envs


class _Finder:
    def __init__(self, defs):
        self.defs = defs
        self.warnings = []
        self.seen = set()

    def commands(self, items, env, expanding=()):
        """Find the parallel commands in ``items`` and judge each."""
        for c in items:
            if isinstance(c, N.Parallel):
                self.parallel(c, env)
            elif isinstance(c, N.Alternative):
                for g in c.guarded:
                    self.commands(g.body, _without(env, [r.var for r in g.ranges]), expanding)
            elif isinstance(c, N.DefUse) and c.name in self.defs and c.name not in expanding:
                self.commands(self.defs[c.name].body, env, expanding + (c.name,))

    def parallel(self, par, env):
        members, known = {}, {}
        instances = []     # (process, env of one instance)
        for proc in par.processes:
            name = proc.label.name if proc.label else None
            subs = proc.label.subs if proc.label else []
            envs = _bindings([s for s in subs if isinstance(s, N.Range)], env)
            known.setdefault(name, True)
            if envs is None:
                known[name] = False
                continue
            for e in envs:
                try:
                    values = tuple(e[s.var] if isinstance(s, N.Range) else _value(s, env) for s in subs)
                except _Unknown:
                    known[name] = False
                    continue
                members.setdefault(name, set()).add(instance_name(name, values))
                instances.append((proc, e))
        for proc, e in instances:
            body_env = _without(e, _rebound(proc.body, self.defs))
            for c, comm_env in self.communications(proc.body, body_env):
                family = c.proc.name
                if not c.proc.subs or not known.get(family):
                    continue
                try:
                    target = instance_name(family, tuple(_value(s, comm_env) for s in c.proc.subs))
                except _Unknown:
                    continue
                if target not in members.get(family, ()) and (c.pos, target) not in self.seen:
                    self.seen.add((c.pos, target))
                    self.warnings.append((*c.proc.pos, f"there is no process {target} "
                                                       "(the command fails if it is executed)"))
            self.commands(proc.body, body_env)

    def communications(self, items, env, expanding=()):
        """(communication, env at it) for every value of the guard ranges around it."""
        for c in items:
            if isinstance(c, (N.Input, N.Output)):
                yield c, env
            elif isinstance(c, N.DefUse) and c.name in self.defs and c.name not in expanding:
                yield from self.communications(self.defs[c.name].body, env, expanding + (c.name,))
            elif isinstance(c, N.Alternative):
                for g in c.guarded:
                    envs = _bindings(g.ranges, env)
                    if envs is None:
                        envs = [_without(env, [r.var for r in g.ranges])]
                    for e in envs:
                        if g.comm:
                            yield g.comm, e
                        yield from self.communications(g.body, e, expanding)


def _without(env, names):
    return {k: v for k, v in env.items() if k not in set(names)}


def _rebound(items, defs, expanding=()):
    """Names a process body declares or its Python assigns: their values are the run's."""
    names = set()
    for c in items:
        if isinstance(c, N.Decl):
            names.update(c.names)
        elif isinstance(c, N.PyStmt):
            try:
                names |= _stored_names(ast.parse(c.token.value))
            except SyntaxError:
                pass
        elif isinstance(c, N.DefUse) and c.name in defs and c.name not in expanding:
            names |= _rebound(defs[c.name].body, defs, expanding + (c.name,))
        elif isinstance(c, N.Alternative):
            for g in c.guarded:
                names |= _rebound(g.guard + g.body, defs, expanding)
        elif isinstance(c, N.Parallel):
            for p in c.processes:
                names |= _rebound(p.body, defs, expanding)
    return names
