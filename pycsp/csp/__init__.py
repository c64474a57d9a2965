"""Hoare's CSP notation for pycsp (Hydra's ``cspexec``): see CSP-NOTATION.md.

    from pycsp.csp import cspexec, compile_csp
    cspexec(code, progname="prodcons.csp", backend="threads")
    python -m pycsp.csp prodcons.csp --backend processes
"""
from __future__ import annotations

import sys

from . import runtime
from .check import check
from .codegen import generate
from .errors import CSPError, CSPFailure
from .parser import parse

__all__ = ["cspexec", "compile_csp", "CSPError", "CSPFailure"]


def compile_csp(code: str, progname: str = "program.csp", backend: str = "threads",
                choice: str = "fair", warn=None) -> str:
    """The PyCSP program (Python source) for ``code``.

    Raises CSPError (syntax or static error, with .line/.col and .format()).
    Warnings go to ``warn(text)`` (default: stderr).
    """
    program = parse(code)
    for line, col, message in check(program):
        text = f"{progname}:{line}:{col}: warning: {message}"
        (warn or (lambda t: print(t, file=sys.stderr)))(text)
    return generate(program, progname, backend, choice)


def cspexec(code: str, progname: str = "program.csp", backend: str = "threads",
            defines: dict | None = None, choice: str = "fair") -> None:
    """Compile ``code`` and run it on ``backend``.

    Raises CSPError before anything runs, CSPFailure for a failure at run time
    (its message names the .csp position and the process), DeadlockError.
    """
    source = compile_csp(code, progname, backend, choice)
    filename = f"<pycsp.csp {progname}>"
    namespace = {"__name__": "__pycsp_csp__", "__csp_filename__": filename}
    exec(compile(source, filename, "exec"), namespace)
    runtime.run(namespace, backend, defines, choice)
