"""Live text panels: the resource table and the explain panel.

Both are ``ipywidgets.HTML`` views that follow ``ec.events`` (at most 10 updates a
second) and can be asked to :meth:`refresh` after a change that makes no event (a
connection, a condition, an attribute).  Their outputs also hold their last HTML as
plain ``text/html``, refreshed after each cell, for readers without a kernel.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ..core.states import ResourceState
from ._schedule import UPDATE_INTERVAL, Following, Subscription
from ._static import StaticFallback
from .html import _MUTED, MAX_ROWS, NO_MATH, controller_html, state_badge

if TYPE_CHECKING:
    from ..core.controller import ExperimentController

S = ResourceState


class _LivePanel(StaticFallback, Following, widgets.HTML):
    """An HTML widget whose value is rebuilt from the controller after events."""

    css_class = ""

    def __init__(self, ec: ExperimentController, interval: float = UPDATE_INTERVAL, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self.css_class:
            self.add_class(self.css_class)
        self.ec = ec
        self._subscription = Subscription(ec, lambda event: None, self._update, interval)
        self._subscription.flush()

    def _html(self) -> str:
        raise NotImplementedError

    def _update(self) -> None:
        self.value = self._html()

    def _static_data(self) -> dict[str, str]:
        return {"text/html": self.value}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {getattr(self, 'ec', None)!r}>"


class ResourceTable(_LivePanel):
    """The controller's HTML table (see :func:`~nepi_lab.notebook.controller_html`), kept up to date."""

    css_class = "nepi-table"

    def __init__(self, ec: ExperimentController, max_rows: int = MAX_ROWS, **kwargs: Any) -> None:
        self.max_rows = max_rows
        super().__init__(ec, **kwargs)

    def _html(self) -> str:
        return controller_html(self.ec, self.max_rows) or f"<pre>{html.escape(repr(self.ec))}</pre>"


class ExplainView(_LivePanel):
    """For each resource not started yet, what it waits for (``ec.explain``).

    Example
    -------
    >>> ExplainView(ec)        # doctest: +SKIP
    """

    css_class = "nepi-explain"
    #: Resources listed at most.
    max_rows = 50

    def lines(self) -> dict[int, str]:
        """``ec.explain(guid)`` of every resource that has not started yet."""
        ec = self.ec
        out = {}
        for guid in ec.resources:
            try:
                if ec.state(guid) < S.STARTED:
                    out[guid] = ec.explain(guid)
            except KeyError:  # removed meanwhile (hardRelease)
                continue
        return out

    def _html(self) -> str:
        lines = self.lines()
        style = "font-family:sans-serif;font-size:12px"
        if not lines:
            return (f'<div class="{NO_MATH}" style="{style};{_MUTED}">'
                    'every resource has started (or ended)</div>')
        items = []
        for guid, text in list(lines.items())[: self.max_rows]:
            state = self.ec.state(guid)
            items.append(f'<li data-guid="{guid}">{state_badge(state)} {html.escape(text)}</li>')
        more = len(lines) - self.max_rows
        tail = f"<li>… and {more} more</li>" if more > 0 else ""
        return (f'<div class="{NO_MATH}" style="{style}"><b>Not started yet</b>'
                f'<ul style="margin:2px 0;padding-left:18px">{"".join(items)}{tail}</ul></div>')
