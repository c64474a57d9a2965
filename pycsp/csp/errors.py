"""Errors of the CSP front end and their ``file:line:col: error: message`` form."""
from __future__ import annotations


class CSPError(Exception):
    """A syntax or static error at a position of the .csp source (exit status 2).

    Args:
        message: what is wrong.
        line: the line of the source, from 1.
        col: the column, from 1.
    """

    def __init__(self, message: str, line: int, col: int) -> None:
        super().__init__(message)
        self.message, self.line, self.col = message, line, col

    def format(self, source: str, filename: str) -> str:
        """``file:line:col: error: message``, then the source line and a caret.

        Args:
            source: the program's text.
            filename: the name to show.
        """
        return format_at(source, filename, self.line, self.col, "error", self.message)


class CSPSyntaxError(CSPError):
    """The text does not follow the grammar."""


class CSPStaticError(CSPError):
    """The program parses but cannot be right (unknown process, duplicate instance...)."""


class CSPFailure(Exception):
    """A CSP command failed at run time (Hoare's failure).

    One string argument, ``"L:C: failure in process NAME: what"``, so that the
    processes backend can re-raise it in the parent unchanged.
    """


def format_at(source: str, filename: str, line: int, col: int, kind: str, message: str) -> str:
    lines = source.split("\n")
    text = lines[line - 1] if 0 < line <= len(lines) else ""
    caret = " " * (col - 1) + "^"
    return f"{filename}:{line}:{col}: {kind}: {message}\n    {text}\n    {caret}"
