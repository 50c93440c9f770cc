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
    parameters               {name: value}: the parameter point this run measures (a
                             sweep's point; ``ExperimentController(parameters=...)``);
                             values are str, int, float, bool or null; left out when empty
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
``failures``, ``parameters`` and ``events_format`` are left out, and so are the values of
``Flags.NoWrite`` attributes (a resource sets them itself while it runs: ``command`` of
a tool, a namespace's name); each resource's attributes are sorted by name, and the
JSON is indented by one space, UTF-8, ending with a newline.
``ExperimentController.load()`` reads both formats (it ignores a run's keys and its
NoWrite values); a secret it finds named stays unset until ``ec.set`` gives it a value,
and stays named when saved again.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import time
from collections.abc import Iterable
from typing import Any

from .errors import InvalidInputError, ResultsDirectoryError

#: Version of the run-directory format.
RUN_FORMAT = 1
#: ``"format"`` of a run directory's description.
RUN_FORMAT_NAME = "nepi_lab.run"
DESCRIPTION = "experiment.json"
EVENTS = "events.jsonl"
RESULTS_ENV = "NEPI_LAB_RESULTS"
#: How many times :func:`make_run_dir` makes its folders again when another process
#: removed one between its ``mkdir`` calls, before it says why it could not.
MAKE_ATTEMPTS = 10


def default_local_dir() -> str:
    """The results root when no ``local_dir`` is given: ``$NEPI_LAB_RESULTS`` if set, else
    ``$XDG_DATA_HOME/nepi_lab/results``, else ``~/.local/share/nepi_lab/results``.

    Why there, and not in the temporary directory (the earlier default):

    - **Per user.** A folder in ``/tmp`` is shared: after one user made it, the next
      could not write in it (the README's first command failed for the second user of
      a machine), and another user could make it first, or put a symbolic link there,
      and read or redirect every run.  A folder in one's own home is out of their reach.
    - **Kept.** A run is there to be analysed later (``load_run``, sweeps that resume);
      ``/tmp`` is emptied at reboot and by cleaners, a home is not.
    - **Where such data goes.** The XDG base directories name ``$XDG_DATA_HOME``
      (``~/.local/share``) for a user's data files; nepi_lab's index of runs already
      lives beside it, in ``$XDG_STATE_HOME/nepi_lab`` (see ``nepi-lab cleanup``).  As
      the XDG specification asks, folders made on the way are private (mode 0700):
      traces, such as packet captures, are nobody else's business.
    - **Works without root**, on Binder too (its user, jovyan, owns its home).

    ``$NEPI_LAB_RESULTS`` (or ``local_dir=``) puts results anywhere else, for instance
    a shared folder made for a class.  A relative ``$XDG_DATA_HOME`` is ignored, as the
    specification says.  (The folder is not named ``nepi_lab`` alone: a folder named like
    the package in the directory Python starts in would shadow the package itself.)

    Raises :class:`ResultsDirectoryError` when neither variable is set and no home
    folder is known (no ``$HOME`` and no entry in the password database).
    """
    explicit = os.environ.get(RESULTS_ENV)
    if explicit:
        return explicit
    base = os.environ.get("XDG_DATA_HOME", "")
    if not os.path.isabs(base):
        home = os.path.expanduser("~")
        if not os.path.isabs(home):  # expanduser leaves "~" as it is when it finds no home
            raise ResultsDirectoryError(
                None, f"no home folder is known for this user to keep results in; "
                      f"set ${RESULTS_ENV} or pass local_dir=")
        base = os.path.join(home, ".local", "share")
    return os.path.join(base, "nepi_lab", "results")


def check_parameters(parameters: object) -> dict[str, Any]:
    """``parameters`` (a run's parameter point) as a dict of name -> JSON scalar, or
    :class:`InvalidInputError` saying which name or value cannot be written.

    Names are non-empty strings; values are str, int, float (finite), bool or None, so
    that the point reads back from ``experiment.json`` exactly as it was given.
    """
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        kind = type(parameters).__name__
        raise InvalidInputError(f"parameters must be a dict of name -> value, not {kind}")
    for name, value in parameters.items():
        if not isinstance(name, str) or not name:
            raise InvalidInputError(f"a parameter name must be a non-empty string, not {name!r}")
        if not (value is None or isinstance(value, (str, int, float, bool))) or (
                isinstance(value, float) and not math.isfinite(value)):
            raise InvalidInputError(f"parameter {name!r}: a value must be a str, int, finite float, bool "
                                    f"or None (it is written to {DESCRIPTION}), not {value!r}")
    return dict(parameters)


def new_run_id() -> str:
    """NEPI's run id: the creation time as 20 digits, ``YYYYmmddHHMMSSffffff``."""
    # what datetime.now().strftime("%Y%m%d%H%M%S%f") gives (local time, microseconds
    # truncated), without importing datetime (~1 ms) in a run that needs nothing else of it
    seconds, nanoseconds = divmod(time.time_ns(), 1_000_000_000)
    return time.strftime("%Y%m%d%H%M%S", time.localtime(seconds)) + f"{nanoseconds // 1000:06d}"


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


def make_run_dir(local_dir: str, exp_id: str, *, default: bool = False) -> tuple[str, str]:
    """Create a fresh run directory; returns ``(run_id, path)``.

    Two controllers created in the same microsecond still get distinct runs, and a
    folder on the way that another process removes meanwhile (the experiment's folder,
    emptied by a failed :meth:`ExperimentController.load`) is made again, up to
    :data:`MAKE_ATTEMPTS` times.  If no run directory can be made there (a file in the
    way, no permission, a path too long ...), :class:`ResultsDirectoryError` says why,
    and the folders this call made on the way are removed again: a refused
    ``local_dir`` leaves nothing behind.

    ``default=True`` says that ``local_dir`` is :func:`default_local_dir`'s, and an
    error then says where it came from and how to choose another folder.  The folders
    made up to the XDG default are private (mode 0700, as XDG asks).
    """
    exp_dir = os.path.join(local_dir, exp_id)
    made: list[str] = []
    from_env = default and bool(os.environ.get(RESULTS_ENV))
    removed = 0
    try:
        while True:
            _make_dirs(local_dir, made, 0o700 if default and not from_env else 0o777)
            _make_dirs(exp_dir, made)
            run_id = new_run_id()
            path = os.path.join(exp_dir, run_id)
            try:
                os.mkdir(path)
                return run_id, path
            except FileExistsError:
                continue
            except FileNotFoundError:  # another process removed the emptied exp_dir meanwhile
                removed += 1
                if removed == MAKE_ATTEMPTS:
                    raise
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
        hint = ""
        if from_env:
            hint = f"; it is ${RESULTS_ENV}"
        elif default:
            hint = (f"; it is the default results folder: set ${RESULTS_ENV} or pass local_dir= "
                    f"to keep results elsewhere")
        raise ResultsDirectoryError(local_dir, f"cannot make the run directory: "
                                               f"{exc.strerror or exc}{where}{hint}") from None


def _make_dirs(path: str, made: list[str], mode: int = 0o777) -> None:
    """``os.makedirs(path, mode, exist_ok=True)`` that lists in ``made`` the folders it created."""
    missing = []
    while not os.path.isdir(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, mode)
        except FileExistsError:
            if not os.path.isdir(folder):  # a file where a folder should be
                raise NotADirectoryError(errno.ENOTDIR, "a file is in the way, not a folder",
                                         folder) from None
            continue
        if folder not in made:  # (made again after another process removed it)
            made.append(folder)


def write_json_atomic(path: str, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` so that a reader never sees half a file."""
    write_text_atomic(path, (json.dumps(data, separators=(",", ":"), default=str),))  # one C-encoder pass


def write_text_atomic(path: str, pieces: Iterable[str]) -> None:
    """Write the concatenation of ``pieces`` to ``path`` so that a reader never sees half a
    file; the pieces are written as they come (a large file is never held whole)."""
    tmp = f"{path}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            for piece in pieces:
                f.write(piece)
        os.replace(tmp, path)
    except BaseException:  # a full disk: the old file stays whole, and no half-written copy is left
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
