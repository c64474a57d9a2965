"""``python -m pycsp.common.trace``: draw a trace, or merge one a crash left unmerged.

    python -m pycsp.common.trace render TRACE [-o OUT.png]
        writes OUT.png (the timeline) and OUT-network.png (the network);
        OUT defaults to TRACE's name with .png.
    python -m pycsp.common.trace merge TRACE
        writes TRACE from TRACE.parts/, what a program recorded before it was
        killed without reaching TraceQuit (or its exit).

Exit status 0 on success, 1 if the trace cannot be read or written, 2 for
bad arguments or matplotlib missing.
"""
import argparse
import json
import os
import sys


def _render(args):
    from ._render import render

    try:
        paths = render(args.trace, args.output)
    except ImportError as exc:
        print(f"pycsp.common.trace: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"pycsp.common.trace: cannot render {args.trace}: {exc}", file=sys.stderr)
        return 1
    for path in paths:
        print(path)
    return 0


def _merge(args):
    from . import _chrome

    parts = f"{args.trace}.parts"
    try:
        with open(os.path.join(parts, "session.json")) as source:
            session = json.load(source)
        events, torn = _chrome.merge(parts, args.trace, session["owner_pid"], session["backend"],
                                     {"generator": "pycsp.common.trace merge"})
    except (OSError, ValueError, KeyError) as exc:
        print(f"pycsp.common.trace: cannot merge {parts}: {exc}", file=sys.stderr)
        return 1
    print(f"{args.trace}: {events} events" + (f" ({torn} torn lines skipped)" if torn else ""))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m pycsp.common.trace",
                                     description="Draw or merge a pycsp trace (Chrome Trace "
                                                 "Event format).")
    commands = parser.add_subparsers(dest="command", required=True)
    render = commands.add_parser("render", help="draw the timeline and the network as PNG files")
    render.add_argument("trace", help="the trace file (JSON) that TraceQuit wrote")
    render.add_argument("-o", "--output", help="the timeline's PNG (the network goes beside it "
                                               "as NAME-network.png); default TRACE.png")
    render.set_defaults(run=_render)
    merge = commands.add_parser("merge", help="write TRACE from TRACE.parts/ (after a crash)")
    merge.add_argument("trace", help="the trace file to write")
    merge.set_defaults(run=_merge)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
