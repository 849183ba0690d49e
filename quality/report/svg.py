"""Inline SVG for the report: the layered lineage graph and the quality history squares.

The graph layout is a small Sugiyama-style one: a fixed column per layer (source files ->
bronze -> restricted -> silver -> gold -> MCP tools), nodes ordered inside each column by the
barycentre of their neighbours over a few sweeps, edges as cubic curves drawn under the boxes.
Box widths come from an estimate of the label's width, so labels never overflow their boxes.
"""

from collections import defaultdict
from dataclasses import dataclass
from html import escape

from quality.report.model import GraphNode, LineageGraph, QualityRun

COLUMN_OF_LAYER = {
    "source": 0,
    "bronze": 1,
    "rejects": 1,
    "restricted": 2,
    "silver": 3,
    "gold": 4,
    "mcp": 5,
}
COLUMN_TITLES = ("Source files", "Bronze", "Restricted", "Silver", "Gold views", "MCP tools")
LAYER_COLOURS = {
    # layer: (accent, tint)
    "source": ("#0e7490", "#ecfeff"),
    "bronze": ("#b45309", "#fff7ed"),
    "rejects": ("#b91c1c", "#fef2f2"),
    "restricted": ("#9d174d", "#fdf2f8"),
    "silver": ("#475569", "#f1f5f9"),
    "gold": ("#a16207", "#fefce8"),
    "mcp": ("#6d28d9", "#f5f3ff"),
}
LAYER_NAMES = {
    "source": "Landing source file",
    "bronze": "Bronze: as read, with provenance",
    "rejects": "Quarantined records",
    "restricted": "Restricted: identity crosswalk",
    "silver": "Silver: typed, linked",
    "gold": "Gold: de-identified view",
    "mcp": "MCP tool serving a view",
}

NODE_HEIGHT = 38
ROW_GAP = 10
COLUMN_GAP = 48
MARGIN = 14
HEADER = 34
LABEL_SIZE = 12.5
DETAIL_SIZE = 10.5
MAX_LABEL = 30
SWEEPS = 4


@dataclass(frozen=True)
class PlacedNode:
    node: GraphNode
    key: str  # short, stable id for the SVG element
    x: float
    y: float
    width: float
    label: str


@dataclass(frozen=True)
class Junction:
    """Where a bundle of edges meets: every one of ``inputs`` feeds every one of ``outputs``.

    One run that reads many files and writes many tables would otherwise draw inputs x outputs
    crossing curves; through a junction it draws inputs + outputs.
    """

    x: float
    y: float
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class Layout:
    nodes: list[PlacedNode]
    width: float
    height: float
    titles: list[tuple[float, str]]
    junctions: list[Junction]


def text_width(text: str, size: float, *, bold: bool = False) -> float:
    """A generous estimate of ``text``'s width in a sans-serif font (DejaVu Sans is wide)."""
    narrow, wide = set("iljtfr.,:;'|!() "), set("mwMW@%")
    units = 0.0
    for ch in text:
        if ch in narrow:
            units += 0.36
        elif ch in wide:
            units += 0.92
        elif ch.isupper() or ch.isdigit():
            units += 0.7
        else:
            units += 0.62
    return units * size * (1.1 if bold else 1.0)


def _short(text: str) -> str:
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"


def _bundles(
    column: dict[str, int], succs: dict[str, list[str]]
) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """Groups of nodes in one column that all feed the same set of later nodes."""
    groups: dict[tuple[int, frozenset[str]], list[str]] = defaultdict(list)
    for node, targets in succs.items():
        if targets:
            groups[(column[node], frozenset(targets))].append(node)
    bundles = []
    for (c, targets), members in groups.items():
        if (
            len(members) >= 2
            and len(targets) >= 2
            and len(members) * len(targets) >= 6
            and all(column[t] > c for t in targets)
        ):
            bundles.append((tuple(sorted(members)), tuple(sorted(targets))))
    return sorted(bundles)


def layout(graph: LineageGraph) -> Layout:
    """Place the graph's nodes, column titles and edge junctions."""
    nodes = [n for n in graph.nodes if n.layer in COLUMN_OF_LAYER]
    ids = {n.id for n in nodes}
    keys = {n.id: f"n{i}" for i, n in enumerate(nodes)}
    column_of = {n.id: COLUMN_OF_LAYER[n.layer] for n in nodes}
    preds: dict[str, list[str]] = defaultdict(list)
    succs: dict[str, list[str]] = defaultdict(list)
    for a, b in graph.edges:
        if a in ids and b in ids:
            succs[a].append(b)
            preds[b].append(a)

    columns: dict[int, list[GraphNode]] = defaultdict(list)
    for n in nodes:
        columns[column_of[n.id]].append(n)
    used = sorted(columns)
    for c in used:
        columns[c].sort(key=lambda n: (n.layer == "rejects", n.label, n.id))

    tallest = max((len(columns[c]) for c in used), default=0)
    body = tallest * NODE_HEIGHT + max(tallest - 1, 0) * ROW_GAP

    def place(c: int) -> dict[str, float]:
        column = columns[c]
        height = len(column) * NODE_HEIGHT + (len(column) - 1) * ROW_GAP
        top = HEADER + (body - height) / 2
        return {n.id: top + i * (NODE_HEIGHT + ROW_GAP) for i, n in enumerate(column)}

    y: dict[str, float] = {}
    for c in used:
        y.update(place(c))

    def reorder(c: int, neighbours: dict[str, list[str]]) -> None:
        def centre(n: GraphNode) -> float:
            around = [y[m] for m in neighbours[n.id]]
            return sum(around) / len(around) if around else y[n.id]

        # Rejects stay at the foot of the bronze column; the rest follow their neighbours.
        columns[c].sort(key=lambda n: (n.layer == "rejects", round(centre(n), 3), n.label, n.id))
        y.update(place(c))

    for _ in range(SWEEPS):
        for c in reversed(used):
            reorder(c, succs)
        for c in used:
            reorder(c, preds)

    widths = {
        c: max(
            max(
                text_width(_short(n.label), LABEL_SIZE, bold=True),
                text_width(n.detail, DETAIL_SIZE),
            )
            for n in columns[c]
        )
        + 30
        for c in used
    }
    for c in used:
        title = COLUMN_TITLES[c].upper()
        title_width = text_width(title, 11, bold=True) + 0.09 * 11 * len(title)
        widths[c] = max(widths[c], title_width + 10, 110)

    bundles = _bundles(column_of, succs)
    # A gap that holds a junction is wider, so the curves have room to meet and part.
    gaps = {c: COLUMN_GAP for c in used}
    for members, _targets in bundles:
        gaps[column_of[members[0]]] = COLUMN_GAP * 2
    lefts, x = {}, MARGIN
    for c in used:
        lefts[c] = x
        x += widths[c] + gaps[c]
    width = x - gaps[used[-1]] + MARGIN if used else 2 * MARGIN
    height = HEADER + body + MARGIN

    junctions = []
    for members, targets in bundles:
        c = column_of[members[0]]
        ends = [y[m] for m in (*members, *targets)]
        junctions.append(
            Junction(
                x=lefts[c] + widths[c] + gaps[c] / 2,
                y=sum(ends) / len(ends) + NODE_HEIGHT / 2,
                inputs=members,
                outputs=targets,
            )
        )
    placed = [
        PlacedNode(
            node=n,
            key=keys[n.id],
            x=lefts[column_of[n.id]],
            y=y[n.id],
            width=widths[column_of[n.id]],
            label=_short(n.label),
        )
        for n in nodes
    ]
    titles = [(lefts[c], COLUMN_TITLES[c]) for c in used]
    return Layout(placed, width, height, titles, junctions)


def _closure(start: str, step: dict[str, list[str]]) -> set[str]:
    seen, frontier = set(), [start]
    while frontier:
        for nxt in step[frontier.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)
    return seen


def _curve(x1: float, y1: float, x2: float, y2: float) -> str:
    bend = max((x2 - x1) * 0.5, 12)
    return (
        f"M{x1:.1f},{y1:.1f} C{x1 + bend:.1f},{y1:.1f} {x2 - bend:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
    )


def lineage_svg(graph: LineageGraph) -> tuple[str, str]:
    """The lineage graph as inline SVG, and the CSS rules that trace a hovered node's lineage.

    Returns:
        ``(svg markup, css rules)``; empty strings when the graph has no drawable node.
    """
    drawing = layout(graph)
    placed = drawing.nodes
    if not placed:
        return "", ""
    by_id = {p.node.id: p for p in placed}
    edges = [(a, b) for a, b in graph.edges if a in by_id and b in by_id]
    preds: dict[str, list[str]] = defaultdict(list)
    succs: dict[str, list[str]] = defaultdict(list)
    for a, b in edges:
        succs[a].append(b)
        preds[b].append(a)
    # For every node, the nodes on its lineage (upstream and downstream) get its key as a class.
    traced: dict[str, set[str]] = defaultdict(set)
    for p in placed:
        related = _closure(p.node.id, preds) | _closure(p.node.id, succs) | {p.node.id}
        for other in related:
            traced[other].add(p.key)

    def ordered(keys: set[str]) -> str:
        return " ".join(sorted(keys, key=lambda k: int(k[1:])))

    def path(d: str, colour: str, keys: set[str], tip: str, arrow: bool = True) -> str:
        marker = ' marker-end="url(#arrow)"' if arrow else ""
        return (
            f'<path class="edge {ordered(keys)}" d="{d}" stroke="{colour}"{marker}>'
            f"<title>{escape(tip)}</title></path>"
        )

    out = [
        f'<svg class="lineage" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 '
        f'{drawing.width:.0f} {drawing.height:.0f}" width="{drawing.width:.0f}" '
        f'height="{drawing.height:.0f}" role="img" aria-labelledby="lineage-title">',
        '<title id="lineage-title">Lineage from landing files to the MCP tools</title>',
        '<defs><marker id="arrow" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0.6 L7.4,4 L0,7.4 z" '
        'fill="#94a3b8"/></marker></defs>',
    ]
    for left, title in drawing.titles:
        out.append(
            f'<text class="col-title" x="{left:.1f}" y="{HEADER - 14}">{escape(title)}</text>'
        )
    out.append('<g class="edges">')
    bundled = set()
    for j in drawing.junctions:
        bundled |= {(a, b) for a in j.inputs for b in j.outputs}
        tip = f"{len(j.inputs)} inputs, each feeding all {len(j.outputs)} outputs"
        for a in j.inputs:
            src = by_id[a]
            keys = set().union(*(traced[a] & traced[b] for b in j.outputs))
            d = _curve(src.x + src.width, src.y + NODE_HEIGHT / 2, j.x, j.y)
            out.append(path(d, LAYER_COLOURS[src.node.layer][0], keys, tip, arrow=False))
        for b in j.outputs:
            dst = by_id[b]
            keys = set().union(*(traced[a] & traced[b] for a in j.inputs))
            d = _curve(j.x, j.y, dst.x - 2, dst.y + NODE_HEIGHT / 2)
            colour = LAYER_COLOURS[by_id[j.inputs[0]].node.layer][0]
            out.append(path(d, colour, keys, tip))
    for a, b in edges:
        if (a, b) in bundled:
            continue
        src, dst = by_id[a], by_id[b]
        y1, y2 = src.y + NODE_HEIGHT / 2, dst.y + NODE_HEIGHT / 2
        if dst.x > src.x:
            d = _curve(src.x + src.width, y1, dst.x - 2, y2)
        else:  # same column (bronze -> rejects) or backwards: loop out on the right
            x1, x2 = src.x + src.width, dst.x + dst.width + 2
            reach = COLUMN_GAP * 0.6
            d = (
                f"M{x1:.1f},{y1:.1f} C{x1 + reach:.1f},{y1:.1f} {x2 + reach:.1f},{y2:.1f} "
                f"{x2:.1f},{y2:.1f}"
            )
        tip = f"{src.node.label} → {dst.node.label}"
        out.append(path(d, LAYER_COLOURS[src.node.layer][0], traced[a] & traced[b], tip))
    for j in drawing.junctions:
        out.append(f'<circle class="junction" cx="{j.x:.1f}" cy="{j.y:.1f}" r="4"/>')
    out.append("</g>")
    out.append('<g class="nodes">')
    for p in placed:
        accent, tint = LAYER_COLOURS[p.node.layer]
        tip = f"{LAYER_NAMES[p.node.layer]}: {p.node.ref}"
        out.append(
            f'<a class="node {ordered(traced[p.node.id])}" id="g-{p.key}" '
            f'href="#{escape(p.node.anchor)}"><title>{escape(tip)}</title>'
            f'<rect x="{p.x:.1f}" y="{p.y:.1f}" width="{p.width:.1f}" height="{NODE_HEIGHT}" '
            f'rx="7" fill="{tint}" stroke="{accent}"/>'
            f'<rect x="{p.x:.1f}" y="{p.y:.1f}" width="5" height="{NODE_HEIGHT}" rx="2.5" '
            f'fill="{accent}"/>'
            f'<text class="label" x="{p.x + 13:.1f}" y="{p.y + 16:.1f}">{escape(p.label)}</text>'
            f'<text class="detail" x="{p.x + 13:.1f}" y="{p.y + 30:.1f}">'
            f"{escape(p.node.detail)}</text></a>"
        )
    out.append("</g></svg>")
    css = [
        ".lineage:has(.node:hover) .edge{stroke-opacity:.07}",
        ".lineage:has(.node:hover) .node{opacity:.3}",
        ".lineage:has(.node:hover) .junction{opacity:.3}",
    ]
    css += [
        f".lineage:has(#g-{p.key}:hover) .{p.key}{{stroke-opacity:.95;opacity:1}}" for p in placed
    ]
    return "\n".join(out), "\n".join(css)


def runs_svg(runs: tuple[QualityRun, ...], *, limit: int = 30) -> str:
    """The last ``limit`` validations as a row of coloured squares, newest last."""
    shown = runs[-limit:]
    size, gap = 12, 3
    width = len(shown) * (size + gap) - gap
    failed = sum(not r.success for r in shown)
    parts = [
        f'<svg class="runs" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{size}" '
        f'viewBox="0 0 {width} {size}" role="img" aria-label="{len(shown)} runs, {failed} failed">'
    ]
    for i, run in enumerate(shown):
        if not run.success:
            state, colour = "fail", "#dc2626"
        elif run.failed_warnings:
            state, colour = "pass with warnings", "#d97706"
        else:
            state, colour = "pass", "#16a34a"
        when = run.evaluated_at.strftime("%Y-%m-%d %H:%M UTC") if run.evaluated_at else "?"
        version = f"v{run.delta_version}" if run.delta_version is not None else "v?"
        tip = (
            f"{version} · {when} · {state} ({run.failed_errors} errors, "
            f"{run.failed_warnings} warnings of {run.expectations})"
        )
        parts.append(
            f'<rect x="{i * (size + gap)}" y="0" width="{size}" height="{size}" rx="2.5" '
            f'fill="{colour}"><title>{escape(tip)}</title></rect>'
        )
    parts.append("</svg>")
    return "".join(parts)
