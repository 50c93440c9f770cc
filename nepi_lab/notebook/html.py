"""Rich HTML for the controller, its resources and sweeps (``_repr_html_``).

Plain HTML with inline styles only: no script, no stylesheet, no widget, so the
tables render the same in JupyterLab, in Voilà, on nbviewer and on GitHub, and in a
saved notebook long after the kernel is gone.  Only the standard library is used
here: ``ec._repr_html_`` must not load ipywidgets or matplotlib.

Two things keep them readable everywhere:

- Colours are JupyterLab's theme variables with a light fallback
  (``var(--jp-layout-color2, #f5f5f5)``): they follow JupyterLab's dark theme, and
  a page without those variables (GitHub, nbviewer, an old export) gets the light
  colours.  Only the state badges keep fixed colours, each with a text colour
  chosen for contrast on it.
- Attribute values are shell text (``$GREETING from $(hostname)``, ``${APP_HOME}``),
  which JupyterLab and nbconvert's pages would typeset as TeX between two ``$``.
  Every container carries :data:`NO_MATH`, the classes MathJax skips:
  ``mathjax_ignore`` (MathJax 3 and 4, JupyterLab 4) and ``tex2jax_ignore``
  (MathJax 2, nbconvert's and nbviewer's pages).

If building the HTML fails for any reason, the functions return ``None``; IPython
then shows the plain ``repr`` instead (the ``_repr_html_`` protocol), so a display
never raises.
"""

from __future__ import annotations

import html
import json
import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

from ..core.attributes import Flags, is_secret
from ..core.states import ResourceState
from ..runner.progress import estimate, format_duration
from .colors import STATE_COLORS, SWEEP_STATE_COLORS, text_color

if TYPE_CHECKING:
    from ..core.controller import ExperimentController
    from ..core.resource import ResourceManager
    from ..runner.sweep import Sweep

log = logging.getLogger("nepi_lab")

S = ResourceState

#: Rows shown by :func:`controller_html` unless told otherwise.
MAX_ROWS = 50
#: Characters of one attribute value shown in a table cell.
MAX_VALUE = 60
#: Points (rows) of a sweep shown by :func:`sweep_html` unless told otherwise.
MAX_POINTS = 1000

#: Classes that keep MathJax off the text inside (see the module docstring).
NO_MATH = "mathjax_ignore tex2jax_ignore"

_TABLE = "border-collapse:collapse;font-size:12px;font-family:sans-serif;margin-top:4px"
_TH = ("text-align:left;padding:2px 8px;border-bottom:1px solid var(--jp-border-color1, #999999);"
       "background:var(--jp-layout-color2, #f5f5f5);color:var(--jp-ui-font-color1, #000000)")
_TD = ("text-align:left;padding:2px 8px;border-bottom:1px solid var(--jp-border-color2, #e0e0e0);"
       "vertical-align:top")
_HEAD = "font-family:sans-serif;font-size:13px"
_MUTED = "color:var(--jp-content-font-color2, #757575)"
_ERROR = "color:var(--jp-error-color1, #c62828)"
#: Flags shown in the resource table (Credential and Filter imply Design).
_FLAGS = [(name, Flags[name]) for name in ("NoRead", "NoWrite", "Design", "Construct", "Credential",
                                           "Filter", "Reserved", "Global")]


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def state_badge(state: ResourceState, text: str | None = None) -> str:
    """A coloured ``<span>`` naming ``state`` (the colour of :data:`STATE_COLORS`)."""
    color = STATE_COLORS[state]
    return (f'<span data-state="{state.name}" style="background:{color};color:{text_color(color)};'
            f'padding:1px 6px;border-radius:8px;font-size:11px;white-space:nowrap">'
            f'{_e(text if text is not None else state.name)}</span>')


def released_badge(text: str = "released") -> str:
    """The secondary mark of a released resource: an outlined ``<span>`` in the RELEASED colour.

    It goes beside the outcome's badge, never instead of it.
    """
    return (f'<span data-released="true" style="border:2px solid {STATE_COLORS[S.RELEASED]};'
            f'padding:0 5px;border-radius:8px;font-size:11px;white-space:nowrap">{_e(text)}</span>')


def outcome_html(rm: ResourceManager) -> str:
    """The outcome's badge of ``rm`` (its state, or what it was released from), and the
    released mark if it is released."""
    outcome = rm.outcome
    badge = state_badge(outcome)
    return badge + " " + released_badge() if rm.state == S.RELEASED else badge


def _short(value: Any, limit: int = MAX_VALUE) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 1] + "…"


def key_attributes(rm: ResourceManager) -> dict[str, Any]:
    """The attributes of ``rm`` set to something else than their default.

    Secret ones (``Flags.NoRead``, ``Flags.Credential``) are masked.
    """
    values = rm.get_attribute_values()
    shown = {}
    for name, declaration in rm.get_attribute_declarations().items():
        value = values.get(name)
        if value is None or value == declaration.default:
            continue
        secret = is_secret(declaration)
        shown[name] = "••••" if secret else value
    return shown


def _attributes_cell(rm: ResourceManager) -> str:
    items = key_attributes(rm)
    items.pop("name", None)  # it has a column of its own
    if not items:
        return f'<span style="{_MUTED}">defaults</span>'
    return "<br>".join(f"<code>{_e(name)}</code>={_e(_short(value))}" for name, value in items.items())


def _failure_cell(rm: ResourceManager) -> str:
    failure = rm.failure
    if failure is None:
        return ""
    text = f"{failure.step}: {failure.error}: {failure.message}"
    title = failure.stderr_tail or text
    suffix = "" if failure.critical else " (non-critical)"
    return f'<span title="{_e(title)}" style="{_ERROR}">{_e(_short(text, 160))}{suffix}</span>'


def state_counts_html(counts: Counter[ResourceState] | dict[ResourceState, int]) -> str:
    """One badge per state present, in lifecycle order: ``READY 3``."""
    return " ".join(state_badge(s, f"{s.name} {counts[s]}") for s in S if counts.get(s))


def outcome_counts_html(counts: Counter[ResourceState] | dict[ResourceState, int], released: int = 0) -> str:
    """One badge per outcome present (see :func:`state_counts_html`), then ``released N``."""
    text = state_counts_html(counts)
    return f"{text} {released_badge(f'released {released}')}" if released else text


def _resources(ec: ExperimentController) -> list[ResourceManager]:
    rms = []
    for guid in ec.resources:
        try:
            rms.append(ec.get_resource(guid))
        except KeyError:  # removed meanwhile (hardRelease) by the controller's thread
            continue
    return rms


def controller_html(ec: ExperimentController, max_rows: int = MAX_ROWS) -> str | None:
    """The controller as HTML: identity, counts by state, and a table of resources.

    Columns: guid, name, type, outcome (the state, or once released the state it
    was released from, with a "released" mark beside it), the attributes that
    differ from their defaults, connections, and the failure reason; the counts
    are by outcome.  At most ``max_rows`` rows are shown (the
    counts always cover every resource).  Returns None if it cannot be built, so
    that IPython falls back to the plain ``repr``.
    """
    try:
        return _controller_html(ec, max_rows)
    except Exception:  # a display must never raise; IPython shows repr() instead
        log.debug("controller_html failed", exc_info=True)
        return None


def _controller_html(ec: ExperimentController, max_rows: int) -> str:
    rms = _resources(ec)
    counts = Counter(rm.outcome for rm in rms)
    released = sum(1 for rm in rms if rm.state == S.RELEASED)
    failures = ec.failures
    head = (
        f'<div class="nepi-controller {NO_MATH}" style="{_HEAD}">'
        f"<b>ExperimentController</b> <code>{_e(ec.exp_id)}</code> run <code>{_e(ec.run_id)}</code> "
        f"· <b>{_e(ec.ecstate.name)}</b> · {len(rms)} resource{'s' if len(rms) != 1 else ''} "
        f"{outcome_counts_html(counts, released)}"
        f'<div style="{_MUTED};font-size:11px">{_e(ec.run_dir)}</div>'
    )
    if failures:
        head += (f'<div style="{_ERROR};font-size:12px">{len(failures)} failure'
                 f'{"s" if len(failures) != 1 else ""}; first: {_e(_short(str(failures[0]), 200))}</div>')
    if not rms:
        return head + f'<div style="{_MUTED}">no resources yet: ec.register_resource(...)</div></div>'
    rows = []
    for rm in rms[:max_rows]:
        connections = ", ".join(str(g) for g in sorted(rm.connections))
        rows.append(
            f'<tr data-guid="{rm.guid}" data-state="{rm.state.name}" data-outcome="{rm.outcome.name}">'
            f'<td style="{_TD}">{rm.guid}</td>'
            f'<td style="{_TD}">{_e(rm.name or "")}</td>'
            f'<td style="{_TD}"><code>{_e(rm.get_rtype())}</code></td>'
            f'<td style="{_TD}">{outcome_html(rm)}</td>'
            f'<td style="{_TD}">{_attributes_cell(rm)}</td>'
            f'<td style="{_TD}">{_e(connections)}</td>'
            f'<td style="{_TD}">{_failure_cell(rm)}</td></tr>'
        )
    more = ""
    if len(rms) > max_rows:
        more = f'<div style="{_MUTED};font-size:11px">… and {len(rms) - max_rows} more resources</div>'
    header = "".join(f'<th style="{_TH}">{h}</th>'
                     for h in ("guid", "name", "type", "outcome", "attributes", "connected to", "failure"))
    return (head + f'<table class="nepi-resources" style="{_TABLE}"><thead><tr>{header}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>{more}</div>')


def resource_html(rm: ResourceManager) -> str | None:
    """One resource as HTML: state, what it waits for, every attribute, conditions,
    traces, state times and the failure record.  None if it cannot be built."""
    try:
        return _resource_html(rm)
    except Exception:  # a display must never raise; IPython shows repr() instead
        log.debug("resource_html failed", exc_info=True)
        return None


def _resource_html(rm: ResourceManager) -> str:
    ec = rm.ec
    try:
        explanation = ec.explain(rm.guid)
    except Exception:  # removed from the controller (hardRelease)
        explanation = ""
    values = rm.get_attribute_values()
    rows = []
    for name, declaration in rm.get_attribute_declarations().items():
        value = values.get(name)
        secret = is_secret(declaration)
        shown = "••••" if secret and value is not None else ("" if value is None else _short(value, 120))
        changed = value is not None and value != declaration.default
        flags = ", ".join(name for name, flag in _FLAGS if declaration.has_flag(flag))
        rows.append(
            f'<tr title="{_e(declaration.help)}"><td style="{_TD}"><code>{_e(name)}</code></td>'
            f'<td style="{_TD}{";font-weight:bold" if changed else ""}">{_e(shown)}</td>'
            f'<td style="{_TD};{_MUTED}">{_e(declaration.type.name)}</td>'
            f'<td style="{_TD};{_MUTED}">{_e(flags)}</td>'
            f'<td style="{_TD};{_MUTED}">{_e(declaration.help)}</td></tr>'
        )
    header = "".join(f'<th style="{_TH}">{h}</th>' for h in ("attribute", "value", "type", "flags", "help"))
    parts = [
        f'<div class="nepi-resource {NO_MATH}" data-guid="{rm.guid}" data-state="{rm.state.name}" '
        f'data-outcome="{rm.outcome.name}" style="{_HEAD}">'
        f'{f"<b>{_e(rm.name)}</b> " if rm.name else ""}'
        f"<b>{_e(rm.get_rtype())}</b> guid {rm.guid} {outcome_html(rm)}"
        f'{"" if rm.critical else " <i>non-critical</i>"}'
    ]
    if explanation:
        parts.append(f'<div style="{_MUTED};font-size:12px">{_e(explanation)}</div>')
    if rm.failure is not None:
        f = rm.failure
        detail = f"{f.step}: {f.error}: {f.message}"
        if f.command:
            detail += f" — command {f.command!r} exited with {f.returncode}"
        parts.append(f'<div style="{_ERROR};font-size:12px">failed in {_e(detail)}</div>')
        if f.stderr_tail:
            parts.append('<pre style="font-size:11px;padding:4px;margin:2px 0;'
                         'background:var(--jp-rendermime-error-background, #fff3f3)">'
                         f"{_e(f.stderr_tail[-1000:])}</pre>")
    extras = []
    if rm.connections:
        extras.append("connected to " + ", ".join(str(g) for g in sorted(rm.connections)))
    for conditions in rm.conditions.values():
        extras.extend(c.describe() for c in conditions)
    traces = [name for name in rm.get_trace_declarations() if rm.trace_enabled(name)]
    if traces:
        extras.append("traces: " + ", ".join(traces))
    times = [f"{s.name} {t:%H:%M:%S.%f}"[:-3] for s in S if (t := rm.state_time(s)) is not None]
    if times:
        extras.append(" → ".join(times))
    parts.extend(f'<div style="font-size:12px">{_e(x)}</div>' for x in extras)
    parts.append(f'<table style="{_TABLE}"><thead><tr>{header}</tr></thead>'
                 f'<tbody>{"".join(rows)}</tbody></table>')
    parts.append("</div>")
    return "".join(parts)


# == sweeps ============================================================================

#: A sweep's run states, in the order their counts are shown.
SWEEP_STATES = ("done", "failed", "running", "pending")
_SWATCH = "display:inline-block;width:10px;height:10px;border-radius:2px;vertical-align:-1px"
#: A point's parameter value (left-aligned also where the page right-aligns table cells).
_LABEL = "padding:0 8px;text-align:left"
#: Side of a run's square, in pixels.
_SQUARE = 16


def sweep_html(sweep: Sweep, max_points: int = MAX_POINTS) -> str | None:
    """A sweep as HTML: one row per point (its parameter values), one square per
    repetition coloured by its run's state (a failed run's square says why in its
    tooltip), the counts, and an estimate of the time left while runs are being made.
    None if it cannot be built.

    Cheap enough to rebuild at every change of a 1,000-run sweep: one string, one
    ``<td>`` per run.
    """
    try:
        return _sweep_html(sweep, max_points)
    except Exception:  # a display must never raise; IPython shows repr() instead
        log.debug("sweep_html failed", exc_info=True)
        return None


def sweep_counts(runs: list[dict[str, Any]]) -> dict[str, int]:
    """How many of ``runs`` (a sweep's record entries) are in each state, and ``left``:
    the runs still to make (pending or running)."""
    counts = dict.fromkeys(SWEEP_STATES, 0)
    for entry in runs:
        counts[entry["state"]] += 1
    counts["left"] = counts["pending"] + counts["running"]
    return counts


def _sweep_html(sweep: Sweep, max_points: int) -> str:
    runs = sweep.runs
    points, parameters, repetitions = sweep.points, sweep.parameters, sweep.repetitions
    counts = sweep_counts(runs)
    head = [f"<b>sweep {_e(sweep.exp_id)}</b>: {len(points)} point{'s' * (len(points) != 1)} × "
            f"{repetitions} repetition{'s' * (repetitions != 1)}"]
    for state in SWEEP_STATES:
        head.append(f'<span data-count="{state}" style="white-space:nowrap">'
                    f'<span style="{_SWATCH};background:{SWEEP_STATE_COLORS[state]}"></span> '
                    f"{counts[state]} {state}</span>")
    if counts["running"]:
        # runs at once now: what the sweep's max_parallel allows, as far as the view can tell
        eta = estimate(runs, counts["left"], counts["running"])
        if eta is not None:
            head.append(f'<span class="nepi-sweep-eta" style="white-space:nowrap">'
                        f"about {format_duration(eta)} left</span>")
    abandoned = len(sweep.abandoned)
    if abandoned:
        head.append(f'<span style="{_MUTED}">{abandoned} abandoned (made again)</span>')
    header = (f'<div class="nepi-sweep-counts" data-counts="{_e(json.dumps(counts))}" '
              f'style="margin-bottom:2px">{" · ".join(head)}</div>')

    by_point: dict[int, dict[int, dict[str, Any]]] = {}
    for entry in runs:
        by_point.setdefault(entry["point"], {})[entry["repetition"]] = entry
    names = "".join(f'<th style="{_TH}">{_e(name)}</th>' for name in parameters)
    numbers = "".join(f'<th style="{_TH};padding:2px 0;text-align:center;font-weight:normal">{r}</th>'
                      for r in range(repetitions))
    label = "" if not parameters else f'<th colspan="{len(parameters)}" style="{_TH}">point</th>'
    thead = (f'<thead><tr>{label}<th colspan="{repetitions}" style="{_TH}">repetition</th></tr>'
             f"<tr>{names}{numbers}</tr></thead>")
    # the sizes go on the columns and rows, not on each of the (maybe 1,000) squares
    columns = (f'<colgroup>{f"<col span={len(parameters)}>" if parameters else ""}'
               f'<col span="{repetitions}" style="width:{_SQUARE}px;min-width:{_SQUARE}px"></colgroup>')
    # a row is as high as its labels' line; only a sweep without parameters sizes its rows
    height = "" if parameters else f' style="height:{_SQUARE}px"'
    rows = []
    for index, point in enumerate(points[:max_points]):
        values = "".join(f'<td style="{_LABEL}">{_e(_short(point.get(name, ""), 30))}</td>'
                         for name in parameters)
        cells = "".join(_run_cell(by_point.get(index, {}).get(r), r) for r in range(repetitions))
        rows.append(f'<tr data-point="{index}"{height}>{values}{cells}</tr>')
    more = ""
    if len(points) > max_points:
        more = (f'<div style="{_MUTED};font-size:11px">… and {len(points) - max_points} more points '
                "(sweep.frame() has every run)</div>")
    return (f'<div class="nepi-sweep {NO_MATH}" data-exp-id="{_e(sweep.exp_id)}" '
            f'style="font-family:sans-serif;font-size:12px">{header}'
            f'<table style="border-collapse:separate;border-spacing:2px;font-size:12px;'
            f'line-height:{_SQUARE}px">'
            f'{columns}{thead}<tbody>{"".join(rows)}</tbody></table>{more}</div>')


def _run_cell(entry: dict[str, Any] | None, repetition: int) -> str:
    """One run's square: its state's colour, and a tooltip that says how it went (its
    row names the point)."""
    if entry is None:  # a record that lacks the run (never made by this nepi_lab)
        return "<td></td>"
    state = entry["state"]
    if state == "pending":  # nothing to tell: the shortest cell (most are, in a big sweep's first frames)
        return f'<td data-state="pending" style="background:{SWEEP_STATE_COLORS[state]}"></td>'
    title = f"repetition {repetition}: {state}"
    start, end = entry.get("start"), entry.get("end")
    if state in ("done", "failed") and start is not None and end is not None:
        title += f" in {end - start:.2f} s"
    if entry.get("failure"):
        title += f": {_short(entry['failure'], 300)}"
    if entry.get("run_dir"):
        title += f"\n{entry['run_dir']}"
    # a failure is also marked by a cross, for readers who do not tell red from green
    mark, ink = ("✕", ";color:#ffffff;text-align:center;font-size:10px") if state == "failed" else ("", "")
    return (f'<td data-state="{state}" title="{_e(title)}" '
            f'style="background:{SWEEP_STATE_COLORS[state]}{ink}">{mark}</td>')
