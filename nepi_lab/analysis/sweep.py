"""A sweep's runs as DataFrames: one row per run, and one row per point with statistics.

The sweep engine (:mod:`nepi_lab.runner.sweep`) sits below this layer: it records runs,
this module reads the record and the run directories.  :meth:`Sweep.frame` and
:meth:`Sweep.summary` call these functions through the core's hook, so both give the
same frames, from a live sweep or from its directory alone.

Confidence intervals use Student's t (two-sided 95 %), from
:func:`nepi_lab.runner.repeat.t_quantile_95` (a table, then the Cornish-Fisher
expansion: no scipy), as ExperimentRunner's convergence rule does.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..core.errors import SweepError
from ..runner.repeat import ExperimentRunner, RunRecord, t_quantile_95
from ..runner.sweep import DONE, FAILED, Sweep, load_sweep
from .run import load_run

if TYPE_CHECKING:
    import pandas as pd


#: Columns of :func:`sweep_frame` before the metrics (after the parameters).
RUN_COLUMNS = ["repetition", "point", "run_id", "state", "failure", "start", "duration"]


def _as_sweep(source: Any, metrics: Any) -> Sweep:
    if isinstance(source, Sweep):
        return source
    if isinstance(source, (str, os.PathLike)):
        return load_sweep(source, metrics=metrics)
    raise TypeError(f"a sweep frame is made from a Sweep or a sweep directory, not {type(source).__name__}")


def sweep_frame(source: Any, metrics: Callable[[Any], Mapping[str, Any]] | None = None) -> pd.DataFrame:
    """One row per run of a sweep, in the order they run.

    ``source`` is a :class:`~nepi_lab.Sweep` or a sweep directory.  Columns: the
    parameters, then ``repetition`` (0-based), ``point`` (the point's index),
    ``run_id`` (None until it ran), ``state`` (``pending``, ``running``, ``done``,
    ``failed``), ``failure`` (why, in words), ``start`` (UTC), ``duration``
    (seconds), then the metrics: ``metrics(run)`` (default: the sweep's ``metrics=``)
    is called with :func:`~nepi_lab.load_run` of each done run and returns a dict of
    name -> value (a single number becomes the column ``metric``); other runs have NA.
    """
    import pandas as pd

    sweep = _as_sweep(source, metrics)
    metrics = metrics if metrics is not None else sweep.metrics
    rows = []
    names: dict[str, None] = {}
    for entry in sweep.runs:
        start, end = entry.get("start"), entry.get("end")
        row: dict[str, Any] = dict(sweep.points[entry["point"]])
        row.update(repetition=entry["repetition"], point=entry["point"], run_id=entry.get("run_dir"),
                   state=entry["state"], failure=entry.get("failure"), start=start,
                   duration=(end - start) if start is not None and end is not None else math.nan)
        if metrics is not None and entry["state"] == DONE:
            values = metrics(load_run(sweep.run_dir(entry)))
            if not isinstance(values, Mapping):
                values = {"metric": values}
            taken = [name for name in values if name in sweep.parameters or name in RUN_COLUMNS]
            if taken:
                raise SweepError(sweep.path, f"metrics() returned {taken}: names of the frame's parameter "
                                             f"or run columns; name the metrics otherwise")
            names.update(dict.fromkeys(values))
            row.update(values)
        rows.append(row)
    columns = [*sweep.parameters, *RUN_COLUMNS, *names]
    frame = pd.DataFrame(rows, columns=columns)
    frame["start"] = pd.to_datetime(frame["start"], unit="s", utc=True)
    frame["duration"] = frame["duration"].astype(float)
    frame.attrs["metrics"] = list(names)
    return frame


def sweep_summary(source: Any, metrics: Callable[[Any], Mapping[str, Any]] | None = None) -> pd.DataFrame:
    """One row per point: the parameters, ``runs`` (done), ``failed``, and for
    ``duration`` and each metric its ``<metric>_mean``, ``_std`` (n - 1), ``_count``
    and the two-sided 95 % confidence interval of the mean, ``_ci_low`` and ``_ci_high``
    (Student's t; NA with fewer than two values).  Only done runs count.

    ``source`` is a :class:`~nepi_lab.Sweep`, a sweep directory, or a frame from
    :func:`sweep_frame` (then ``metrics`` is not used).
    """
    import pandas as pd

    if isinstance(source, pd.DataFrame):
        frame = source
        sweep_parameters = [c for c in frame.columns[: list(frame.columns).index("repetition")]]
    else:
        sweep = _as_sweep(source, metrics)
        frame = sweep_frame(sweep, metrics)
        sweep_parameters = list(sweep.parameters)
    measured = ["duration", *frame.attrs.get("metrics", [])]
    rows = []
    for point, group in frame.groupby("point", sort=True):
        first = group.iloc[0]
        row: dict[str, Any] = {name: first[name] for name in sweep_parameters}
        done = group[group["state"] == DONE]
        row["point"] = point
        row["runs"] = len(done)
        row["failed"] = int((group["state"] == FAILED).sum())
        for name in measured:
            values = pd.to_numeric(done[name], errors="coerce").dropna()
            n = len(values)
            mean = values.mean() if n else math.nan
            std = values.std(ddof=1) if n > 1 else math.nan
            half = t_quantile_95(n - 1) * std / math.sqrt(n) if n > 1 else math.nan
            row.update({f"{name}_mean": mean, f"{name}_std": std, f"{name}_count": n,
                        f"{name}_ci_low": mean - half, f"{name}_ci_high": mean + half})
        rows.append(row)
    return pd.DataFrame(rows).set_index("point")


def runner_frame(runner: ExperimentRunner) -> pd.DataFrame:
    """:meth:`ExperimentRunner.frame <nepi_lab.runner.repeat.ExperimentRunner.frame>`: one
    row per run, the fields of :class:`~nepi_lab.runner.repeat.RunRecord` as columns."""
    import pandas as pd

    columns = list(RunRecord.__dataclass_fields__)
    return pd.DataFrame([r.to_dict() for r in runner.runs], columns=columns)
