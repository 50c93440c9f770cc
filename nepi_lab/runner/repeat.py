"""Repeat one experiment until its metric converges: NEPI's ``ExperimentRunner``, fixed.

A measurement is never one run.  :class:`ExperimentRunner` takes a controller that
*describes* an experiment (the template), and runs that experiment again and again, each
time on a fresh controller built from the template's description: same ``exp_id``, new
``run_id``, its own run directory ``<local_dir>/<exp_id>/<run_id>/``.  After each run a
callback computes a number (the metric); the runner stops once the metrics converge, or
after ``max_runs`` runs.

What changed from NEPI 6 (see ``NEPI-REFERENCE.md`` §6), and why:

- **The default convergence rule converges.**  NEPI stopped when twice the standard error
  was below 5 % of the mean, with the normal quantile; on noisy metrics that never held,
  and ``max_runs=-1`` then looped forever.  Here the rule is the 95 % confidence interval
  of the mean (Student's t, right for few runs) and ``max_runs=-1`` is bounded (see
  :meth:`ExperimentRunner.run`).
- **The template is left alone.**  NEPI never shut its template controller down (its
  loop and threads leaked); here it is never deployed, never shut down, never changed:
  it stays the user's, to inspect, run again or shut down.
- **Failed runs are seen.**  NEPI's check for a failed run compared a method, not the
  state, so it never fired.  Here a run whose experiment fails is recorded with its
  failure, and the runner goes on (:class:`RunRecord`).
- **Every wait is bounded** (``timeout=``), and every run's controller is shut down,
  also on an error or Ctrl-C.

The runner uses the controller's public API only, as a user would.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ..core.controller import ExperimentController
from ..core.errors import InvalidInputError, NepiError, UnknownGuidError
from ..core.states import ECState
from ..core.times import parse_delay

log = logging.getLogger("nepi_lab")

#: What ``max_runs=-1`` means: at most this many runs.  NEPI's -1 meant "until the
#: callback says so", which was forever on a metric that never converges.
DEFAULT_MAX_RUNS = 100

#: The default rule's threshold: the 95 % confidence interval's half-width, relative to
#: the mean's magnitude (5 %: NEPI's figure, with the right quantile).
DEFAULT_RELATIVE_HALF_WIDTH = 0.05

#: Two-sided 95 % quantiles of Student's t (its 0.975 quantile) for 1..30 degrees of
#: freedom (the usual table, e.g. NIST/SEMATECH e-Handbook 1.3.6.7.2, to four decimals).
_T95 = (12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
        2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
        2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423)


def t_quantile_95(df: int) -> float:
    """Two-sided 95 % quantile of Student's t with ``df`` degrees of freedom.

    From the table for ``df`` ≤ 30; beyond, the Cornish–Fisher expansion around the
    normal quantile z = 1.959964 (z + (z³ + z)/4df + (5z⁵ + 16z³ + 3z)/96df²), within
    1e-4 of the exact value there.  (Sweep summaries use it too.)

    >>> t_quantile_95(4)
    2.7764
    >>> round(t_quantile_95(1000), 3)
    1.962
    """
    if df < 1:
        raise InvalidInputError(f"degrees of freedom must be at least 1, not {df!r}")
    if df <= len(_T95):
        return _T95[df - 1]
    z = 1.959963984540054
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def mean_confidence_interval(samples: Sequence[float]) -> tuple[float, float]:
    """``(mean, half_width)`` of the 95 % confidence interval of the mean of ``samples``.

    Student's t with ``n - 1`` degrees of freedom: half_width = t · s / √n.  Needs two
    samples at least (one sample says nothing about the spread).

    >>> mean_confidence_interval([10.0, 10.0, 10.0])
    (10.0, 0.0)
    """
    values = [float(x) for x in samples]
    if len(values) < 2:
        raise InvalidInputError(f"a confidence interval needs two samples at least, not {len(values)}")
    mean = statistics.fmean(values)
    half = t_quantile_95(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, half


def default_convergence(metrics: Sequence[float],
                        relative_half_width: float = DEFAULT_RELATIVE_HALF_WIDTH) -> bool:
    """The default rule: the mean is known to within ``relative_half_width`` of itself.

    True when there are two metrics at least and the 95 % confidence interval's
    half-width (:func:`mean_confidence_interval`) is at most ``relative_half_width`` ×
    |mean|.  A mean of 0 converges only when every metric is 0 (no relative error
    can be stated around 0 otherwise).

    >>> default_convergence([1.0, 1.01, 0.99])
    True
    >>> default_convergence([1.0, 5.0, 0.1])
    False
    """
    if len(metrics) < 2:
        return False
    mean, half = mean_confidence_interval(metrics)
    return half <= relative_half_width * abs(mean)


@dataclass(frozen=True)
class RunRecord:
    """One run of an :class:`ExperimentRunner`: what it was and how it went.

    ``failure`` is None for a run that went through; else why the run does not count
    (the experiment failed, a wait timed out, its metric callback raised): such a run
    has no ``metric`` and its metric is not given to the convergence rule.
    """

    run: int  #: its number, from 1 (the ``run`` given to the callbacks)
    run_id: str  #: the controller's run id
    run_dir: str  #: its run directory
    ecstate: str  #: the controller's state at the end: TERMINATED, or FAILED (a critical failure)
    metric: float | None = None  #: what ``compute_metric_callback`` returned (None: no metric)
    failure: str | None = None  #: why the run failed, in words (None: it did not)
    failures: tuple[str, ...] = field(default=())  #: every resource failure, critical or not
    duration: float = 0.0  #: seconds from the controller's creation to its shutdown

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ExperimentRunner:
    """Run one experiment again and again until its metric converges (NEPI's API).

    Parameters
    ----------
    relative_half_width : float, optional
        The default convergence rule's threshold (see :func:`default_convergence`);
        5 % by default.

    Attributes
    ----------
    runs : list of RunRecord
        Every run of the last :meth:`run` call, in order, failed ones too.
    metrics : list of float
        The metrics of the runs that went through and gave one: what the convergence
        rule was given.
    converged : bool
        Whether the last :meth:`run` stopped because the metrics converged (False: it
        stopped at ``max_runs``).

    Example
    -------
    >>> import shutil, tempfile
    >>> from nepi_lab import ExperimentController, ExperimentRunner
    >>> results = tempfile.mkdtemp()                                  # removed below
    >>> ec = ExperimentController(exp_id="echo", local_dir=results)
    >>> node = ec.register_resource("linux::Node", hostname="localhost")
    >>> app = ec.register_resource("linux::Application", connectedTo=node,
    ...                            command="echo 42")
    >>> runner = ExperimentRunner()
    >>> runner.run(ec, min_runs=3, max_runs=10, wait_guids=[app],
    ...            compute_metric_callback=lambda ec, run: float(ec.trace(app, "stdout")))
    3
    >>> runner.metrics, runner.converged
    ([42.0, 42.0, 42.0], True)
    >>> ec.shutdown()                                                  # the template, never run
    >>> shutil.rmtree(results)
    """

    def __init__(self, relative_half_width: float = DEFAULT_RELATIVE_HALF_WIDTH) -> None:
        if (isinstance(relative_half_width, bool) or not isinstance(relative_half_width, (int, float))
                or not 0 < relative_half_width < math.inf):
            raise InvalidInputError(
                f"relative_half_width must be a positive number, not {relative_half_width!r}")
        self.relative_half_width = float(relative_half_width)
        self.runs: list[RunRecord] = []
        self.converged = False

    @property
    def metrics(self) -> list[float]:
        """The metrics of the runs that went through and gave one, in run order."""
        return [r.metric for r in self.runs if r.failure is None and r.metric is not None]

    def __repr__(self) -> str:
        failed = sum(r.failure is not None for r in self.runs)
        return (f"<ExperimentRunner {len(self.runs)} runs, {failed} failed, "
                f"{'converged' if self.converged else 'not converged'}>")

    def frame(self) -> Any:
        """The runs as a pandas DataFrame, one row per :class:`RunRecord` (made by the
        analysis layer: :func:`nepi_lab.analysis.sweep.runner_frame`)."""
        from .sweep import analysis_function

        return analysis_function("runner_frame")(self)

    def run(self, ec: ExperimentController, min_runs: int = 1, max_runs: int = -1,
            wait_time: float | str = 0, wait_guids: Sequence[int] = (),
            compute_metric_callback: Callable[[ExperimentController, int], Any] | None = None,
            evaluate_convergence_callback: Callable[[ExperimentController, int, list[float]], Any]
            | None = None,
            *, timeout: float = 600) -> int:
        """Run the experiment ``ec`` describes until it converges; returns the number of runs.

        Each run: a fresh controller is loaded from ``ec``'s description (same
        ``exp_id`` and ``local_dir``, new ``run_id``), deployed; the runner waits until
        the resources of ``wait_guids`` are finished, then ``wait_time`` more; it
        releases the run (everything stops, traces are collected into its run
        directory) and calls ``compute_metric_callback(run_ec, run)`` on the released
        controller, whose traces and states are all there (``run`` counts from 1).
        From run ``min_runs`` on, it asks ``evaluate_convergence_callback(run_ec, run,
        metrics)`` and stops when that is true.  Then the run's controller is shut down.

        Parameters
        ----------
        ec : ExperimentController
            The template: only its description is read.  It is never deployed, changed
            or shut down (NEPI leaked it): shut it down yourself, or build it in a
            ``with`` block.  Secret attributes are never saved, so a run does not get
            them (a warning says so): give secrets through files or the environment.
        min_runs : int
            Runs made before convergence is asked about (≥ 1).
        max_runs : int
            At most this many runs (≥ ``min_runs``); -1, NEPI's "no limit", means
            :data:`DEFAULT_MAX_RUNS` (100), so that a metric that never converges still
            ends.  With neither a metric nor a convergence callback nothing can stop the
            runs early: ``max_runs`` must then be given, as NEPI required.
        wait_time : float or str
            Seconds (or a delay like ``"2s"``) to let each run go on after
            ``wait_guids`` are finished.  With ``wait_guids`` empty and ``wait_time`` 0,
            as in NEPI, a run is released as soon as it is deployed.
        wait_guids : list of int
            Resources of the template whose end each run waits for.
        compute_metric_callback : callable, optional
            ``(ec, run) -> number`` or None (no metric for this run).
        evaluate_convergence_callback : callable, optional
            ``(ec, run, metrics) -> bool``; ``metrics`` are those of the runs so far
            that went through.  Default (when a metric callback is given): true when the
            95 % confidence interval of the mean is within ``relative_half_width`` of it
            (:func:`default_convergence`).
        timeout : float
            Bounds each wait of a run (deploy to end, release), in seconds.

        Notes
        -----
        A run whose experiment fails (a critical resource FAILED, or a wait times out)
        is recorded in :attr:`runs` with its failure, gets no metric, counts towards
        ``max_runs``, and the runner goes on.  An exception raised by a callback is the
        caller's own error: the run is recorded, its controller shut down, and the
        exception propagates.  Ctrl-C likewise: the current run is shut down (recorded
        as interrupted) and ``KeyboardInterrupt`` propagates; :attr:`runs` keeps what ran.

        Raises
        ------
        InvalidInputError
            Bad arguments (not a controller, counts out of range, a callback that cannot
            be called, no way to stop), before any run.
        UnknownGuidError
            A guid of ``wait_guids`` the template does not hold.
        TimeFormatError
            A ``wait_time`` that is neither seconds ≥ 0 nor a delay such as ``"2s"``.
        """
        limit, delay = self._check(ec, min_runs, max_runs, wait_time, wait_guids,
                                   compute_metric_callback, evaluate_convergence_callback, timeout)
        wait_guids = list(wait_guids)
        if evaluate_convergence_callback is None:
            def evaluate_convergence_callback(_ec: ExperimentController, _run: int,
                                              metrics: list[float]) -> bool:
                return default_convergence(metrics, self.relative_half_width)
        self.runs = []
        self.converged = False
        with tempfile.TemporaryDirectory(prefix="nepi_lab-runner-") as folder:
            path = ec.save(os.path.join(folder, "experiment.json"))
            for run in range(1, limit + 1):
                stop = self._one_run(path, ec, run, min_runs, delay, wait_guids, timeout,
                                     compute_metric_callback, evaluate_convergence_callback)
                if stop:
                    self.converged = True
                    break
        if not self.converged and max_runs == -1:
            log.warning("experiment %s: no convergence after %d runs (max_runs=-1 means %d)",
                        ec.exp_id, limit, DEFAULT_MAX_RUNS)
        return len(self.runs)

    def _one_run(self, path: str, template: ExperimentController, run: int, min_runs: int, delay: float,
                 wait_guids: list[int], timeout: float,
                 compute_metric: Callable[..., Any] | None, evaluate: Callable[..., Any]) -> bool:
        """One run, recorded in :attr:`runs`; True when the metrics converged after it."""
        started = time.monotonic()
        run_ec = ExperimentController.load(path, exp_id=template.exp_id, local_dir=template.local_dir)
        record: dict[str, Any] = {"run": run, "run_id": run_ec.run_id, "run_dir": run_ec.run_dir}
        converged = False
        try:
            try:
                run_ec.deploy()
                if wait_guids:
                    run_ec.wait_finished(wait_guids, timeout=timeout)
                if delay:
                    time.sleep(delay)
                run_ec.release(timeout=timeout)
            except NepiError as exc:  # the experiment failed or did not end in time: recorded
                record["failure"] = f"{type(exc).__name__}: {exc}"
            if "failure" not in record and run_ec.ecstate == ECState.FAILED:
                critical = [f for f in run_ec.failures if f.critical]
                record["failure"] = str(critical[0]) if critical else "the experiment failed"
            if "failure" not in record and compute_metric is not None:
                try:
                    metric = compute_metric(run_ec, run)
                    if metric is not None:
                        record["metric"] = _number(metric, run)
                except BaseException as exc:
                    record["failure"] = f"compute_metric_callback: {type(exc).__name__}: {exc}"
                    raise
            if run >= min_runs:
                metrics = self.metrics  # the runs before this one, and this one's below
                if "metric" in record and "failure" not in record:
                    metrics.append(record["metric"])
                converged = bool(evaluate(run_ec, run, metrics))
        except KeyboardInterrupt as exc:
            record.setdefault("failure", "interrupted (Ctrl-C)")
            # as leaving a ``with`` block by Ctrl-C: the run directory records the run as
            # interrupted; a second Ctrl-C stops waiting for the release, not the release
            try:
                run_ec.__exit__(type(exc), exc, exc.__traceback__)
            finally:
                self._record(record, run_ec, started)
            raise
        except BaseException:
            try:
                run_ec.shutdown(timeout=timeout)
            finally:
                self._record(record, run_ec, started)
            raise
        try:
            run_ec.shutdown(timeout=timeout)
        finally:
            self._record(record, run_ec, started)
        return converged

    def _record(self, record: dict[str, Any], run_ec: ExperimentController, started: float) -> None:
        """Add the run to :attr:`runs`, with how its controller ended."""
        record["ecstate"] = run_ec.ecstate.name
        record["failures"] = tuple(str(f) for f in run_ec.failures)
        record["duration"] = time.monotonic() - started
        self.runs.append(RunRecord(**record))

    @staticmethod
    def _check(ec: Any, min_runs: Any, max_runs: Any, wait_time: Any, wait_guids: Any,
               compute_metric: Any, evaluate: Any, timeout: Any) -> tuple[int, float]:
        """Refuse bad arguments before any run; returns the run limit and the delay in seconds."""
        if not isinstance(ec, ExperimentController):
            raise InvalidInputError(
                f"ec must be an ExperimentController (the template), not {type(ec).__name__}")

        def count(name: str, value: Any) -> int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidInputError(f"{name} must be an integer, not {value!r}")
            return value

        if count("min_runs", min_runs) < 1:
            raise InvalidInputError(f"min_runs must be at least 1, not {min_runs}")
        if count("max_runs", max_runs) != -1 and max_runs < min_runs:
            raise InvalidInputError(f"max_runs must be -1 (at most {DEFAULT_MAX_RUNS} runs) or at least "
                                    f"min_runs ({min_runs}), not {max_runs}")
        for name, callback in (("compute_metric_callback", compute_metric),
                               ("evaluate_convergence_callback", evaluate)):
            if callback is not None and not callable(callback):
                raise InvalidInputError(f"{name} must be callable or None, not {callback!r}")
        if max_runs == -1 and compute_metric is None and evaluate is None:
            raise InvalidInputError("nothing can stop the runs: give max_runs, or a compute_metric_callback "
                                    "or evaluate_convergence_callback")
        delay = parse_delay(wait_time)  # seconds or '2s'; a TimeFormatError otherwise
        if isinstance(wait_guids, (str, bytes)) or not isinstance(wait_guids, (list, tuple, set, frozenset)):
            raise InvalidInputError(f"wait_guids must be a list of guids, not {wait_guids!r}")
        known = set(ec.resources)
        for guid in wait_guids:
            if guid not in known:
                raise UnknownGuidError(guid, known)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < math.inf:
            raise InvalidInputError(f"timeout must be a positive number of seconds, not {timeout!r}")
        return (DEFAULT_MAX_RUNS if max_runs == -1 else max_runs), delay


def _number(value: Any, run: int) -> float:
    """A metric as a float; anything else is the callback's error."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise InvalidInputError(f"compute_metric_callback must return a finite number or None; "
                                f"run {run} gave {value!r}")
    return float(value)
