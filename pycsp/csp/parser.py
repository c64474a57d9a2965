"""Recursive-descent parser for the CSP notation (grammar: docs/csp-notation.rst).

Why hand-written rather than a grammar in lark: the grammar is small (about 30
rules) and LL(2) apart from three spots that need a short look-ahead (a "["
that opens Hoare's parallel "[ P :: ...", a guard element that is a
declaration, and a command that is an output or an input); the errors the
notation promises ("expected '->' after the guard, found ']'", "'[[' opened
at 3:1 is not closed by ']]'", the "=" for ":=" hint) fall out of the code
that knows what it expected; and pycsp gains no dependency.  Expressions use
one function per precedence level.
"""
from __future__ import annotations

from . import nodes as N
from .errors import CSPSyntaxError
from .lexer import Token, tokenize

_COMMAND_LIST_END = {"]", "||", "[]", "end", "EOF"}
_RELOPS = {"=": "==", "==": "==", "<>": "!=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


def parse(source: str) -> N.Program:
    """Parse a whole program; raises CSPSyntaxError with the position of the problem."""
    return _Parser(tokenize(source)).program()


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.toks = tokens
        self.i = 0

    # ---- helpers ----
    @property
    def tok(self) -> Token:
        return self.toks[self.i]

    def peek(self, k: int = 1) -> Token:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def at(self, *kinds: str) -> bool:
        return self.tok.kind in kinds

    def take(self) -> Token:
        t = self.tok
        self.i += 1
        return t

    def error(self, message: str, tok: Token | None = None):
        tok = tok or self.tok
        raise CSPSyntaxError(message, tok.line, tok.col)

    def expect(self, kind: str, where: str) -> Token:
        if self.tok.kind != kind:
            self.error(f"expected '{kind}' {where}, found {self.tok.describe()}")
        return self.take()

    def close(self, kind: str, opener: Token, text: str | None = None) -> Token:
        if self.tok.kind != kind:
            self.error(f"'{text or opener.kind}' opened at {opener.line}:{opener.col} is not "
                       f"closed by '{kind * (2 if text == '[[' else 1)}' "
                       f"(found {self.tok.describe()})")
        return self.take()

    @staticmethod
    def pos(tok: Token) -> tuple:
        return (tok.line, tok.col)

    # ---- program ----
    def program(self) -> N.Program:
        prog = N.Program(self.pos(self.tok))
        while self.at("_include"):
            self.take()
            if not self.at("PY"):
                self.error(f"expected a Python block '{{...}}' after _include, found {self.tok.describe()}")
            prog.includes.append(self.take())
            if self.at(";"):
                self.take()
        while self.at("def"):
            start = self.take()
            name = self.expect("NAME", "after 'def'")
            self.expect("=", f"after 'def {name.value}'")
            body = self.command_list()
            if not self.at("end"):
                self.error(f"'def' opened at {start.line}:{start.col} is not closed by 'end' "
                           f"(found {self.tok.describe()})")
            self.take()
            if self.at(";"):
                self.take()
            prog.definitions.append(N.Definition(self.pos(start), name.value, body))
        prog.body = self.command_list()
        if not self.at("EOF"):
            if self.at("]"):
                self.error("']' closes nothing")
            self.error(f"expected ';' or the end of the program, found {self.tok.describe()}")
        return prog

    def command_list(self) -> list:
        items = [self.item()]
        while self.at(";"):
            self.take()
            if self.at(*_COMMAND_LIST_END):
                break
            items.append(self.item())
        return items

    def is_declaration(self) -> bool:
        if not self.at("NAME"):
            return False
        k = 1
        while self.peek(k).kind == "," and self.peek(k + 1).kind == "NAME":
            k += 2
        return self.peek(k).kind == ":"

    def item(self):
        if self.is_declaration():
            return self.declaration()
        return self.command()

    def declaration(self) -> N.Decl:
        start = self.tok
        names = [self.take().value]
        while self.at(","):
            self.take()
            names.append(self.expect("NAME", "in the declaration").value)
        self.expect(":", "in the declaration")
        bounds = None
        if self.at("("):
            opener = self.take()
            lo = self.expr()
            self.expect("..", "in the array bounds")
            hi = self.expr()
            self.close(")", opener)
            bounds = (lo, hi)
        type_name = self.expect("NAME", "(a type) in the declaration").value
        return N.Decl(self.pos(start), names, type_name, bounds)

    # ---- commands ----
    def command(self):
        t = self.tok
        if t.kind == "skip":
            self.take()
            return N.Skip(self.pos(t))
        if t.kind == "PY":
            self.take()
            return N.PyStmt(self.pos(t), t)
        if t.kind == "*":
            self.take()
            if not self.at("["):
                self.error(f"expected '[' after '*', found {self.tok.describe()}")
            alt = self.alternative()
            alt.repetitive = True
            alt.pos = self.pos(t)
            return alt
        if t.kind == "[":
            if self.peek().kind == "[":
                return self.hydra_parallel()
            if self.starts_labelled(self.i + 1):
                return self.hoare_parallel()
            return self.alternative()
        if t.kind == "(":
            target = self.primary()
            return self.assignment(target)
        if t.kind == "NAME":
            name = self.take()
            args = None
            if self.at("("):
                args = self.paren_args()
            if self.at("?", "!"):
                proc = N.ProcName(self.pos(name), name.value, args or [])
                op = self.take()
                if op.kind == "?":
                    return N.Input(self.pos(name), proc, self.target())
                return N.Output(self.pos(name), proc, self.expr())
            target = N.Name(self.pos(name), name.value) if args is None else \
                N.Call(self.pos(name), name.value, args)
            if self.at(":=", "="):
                return self.assignment(target)
            if args is None and self.at(*_COMMAND_LIST_END, ";"):
                return N.DefUse(self.pos(name), name.value)
            self.error(f"expected ':=', '?' or '!' after '{name.value}', found {self.tok.describe()}")
        self.error(f"expected a command, found {t.describe()}")

    def assignment(self, target):
        if self.at("="):
            self.error("'=' is a comparison: use ':=' for assignment")
        self.expect(":=", "in the assignment")
        self.check_target(target)
        return N.Assign(target.pos, target, self.expr())

    def target(self):
        t = self.tok
        if t.kind == "NAME" or t.kind == "(":
            target = self.primary()
            self.check_target(target)
            return target
        self.error(f"expected a target (a variable, a(i), a pattern), found {t.describe()}")

    def check_target(self, target, nested=False):
        if isinstance(target, N.Name):
            return
        if isinstance(target, N.Call):
            for a in target.args:
                if not nested:
                    self.check_target(a, True) if not _is_subscript_like(a) else None
            return
        if isinstance(target, N.TupleExpr):
            for a in target.items:
                self.check_target(a, True)
            return
        raise CSPSyntaxError("not a target: expected a variable, a(i) or a pattern", *target.pos)

    # ---- parallel ----
    def starts_labelled(self, j: int) -> bool:
        if self.toks[j].kind != "NAME":
            return False
        j += 1
        if self.toks[j].kind == "(":
            depth = 0
            while j < len(self.toks):
                k = self.toks[j].kind
                depth += k == "("
                depth -= k == ")"
                j += 1
                if depth == 0 or k == "EOF":
                    break
        return self.toks[j].kind == "::"

    def hydra_parallel(self) -> N.Parallel:
        opener = self.take()
        self.take()
        procs = [self.process()]
        while self.at("||"):
            self.take()
            procs.append(self.process())
        if not (self.at("]") and self.peek().kind == "]"):
            if self.at("]"):
                self.i += 1
            self.error(f"'[[' opened at {opener.line}:{opener.col} is not closed by ']]' "
                       f"(found {self.tok.describe()})")
        self.take()
        self.take()
        return N.Parallel(self.pos(opener), procs, False)

    def hoare_parallel(self) -> N.Parallel:
        opener = self.take()
        procs = [self.process(required_label=True)]
        while self.at("||"):
            self.take()
            procs.append(self.process(required_label=True))
        self.close("]", opener)
        return N.Parallel(self.pos(opener), procs, True)

    def process(self, required_label=False) -> N.Process:
        start = self.tok
        label = None
        if self.starts_labelled(self.i):
            label = self.label()
        elif required_label:
            self.error(f"expected a process label 'NAME ::', found {self.tok.describe()}")
        return N.Process(self.pos(start), label, self.command_list())

    def label(self) -> N.Label:
        name = self.take()
        subs = []
        if self.at("("):
            opener = self.take()
            subs.append(self.label_sub())
            while self.at(","):
                self.take()
                subs.append(self.label_sub())
            self.close(")", opener)
        self.expect("::", "after the process label")
        return N.Label(self.pos(name), name.value, subs)

    def label_sub(self):
        if self.at("NAME") and self.peek().kind == ":":
            return self.range_()
        return self.expr()

    def range_(self) -> N.Range:
        var = self.take()
        self.expect(":", "in the range")
        lo = self.expr()
        self.expect("..", f"in the range of '{var.value}'")
        hi = self.expr()
        return N.Range(self.pos(var), var.value, lo, hi)

    # ---- alternative ----
    def alternative(self) -> N.Alternative:
        opener = self.take()
        guarded = [self.guarded()]
        while self.at("[]"):
            self.take()
            guarded.append(self.guarded())
        self.close("]", opener)
        return N.Alternative(self.pos(opener), guarded, False)

    def guarded(self) -> N.Guarded:
        start = self.tok
        ranges = []
        if self.at("(") and self.peek().kind == "NAME" and self.peek(2).kind == ":":
            opener = self.take()
            ranges.append(self.range_())
            while self.at(","):
                self.take()
                ranges.append(self.range_())
            self.close(")", opener)
        guard = [self.gelem()]
        while self.at(";"):
            self.take()
            guard.append(self.gelem())
        for g in guard[:-1]:
            if isinstance(g, (N.Input, N.Output)):
                raise CSPSyntaxError("a communication in a guard must be its last element", *g.pos)
        if not self.at("->"):
            if self.at(":="):
                self.error("an assignment cannot be part of a guard: expected '->' after the guard")
            self.error(f"expected '->' after the guard, found {self.tok.describe()}")
        self.take()
        return N.Guarded(self.pos(start), ranges, guard, self.command_list())

    def gelem(self):
        if self.is_declaration():
            return self.declaration()
        if self.at("NAME"):
            save = self.i
            name = self.take()
            args = self.paren_args() if self.at("(") else []
            if self.at("?", "!"):
                proc = N.ProcName(self.pos(name), name.value, args)
                if self.take().kind == "?":
                    return N.Input(self.pos(name), proc, self.target())
                return N.Output(self.pos(name), proc, self.expr())
            self.i = save
        return self.expr()

    # ---- expressions ----
    def paren_args(self) -> list:
        opener = self.take()
        args = []
        if not self.at(")"):
            args.append(self.expr())
            while self.at(","):
                self.take()
                args.append(self.expr())
        self.close(")", opener)
        return args

    def expr(self):
        left = self.conj()
        while self.at("or"):
            op = self.take()
            left = N.BinOp(self.pos(op), "or", left, self.conj())
        return left

    def conj(self):
        left = self.neg()
        while self.at("and"):
            op = self.take()
            left = N.BinOp(self.pos(op), "and", left, self.neg())
        return left

    def neg(self):
        if self.at("not"):
            op = self.take()
            return N.UnOp(self.pos(op), "not", self.neg())
        return self.rel()

    def rel(self):
        left = self.sum()
        if self.tok.kind in _RELOPS:
            op = self.take()
            left = N.BinOp(self.pos(op), _RELOPS[op.kind], left, self.sum())
        return left

    def sum(self):
        left = self.term()
        while self.at("+", "-"):
            op = self.take()
            left = N.BinOp(self.pos(op), op.kind, left, self.term())
        return left

    def term(self):
        left = self.unary()
        while self.at("*", "/", "div", "mod"):
            op = self.take()
            py = {"div": "//", "mod": "%"}.get(op.kind, op.kind)
            left = N.BinOp(self.pos(op), py, left, self.unary())
        return left

    def unary(self):
        if self.at("-"):
            op = self.take()
            return N.UnOp(self.pos(op), "-", self.primary())
        return self.primary()

    def primary(self):
        t = self.tok
        if t.kind in ("INT", "REAL", "STRING"):
            self.take()
            return N.Const(self.pos(t), t.value)
        if t.kind in ("true", "false"):
            self.take()
            return N.Const(self.pos(t), t.kind == "true")
        if t.kind == "PY":
            self.take()
            return N.PyExpr(self.pos(t), t)
        if t.kind == "NAME":
            self.take()
            if self.at("("):
                return N.Call(self.pos(t), t.value, self.paren_args())
            return N.Name(self.pos(t), t.value)
        if t.kind == "(":
            opener = self.take()
            items = []
            trailing_comma = False
            if not self.at(")"):
                items.append(self.expr())
                while self.at(","):
                    self.take()
                    if self.at(")"):
                        trailing_comma = True
                        break
                    items.append(self.expr())
            self.close(")", opener)
            single = len(items) == 1 and not trailing_comma
            return N.TupleExpr(self.pos(opener), items, single)
        self.error(f"expected an expression, found {t.describe()}")


def _is_subscript_like(node) -> bool:
    return not isinstance(node, (N.Name, N.Call, N.TupleExpr))
