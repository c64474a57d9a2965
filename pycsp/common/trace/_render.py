"""Pictures of a trace, drawn with matplotlib (as PyCSP's PlayTrace showed it).

Two PNG files:

``OUT.png``, the timeline
    one row per CSP process: green while it runs, coloured by channel while it
    is blocked in a read or write (hatched: in an alternation), dotted while it
    waits in Parallel; crosses for poison, bars for retire, stars for TraceMsg;
    an arrow from each write to the read that took its message.
``OUT-network.png``, the network
    processes as nodes, an edge from writer to reader per channel, labelled
    with the channel and the number of messages it carried between the two.

matplotlib is needed here only (``pip install 'pycsp[trace]'``); recording
does not import it.  The figures are drawn on a Figure of their own
(``FigureCanvasAgg``), leaving pyplot's state alone.
"""
import math
import os
from collections import Counter, defaultdict

from . import _model

MAX_ROWS = 60       # timeline rows shown; the rest are counted in the title
MAX_ARROWS = 1500   # messages drawn as arrows; more are sampled evenly
MAX_NODES = 60

RUNNING = "#a6dba0"
WAITING = "#eeeeee"
POISON, RETIRE, NOTE = "#d7191c", "#222222", "#2c7bb6"
PALETTE = ["#1f77b4", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
           "#7f7f7f", "#d62728", "#2ca02c", "#aec7e8", "#ffbb78", "#c5b0d5", "#c49c94"]


def _matplotlib():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
        from matplotlib.patches import FancyArrowPatch, Patch
    except ImportError as exc:
        raise ImportError("rendering a trace needs matplotlib: pip install matplotlib "
                          "(or pip install 'pycsp[trace]')") from exc
    return FigureCanvasAgg, Figure, Line2D, FancyArrowPatch, Patch


def output_paths(trace_path, out=None):
    """(timeline path, network path) for ``out`` (default: the trace's name with .png)."""
    if out is None:
        out = os.path.splitext(os.fspath(trace_path))[0] + ".png"
    root, ext = os.path.splitext(os.fspath(out))
    ext = ext or ".png"
    return root + ext, f"{root}-network{ext}"


def render(trace_path, out=None):
    """Draw the trace file at ``trace_path``; return the two paths written.

    Raises ImportError without matplotlib, ValueError for a file that is not a
    Chrome trace, OSError if a file cannot be read or written.
    """
    mpl = _matplotlib()
    trace = _model.load(trace_path)
    timeline_path, network_path = output_paths(trace_path, out)
    colours = _channel_colours(trace)
    _draw_timeline(trace, timeline_path, colours, mpl)
    _draw_network(trace, network_path, colours, mpl)
    return timeline_path, network_path


def _channel_colours(trace):
    seen = []
    for track in trace.tracks:
        for op in track.operations:
            if op.channel is not None and op.channel not in seen:
                seen.append(op.channel)
    return {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(seen)}


def _save(figure, path, mpl):
    FigureCanvasAgg = mpl[0]
    FigureCanvasAgg(figure)
    figure.savefig(path)


# ---------------------------------------------------------------------------
# The timeline

def _draw_timeline(trace, path, colours, mpl):
    _, Figure, Line2D, _, Patch = mpl
    rows = [t for t in trace.tracks if t.span[0] is not None][:MAX_ROWS]
    hidden = len(trace.tracks) - len(rows)
    n = max(len(rows), 1)
    height = {row.key: n - 1 - i for i, row in enumerate(rows)}
    total = max(trace.end, 1e-3)
    figure = Figure(figsize=(12, max(3.2, 1.8 + 0.42 * n)), dpi=110, layout="constrained")
    ax = figure.add_subplot()

    for row in rows:
        y = height[row.key]
        start, end, ended = row.span
        ax.broken_barh([(start, max(end - start, total * 1e-4))], (y - 0.32, 0.64),
                       facecolors=RUNNING, edgecolor="none", zorder=1)
        if not ended:
            ax.plot([end], [y], marker=">", color=POISON, markersize=7, zorder=4)
        for wait_start, wait_end, _ in row.waits:
            ax.broken_barh([(wait_start, wait_end - wait_start)], (y - 0.32, 0.64),
                           facecolors=WAITING, edgecolor="#999999", hatch="..", linewidth=0.5,
                           zorder=2)
        for op in row.operations:
            width = max(op.end - op.start, total * 1e-4)
            ax.broken_barh([(op.start, width)], (y - 0.32, 0.64),
                           facecolors=colours.get(op.channel, "#999999"),
                           edgecolor=POISON if op.outcome == "poisoned" else "none",
                           hatch="//" if op.kind == "alt" else None, linewidth=0.8, zorder=2)
            if width > total * 0.07 and op.channel is not None:
                ax.text(op.start + width / 2, y, op.channel, ha="center", va="center",
                        fontsize=7, color="white", clip_on=True, zorder=3)
        for t, kind, _ in row.marks:
            style = {"poison": ("X", POISON, 8), "retire": ("|", RETIRE, 10),
                     "msg": ("*", NOTE, 9), "output": (".", NOTE, 6)}[kind]
            ax.plot([t], [y], marker=style[0], color=style[1], markersize=style[2],
                    linestyle="none", zorder=5)

    shown = [m for m in trace.messages if m.writer.key in height and m.reader.key in height]
    drawn = shown
    if len(shown) > MAX_ARROWS:
        step = len(shown) / MAX_ARROWS
        drawn = [shown[int(i * step)] for i in range(MAX_ARROWS)]
    if drawn:
        x0 = [m.sent for m in drawn]
        y0 = [height[m.writer.key] for m in drawn]
        ax.quiver(x0, y0, [m.received - m.sent for m in drawn],
                  [height[m.reader.key] - height[m.writer.key] for m in drawn],
                  angles="xy", scale_units="xy", scale=1, color="#333333", alpha=0.5,
                  width=0.0012, headwidth=5, headlength=6, headaxislength=5, zorder=6)

    ax.set_yticks([height[row.key] for row in rows], [row.name for row in rows], fontsize=8)
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_xlim(0, total * 1.01)
    ax.set_xlabel("time since TraceInit (ms)")
    ax.grid(axis="x", color="#dddddd", linewidth=0.5)
    ax.set_axisbelow(True)
    title = (f"pycsp trace{' (' + trace.backend + ')' if trace.backend else ''}: "
             f"{len(rows)} processes, {len(trace.messages)} messages")
    if hidden > 0:
        title += f" (first {len(rows)} of {len(rows) + hidden} rows shown)"
    if len(drawn) < len(shown):
        title += f"; {len(drawn)} of {len(shown)} arrows drawn"
    ax.set_title(title, fontsize=10)

    handles = [Patch(facecolor=RUNNING, label="running")]
    handles += [Patch(facecolor=colour, label=f"blocked on {label}")
                for label, colour in list(colours.items())[:10]]
    handles += [Patch(facecolor="white", edgecolor="#555555", hatch="//", label="in an alternation"),
                Patch(facecolor=WAITING, edgecolor="#999999", hatch="..", label="waiting in Parallel"),
                Line2D([], [], color="#333333", marker=">", markersize=5, label="message (write → read)"),
                Line2D([], [], color=POISON, marker="X", linestyle="none", label="poison"),
                Line2D([], [], color=RETIRE, marker="|", linestyle="none", markersize=10, label="retire"),
                Line2D([], [], color=NOTE, marker="*", linestyle="none", label="TraceMsg"),
                Line2D([], [], color=POISON, marker=">", linestyle="none", label="did not end")]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
              frameon=False)
    _save(figure, path, mpl)


# ---------------------------------------------------------------------------
# The network

def _layout(nodes, edges):
    """Positions: columns by longest path from the sources when the network
    has no cycle (producers left, consumers right), else a circle."""
    successors, indegree = defaultdict(set), {node: 0 for node in nodes}
    for writer, reader in edges:
        if writer != reader and reader not in successors[writer]:
            successors[writer].add(reader)
            indegree[reader] += 1
    level = {node: 0 for node in nodes}
    ready = [node for node in nodes if indegree[node] == 0]
    ordered = []
    while ready:
        node = ready.pop(0)
        ordered.append(node)
        for successor in sorted(successors[node], key=nodes.index):
            level[successor] = max(level[successor], level[node] + 1)
            indegree[successor] -= 1
            if indegree[successor] == 0:
                ready.append(successor)
    if len(ordered) == len(nodes):
        columns = defaultdict(list)
        for node in nodes:
            columns[level[node]].append(node)
        positions = {}
        for column, members in columns.items():
            for k, node in enumerate(members):
                positions[node] = (column * 3.2, ((len(members) - 1) / 2 - k) * 1.3)
        return positions
    radius = max(2.2, len(nodes) * 0.55)
    return {node: (radius * math.sin(2 * math.pi * k / len(nodes)),
                   radius * math.cos(2 * math.pi * k / len(nodes)))
            for k, node in enumerate(nodes)}


def _draw_network(trace, path, colours, mpl):
    _, Figure, _, FancyArrowPatch, _ = mpl
    counts = Counter((m.writer.key, m.reader.key, m.channel_id) for m in trace.messages)
    labels = {m.channel_id: m.channel for m in trace.messages}
    involved = {key for edge in counts for key in edge[:2]}
    nodes = [t.key for t in trace.tracks if t.start is not None or t.key in involved][:MAX_NODES]
    names = {t.key: t.name for t in trace.tracks}
    kept = set(nodes)
    edges = {edge: n for edge, n in counts.items() if edge[0] in kept and edge[1] in kept}
    positions = _layout(nodes, [edge[:2] for edge in edges])

    xs = [p[0] for p in positions.values()] or [0]
    ys = [p[1] for p in positions.values()] or [0]
    width, height = max(xs) - min(xs) + 3.5, max(ys) - min(ys) + 2.5
    scale = min(1.0, 16 / width, 12 / height) * 0.9
    figure = Figure(figsize=(max(6, width * scale + 1), max(4, height * scale + 1)), dpi=110,
                    layout="constrained")
    ax = figure.add_subplot()
    ax.set_xlim(min(xs) - 1.75, max(xs) + 1.75)
    ax.set_ylim(min(ys) - 1.25, max(ys) + 1.25)
    ax.set_aspect("equal")
    ax.axis("off")

    for key in nodes:
        x, y = positions[key]
        name, _, process_id = names[key].partition(" ")
        ax.text(x, y, f"{name}\n{process_id}" if process_id else name, ha="center", va="center",
                fontsize=8, zorder=3,
                bbox={"boxstyle": "round,pad=0.45", "facecolor": "white", "edgecolor": "#333333"})
    between = defaultdict(int)  # edges drawn so far between a pair: each bends further
    for (writer, reader, channel_id), n in sorted(edges.items(), key=lambda item: -item[1]):
        label = labels[channel_id]
        text = f"{label}: {n}"
        colour = colours.get(label, "#555555")
        x1, y1 = positions[writer]
        if writer == reader:
            ax.text(x1, y1 - 0.55, f"↻ {text}", ha="center", va="top", fontsize=7, color=colour)
            continue
        x2, y2 = positions[reader]
        pair = frozenset((writer, reader))
        rad = 0.12 + 0.14 * between[pair]
        between[pair] += 1
        ax.add_patch(FancyArrowPatch((x1, y1), (x2, y2), arrowstyle="-|>", mutation_scale=12,
                                     connectionstyle=f"arc3,rad={rad}", shrinkA=22, shrinkB=22,
                                     color=colour, linewidth=1 + min(2.5, math.log10(n + 1)),
                                     zorder=2))
        # The middle of matplotlib's arc3 curve: half the control point's offset.
        mx = (x1 + x2) / 2 + rad / 2 * (y2 - y1)
        my = (y1 + y2) / 2 - rad / 2 * (x2 - x1)
        ax.text(mx, my, text, ha="center", va="center", fontsize=7.5, color=colour, zorder=4,
                bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": colour,
                      "linewidth": 0.5})
    total = sum(edges.values())
    ax.set_title(f"pycsp network{' (' + trace.backend + ')' if trace.backend else ''}: "
                 f"{len(nodes)} processes, {total} messages on {len(set(labels))} channels",
                 fontsize=10)
    _save(figure, path, mpl)
