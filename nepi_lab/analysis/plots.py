"""Plots of a run (its timeline, ping round-trip times, iperf3 throughput) and of a sweep.

Each function takes a source (an ExperimentController, a run directory, a
:class:`~nepi_lab.analysis.Run`) or, for the measurement plots, a frame from
:func:`~nepi_lab.analysis.trace_frame`, draws on ``ax`` (a new figure when None) and
returns the matplotlib ``Axes``.  matplotlib is imported inside the functions.

Example
-------
>>> from nepi_lab.analysis import plot_timeline                   # doctest: +SKIP
>>> ax = plot_timeline(ec.run_dir)                                # doctest: +SKIP
>>> ax.figure.savefig("timeline.png", dpi=120)                    # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..core.errors import InvalidInputError
from .run import as_runs, events_frame, trace_frame

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

#: The colour of each state, by name: the same as the notebook layer's
#: ``nepi_lab.notebook.STATE_COLORS`` (which this layer, below it, cannot import; a
#: test keeps the two equal).  Deployment in blues, READY amber, running blue,
#: STOPPED purple, FINISHED green, FAILED red, RELEASED dark grey.
STATE_COLOURS = {
    "NEW": "#e0e0e0",
    "DISCOVERED": "#c6dbef",
    "RESERVED": "#9ecae1",
    "PROVISIONED": "#6baed6",
    "READY": "#ffc107",
    "STARTED": "#1e88e5",
    "STOPPED": "#8e24aa",
    "FINISHED": "#43a047",
    "FAILED": "#e53935",
    "RELEASED": "#616161",
}


def _axes(ax: Axes | None, size: tuple[float, float]) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=size, layout="constrained")
    return ax


def _one_run(source: Any, what: str) -> Any:
    runs = as_runs(source)
    if len(runs) != 1:
        raise InvalidInputError(f"{what} draws one run; this source holds {len(runs)} "
                                f"(pick one: {what}(runs[i]))")
    return runs[0]


#: Ring of a released resource's outcome dot (the RELEASED colour), as in the notebook views.
RELEASED_RING = STATE_COLOURS["RELEASED"]


def plot_timeline(source: Any, ax: Axes | None = None) -> Axes:
    """One row per resource, bars coloured by state from its deployment to its release.

    The x axis counts seconds from the first deployment step.  A state still
    current when the data was read is drawn up to the last event, hatched.
    Failures are marked with a red cross and the failure's first words.  Each row
    ends with a dot of its *outcome* colour (the last state, or for a released
    resource the state it was released from, read from the events), ringed in grey
    once released: as in the notebook views, "released" never hides the outcome.
    Rows are labelled ``"<guid>  <name> · <type>"`` (``"<guid>  <type>"`` without a name).

    Example
    -------
    >>> ax = plot_timeline(ec.run_dir)                                 # doctest: +SKIP
    >>> ax.figure.savefig("timeline.png", dpi=120)                     # doctest: +SKIP
    """
    import numpy as np
    from matplotlib.patches import Patch

    run = _one_run(source, "plot_timeline")
    events = events_frame(run)
    ax = _axes(ax, (9, 1.2 + 0.45 * max(1, events["guid"].nunique())))
    if events.empty:
        ax.set_title(f"{run.exp_id} / {run.run_id}: no events")
        return ax
    events = events.sort_values(["guid", "time"], kind="stable")
    deployed = events[events["to"] != "NEW"]
    origin = (deployed if len(deployed) else events)["time"].min()
    seconds = (events["time"] - origin).dt.total_seconds().to_numpy()
    end = seconds.max()
    guid = events["guid"].to_numpy()
    state = events["to"].astype(str).to_numpy()
    following = np.append(seconds[1:], end)
    last = np.append(guid[1:] != guid[:-1], True)  # the resource's last event
    following[last] = end
    drawn = (state != "NEW") & (state != "RELEASED")
    order = {g: i for i, g in enumerate(dict.fromkeys(guid.tolist()))}
    rows = np.array([order[g] for g in guid.tolist()])
    widths = np.maximum(following - seconds, end * 0.002)  # instants stay visible
    ax.barh(rows[drawn], widths[drawn], left=seconds[drawn], height=0.6,
            color=[STATE_COLOURS[s] for s in state[drawn]], edgecolor="white", linewidth=0.5)
    current = drawn & last
    if current.any():  # still in that state: hatched, open-ended
        ax.barh(rows[current], widths[current], left=seconds[current], height=0.6, fill=False,
                hatch="///", edgecolor="#555555", linewidth=0)
    # the outcome at the end of each row: the state released from, else the last one
    released_from = events["from"].astype(str).to_numpy()
    outcome_x, outcome_y, outcome_colours, rings = [], [], [], []
    for g, row in order.items():
        mine = np.flatnonzero(guid == g)
        final = mine[-1]
        is_released = state[final] == "RELEASED"
        outcome = state[final]
        if is_released and released_from[final] in STATE_COLOURS:
            outcome = released_from[final]
        shown = mine[drawn[mine]]
        outcome_x.append(seconds[final] if is_released or not len(shown) else following[shown[-1]])
        outcome_y.append(row)
        outcome_colours.append(STATE_COLOURS.get(outcome, STATE_COLOURS["NEW"]))
        rings.append(RELEASED_RING if is_released else "#424242")
    ax.scatter(outcome_x, outcome_y, s=70, c=outcome_colours, edgecolors=rings,
               linewidths=[2.2 if r == RELEASED_RING else 0.8 for r in rings], zorder=3.5)
    failed = state == "FAILED"
    reasons = _failure_reasons(run)
    details = events["detail"].fillna("").astype(str).to_numpy()
    for x, y, g, detail in zip(seconds[failed], rows[failed], guid[failed], details[failed], strict=False):
        ax.plot([x], [y], marker="X", color="#a50f15", markeredgecolor="white", markersize=11, zorder=3)
        reason = reasons.get(int(g)) or detail
        if reason:
            short = reason if len(reason) <= 70 else reason[:67] + "..."
            ax.annotate(short, (x, y), xytext=(8, 0), textcoords="offset points", va="center", fontsize=8,
                        color="#67000d", zorder=4,
                        bbox={"boxstyle": "round,pad=0.25", "facecolor": "white", "edgecolor": "#de2d26",
                              "alpha": 0.9})
    types = dict(zip(events["guid"], events["type"], strict=False))
    names = _names(run)
    ax.set_yticks(range(len(order)), [f"{g}  {names[g]} \u00b7 {types[g]}" if names.get(g)
                                      else f"{g}  {types[g]}" for g in order])
    ax.set_ylim(len(order) - 0.5, -0.5)
    ax.set_xlim(-0.01 * end if end > 0 else -0.01, end * 1.02 if end > 0 else 1.0)
    ax.set_xlabel("seconds since deployment began")
    ax.set_title(f"{run.exp_id} / {run.run_id}")
    ax.grid(axis="x", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    from matplotlib.lines import Line2D

    present = [s for s in STATE_COLOURS if s in set(state[drawn]) | set(_colour_names(outcome_colours))]
    handles = [Patch(facecolor=STATE_COLOURS[s], label=s) for s in present]
    handles.append(Line2D([], [], marker="o", linestyle="", markerfacecolor="white",
                          markeredgecolor="#424242", markersize=8, label="outcome (row end)"))
    if RELEASED_RING in rings:
        handles.append(Line2D([], [], marker="o", linestyle="", markerfacecolor="white",
                              markeredgecolor=RELEASED_RING, markeredgewidth=2.2, markersize=8,
                              label="released (grey ring)"))
    if failed.any():
        handles.append(Line2D([], [], marker="X", color="#a50f15", linestyle="", label="failure"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False, fontsize=8)
    return ax


def _colour_names(colours: list[str]) -> set[str]:
    """The state names of these colours."""
    names = {colour: name for name, colour in STATE_COLOURS.items()}
    return {names[c] for c in colours if c in names}


def _names(run: Any) -> dict[int, str]:
    """``{guid: name}`` of the resources that have one (the ``name`` attribute)."""
    found = {}
    for resource in run.description().get("resources", ()):
        if isinstance(resource, dict):
            name = (resource.get("attributes") or {}).get("name")
            if isinstance(resource.get("guid"), int) and name:
                found[resource["guid"]] = str(name)
    return found


def _failure_reasons(run: Any) -> dict[int, str]:
    """``{guid: "error: message"}`` of the run's failure records (the first per resource)."""
    reasons: dict[int, str] = {}
    for failure in run.description().get("failures", ()):
        if isinstance(failure, dict) and isinstance(failure.get("guid"), int):
            reasons.setdefault(failure["guid"], f"{failure.get('error')}: {failure.get('message')}")
    return reasons


def _measurements(data: Any, rtype: str, trace: str, parser: str, need: str) -> pd.DataFrame:
    """A frame given as is, or the ``trace`` of every ``rtype`` resource of the source's runs."""
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        if need not in data:
            raise InvalidInputError(f"this frame has no {need!r} column: give a frame from "
                                    f"trace_frame(..., parser={parser!r})")
        return data
    frames = []
    for run in as_runs(data):
        description = run.description()
        guids = [r["guid"] for r in description.get("resources", ()) if r.get("type") == rtype]
        if guids:
            frames.append(trace_frame(run, guids, trace, parser))
    if not frames:
        raise InvalidInputError(f"no {rtype} resource in this source: give a frame from "
                                f"trace_frame(..., parser={parser!r}) instead")
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def _label(keys: dict[str, Any], several_runs: bool, what: str) -> str:
    label = f"{what} {keys.get('guid', '')}".strip()
    if several_runs and "run_id" in keys:
        label += f" (run {keys['run_id']})"
    return label


def plot_rtt(data: Any, ax: Axes | None = None) -> Axes:
    """Round-trip time of every ping over time (one line each).

    ``data`` is a source (every ``linux::Ping`` of it is drawn) or a frame from the
    ``ping`` parser.  The x axis is seconds since the first reply when the pings ran
    with timestamps (``printTimestamp=True``, ``-D``), else the ICMP sequence number.
    Lost packets and errors are counted in the legend.
    """
    frame = _measurements(data, "linux::Ping", "stdout", "ping", "rtt_ms")
    ax = _axes(ax, (8, 4))
    keys = [k for k in ("run_id", "guid") if k in frame]
    timed = "timestamp" in frame and frame["timestamp"].notna().any() and \
        frame.loc[frame["rtt_ms"].notna(), "timestamp"].notna().all()
    origin = frame["timestamp"].min() if timed else None
    several = "run_id" in frame and frame["run_id"].nunique() > 1
    groups = frame.groupby(keys, sort=False) if keys else [((), frame)]
    for values, group in groups:
        values = values if isinstance(values, tuple) else (values,)
        replies = group[group["rtt_ms"].notna()]
        x = (replies["timestamp"] - origin).dt.total_seconds() if timed else replies["seq"]
        label = _label(dict(zip(keys, values, strict=False)), several, "ping")
        missing = len(group) - len(replies)
        if missing:
            label += f" ({missing} lost or errors)"
        ax.plot(x.to_numpy(dtype=float), replies["rtt_ms"].to_numpy(dtype=float), marker=".", linewidth=1,
                label=label)
    ax.set_xlabel("seconds since the first reply" if timed else "ICMP sequence number")
    ax.set_ylabel("round-trip time (ms)")
    ax.set_ylim(bottom=0)
    ax.set_title("ping round-trip time")
    ax.grid(color="#dddddd", linewidth=0.6)
    if len(ax.lines):
        ax.legend(fontsize=8)
    return ax


def _steps(ax: Axes, start: Any, end: Any, bits: Any, **style: Any) -> None:
    """One horizontal segment per interval, from its start to its end, joined."""
    import numpy as np

    start, end = start.to_numpy(dtype=float), end.to_numpy(dtype=float)
    mbits = bits.to_numpy(dtype=float) / 1e6
    if not len(start):
        return
    ax.plot(np.concatenate([start[:1], end]), np.concatenate([mbits[:1], mbits]), drawstyle="steps-pre",
            linewidth=style.pop("linewidth", 1.4), **style)


def plot_throughput(data: Any, ax: Axes | None = None) -> Axes:
    """Throughput of every iperf3 stream over time, in Mbit/s (one line per stream).

    ``data`` is a source (every ``linux::Iperf3Client`` of it is drawn) or a frame from
    the ``iperf3`` parser.  Each reporting interval is a horizontal step from its
    start to its end; with several streams, their sum is drawn dashed.
    """
    frame = _measurements(data, "linux::Iperf3Client", "stdout", "iperf3", "bits_per_second")
    ax = _axes(ax, (8, 4))
    keys = [k for k in ("run_id", "guid", "test") if k in frame]
    several = "run_id" in frame and frame["run_id"].nunique() > 1
    groups = frame.groupby(keys, sort=False) if keys else [((), frame)]
    for values, test in groups:
        values = values if isinstance(values, tuple) else (values,)
        name = _label(dict(zip(keys, values, strict=False)), several, "resource")
        streams = test.groupby("stream", sort=True)
        for stream, rows in streams:
            _steps(ax, rows["start"], rows["end"], rows["bits_per_second"], label=f"{name}, stream {stream}")
        if streams.ngroups > 1:
            total = test.groupby("interval", sort=True).agg(
                start=("start", "min"), end=("end", "max"), bits=("bits_per_second", "sum"))
            _steps(ax, total["start"], total["end"], total["bits"], label=f"{name}, all streams",
                   linestyle="--", color="black")
    ax.set_xlim(left=0)
    ax.set_xlabel("seconds since the test started")
    ax.set_ylabel("throughput (Mbit/s)")
    ax.set_ylim(bottom=0)
    ax.set_title("iperf3 throughput")
    ax.grid(color="#dddddd", linewidth=0.6)
    if len(ax.lines):
        ax.legend(fontsize=8)
    return ax


#: How far apart :func:`plot_sweep` draws its lines along x, in parts of the x range.
DODGE = 0.015
#: Up to this many values swept, :func:`plot_sweep` puts a tick at each (and only there).
MAX_TICKS = 12


def plot_sweep(data: Any, x: str, y: str, hue: str | None = None, ax: Axes | None = None,
               metrics: Any = None) -> Axes:
    """A metric of a sweep against a parameter: its mean per point with the 95 % confidence
    interval as error bars, one line per value of ``hue``.

    Parameters
    ----------
    data
        A frame from :func:`~nepi_lab.analysis.sweep_summary`, a :class:`~nepi_lab.Sweep`
        or a sweep directory (then summarised with ``metrics``, or the sweep's own).
    x : str
        The parameter along the x axis (numbers are spaced as numbers, other values as
        categories, in the order of the points).
    y : str
        The metric (or ``"duration"``): its ``<y>_mean`` is drawn, the bars reach
        ``<y>_ci_low`` and ``<y>_ci_high`` (none where a point has fewer than two runs).
    hue : str or None
        The parameter whose values each get a line.  Every other parameter must hold
        one value (select rows of the summary first), or the lines would mix points.

    Example
    -------
    >>> ax = plot_sweep(sweep, x="rate", y="throughput", hue="loss")  # doctest: +SKIP
    >>> ax.figure.savefig("sweep.png", dpi=120)                       # doctest: +SKIP
    """
    import pandas as pd

    from .sweep import sweep_summary

    summary = data if isinstance(data, pd.DataFrame) else sweep_summary(data, metrics)
    mean = f"{y}_mean"
    for column in (x, mean) + ((hue,) if hue is not None else ()):
        if column not in summary:
            raise InvalidInputError(f"the summary has no {column!r} column: x and hue are parameters, y a "
                                    f"metric (or 'duration'); it has {list(summary.columns)}")
    parameters = list(summary.columns[: list(summary.columns).index("runs")]) if "runs" in summary else []
    mixed = [p for p in parameters if p not in (x, hue) and summary[p].nunique(dropna=False) > 1]
    if mixed:
        raise InvalidInputError(f"parameters {mixed} vary too: pass one as hue=, or select rows, e.g. "
                                f"summary[summary[{mixed[0]!r}] == value]")
    ax = _axes(ax, (7, 4.5))
    groups = list(summary.groupby(hue, sort=True, dropna=False)) if hue is not None else [(None, summary)]
    numeric = pd.api.types.is_numeric_dtype(summary[x]) and not pd.api.types.is_bool_dtype(summary[x])
    if numeric:
        ticks = sorted(float(v) for v in summary[x].dropna().unique())
        spacing = (ticks[-1] - ticks[0]) if len(ticks) > 1 else 1.0
    else:  # categories, in the order of the points, one unit apart
        labels = list(dict.fromkeys(summary[x].astype(str)))
        ticks, spacing = [float(i) for i in range(len(labels))], len(labels) - 1 or 1.0
    for i, (value, group) in enumerate(groups):
        if numeric:
            group = group.sort_values(x, kind="stable")
            xs = group[x].to_numpy(dtype=float)
        else:
            xs = group[x].astype(str).map(labels.index).to_numpy(dtype=float)
        # lines side by side, so that their error bars do not hide one another
        xs = xs + (i - (len(groups) - 1) / 2) * DODGE * spacing
        means = group[mean].to_numpy(dtype=float)
        half = means - group[f"{y}_ci_low"].to_numpy(dtype=float)
        ax.errorbar(xs, means, yerr=half, marker="o", capsize=4, linewidth=1.4,
                    label=None if hue is None else f"{hue} = {value}")
    if not numeric:
        ax.set_xticks(ticks, labels)
    elif len(ticks) <= MAX_TICKS:  # the values swept, as given (never 1.5 for an integer)
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.set_xlabel(x)
    ax.set_ylabel(f"{y} (mean, 95 % CI)")
    ax.set_title(f"{y} against {x}" + (f", by {hue}" if hue is not None else ""))
    ax.grid(color="#dddddd", linewidth=0.6)
    if hue is not None:
        ax.legend(title=hue, fontsize=8)
    return ax
