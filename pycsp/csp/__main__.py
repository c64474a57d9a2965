"""python -m pycsp.csp PROG.csp [--backend B] [-D NAME=VALUE]... [--choice fair|pri]
                                [--start-method fork|spawn] [--check] [--emit]

Exit status: 0 done, 1 failure at run time, 2 syntax or static error, 3 deadlock.
"""
from __future__ import annotations

import argparse
import os
import sys

from . import compile_csp, cspexec, runtime
from .errors import CSPError


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pycsp.csp",
                                     description="Run a program written in Hoare's CSP notation.")
    parser.add_argument("program", help="the .csp file")
    parser.add_argument("--backend", default="threads", choices=("threads", "processes", "greenlets"))
    parser.add_argument("-D", dest="defines", action="append", default=[], metavar="NAME=VALUE",
                        help="override a name set in _include")
    parser.add_argument("--choice", default="fair", choices=("fair", "pri"))
    parser.add_argument("--start-method", choices=("fork", "spawn"),
                        help="how the processes backend starts a child (default: fork)")
    parser.add_argument("--check", action="store_true", help="parse and check only")
    parser.add_argument("--emit", action="store_true", help="print the generated PyCSP program")
    args = parser.parse_args(argv)
    try:
        with open(args.program, encoding="utf-8") as f:
            code = f.read()
    except OSError as e:
        print(f"{args.program}: error: {e.strerror}", file=sys.stderr)
        return 2
    if args.start_method and args.backend != "processes":
        parser.error("--start-method is for --backend processes only")
    progname = os.path.basename(args.program)
    try:
        defines = dict(map(runtime.parse_define, args.defines))
    except ValueError as e:
        parser.error(str(e))
    try:
        if args.check or args.emit:
            source = compile_csp(code, progname, args.backend, args.choice, defines=defines)
            if args.emit:
                sys.stdout.write(source)
            return 0
        return runtime.report(lambda: cspexec(code, progname, args.backend, defines, args.choice,
                                                     args.start_method))
    except CSPError as e:
        print(e.format(code, progname), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
