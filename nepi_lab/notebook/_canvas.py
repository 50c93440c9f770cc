"""Pixel geometry shared by the drawings: a layout fitted to the canvas, labels placed.

Layout coordinates (from :class:`~nepi_lab.notebook.layout.StableLayout`) are
stretched to fill the axes, at most :data:`MAX_STRETCH` times more in one direction
than in the other, leaving a strip at the bottom for the legend and the caption.
Everything else happens in display pixels, where text sizes are known: node sizes
follow the distance between neighbours, and every label is put at the first of a
few places around its anchor that keeps it inside the canvas, off nodes, off
arrows and off the labels already placed (a greedy placement, most important
labels first; a label that finds no such place is left out and counted).
Connection lines are soft obstacles: a label avoids them when it can and gets a
white backing where it cannot.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.states import ResourceState
from .colors import CONDITION_COLOR, CONNECTION_COLOR, STATE_COLORS

if TYPE_CHECKING:
    from matplotlib.axes import Axes

S = ResourceState

#: How much more a layout may be stretched in one direction than in the other to fill the canvas.
MAX_STRETCH = 2.2
#: Font size of labels and legend, in points.
FONT_SIZE = 9.0
#: The mark of a released resource: a ring of the RELEASED colour around its outcome colour.
RELEASED_RING = STATE_COLORS[S.RELEASED]
#: Outline of a resource that is not released.
OUTLINE = "#424242"
#: Gap between a label and what it labels, in pixels.
GAP = 2.0


def renderer_of(figure: Any) -> Any | None:
    """The figure's renderer where it has one (Agg and the inline backend do), else None."""
    get = getattr(figure.canvas, "get_renderer", None)
    try:
        return get() if get is not None else None
    except Exception:  # a backend without a usable renderer: estimate sizes instead
        return None


class Canvas:
    """An Axes seen in display pixels: where the drawing goes, text sizes, the fitting.

    Parameters
    ----------
    ax : Axes
        Turned off (no frame, no ticks); its limits are set by :meth:`fit`.
    bottom : float
        Pixels kept free at the bottom (legend, caption).
    """

    def __init__(self, ax: Axes, bottom: float = 0.0, top: float = 0.0) -> None:
        self.ax = ax
        self.figure = ax.figure
        self.dpi = float(self.figure.dpi)
        x0, y0, width, height = ax.bbox.bounds
        self.box = (x0, y0, x0 + width, y0 + height)
        self.area = (x0 + 2.0, y0 + bottom, x0 + width - 2.0, y0 + height - top)
        self.renderer = renderer_of(self.figure)
        self._sizes: dict[tuple[str, float], tuple[float, float]] = {}
        self.scale = (1.0, 1.0)
        self.origin = (0.0, 0.0, 0.0, 0.0)  # data x, data y at pixel x, pixel y
        ax.set_axis_off()

    # -- units ------------------------------------------------------------------------

    def points(self, pixels: float) -> float:
        return pixels * 72.0 / self.dpi

    def pixels(self, points: float) -> float:
        return points * self.dpi / 72.0

    def text_size(self, text: str, size: float = FONT_SIZE) -> tuple[float, float]:
        """Width and height of ``text`` in pixels (measured when a renderer exists)."""
        key = (text, size)
        found = self._sizes.get(key)
        if found is not None:
            return found
        if self.renderer is not None:  # matplotlib's own layout of the text: exact
            from matplotlib.text import Text

            scratch = Text(0, 0, text, fontsize=size, parse_math=False)
            scratch.set_figure(self.figure)
            box = scratch.get_window_extent(self.renderer)
            found = (box.width, box.height)
        else:  # an estimate for DejaVu Sans
            lines = text.split("\n")
            em = self.pixels(size)
            found = (max(len(line) for line in lines) * 0.62 * em, len(lines) * 1.2 * em)
        self._sizes[key] = found
        return found

    # -- fitting ----------------------------------------------------------------------

    def fit(self, xs: np.ndarray, ys: np.ndarray, pad_x: float,
            pad_y: float) -> tuple[np.ndarray, np.ndarray]:
        """Set the limits so that points ``xs, ys`` fill the area less the pads; return them in pixels."""
        left, bottom, right, top = self.area
        avail_w = max(right - left - 2 * pad_x, 1.0)
        avail_h = max(top - bottom - 2 * pad_y, 1.0)
        span_x = float(xs.max() - xs.min()) if len(xs) else 0.0
        span_y = float(ys.max() - ys.min()) if len(ys) else 0.0
        sx = avail_w / span_x if span_x > 1e-12 else math.inf
        sy = avail_h / span_y if span_y > 1e-12 else math.inf
        if math.isinf(sx) and math.isinf(sy):
            sx = sy = 1.0
        elif math.isinf(sx):
            sx = sy
        elif math.isinf(sy):
            sy = sx
        low = min(sx, sy)
        sx, sy = min(sx, low * MAX_STRETCH), min(sy, low * MAX_STRETCH)
        cx = (float(xs.max()) + float(xs.min())) / 2 if len(xs) else 0.0
        cy = (float(ys.max()) + float(ys.min())) / 2 if len(ys) else 0.0
        px_c, py_c = (left + right) / 2, (bottom + top) / 2
        x0, y0, x1, y1 = self.box
        self.ax.set_xlim(cx - (px_c - x0) / sx, cx + (x1 - px_c) / sx)
        self.ax.set_ylim(cy - (py_c - y0) / sy, cy + (y1 - py_c) / sy)
        self.ax.set_autoscale_on(False)
        self.scale = (sx, sy)
        self.origin = (cx, cy, px_c, py_c)
        return self.to_pixels(xs, ys)

    def to_pixels(self, xs: Any, ys: Any) -> tuple[Any, Any]:
        cx, cy, px, py = self.origin
        sx, sy = self.scale
        return px + (np.asarray(xs, dtype=float) - cx) * sx, py + (np.asarray(ys, dtype=float) - cy) * sy

    def to_data(self, px: Any, py: Any) -> tuple[Any, Any]:
        cx, cy, x0, y0 = self.origin
        sx, sy = self.scale
        return cx + (np.asarray(px, dtype=float) - x0) / sx, cy + (np.asarray(py, dtype=float) - y0) / sy

    def axes_fraction(self, px: float, py: float) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box
        return (px - x0) / (x1 - x0), (py - y0) / (y1 - y0)


def nearest_distances(px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """For each point, the distance to the nearest other point (inf when alone), in blocks."""
    n = len(px)
    out = np.full(n, np.inf)
    if n < 2:
        return out
    points = np.stack([px, py], axis=1)
    block = 512
    for start in range(0, n, block):
        chunk = points[start:start + block]
        d = np.hypot(chunk[:, None, 0] - points[None, :, 0], chunk[:, None, 1] - points[None, :, 1])
        d[np.arange(len(chunk)), np.arange(start, start + len(chunk))] = np.inf
        out[start:start + block] = d.min(axis=1)
    return out


# == label placement ==================================================================


def _boxes_overlap(box: Sequence[float], boxes: np.ndarray) -> bool:
    if not len(boxes):
        return False
    return bool(np.any((boxes[:, 0] < box[2]) & (boxes[:, 2] > box[0])
                       & (boxes[:, 1] < box[3]) & (boxes[:, 3] > box[1])))


def _segments_crossing(box: Sequence[float], segments: np.ndarray) -> int:
    """How many segments (rows x1, y1, x2, y2) cross the box (slab clipping, vectorised)."""
    if not len(segments):
        return 0
    x1, y1, x2, y2 = segments.T
    dx, dy = x2 - x1, y2 - y1
    enter = np.zeros(len(segments))
    leave = np.ones(len(segments))
    with np.errstate(divide="ignore", invalid="ignore"):
        for start, delta, low, high in ((x1, dx, box[0], box[2]), (y1, dy, box[1], box[3])):
            flat = np.abs(delta) < 1e-12
            t1 = (low - start) / delta
            t2 = (high - start) / delta
            inside = (start >= low) & (start <= high)  # a segment parallel to the slab: in it or not
            near = np.where(flat, np.where(inside, -np.inf, np.inf), np.minimum(t1, t2))
            far = np.where(flat, np.where(inside, np.inf, -np.inf), np.maximum(t1, t2))
            enter = np.maximum(enter, near)
            leave = np.minimum(leave, far)
    return int(np.count_nonzero(enter <= leave))


class _Obstacles:
    """A growing list of rows, as a numpy array when asked."""

    def __init__(self) -> None:
        self.rows: list[Sequence[float]] = []
        self._array: np.ndarray | None = None

    def add(self, rows: Iterable[Sequence[float]]) -> None:
        self.rows.extend(rows)
        self._array = None

    @property
    def array(self) -> np.ndarray:
        if self._array is None:
            self._array = np.asarray(self.rows, dtype=float).reshape(-1, 4)
        return self._array


class Placer:
    """Greedy label placement in pixels (see the module docstring).

    ``boxes`` (nodes, labels) and ``arrows`` are hard obstacles, ``lines`` soft ones.
    """

    def __init__(self, canvas: Canvas) -> None:
        self.canvas = canvas
        self.boxes = _Obstacles()
        self.arrows = _Obstacles()
        self.lines = _Obstacles()
        self.placed = 0
        self.left_out = 0

    def block_circles(self, px: np.ndarray, py: np.ndarray, radius: np.ndarray | float) -> None:
        r = np.broadcast_to(np.asarray(radius, dtype=float), np.shape(px))
        self.boxes.add(np.stack([px - r, py - r, px + r, py + r], axis=1).tolist())

    def block_box(self, box: Sequence[float]) -> None:
        self.boxes.add([box])

    def place(self, width: float, height: float, centres: Iterable[tuple[float, float]],
              soft: bool = True) -> tuple[tuple[float, float, float, float], bool] | None:
        """The first box of size ``width x height`` centred on one of ``centres`` that is
        free; else, if ``soft``, the one crossing the fewest lines.  Returns the box and
        whether it crosses a line (then it wants a white backing), or None."""
        left, bottom, right, top = self.canvas.area
        boxes, arrows, lines = self.boxes.array, self.arrows.array, self.lines.array
        best: tuple[int, tuple[float, float, float, float]] | None = None
        for cx, cy in centres:
            box = (cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2)
            if box[0] < left or box[2] > right or box[1] < bottom or box[3] > top:
                continue
            if _boxes_overlap(box, boxes) or _segments_crossing(box, arrows):
                continue
            crossing = _segments_crossing(box, lines)
            if not crossing:
                self._take(box)
                return box, False
            if soft and (best is None or crossing < best[0]):
                best = (crossing, box)
        if best is None:
            self.left_out += 1
            return None
        self._take(best[1])
        return best[1], True

    def _take(self, box: tuple[float, float, float, float]) -> None:
        self.boxes.add([box])
        self.placed += 1


def around(x: float, y: float, radius: float, width: float, height: float,
           away: tuple[float, float] | None = None) -> list[tuple[float, float]]:
    """Candidate centres of a ``width x height`` label around a disc at ``(x, y)``.

    First in the direction ``away`` (a unit vector, e.g. away from the neighbours),
    then below, above, right, left and the diagonals, then the same a step farther.
    """
    g = GAP
    rings = []
    for extra in (0.0, height + g):
        r = radius + g + extra
        ring = [(x, y - r - height / 2), (x, y + r + height / 2), (x + r + width / 2, y),
                (x - r - width / 2, y)]
        d = r * 0.72
        ring += [(x + sx * (d + width / 2), y + sy * (d + height / 2))
                 for sx, sy in ((1, -1), (-1, -1), (1, 1), (-1, 1))]
        if away is not None:
            ux, uy = away
            # the box touching the disc at the point in direction (ux, uy)
            ring.insert(0, (x + ux * r + ux * width / 2, y + uy * r + uy * height / 2))
        rings.extend(ring)
    return rings


def bezier_points(p0: tuple[float, float], p2: tuple[float, float], rad: float, n: int = 10) -> np.ndarray:
    """Points along matplotlib's ``arc3,rad=rad`` connection from ``p0`` to ``p2`` (pixels)."""
    (x1, y1), (x2, y2) = p0, p2
    cx, cy = (x1 + x2) / 2 + rad * (y2 - y1), (y1 + y2) / 2 - rad * (x2 - x1)
    t = np.linspace(0.0, 1.0, n)[:, None]
    a, c, b = np.array([x1, y1]), np.array([cx, cy]), np.array([x2, y2])
    return (1 - t) ** 2 * a + 2 * (1 - t) * t * c + t**2 * b


def polyline_segments(points: np.ndarray) -> list[list[float]]:
    return np.concatenate([points[:-1], points[1:]], axis=1).tolist()


# == legend ===========================================================================


def legend_entries(outcomes: Iterable[ResourceState], released: bool, connections: bool = False,
                   conditions: bool = False, link: str | None = None,
                   shapes: Sequence[tuple[str, str]] = ()) -> list[tuple[Any, str]]:
    """Legend handles: the outcomes present (lifecycle order), the released mark if
    any resource is released, then the kinds of edges present and ``shapes``
    (``(marker, label)`` pairs, such as ``("s", "switch")``)."""
    from matplotlib.lines import Line2D

    present = set(outcomes)
    entries = [(Line2D([], [], marker="o", linestyle="", markersize=8, markerfacecolor=STATE_COLORS[s],
                       markeredgecolor=OUTLINE, markeredgewidth=0.8), s.name) for s in S if s in present]
    if released:
        entries.append((Line2D([], [], marker="o", linestyle="", markersize=8, markerfacecolor="white",
                               markeredgecolor=RELEASED_RING, markeredgewidth=2.6),
                        "released (grey ring)"))
    if connections:
        entries.append((Line2D([], [], color=CONNECTION_COLOR, linewidth=1.5), "connection"))
    if conditions:
        entries.append((Line2D([], [], color=CONDITION_COLOR, linewidth=1.5, linestyle="--"), "condition"))
    if link:
        entries.append((Line2D([], [], color=OUTLINE, linewidth=2.5), link))
    for marker, label in shapes:
        entries.append((Line2D([], [], marker=marker, linestyle="", markersize=7, markerfacecolor="white",
                               markeredgecolor=OUTLINE, markeredgewidth=1.0), label))
    return entries


def legend_rows(canvas: Canvas, entries: list[tuple[Any, str]], size: float = FONT_SIZE) -> int:
    """How many rows the entries need across the axes' width."""
    em = canvas.pixels(size)
    widths = [canvas.text_size(label, size)[0] + 3.0 * em for _, label in entries]
    available = canvas.box[2] - canvas.box[0] - 10
    rows = 1
    while rows < len(entries):
        columns = math.ceil(len(entries) / rows)
        # column-major filling: a column is as wide as its widest entry
        width = sum(max(widths[c * rows:(c + 1) * rows]) for c in range(columns))
        if width <= available:
            break
        rows += 1
    return rows


def row_height(canvas: Canvas, size: float = FONT_SIZE) -> float:
    return canvas.pixels(size) * 1.75


def add_legend(canvas: Canvas, entries: list[tuple[Any, str]], rows: int, bottom: float,
               size: float = FONT_SIZE) -> Any:
    """Put the legend in a strip whose lower edge is ``bottom`` pixels above the axes' bottom."""
    if not entries:
        legend = canvas.ax.get_legend()
        if legend is not None:
            legend.remove()
        return None
    columns = math.ceil(len(entries) / max(rows, 1))
    _, y = canvas.axes_fraction(0, canvas.box[1] + bottom)
    return canvas.ax.legend([h for h, _ in entries], [label for _, label in entries], loc="lower center",
                            bbox_to_anchor=(0.5, y), ncol=columns, frameon=False, fontsize=size,
                            handlelength=1.2, handletextpad=0.4, columnspacing=1.4, borderaxespad=0.0,
                            borderpad=0.2)
