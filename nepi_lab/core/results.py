"""The run directory: ``<local_dir>/<exp_id>/<run_id>/``.

Layout (format version :data:`RUN_FORMAT`)::

    <run_id>/
        experiment.json      the description: format, version, events_format, ids,
                             controller state, types (declared attributes with
                             defaults, traces, base type names, origin), resources
                             (set attribute values, secrets, connections, enabled
                             traces), conditions, failures; rewritten atomically at
                             creation, each deploy, release and shutdown
        events.jsonl         one JSON object per state change, appended as it happens:
                             {"time", "guid", "type", "from", "to", "detail"}
        <guid>-<type>/       one folder per resource that produced traces
                             ("3-linux.Application"), one file per trace
        <exp_id>.json        only if ``ec.save()`` was called without a path (as in NEPI)

Nothing else is needed to read a run back later, on another machine.

The description (``ExperimentController.description()``), in detail::

    format, version          "nepi_lab.run", RUN_FORMAT
    events_format            the version of events.jsonl's lines
    exp_id, run_id           the scenario and this run
    ecstate, end, saved      how the run stands or ended; when this was written
    types                    {type name: {help, bases, long_lived,
                               attributes: {name: {type, default, flags, allowed, help}},
                               traces: {name: {help, enabled}},
                               origin: {module, distribution, version}}}
                             (only the types of the resources; origin says where the type
                             came from, so that loading where it is missing can say what
                             to install or import; distribution and version are null
                             when no installed package provides the module)
    resources                [{guid, type, attributes, secrets, connections, traces}]
                             attributes: the values set (not the defaults); secrets: the
                             names of secret attributes (Flags.NoRead, Flags.Credential)
                             that are set: their values are never written; connections:
                             guids; traces: the enabled trace names, only when not as
                             declared; keys that would be empty are left out
    conditions               [{guid, action, after, state, delay}]: ``action`` on ``guid``
                             once all of ``after`` reached ``state``, plus ``delay`` seconds
    failures                 [{guid, rtype, step, state, error, message, time, critical,
                               command, returncode, stderr_tail}]

A saved experiment (``ec.save()``, format ``"nepi_lab.experiment"``, the same version
number) is this description without what belongs to one run, so that saving the same
experiment always gives the same bytes: ``run_id``, ``ecstate``, ``end``, ``saved``,
``failures`` and ``events_format`` are left out, and so are the values of
``Flags.NoWrite`` attributes (a resource sets them itself while it runs: ``command`` of
a tool, a namespace's name); each resource's attributes are sorted by name, and the
JSON is indented by one space, UTF-8, ending with a newline.
``ExperimentController.load()`` reads both formats (it ignores a run's keys and its
NoWrite values); a secret it finds named stays unset until ``ec.set`` gives it a value,
and stays named when saved again.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import os
import tempfile
from typing import Any

from .errors import ResultsDirectoryError

#: Version of the run-directory format.
RUN_FORMAT = 1
#: ``"format"`` of a run directory's description.
RUN_FORMAT_NAME = "nepi_lab.run"
DESCRIPTION = "experiment.json"
EVENTS = "events.jsonl"
RESULTS_ENV = "NEPI_LAB_RESULTS"


def default_local_dir() -> str:
    """``$NEPI_LAB_RESULTS`` if set, else ``<system temp dir>/nepi_lab-results``.

    (Not ``<temp>/nepi_lab``: a folder named like the package in the directory Python
    starts in would shadow the package itself.)
    """
    return os.environ.get(RESULTS_ENV) or os.path.join(tempfile.gettempdir(), "nepi_lab-results")


def new_run_id() -> str:
    """NEPI's run id: the creation time as 20 digits, ``YYYYmmddHHMMSSffffff``."""
    return _dt.datetime.now().strftime("%Y%m%d%H%M%S%f")


def check_local_dir(local_dir: object) -> str:
    """``local_dir`` as an absolute path, or :class:`ResultsDirectoryError` if it cannot be one.

    Only the form is checked here (a str or path, not empty, without NUL); whether
    a run directory can be made in it is :func:`make_run_dir`'s to find out.
    """
    path = os.fspath(local_dir) if isinstance(local_dir, os.PathLike) else local_dir
    if not isinstance(path, str):
        raise ResultsDirectoryError(local_dir, f"expected a path (a str or os.PathLike), "
                                               f"not {type(path).__name__}")
    if not path:
        raise ResultsDirectoryError(local_dir, "the path is empty")
    if "\x00" in path:
        raise ResultsDirectoryError(local_dir, "a path cannot hold a NUL character")
    return os.path.abspath(path)


def make_run_dir(local_dir: str, exp_id: str) -> tuple[str, str]:
    """Create a fresh run directory; returns ``(run_id, path)``.

    Two controllers created in the same microsecond still get distinct runs.  If no
    run directory can be made there (a file in the way, no permission, a path too
    long ...), :class:`ResultsDirectoryError` says why, and the folders this call
    made on the way are removed again: a refused ``local_dir`` leaves nothing behind.
    """
    exp_dir = os.path.join(local_dir, exp_id)
    made: list[str] = []
    try:
        _make_dirs(exp_dir, made)
        while True:
            run_id = new_run_id()
            path = os.path.join(exp_dir, run_id)
            try:
                os.mkdir(path)
                return run_id, path
            except FileExistsError:
                continue
    except OSError as exc:
        for folder in reversed(made):
            try:
                os.rmdir(folder)
            except OSError:  # someone else put something in it meanwhile: theirs now
                break
        where = ""
        if exc.filename:  # what failed, said within local_dir (which the message shows)
            failed = os.fsdecode(exc.filename)
            inside = failed.startswith(local_dir + os.sep)
            where = f" ({os.path.relpath(failed, local_dir)} in it)" if inside else f" ({failed})"
        raise ResultsDirectoryError(local_dir, f"cannot make the run directory: "
                                               f"{exc.strerror or exc}{where}") from None


def _make_dirs(path: str, made: list[str]) -> None:
    """``os.makedirs(path, exist_ok=True)`` that lists in ``made`` the folders it created."""
    missing = []
    while not os.path.isdir(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder)
        except FileExistsError:
            if not os.path.isdir(folder):  # a file where a folder should be
                raise NotADirectoryError(errno.ENOTDIR, "a file is in the way, not a folder",
                                         folder) from None
            continue
        made.append(folder)


def write_json_atomic(path: str, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` so that a reader never sees half a file."""
    tmp = f"{path}.tmp"
    text = json.dumps(data, separators=(",", ":"), default=str)  # one C-encoder pass
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:  # a full disk: the old file stays whole, and no half-written copy is left
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
