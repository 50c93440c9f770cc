"""Reading a run directory back, without pandas: the one reader of its files.

:mod:`nepi_lab.core.results` writes a run directory; this module reads it, for
``nepi-lab show`` and for :mod:`nepi_lab.analysis` (which builds its DataFrames from
what is read here), so both refuse the same damage with the same words.

- :func:`read_description`: ``experiment.json``, checked value by value; damage is
  refused naming the place (``resources[3].type``), since the controller writes the
  file whole and damage there is never the trace of a crash.
- :func:`read_events`: ``events.jsonl``, one state change per line; a damaged line
  (cut, not UTF-8, not a state change) is refused naming the line, or with
  ``strict=False`` left out and counted (a run whose controller died while writing
  its last line stays readable).
- :func:`read_inside`: a file of the run directory, never through a symbolic link,
  never anything but a plain file: reading never leaves the run directory.

Every refusal is a :class:`~nepi_lab.core.errors.RunDirectoryError` (a
:class:`~nepi_lab.core.errors.RunFormatError` for an unknown format version).

Example
-------
>>> from nepi_lab.core.run_directory import read_description, read_events  # doctest: +SKIP
>>> description = read_description(ec.run_dir)                             # doctest: +SKIP
>>> events, damaged = read_events(ec.run_dir, strict=False)                # doctest: +SKIP
"""

from __future__ import annotations

import bisect
import json
import os
import stat
from itertools import accumulate
from typing import Any

from .description import MAX_GUID, SUPPORTED_VERSIONS, check_description, decode, is_supported, shown
from .errors import RunDirectoryError, RunFormatError
from .results import DESCRIPTION, EVENTS, RUN_FORMAT_NAME
from .states import ResourceState

#: The state names, in order.
STATES = tuple(s.name for s in ResourceState)


def resource_folder(guid: int, rtype: str) -> str:
    """The name of a resource's folder in its run directory: ``3-linux.Application``."""
    return f"{guid}-{rtype.replace('::', '.')}"


def _read_file(path: str, file: str) -> bytes:
    """The bytes of ``experiment.json`` or ``events.jsonl``, with the errors a user can act on."""
    try:
        return read_inside(path, file)
    except FileNotFoundError:
        if not os.path.isdir(path):
            raise RunDirectoryError(path, "no such directory") from None
        present = ", ".join(sorted(os.listdir(path))[:10]) or "nothing"
        raise RunDirectoryError(path, f"missing (the folder holds: {present}); is this a run directory?",
                                file) from None
    except NotADirectoryError:
        raise RunDirectoryError(path, "not a directory") from None


def read_inside(root: str, *parts: str, limit: int | None = None) -> bytes:
    """The bytes of the plain file ``root/<parts>`` (its first ``limit`` bytes if given),
    read without leaving ``root``.

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
                refuse_if_not_plain(root, *parts[: i + 1])
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
            return f.read() if limit is None else f.read(limit)
    finally:
        if fd >= 0:
            os.close(fd)


def refuse_if_not_plain(root: str, *parts: str) -> None:
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


def plain_files(folder: str) -> list[str]:
    """The plain files in ``folder``, sorted; nothing if it is missing or a symbolic link."""
    try:
        if not stat.S_ISDIR(os.lstat(folder).st_mode):
            return []
        with os.scandir(folder) as entries:
            return sorted(e.name for e in entries if e.is_file(follow_symlinks=False))
    except OSError:
        return []


def read_description(path: str) -> dict[str, Any]:
    """``experiment.json``, checked: every value the frames use has the kind they need.

    It is written whole (atomically) by the controller, so damage in it is never the
    trace of a crash but of a broken or crafted file: it is refused, also with
    ``strict=False``, naming the file and the place (``resources[3].type``).  The
    values are checked by :func:`nepi_lab.core.description.check_description`, as
    ``ExperimentController.load`` checks them.
    """

    def refuse(reason: str, line: int | None = None, column: int | None = None) -> RunDirectoryError:
        if column is not None:
            reason += f" (column {column})"
        return RunDirectoryError(path, reason, DESCRIPTION, line)

    description = decode(_read_file(path, DESCRIPTION), "a run description", refuse)
    if not isinstance(description, dict) or description.get("format") != RUN_FORMAT_NAME:
        raise refuse(f'not a nepi_lab run description (no "format": "{RUN_FORMAT_NAME}")')
    version = description.get("version")
    if not is_supported(version):
        raise RunFormatError(path, DESCRIPTION, version, SUPPORTED_VERSIONS)
    check_description(description, refuse)
    description.setdefault("types", {})
    description.setdefault("conditions", [])
    description.setdefault("failures", [])
    return description


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


def read_events(path: str, strict: bool = True) -> tuple[list[dict[str, Any]], list[str]]:
    """The state changes of ``events.jsonl``, each checked; and the damaged lines left out.

    Returns ``(records, damaged)``: the records as dicts (``time, guid, type, from,
    to, detail``), in file order, and for ``strict=False`` one ``"line N: reason"``
    per damaged line left out (with ``strict=True`` the first one is an error).
    A damaged line is one that is not UTF-8 (a write cut inside a character), not
    one JSON object (cut, empty, nested too deeply, a number of thousands of digits),
    or not a state change (an unknown state, a time no timestamp holds ...).

    Raises
    ------
    RunDirectoryError
        The file is missing or unreadable, or (``strict``) a line is damaged; the
        message names the file and the line.
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
    numbers = list(range(1, len(lines) + 1))
    for index, reason in reversed(undecodable):
        if strict and index == undecodable[0][0]:
            raise RunDirectoryError(path, reason, EVENTS, index + 1)
        bad.append((index + 1, reason))
        del lines[index]
        del numbers[index]
    while True:
        try:
            records = _decode_lines(lines)
            _check_records(records)
            return records, [f"line {n}: {reason}" for n, reason in sorted(bad)]
        except _BadLine as exc:
            number = numbers[exc.index]
            if strict:
                raise RunDirectoryError(path, exc.reason, EVENTS, number) from None
            bad.append((number, exc.reason))
            del lines[exc.index]
            del numbers[exc.index]
            if len(bad) > 1000:
                raise RunDirectoryError(path, "more than 1000 damaged lines", EVENTS) from None


#: The times a pandas timestamp (nanoseconds in an int64) holds, in seconds: the
#: frames of :mod:`nepi_lab.analysis` must be able to hold every time read.
_MAX_SECONDS = 9.2e9
_STATE_NAMES = frozenset(STATES)


def _check_records(records: list[Any]) -> None:
    """Raise :class:`_BadLine` for the first record that is not a state change."""
    for index, record in enumerate(records):
        if type(record) is not dict:
            raise _BadLine(index, "not a JSON object")
        time, guid = record.get("time"), record.get("guid")
        if type(time) not in (int, float) or not -_MAX_SECONDS <= time <= _MAX_SECONDS:  # also NaN
            raise _BadLine(index, '"time" must be seconds since the epoch, between the years 1678 and 2261, '
                                  f"not {time!r}")
        if type(guid) is not int or not 0 <= guid <= MAX_GUID:
            raise _BadLine(index, f'"guid" must be an integer in [0, 2**63 - 1], not {shown(guid)}')
        old, new = record.get("from"), record.get("to")
        if (type(new) is not str or new not in _STATE_NAMES
                or old is not None and (type(old) is not str or old not in _STATE_NAMES)):
            raise _BadLine(index, f'unknown state in {{"from": {shown(old)}, "to": {shown(new)}}}')
        if type(record.get("type")) is not str:
            raise _BadLine(index, f'"type" must be a string, not {shown(record.get("type"))}')

