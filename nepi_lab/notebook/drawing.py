"""Drawing the experiment graph with matplotlib: shared by :func:`draw` and the live view.

What a drawing shows
    Each resource is a dot filled with the colour of its *outcome*
    (:data:`~nepi_lab.notebook.colors.STATE_COLORS`): its state, or once released
    the state it was released from, so that what finished, stopped or failed stays
    visible after the cleanup.  A released resource gets a grey ring (the RELEASED
    colour) around that fill: "released" is a secondary mark, never a colour that
    hides the outcome.  Labels are the resources' names (else ``"<guid> <Type>"``).
    Connections are grey lines; a condition is a dashed orange arrow **from the
    resource awaited (A) to the one that waits (B)**, labelled with what B does:
    "START after FINISHED +2 s" on A → B means "B starts 2 s after A finished".  The
    caption says it in words, with the first condition of the drawing.
Readability
    The layout is stretched to the canvas (see :mod:`nepi_lab.notebook._canvas`);
    dots get smaller as neighbours get closer; each label goes where it keeps off
    the dots, the arrows and the other labels, or is left out (the caption counts
    them).  The legend lists only the outcomes present, the released mark when a
    resource is released, and the kinds of edges present.
Many resources
    Beyond :data:`GROUP_LIMIT` resources a dot per resource says little: the drawing
    shows one card per resource type instead, with its count, a bar and a count per
    outcome, and edges counting the connections and conditions between types.

No ipywidgets here: a script can draw without them.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections import Counter
from typing import TYPE_CHECKING, Any

from ..core.errors import UnknownGuidError
from ..core.states import ResourceState
from ._canvas import (
    FONT_SIZE,
    GAP,
    OUTLINE,
    RELEASED_RING,
    Canvas,
    Placer,
    add_legend,
    around,
    bezier_points,
    legend_entries,
    legend_rows,
    nearest_distances,
    polyline_segments,
    row_height,
)
from .colors import CONDITION_COLOR, CONNECTION_COLOR, STATE_COLORS, hex_to_rgba, text_color
from .layout import RingLayout, StableLayout

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from ..core.controller import ExperimentController

S = ResourceState

#: Beyond this many resources, drawings group them by type (one card per type).
GROUP_LIMIT = 100
#: Kept for scripts that read it: labels are now placed where they fit, up to GROUP_LIMIT resources.
LABEL_LIMIT = GROUP_LIMIT
#: Resources whose colours the live view's caption carries as data attributes (for tests, scripts).
CAPTION_DATA_LIMIT = 300
RGBA = {state: hex_to_rgba(color) for state, color in STATE_COLORS.items()}
RING_RGBA = hex_to_rgba(RELEASED_RING)
OUTLINE_RGBA = hex_to_rgba(OUTLINE)
#: Curvature of condition arrows (matplotlib's ``arc3`` radius).
ARC = 0.25
#: Radius of a dot, in pixels: between these, following the distance to the nearest neighbour.
MIN_RADIUS, MAX_RADIUS = 4.0, 14.0

_VERBS = {"START": "starts", "STOP": "stops", "DEPLOY": "deploys"}

#: What :meth:`Drawing.refresh` found.
SAME, CHANGED, REDRAW = "same", "changed", "redraw"


def arrow_caption(action: str, state: str, delay: float | None, label: str) -> str:
    """The sentence that explains the arrows, with one condition as the example."""
    verb = _VERBS.get(action, action.lower())
    when = f"{_seconds(delay)} after A reached {state}" if delay else f"once A reached {state}"
    return f"arrow A \u2192 B: B waits for A; \u201c{label}\u201d means B {verb} {when}"


def _seconds(delay: float) -> str:
    from ..core.times import format_delay

    return format_delay(delay)


def edge_signature(graph: Any) -> frozenset[tuple[Any, ...]]:
    return frozenset((u, v, d.get("kind"), d.get("label")) for u, v, d in graph.edges(data=True))


def structure_signature(graph: Any) -> tuple[Any, ...]:
    """What a drawing depends on besides states: resources, their labels and types, edges."""
    nodes = tuple((g, d.get("label"), d.get("type")) for g, d in graph.nodes(data=True))
    return nodes, edge_signature(graph)


def drawing_signature(graph: Any, group: bool | None) -> tuple[Any, ...]:
    """The signature of the drawing :func:`draw_graph` would make of ``graph``."""
    grouped = group if group is not None else graph.number_of_nodes() > GROUP_LIMIT
    signature = structure_signature(graph)
    return ("grouped", signature) if grouped and graph.number_of_nodes() else signature


def _outcome(data: dict[str, Any]) -> tuple[ResourceState, ResourceState, bool]:
    state = data["state"]
    outcome = data.get("outcome", state)
    return state, outcome, bool(data.get("released", state == S.RELEASED))


# == the drawing and its updates =======================================================


class Drawing:
    """What one drawing left on the axes, and how to bring its colours up to date.

    ``order`` lists the resources; ``states``, ``outcomes`` and ``released`` say how
    each is shown.  ``overlay`` holds the artists an update redraws (the dots ...);
    the rest, the legend included, is drawn once per structure, and again when the
    legend changed (``background_stale``: a new outcome appeared, a few times a run).
    """

    grouped = False

    def __init__(self, canvas: Canvas | None, order: list[int], states: list[ResourceState],
                 outcomes: list[ResourceState], released: list[bool], signature: Any,
                 legend_extras: dict[str, Any] | None = None) -> None:
        import numpy as np

        self.canvas = canvas
        self.order = order
        self.index = {guid: i for i, guid in enumerate(order)}
        self.states = states
        self.outcomes = outcomes
        self.released = released
        self.signature = signature
        self.nodes: Any = None  # the PathCollection of dots, when there is one
        self.rgba = np.array([RGBA[o] for o in outcomes]).reshape(-1, 4)
        self.overlay: list[Any] = []
        self.legend: Any = None
        self.legend_rows = 0
        self.legend_bottom = 0.0
        self.legend_extras = legend_extras or {}
        self.legend_key: Any = None
        self.background_stale = False  #: the legend changed: the background must be drawn again
        self.placed = 0  #: labels drawn
        self.left_out = 0  #: labels left out for lack of room

    # -- reading the controller ---------------------------------------------------------

    def refresh(self, ec: ExperimentController) -> str:
        """Read every resource's state; recolour what changed.  Returns :data:`SAME`,
        :data:`CHANGED`, or :data:`REDRAW` (a resource is gone, or the legend needs
        more room: draw again)."""
        states, outcomes, released = self.states, self.outcomes, self.released
        changed: list[int] = []
        for i, guid in enumerate(self.order):
            try:
                state = ec.state(guid)
            except UnknownGuidError:  # removed (hardRelease)
                return REDRAW
            if state is not states[i]:
                states[i] = state
                if state is S.RELEASED:
                    try:
                        outcomes[i] = ec.get_resource(guid).outcome
                    except UnknownGuidError:
                        return REDRAW
                    released[i] = True
                else:
                    outcomes[i] = state
                    released[i] = False
                changed.append(i)
        if not changed:
            return SAME
        if not self.apply(changed):
            return REDRAW
        return CHANGED

    def apply(self, changed: list[int]) -> bool:
        """Show the new ``outcomes``/``released`` of the resources at ``changed``; False
        when that needs a new drawing."""
        return self.update_legend()

    # -- the legend -----------------------------------------------------------------------

    def update_legend(self) -> bool:
        """Rebuild the legend if the outcomes present changed; False if it no longer fits."""
        canvas = self.canvas
        if canvas is None or self.legend_rows == 0:
            return True
        key = (frozenset(self.outcomes), any(self.released))
        if key == self.legend_key:
            return True
        entries = legend_entries(key[0], key[1], **self.legend_extras)
        rows = legend_rows(canvas, entries)
        if rows > self.legend_rows:
            return False
        self.legend = add_legend(canvas, entries, rows, self.legend_bottom)
        self.legend_key = key
        self.background_stale = True
        return True

    def place_legend(self, entries: list[tuple[Any, str]], rows: int, bottom: float) -> None:
        self.legend_rows = rows
        self.legend_bottom = bottom
        self.legend_key = (frozenset(self.outcomes), any(self.released))
        if self.canvas is not None and entries:  # as few rows as it needs now, in the room kept
            self.legend = add_legend(self.canvas, entries, legend_rows(self.canvas, entries), bottom)


class DotDrawing(Drawing):
    """A drawing with one dot per resource, recoloured in place."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        import numpy as np

        super().__init__(*args, **kwargs)
        self.ringed = list(self.released)  # which dots wear the released ring now
        self.edge_rgba = np.array([RING_RGBA if r else OUTLINE_RGBA for r in self.ringed]).reshape(-1, 4)
        self.ring_width = 2.0
        self.linewidths = np.array([self.ring_width if r else 0.8 for r in self.ringed], dtype=float)

    def apply(self, changed: list[int]) -> bool:
        rgba, outcomes, released, ringed = self.rgba, self.outcomes, self.released, self.ringed
        rings = False
        for i in changed:
            rgba[i] = RGBA[outcomes[i]]
            if released[i] is not ringed[i]:
                ringed[i] = released[i]
                self.edge_rgba[i] = RING_RGBA if released[i] else OUTLINE_RGBA
                self.linewidths[i] = self.ring_width if released[i] else 0.8
                rings = True
        nodes = self.nodes
        if nodes is not None:
            nodes.set_facecolor(rgba)
            if rings:
                nodes.set_edgecolor(self.edge_rgba)
                nodes.set_linewidths(self.linewidths)
        return self.update_legend()


# == drawing ==========================================================================


def draw_graph(ax: Axes, graph: Any, layout: StableLayout | dict[Any, tuple[float, float]] | None = None,
               labels: bool | None = None, legend: bool = True, *, group: bool | None = None,
               type_layout: RingLayout | None = None, title: str | None = None,
               live: bool = False) -> Drawing:
    """Draw ``graph`` (from ``ec.graph()``) on ``ax``; see the module docstring.

    ``layout`` is a :class:`StableLayout` (or fixed positions) for the resources,
    ``type_layout`` a :class:`RingLayout` for the types when the drawing is grouped
    (``group=None``: beyond :data:`GROUP_LIMIT` resources).  ``live``: keep room for
    the states still to come (a live view, which recolours the drawing in place).
    """
    ax.clear()
    n = graph.number_of_nodes()
    grouped = group if group is not None else n > GROUP_LIMIT
    if grouped and n:
        return _draw_grouped(ax, graph, type_layout or RingLayout(), legend, title, live)
    positions = layout if isinstance(layout, dict) else (layout or StableLayout()).update(graph)
    return _draw_dots(ax, graph, positions, labels, legend, title, live)


#: States a live view keeps room for from the start (in its legend, in its cards), so that
#: they can appear as a run goes on without drawing everything again.
LIVE_ROOM = frozenset(S) - {S.RESERVED, S.RELEASED}


def _strip(canvas: Canvas, entries: list[tuple[Any, str]], caption: bool, outcomes: Any = (),
           extras: dict[str, Any] | None = None, live: bool = False) -> tuple[int, float, float]:
    """Rows of the legend (live: with room for every state and the released mark), the
    caption's height, the strip's height (pixels)."""
    rows = legend_rows(canvas, entries) if entries else 0
    if entries and live:
        roomy = legend_entries(set(outcomes) | LIVE_ROOM, True, **(extras or {}))
        rows = max(rows, legend_rows(canvas, roomy))
    caption_h = canvas.text_size("Ag")[1] + 2 * GAP if caption else 0.0
    return rows, caption_h, rows * row_height(canvas) + caption_h + (GAP if rows or caption else 0.0)


def _title(canvas: Canvas, title: str | None) -> float:
    if not title:
        return 0.0
    height = canvas.text_size(title, FONT_SIZE + 1)[1] + 2 * GAP
    x0, _, x1, y1 = canvas.box
    fx, fy = canvas.axes_fraction((x0 + x1) / 2, y1 - GAP)
    canvas.ax.text(fx, fy, title, transform=canvas.ax.transAxes, ha="center", va="top",
                   fontsize=FONT_SIZE + 1, parse_math=False)
    return height


def _caption(canvas: Canvas, text: str) -> Any:
    """The caption along the bottom edge, its font made smaller if it would not fit."""
    x0, y0, x1, _ = canvas.box
    size = FONT_SIZE - 0.5
    width = canvas.text_size(text, size)[0]
    if width > x1 - x0 - 8:
        size = max(6.0, size * (x1 - x0 - 8) / width)
    fx, fy = canvas.axes_fraction((x0 + x1) / 2, y0 + GAP)
    return canvas.ax.text(fx, fy, text, transform=canvas.ax.transAxes, ha="center", va="bottom",
                          fontsize=size, color="#424242", parse_math=False)


def _draw_dots(ax: Axes, graph: Any, positions: dict[Any, tuple[float, float]], labels: bool | None,
               legend: bool, title: str | None, live: bool = False) -> DotDrawing:
    import numpy as np
    from matplotlib.collections import LineCollection
    from matplotlib.patches import FancyArrowPatch

    order = list(graph.nodes)
    n = len(order)
    shown = [_outcome(graph.nodes[g]) for g in order]
    states = [s for s, _, _ in shown]
    outcomes = [o for _, o, _ in shown]
    released = [r for _, _, r in shown]
    connections = [(u, v) for u, v, d in graph.edges(data=True) if d.get("kind") == "connection"]
    conditions: dict[tuple[Any, Any], list[dict[str, Any]]] = {}
    for u, v, d in graph.edges(data=True):
        if d.get("kind") == "condition" and u != v:
            conditions.setdefault((u, v), []).append(d)
    extras = {"connections": bool(connections), "conditions": bool(conditions)}

    # provisional canvas, to measure the strip at the bottom
    canvas = Canvas(ax)
    entries = legend_entries(set(outcomes), any(released), **extras) if legend else []
    caption = bool(conditions) or n > 12
    rows, caption_h, strip = _strip(canvas, entries, caption, outcomes, extras, live)
    top = _title(canvas, title)
    canvas = Canvas(ax, bottom=strip, top=top)
    drawing = DotDrawing(canvas, order, states, outcomes, released, drawing_signature(graph, False), extras)
    if legend:
        drawing.place_legend(entries, rows, caption_h)
    if not n:
        ax.text(0.5, 0.5, "no resources yet", ha="center", va="center", transform=ax.transAxes,
                color="#757575", fontsize=FONT_SIZE + 1)
        return drawing

    # beyond GROUP_LIMIT dots, labels would cover the picture: only when asked for
    want_labels = labels is True or (labels is None and n <= GROUP_LIMIT)
    texts = [str(graph.nodes[g].get("label", g)) for g in order]
    sizes = [canvas.text_size(t) for t in texts] if want_labels else [(0.0, 0.0)] * n
    label_h = max(h for _, h in sizes)
    widest = max(w for w, _ in sizes)
    xs = np.array([positions[g][0] for g in order], dtype=float)
    ys = np.array([positions[g][1] for g in order], dtype=float)
    radius = MAX_RADIUS
    for _ in range(2):  # the pads depend on the dots' size, which depends on the fitting
        pad_x = radius + (min(widest / 2, 90.0) if want_labels else 0.0) + GAP
        pad_y = radius + (label_h + 2 * GAP if want_labels else 0.0) + GAP
        px, py = canvas.fit(xs, ys, pad_x, pad_y)
        nearest = nearest_distances(px, py)
        closest = float(np.min(nearest)) if n > 1 else math.inf
        # beyond GROUP_LIMIT (dots asked for) smaller dots: a thousand read as a texture
        radius = max(MIN_RADIUS if n <= GROUP_LIMIT else 2.5, min(MAX_RADIUS, 0.2 * closest))
    diameter_pt = canvas.points(2 * radius)
    drawing.ring_width = max(1.6, min(3.2, 0.2 * diameter_pt))
    drawing.linewidths[:] = [drawing.ring_width if r else 0.8 for r in released]
    placer = Placer(canvas)
    where = {g: i for i, g in enumerate(order)}

    if connections:
        segments = [(positions[u], positions[v]) for u, v in connections]
        ax.add_collection(LineCollection(segments, colors=CONNECTION_COLOR, linewidths=1.3, zorder=1))
        placer.lines.add([[px[where[u]], py[where[u]], px[where[v]], py[where[v]]] for u, v in connections])
    arcs = []
    for (u, v), items in conditions.items():
        i, j = where[u], where[v]
        ax.add_patch(FancyArrowPatch(
            positions[u], positions[v], arrowstyle="-|>", mutation_scale=12,
            connectionstyle=f"arc3,rad={ARC}", linestyle="--", linewidth=1.4, color=CONDITION_COLOR,
            shrinkA=canvas.points(radius) + 1,
            shrinkB=canvas.points(radius) + 2, zorder=2))
        points = bezier_points((px[i], py[i]), (px[j], py[j]), ARC)
        placer.arrows.add(polyline_segments(points))
        arcs.append((items, points))
    drawing.nodes = ax.scatter(xs, ys, s=diameter_pt**2, c=drawing.rgba, edgecolors=drawing.edge_rgba,
                               linewidths=drawing.linewidths, zorder=3)
    drawing.overlay.insert(0, drawing.nodes)
    clear = radius + canvas.pixels(drawing.ring_width) / 2 + 1  # the ring is drawn half outside the dot
    placer.block_circles(px, py, clear)

    def put(text: str, box: tuple[float, float, float, float], backed: bool, color: str = "#212121") -> None:
        x, y = canvas.to_data((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
        style = {"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.85}
        ax.text(float(x), float(y), text, ha="center", va="center", fontsize=FONT_SIZE, color=color,
                zorder=4, parse_math=False, bbox=style if backed else None)

    def node_label(i: int) -> None:
        g = order[i]
        neighbours = [where[m] for m in graph.predecessors(g)] + [where[m] for m in graph.successors(g)]
        away = None
        if neighbours:
            dx = px[i] - float(np.mean(px[neighbours]))
            dy = py[i] - float(np.mean(py[neighbours]))
            length = math.hypot(dx, dy)
            if length > 1e-6:
                away = (dx / length, dy / length)
        w, h = sizes[i]
        found = placer.place(w, h, around(px[i], py[i], clear, w, h, away))
        if found is None:
            left_out["name" if graph.nodes[order[i]].get("name") else "label"] += 1
        else:
            put(texts[i], *found)

    def condition_label(items: list[dict[str, Any]], points: Any) -> None:
        text = "\n".join(d.get("label", "") for d in items)
        w, h = canvas.text_size(text)
        centres = []
        chord = points[-1] - points[0]
        length = float(np.hypot(*chord)) or 1.0
        normal = np.array([chord[1], -chord[0]]) / length  # the side the arc bulges to
        for extra in (0.0, h, 2 * h):
            for k in (5, 4, 6, 3, 7, 2, 8):
                point = points[min(k, len(points) - 1)]
                for side in (1.0, -1.0):
                    nx_, ny_ = normal * side
                    reach = abs(nx_) * w / 2 + abs(ny_) * h / 2 + GAP + 1 + extra
                    centres.append((point[0] + nx_ * reach, point[1] + ny_ * reach))
        found = placer.place(w, h, centres)
        if found is None:
            left_out["condition label"] += 1
        else:
            put(text, *found, color="#bf360c")

    left_out: Counter[str] = Counter()
    degree = [graph.degree(g) for g in order]
    ranked = sorted(range(n), key=lambda i: (-degree[i], i))
    if want_labels:
        hubs = [i for i in ranked if degree[i] > 2] if n > 30 else ranked
        for i in hubs:
            node_label(i)
    for items, points in arcs:
        condition_label(items, points)
    if want_labels and n > 30:
        for i in ranked:
            if degree[i] <= 2:
                node_label(i)
    drawing.placed, drawing.left_out = placer.placed, placer.left_out
    if caption:
        notes = []
        if conditions:
            first = next(iter(conditions.values()))[0]
            notes.append(arrow_caption(first.get("action", ""), first.get("state", ""), first.get("delay"),
                                       first.get("label", "")))
        if left_out:
            notes.append(" and ".join(f"{n} {what}{'s' if n != 1 else ''}" for what, n in left_out.items())
                         + " left out for room")
        if notes:
            _caption(canvas, "  \u00b7  ".join(notes))
    return drawing


# == grouped by type ==================================================================


class GroupDrawing(Drawing):
    """One card per resource type with a bar and a count per outcome; updates redraw the cards' insides."""

    grouped = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.types: dict[str, list[int]] = {}  # type -> indices into order
        self.cards: dict[str, tuple[float, float, float, float]] = {}  # type -> box, pixels
        self.insides: list[Any] = []

    def apply(self, changed: list[int]) -> bool:
        if not self.draw_insides():
            return False
        return self.update_legend()

    def draw_insides(self) -> bool:
        """(Re)draw each card's bar and counts; False if they no longer fit their card."""
        from matplotlib.patches import Rectangle

        canvas = self.canvas
        assert canvas is not None
        ax = canvas.ax
        for artist in self.insides:
            if artist in self.overlay:
                self.overlay.remove(artist)
            artist.remove()
        self.insides = []
        em = canvas.pixels(FONT_SIZE)
        for rtype, indices in self.types.items():
            x0, y0, x1, y1 = self.cards[rtype]
            counts = Counter(self.outcomes[i] for i in indices)
            released = sum(1 for i in indices if self.released[i])
            total = len(indices)
            # the bar: one segment per outcome, in lifecycle order
            bar_x0, bar_x1 = x0 + 6, x1 - 6
            bar_y1 = y1 - 6 - canvas.text_size("Ag")[1] - 4
            bar_y0 = bar_y1 - 0.9 * em
            left = bar_x0
            for state in S:
                count = counts.get(state, 0)
                if not count:
                    continue
                width = (bar_x1 - bar_x0) * count / total
                (dx0, dy0), (dx1, dy1) = (canvas.to_data(left, bar_y0), canvas.to_data(left + width, bar_y1))
                rect = Rectangle((float(dx0), float(dy0)), float(dx1 - dx0), float(dy1 - dy0),
                                 facecolor=STATE_COLORS[state], edgecolor="white", linewidth=0.5, zorder=4)
                ax.add_patch(rect)
                self.insides.append(rect)
                left += width
            # the counts, as badges
            badges = [(f"{s.name} {counts[s]}", STATE_COLORS[s], text_color(STATE_COLORS[s]), "none")
                      for s in S if counts.get(s)]
            if released:
                badges.append((f"released {released}", "white", "#212121", RELEASED_RING))
            x, y = bar_x0, bar_y0 - 4
            line_h = canvas.text_size("Ag")[1] + 4
            for text, face, ink, edge in badges:
                w, _ = canvas.text_size(text)
                if x + w + 6 > x1 - 4 and x > bar_x0:
                    x, y = bar_x0, y - line_h
                if y - line_h < y0:
                    return False  # more badges than the card holds: draw again
                cx, cy = canvas.to_data(x + 2, y - line_h / 2)
                badge = ax.text(float(cx), float(cy), text, ha="left", va="center", fontsize=FONT_SIZE - 0.5,
                                color=ink, zorder=5, parse_math=False,
                                bbox={"boxstyle": "round,pad=0.2", "facecolor": face, "edgecolor": edge,
                                      "linewidth": 1.6 if edge != "none" else 0})
                self.insides.append(badge)
                x += w + 10
        self.overlay.extend(self.insides)
        return True


def _badge_rows(canvas: Canvas, texts: list[str], width: float) -> int:
    """Rows the badges take in a card ``width`` pixels wide (laid as in :meth:`GroupDrawing.draw_insides`)."""
    left, right = 6.0, width - 4.0
    x, rows = left, 1
    for text in texts:
        w = canvas.text_size(text)[0]
        if x + w + 6 > right and x > left:
            x, rows = left, rows + 1
        x += w + 10
    return rows


def _short_types(types: list[str]) -> dict[str, str]:
    """``Application`` for ``linux::Application``, unless two platforms share the name."""
    short = {t: t.rsplit("::", 1)[-1] for t in types}
    clashes = Counter(short.values())
    return {t: (s if clashes[s] == 1 else t) for t, s in short.items()}


def type_graph(graph: Any) -> Any:
    """The resources' graph folded by type: a node per type (``count``), edges counting
    the connections (undirected) and conditions (directed) between types."""
    import networkx as nx

    folded = nx.MultiDiGraph()
    counts: Counter[str] = Counter(d["type"] for _, d in graph.nodes(data=True))
    for _, d in graph.nodes(data=True):
        if d["type"] not in folded:
            folded.add_node(d["type"], count=counts[d["type"]])
    pairs: Counter[tuple[str, str, str]] = Counter()
    for u, v, d in graph.edges(data=True):
        a, b = graph.nodes[u]["type"], graph.nodes[v]["type"]
        kind = d.get("kind", "connection")
        if kind == "connection" and b < a:
            a, b = b, a
        pairs[(a, b, kind)] += 1
    for (a, b, kind), count in sorted(pairs.items()):
        folded.add_edge(a, b, kind=kind, count=count)
    return folded


def _draw_grouped(ax: Axes, graph: Any, layout: RingLayout, legend: bool,
                  title: str | None, live: bool = False) -> GroupDrawing:
    import numpy as np
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    order = list(graph.nodes)
    shown = [_outcome(graph.nodes[g]) for g in order]
    outcomes = [o for _, o, _ in shown]
    released = [r for _, _, r in shown]
    folded = type_graph(graph)
    has = {d["kind"] for a, b, d in folded.edges(data=True) if a != b}
    extras = {"connections": "connection" in has, "conditions": "condition" in has}
    canvas = Canvas(ax)
    entries = legend_entries(set(outcomes), any(released), **extras) if legend else []
    rows, caption_h, strip = _strip(canvas, entries, True, outcomes, extras, live)
    top = _title(canvas, title)
    canvas = Canvas(ax, bottom=strip, top=top)
    drawing = GroupDrawing(canvas, order, [s for s, _, _ in shown], outcomes, released,
                           drawing_signature(graph, True), extras)
    if legend:
        drawing.place_legend(entries, rows, caption_h)
    types = list(folded.nodes)
    for i, g in enumerate(order):
        drawing.types.setdefault(graph.nodes[g]["type"], []).append(i)
    names = _short_types(types)
    titles = {t: f"{names[t]} \u00d7{folded.nodes[t]['count']:,}" for t in types}
    em = canvas.pixels(FONT_SIZE)
    line_h = canvas.text_size("Ag")[1] + 4
    # a card holds its title, the bar and at least two rows of badges: those of now, and
    # in a live view those of any state to come (the card is widened to keep it to three)
    widths, badge_rows = {}, 2
    for t in types:
        indices = drawing.types[t]
        now = Counter(outcomes[i] for i in indices)
        texts = [f"{s.name} {now[s]}" for s in S if now.get(s)]
        if any(released[i] for i in indices):
            texts.append(f"released {len(indices)}")
        width = max(canvas.text_size(titles[t], FONT_SIZE + 0.5)[0] + 16, 200.0)
        if live:
            every = [f"{s.name} {len(indices)}" for s in S if s in LIVE_ROOM] + [f"released {len(indices)}"]
            while width < 340 and _badge_rows(canvas, every, width) > 3:
                width += 20
            badge_rows = max(badge_rows, _badge_rows(canvas, every, width))
        widths[t] = width
        badge_rows = max(badge_rows, _badge_rows(canvas, texts, width))
    height = 6 + canvas.text_size("Ag")[1] + 4 + 0.9 * em + 4 + badge_rows * line_h + 6
    positions = layout.update(folded)
    xs = np.array([positions[t][0] for t in types], dtype=float)
    ys = np.array([positions[t][1] for t in types], dtype=float)
    px, py = canvas.fit(xs, ys, max(widths.values()) / 2 + GAP, height / 2 + GAP)
    placer = Placer(canvas)
    where = {t: i for i, t in enumerate(types)}
    for t in types:
        i = where[t]
        box = (px[i] - widths[t] / 2, py[i] - height / 2, px[i] + widths[t] / 2, py[i] + height / 2)
        drawing.cards[t] = box
        placer.block_box(box)
        (dx0, dy0), (dx1, dy1) = canvas.to_data(box[0], box[1]), canvas.to_data(box[2], box[3])
        ax.add_patch(FancyBboxPatch((float(dx0), float(dy0)), float(dx1 - dx0), float(dy1 - dy0),
                                    boxstyle="round,pad=0,rounding_size=0", facecolor="white",
                                    edgecolor=OUTLINE, linewidth=1.0, zorder=3))
        tx, ty = canvas.to_data(box[0] + 6, box[3] - 6)
        ax.text(float(tx), float(ty), titles[t], ha="left", va="top", fontsize=FONT_SIZE + 0.5,
                fontweight="bold", zorder=4, parse_math=False)
    for a, b, d in folded.edges(data=True):
        if a == b:
            continue
        i, j = where[a], where[b]
        kind, count = d["kind"], d["count"]
        if kind == "connection":
            ax.plot(list(canvas.to_data([px[i], px[j]], [py[i], py[j]])[0]),
                    list(canvas.to_data([px[i], px[j]], [py[i], py[j]])[1]),
                    color=CONNECTION_COLOR, linewidth=1.5, zorder=1)
            placer.lines.add([[px[i], py[i], px[j], py[j]]])
            text, color = f"{count:,} connection{'s' if count != 1 else ''}", "#616161"
            points = np.array([[px[i], py[i]], [px[j], py[j]]])
        else:
            ax.add_patch(FancyArrowPatch(positions[a], positions[b], arrowstyle="-|>", mutation_scale=12,
                                         connectionstyle=f"arc3,rad={ARC}", linestyle="--", linewidth=1.4,
                                         color=CONDITION_COLOR, zorder=2))
            points = bezier_points((px[i], py[i]), (px[j], py[j]), ARC)
            placer.arrows.add(polyline_segments(points))
            text, color = f"{count:,} condition{'s' if count != 1 else ''}", "#bf360c"
        w, h = canvas.text_size(text)
        mid = points[len(points) // 2] if len(points) > 2 else points.mean(axis=0)
        found = placer.place(w, h, [(mid[0], mid[1] + s * (h / 2 + GAP + 2)) for s in (1, -1)]
                             + [(mid[0] + s * (w / 2 + GAP + 2), mid[1]) for s in (1, -1)])
        if found is not None:
            box, backed = found
            x, y = canvas.to_data((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
            ax.text(float(x), float(y), text, ha="center", va="center", fontsize=FONT_SIZE, color=color,
                    zorder=4, parse_math=False,
                    bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none",
                          "alpha": 0.85} if backed else None)
    drawing.draw_insides()
    notes = [f"{len(order):,} resources grouped by type"]
    notes += [f"{d['count']:,} {d['kind']}{'s' if d['count'] != 1 else ''} among {names[a]}"
              for a, b, d in folded.edges(data=True) if a == b]
    if "condition" in has:
        notes.append("arrow A \u2192 B: resources of B wait for resources of A")
    _caption(canvas, "  \u00b7  ".join(notes))
    return drawing


# == the function =====================================================================


def draw(ec: ExperimentController, ax: Axes | None = None, *, labels: bool | None = None,
         layout: StableLayout | None = None, group: bool | None = None) -> Axes:
    """Draw the experiment graph once, as it is now; return the Axes.

    Resources are filled with their outcome colour (a released one keeps it, with
    a grey ring) and labelled with their names; see the module docstring for the
    arrows, and for the grouping by type beyond :data:`GROUP_LIMIT` resources.

    Parameters
    ----------
    ec : ExperimentController
    ax : matplotlib Axes, optional
        Where to draw (the whole Axes is used); default: a new 8 x 5 inch pyplot
        figure at 100 dpi (shown inline in a notebook).
    labels : bool, optional
        False: no labels.  By default every label that fits is drawn.
    layout : StableLayout, optional
        Reuse positions across calls (pass the same object each time).
    group : bool, optional
        One card per resource type (True), one dot per resource (False); default:
        grouped beyond :data:`GROUP_LIMIT` resources.

    Example
    -------
    >>> import os, shutil, tempfile
    >>> from nepi_lab import ExperimentController
    >>> from nepi_lab.notebook import draw
    >>> results = tempfile.mkdtemp()
    >>> with ExperimentController(local_dir=results) as ec:     # drawn before deploying
    ...     node = ec.register_resource("linux::Node", hostname="localhost")
    ...     ping = ec.register_resource("linux::Ping", connectedTo=node, target="127.0.0.1")
    ...     ax = draw(ec)
    >>> ax.figure.savefig(os.path.join(results, "experiment.png"))
    >>> shutil.rmtree(results)
    """
    if ax is None:
        import matplotlib.pyplot as plt

        figure = plt.figure(figsize=(8, 5), dpi=100)
        ax = figure.add_axes((0, 0, 1, 1))
    graph = ec.graph()
    title = f"{ec.exp_id}: {graph.number_of_nodes():,} resource{'s' if graph.number_of_nodes() != 1 else ''}"
    draw_graph(ax, graph, layout or StableLayout(), labels, group=group, title=title)
    return ax


def canvas_png(canvas: Any) -> bytes:
    """What an Agg canvas holds now, as PNG bytes.

    Written directly (RGB, no row filter, zlib level 1): a live view encodes an image
    at every update, and this is about twice as fast as Pillow's adaptive filtering
    for drawings like these, which are mostly flat colour, and no larger.
    """
    import numpy as np

    width, height = canvas.get_width_height(physical=True)
    rgba = np.frombuffer(canvas.buffer_rgba(), dtype=np.uint8).reshape(height, width, 4)
    rows = np.empty((height, 1 + 3 * width), dtype=np.uint8)
    rows[:, 0] = 0  # filter type None
    rows[:, 1:].reshape(height, width, 3)[...] = rgba[:, :, :3]  # the figure is opaque
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"".join((b"\x89PNG\r\n\x1a\n", _chunk(b"IHDR", header),
                     _chunk(b"IDAT", zlib.compress(rows.tobytes(), 1)), _chunk(b"IEND", b"")))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def render_png(figure: Any) -> bytes:
    """Draw ``figure`` (Agg canvas) and return it as PNG bytes."""
    figure.canvas.draw()
    return canvas_png(figure.canvas)
