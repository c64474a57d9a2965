"""Static checks of a parsed program (CSP-NOTATION.md section 4), before anything runs."""
from __future__ import annotations

from . import nodes as N


def check(program: N.Program) -> list:
    """Raise CSPStaticError for an error; return warnings as (line, col, message)."""
    return []
