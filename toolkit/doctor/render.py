"""The diagram of graph.py drawn as SVG or PNG: networkx lays it out, matplotlib
(Agg, no display, no pyplot) draws it.

    render(diagram, "svg" | "png") -> bytes

The same shapes as the Mermaid text: namespaces as rounded boxes (red when a
finding concerns them), each bridge as a green box joined to its namespace by a
thick green bar, veth links as solid lines labelled with both ends (the first
line is the end nearer the link's first node, as in the Mermaid edge), VIP
groups as dashed boxes with dashed lines to their members, route notes and
findings as notes on dotted lines. The layout is seeded: the same diagram gives
the same drawing.

networkx and matplotlib are imported only when drawing: the other commands do
not pay for them.
"""

from __future__ import annotations

import io
import math

FORMATS = ("svg", "png")
DPI = 110
SEED = 7
LABEL_MAX = 200  # characters per line drawn

BOX = {  # kind -> (boxstyle, face, edge, line style)
    "node": ("round,pad=0.45", "#eef3fb", "#33476b", "solid"),
    "bridge": ("square,pad=0.35", "#eaf6ea", "#2a7a2a", "solid"),
    "vip": ("round,pad=0.45", "#ffffff", "#1f5fa8", "dashed"),
    "routes": ("square,pad=0.3", "#fffbe6", "#b59b00", "solid"),
    "finding": ("square,pad=0.3", "#ffe0e0", "#c00000", "solid"),
}
MARKED = ("#ffe0e0", "#c00000")
EDGE = {  # kind -> (colour, width, style)
    "wire": ("#555555", 1.6, "solid"),
    "member": ("#1f5fa8", 1.2, "dashed"),
    "note": ("#999999", 1.0, "dotted"),
    "inside": ("#2a7a2a", 4.0, "solid"),
}


def text(value) -> str:
    """A line matplotlib shows as written: control characters become spaces, `$`
    is escaped (else a pair starts mathtext), long lines are cut."""
    s = "".join(c if c.isprintable() else " " for c in str(value))
    if len(s) > LABEL_MAX:
        s = s[:LABEL_MAX - 3] + "..."
    return s.replace("$", r"\$")


def layout(d) -> dict:
    """id -> (x, y): networkx's spring layout of the diagram, seeded, nodes added sorted."""
    import networkx as nx

    g = nx.Graph()
    g.add_nodes_from(sorted(s.id for s in d.shapes))
    for a, b in sorted({tuple(sorted((e.a, e.b))) for e in d.edges}
                       | {tuple(sorted((s.id, s.parent))) for s in d.shapes if s.parent}):
        g.add_edge(a, b)
    if not g:
        return {}
    n = g.number_of_nodes()
    pos = nx.spring_layout(g, seed=SEED, k=3.0 / math.sqrt(n), iterations=300)
    return {k: (float(x), float(y)) for k, (x, y) in pos.items()}


def figure(d):
    """The diagram as a matplotlib Figure (Agg canvas, not shown, not saved)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch

    pos = layout(d)
    side = min(40.0, 4.5 + 1.8 * math.sqrt(max(1, len(d.shapes))))
    fig = Figure(figsize=(side * 1.3, side), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.02, 0.02, 0.96, 0.90))
    ax.set_axis_off()
    title = f"netkeel graph: {d.title}" + (f" (namespaces prefixed {d.prefix!r})" if d.prefix else "")
    fig.suptitle(text(title), fontsize=13, fontweight="bold")
    if pos:
        xs, ys = [p[0] for p in pos.values()], [p[1] for p in pos.values()]
        pad = 0.35
        ax.set_xlim(min(xs) - pad, max(xs) + pad)
        ax.set_ylim(min(ys) - pad, max(ys) + pad)

    # Edges, parallel ones bent apart; each link's label at its middle.
    edges = [(e.a, e.b, e.kind, e.lines) for e in d.edges]
    edges += [(s.id, s.parent, "inside", ()) for s in d.shapes if s.parent]
    kinds = {s.id: s.kind for s in d.shapes}
    groups: dict = {}
    for e in edges:
        groups.setdefault(frozenset(e[:2]), []).append(e)
    for group in groups.values():
        for k, (a, b, kind, lines) in enumerate(group):
            if a not in pos or b not in pos:
                continue
            bend = (k - (len(group) - 1) / 2) * 0.35
            colour, width, style = EDGE[kind]
            if kind == "note" and "finding" in (kinds.get(a), kinds.get(b)):
                colour = MARKED[1]
            ax.add_patch(FancyArrowPatch(pos[a], pos[b], arrowstyle="-", connectionstyle=f"arc3,rad={bend}",
                                         color=colour, linewidth=width, linestyle=style, zorder=1,
                                         shrinkA=0, shrinkB=0, alpha=0.6 if kind == "inside" else 1.0))
            if lines:
                (xa, ya), (xb, yb) = pos[a], pos[b]
                mx, my = (xa + xb) / 2, (ya + yb) / 2
                # The middle of the arc: the chord's middle moved along its normal.
                mx, my = mx + bend * (yb - ya) / 2, my - bend * (xb - xa) / 2
                ax.text(mx, my, "\n".join(text(x) for x in lines), fontsize=7, ha="center", va="center",
                        zorder=2, color="#222222",
                        bbox=dict(boxstyle="round,pad=0.2", fc="white", ec=colour, lw=0.6, alpha=0.9))

    for s in d.shapes:
        if s.id not in pos:
            continue
        style, face, edge, line = BOX[s.kind]
        width = 1.2
        if s.marked:
            face, edge, width = MARKED[0], MARKED[1], 2.6
        lines = [text(x) for x in s.lines]
        weight = "bold" if s.kind in ("node", "vip", "finding") else "normal"
        ax.text(*pos[s.id], "\n".join(lines), fontsize=8 if s.kind in ("node", "bridge", "vip") else 7,
                ha="center", va="center", zorder=3, fontweight=weight,
                color="#600000" if s.marked else "#111111",
                bbox=dict(boxstyle=style, fc=face, ec=edge, lw=width, linestyle=line))
    return fig


def render(d, fmt: str) -> bytes:
    """The diagram as `fmt` ("svg" or "png") bytes."""
    if fmt not in FORMATS:
        raise ValueError(f"cannot draw {fmt!r}: the formats are {', '.join(FORMATS)}")
    import warnings

    from matplotlib import rc_context

    buf = io.BytesIO()
    # svg.hashsalt: the ids in the SVG do not change from run to run.
    with rc_context({"svg.hashsalt": "netkeel", "svg.fonttype": "path"}), warnings.catch_warnings():
        # A glyph DejaVu lacks is drawn as a box: fine.
        warnings.filterwarnings("ignore", message=r".*[Gg]lyph.*missing.*")
        fig = figure(d)
        metadata = {"Date": None} if fmt == "svg" else {"Software": None}
        fig.savefig(buf, format=fmt, dpi=DPI, bbox_inches="tight", pad_inches=0.3, metadata=metadata)
    return buf.getvalue()
