"""A lab's checks, live: one row per check turning green or red as the run gets there.

:class:`ChecksView` shows a :class:`~nepi_lab.lab.Lab`'s checks against a controller
(live) or a run directory (once): each check's status, the value observed, what was
expected and the points, and the total.

How it follows a controller (see :mod:`nepi_lab.notebook._schedule`): it subscribes to
``ec.events``; an event only asks for an update, and the update (at most 10 a second,
in the view's thread) finds which checks are *due*: those whose resources (named, of
their types, or all, as :meth:`~nepi_lab.lab.Check.depends_on` says) changed state
since the check was last evaluated.  A check that reads a trace is evaluated only once
that trace's resource has ended (FINISHED, FAILED, STOPPED or released): a trace read
halfway says nothing.  The due checks are evaluated against one fresh
:class:`~nepi_lab.lab.Context` in a short-lived thread of their own (reading traces
and parsing them never holds up the kernel's loop or the controller's; one such thread
at a time, ended once its checks are evaluated), and the view shows the results at its
next update.

A result is final once :meth:`Check.decided <nepi_lab.lab.Check.decided>` says so
(every resource the check reads has ended, the experiment is over, or the result can
no longer change, as a state once reached); until then the row is *pending* and shows
the value observed so far, in grey.  A final result is never evaluated again: after
``ec.shutdown()`` the view still shows what each check found.
"""

from __future__ import annotations

import html
import json
import logging
import os
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ..core.controller import ExperimentController
from ..core.states import ECState, ResourceState
from ..lab import Check, CheckResult, Context, Lab
from ._schedule import UPDATE_INTERVAL, Subscription
from ._static import StaticFallback
from .colors import STATE_COLORS, text_color
from .html import _MUTED, _TABLE, _TD, _TH, NO_MATH

if TYPE_CHECKING:
    from ..analysis.run import Run

log = logging.getLogger("nepi_lab")

S = ResourceState

#: The statuses of a row.
PENDING, PASSED, FAILED, UNEVALUABLE = "pending", "passed", "failed", "cannot-evaluate"
STATUSES = (PASSED, FAILED, UNEVALUABLE, PENDING)
#: The colour of each status (those of FINISHED and FAILED; amber for a check that
#: could not be evaluated; NEW's grey while pending).
STATUS_COLORS = {PASSED: STATE_COLORS[S.FINISHED], FAILED: STATE_COLORS[S.FAILED],
                 UNEVALUABLE: "#fb8c00", PENDING: STATE_COLORS[S.NEW]}
#: What a status is called in the table.
STATUS_LABELS = {PASSED: "passed", FAILED: "failed", UNEVALUABLE: "cannot evaluate", PENDING: "pending"}
#: States in which a resource has ended.
ENDED = (S.FINISHED, S.FAILED, S.STOPPED, S.RELEASED)
#: Characters of an observed value shown in a cell.
MAX_OBSERVED = 80


class ChecksView(StaticFallback, widgets.HTML):
    """A lab's checks as a table that fills in as the experiment runs.

    One row per check: its status (pending, passed, failed, cannot evaluate), its
    name, the value observed, what was expected and the points earned, the message
    as the row's tooltip; then the total.  Against a controller it follows
    ``ec.events`` (see the module docstring: only the checks whose resources changed
    are evaluated again, off the kernel's and the controller's threads); against a
    run directory (or a :class:`~nepi_lab.analysis.Run`) it is evaluated once.  Its
    output also holds the table as plain ``text/html``, refreshed after each cell,
    for readers without a kernel.

    Parameters
    ----------
    source : ExperimentController, run directory path or Run
    lab : Lab, a list of checks, or a spec file's path (:meth:`Lab.load`)
    interval : float
        Minimum seconds between two updates.

    Example
    -------
    >>> from nepi_lab.lab import Lab, Reachable, State       # doctest: +SKIP
    >>> ChecksView(ec, Lab([State("ping"), Reachable("ping")]))  # doctest: +SKIP
    """

    css_class = "nepi-checks"

    def __init__(self, source: ExperimentController | str | os.PathLike[str] | Run,
                 lab: Lab | Iterable[Check] | str | os.PathLike[str], interval: float = UPDATE_INTERVAL,
                 **kwargs: Any) -> None:
        # what is refused (a bad lab or source) is refused before any widget is made
        checked_lab = _as_lab(lab)
        ec = source if isinstance(source, ExperimentController) else None
        once = Context(source) if ec is None or ec.ecstate == ECState.TERMINATED else None
        super().__init__(**kwargs)
        self.add_class(self.css_class)
        self.lab = checked_lab
        self.source = source
        self.ec = ec
        checks = self.lab.checks
        self._results: list[CheckResult | None] = [None] * len(checks)
        self._statuses: list[str] = [PENDING] * len(checks)
        self._seen: list[Any] = [None] * len(checks)  # the dependencies' states at the last evaluation
        #: How many times each check was evaluated, by name.
        self.evaluations: dict[str, int] = {c.title: 0 for c in checks}
        self.renders = 0  #: times the table was rebuilt
        self._lock = threading.Lock()  # guards the results (the worker writes, the view reads)
        self._evaluating = threading.Lock()  # one evaluation at a time (the worker, or update())
        self._worker: threading.Thread | None = None
        self._subscription: Subscription | None = None
        if once is not None:
            # a run directory, or a controller shut down: nothing will change, evaluate once
            self._evaluate(list(range(len(checks))), once, over=True)
            self._render()
            return
        assert ec is not None
        self._subscription = Subscription(ec, lambda event: None, self._update, interval)
        self._subscription.flush()

    # -- reading it -------------------------------------------------------------------

    @property
    def statuses(self) -> dict[str, str]:
        """Each check's status now: ``pending``, ``passed``, ``failed`` or ``cannot-evaluate``."""
        with self._lock:
            return {c.title: s for c, s in zip(self.lab.checks, self._statuses, strict=True)}

    @property
    def results(self) -> dict[str, CheckResult | None]:
        """Each check's last result (None: not evaluated yet); a pending one may still change."""
        with self._lock:
            return {c.title: r for c, r in zip(self.lab.checks, self._results, strict=True)}

    @property
    def total(self) -> dict[str, Any]:
        """``points`` earned (by passed checks), ``max_points``, ``percent``, and how many
        checks are in each status."""
        with self._lock:
            statuses, results = list(self._statuses), list(self._results)
        earned = sum(r.points for s, r in zip(statuses, results, strict=True)
                     if s == PASSED and r is not None)
        best = self.lab.max_points
        total: dict[str, Any] = {"points": earned, "max_points": best,
                                 "percent": round(100 * earned / best, 1) if best else 100.0}
        total.update({s: statuses.count(s) for s in STATUSES})
        return total

    @property
    def done(self) -> bool:
        """Whether no check is pending any more."""
        with self._lock:
            return PENDING not in self._statuses

    @property
    def frozen(self) -> bool:
        """Whether the view no longer follows the controller (always, for a run directory)."""
        return self._subscription is None or self._subscription.coalescer.closed

    # -- following the controller --------------------------------------------------------

    def refresh(self) -> None:
        """Update soon (coalesced with the event-driven updates)."""
        if self._subscription is not None:
            self._subscription.request()

    def update(self) -> None:
        """Evaluate the checks that are due now, in the caller's thread, and show them
        (normally the view does it by itself; this runs after each cell)."""
        if self.frozen:
            return
        ec = self.ec
        assert ec is not None and self._subscription is not None
        if ec._runner.in_loop_thread():  # never evaluate on the controller's loop
            self.refresh()
            return
        with self._evaluating:
            due, over, index = self._due()
            if due:
                self._evaluate(due, Context(ec), over, index)
        self._subscription.flush()

    def freeze(self) -> None:
        """Show the results now, then stop following (the table stays as it is)."""
        self.update()
        if self._subscription is not None:
            self._subscription.close()

    def _update(self) -> None:
        # in the view's thread, at most once per interval: start evaluating what is due
        # (in a thread of its own), show what is known
        worker = self._worker
        if worker is None or not worker.is_alive():
            due, over, index = self._due()
            if due:
                self._worker = threading.Thread(target=self._work, args=(due, over, index), daemon=True,
                                                name="nepi_lab-checks")
                self._worker.start()
        self._render()

    def _work(self, due: list[int], over: bool, index: dict[int, tuple[Any, str, ResourceState]]) -> None:
        try:
            with self._evaluating:
                # update() may have evaluated some meanwhile: only those still to do
                due = [i for i in due if self._statuses[i] == PENDING and self._seen[i] != _seen(
                    self.lab.checks[i], index, over)]
                if due:
                    self._evaluate(due, Context(self.ec), over, index)
        except Exception:  # a view must never break anything
            log.exception("evaluating the checks failed")
        finally:
            if self._subscription is not None:
                self._subscription.request()  # show them; evaluate what became due meanwhile

    def _index(self) -> dict[int, tuple[Any, str, ResourceState]]:
        """Each resource's name, type and state, now."""
        ec = self.ec
        assert ec is not None
        index = {}
        for guid in ec.resources:
            try:
                rm = ec.get_resource(guid)
            except KeyError:  # removed meanwhile (hardRelease)
                continue
            index[guid] = (rm.name, rm.get_rtype(), rm.state)
        return index

    def _due(self) -> tuple[list[int], bool, dict[int, tuple[Any, str, ResourceState]]]:
        """The checks to evaluate now (pending, their resources' states changed since
        their last evaluation, the resources of their traces ended), whether the run is
        over, and the resources as they were read."""
        ec = self.ec
        assert ec is not None
        over = ec.ecstate != ECState.RUNNING
        index = self._index()
        due = []
        for i, check in enumerate(self.lab.checks):
            if self._statuses[i] != PENDING or self._seen[i] == _seen(check, index, over):
                continue  # decided (never evaluated again), or nothing it reads changed
            traces = check.depends_on().traces
            if over or all(_ended((ref,), (), False, index) for ref, _ in traces):
                due.append(i)
        return due, over, index

    def _evaluate(self, due: list[int], ctx: Context, over: bool,
                  index: dict[int, tuple[Any, str, ResourceState]] | None = None) -> None:
        """Evaluate checks ``due`` against ``ctx`` and record what they found.  ``index``:
        the resources as read before (a change during the evaluation makes a check due
        again); None for a run directory (everything has ended)."""
        for i in due:
            check = self.lab.checks[i]
            result = check.evaluate(ctx)
            if index is None or over:
                seen, decided = None, True
            else:
                deps = check.depends_on()
                seen = _seen(check, index, over)
                try:
                    decided = check.decided(result, _ended(deps.resources, deps.types, deps.all_resources,
                                                           index))
                except Exception:  # a check's own rule failing: wait for the end
                    log.exception("%s.decided failed", type(check).__name__)
                    decided = False
            status = PENDING if not decided else (PASSED if result.passed else
                                                  FAILED if result.evaluated else UNEVALUABLE)
            with self._lock:
                self._results[i], self._statuses[i], self._seen[i] = result, status, seen
                self.evaluations[check.title] += 1

    # -- the table ---------------------------------------------------------------------

    def _render(self) -> None:
        self.value = checks_html(self.lab, self.results, self.statuses)
        self.renders += 1

    def _static_refresh(self) -> None:
        self.update()

    def _static_data(self) -> dict[str, str]:
        return {"text/html": self.value}

    def close(self) -> None:
        """Stop following the controller and close the widget."""
        subscription = getattr(self, "_subscription", None)  # None too if __init__ refused
        if subscription is not None:
            subscription.close()
        super().close()

    def __repr__(self) -> str:
        if not hasattr(self, "_statuses"):
            return f"<{type(self).__name__}>"
        total = self.total
        counts = ", ".join(f"{total[s]} {s}" for s in STATUSES if total[s])
        return f"<{type(self).__name__}: {total['points']:g}/{total['max_points']:g} points; {counts}>"


def _as_lab(lab: Any) -> Lab:
    if isinstance(lab, Lab):
        return lab
    if isinstance(lab, (str, os.PathLike)):
        return Lab.load(lab)
    return Lab(lab)


def _resolve(refs: Iterable[Any], types: Iterable[str], everything: bool,
             index: dict[int, tuple[Any, str, ResourceState]]) -> tuple[set[int], bool]:
    """The guids that ``refs`` (names or guids), ``types`` (or everything) stand for, and
    whether a name or guid stands for none (yet)."""
    if everything:
        return set(index), False
    guids: set[int] = set()
    missing = False
    for ref in refs:
        if isinstance(ref, int) and not isinstance(ref, bool):
            found = {ref} if ref in index else set()
        else:
            found = {g for g, (name, _, _) in index.items() if name == ref}
        missing = missing or not found
        guids |= found
    for rtype in types:
        found = {g for g, (_, t, _) in index.items() if t == rtype}
        missing = missing or not found
        guids |= found
    return guids, missing


def _seen(check: Check, index: dict[int, tuple[Any, str, ResourceState]], over: bool) -> Any:
    """What a check's evaluation depends on in the controller: its resources' states."""
    deps = check.depends_on()
    guids, missing = _resolve(deps.resources, deps.types, deps.all_resources, index)
    return tuple((g, index[g][2]) for g in sorted(guids)), missing, over


def _ended(refs: Iterable[Any], types: Iterable[str], everything: bool,
           index: dict[int, tuple[Any, str, ResourceState]]) -> bool:
    """Whether every resource these stand for has ended (and each stands for one)."""
    guids, missing = _resolve(refs, types, everything, index)
    return not missing and all(index[g][2] in ENDED for g in guids)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _observed(value: Any) -> str:
    if value is None:
        return ""
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return text if len(text) <= MAX_OBSERVED else text[:MAX_OBSERVED - 1] + "…"


def _badge(status: str) -> str:
    color = STATUS_COLORS[status]
    return (f'<span class="nepi-check-status" style="background:{color};color:{text_color(color)};'
            f'padding:1px 6px;border-radius:8px;font-size:11px;white-space:nowrap">'
            f"{STATUS_LABELS[status]}</span>")


def checks_html(lab: Lab, results: dict[str, CheckResult | None], statuses: dict[str, str]) -> str:
    """The checks as an HTML table (what :class:`ChecksView` shows): one row per check
    with ``data-check`` (its name) and ``data-status``, then the total; the head carries
    ``data-total`` (JSON).  Plain HTML, inline styles only (see :mod:`nepi_lab.notebook.html`)."""
    rows = []
    earned = 0.0
    counts = dict.fromkeys(STATUSES, 0)
    for check in lab.checks:
        name = check.title
        status, result = statuses[name], results[name]
        counts[status] += 1
        observed, message = "", ""
        if result is not None:
            observed, message = _observed(result.observed), result.message
            if status == PENDING:
                observed = f'<span style="{_MUTED}" title="so far">{_e(observed)}</span>' if observed else ""
                message = f"so far: {message}"
            else:
                observed = _e(observed)
        if status == PASSED and result is not None:
            earned += result.points
        points = f"{result.points:g}" if status == PASSED and result is not None else "0" \
            if status in (FAILED, UNEVALUABLE) else "–"
        note = "" if status != UNEVALUABLE or result is None else \
            f'<div style="{_MUTED};font-size:11px;max-width:560px">{_e(result.message[:200])}</div>'
        rows.append(
            f'<tr class="nepi-check" data-check="{_e(name)}" data-status="{status}" title="{_e(message)}">'
            f'<td style="{_TD}">{_badge(status)}</td>'
            f'<td style="{_TD}">{_e(name)}{note}</td>'
            f'<td style="{_TD}" class="nepi-check-observed">{observed}</td>'
            f'<td style="{_TD}">{_e(result.expected if result is not None else check.expected())}</td>'
            f'<td style="{_TD};text-align:right;white-space:nowrap">{points} / {check.points:g}</td></tr>')
    best = lab.max_points
    percent = round(100 * earned / best, 1) if best else 100.0
    total = {"points": earned, "max_points": best, "percent": percent, **counts}
    parts = [f"{counts[s]} {STATUS_LABELS[s]}" for s in STATUSES if counts[s]]
    verdict = "grade" if not counts[PENDING] else "so far"
    title = f"<b>{_e(lab.title)}</b>: " if lab.title else ""
    head = (f'<div class="nepi-checks-total" data-total="{_e(json.dumps(total))}" '
            f'style="font-size:13px;margin-bottom:2px">{title}{verdict} <b>{earned:g} / {best:g}</b> points '
            f'({percent:g} %) · {" · ".join(parts)}</div>')
    header = "".join(f'<th style="{_TH}">{h}</th>'
                     for h in ("status", "check", "observed", "expected", "points"))
    return (f'<div class="nepi-checks-table {NO_MATH}" style="font-family:sans-serif;font-size:12px;'
            f'line-height:1.4">{head}'
            f'<table style="{_TABLE}"><thead><tr>{header}</tr></thead><tbody>{"".join(rows)}</tbody>'
            f'<tfoot><tr><td style="{_TD}" colspan="4"><b>total</b></td>'
            f'<td style="{_TD};text-align:right"><b>{earned:g} / {best:g}</b></td></tr></tfoot>'
            "</table></div>")
