"""Drawing the experiment graph with matplotlib: shared by :func:`draw` and the live view.

Resources are dots coloured by state (:data:`~nepi_lab.notebook.colors.STATE_COLORS`,
with a legend), connections grey lines, conditions dashed orange arrows from the
awaited resource to the one that waits, labelled with what they do ("START after
STARTED +200 ms").  Positions come from a
:class:`~nepi_lab.notebook.layout.StableLayout`.  No ipywidgets here: a script can
draw without them.
"""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING, Any

from ..core.states import ResourceState
from .colors import CONDITION_COLOR, CONNECTION_COLOR, STATE_COLORS, hex_to_rgba
from .layout import StableLayout

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.collections import PathCollection

    from ..core.controller import ExperimentController

S = ResourceState

#: Up to this many resources, each is labelled with its guid and type.
LABEL_LIMIT = 60
#: Up to this many conditions, each arrow is labelled.
CONDITION_LABEL_LIMIT = 30
#: Resources whose colours the caption's data attributes carry (for tests, scripts).
CAPTION_DATA_LIMIT = 300
RGBA = {state: hex_to_rgba(color) for state, color in STATE_COLORS.items()}
_EDGE = "#424242"


def node_size(n: int) -> float:
    """Marker area (points²) for ``n`` resources: big when few, small when many."""
    return max(12.0, min(400.0, 12000.0 / max(n, 1)))


def legend_handles() -> list[Any]:
    """Legend entries: one per state, then connection and condition."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker="o", linestyle="", markersize=8, markerfacecolor=color,
                      markeredgecolor=_EDGE, label=state.name) for state, color in STATE_COLORS.items()]
    handles.append(Line2D([], [], color=CONNECTION_COLOR, linewidth=1.5, label="connection"))
    handles.append(Line2D([], [], color=CONDITION_COLOR, linewidth=1.5, linestyle="--", label="condition →"))
    return handles


class Drawing:
    """What one drawing of the graph left on the axes: the node collection and its order."""

    def __init__(self, order: list[int], states: list[ResourceState], nodes: PathCollection | None,
                 rgba: Any, edges: frozenset[tuple[Any, ...]]) -> None:
        self.order = order
        self.index = {guid: i for i, guid in enumerate(order)}
        self.states = states
        self.nodes = nodes
        self.rgba = rgba
        self.edges = edges


def edge_signature(graph: Any) -> frozenset[tuple[Any, ...]]:
    return frozenset((u, v, d.get("kind"), d.get("label")) for u, v, d in graph.edges(data=True))


def draw_graph(ax: Axes, graph: Any, positions: dict[Any, tuple[float, float]],
                labels: bool | None, legend: bool = True) -> Drawing:
    """Draw ``graph`` (from ``ec.graph()``) on ``ax`` at ``positions``."""
    import numpy as np
    from matplotlib.collections import LineCollection
    from matplotlib.patches import FancyArrowPatch

    ax.set_axis_off()
    order = list(graph.nodes)
    n = len(order)
    if legend:
        ax.legend(handles=legend_handles(), loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8,
                  frameon=False, borderaxespad=0.2)
    if not n:
        ax.text(0.5, 0.5, "no resources yet", ha="center", va="center", transform=ax.transAxes,
                color="#757575")
        return Drawing([], [], None, np.zeros((0, 4)), edge_signature(graph))
    size = node_size(n)
    radius_points = math.sqrt(size) / 2
    xs = np.array([positions[g][0] for g in order])
    ys = np.array([positions[g][1] for g in order])

    connections = [(positions[u], positions[v]) for u, v, d in graph.edges(data=True)
                   if d.get("kind") == "connection"]
    if connections:
        ax.add_collection(LineCollection(connections, colors=CONNECTION_COLOR, linewidths=1.3, zorder=1))

    condition_labels: dict[tuple[Any, Any], list[str]] = {}
    for u, v, d in graph.edges(data=True):
        if d.get("kind") == "condition":
            condition_labels.setdefault((u, v), []).append(d.get("label", ""))
    for (u, v), texts in condition_labels.items():
        (x1, y1), (x2, y2) = positions[u], positions[v]
        ax.add_patch(FancyArrowPatch(
            (x1, y1), (x2, y2), arrowstyle="-|>", mutation_scale=11, connectionstyle="arc3,rad=0.25",
            linestyle="--", linewidth=1.3, color=CONDITION_COLOR, shrinkA=radius_points + 1,
            shrinkB=radius_points + 2, zorder=2))
        if len(condition_labels) <= CONDITION_LABEL_LIMIT:
            # the middle of the arc3 curve: mid-point + rad/2 * (dy, -dx)
            mx, my = (x1 + x2) / 2 + 0.125 * (y2 - y1), (y1 + y2) / 2 - 0.125 * (x2 - x1)
            ax.text(mx, my, "\n".join(texts), fontsize=7, color=CONDITION_COLOR, ha="center", va="center",
                    zorder=4, bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none",
                                    "alpha": 0.8})

    states = [graph.nodes[g]["state"] for g in order]
    rgba = np.array([RGBA[s] for s in states])
    nodes = ax.scatter(xs, ys, s=size, c=rgba, edgecolors=_EDGE, linewidths=0.8, zorder=3)

    if labels if labels is not None else n <= LABEL_LIMIT:
        for g, x, y in zip(order, xs, ys, strict=True):
            ax.annotate(graph.nodes[g].get("label", str(g)), (x, y), xytext=(0, -(radius_points + 2)),
                        textcoords="offset points", ha="center", va="top", fontsize=8, zorder=4)

    margin = 0.9  # room for labels; the data limits then grow to the axes' shape
    ax.update_datalim([(xs.min() - margin, ys.min() - margin), (xs.max() + margin, ys.max() + margin)])
    ax.set_aspect("equal", adjustable="datalim")
    ax.autoscale_view()
    return Drawing(order, states, nodes, rgba, edge_signature(graph))


def draw(ec: ExperimentController, ax: Axes | None = None, *, labels: bool | None = None,
         layout: StableLayout | None = None) -> Axes:
    """Draw the experiment graph once, as it is now; return the Axes.

    Parameters
    ----------
    ec : ExperimentController
    ax : matplotlib Axes, optional
        Where to draw; default: a new pyplot figure (shown inline in a notebook).
    labels : bool, optional
        Label each resource with its guid and type; default: when there are at most
        :data:`LABEL_LIMIT` resources.
    layout : StableLayout, optional
        Reuse positions across calls (pass the same object each time).

    Example
    -------
    >>> from nepi_lab.notebook import draw
    >>> ax = draw(ec)                                    # doctest: +SKIP
    >>> ax.figure.savefig("experiment.png")              # doctest: +SKIP
    """
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(8, 5), layout="constrained")
    graph = ec.graph()
    positions = (layout or StableLayout()).update(graph)
    draw_graph(ax, graph, positions, labels)
    ax.set_title(f"{ec.exp_id}: {graph.number_of_nodes()} resources", fontsize=10)
    return ax


def canvas_png(canvas: Any) -> bytes:
    """What an Agg canvas holds now, as PNG bytes (zlib level 1: fast, a bit larger)."""
    from PIL import Image

    width, height = canvas.get_width_height(physical=True)
    image = Image.frombuffer("RGBA", (width, height), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
    out = io.BytesIO()
    image.save(out, format="png", compress_level=1)
    return out.getvalue()


def render_png(figure: Any) -> bytes:
    """Draw ``figure`` (Agg canvas) and return it as PNG bytes."""
    figure.canvas.draw()
    return canvas_png(figure.canvas)
