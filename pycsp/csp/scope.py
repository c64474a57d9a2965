"""Static check: every CSP variable is used inside the scope of a declaration of it.

Hoare's scoping: a declaration holds from where it stands to the end of its
command list; a declaration or range in a guard holds for the rest of that
guarded command; a label range ``X(i:1..n)`` binds ``i`` in the process; an
inner process of a parallel command sees the variables of the processes that
contain it.  A ``def`` is expanded where it is used, so its body is checked
there.  Names set at module level by ``_include`` (and by ``-D``) and Python's
builtins are visible everywhere.  Python in ``{ }`` is not analysed: a name it
binds is not a declaration, and a name it reads is not a use.  Process names
live in their own namespace and are not variables.
"""
from __future__ import annotations

import ast
import builtins
import difflib

from . import nodes as N
from .errors import CSPStaticError


def check_scopes(program: N.Program, defines=()) -> None:
    """Raise CSPStaticError at the first use of a variable no declaration covers.

    Args:
        program: the parsed program (definitions already known to exist and
            not to be recursive).
        defines: names that ``-D NAME=VALUE`` adds at module level.
    """
    module = set(dir(builtins)) | set(defines)
    for tok in program.includes:
        names = _module_names(tok.value)
        if names is None:   # "from m import *": the module's names are unknowable here
            return
        module |= names
    _Scopes(program, module).run()


def _module_names(code):
    """Names that module-level Python ``code`` binds, or None if it cannot be known."""
    names = set()

    def visit(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(child.name)
                continue    # their bodies bind their own locals
            if isinstance(child, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                for alias in child.names:
                    if alias.name == "*":
                        raise _Unknowable
                    names.add(alias.asname or alias.name.split(".")[0])
            elif isinstance(child, ast.Name) and isinstance(child.ctx, ast.Store):
                names.add(child.id)
            elif isinstance(child, ast.NamedExpr):
                names.add(child.target.id)
            visit(child)

    try:
        visit(ast.parse(code))
    except _Unknowable:
        return None
    return names


class _Unknowable(Exception):
    pass


class _Scopes:
    def __init__(self, program, module):
        self.program = program
        self.module = module
        self.defs = {d.name: d for d in program.definitions}

    def run(self):
        # a def used nowhere is never expanded, so nothing of it is checked
        self.commands(self.program.body, [set()], ())

    def commands(self, items, chain, expanding):
        """Check ``items`` with ``chain`` (innermost frame last); declarations go into chain[-1]."""
        for c in items:
            self.command(c, chain, expanding)

    def command(self, c, chain, expanding):
        if isinstance(c, N.Decl):
            self.declare(c, chain)
        elif isinstance(c, N.Assign):
            self.expr(c.expr, chain)
            self.expr(c.target, chain)
        elif isinstance(c, N.Input):
            self.subscripts(c.proc, chain)
            self.expr(c.target, chain)
        elif isinstance(c, N.Output):
            self.subscripts(c.proc, chain)
            self.expr(c.expr, chain)
        elif isinstance(c, N.DefUse):
            if c.name in self.defs and c.name not in expanding:
                self.commands(self.defs[c.name].body, chain, expanding + (c.name,))
        elif isinstance(c, N.Alternative):
            for g in c.guarded:
                inner = chain + [set()]
                for r in g.ranges:
                    self.expr(r.lo, chain)
                    self.expr(r.hi, chain)
                    inner[-1].add(r.var)
                for element in g.guard:
                    if isinstance(element, (N.Decl, N.Input, N.Output)):
                        self.command(element, inner, expanding)
                    else:
                        self.expr(element, inner)
                self.commands(g.body, inner, expanding)
        elif isinstance(c, N.Parallel):
            for proc in c.processes:
                inner = chain + [set()]
                for s in (proc.label.subs if proc.label else []):
                    if isinstance(s, N.Range):
                        self.expr(s.lo, chain)
                        self.expr(s.hi, chain)
                        inner[-1].add(s.var)
                    else:
                        self.expr(s, chain)
                self.commands(proc.body, inner, expanding)
        # Skip and PyStmt use no CSP variable

    def declare(self, decl, chain):
        for bound in decl.bounds or ():
            self.expr(bound, chain)
        for name in decl.names:
            chain[-1].add(name)

    def subscripts(self, procname, chain):
        for s in procname.subs:
            self.expr(s, chain)

    def expr(self, e, chain):
        if isinstance(e, N.Name):
            self.use(e.name, e.pos, chain)
        elif isinstance(e, N.Call):
            # NAME(...) is an array element if NAME is a declared array, else a
            # constructor: its name is never an undeclared variable.
            for a in e.args:
                self.expr(a, chain)
        elif isinstance(e, N.TupleExpr):
            for item in e.items:
                self.expr(item, chain)
        elif isinstance(e, N.BinOp):
            self.expr(e.left, chain)
            self.expr(e.right, chain)
        elif isinstance(e, N.UnOp):
            self.expr(e.operand, chain)
        # Const and PyExpr ({...}: Python, not analysed)

    def use(self, name, pos, chain):
        if name in self.module or any(name in frame for frame in chain):
            return
        where = self.declaration_anywhere(name)
        if where:
            raise CSPStaticError(f"'{name}' is used outside the scope of its declaration "
                                 f"(declared at {where[0]}:{where[1]})", *pos)
        visible = set().union(*chain)
        hint = difflib.get_close_matches(name, sorted(visible), 1)
        more = f"; did you mean '{hint[0]}'?" if hint else ""
        raise CSPStaticError(f"'{name}' is not declared (no '{name} : type' before it){more}", *pos)

    def declaration_anywhere(self, name):
        """The position of a declaration of ``name`` anywhere in the program text, or None."""
        bodies = [self.program.body] + [d.body for d in self.program.definitions]
        for body in bodies:
            found = _find_decl(body, name)
            if found:
                return found
        return None


def _find_decl(items, name):
    """Where ``name`` is declared or bound by a range in ``items``, or None."""
    for c in items:
        if isinstance(c, N.Decl) and name in c.names:
            return c.pos
        children, ranges = [], []
        if isinstance(c, N.Alternative):
            children = [g.guard + g.body for g in c.guarded]
            ranges = [r for g in c.guarded for r in g.ranges]
        elif isinstance(c, N.Parallel):
            children = [p.body for p in c.processes]
            ranges = [s for p in c.processes if p.label for s in p.label.subs if isinstance(s, N.Range)]
        for r in ranges:
            if r.var == name:
                return r.pos
        for child in children:
            found = _find_decl(child, name)
            if found:
                return found
    return None
