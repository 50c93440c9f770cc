"""Parameter sweeps: one run per (point, repetition), resumable, recorded in a folder.

A sweep is a function that describes the experiment for one parameter point, the
points, and how many times to measure each.  Each (point, repetition) is one run: a
fresh :class:`~nepi_lab.ExperimentController` and its own run directory.  Nothing
about a sweep lives in memory only: its state is its directory, so it resumes after
any interruption (Ctrl-C, a killed process, a reboot) and loads later, on another
machine, without the code that made it.

Layout of the sweep directory ``<results>/<exp_id>/``::

    <results>/<exp_id>/
        sweep.json          the record (format "nepi_lab.sweep", version SWEEP_FORMAT),
                            rewritten atomically when run() begins and ends, and
                            whenever the journal grows as long as the record
        sweep.journal       while the sweep runs: one JSON line per change of a run's
                            entry since sweep.json was written (see read_record)
        sweep.lock          held (flock) while a process runs the sweep
        <run_id>/           one ordinary run directory per run (see nepi_lab.core.results);
                            its experiment.json holds the point as "parameters"
        abandoned/<run_id>/ runs that never completed (the process was killed, Ctrl-C):
                            kept for inspection, never counted, their run made again

The run directories sit where a controller with ``exp_id`` and ``local_dir=results``
puts them, so ``load_runs(sweep.path)`` reads them as any experiment's runs.

The record, ``sweep.json``::

    format, version      "nepi_lab.sweep", SWEEP_FORMAT
    exp_id               the sweep's name (the folder's)
    parameters           the parameter names, in column order
    points               [{name: value}]: every point, in order
    repetitions          how many runs each point has
    runs                 [{point, repetition, state, run_dir, failure, start, end}], in
                         the order they run: point (an index into points), repetition
                         (0-based), state ("pending", "running", "done", "failed"),
                         run_dir (relative to the sweep directory, or null), failure (why
                         it failed, in words, or null), start and end (seconds since the
                         epoch, or null)
    abandoned            [{point, repetition, run_dir, reason}]: runs begun, never completed
                         (point and repetition null for a run directory the record never
                         named: its process was killed between making and recording it)
    updated              when the record was written

Order: a grid ``{"a": [1, 2], "b": ["x", "y"]}`` gives its points as
:func:`itertools.product` does, keys in the dict's order, the last key varying fastest:
``(1, x), (1, y), (2, x), (2, y)``.  Runs go repetition by repetition (every point once,
then every point a second time ...), so that an interrupted sweep has covered every
point as evenly as it could.

Where runs are made: in the calling thread one at a time (the default), ``max_parallel``
at once in threads of this process, in a background thread (:meth:`Sweep.start`), or on
a Dask cluster (``executor``); see :mod:`nepi_lab.runner.executors`.  Whatever makes them,
only the thread running the sweep writes the record.

Frames (:meth:`Sweep.frame`, :meth:`Sweep.summary`) and the plot (:meth:`Sweep.plot`)
are built by the analysis layer (:func:`nepi_lab.analysis.sweep_frame`); this module,
below it, reaches them through the core's display hook (``nepi_lab/__init__.py``
registers them), never by importing it.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import fcntl
import itertools
import json
import logging
import os
import shutil
import sys
import tarfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from ..core.controller import ExperimentController
from ..core.display import view
from ..core.errors import InvalidInputError, SweepError
from ..core.loop import inbox
from ..core.results import (
    DESCRIPTION,
    check_local_dir,
    check_parameters,
    default_local_dir,
    write_json_atomic,
)
from ..core.traces import check_name
from .executors import DaskExecutor, LocalExecutor, Outcome, unpack
from .progress import SweepProgress, wanted

log = logging.getLogger("nepi_lab")

#: Version of the sweep record's format.
SWEEP_FORMAT = 1
#: ``"format"`` of a sweep record.
SWEEP_FORMAT_NAME = "nepi_lab.sweep"
RECORD = "sweep.json"
JOURNAL = "sweep.journal"
LOCK = "sweep.lock"
ABANDONED = "abandoned"

#: The states of a run in the record.
PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"
STATES = (PENDING, RUNNING, DONE, FAILED)
#: Columns of a sweep's frames that no parameter may be named: those of ``frame()`` and
#: ``summary()``, and the identity columns of the runs' frames (``load_runs(sweep.path)``).
RESERVED = frozenset({"repetition", "point", "run_id", "state", "failure", "start", "duration", "runs",
                      "failed", "guid", "type", "trace"})


class Sweep:
    """Runs an experiment once per parameter point and repetition, each in its own run directory.

    Parameters
    ----------
    build : callable
        ``build(ec, **point)`` describes the experiment for one point on a fresh
        controller (registers resources, connections, conditions); the sweep then
        deploys it, waits until every resource is finished (``ec.wait_finished``) and
        releases it.  None for a sweep loaded from its directory (it cannot run).
    params : dict, list of dicts or pandas.DataFrame
        A grid ``{name: [values]}`` (its product, see the module's docstring for the
        order), a list of points ``[{name: value}]``, or a DataFrame (one point per
        row).  Names are Python identifiers; values are str, int, float, bool or None.
    repetitions : int
        Runs per point (>= 1).
    exp_id : str, optional
        The sweep's name: its folder is ``<results>/<exp_id>``, and every run has this
        ``exp_id``.  Default: ``build``'s name.  Running the same sweep again (same
        exp_id and results) resumes it.
    results : str, optional
        The results root (as a controller's ``local_dir``; default ``$NEPI_LAB_RESULTS``
        ...: :func:`nepi_lab.core.results.default_local_dir`).
    metrics : callable, optional
        ``metrics(run) -> dict`` of metric name -> number, computed for each done run
        from its :func:`~nepi_lab.load_run` object when frames are made.
    timeout : float, optional
        Seconds a run may take to finish; past it, the run is released and failed.

    Example
    -------
    >>> def ping(ec, count):                                  # doctest: +SKIP
    ...     node = ec.register_resource("linux::Node", hostname="localhost")
    ...     ec.register_resource("linux::Ping", connectedTo=node, target="127.0.0.1", count=count)
    >>> sweep = Sweep(ping, {"count": [1, 3]}, repetitions=2)  # doctest: +SKIP
    >>> sweep.run()                                           # doctest: +SKIP
    4
    >>> sweep.frame()                                         # doctest: +SKIP
    """

    def __init__(self, build: Callable[..., Any] | None, params: Any, repetitions: int = 1,
                 exp_id: str | None = None, results: str | os.PathLike[str] | None = None,
                 metrics: Callable[[Any], Mapping[str, Any]] | None = None,
                 timeout: float | None = None) -> None:
        if build is not None and not callable(build):
            raise InvalidInputError(f"build must be a function build(ec, **point), not {build!r}")
        if type(repetitions) is not int or repetitions < 1:
            raise InvalidInputError(f"repetitions must be an int >= 1, not {repetitions!r}")
        if exp_id is None:
            name = getattr(build, "__name__", None)
            try:
                exp_id = check_name(name, "exp_id") if isinstance(name, str) else None
            except InvalidInputError:
                exp_id = None
            if exp_id is None:
                raise InvalidInputError("give the sweep a name: exp_id=... (build has no name that can "
                                        "name a folder)")
        self._build = build
        self.exp_id = check_name(exp_id, "exp_id")
        self.results = check_local_dir(results if results is not None else default_local_dir())
        self.path = os.path.join(self.results, self.exp_id)
        self.points, self.parameters = _points(params)
        self.repetitions = repetitions
        self.metrics = metrics
        self.timeout = timeout
        self._listeners: list[Callable[[Sweep], Any]] = []
        self._journal: _Journal | None = None
        self._record: dict[str, Any] = _new_record(self.exp_id, self.parameters, self.points, repetitions)
        existing = read_record(self.path)
        if existing is not None:
            self._adopt(existing)

    # == loading =====================================================================

    @classmethod
    def load(cls, path: str | os.PathLike[str],
             metrics: Callable[[Any], Mapping[str, Any]] | None = None) -> Sweep:
        """The sweep recorded in ``path`` (a sweep directory), to make frames: it has no
        ``build`` and cannot run.  Nothing but the directory is needed."""
        path = os.path.abspath(os.fspath(path))
        record = read_record(path)
        if record is None:
            raise SweepError(path, f"no {RECORD} in it: not a sweep directory")
        sweep = cls.__new__(cls)
        sweep._build = None
        sweep.exp_id = record["exp_id"]
        sweep.results = os.path.dirname(path)
        sweep.path = path
        sweep.points = [dict(p) for p in record["points"]]
        sweep.parameters = list(record["parameters"])
        sweep.repetitions = record["repetitions"]
        sweep.metrics = metrics
        sweep.timeout = None
        sweep._record = record
        sweep._listeners = []
        sweep._journal = None
        return sweep

    def _adopt(self, existing: dict[str, Any]) -> None:
        """Take over the record found in the directory: the same sweep, maybe with more repetitions."""
        if existing["points"] != self.points or existing["parameters"] != self.parameters:
            held = len(existing["points"])
            raise SweepError(self.path, f"the directory holds another sweep ({held} points "
                                        f"of {existing['parameters']}); give another exp_id or results "
                                        f"folder, or the same points")
        if existing["repetitions"] > self.repetitions:
            raise SweepError(self.path, f"the directory holds {existing['repetitions']} repetitions of each "
                                        f"point, more than the {self.repetitions} asked for")
        if existing["repetitions"] < self.repetitions:
            have = {(r["point"], r["repetition"]) for r in existing["runs"]}
            existing["runs"] += [r for r in self._record["runs"] if (r["point"], r["repetition"]) not in have]
            existing["repetitions"] = self.repetitions
        self._record = existing

    # == what it holds ===============================================================

    @property
    def runs(self) -> list[dict[str, Any]]:
        """Every run's entry in the record (copies): point, repetition, state, run_dir,
        failure, start, end."""
        return [dict(r) for r in self._record["runs"]]

    @property
    def abandoned(self) -> list[dict[str, Any]]:
        """Runs begun and never completed (moved to ``abandoned/``), with the reason."""
        return [dict(r) for r in self._record["abandoned"]]

    def counts(self) -> dict[str, int]:
        """How many runs are in each state: ``{"pending": 3, "running": 0, "done": 4, "failed": 1}``."""
        counts = dict.fromkeys(STATES, 0)
        for entry in self._record["runs"]:
            counts[entry["state"]] += 1
        return counts

    def in_progress(self) -> bool:
        """Whether a process (or a thread of this one) is running the sweep now: it holds
        the folder's lock.  Runs recorded as running while it is not were interrupted."""
        try:
            fd = os.open(os.path.join(self.path, LOCK), os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # (and the shared lock, if it was taken)
        return False

    def run_dir(self, entry: Mapping[str, Any]) -> str | None:
        """The absolute run directory of a run's entry, or None when it has none."""
        return None if entry.get("run_dir") is None else os.path.join(self.path, entry["run_dir"])

    def __repr__(self) -> str:
        counts = ", ".join(f"{n} {state}" for state, n in self.counts().items() if n)
        return (f"<Sweep {self.exp_id}: {len(self.points)} points x {self.repetitions} repetitions "
                f"({counts}) in {self.path}>")

    # == running =====================================================================

    def run(self, retry_failed: bool = False, progress: bool | None = None,
            max_parallel: int | None = None, executor: Any = None) -> int:
        """Run what is not done yet; returns how many runs it made.

        Done runs are never made again.  A run that failed (``build`` raised, the
        experiment failed, or it took longer than ``timeout``) is recorded with the
        reason and made again only with ``retry_failed=True``.  A run left unfinished
        by an interruption (the process killed, Ctrl-C) is moved to ``abandoned/`` and
        made again.  Ctrl-C stops the sweep: the runs in progress are released (as
        leaving a controller's ``with`` block does) and the KeyboardInterrupt goes on.

        ``max_parallel``: how many runs at once.  By default one at a time, in this
        thread, as a script would; ``max_parallel=N`` makes N at once on this machine,
        each in a thread of its own (each run has its own controller, so their run
        directories, namespaces and host folders never collide; a port the experiment
        fixes on a host is shared, see :mod:`nepi_lab.runner.executors`).

        ``executor``: None (this process), or a ``dask.distributed.Client``: each run is
        a task the cluster's workers make on their machines, and its run directory
        comes back into the sweep directory (``pip install 'nepi_lab[dask]'``; the build
        function must be picklable and nepi_lab installed on the workers).  A worker
        that dies mid-run has the run made again on another.  With an executor,
        ``max_parallel`` bounds the runs submitted at once (default: every run; the
        scheduler places them).

        ``progress``: None (the default) shows one line rewritten in place (done,
        failed, left, an estimate of the time left) when stdout is a terminal and this
        is not a Jupyter kernel; True shows it anyway (a plain line per finished run
        where stdout is not a terminal); False never (see :mod:`nepi_lab.runner.progress`).

        In a notebook, :meth:`start` runs the sweep in the background instead, and
        :meth:`view` shows its live state.

        Raises :class:`SweepError` if the sweep was loaded (no ``build``) or another
        process or thread is running it.
        """
        if progress not in (None, True, False):
            raise InvalidInputError(f"progress must be None (on a terminal), True or False, not {progress!r}")
        return self._run(retry_failed, progress, max_parallel, executor, None)

    def start(self, retry_failed: bool = False, max_parallel: int | None = None,
              executor: Any = None) -> SweepTask:
        """Run the sweep in the background (as :meth:`run` does, without progress line);
        returns at once with a :class:`SweepTask` to wait for or stop it.

        The calling thread stays free: in a notebook, the kernel goes idle and the next
        cells run while the sweep goes on (its view, :meth:`view`, follows it).  The
        runs are made in threads of their own (``max_parallel``, default 1) or on a
        Dask cluster (``executor``).
        """
        if self._build is None:
            raise self._cannot_run()
        return SweepTask(self, retry_failed, max_parallel, executor)

    def subscribe(self, callback: Callable[[Sweep], Any]) -> Callable[[], None]:
        """Call ``callback(sweep)`` after each change of the record (a run started or
        ended, the record settled); returns a function that unsubscribes.

        The callback runs in the thread that runs the sweep (a background one for
        :meth:`start`), must be quick, and an exception it raises is logged, never
        raised into the sweep.
        """
        self._listeners.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(callback)
        return unsubscribe

    def view(self) -> Any:
        """The sweep's live view (points x repetitions coloured by state, counts, an
        estimate of the time left; see :func:`nepi_lab.notebook.sweep_view`)."""
        return analysis_function("sweep_view")(self)

    def _repr_html_(self) -> str | None:
        """The same table as :meth:`view`'s, once, in Jupyter (the notebook layer builds
        it; None: the plain repr)."""
        render = view("sweep_html")
        return None if render is None else render(self)

    def _cannot_run(self) -> SweepError:
        return SweepError(self.path, "loaded from its directory, it has no build function: "
                                     "make it with Sweep(build, params, ...) to run it")

    def _run(self, retry_failed: bool, progress: bool | None, max_parallel: int | None, executor: Any,
             wake: _Wake | None) -> int:
        if self._build is None:
            raise self._cannot_run()
        if max_parallel is not None and (type(max_parallel) is not int or max_parallel < 1):
            raise InvalidInputError(f"max_parallel must be an int >= 1 (or None), not {max_parallel!r}")
        background = wake is not None
        wake = wake or _Wake()
        if executor is None:
            engine: Any = LocalExecutor(max_parallel or 1, inline=not background)
        else:
            engine = DaskExecutor(executor, self.exp_id, max_parallel)
        limit = max_parallel or (1 if executor is None else len(self._record["runs"]))
        os.makedirs(self.path, exist_ok=True)
        with self._locked():
            current = read_record(self.path)  # another process may have gone on meanwhile
            if current is not None:
                self._adopt(current)
            self._settle()
            todo = collections.deque(e for e in self._record["runs"]
                                     if e["state"] != DONE and (e["state"] != FAILED or retry_failed))
            shown = None
            if not background and wanted(progress, sys.stdout):
                shown = SweepProgress(self.exp_id, sys.stdout, parallel=engine.parallelism)
            active: dict[concurrent.futures.Future[Any], dict[str, Any]] = {}
            made = 0
            self._journal = _Journal(self.path, self._record["runs"])
            try:
                self._save()  # a snapshot, then an empty journal (see _save)
                self._journal.open()
                while todo or active:
                    while todo and len(active) < limit and not wake.stopping:
                        entry = todo.popleft()
                        future = self._start_one(entry, engine, shown, len(todo) + len(active) + 1)
                        active[future] = entry
                        future.add_done_callback(wake.set)
                    if wake.stopping:
                        raise _Stopped
                    finished = [f for f in active if f.done()]
                    if not finished:
                        wake.wait()
                        continue
                    for future in finished:
                        self._finish(active.pop(future), engine.outcome(future.result()))
                        made += 1
                        if shown is not None:
                            shown.finished(self._record["runs"], len(todo) + len(active))
            except BaseException as exc:
                engine.stop()  # the runs in progress end; those that ended meanwhile count
                engine.close()
                for future, entry in active.items():
                    outcome = None
                    if future.done() and future.exception() is None:
                        outcome = engine.outcome(future.result())
                    if outcome is not None and not outcome.interrupted:
                        self._finish(entry, outcome)
                        made += 1
                for entry in self._record["runs"]:
                    if entry["state"] == RUNNING and entry["end"] is None:
                        # left RUNNING on purpose: the next run() moves it to abandoned/ and makes it again
                        entry["end"] = time.time()
                self._save()
                if not isinstance(exc, _Stopped):
                    raise
            finally:
                engine.close()
                journal, self._journal = self._journal, None
                try:
                    self._save()  # the last snapshot holds every change: the journal goes
                finally:
                    journal.close(remove=True)
                if shown is not None:
                    shown.close()
            return made

    def _start_one(self, entry: dict[str, Any], engine: Any, shown: SweepProgress | None,
                   left: int) -> concurrent.futures.Future[Any]:
        """Record the run of ``entry`` as running and start it (its outcome: the future's)."""
        point = self.points[entry["point"]]
        ec = None
        if isinstance(engine, LocalExecutor):
            ec = ExperimentController(exp_id=self.exp_id, local_dir=self.results, parameters=point)
        entry.update(state=RUNNING, run_dir=None if ec is None else ec.run_id, failure=None,
                     start=time.time(), end=None)
        self._save(entry)
        if shown is not None:
            runs = self._record["runs"]
            where = ", ".join(f"{k}={v}" for k, v in point.items())
            current = f"run {runs.index(entry) + 1}/{len(runs)}" + (f" ({where})" if where else "")
            shown.started(runs, left, current)
        try:
            return engine.start(self._build, point, ec, self.timeout)
        except Exception:  # it could not start (Ctrl-C in a run made here leaves it running)
            if ec is not None:
                ec.shutdown()
            entry.update(state=PENDING, run_dir=None, start=None)
            self._save(entry)
            raise

    def _finish(self, entry: dict[str, Any], outcome: Outcome) -> None:
        """Record how the run of ``entry`` ended (an interrupted one stays running)."""
        if outcome.interrupted:
            entry["end"] = time.time()
            self._save(entry)
            return
        failure = outcome.failure
        if outcome.archive is not None and outcome.run_id is not None:
            entry.update(start=outcome.start, run_dir=None)
            try:
                unpack(outcome.archive, outcome.run_id, self.path)
            except (OSError, ValueError, tarfile.TarError) as exc:
                failure = f"its run directory could not be unpacked into the sweep directory: {exc}"
            else:
                entry["run_dir"] = outcome.run_id
        entry.update(state=FAILED if failure else DONE, failure=failure,
                     end=outcome.end if outcome.end is not None else time.time())
        self._save(entry)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(os.path.join(self.path, LOCK), os.O_RDWR | os.O_CREAT, 0o666)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise SweepError(self.path, "another process (or thread) is running this sweep") from None
            yield
        finally:
            os.close(fd)  # releases the lock

    def _settle(self) -> None:
        """Make the record true again after an interruption: a run still marked running
        never completed (its process is gone, since we hold the lock), and a done run
        whose directory does not say it ended is not done."""
        changed = False
        for entry in self._record["runs"]:
            if entry["state"] == RUNNING:
                if entry["run_dir"] is not None:
                    _clean_killed_run(self.exp_id, entry["run_dir"])
                self._abandon(entry, "interrupted: its process stopped before the run was recorded")
                changed = True
            elif entry["state"] == DONE and not _ended(self.run_dir(entry)):
                self._abandon(entry, f"its run directory is missing or incomplete ({DESCRIPTION} does not "
                                     f"say it ended)")
                changed = True
        named = {entry["run_dir"] for entry in self._record["runs"]}
        for name in sorted(os.listdir(self.path)):
            folder = os.path.join(self.path, name)
            if name.startswith(".incoming-"):  # a run coming back from a Dask worker, never finished
                shutil.rmtree(folder, ignore_errors=True)
            elif len(name) == 20 and name.isdigit() and name not in named and os.path.isdir(folder):
                # made by a process killed before the record named it
                _clean_killed_run(self.exp_id, name)
                os.makedirs(os.path.join(self.path, ABANDONED), exist_ok=True)
                os.replace(folder, os.path.join(self.path, ABANDONED, name))
                self._record["abandoned"].append({
                    "point": None, "repetition": None, "run_dir": os.path.join(ABANDONED, name),
                    "reason": "interrupted: its process stopped before the record named the run"})
                changed = True
        if changed:
            self._save()

    def _abandon(self, entry: dict[str, Any], reason: str) -> None:
        folder = self.run_dir(entry)
        kept = None
        if folder is not None and os.path.isdir(folder):
            os.makedirs(os.path.join(self.path, ABANDONED), exist_ok=True)
            kept = os.path.join(ABANDONED, os.path.basename(folder))
            os.replace(folder, os.path.join(self.path, kept))
        self._record["abandoned"].append({"point": entry["point"], "repetition": entry["repetition"],
                                          "run_dir": kept, "reason": reason})
        entry.update(state=PENDING, run_dir=None, failure=None, start=None, end=None)

    def _save(self, entry: dict[str, Any] | None = None) -> None:
        """Record a change: while the sweep runs, ``entry``'s new state as one line appended
        to the journal; otherwise, and each time the journal grows as long as the record,
        a new snapshot (``sweep.json``, atomically) and an emptied journal.  A change costs
        a few microseconds however many runs the sweep has; readers fold the journal in
        (:func:`read_record`)."""
        self._record["updated"] = time.time()
        journal = self._journal
        if entry is None or journal is None or not journal.append(entry):
            write_json_atomic(os.path.join(self.path, RECORD), self._record)
            if journal is not None:
                journal.clear()
        for callback in list(self._listeners):
            try:
                callback(self)
            except Exception:  # a view's error never stops the sweep
                log.exception("sweep %s: a subscriber failed", self.exp_id)

    # == frames (the analysis layer's, through the core's hook) =======================

    def frame(self, metrics: Callable[[Any], Mapping[str, Any]] | None = None) -> Any:
        """One row per run (see :func:`nepi_lab.analysis.sweep_frame`)."""
        return analysis_function("sweep_frame")(self, metrics=metrics)

    def summary(self, metrics: Callable[[Any], Mapping[str, Any]] | None = None) -> Any:
        """One row per point: mean, std, count and 95 % confidence interval of each
        metric (see :func:`nepi_lab.analysis.sweep_summary`)."""
        return analysis_function("sweep_summary")(self, metrics=metrics)

    def plot(self, x: str, y: str, hue: str | None = None, ax: Any = None,
             metrics: Callable[[Any], Mapping[str, Any]] | None = None) -> Any:
        """A metric against a parameter with 95 % confidence intervals, one line per value
        of ``hue``; returns the matplotlib Axes (see :func:`nepi_lab.analysis.plot_sweep`)."""
        return analysis_function("sweep_plot")(self, x=x, y=y, hue=hue, ax=ax, metrics=metrics)


def load_sweep(path: str | os.PathLike[str],
               metrics: Callable[[Any], Mapping[str, Any]] | None = None) -> Sweep:
    """The sweep recorded in the directory ``path`` (:meth:`Sweep.load`)."""
    return Sweep.load(path, metrics=metrics)


# == helpers ===========================================================================

def analysis_function(name: str) -> Callable[..., Any]:
    """The analysis layer's function ``name``, through the core's hook (:mod:`nepi_lab.core.display`):
    this layer sits below the analysis layer and never imports it."""
    function = view(name)
    if function is None:  # only if nepi_lab/__init__.py was bypassed
        raise RuntimeError(f"no {name} is registered: import nepi_lab.analysis")
    return function


def _points(params: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """The points of ``params`` (a grid, a list of dicts, a DataFrame) and the parameter names."""
    if isinstance(params, Mapping):
        names = list(params)
        values = []
        for name in names:
            column = params[name]
            if isinstance(column, (str, bytes)) or not isinstance(column, Iterable):
                raise SweepError(None, f"a grid gives each parameter a list of values: "
                                       f"{name!r} has {column!r}")
            values.append(list(column))
        points = [dict(zip(names, combination, strict=True)) for combination in itertools.product(*values)]
    elif hasattr(params, "to_dict") and hasattr(params, "columns"):  # a DataFrame, without importing pandas
        names = [str(c) for c in params.columns]
        points = [dict(zip(names, row, strict=True)) for row in params.itertuples(index=False, name=None)]
    elif isinstance(params, Iterable) and not isinstance(params, (str, bytes)):
        points = []
        for point in params:
            if not isinstance(point, Mapping):
                raise SweepError(None, f"a list of points holds dicts of name -> value, not {point!r}")
            points.append(dict(point))
        names = list(dict.fromkeys(name for point in points for name in point))
    else:
        raise SweepError(None, f"params must be a grid (dict of name -> values), a list of dicts or a "
                               f"DataFrame, not {type(params).__name__}")
    if not points:
        raise SweepError(None, "params gives no point")
    for name in names:
        if not isinstance(name, str) or not name.isidentifier():
            raise SweepError(None, f"a parameter name must be a Python identifier (it is passed to "
                                   f"build as a keyword), not {name!r}")
        if name in RESERVED:
            raise SweepError(None, f"{name!r} names a column of the sweep's frames; call the parameter "
                                   f"otherwise")
    checked = []
    for point in points:
        point = {name: _plain(value) for name, value in point.items()}
        try:
            checked.append(check_parameters(point))
        except InvalidInputError as exc:
            raise SweepError(None, str(exc)) from None
    # as JSON gives them back, so that a resumed sweep compares equal to its record
    return json.loads(json.dumps(checked)), names


def _plain(value: Any) -> Any:
    """A numpy scalar (from a DataFrame) as the Python value it holds."""
    item = getattr(value, "item", None)
    if callable(item) and type(value).__module__ == "numpy":
        return item()
    return value


def _new_record(exp_id: str, parameters: list[str], points: list[dict[str, Any]],
                repetitions: int) -> dict[str, Any]:
    runs = [{"point": p, "repetition": r, "state": PENDING, "run_dir": None, "failure": None,
             "start": None, "end": None}
            for r in range(repetitions) for p in range(len(points))]
    return {"format": SWEEP_FORMAT_NAME, "version": SWEEP_FORMAT, "exp_id": exp_id,
            "parameters": parameters, "points": points, "repetitions": repetitions,
            "runs": runs, "abandoned": [], "updated": None}


def read_record(path: str) -> dict[str, Any] | None:
    """The record in the sweep directory ``path`` as it stands, checked: ``sweep.json``
    with the changes of ``sweep.journal`` applied; None if there is none.

    The journal holds, while a sweep runs, one JSON line per change of a run's entry
    (``{"run": <index in runs>, "point": ..., "repetition": ..., "state": ...}``, the
    entry's every field); ``run()`` folds it into ``sweep.json`` when it ends.  A line
    cut short (a crash, a full disk) is skipped: the change it held is lost, never the
    record.
    """
    file = os.path.join(path, RECORD)
    try:
        with open(file, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SweepError(path, f"cannot read {RECORD}: {exc.strerror}") from None
    try:
        record = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise SweepError(path, f"{RECORD} is damaged: {exc}") from None
    if not isinstance(record, dict) or record.get("format") != SWEEP_FORMAT_NAME:
        raise SweepError(path, f"{RECORD} is not a sweep record (format {SWEEP_FORMAT_NAME!r})")
    if record.get("version") != SWEEP_FORMAT:
        raise SweepError(path, f"{RECORD} has version {record.get('version')!r}; this nepi_lab reads "
                               f"version {SWEEP_FORMAT}")
    _check_record(path, record)
    if _apply_journal(path, record):
        _check_record(path, record)
    return record


def _apply_journal(path: str, record: dict[str, Any]) -> bool:
    """Apply the journal's changes to ``record``; whether there were any."""
    try:
        with open(os.path.join(path, JOURNAL), "rb") as f:
            lines = f.read().split(b"\n")
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise SweepError(path, f"cannot read {JOURNAL}: {exc.strerror}") from None
    runs = record["runs"]
    applied = False
    for line in lines:
        try:
            change = json.loads(line)
        except ValueError:
            continue  # empty, or cut short
        if not isinstance(change, dict):
            continue
        i = change.pop("run", None)
        if type(i) is not int or not 0 <= i < len(runs) or change.get("state") not in STATES:
            continue
        if change.get("point") != runs[i]["point"] or change.get("repetition") != runs[i]["repetition"]:
            continue  # not a change of this record's runs
        runs[i].update(change)
        applied = True
    return applied


class _Journal:
    """The journal of a sweep being run: ``sweep.journal``, one line appended per change."""

    def __init__(self, path: str, runs: list[dict[str, Any]]) -> None:
        self.file = os.path.join(path, JOURNAL)
        self._positions = {id(entry): i for i, entry in enumerate(runs)}
        self._limit = max(64, len(runs))
        self._lines = 0
        self._fd: int | None = None

    def open(self) -> None:
        """Start an empty journal (after a snapshot that holds everything)."""
        self._fd = os.open(self.file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o666)

    def append(self, entry: dict[str, Any]) -> bool:
        """Append ``entry``'s state; False when the journal is full (time for a snapshot)."""
        if self._fd is None or self._lines >= self._limit:
            return False
        line = json.dumps({"run": self._positions[id(entry)], **entry}, separators=(",", ":")) + "\n"
        data = line.encode()
        if os.write(self._fd, data) != len(data):
            raise OSError(f"{self.file}: a change was written in part (disk full?)")
        self._lines += 1
        return True

    def clear(self) -> None:
        """Empty it (a snapshot now holds its changes)."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
        self._lines = 0

    def close(self, remove: bool) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if remove:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.file)


def _check_record(path: str, record: dict[str, Any]) -> None:
    def bad(what: str) -> SweepError:
        return SweepError(path, f"{RECORD} is damaged: {what}")

    if not isinstance(record.get("exp_id"), str):
        raise bad("exp_id must be a string")
    names, points, repetitions = record.get("parameters"), record.get("points"), record.get("repetitions")
    if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        raise bad("parameters must be a list of names")
    if not (isinstance(points, list) and all(isinstance(p, dict) for p in points)):
        raise bad("points must be a list of objects")
    if type(repetitions) is not int or repetitions < 1:
        raise bad("repetitions must be an int >= 1")
    runs = record.get("runs")
    if not isinstance(runs, list):
        raise bad("runs must be a list")
    for i, entry in enumerate(runs):
        if not (isinstance(entry, dict) and type(entry.get("point")) is int
                and 0 <= entry["point"] < len(points)
                and type(entry.get("repetition")) is int and entry.get("state") in STATES):
            raise bad(f"runs[{i}] is not a run entry (point, repetition, state)")
        run_dir = entry.get("run_dir")
        if run_dir is not None and (not isinstance(run_dir, str) or os.sep in run_dir
                                    or run_dir in ("", ".", "..")):
            raise bad(f"runs[{i}].run_dir must name a folder of the sweep directory")
    if not isinstance(record.setdefault("abandoned", []), list):
        raise bad("abandoned must be a list")


def _clean_killed_run(exp_id: str, run_id: str) -> None:
    """Stop what a run whose process was killed left on its hosts (its processes; its
    traces are collected and its experiment.json says ``"end": "killed"``), as
    ``nepi-lab cleanup`` would, before the sweep makes the run again.  In a thread of its
    own (cleanup runs an event loop; this thread may be a notebook kernel's)."""
    from ..resources.linux._cleanup import cleanup_run

    def clean() -> None:
        try:
            cleanup_run(exp_id, run_id)
        except Exception:  # noqa: BLE001  (nepi-lab cleanup can still do it later)
            log.warning("sweep %s: could not clean what run %s left", exp_id, run_id, exc_info=True)

    thread = threading.Thread(target=clean, name="nepi_lab-sweep-cleanup", daemon=True)
    thread.start()
    thread.join()


def _ended(run_dir: str | None) -> bool:
    """Whether the run directory is complete: its description says the run ended."""
    if run_dir is None:
        return False
    try:
        with open(os.path.join(run_dir, DESCRIPTION), "rb") as f:
            description = json.loads(f.read())
    except (OSError, ValueError):
        return False
    return isinstance(description, dict) and description.get("end") is not None


def _block(future: concurrent.futures.Future[Any]) -> None:
    """Until ``future`` is done, serving the calling thread's inbox meanwhile (a Jupyter
    kernel's: views go on updating); Ctrl-C ends the wait with KeyboardInterrupt."""
    box = inbox()
    if box is not None:
        box.wait(future)
    else:
        concurrent.futures.wait([future])


class _Stopped(Exception):
    """A background sweep was asked to stop (:meth:`SweepTask.stop`)."""


class _Wake:
    """What the sweep's thread waits on: a run ended, or the sweep is asked to stop.

    The wait serves the calling thread's inbox (a Jupyter kernel's: views go on
    updating) and ends with KeyboardInterrupt on Ctrl-C.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._future: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.stopping = False

    def set(self, *_: Any) -> None:
        with self._lock:
            if not self._future.done():
                self._future.set_result(None)

    def stop(self) -> None:
        self.stopping = True
        self.set()

    def wait(self) -> None:
        """Until :meth:`set` (since the last wait); the caller then looks at what changed."""
        future = self._future
        _block(future)
        with self._lock:
            if self._future is future:
                self._future = concurrent.futures.Future()


class SweepTask:
    """A sweep running in the background (:meth:`Sweep.start`): wait for it, or stop it."""

    def __init__(self, sweep: Sweep, retry_failed: bool, max_parallel: int | None, executor: Any) -> None:
        self.sweep = sweep
        self._wake = _Wake()
        self._result: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._body, args=(retry_failed, max_parallel, executor),
                                        name=f"nepi_lab-sweep-{sweep.exp_id}", daemon=True)
        self._thread.start()

    def _body(self, retry_failed: bool, max_parallel: int | None, executor: Any) -> None:
        try:
            made = self.sweep._run(retry_failed, False, max_parallel, executor, self._wake)
        except BaseException as exc:  # noqa: BLE001  (handed to whoever waits)
            self._result.set_exception(exc)
        else:
            self._result.set_result(made)

    def done(self) -> bool:
        """Whether the sweep stopped (all made, stopped, or failed with an error)."""
        return self._result.done()

    def wait(self, timeout: float | None = None) -> int:
        """Block until the sweep ends; how many runs it made.  Raises the error that ended
        it (SweepError ...), or TimeoutError after ``timeout`` seconds (it goes on).
        In a notebook the views go on updating meanwhile; Ctrl-C ends the wait, not the sweep."""
        if timeout is None:
            _block(self._result)
        try:
            return self._result.result(timeout)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(f"sweep {self.sweep.exp_id} still running after {timeout} s") from None

    def stop(self, timeout: float | None = None) -> int:
        """Stop the sweep: no run starts any more, the runs in progress are released
        (recorded as interrupted, made again by the next run) and the record is saved.
        Blocks until that is done; how many runs were made."""
        self._wake.stop()
        return self.wait(timeout)

    def __repr__(self) -> str:
        state = "running" if not self.done() else "done"
        return f"<SweepTask {self.sweep.exp_id} {state}: {self.sweep!r}>"
