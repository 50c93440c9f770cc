"""Live text panels: the resource table and the explain panel.

Both are ``ipywidgets.HTML`` views that follow ``ec.events`` (at most 10 updates a
second) and can be asked to :meth:`refresh` after a change that makes no event (a
connection, a condition, an attribute).  Their outputs also hold their last HTML as
plain ``text/html``, refreshed after each cell, for readers without a kernel.
"""

from __future__ import annotations

import html
from collections import Counter
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ..core.states import ResourceState
from ._schedule import UPDATE_INTERVAL, Following, Subscription
from ._static import StaticFallback
from .html import _MUTED, MAX_ROWS, NO_MATH, controller_html, outcome_counts_html, outcome_html

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
    """For each resource that has not started, what it waits for (``ec.explain``);
    then the failures, with their reasons.

    Each resource is shown with the badge of its outcome (its state, or once
    released the state it was released from) and a "released" mark beside it when
    released: after ``ec.shutdown()`` the panel still says which resources never
    started and which failed.

    Example
    -------
    >>> ExplainView(ec)        # doctest: +SKIP
    """

    css_class = "nepi-explain"
    #: Resources listed at most.
    max_rows = 50

    def _rms(self) -> list[Any]:
        rms = []
        for guid in self.ec.resources:
            try:
                rms.append(self.ec.get_resource(guid))
            except KeyError:  # removed meanwhile (hardRelease)
                continue
        return rms

    def lines(self) -> dict[int, str]:
        """``ec.explain(guid)`` of every resource that has not started (its outcome is before STARTED)."""
        out = {}
        for rm in self._rms():
            if rm.outcome < S.STARTED:
                try:
                    out[rm.guid] = self.ec.explain(rm.guid)
                except KeyError:
                    continue
        return out

    def failures(self) -> dict[int, str]:
        """``ec.explain(guid)`` of every resource whose outcome is FAILED."""
        out = {}
        for rm in self._rms():
            if rm.outcome == S.FAILED:
                try:
                    out[rm.guid] = self.ec.explain(rm.guid)
                except KeyError:
                    continue
        return out

    def _items(self, lines: dict[int, str]) -> str:
        items = []
        for guid, text in list(lines.items())[: self.max_rows]:
            try:
                badge = outcome_html(self.ec.get_resource(guid))
            except KeyError:
                continue
            items.append(f'<li data-guid="{guid}">{badge} {html.escape(text)}</li>')
        more = len(lines) - self.max_rows
        tail = f"<li>… and {more} more</li>" if more > 0 else ""
        return f'<ul style="margin:2px 0;padding-left:18px">{"".join(items)}{tail}</ul>'

    def _html(self) -> str:
        rms = self._rms()
        lines = self.lines()
        failures = self.failures()
        style = "font-family:sans-serif;font-size:12px"
        parts = []
        if lines:
            parts.append(f"<b>Not started yet</b>{self._items(lines)}")
        else:
            counts = Counter(rm.outcome for rm in rms)
            released = sum(1 for rm in rms if rm.state == S.RELEASED)
            parts.append(f'<div style="{_MUTED}">every resource has started (or ended): '
                         f"{outcome_counts_html(counts, released)}</div>")
        if failures:
            parts.append(f"<b>Failed</b>{self._items(failures)}")
        return f'<div class="{NO_MATH}" style="{style}">{"".join(parts)}</div>'
