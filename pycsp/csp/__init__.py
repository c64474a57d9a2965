"""Hoare's CSP notation for pycsp (Hydra's ``cspexec``): grammar, semantics and
errors in docs/csp-notation.rst (the design is the project's CSP-NOTATION.md).

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
                choice: str = "fair", warn=None, defines=None) -> str:
    """The PyCSP program (Python source) for ``code``, as ``--emit`` prints it.

    Args:
        code: the program in the notation.
        progname: the file name that positions in messages give.
        backend: the backend the program names (``threads``, ``processes`` or
            ``greenlets``); it still runs on any.
        choice: ``"fair"`` (the default) or ``"pri"`` (ready guards in textual order).
        warn: called with the text of each warning (default: print to stderr).
        defines: what ``-D`` sets, as for cspexec (its names are in scope like those of
            ``_include``; its values judge plan-time subscripts).

    Raises:
        CSPError: a syntax or static error (``.line``, ``.col``; ``.format(source,
            filename)`` gives ``file:line:col: error: message`` with the line and a caret).
    """
    program = parse(code)
    for line, col, message in check(program, defines):
        text = f"{progname}:{line}:{col}: warning: {message}"
        (warn or (lambda t: print(t, file=sys.stderr)))(text)
    return generate(program, progname, backend, choice)


def cspexec(code: str, progname: str = "program.csp", backend: str = "threads",
            defines: dict | None = None, choice: str = "fair", start_method: str | None = None) -> None:
    """Compile ``code`` and run it on ``backend``, as Hydra's ``cspexec`` did.

    Args:
        code: the program in the notation.
        progname: the file name that positions in messages give.
        backend: ``"threads"``, ``"processes"`` or ``"greenlets"``.
        defines: names that replace those ``_include`` set (``-D NAME=VALUE``).
        choice: ``"fair"`` (the default) or ``"pri"`` (ready guards in textual order).
        start_method: on ``processes``, ``"fork"`` or ``"spawn"`` (sets
            pycsp.processes.set_start_method; None leaves it as it is). With
            spawn each child compiles the program again.

    Raises:
        CSPError: a syntax or static error, before anything runs.
        CSPFailure: a command failed at run time; the message names the .csp
            position and the process.
        DeadlockError: every process is blocked (the report names them and
            where in the .csp file each waits).
    """
    source = compile_csp(code, progname, backend, choice, defines=defines)
    filename = f"<pycsp.csp {progname}>"
    namespace = {"__name__": "__pycsp_csp__", "__csp_filename__": filename, "__csp_source__": source}
    exec(compile(source, filename, "exec"), namespace)
    runtime.run(namespace, backend, defines, choice, start_method)
