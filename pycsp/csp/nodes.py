"""Syntax tree of the CSP notation; every node has the (line, col) where it starts."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

Pos = tuple  # (line, col), 1-based


@dataclass
class Node:
    pos: Pos


# ---- expressions and targets ----

@dataclass
class Const(Node):
    value: Any


@dataclass
class PyExpr(Node):
    token: Any       # lexer.Token of kind PY


@dataclass
class Name(Node):
    name: str


@dataclass
class Call(Node):
    """``NAME(args)``: an array element if NAME is a declared array, else a constructor."""
    name: str
    args: list


@dataclass
class TupleExpr(Node):
    items: list
    parenthesised_single: bool = False   # "(e)" is grouping, not a 1-tuple


@dataclass
class BinOp(Node):
    op: str
    left: Any
    right: Any


@dataclass
class UnOp(Node):
    op: str
    operand: Any


# ---- commands ----

@dataclass
class Decl(Node):
    names: list
    type_name: str
    bounds: Optional[tuple] = None   # (lo, hi) expressions for an array


@dataclass
class Skip(Node):
    pass


@dataclass
class PyStmt(Node):
    token: Any


@dataclass
class Assign(Node):
    target: Any
    expr: Any


@dataclass
class ProcName(Node):
    name: str
    subs: list


@dataclass
class Input(Node):
    proc: ProcName
    target: Any


@dataclass
class Output(Node):
    proc: ProcName
    expr: Any


@dataclass
class DefUse(Node):
    name: str


@dataclass
class Range(Node):
    var: str
    lo: Any
    hi: Any


@dataclass
class Label(Node):
    name: str
    subs: list        # Range or expression, one per subscript


@dataclass
class Process(Node):
    label: Optional[Label]
    body: list


@dataclass
class Parallel(Node):
    processes: list
    hoare: bool       # "[ P :: ... || Q :: ... ]" rather than "[[ ... ]]"


@dataclass
class Guarded(Node):
    ranges: list
    guard: list       # Decl, Input/Output (last only) or expression
    body: list

    @property
    def comm(self):
        last = self.guard[-1] if self.guard else None
        return last if isinstance(last, (Input, Output)) else None


@dataclass
class Alternative(Node):
    guarded: list
    repetitive: bool


# ---- program ----

@dataclass
class Definition(Node):
    name: str
    body: list


@dataclass
class Program(Node):
    includes: list = field(default_factory=list)   # PY tokens
    definitions: list = field(default_factory=list)
    body: list = field(default_factory=list)
