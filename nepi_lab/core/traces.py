"""Trace declarations, the four ways to read a trace, and safe file-system names."""

from __future__ import annotations

import dataclasses
import enum
import os
import re

from .errors import InvalidInputError, UnsafeNameError

_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}")


def check_name(name: object, what: str) -> str:
    """Return ``name`` if it is safe as one path component, else raise.

    A safe name is 1 to 128 characters of letters, digits, ``_ . + -``, does not
    start with a dot or dash, and is never ``..``: it cannot climb out of the
    directory it is joined to.
    """
    if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name) or ".." in name:
        raise UnsafeNameError(
            name, what,
            "use 1-128 letters, digits, '_', '.', '+' or '-', not starting with '.' or '-', "
            "without '..' or path separators",
        )
    return name


class TraceAttr(str, enum.Enum):
    """What ``ec.trace(guid, name, attr=...)`` returns, as in NEPI."""

    ALL = "all"  # the whole content, as str (bytes if not valid UTF-8)
    STREAM = "stream"  # ``block`` bytes at block index ``offset``
    PATH = "path"  # where the trace file is
    SIZE = "size"  # its size in bytes


def as_trace_attr(value: object) -> TraceAttr:
    """Accept a :class:`TraceAttr` or its value (``"all"``, ``"stream"``, ``"path"``, ``"size"``)."""
    try:
        return TraceAttr(value)
    except ValueError:
        modes = ", ".join(repr(m.value) for m in TraceAttr)
        raise InvalidInputError(f"unknown trace mode {value!r}; modes are {modes}") from None


#: The largest ``block`` of :attr:`TraceAttr.STREAM`: larger traces are read whole or
#: in several blocks (a block is allocated before it is read).
MAX_BLOCK = 2**30
_MAX_POSITION = 2**63 - 1  # the largest file offset


def check_stream(block: object, offset: object) -> None:
    """Refuse a ``block`` and ``offset`` of :attr:`TraceAttr.STREAM` that cannot be read.

    ``block`` is an int in ``[1, MAX_BLOCK]`` and ``offset`` an int >= 0 such that
    ``block * offset`` is a file position; anything else raises
    :class:`InvalidInputError`, whatever the mode and whether the file exists yet.
    """
    for name, value, low in (("block", block, 1), ("offset", offset, 0)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInputError(f"trace {name} must be an integer, not {value!r}")
        if value < low:
            raise InvalidInputError(f"trace {name} must be >= {low}, not {value!r}")
    if block > MAX_BLOCK:  # type: ignore[operator]
        raise InvalidInputError(
            f"trace block must be at most {MAX_BLOCK} bytes (1 GiB), not {block!r}: "
            f"read a larger trace whole (TraceAttr.ALL) or in several blocks")
    if block * offset > _MAX_POSITION:  # type: ignore[operator]
        raise InvalidInputError(
            f"trace offset {offset!r} is beyond any file: block {block} x offset {offset} "
            f"exceeds the largest file position (2**63 - 1)")


@dataclasses.dataclass(frozen=True)
class Trace:
    """The declaration of one trace a resource can produce.

    Parameters
    ----------
    name : str
        Trace name, also its file name in the run directory.
    help : str
        What it contains.
    enabled : bool
        Collected without ``enable_trace``.
    """

    name: str
    help: str = ""
    enabled: bool = False

    def __post_init__(self) -> None:
        check_name(self.name, "trace name")


def read_trace_file(path: str, attr: TraceAttr, block: int, offset: int) -> str | bytes | int:
    """Read a local trace file in one of the :class:`TraceAttr` modes.

    A missing file reads as empty (size 0): a trace that produced nothing yet is
    not an error.
    """
    attr = TraceAttr(attr)
    if attr is TraceAttr.PATH:
        return path
    if attr is TraceAttr.SIZE:
        try:
            return os.path.getsize(path)
        except FileNotFoundError:
            return 0
    if attr is TraceAttr.STREAM:
        check_stream(block, offset)
    try:
        with open(path, "rb") as f:
            if attr is TraceAttr.STREAM:
                # Only what is there: read() allocates the whole block first, and a file
                # system refuses to seek far beyond its largest file.
                start = block * offset
                size = os.fstat(f.fileno()).st_size
                data = b""
                if start < size:
                    f.seek(start)
                    data = f.read(min(block, size - start))
            else:
                data = f.read()
    except FileNotFoundError:
        data = b""
    try:
        return data.decode()
    except UnicodeDecodeError:
        return data
