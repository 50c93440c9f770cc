"""Static fallbacks: what a view leaves in a saved notebook for readers without a kernel.

A widget's output holds a reference to a live model
(``application/vnd.jupyter.widget-view+json``) that only a widget manager can draw:
JupyterLab with a kernel, or an exported page that embeds the saved widget state.
nbconvert's HTML without widget state, nbviewer and GitHub fall back to the other
formats of the same output.  So every view puts a static picture of itself in the
output beside the widget: ``image/png`` (the graph) or ``text/html`` (tables, panels,
progress bars), and a short ``text/plain``.

That picture must be the view's *last* state, not the one it had when the cell that
showed it ran (typically before ``deploy()``: all NEW).  A notebook is saved, or
executed by nbconvert, after the experiment ran, so:

- the view is displayed with a ``display_id`` of its own (:meth:`_ipython_display_`,
  used by IPython for ``display(view)`` and for a view on a cell's last line);
- after every cell IPython runs (its ``post_run_cell`` event, in the kernel's thread,
  still inside that cell's request) the view brings itself up to date and, for each
  of its displays whose picture changed, sends ``update_display_data``.

Both programs that write ``.ipynb`` files replace the data of the output with that
display id, wherever it is: JupyterLab's kernel connection remembers which request
displayed it and hands the update to that cell's output area (also for cells that
ran earlier), and the notebook it saves holds the new data; nbclient (``jupyter
nbconvert --execute``, papermill, the test suite) keeps a display-id map and
rewrites the outputs in its notebook.  nbclient reads only the messages of the cell
it runs, which is why the update is sent while a cell runs, not when the experiment
changes between cells (JupyterLab would also re-render the widget on every update).
For the same reason what changed in the view's widget state is sent again at that
moment, so the widget state nbclient stores (``nb.metadata.widgets``) holds the last
picture as well, even if the live updates went out between cells.

The cost at a cell's end is the view's own pending update (which its timer would have
run anyway) and, only when the picture changed, the messages; nothing is sent for a
view that did not change.
"""

from __future__ import annotations

import html
import logging
import uuid
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

from ._ipython import after_each_cell

log = logging.getLogger("nepi_lab")

#: The mime type of a live widget in a display bundle.
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


class StaticFallback:
    """Mixin for a view widget: a static picture of it travels with each display.

    Put it first among the bases (``class View(StaticFallback, Following,
    widgets.VBox)``).  A subclass says what its picture is in :meth:`_static_data`
    (``{"image/png": base64 text}`` or ``{"text/html": ...}``); ``repr(view)`` is its
    ``text/plain``.  By default the view is brought up to date at a cell's end with
    ``self.update()``; a view that must not change any more (bars frozen with their
    cell) overrides :meth:`_static_refresh`.
    """

    #: How many displays of one view are kept up to date (the newest ones).
    max_static_displays = 8

    # -- what a subclass provides ---------------------------------------------------------

    def _static_data(self) -> dict[str, str]:
        """The static picture: ``{mime type: data}`` (PNG as base64 text)."""
        raise NotImplementedError

    def _static_refresh(self) -> None:
        """Bring the view up to date before its picture is taken at a cell's end."""
        self.update()  # type: ignore[attr-defined]

    # -- the display bundle ---------------------------------------------------------------

    def _static_bundle(self) -> dict[str, str]:
        """``text/plain`` and the static picture (no widget): what a closed view shows."""
        data = {"text/plain": repr(self)}
        try:
            data.update(self._static_data())
        except Exception:  # a display must never raise: the text still shows
            log.debug("static fallback of %s failed", type(self).__name__, exc_info=True)
        return data

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        """The live widget and its static picture, in one bundle."""
        data = super()._repr_mimebundle_(**kwargs) or {}  # type: ignore[misc]
        data.update(self._static_bundle())
        return data

    def _display_bundle(self) -> dict[str, Any]:
        if getattr(self, "comm", None) is None:  # closed: no live widget any more
            return self._static_bundle()
        return StaticFallback._repr_mimebundle_(self)

    # -- displays that follow the view ------------------------------------------------------

    def _ipython_display_(self) -> None:
        """Display the view with a display id of its own, and keep that output up to date."""
        from IPython.display import display

        bundle = self._display_bundle()
        display_id = uuid.uuid4().hex
        display(bundle, raw=True, display_id=display_id)
        if WIDGET_VIEW not in bundle:  # a closed view: a still picture, nothing to follow
            return
        displays: dict[str, dict[str, Any]] = self.__dict__.setdefault("_static_displays", {})
        displays[display_id] = bundle
        while len(displays) > self.max_static_displays:
            del displays[next(iter(displays))]
        if "_static_forget" not in self.__dict__:
            self.__dict__["_static_forget"] = after_each_cell(weakref.WeakMethod(self._static_cell_ended))

    def _static_cell_ended(self) -> None:
        """After a cell: refresh the view, then each of its outputs whose picture changed."""
        displays: dict[str, dict[str, Any]] = self.__dict__.get("_static_displays", {})
        if getattr(self, "comm", None) is None or not displays:
            self._static_stop()
            return
        try:
            self._static_refresh()
        except Exception:  # a view must never break the cell that ran
            log.exception("updating %s after a cell failed", type(self).__name__)
        bundle = self._display_bundle()
        stale = [display_id for display_id, shown in displays.items() if shown != bundle]
        if not stale:
            return
        from IPython.display import update_display

        # the widget state too, within this cell's request: what nbclient saves
        self._static_send_changed_state()
        for display_id in stale:
            update_display(bundle, raw=True, display_id=display_id)
            displays[display_id] = bundle

    def _static_send_changed_state(self) -> None:
        """Send again, in this cell, what changed in the view's widgets since the last time.

        The live updates between cells went out in no cell's request; a front end
        applies them, but nbclient drops them.  The first time, everything is sent.
        """
        sent: dict[str, dict[str, Any]] = self.__dict__.setdefault("_static_sent_state", {})
        for widget in _widgets(self):
            if getattr(widget, "comm", None) is None:
                continue
            state = widget.get_state()
            before = sent.get(widget.model_id, {})
            changed = [key for key, value in state.items() if key not in before or before[key] != value]
            if changed:
                widget.send_state(changed)
                sent[widget.model_id] = state

    def _static_stop(self) -> None:
        forget = self.__dict__.pop("_static_forget", None)
        if forget is not None:
            forget()
        self.__dict__.pop("_static_displays", None)
        self.__dict__.pop("_static_sent_state", None)

    def close(self) -> None:
        """Stop updating its outputs, then close the view."""
        self._static_stop()
        super().close()  # type: ignore[misc]


def _widgets(widget: Any) -> Iterator[Any]:
    """``widget`` and its children, recursively."""
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _widgets(child)


def bars_html(rows: Iterable[tuple[str, int, int, str]], head: str = "") -> str:
    """Static progress bars as plain HTML: one ``(label, value, total, colour)`` per row.

    ``head`` (HTML) goes above the bars.  Inline styles only, with JupyterLab's theme
    variables where there are any, so it reads in light and dark themes and elsewhere.
    """
    lines = []
    for label, value, total, color in rows:
        percent = 0 if total <= 0 else round(100 * min(value, total) / total)
        lines.append(
            f'<div data-bar="{html.escape(label)}" '
            'style="display:flex;align-items:center;gap:6px;margin:1px 0">'
            f'<span style="width:95px;text-align:right">{html.escape(label)}</span>'
            f'<span style="display:inline-block;width:250px;height:10px;'
            f'background:var(--jp-layout-color2, #eeeeee);border-radius:2px">'
            f'<span style="display:block;width:{percent}%;height:100%;background:{color};border-radius:2px">'
            f"</span></span><span>{value}/{total}</span></div>")
    return (f'<div class="nepi-static-bars" style="font-family:sans-serif;font-size:12px">'
            f'{head}{"".join(lines)}</div>')
