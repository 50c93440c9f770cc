"""Progress of an experiment, per state, while a cell deploys or waits.

:class:`ProgressView` is one bar per state: how many resources have reached it so
far (DISCOVERED, PROVISIONED, READY, STARTED, then the outcomes).  It observes
``ec.events`` like every view, with at most 10 updates a second.

Two ways to get it, both silent outside a notebook (in a script nothing is shown and
nothing is printed):

- ``with show_progress(ec): ...`` shows the bars in the cell that runs the block;
- ``auto_progress(ec)`` (opt-in, once) shows bars in every later cell during which
  the experiment changes: a cell that blocks in ``ec.wait_finished()`` or awaits
  ``ec.wait_finished_async()``.  A cell that only calls ``ec.deploy()`` returns at
  once (the experiment goes on in the controller's thread), so it gets none; the
  next cell that waits shows them.

Bars belong to the cell that waited: when that cell (or the ``with`` block) ends,
they show their last counts and stop following, so a later cell (``ec.shutdown()``)
never rewrites them to "RELEASED 6/6".
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ..core.loop import inbox
from ..core.states import ResourceState
from ._ipython import in_kernel, on_cells
from ._schedule import UPDATE_INTERVAL, Following, Subscription
from ._static import StaticFallback, bars_html
from .colors import STATE_COLORS

if TYPE_CHECKING:
    from ..core.controller import ExperimentController

S = ResourceState

#: The states that get a bar, in the order shown (RESERVED only once used).
BAR_STATES = (S.DISCOVERED, S.RESERVED, S.PROVISIONED, S.READY, S.STARTED, S.FINISHED, S.STOPPED,
              S.FAILED, S.RELEASED)


class ProgressView(StaticFallback, Following, widgets.VBox):
    """One progress bar per state: resources that reached it, out of all tracked.

    Parameters
    ----------
    ec : ExperimentController
    guids : iterable of int, optional
        The resources to count; default: all, including those registered later.

    Its output also holds the bars as plain HTML, refreshed after each cell, for
    readers without a kernel (see ``_static.py``).

    Example
    -------
    >>> ProgressView(ec)             # doctest: +SKIP
    """

    def __init__(self, ec: ExperimentController, guids: Iterable[int] | None = None,
                 interval: float = UPDATE_INTERVAL, **kwargs: Any) -> None:
        self._summary = widgets.HTML()
        self._summary.add_class("nepi-progress-summary")
        self._bars: dict[ResourceState, widgets.IntProgress] = {}
        self._counts: dict[ResourceState, widgets.Label] = {}
        rows = []
        for state in BAR_STATES:
            bar = widgets.IntProgress(value=0, min=0, max=1, description=state.name,
                                      style={"bar_color": STATE_COLORS[state], "description_width": "95px"},
                                      layout=widgets.Layout(width="360px"))
            label = widgets.Label("0/0")
            row = widgets.HBox([bar, label])
            row.add_class(f"nepi-progress-{state.name.lower()}")
            if state is S.RESERVED:
                row.layout.display = "none"
            self._bars[state], self._counts[state] = bar, label
            rows.append(row)
        super().__init__([self._summary, *rows], **kwargs)
        self.add_class("nepi-progress")
        self.ec = ec
        self._only = None if guids is None else set(guids)
        self._lock = threading.Lock()
        self._tracked: set[int] = set()
        self._reached: dict[ResourceState, set[int]] = {s: set() for s in S}
        for event in list(ec.events):
            self._record(event)
        self._subscription = Subscription(ec, self._record, self._update, interval)
        self._subscription.flush()

    def _record(self, event: Any) -> None:
        guid = event.guid
        if self._only is not None and guid not in self._only:
            return
        with self._lock:  # events may come from two threads (registration, the loop)
            self._tracked.add(guid)
            self._reached[event.new].add(guid)

    def counts(self) -> dict[str, int]:
        """Resources that reached each state so far, and ``total``."""
        with self._lock:
            counts = {s.name: len(self._reached[s]) for s in BAR_STATES}
            counts["total"] = len(self._tracked)
        return counts

    def _update(self) -> None:
        counts = self.counts()
        total = counts["total"]
        with self.hold_sync():
            for state in BAR_STATES:
                bar, n = self._bars[state], counts[state.name]
                bar.max = max(total, 1)
                bar.value = n
                self._counts[state].value = f"{n}/{total}"
            if counts["RESERVED"]:
                self.children[1 + BAR_STATES.index(S.RESERVED)].layout.display = None
            self._summary.value = self._summary_html(counts)

    def _summary_html(self, counts: dict[str, int]) -> str:
        total = counts["total"]
        ended = counts["FINISHED"] + counts["STOPPED"] + counts["FAILED"]
        parts = [f"{counts['READY']}/{total} deployed", f"{counts['STARTED']}/{total} started",
                 f"{ended}/{total} ended"]
        if counts["FAILED"]:
            parts.append(f'<span style="color:var(--jp-error-color1, #c62828)">'
                         f'{counts["FAILED"]} failed</span>')
        return (f'<div class="nepi-progress-counts" data-counts="{_attr(counts)}" '
                f'style="font-family:sans-serif;font-size:12px">{self.ec.exp_id}: {" · ".join(parts)}</div>')

    def _static_refresh(self) -> None:
        if not self.frozen:  # frozen bars keep what their cell showed
            self.update()

    def _static_data(self) -> dict[str, str]:
        # the bars as shown (their "n/total" labels), not the counts, which may be ahead
        rows = []
        for state in BAR_STATES:
            shown, total = (int(n) for n in self._counts[state].value.split("/"))
            if state is not S.RESERVED or shown:
                rows.append((state.name, shown, total, STATE_COLORS[state]))
        return {"text/html": bars_html(rows, self._summary.value)}

    def __repr__(self) -> str:
        counts = self.counts() if hasattr(self, "_reached") else {}
        total = counts.pop("total", 0)
        return "<ProgressView " + ", ".join(f"{k} {v}/{total}" for k, v in counts.items() if v) + ">"


def _attr(value: Any) -> str:
    import html
    import json

    return html.escape(json.dumps(value))


@contextlib.contextmanager
def show_progress(ec: ExperimentController,
                  guids: Iterable[int] | None = None) -> Iterator[ProgressView | None]:
    """Show a :class:`ProgressView` in this cell while the block runs (notebooks only).

    Example
    -------
    >>> with show_progress(ec):                     # doctest: +SKIP
    ...     ec.deploy()
    ...     ec.wait_finished(timeout=60)
    """
    if not in_kernel():
        yield None
        return
    from IPython.display import display

    view = ProgressView(ec, guids)
    display(view)
    try:
        yield view
    finally:
        view.freeze()


class AutoProgress:
    """What :func:`auto_progress` returns: call :meth:`close` to stop it."""

    def __init__(self, ec: ExperimentController) -> None:
        self.ec = ec
        self.view: ProgressView | None = None  #: the bars of the cell running now, if any
        self.views: list[ProgressView] = []  #: every cell's bars (frozen once their cell ended)
        self._in_cell = False
        self._shown_in_cell = False
        self._cell_context = contextvars.copy_context()
        self._inbox = inbox()
        self._unsubscribe = ec.events.subscribe(self._event)
        self._forget = on_cells(self._before_cell, self._after_cell)

    def _before_cell(self, *_: Any) -> None:
        self._in_cell, self._shown_in_cell = True, False
        # The kernel routes output by a context variable (the request being answered);
        # the bars must go to the cell running now.
        self._cell_context = contextvars.copy_context()

    def _after_cell(self, *_: Any) -> None:
        self._in_cell = False
        view, self.view = self.view, None
        if view is not None:
            view.freeze()

    def _event(self, event: Any) -> None:
        # in the controller's thread: only note it, and show the bars in the kernel's
        if event.old is None or not self._in_cell or self._shown_in_cell or self._inbox is None:
            return
        self._shown_in_cell = True
        self._inbox.call_soon(self._show)

    def _show(self) -> None:
        if not self._in_cell:  # the cell ended meanwhile
            return
        from IPython.display import display

        self.view = view = ProgressView(self.ec)
        self.views.append(view)
        self._cell_context.copy().run(display, view)

    def close(self) -> None:
        """Stop showing progress bars."""
        self._unsubscribe()
        self._forget()
        if self.view is not None:
            self.view.freeze()


def auto_progress(ec: ExperimentController) -> AutoProgress | None:
    """From now on, show the progress bars in every cell during which ``ec`` changes.

    Opt-in, once per controller.  Outside a Jupyter kernel it does nothing and
    returns None.
    """
    if not in_kernel():
        return None
    return AutoProgress(ec)
