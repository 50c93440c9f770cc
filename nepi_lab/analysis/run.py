"""Runs as DataFrames: from a live controller, or from a run directory alone.

A *source* is any of:

- an :class:`~nepi_lab.ExperimentController`, live or shut down: frames show the
  experiment as it is at the call;
- a run directory path (``ec.run_dir``), or a :class:`Run` from :func:`load_run`:
  frames are rebuilt from ``experiment.json``, ``events.jsonl`` and the collected
  trace files, with no controller, no hosts and no resource class, possibly on
  another machine;
- a :class:`RunSet` from :func:`load_runs`: every run of an experiment, its frames
  concatenated (each row carries its ``run_id``).

The two ways agree: a frame built from a controller equals the one built later from
its run directory (``pandas.testing.assert_frame_equal``), because both are made by
the same code from the same data, the description and the event records that the
controller writes to the directory.

Example
-------
>>> import os                                                           # doctest: +SKIP
>>> from nepi_lab import load_run, trace_frame                          # doctest: +SKIP
>>> run = load_run(os.path.expanduser(                                  # doctest: +SKIP
...     "~/.local/share/nepi_lab/results/ping-test/20240101120000000000"))
>>> run.events_frame().groupby("to").size()                             # doctest: +SKIP
>>> pings = trace_frame(run, 3, "stdout")       # the ping parser       # doctest: +SKIP
>>> pings.rtt_ms.describe()                                             # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ..core.controller import ExperimentController
from ..core.errors import InvalidInputError, RunDirectoryError, UnknownGuidError
from ..core.results import DESCRIPTION, EVENTS
from ..core.run_directory import STATES as _STATE_NAMES
from ..core.run_directory import (
    SUPPORTED_VERSIONS,  # noqa: F401 - re-exported by nepi_lab.analysis
    plain_files,
    read_description,
    read_events,
    read_inside,
    refuse_if_not_plain,
    resource_folder,
)
from ..core.traces import TraceAttr, check_name
from ..runner.sweep import RECORD as SWEEP_RECORD
from ..runner.sweep import Sweep, load_sweep
from . import parsers as _parsers
from ._common import text_dtype
from .errors import TraceNotFoundError

if TYPE_CHECKING:
    import pandas as pd

STATES = list(_STATE_NAMES)
#: Column of :func:`resources_frame` holding when a resource last entered each state;
#: the names of the controller's ``get_<verb>_time`` getters.
TIME_COLUMNS = {
    "NEW": "register_time", "DISCOVERED": "discover_time", "RESERVED": "reserve_time",
    "PROVISIONED": "provision_time", "READY": "ready_time", "STARTED": "start_time",
    "STOPPED": "stop_time", "FINISHED": "finish_time", "FAILED": "failed_time",
    "RELEASED": "release_time",
}
EVENT_COLUMNS = ["time", "guid", "type", "from", "to", "detail"]
#: The states of a resource that was never deployed.
_NOT_DEPLOYED = frozenset({"NEW", "RELEASED"})
_IDENTITY = ("run_id", "guid", "type", "trace")

# == one run ========================================================================


class _Frames:
    """The frame methods shared by one run and a set of runs."""

    def trace_frame(self, guid: int | Iterable[int], name: str,
                    parser: str | _parsers.Parser | None = None) -> pd.DataFrame:
        """See :func:`trace_frame`."""
        return trace_frame(self, guid, name, parser)

    def events_frame(self) -> pd.DataFrame:
        """See :func:`events_frame`."""
        return events_frame(self)

    def resources_frame(self) -> pd.DataFrame:
        """See :func:`resources_frame`."""
        return resources_frame(self)


class Run(_Frames):
    """One run of an experiment: its description, its events and its traces.

    Made by :func:`load_run` (from a run directory) or internally from a live
    controller; the frame methods are those of the module functions.
    """

    path: str
    #: Columns joined into this run's frames right after ``run_id``: for a run of a
    #: sweep read by :func:`load_runs`, its point's parameters, ``repetition`` and
    #: ``point``; empty otherwise.
    point_columns: dict[str, Any] = {}  # noqa: RUF012 - replaced, never changed in place

    # -- what subclasses provide ------------------------------------------------------

    def description(self) -> dict[str, Any]:
        """The run's description, as in ``experiment.json`` (see README, "run directory")."""
        raise NotImplementedError

    def event_table(self) -> pd.DataFrame:
        """Every state change, as read: the columns of ``events.jsonl`` (time in epoch seconds)."""
        raise NotImplementedError

    def resource_type(self, guid: int) -> str:
        """The type name of resource ``guid``."""
        raise NotImplementedError

    def type_bases(self, rtype: str) -> list[str]:
        """Type names ``rtype`` derives from, nearest first (for default parsers)."""
        raise NotImplementedError

    def trace(self, guid: int, name: str) -> str | bytes:
        """The content of a trace: str if it is UTF-8, else bytes (as ``ec.trace``)."""
        data = self.trace_bytes(guid, name)
        try:
            return data.decode()
        except UnicodeDecodeError:
            return data

    def trace_bytes(self, guid: int, name: str) -> bytes:
        """The content of a trace, as the bytes of its file (what parsers are given)."""
        raise NotImplementedError

    # -- identity -------------------------------------------------------------------

    @property
    def exp_id(self) -> str:
        return str(self.description().get("exp_id"))

    @property
    def run_id(self) -> str:
        return str(self.description().get("run_id"))

    @property
    def ecstate(self) -> str | None:
        """The controller's state when the description was last saved (``TERMINATED`` ...)."""
        return self.description().get("ecstate")

    @property
    def parameters(self) -> dict[str, Any]:
        """The run's parameter point (``experiment.json``'s ``"parameters"``; empty if none)."""
        return dict(self.description().get("parameters", {}))

    @property
    def guids(self) -> list[int]:
        """Every resource, in registration order."""
        return [r["guid"] for r in self.description().get("resources", ())]

    @property
    def deployed(self) -> bool:
        """Whether anything of the run was ever deployed: False for a controller whose
        resources were only registered (and released), such as an
        :class:`~nepi_lab.ExperimentRunner`'s template."""
        return not set(self.event_table()["to"]).issubset(_NOT_DEPLOYED)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.exp_id}/{self.run_id} ({len(self.guids)} resources)>"


class DirectoryRun(Run):
    """A run read back from its directory (:func:`load_run`)."""

    def __init__(self, path: str, strict: bool = True) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self._description = read_description(self.path)
        records, self.malformed_events = read_events(self.path, strict)
        self._events = _event_table(records)
        self._resources = {r["guid"]: r for r in self._description["resources"]}

    def description(self) -> dict[str, Any]:
        return self._description

    def type_bases(self, rtype: str) -> list[str]:
        return list(self._description["types"].get(rtype, {}).get("bases", ()))

    def event_table(self) -> pd.DataFrame:
        return self._events

    def _entry(self, guid: int) -> dict[str, Any]:
        try:
            return self._resources[guid]
        except (KeyError, TypeError):
            raise UnknownGuidError(guid, self._resources) from None

    def resource_type(self, guid: int) -> str:
        return self._entry(guid)["type"]

    def _folder(self, guid: int) -> str:
        # one path component: the type names were checked when the description was read
        return resource_folder(guid, self.resource_type(guid))

    def resource_dir(self, guid: int) -> str:
        """``<run dir>/<guid>-<type with :: as .>``: where the resource's traces were collected."""
        return os.path.join(self.path, self._folder(guid))

    def trace_path(self, guid: int, name: str) -> str:
        """Where trace ``name`` of ``guid`` is (checked: declared, enabled and collected).

        A trace that is a symbolic link, or anything but a plain file (a FIFO, a
        device, a folder), is refused with :class:`RunDirectoryError`: a run directory
        holds plain files only, and reading never leaves it.
        """
        check_name(name, "trace name")
        entry = self._entry(guid)
        rtype = entry["type"]
        declared = self._description["types"].get(rtype, {}).get("traces")
        folder = self.resource_dir(guid)
        present = plain_files(folder)
        if declared is not None and name not in declared:
            raise TraceNotFoundError(guid, rtype, name, "its type declares no such trace",
                                     declared, present)
        enabled = entry.get("traces")
        if enabled is None:
            enabled = [t for t, d in (declared or {}).items() if d.get("enabled")]
        if declared is not None and name not in enabled:
            raise TraceNotFoundError(guid, rtype, name, "it was not enabled (ec.enable_trace before deploy)",
                                     declared, present)
        path = os.path.join(folder, name)
        if name not in present:
            refuse_if_not_plain(self.path, self._folder(guid), name)
            raise TraceNotFoundError(guid, rtype, name,
                                     f"it was not collected into the run directory (no file {path})",
                                     declared or present, present)
        return path

    def trace_bytes(self, guid: int, name: str) -> bytes:
        self.trace_path(guid, name)  # what is refused, and why
        try:
            return read_inside(self.path, self._folder(guid), name)
        except FileNotFoundError:  # removed since
            raise RunDirectoryError(self.path, "removed while it was read", f"{self._folder(guid)}/{name}") \
                from None


class ControllerRun(Run):
    """A live view of a controller: every call reads the experiment as it is now."""

    def __init__(self, ec: ExperimentController) -> None:
        self.ec = ec
        self.path = ec.run_dir
        self.malformed_events: list[str] = []

    def description(self) -> dict[str, Any]:
        # The same dict the controller writes to experiment.json, through the same
        # JSON encoding, so that live frames equal those read back from the directory.
        text = json.dumps(self.ec.description(), separators=(",", ":"), default=str)
        return json.loads(text)

    def event_table(self) -> pd.DataFrame:
        return _event_table(self.ec.events.to_dicts())

    def resource_type(self, guid: int) -> str:
        return self.ec.get_resource(guid).get_rtype()

    def type_bases(self, rtype: str) -> list[str]:
        from ..core.registry import get_resource_type

        return get_resource_type(rtype).get_bases()

    @property
    def exp_id(self) -> str:
        return self.ec.exp_id

    @property
    def run_id(self) -> str:
        return self.ec.run_id

    @property
    def guids(self) -> list[int]:
        return self.ec.resources

    def trace_bytes(self, guid: int, name: str) -> bytes:
        rm = self.ec.get_resource(guid)
        check_name(name, "trace name")
        declared = rm.get_trace_declarations()
        enabled = sorted(t for t in declared if self.ec.trace_enabled(guid, t))
        if name not in declared:
            raise TraceNotFoundError(guid, rm.get_rtype(), name, "its type declares no such trace",
                                     declared, enabled)
        if name not in enabled:
            raise TraceNotFoundError(guid, rm.get_rtype(), name,
                                     "it is not enabled (ec.enable_trace before deploy)", declared, enabled)
        data = self.ec.trace(guid, name, TraceAttr.ALL)
        return data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data  # type: ignore[union-attr]


# == several runs ===================================================================


class RunSet(_Frames, Sequence[Run]):
    """Every run of an experiment (:func:`load_runs`), oldest first; frames concatenate."""

    def __init__(self, runs: Iterable[Run], path: str | None = None, left_out: Iterable[str] = ()) -> None:
        self.runs = list(runs)
        self.path = path
        #: Run directories :func:`load_runs` left out: runs never deployed.
        self.left_out = list(left_out)

    def __len__(self) -> int:
        return len(self.runs)

    def __getitem__(self, index: Any) -> Any:
        return self.runs[index]

    def __iter__(self) -> Iterator[Run]:
        return iter(self.runs)

    @property
    def run_ids(self) -> list[str]:
        return [r.run_id for r in self.runs]

    def __repr__(self) -> str:
        left_out = f" ({len(self.left_out)} never deployed, left out)" if self.left_out else ""
        return f"<RunSet of {len(self.runs)} runs in {self.path}{left_out}>"



# == loading ========================================================================


def load_run(path: str | os.PathLike[str], *, strict: bool = True) -> DirectoryRun:
    """Reopen a finished run from its directory alone.

    Parameters
    ----------
    path : str or path
        The run directory, ``<results>/<exp_id>/<run_id>``.
    strict : bool
        By default a damaged ``events.jsonl`` line is an error naming the line; with
        ``strict=False`` damaged lines are left out and counted in
        ``events_frame(run).attrs["malformed"]`` (a run whose controller died while
        writing its last line stays readable).

    Raises
    ------
    RunDirectoryError
        The directory, ``experiment.json`` or ``events.jsonl`` is missing or
        damaged; the message names the file and the line.
    RunFormatError
        The run was written in a format version this nepi_lab does not read.

    Example
    -------
    >>> import shutil, tempfile
    >>> from nepi_lab import ExperimentController
    >>> results = tempfile.mkdtemp()
    >>> with ExperimentController(exp_id="ping", local_dir=results) as ec:   # registered only
    ...     node = ec.register_resource("linux::Node", hostname="localhost")
    ...     ping = ec.register_resource("linux::Ping", connectedTo=node, target="127.0.0.1")
    >>> run = load_run(ec.run_dir)
    >>> run.resources_frame()[["guid", "type", "state"]]
       guid         type     state
    0     1  linux::Node  RELEASED
    1     2  linux::Ping  RELEASED
    >>> shutil.rmtree(results)
    """
    return DirectoryRun(os.fspath(path), strict)


def load_runs(exp_dir: str | os.PathLike[str], *, strict: bool = True, undeployed: bool = False) -> RunSet:
    """Every run of an experiment: the run directories in ``exp_dir`` (``<results>/<exp_id>``).

    Sub-folders that are not runs (no ``experiment.json`` nor ``events.jsonl``) are
    ignored; a damaged run is an error, as in :func:`load_run`.

    A run in which nothing was ever deployed (only registered, then released: an
    :class:`~nepi_lab.ExperimentRunner`'s template, a notebook stopped before
    ``deploy()``) holds no measurement and is left out, its path listed in
    :attr:`RunSet.left_out`; ``undeployed=True`` keeps it (:attr:`Run.deployed` tells).

    A sweep directory (one holding ``sweep.json``) gives the runs of the sweep, and
    their frames carry the point's columns after ``run_id``: the parameters (from each
    run's ``experiment.json``), ``repetition`` and ``point`` (from ``sweep.json``), so
    that a frame over every run groups by parameter.  A column of the data named like a
    parameter is renamed: ``_data`` suffix in a trace frame, ``_attribute`` in a
    resources frame.

    Example
    -------
    >>> runs = load_runs(sweep.path)                                   # doctest: +SKIP
    >>> trace_frame(runs, 2, "stdout").groupby(["rate", "loss"]).size()   # doctest: +SKIP
    """
    exp_dir = os.path.abspath(os.fspath(exp_dir))
    try:
        names = sorted(os.listdir(exp_dir))
    except OSError as exc:
        raise RunDirectoryError(exp_dir, f"cannot list the experiment directory: {exc.strerror}") from None
    runs = []
    left_out = []
    for name in names:
        folder = os.path.join(exp_dir, name)
        if os.path.isdir(folder) and (os.path.exists(os.path.join(folder, DESCRIPTION))
                                      or os.path.exists(os.path.join(folder, EVENTS))):
            run = load_run(folder, strict=strict)
            if undeployed or run.deployed:
                runs.append(run)
            else:
                left_out.append(folder)
    if not runs:
        if left_out:
            raise RunDirectoryError(exp_dir, f"none of its {len(left_out)} runs was ever deployed (only "
                                             "registered); load_runs(..., undeployed=True) reads them")
        raise RunDirectoryError(exp_dir, "no run directory in it (a run directory holds "
                                         f"{DESCRIPTION} and {EVENTS}); give <results>/<exp_id>")
    runs.sort(key=lambda r: r.run_id)
    if os.path.exists(os.path.join(exp_dir, SWEEP_RECORD)):
        _join_sweep(runs, load_sweep(exp_dir))
    return RunSet(runs, exp_dir, left_out)


def _join_sweep(runs: list[Run], sweep: Sweep) -> None:
    """Give each run of ``sweep`` its point's columns (:attr:`Run.point_columns`)."""
    entries = {entry["run_dir"]: entry for entry in sweep.runs if entry.get("run_dir")}
    for run in runs:
        entry = entries.get(os.path.basename(run.path))
        if entry is None:  # not a run of the record (put there by hand): NA in those columns
            point: dict[str, Any] = dict.fromkeys(sweep.parameters)
            entry = {"repetition": None, "point": None}
        else:
            point = {**sweep.points[entry["point"]], **run.parameters}
        run.point_columns = {**{name: point.get(name) for name in sweep.parameters},
                             "repetition": entry["repetition"], "point": entry["point"]}


def _with_point_columns(frame: pd.DataFrame, run: Run, suffix: str) -> pd.DataFrame:
    """``frame`` with ``run``'s point columns after ``run_id`` (a data column named like one
    of them gets ``suffix``)."""
    import pandas as pd

    columns = run.point_columns
    if not columns:
        return frame
    attrs = frame.attrs
    frame = frame.rename(columns={c: f"{c}{suffix}" for c in frame.columns if c in columns})
    index = frame.index
    joined = {}
    for name, value in columns.items():
        if name in ("repetition", "point"):
            joined[name] = pd.Series(value, index=index, dtype="Int64")
        elif isinstance(value, str):
            joined[name] = pd.Series(value, index=index, dtype=text_dtype())
        else:  # a number, a bool, None: as pandas infers it, the same way for every run
            joined[name] = pd.Series([value] * len(index), index=index,
                                     dtype=None if value is not None else object)
    frame = pd.concat([frame.iloc[:, :1], pd.DataFrame(joined, index=index), frame.iloc[:, 1:]], axis=1)
    frame.attrs = attrs
    return frame


def _event_table(records: list[Any]) -> pd.DataFrame:
    """The records as columns, the same way for a controller's log and a file's (records
    read from a file were checked by :func:`~nepi_lab.core.run_directory.read_events`)."""
    import pandas as pd

    if not records:
        return pd.DataFrame({c: pd.Series([], dtype="float64" if c == "time" else object)
                             for c in EVENT_COLUMNS})
    columns = EVENT_COLUMNS + ["sim_time"] if any("sim_time" in r for r in records) else EVENT_COLUMNS
    return pd.DataFrame.from_records(records, columns=columns)


# == sources ========================================================================


def as_runs(source: Any) -> list[Run]:
    """The runs a source stands for (see the module docstring)."""
    if isinstance(source, Run):
        return [source]
    if isinstance(source, RunSet):
        return list(source.runs)
    if isinstance(source, ExperimentController):
        return [ControllerRun(source)]
    if isinstance(source, (str, os.PathLike)):
        return [load_run(source)]
    if isinstance(source, (list, tuple)) and all(isinstance(s, Run) for s in source):
        return list(source)
    raise InvalidInputError(
        f"cannot read a run from {source!r}: give an ExperimentController, a run directory path, "
        f"a Run (load_run) or a RunSet (load_runs)")


# == frames =========================================================================


def trace_frame(source: Any, guid: int | Iterable[int], name: str,
                parser: str | _parsers.Parser | None = None) -> pd.DataFrame:
    """One trace as a tidy DataFrame.

    Parameters
    ----------
    source
        An ExperimentController, a run directory path, a :class:`Run` or a
        :class:`RunSet` (then one frame for every run, concatenated).
    guid : int or iterable of int
        The resource (several: their frames concatenated).
    name : str
        The trace name (``"stdout"``, ``"pcap"`` ...).
    parser : str, callable or None
        A registered parser name (:func:`~nepi_lab.analysis.parser_names`), a
        function ``data -> DataFrame``, or None for the type's default
        (``linux::Ping`` stdout is parsed by ``ping``, ...; otherwise ``lines``).

    Returns
    -------
    pandas.DataFrame
        ``run_id``, ``guid``, ``type`` and ``trace`` first, so that frames of many
        resources and runs concatenate cleanly, then the parser's columns (one of
        them named like those four is renamed with a ``_data`` suffix).  ``attrs``
        holds the parser's metadata: ``parser``, ``malformed`` (the count of lines
        it could not read), ``malformed_examples``, and its own (``summary`` ...).

    Raises
    ------
    UnknownParserError
        ``parser`` names no registered parser; the message lists them.
    TraceNotFoundError
        The trace is not declared, not enabled or was not collected; the message
        names the resource and lists its readable traces.
    UnknownGuidError
        No such resource.

    Example
    -------
    >>> frame = trace_frame(ec, ping, "stdout")                        # doctest: +SKIP
    >>> frame[["timestamp", "seq", "rtt_ms"]]                          # doctest: +SKIP
    """
    import pandas as pd

    if isinstance(parser, str):
        _parsers.get_parser(parser)  # an unknown name is refused before anything is read
    guids = [guid] if isinstance(guid, int) else list(guid)
    frames = []
    for run in as_runs(source):
        for g in guids:
            frames.append(_with_point_columns(_one_trace_frame(run, g, name, parser), run, "_data"))
    if len(frames) == 1:
        return frames[0]
    combined = pd.concat(frames, ignore_index=True)
    combined.attrs = {
        "parser": frames[0].attrs.get("parser"),
        "malformed": sum(f.attrs.get("malformed", 0) for f in frames),
        "malformed_examples": [f"run {f.attrs['run_id']}, resource {f.attrs['guid']}: {e}"
                               for f in frames for e in f.attrs.get("malformed_examples", ())][:5],
        "parts": [dict(f.attrs) for f in frames],
    }
    return combined


def _one_trace_frame(run: Run, guid: int, name: str, parser: str | _parsers.Parser | None) -> pd.DataFrame:
    import pandas as pd

    rtype = run.resource_type(guid)
    parser_name, function = _parsers.resolve(parser, rtype, name, run.type_bases(rtype))
    frame = function(run.trace_bytes(guid, name))
    if not isinstance(frame, pd.DataFrame):
        raise InvalidInputError(f"parser {parser_name!r} returned {type(frame).__name__}, not a DataFrame")
    attrs = dict(frame.attrs)
    clashes = {c: f"{c}_data" for c in frame.columns if c in _IDENTITY}
    if clashes:
        frame = frame.rename(columns=clashes)
    index = frame.index
    identity = pd.DataFrame({  # scalars broadcast: no list of a million strings
        "run_id": pd.Series(run.run_id, index=index, dtype=text_dtype()),
        "guid": pd.Series(guid, index=index, dtype="int64"),
        "type": pd.Series(rtype, index=index, dtype=text_dtype()),
        "trace": pd.Series(name, index=index, dtype=text_dtype()),
    })
    frame = pd.concat([identity, frame], axis=1)
    attrs.setdefault("parser", parser_name)
    attrs.setdefault("malformed", 0)
    attrs.setdefault("malformed_examples", [])
    attrs.update(run_id=run.run_id, guid=guid, type=rtype, trace=name)
    frame.attrs = attrs
    return frame


def events_frame(source: Any) -> pd.DataFrame:
    """Every state change: ``run_id, time, guid, type, from, to, detail``, and
    ``sim_time`` when a simulation (``ns3::``) recorded simulated times.

    ``time`` is a UTC timestamp; ``from`` and ``to`` are ordered categoricals of the
    state names (``from`` is NA for the registration); ``detail`` says why when there
    is something to say (a failure ...); ``sim_time`` is the simulated time of the
    change in seconds (NaN for resources outside a simulation).  In the order they
    happened.
    """
    import pandas as pd

    frames = [_with_point_columns(_events(run), run, "_data") for run in as_runs(source)]
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    frame.attrs = {"malformed": sum(f.attrs["malformed"] for f in frames),
                   "malformed_examples": [e for f in frames for e in f.attrs["malformed_examples"]][:5]}
    return frame


def _events(run: Run) -> pd.DataFrame:
    import pandas as pd

    table = run.event_table()
    states = pd.CategoricalDtype(STATES, ordered=True)
    frame = pd.DataFrame({
        "run_id": pd.Series(run.run_id, index=table.index, dtype=text_dtype()),
        "time": _utc(table["time"]),
        "guid": table["guid"].astype("int64"),
        "type": table["type"].astype(text_dtype()),
        "from": table["from"].astype(states),
        "to": table["to"].astype(states),
        "detail": table["detail"].astype(text_dtype()),
    })
    if "sim_time" in table.columns:
        frame["sim_time"] = pd.to_numeric(table["sim_time"], errors="coerce").astype("float64")
    bad = getattr(run, "malformed_events", [])
    frame.attrs = {"malformed": len(bad), "malformed_examples": bad[:5]}
    return frame


def _utc(seconds: Any) -> pd.Series:
    import pandas as pd

    times = pd.to_datetime(pd.Series(seconds, dtype="float64"), unit="s", utc=True)
    return times.astype("datetime64[ns, UTC]")


def resources_frame(source: Any) -> pd.DataFrame:
    """One row per resource.

    Columns: ``run_id, guid, name`` (the ``name`` attribute, a label for people; NA
    if unset), ``type, state`` (the last state reached), ``outcome`` (the same, or for
    a released resource the state it was released from: FINISHED, FAILED, STOPPED
    ...; what views colour it by), ``failure``
    (``"<error>: <message>"`` or NA), ``failure_step``, ``returncode``,
    ``connections`` (a tuple of guids), one ``<verb>_time`` column per state (when the
    resource last entered it, as the controller's ``get_<verb>_time``; NaT if never:
    ``register_time``, ``discover_time`` ... ``release_time``), then every attribute:
    the value set, else the type's default (NA where the type has no such attribute;
    an attribute named like one of the columns above gets an ``_attribute`` suffix).
    """
    import pandas as pd

    frames = [_with_point_columns(_resources(run), run, "_attribute") for run in as_runs(source)]
    if len(frames) == 1:
        return frames[0]
    return pd.concat(frames, ignore_index=True)


def _resources(run: Run) -> pd.DataFrame:
    import pandas as pd

    description = run.description()
    events = _events(run)
    types = description.get("types", {})
    entries = {r["guid"]: r for r in description.get("resources", ())}
    # resources released with hardRelease left the description; their events remain
    seen = events.drop_duplicates("guid")
    for guid, rtype in zip(seen["guid"].tolist(), seen["type"].tolist(), strict=False):
        entries.setdefault(guid, {"guid": guid, "type": rtype})
    last = events.groupby("guid", sort=False)["to"].last()
    last_from = events.groupby("guid", sort=False)["from"].last()
    times = (events.drop_duplicates(["guid", "to"], keep="last")
             .pivot(index="guid", columns="to", values="time")) if len(events) else pd.DataFrame()
    failures: dict[int, dict[str, Any]] = {}
    for failure in description.get("failures", ()):
        if isinstance(failure, dict) and "guid" in failure:
            failures.setdefault(failure["guid"], failure)
    fixed = ["run_id", "guid", "name", "type", "state", "outcome", "failure", "failure_step", "returncode",
             "connections", *TIME_COLUMNS.values()]
    attribute_names: dict[str, str] = {}  # attribute -> its column
    declared_types: dict[str, set[str]] = {}  # attribute -> its declared value types
    for rtype in sorted({e["type"] for e in entries.values()}):
        for attribute, spec in (types.get(rtype, {}).get("attributes") or {}).items():
            if attribute == "name":  # a column of its own, after the guid
                continue
            attribute_names.setdefault(attribute, attribute if attribute not in fixed
                                       else f"{attribute}_attribute")
            declared_types.setdefault(attribute, set()).add(str((spec or {}).get("type")))
    for entry in entries.values():
        for attribute in entry.get("attributes") or {}:
            if attribute == "name":
                continue
            attribute_names.setdefault(attribute, attribute if attribute not in fixed
                                       else f"{attribute}_attribute")
    rows = []
    guids = sorted(entries)
    for guid in guids:
        entry = entries[guid]
        declared = types.get(entry["type"], {}).get("attributes") or {}
        values = {name: spec.get("default") for name, spec in declared.items()}
        values.update(entry.get("attributes") or {})
        failure = failures.get(guid)
        row = {
            "failure": f"{failure.get('error')}: {failure.get('message')}" if failure else None,
            "failure_step": failure.get("step") if failure else None,
            "returncode": failure.get("returncode") if failure else None,
            "connections": tuple(entry.get("connections") or ()),
            "name": values.pop("name", None) or None,
        }
        row.update({attribute_names[k]: v for k, v in values.items()})
        rows.append(row)
    columns = ["name", "failure", "failure_step", "returncode", "connections", *attribute_names.values()]
    body = pd.DataFrame.from_records(rows, columns=columns) if rows else pd.DataFrame(columns=columns)
    n = len(guids)
    final = last.reindex(guids).astype(object).to_numpy()
    released_from = last_from.reindex(guids).astype(object).to_numpy()
    outcome = [f if s == "RELEASED" and isinstance(f, str) else s
               for s, f in zip(final, released_from, strict=True)]
    frame = pd.DataFrame({
        "run_id": pd.array([run.run_id] * n, dtype=text_dtype()),
        "guid": pd.array(guids, dtype="int64"),
        "name": pd.array(body["name"].tolist(), dtype=text_dtype()),
        "type": pd.array([entries[g]["type"] for g in guids], dtype=text_dtype()),
        "state": pd.Categorical(final, categories=STATES, ordered=True),
        "outcome": pd.Categorical(outcome, categories=STATES, ordered=True),
    })
    frame["failure"] = pd.array(body["failure"].tolist(), dtype=text_dtype())
    frame["failure_step"] = pd.array(body["failure_step"].tolist(), dtype=text_dtype())
    frame["returncode"] = pd.array(body["returncode"].tolist(), dtype="Int64")
    frame["connections"] = body["connections"].to_numpy(dtype=object)
    for state, column in TIME_COLUMNS.items():
        if state in times:
            frame[column] = times[state].reindex(guids).astype("datetime64[ns, UTC]").array
        else:
            frame[column] = pd.Series(pd.NaT, index=pd.RangeIndex(n), dtype="datetime64[ns, UTC]").array
    for attribute, column in attribute_names.items():
        frame[column] = _typed(body[column], declared_types.get(attribute, set()))
    return frame


#: The column dtype of each attribute value type (``Types`` values); an attribute
#: declared with different types by different resource types stays ``object``.
_ATTRIBUTE_DTYPES = {"STRING": "text", "ENUM": "text", "BOOL": "boolean", "INTEGER": "Int64",
                     "DOUBLE": "Float64"}


def _typed(column: pd.Series, declared: set[str]) -> Any:
    import pandas as pd

    values = column.to_numpy(dtype=object)
    if len(declared) == 1:
        dtype = _ATTRIBUTE_DTYPES.get(next(iter(declared)))
        if dtype is not None:
            try:
                return pd.array(values, dtype=text_dtype() if dtype == "text" else dtype)
            except (TypeError, ValueError):  # a value that does not fit its declaration
                pass
    return values
