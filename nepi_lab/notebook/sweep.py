"""The live view of a sweep: its points × repetitions, coloured by each run's state.

:class:`SweepView` is one ``ipywidgets.HTML`` whose value is the table of
:func:`~nepi_lab.notebook.html.sweep_html` (a row per point, labelled with its
parameter values; a square per repetition; the counts; an estimate of the time
left).  A 1,000-run sweep is one string rewritten, not 1,000 widgets.

It follows the sweep through :meth:`~nepi_lab.Sweep.subscribe`, like every view
(:mod:`nepi_lab.notebook._schedule`): the subscriber, called in the sweep's thread,
only asks for an update; the update runs at most 10 times a second in the kernel's
thread, through its inbox.  So the view follows a sweep started with
:meth:`~nepi_lab.Sweep.start` while the kernel is idle, and one run with
:meth:`~nepi_lab.Sweep.run` while the cell is blocked in it, and its widget is never
touched from the sweep's thread.  Closing the view unsubscribes it.

Its output also holds the table as plain ``text/html``, refreshed after each cell,
for readers without a kernel (nbconvert, GitHub; see ``_static.py``).  A sweep on a
cell's last line shows the same table, once (``Sweep._repr_html_``).
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ._schedule import UPDATE_INTERVAL, Following, Subscription
from ._static import StaticFallback
from .html import sweep_counts, sweep_html

if TYPE_CHECKING:
    from ..runner.sweep import Sweep


class SweepView(StaticFallback, Following, widgets.HTML):
    """A sweep's runs as a grid of points × repetitions, kept up to date.

    Parameters
    ----------
    sweep : Sweep
        Running, about to run (:meth:`~nepi_lab.Sweep.start`), or loaded from its
        directory (:func:`~nepi_lab.load_sweep`: the view then shows how it stands).

    Example
    -------
    >>> view = sweep.view()          # doctest: +SKIP
    >>> view                         # doctest: +SKIP
    >>> task = sweep.start()         # doctest: +SKIP
    """

    def __init__(self, sweep: Sweep, interval: float = UPDATE_INTERVAL, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_class("nepi-sweep-view")
        self.sweep = sweep
        self._subscription = Subscription(sweep, lambda _: None, self._update, interval)
        self._subscription.flush()

    def _update(self) -> None:
        self.value = sweep_html(self.sweep) or f"<pre>{html.escape(repr(self.sweep))}</pre>"

    def counts(self) -> dict[str, int]:
        """The counts the view shows now: done, failed, running, pending, and left."""
        return sweep_counts(self.sweep.runs)

    def _static_data(self) -> dict[str, str]:
        return {"text/html": self.value}

    def __repr__(self) -> str:
        return f"<SweepView of {getattr(self, 'sweep', None)!r}>"


def sweep_view(sweep: Sweep) -> SweepView:
    """The live view of ``sweep`` (what :meth:`Sweep.view <nepi_lab.Sweep.view>` returns).

    Example
    -------
    >>> sweep_view(sweep)            # doctest: +SKIP
    """
    return SweepView(sweep)
