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
>>> from nepi_lab import load_run, trace_frame
>>> run = load_run(os.path.expanduser("~/.local/share/nepi_lab/results/ping-test/20240101120000000000"))
>>> run.events_frame().groupby("to").size()
>>> pings = trace_frame(run, 3, "stdout")                               # the ping parser
>>> pings.rtt_ms.describe()
"""

from __future__ import annotations

import bisect
import json
import os
import stat
from collections.abc import Iterable, Iterator, Sequence
from itertools import accumulate
from typing import TYPE_CHECKING, Any

from ..core.controller import ExperimentController
from ..core.errors import InvalidInputError, UnknownGuidError
from ..core.results import DESCRIPTION, EVENTS
from ..core.states import ResourceState
from ..core.traces import TraceAttr, check_name
from . import parsers as _parsers
from ._common import text_dtype
from .errors import RunDirectoryError, RunFormatError, TraceNotFoundError

if TYPE_CHECKING:
    import pandas as pd

#: Versions of the run-directory format (``experiment.json`` "version") this reader knows.
SUPPORTED_VERSIONS = (1,)
FORMAT_NAME = "nepi_lab.run"

STATES = [s.name for s in ResourceState]
#: Column of :func:`resources_frame` holding when a resource last entered each state;
#: the names of the controller's ``get_<verb>_time`` getters.
TIME_COLUMNS = {
    "NEW": "register_time", "DISCOVERED": "discover_time", "RESERVED": "reserve_time",
    "PROVISIONED": "provision_time", "READY": "ready_time", "STARTED": "start_time",
    "STOPPED": "stop_time", "FINISHED": "finish_time", "FAILED": "failed_time",
    "RELEASED": "release_time",
}
EVENT_COLUMNS = ["time", "guid", "type", "from", "to", "detail"]
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
    def guids(self) -> list[int]:
        """Every resource, in registration order."""
        return [r["guid"] for r in self.description().get("resources", ())]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.exp_id}/{self.run_id} ({len(self.guids)} resources)>"


class DirectoryRun(Run):
    """A run read back from its directory (:func:`load_run`)."""

    def __init__(self, path: str, strict: bool = True) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self._description = _read_description(self.path)
        self._events, self.malformed_events = _read_events(self.path, strict)
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
        return f"{guid}-{self.resource_type(guid).replace('::', '.')}"

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
        present = _plain_files(folder)
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
            _refuse_if_not_plain(self.path, self._folder(guid), name)
            raise TraceNotFoundError(guid, rtype, name,
                                     f"it was not collected into the run directory (no file {path})",
                                     declared or present, present)
        return path

    def trace_bytes(self, guid: int, name: str) -> bytes:
        self.trace_path(guid, name)  # what is refused, and why
        try:
            return _read_inside(self.path, self._folder(guid), name)
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

    def __init__(self, runs: Iterable[Run], path: str | None = None) -> None:
        self.runs = list(runs)
        self.path = path

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
        return f"<RunSet of {len(self.runs)} runs in {self.path}>"



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
    >>> run = load_run(ec.run_dir)                                     # doctest: +SKIP
    >>> run.resources_frame()[["guid", "type", "state"]]
    """
    return DirectoryRun(os.fspath(path), strict)


def load_runs(exp_dir: str | os.PathLike[str], *, strict: bool = True) -> RunSet:
    """Every run of an experiment: the run directories in ``exp_dir`` (``<results>/<exp_id>``).

    Sub-folders that are not runs (no ``experiment.json`` nor ``events.jsonl``) are
    ignored; a damaged run is an error, as in :func:`load_run`.
    """
    exp_dir = os.path.abspath(os.fspath(exp_dir))
    try:
        names = sorted(os.listdir(exp_dir))
    except OSError as exc:
        raise RunDirectoryError(exp_dir, f"cannot list the experiment directory: {exc.strerror}") from None
    runs = []
    for name in names:
        folder = os.path.join(exp_dir, name)
        if os.path.isdir(folder) and (os.path.exists(os.path.join(folder, DESCRIPTION))
                                      or os.path.exists(os.path.join(folder, EVENTS))):
            runs.append(load_run(folder, strict=strict))
    if not runs:
        raise RunDirectoryError(exp_dir, "no run directory in it (a run directory holds "
                                         f"{DESCRIPTION} and {EVENTS}); give <results>/<exp_id>")
    runs.sort(key=lambda r: r.run_id)
    return RunSet(runs, exp_dir)


def _read_text(path: str, file: str) -> str:
    data = _read_file(path, file)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise RunDirectoryError(path, f"not UTF-8 text (byte {exc.start})", file, line) from None


def _read_file(path: str, file: str) -> bytes:
    """The bytes of ``experiment.json`` or ``events.jsonl``, with the errors a user can act on."""
    try:
        return _read_inside(path, file)
    except FileNotFoundError:
        if not os.path.isdir(path):
            raise RunDirectoryError(path, "no such directory") from None
        present = ", ".join(sorted(os.listdir(path))[:10]) or "nothing"
        raise RunDirectoryError(path, f"missing (the folder holds: {present}); is this a run directory?",
                                file) from None
    except NotADirectoryError:
        raise RunDirectoryError(path, "not a directory") from None


def _read_inside(root: str, *parts: str) -> bytes:
    """The bytes of the plain file ``root/<parts>``, read without leaving ``root``.

    Each part is opened relative to the folder before it, never through a symbolic
    link (``O_NOFOLLOW``), and the file must be a regular one: a crafted run
    directory cannot make the reader open ``/etc/passwd`` through a link, block on a
    FIFO or read a device forever.  ``FileNotFoundError`` and ``NotADirectoryError``
    (for ``root``) pass through; everything else is a :class:`RunDirectoryError`.
    """
    where = "/".join(parts)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_NONBLOCK if last else os.O_DIRECTORY)
            try:
                inner = os.open(part, flags, dir_fd=fd)
            except FileNotFoundError:
                raise
            except OSError as exc:
                _refuse_if_not_plain(root, *parts[: i + 1])
                raise RunDirectoryError(root, f"cannot read it: {exc.strerror}", where) from None
            finally:
                os.close(fd)
                fd = -1
            fd = inner
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise RunDirectoryError(root, "not a plain file, so it is not read (a run directory holds "
                                          "plain files only)", where)
        with os.fdopen(fd, "rb") as f:
            fd = -1  # the file object closes it
            return f.read()
    finally:
        if fd >= 0:
            os.close(fd)


def _refuse_if_not_plain(root: str, *parts: str) -> None:
    """Raise :class:`RunDirectoryError` if ``root/<parts>`` is a symbolic link, or anything
    but a folder on the way and a plain file at the end (said without following it)."""
    current = root
    for i, part in enumerate(parts):
        current = os.path.join(current, part)
        try:
            mode = os.lstat(current).st_mode
        except OSError:
            return  # missing: the caller says so
        where = "/".join(parts[: i + 1])
        if stat.S_ISLNK(mode):
            raise RunDirectoryError(root, "a symbolic link, so it is not followed (a run directory holds "
                                          "plain files only, and reading never leaves it)", where)
        wanted = stat.S_ISREG if i == len(parts) - 1 else stat.S_ISDIR
        if not wanted(mode):
            raise RunDirectoryError(root, f"not a plain {'file' if wanted is stat.S_ISREG else 'folder'}, "
                                          f"so it is not read", where)


def _plain_files(folder: str) -> list[str]:
    """The plain files in ``folder``, sorted; nothing if it is missing or a symbolic link."""
    try:
        if not stat.S_ISDIR(os.lstat(folder).st_mode):
            return []
        with os.scandir(folder) as entries:
            return sorted(e.name for e in entries if e.is_file(follow_symlinks=False))
    except OSError:
        return []


def _read_description(path: str) -> dict[str, Any]:
    """``experiment.json``, checked: every value the frames use has the kind they need.

    It is written whole (atomically) by the controller, so damage in it is never the
    trace of a crash but of a broken or crafted file: it is refused, also with
    ``strict=False``, naming the file and the place (``resources[3].type``).
    """
    text = _read_text(path, DESCRIPTION)
    try:
        description = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RunDirectoryError(path, f"not valid JSON: {exc.msg} (column {exc.colno})",
                                DESCRIPTION, exc.lineno) from None
    except RecursionError:
        raise RunDirectoryError(path, "not a run description: nested too deeply", DESCRIPTION) from None
    except ValueError as exc:  # an integer of thousands of digits
        raise RunDirectoryError(path, f"not a run description: {exc}", DESCRIPTION) from None
    if not isinstance(description, dict) or description.get("format") != FORMAT_NAME:
        raise RunDirectoryError(path, f'not a nepi_lab run description (no "format": "{FORMAT_NAME}")',
                                DESCRIPTION)
    version = description.get("version")
    if type(version) is not int or version not in SUPPORTED_VERSIONS:
        raise RunFormatError(path, DESCRIPTION, version, SUPPORTED_VERSIONS)
    _check_description(path, description)
    description.setdefault("types", {})
    description.setdefault("conditions", [])
    description.setdefault("failures", [])
    return description


_MAX_GUID = 2**63 - 1  # guids are int64 in the frames (and in the controller's event log)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:60] + f"... ({len(text)} characters)"


def _check_description(path: str, description: dict[str, Any]) -> None:
    """Raise :class:`RunDirectoryError` for the first value of the wrong kind (see README,
    "The run directory", for the format)."""

    def refuse(where: str, rule: str, value: Any) -> RunDirectoryError:
        return RunDirectoryError(path, f"{where} {rule}, not {_shown(value)}", DESCRIPTION)

    def is_a(value: Any, kind: type) -> bool:
        return isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool)

    def optional(entry: dict[str, Any], key: str, kind: type, where: str, rule: str,
                 items: type | None = None) -> None:
        value = entry.get(key)
        if value is None:
            return
        if not is_a(value, kind) or items is not None and not all(is_a(v, items) for v in value):
            raise refuse(f"{where}.{key}" if where else key, rule, value)

    for key in ("exp_id", "run_id", "ecstate"):
        optional(description, key, str, "", "must be a string")
    types = description.get("types", {})
    if not isinstance(types, dict):
        raise refuse("types", "must be an object of type name -> declaration", types)
    for name, spec in types.items():
        where = f"types[{json.dumps(name)}]"
        if not isinstance(spec, dict):
            raise refuse(where, "must be an object (help, bases, attributes, traces)", spec)
        optional(spec, "bases", list, where, "must be a list of type names", str)
        for table in ("attributes", "traces"):
            optional(spec, table, dict, where, "must be an object of name -> declaration")
            for item, declaration in (spec.get(table) or {}).items():
                if not isinstance(declaration, dict):
                    raise refuse(f"{where}.{table}[{json.dumps(item)}]", "must be an object", declaration)
        for attribute, declaration in (spec.get("attributes") or {}).items():
            optional(declaration, "type", str, f"{where}.attributes[{json.dumps(attribute)}]",
                     "must be a value type name (STRING, INTEGER ...)")
    resources = description.get("resources")
    if not isinstance(resources, list):
        raise refuse("resources", 'must be a list of {"guid": int, "type": str, ...}', resources)
    seen: set[int] = set()
    for index, entry in enumerate(resources):
        where = f"resources[{index}]"
        if not isinstance(entry, dict):
            raise refuse(where, 'must be an object {"guid": int, "type": str, ...}', entry)
        guid = entry.get("guid")
        if type(guid) is not int or not 0 <= guid <= _MAX_GUID:
            raise refuse(f"{where}.guid", "must be an integer in [0, 2**63 - 1]", guid)
        if guid in seen:
            raise refuse(f"{where}.guid", "must be unique: another resource has it", guid)
        seen.add(guid)
        rtype = entry.get("type")
        # it names the resource's folder: one path component, whatever the file says
        if not isinstance(rtype, str) or not rtype or "/" in rtype or "\x00" in rtype:
            raise refuse(f"{where}.type", "must be a type name (not empty, without '/' or NUL)", rtype)
        optional(entry, "attributes", dict, where, "must be an object of attribute name -> value")
        optional(entry, "connections", list, where, "must be a list of guids", int)
        optional(entry, "traces", list, where, "must be a list of trace names", str)
    for key in ("conditions", "failures"):
        records = description.get(key, [])
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise refuse(key, "must be a list of objects", records)
    for index, failure in enumerate(description.get("failures", [])):
        where = f"failures[{index}]"
        guid = failure.get("guid")
        if type(guid) is not int or not 0 <= guid <= _MAX_GUID:
            raise refuse(f"{where}.guid", "must be an integer in [0, 2**63 - 1]", guid)
        for key in ("step", "error", "message", "rtype", "state"):
            optional(failure, key, str, where, "must be a string")
        returncode = failure.get("returncode")
        if returncode is not None and (type(returncode) is not int or abs(returncode) > _MAX_GUID):
            raise refuse(f"{where}.returncode", "must be an integer (an exit status)", returncode)


def _read_events(path: str, strict: bool) -> tuple[pd.DataFrame, list[str]]:
    """The table of ``events.jsonl``; with ``strict=False`` also the damaged lines left out.

    A damaged line is one that is not UTF-8 (a write cut inside a character), not
    one JSON object (cut, empty, nested too deeply, a number of thousands of digits),
    or not a state change (an unknown state, a time no timestamp holds ...).
    """
    data = _read_file(path, EVENTS)
    try:
        text = data.decode("utf-8")
        undecodable: list[tuple[int, str]] = []
    except UnicodeDecodeError:  # the bad bytes kept as surrogates, to find their lines
        text = data.decode("utf-8", "surrogateescape")
        undecodable = _undecodable_lines(data)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    bad: list[tuple[int, str]] = []
    numbers = list(range(1, len(lines) + 1)) if undecodable else None
    for index, reason in reversed(undecodable):
        if strict and index == undecodable[0][0]:
            raise RunDirectoryError(path, reason, EVENTS, index + 1)
        bad.append((index + 1, reason))
        del lines[index]
        del numbers[index]  # type: ignore[union-attr]
    while True:
        try:
            table = _event_table(_decode_lines(lines))
            _check_table(table)
            return table, [f"line {n}: {reason}" for n, reason in sorted(bad)]
        except _BadLine as exc:
            number = exc.index + 1 if numbers is None else numbers[exc.index]
            if strict:
                raise RunDirectoryError(path, exc.reason, EVENTS, number) from None
            if numbers is None:
                numbers = list(range(1, len(lines) + 1))
            bad.append((number, exc.reason))
            del lines[exc.index]
            del numbers[exc.index]
            if len(bad) > 1000:
                raise RunDirectoryError(path, "more than 1000 damaged lines", EVENTS) from None


def _undecodable_lines(data: bytes) -> list[tuple[int, str]]:
    """(index, reason) of each line of ``data`` that is not UTF-8, in order."""
    found = []
    start = 0
    for index, line in enumerate(data.split(b"\n")):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as exc:
            found.append((index, f"not UTF-8 text (byte {start + exc.start})"))
        start += len(line) + 1
    return found


class _BadLine(Exception):
    def __init__(self, index: int, reason: str) -> None:
        self.index, self.reason = index, reason


def _decode_lines(lines: list[str]) -> list[dict[str, Any]]:
    """Decode JSON lines in one pass, as one JSON array; a bad line is found by its offset.

    Joining the lines with commas keeps every offset of the file (a comma replaces
    each newline), so the decoder's error position names the line.  When it cannot
    (no position: a line nested too deeply, a number of thousands of digits; or a
    line holding two values), the lines are decoded one by one.
    """
    body = ",".join(lines)
    try:
        records = json.loads("[" + body + "]")
    except json.JSONDecodeError as exc:
        offset = max(0, min(exc.pos - 1, len(body)))  # "[" shifts every position by one
        starts = list(accumulate((len(line) + 1 for line in lines[:-1]), initial=0))
        index = max(0, bisect.bisect_right(starts, offset) - 1)
        # The decoder notices the damage at or after it (a cut string swallows the
        # separator): the bad line is the first of the few before that fails alone.
        for candidate in range(max(0, index - 3), index + 1):
            _decode_line(lines, candidate)
    except (ValueError, RecursionError):
        pass
    else:
        if len(records) == len(lines):
            return records
    return [_decode_line(lines, index) for index in range(len(lines))]


def _decode_line(lines: list[str], index: int) -> Any:
    """One line's JSON value, or :class:`_BadLine` saying what is wrong with it."""
    line = lines[index]
    if line.strip() == "":
        raise _BadLine(index, "empty line")
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise _BadLine(index, f"not valid JSON: {exc.msg} (column {exc.colno})") from None
    except RecursionError:
        raise _BadLine(index, "not valid JSON: nested too deeply") from None
    except ValueError as exc:  # an integer of more than 4,300 digits
        raise _BadLine(index, f"not valid JSON: {exc}") from None


def _event_table(records: list[Any]) -> pd.DataFrame:
    """The records as columns, the same way for a controller's log and a file's."""
    import pandas as pd

    if set(map(type, records)) - {dict}:
        index = next(i for i, r in enumerate(records) if not isinstance(r, dict))
        raise _BadLine(index, "not a JSON object")
    if not records:
        return pd.DataFrame({c: pd.Series([], dtype="float64" if c == "time" else object)
                             for c in EVENT_COLUMNS})
    return pd.DataFrame.from_records(records, columns=EVENT_COLUMNS)


#: The times a pandas timestamp (nanoseconds in an int64) holds, in seconds.
_MAX_SECONDS = 9.2e9


def _check_table(table: pd.DataFrame) -> None:
    """Raise :class:`_BadLine` for the first record that is not a state change (vectorised)."""
    import numpy as np
    import pandas as pd

    if table.empty:
        return
    states = pd.Index(STATES)

    def not_instance(column: str, kinds: tuple[type, ...]) -> Any:
        values = table[column]
        return ~values.map(lambda v: isinstance(v, kinds) and not isinstance(v, bool)).astype(bool)

    def outside(column: str, low: float, high: float, kinds: tuple[type, ...]) -> Any:
        """Values not of ``kinds`` or not in [low, high] (NaN included: a line without it)."""
        values = table[column]
        if values.dtype.kind in "iuf":
            numbers = values.to_numpy()
            fine = (numbers >= low) & (numbers <= high)
            if float not in kinds and values.dtype.kind == "f":  # ints made floats by a missing one
                fine &= numbers == np.floor(numbers)
            return pd.Series(~fine)
        return values.map(lambda v: not (isinstance(v, kinds) and not isinstance(v, bool)
                                         and low <= v <= high)).astype(bool)

    checks = [
        ("time", lambda: outside("time", -_MAX_SECONDS, _MAX_SECONDS, (int, float)),
         '"time" must be seconds since the epoch, between the years 1678 and 2261'),
        ("guid", lambda: outside("guid", 0, _MAX_GUID, (int,)),
         '"guid" must be an integer in [0, 2**63 - 1]'),
        ("to", lambda: ~table["to"].isin(states), "unknown state"),
        ("from", lambda: ~(table["from"].isna() | table["from"].isin(states)), "unknown state"),
        ("type", lambda: not_instance("type", (str,)), '"type" must be a string'),
    ]
    first: tuple[int, str] | None = None
    for column, bad, reason in checks:
        mask = bad().to_numpy(dtype=bool)
        if mask.any():
            index = int(mask.argmax())
            if first is None or index < first[0]:
                value = table[column].iloc[index]
                first = (index, f"{reason}, not {value!r}" if column != "to" and column != "from"
                         else f"unknown state in {{'from': {table['from'].iloc[index]!r}, "
                              f"'to': {table['to'].iloc[index]!r}}}")
    if first is not None:
        raise _BadLine(*first)


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
    >>> frame[["timestamp", "seq", "rtt_ms"]]
    """
    import pandas as pd

    if isinstance(parser, str):
        _parsers.get_parser(parser)  # an unknown name is refused before anything is read
    guids = [guid] if isinstance(guid, int) else list(guid)
    frames = []
    for run in as_runs(source):
        for g in guids:
            frames.append(_one_trace_frame(run, g, name, parser))
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
    """Every state change: ``run_id, time, guid, type, from, to, detail``.

    ``time`` is a UTC timestamp; ``from`` and ``to`` are ordered categoricals of the
    state names (``from`` is NA for the registration); ``detail`` says why when there
    is something to say (a failure ...).  In the order they happened.
    """
    import pandas as pd

    frames = [_events(run) for run in as_runs(source)]
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    frame.attrs = {"malformed": sum(f.attrs["malformed"] for f in frames),
                   "malformed_examples": [e for f in frames for e in f.attrs["malformed_examples"]][:5]}
    return frame


def _events(run: Run) -> pd.DataFrame:
    import pandas as pd

    frame = run.event_table()
    states = pd.CategoricalDtype(STATES, ordered=True)
    frame = pd.DataFrame({
        "run_id": pd.Series(run.run_id, index=frame.index, dtype=text_dtype()),
        "time": _utc(frame["time"]),
        "guid": frame["guid"].astype("int64"),
        "type": frame["type"].astype(text_dtype()),
        "from": frame["from"].astype(states),
        "to": frame["to"].astype(states),
        "detail": frame["detail"].astype(text_dtype()),
    })
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

    frames = [_resources(run) for run in as_runs(source)]
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
