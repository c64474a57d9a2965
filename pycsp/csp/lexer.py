"""Tokens of the CSP notation (the grammar's "Lexical" part, docs/csp-notation.rst).

A token carries its 1-based line and column so that every later error can
point into the .csp file.  ``{ ... }`` Python blocks become one PY token whose
value is the dedented Python text; its position maps Python's own error
positions back into the file (see ``Token.py_position``).
"""
from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass

from .errors import CSPSyntaxError

KEYWORDS = {"skip", "true", "false", "or", "and", "not", "div", "mod", "def", "end", "_include"}

# Longest first: matched greedily ("->" before "-", "::" before ":").
_SYMBOLS = ["[]", "||", "::", ":=", "->", "<=", ">=", "<>", "!=", "==", "..",
            "□", "→", "≠", "≤", "≥",
            "[", "]", "(", ")", ";", ",", ":", "?", "!", "*", "+", "-", "/",
            "=", "<", ">"]
_ALIASES = {"□": "[]", "→": "->", "≠": "<>", "≤": "<=", "≥": ">="}


@dataclass(frozen=True)
class Token:
    kind: str          # NAME INT REAL STRING PY EOF, a keyword, or the symbol itself
    value: object
    line: int
    col: int
    py_col0: int = 0   # for PY: columns dedent removed (maps Python's offsets back)

    def py_position(self, lineno: int, offset: int) -> tuple[int, int]:
        """The .csp position of Python's (lineno, offset) inside this PY block."""
        line = self.line + lineno - 1
        return line, max(1, (offset or 1) + self.py_col0)

    def describe(self) -> str:
        if self.kind == "EOF":
            return "the end of the file"
        if self.kind == "PY":
            return "a Python block '{...}'"
        if self.kind in ("NAME", "INT", "REAL"):
            return f"'{self.value}'"
        if self.kind == "STRING":
            return "a string"
        return f"'{self.kind}'"


def _skip_python_string(src: str, i: int) -> int:
    """Index just past the Python string literal whose quote is at src[i]."""
    quote = src[i]
    triple = src.startswith(quote * 3, i)
    end_mark = quote * 3 if triple else quote
    j = i + len(end_mark)
    while j < len(src):
        if src[j] == "\\":
            j += 2
            continue
        if src.startswith(end_mark, j):
            return j + len(end_mark)
        if src[j] == "\n" and not triple:
            return j
        j += 1
    return j


def tokenize(src: str, filename: str = "<csp>") -> list[Token]:
    tokens: list[Token] = []
    i, line, line_start = 0, 1, 0
    n = len(src)

    def error(msg, at_line, at_col):
        raise CSPSyntaxError(msg, at_line, at_col)

    while i < n:
        c = src[i]
        col = i - line_start + 1
        if c == "\n":
            i += 1
            line, line_start = line + 1, i
            continue
        if c in " \t\r\f":
            i += 1
            continue
        if src.startswith("--", i):
            while i < n and src[i] != "\n":
                i += 1
            continue
        if c == "{":
            start_line, start_col = line, col
            depth, j = 1, i + 1
            while j < n and depth:
                ch = src[j]
                if ch in "'\"":
                    j = _skip_python_string(src, j)
                    continue
                if ch == "#":
                    while j < n and src[j] != "\n":
                        j += 1
                    continue
                if ch == "{":
                    depth += 1
                elif ch == "}":
                    depth -= 1
                j += 1
            if depth:
                error(f"'{{' opened at {start_line}:{start_col} is not closed by '}}'", start_line, start_col)
            body = src[i + 1:j - 1]
            first, newline, rest = body.partition("\n")
            if first.strip():
                # Pad the first line to its real column so dedent treats every line alike.
                padded, py_line = " " * col + body, start_line
            else:
                padded, py_line = rest, start_line + 1
            removed = _common_indent(padded)
            tokens.append(Token("PY", textwrap.dedent(padded).rstrip(), py_line, start_col, removed))
            for k in range(i, j):
                if src[k] == "\n":
                    line, line_start = line + 1, k + 1
            i = j
            continue
        if c.isdigit():
            j = i
            while j < n and src[j].isdigit():
                j += 1
            kind = "INT"
            if j + 1 < n and src[j] == "." and src[j + 1].isdigit():
                j += 1
                while j < n and src[j].isdigit():
                    j += 1
                kind = "REAL"
            text = src[i:j]
            tokens.append(Token(kind, int(text) if kind == "INT" else float(text), line, col))
            i = j
            continue
        if c.isalpha() or c == "_":
            j = i
            while j < n and (src[j].isalnum() or src[j] == "_"):
                j += 1
            word = src[i:j]
            tokens.append(Token(word if word in KEYWORDS else "NAME", word, line, col))
            i = j
            continue
        if c in "\"'":
            j = _skip_python_string(src, i)
            text = src[i:j]
            if len(text) < 2 or text[-1] != c:
                error("string is not closed on its line", line, col)
            tokens.append(Token("STRING", ast.literal_eval(text), line, col))
            i = j
            continue
        for sym in _SYMBOLS:
            if src.startswith(sym, i):
                kind = _ALIASES.get(sym, sym)
                tokens.append(Token(kind, sym, line, col))
                i += len(sym)
                break
        else:
            error(f"unexpected character {c!r}", line, col)
    tokens.append(Token("EOF", None, line, i - line_start + 1))
    return tokens


def _common_indent(text: str) -> int:
    widths = [len(ln) - len(ln.lstrip()) for ln in text.split("\n") if ln.strip()]
    return min(widths) if widths else 0
