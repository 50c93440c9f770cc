"""The live experiment graph: :class:`GraphView`.

It keeps one matplotlib figure (no pyplot: it never pops up by itself), drawn by
:mod:`nepi_lab.notebook.drawing` exactly as :func:`draw` draws, and shows it as a PNG
in an ``ipywidgets.Image``.  It subscribes to ``ec.events``; a state change only
marks it dirty, and a coalescing timer (see :mod:`nepi_lab.notebook._schedule`)
updates it at most 10 times a second.  An update that finds only new states sets the
face colours (and, for released resources, the ring colours and widths) of the
existing dots in place (``PathCollection.set_facecolor``), pastes the background
drawn once (edges, arrows, labels) and draws only the dots and the legend on it; the
graph is drawn again only when its structure changed (a resource registered or
renamed, a connection or condition added).
"""

from __future__ import annotations

import base64
import html
import json
import weakref
from collections import Counter
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ._ipython import after_each_cell
from ._schedule import UPDATE_INTERVAL, Subscription
from ._static import StaticFallback
from .colors import STATE_COLORS
from .drawing import (
    CAPTION_DATA_LIMIT,
    CHANGED,
    REDRAW,
    Drawing,
    canvas_png,
    draw,
    draw_graph,
    drawing_signature,
)
from .html import outcome_counts_html
from .layout import RingLayout, StableLayout

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from ..core.controller import ExperimentController

__all__ = ["GraphView", "draw"]


class GraphView(StaticFallback, widgets.VBox):
    """The experiment graph, live: resources recoloured as their states change.

    Displays as a PNG image of the graph (see :func:`~nepi_lab.notebook.draw` for
    what it shows: outcome colours, a grey ring once released, names, conditions as
    arrows from the awaited resource to the waiting one) with a caption counting
    resources per outcome.  It follows ``ec.events`` by itself, also while the
    kernel is idle between cells, with at most 10 updates a second; registering
    resources redraws it, and so does adding connections or conditions (noticed
    after each cell, or at once with :meth:`refresh`).  The layout is computed once:
    new resources never move old ones.  Its output also holds the last picture as a
    plain PNG, refreshed after each cell, for nbconvert, nbviewer and GitHub (see
    ``_static.py``).

    Parameters
    ----------
    ec : ExperimentController
    width, height : float
        Figure size in inches (at ``dpi`` dots per inch).
    labels : bool, optional
        False: no labels; by default every label that fits is drawn.
    group : bool, optional
        One card per resource type (True) or one dot per resource (False); by
        default grouped beyond :data:`~nepi_lab.notebook.drawing.GROUP_LIMIT` resources.
    interval : float
        Minimum seconds between two updates.

    Example
    -------
    >>> from nepi_lab.notebook import GraphView                        # doctest: +SKIP
    >>> view = GraphView(ec)                                           # doctest: +SKIP
    >>> view        # the last line of a cell displays it              # doctest: +SKIP
    """

    #: CSS class of the view; its image and caption get ``-image`` and ``-state``.
    css_class = "nepi-graph"

    def __init__(self, ec: ExperimentController, *, width: float = 8.0, height: float = 5.0, dpi: int = 100,
                 labels: bool | None = None, group: bool | None = None, interval: float = UPDATE_INTERVAL,
                 **kwargs: Any) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self._image = widgets.Image(format="png", layout=widgets.Layout(width=f"{int(width * dpi)}px"))
        self._image.add_class(f"{self.css_class}-image")
        self._caption = widgets.HTML()
        self._caption.add_class(f"{self.css_class}-state")
        super().__init__([self._image, self._caption], **kwargs)
        self.add_class(self.css_class)
        self.ec = ec
        self._labels = labels
        self._group = group
        self._figure = Figure(figsize=(width, height), dpi=dpi)
        FigureCanvasAgg(self._figure)
        self._ax = self._figure.add_axes((0, 0, 1, 1))
        self._layout_engine = StableLayout()
        self._type_layout = RingLayout()
        self._drawing: Drawing | None = None
        self._background: Any = None  # everything but the overlay, drawn once per structure
        self._structure_dirty = True
        self._states_dirty = False
        self._png_bytes = b""
        # what the last image shows: (order, states, outcomes, released), published after it is made
        self._shown: tuple[list[int], list[Any], list[Any], list[bool]] = ([], [], [], [])
        self.renders = 0  #: PNG images produced (full draws and recolourings)
        self.recolors = 0  #: updates that only recoloured resources
        self.full_draws = 0  #: updates that drew the whole graph
        self._subscription = Subscription(ec, self._on_event, self._update, interval)
        self._subscription.flush()  # the first picture, now
        self._forget_cell_hook = after_each_cell(weakref.WeakMethod(self.refresh))

    # -- reading it --------------------------------------------------------------------

    @property
    def figure(self) -> Any:
        """The matplotlib Figure (not managed by pyplot)."""
        return self._figure

    @property
    def ax(self) -> Axes:
        """The Axes the graph is drawn on."""
        return self._ax

    @property
    def png(self) -> bytes:
        """The last image shown, as PNG bytes."""
        return self._png_bytes

    @property
    def grouped(self) -> bool:
        """Whether resources are drawn grouped by type (one card per type)."""
        return self._drawing is not None and self._drawing.grouped

    @property
    def colors(self) -> dict[int, str]:
        """The colour each resource is filled with now (``#rrggbb``): its outcome's.

        Read from the dots' artist when there is one per resource."""
        drawing = self._drawing
        if drawing is None:
            return {}
        faces = drawing.nodes.get_facecolor() if drawing.nodes is not None else drawing.rgba
        if drawing.nodes is None:
            return {g: STATE_COLORS[o] for g, o in zip(drawing.order, drawing.outcomes, strict=True)}
        return {guid: "#{:02x}{:02x}{:02x}".format(*(round(c * 255) for c in faces[i][:3]))
                for i, guid in enumerate(drawing.order)}

    @property
    def states(self) -> dict[int, str]:
        """The state each resource is shown in by the last image (RELEASED once released)."""
        order, states, _, _ = self._shown
        return {g: s.name for g, s in zip(order, states, strict=True)}

    @property
    def outcomes(self) -> dict[int, str]:
        """The outcome each resource is coloured by in the last image: its state, or
        the state it was released from."""
        order, _, outcomes, _ = self._shown
        return {g: s.name for g, s in zip(order, outcomes, strict=True)}

    @property
    def released(self) -> set[int]:
        """The resources the last image marks as released."""
        order, _, _, released = self._shown
        return {g for g, r in zip(order, released, strict=True) if r}

    @property
    def positions(self) -> dict[Any, tuple[float, float]]:
        """Layout positions of the resources (stable: they never change once given)."""
        return dict(self._layout_engine.positions)

    # -- updating it -------------------------------------------------------------------

    def _on_event(self, event: Any) -> None:
        # runs in the thread that made the change, once per event: keep it tiny
        if event.old is None:
            self._structure_dirty = True
        else:
            self._states_dirty = True

    def refresh(self) -> None:
        """Look for new resources, connections and conditions, and redraw if there are."""
        self._structure_dirty = True
        self._subscription.request()

    def update(self) -> None:
        """Bring the picture up to date now (normally the view does it by itself)."""
        self._structure_dirty = True
        self._subscription.flush()

    def _read(self) -> tuple[Any, Any]:
        """What to draw and its signature (a new signature means a new drawing)."""
        graph = self.ec.graph()
        return graph, drawing_signature(graph, self._group)

    def _draw(self, model: Any) -> Drawing:
        return draw_graph(self._ax, model, self._layout_engine, self._labels, group=self._group,
                          type_layout=self._type_layout, live=True)

    def _update(self) -> None:
        if self._structure_dirty:
            self._structure_dirty = False
            self._states_dirty = False
            model, signature = self._read()
            if self._drawing is None or signature != self._drawing.signature:
                self._full_draw(model)
                return
        self._states_dirty = False
        self._recolor()

    def _full_draw(self, model: Any) -> None:
        self._drawing = self._draw(model)
        self.full_draws += 1
        self._draw_background()
        self._render()

    def _draw_background(self) -> None:
        """Everything but the overlay (the dots) is drawn once and kept as a background;
        a recolouring pastes it back and draws only the overlay."""
        drawing = self._drawing
        assert drawing is not None
        for artist in drawing.overlay:
            artist.set_visible(False)
        canvas = self._figure.canvas
        canvas.draw()
        self._background = canvas.copy_from_bbox(self._figure.bbox)
        for artist in drawing.overlay:
            artist.set_visible(True)
        drawing.background_stale = False

    def _recolor(self) -> None:
        drawing = self._drawing
        if drawing is None:
            return
        found = drawing.refresh(self.ec)
        if found == REDRAW:  # a resource is gone, or the legend needs more room
            self._full_draw(self._read()[0])
        elif found == CHANGED:
            self.recolors += 1
            if drawing.background_stale:  # a new legend: a few times a run
                self._draw_background()
            self._render()

    def _render(self) -> None:
        """Paste the background, draw the overlay on it, show the PNG."""
        canvas = self._figure.canvas
        canvas.restore_region(self._background)
        drawing = self._drawing
        for artist in drawing.overlay if drawing is not None else ():
            self._ax.draw_artist(artist)
        self._png_bytes = canvas_png(canvas)
        self._image.value = self._png_bytes
        self._caption.value = self._caption_html()
        self.renders += 1
        if drawing is not None:  # last: who sees these has the image and the counters too
            self._shown = (list(drawing.order), list(drawing.states), list(drawing.outcomes),
                           list(drawing.released))

    def _caption_data(self) -> str:
        drawing = self._drawing
        if drawing is None or len(drawing.order) > CAPTION_DATA_LIMIT:
            return ""
        order = drawing.order
        data = {
            "states": {str(g): s.name for g, s in zip(order, drawing.states, strict=True)},
            "outcomes": {str(g): s.name for g, s in zip(order, drawing.outcomes, strict=True)},
            "colors": {str(g): STATE_COLORS[s] for g, s in zip(order, drawing.outcomes, strict=True)},
            "released": [g for g, r in zip(order, drawing.released, strict=True) if r],
        }
        return "".join(f' data-{key}="{html.escape(json.dumps(value))}"' for key, value in data.items())

    def _caption_html(self) -> str:
        drawing = self._drawing
        if drawing is None:
            return ""
        counts = Counter(drawing.outcomes)
        released = sum(drawing.released)
        return (f'<div class="nepi-graph-colors"{self._caption_data()} style="font-family:sans-serif;'
                f'font-size:12px">{len(drawing.order)} resources '
                f"{outcome_counts_html(counts, released)}</div>")

    # -- display and lifetime -------------------------------------------------------------

    def _static_data(self) -> dict[str, str]:
        # what nbviewer, GitHub and nbconvert show: the last picture (see _static.py)
        if not self._png_bytes:
            return {}
        return {"image/png": base64.b64encode(self._png_bytes).decode("ascii")}

    def close(self) -> None:
        """Stop following the controller and close the widgets."""
        subscription = getattr(self, "_subscription", None)
        if subscription is not None:
            subscription.close()
            self._forget_cell_hook()
        for child in (getattr(self, "_image", None), getattr(self, "_caption", None)):
            if child is not None:
                child.close()
        super().close()

    def __repr__(self) -> str:
        counts = Counter(self.outcomes.values())
        text = ", ".join(f"{n} {s}" for s, n in counts.items())
        released = len(self.released)
        if released:
            text += f" ({released} released)"
        return f"<{type(self).__name__} of {getattr(self, 'ec', None)!r}: {text or 'empty'}>"
