"""The live experiment graph: :class:`GraphView`.

It keeps one matplotlib figure (no pyplot: it never pops up by itself), drawn by
:mod:`nepi_lab.notebook.drawing` exactly as :func:`draw` draws, and shows it as a PNG
in an ``ipywidgets.Image``.  It subscribes to ``ec.events``; a state change only
marks it dirty, and a coalescing timer on the view loop (see
:mod:`nepi_lab.notebook._schedule`) updates it at most 10 times a second.  An update
that finds only new states sets the face colours of the existing node collection
(``PathCollection.set_facecolor``) and re-renders; the graph is drawn again only when
its structure changed (a resource registered, a connection or condition added).
"""

from __future__ import annotations

import base64
import html
import json
import weakref
from collections import Counter
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ..core.errors import UnknownGuidError
from ._ipython import after_each_cell
from ._schedule import UPDATE_INTERVAL, Subscription
from ._static import StaticFallback
from .colors import STATE_COLORS
from .drawing import CAPTION_DATA_LIMIT, RGBA, Drawing, canvas_png, draw, draw_graph, edge_signature
from .html import state_counts_html
from .layout import StableLayout

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from ..core.controller import ExperimentController

__all__ = ["GraphView", "draw"]


class GraphView(StaticFallback, widgets.VBox):
    """The experiment graph, live: nodes recoloured as their states change.

    Displays as a PNG image of the graph with a caption counting resources per
    state.  It follows ``ec.events`` by itself, also while the kernel is idle
    between cells, with at most 10 updates a second; registering resources redraws
    it, and so does adding connections or conditions (noticed after each cell, or
    at once with :meth:`refresh`).  The layout is computed once: new resources never
    move old ones.  Its output also holds the last picture as a plain PNG, refreshed
    after each cell, for nbconvert, nbviewer and GitHub (see ``_static.py``).

    Parameters
    ----------
    ec : ExperimentController
    width, height : float
        Figure size in inches (at ``dpi`` dots per inch).
    labels : bool, optional
        Label each resource; default: when there are at most :data:`LABEL_LIMIT`.
    interval : float
        Minimum seconds between two updates.

    Example
    -------
    >>> from nepi_lab.notebook import GraphView
    >>> view = GraphView(ec)          # doctest: +SKIP
    >>> view                          # doctest: +SKIP   (the last line of a cell displays it)
    """

    def __init__(self, ec: ExperimentController, *, width: float = 8.0, height: float = 5.0, dpi: int = 80,
                 labels: bool | None = None, interval: float = UPDATE_INTERVAL, **kwargs: Any) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self._image = widgets.Image(format="png", layout=widgets.Layout(width=f"{int(width * dpi)}px"))
        self._image.add_class("nepi-graph-image")
        self._caption = widgets.HTML()
        self._caption.add_class("nepi-graph-state")
        super().__init__([self._image, self._caption], **kwargs)
        self.add_class("nepi-graph")
        self.ec = ec
        self._labels = labels
        self._figure = Figure(figsize=(width, height), dpi=dpi)
        FigureCanvasAgg(self._figure)
        self._ax = self._figure.add_axes((0.01, 0.01, 0.80, 0.98))
        self._layout_engine = StableLayout()
        self._drawing: Drawing | None = None
        self._overlay: list[Any] = []  # the artists drawn at each update (nodes, labels)
        self._background: Any = None  # the rest, drawn once per structure
        self._structure_dirty = True
        self._states_dirty = False
        self._png_bytes = b""
        self.renders = 0  #: PNG images produced (full draws and recolourings)
        self.recolors = 0  #: updates that only recoloured nodes
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
    def colors(self) -> dict[int, str]:
        """The colour each resource is drawn with now (``#rrggbb``), read from the artists."""
        drawing = self._drawing
        if drawing is None or drawing.nodes is None:
            return {}
        faces = drawing.nodes.get_facecolor()
        return {guid: "#{:02x}{:02x}{:02x}".format(*(round(c * 255) for c in faces[i][:3]))
                for i, guid in enumerate(drawing.order)}

    @property
    def states(self) -> dict[int, str]:
        """The state each resource is drawn in now."""
        drawing = self._drawing
        if drawing is None:
            return {}
        return {g: s.name for g, s in zip(drawing.order, drawing.states, strict=True)}

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

    def _update(self) -> None:
        if self._structure_dirty:
            self._structure_dirty = False
            self._states_dirty = False
            graph = self.ec.graph()
            drawing = self._drawing
            same = drawing is not None and list(graph.nodes) == drawing.order
            if not same or edge_signature(graph) != drawing.edges:
                self._full_draw(graph)
                return
        self._states_dirty = False
        self._recolor()

    def _full_draw(self, graph: Any) -> None:
        positions = self._layout_engine.update(graph)
        self._ax.clear()
        self._drawing = drawing = draw_graph(self._ax, graph, positions, self._labels)
        self.full_draws += 1
        # Everything but the nodes and what lies on them (labels) is drawn once and
        # kept as a background; a recolouring pastes it back and draws only those.
        nodes = drawing.nodes
        self._overlay = [] if nodes is None else [nodes] + [
            a for a in (*self._ax.texts, *self._ax.collections) if a.get_zorder() > nodes.get_zorder()]
        for artist in self._overlay:
            artist.set_visible(False)
        canvas = self._figure.canvas
        canvas.draw()
        self._background = canvas.copy_from_bbox(self._figure.bbox)
        for artist in self._overlay:
            artist.set_visible(True)
        self._render()

    def _recolor(self) -> None:
        drawing = self._drawing
        if drawing is None or drawing.nodes is None:
            return
        ec, rgba, states = self.ec, drawing.rgba, drawing.states
        changed = False
        for i, guid in enumerate(drawing.order):
            try:
                state = ec.state(guid)
            except UnknownGuidError:  # removed (hardRelease): redraw without it
                self._full_draw(ec.graph())
                return
            if state is not states[i]:
                states[i] = state
                rgba[i] = RGBA[state]
                changed = True
        if changed:
            drawing.nodes.set_facecolor(rgba)
            self.recolors += 1
            self._render()

    def _render(self) -> None:
        """Paste the background, draw the nodes and their labels on it, show the PNG."""
        canvas = self._figure.canvas
        canvas.restore_region(self._background)
        for artist in self._overlay:
            self._ax.draw_artist(artist)
        self._png_bytes = canvas_png(canvas)
        self._image.value = self._png_bytes
        self._caption.value = self._caption_html()
        self.renders += 1

    def _caption_html(self) -> str:
        drawing = self._drawing
        if drawing is None:
            return ""
        counts = Counter(drawing.states)
        data = ""
        if len(drawing.order) <= CAPTION_DATA_LIMIT:
            colors = {str(g): STATE_COLORS[s] for g, s in zip(drawing.order, drawing.states, strict=True)}
            names = {str(g): s.name for g, s in zip(drawing.order, drawing.states, strict=True)}
            data = (f' data-colors="{html.escape(json.dumps(colors))}"'
                    f' data-states="{html.escape(json.dumps(names))}"')
        return (f'<div class="nepi-graph-colors"{data} style="font-family:sans-serif;font-size:12px">'
                f"{len(drawing.order)} resources {state_counts_html(counts)}</div>")

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
        counts = Counter(self.states.values())
        text = ", ".join(f"{n} {s}" for s, n in counts.items())
        return f"<GraphView of {getattr(self, 'ec', None)!r}: {text or 'empty'}>"
