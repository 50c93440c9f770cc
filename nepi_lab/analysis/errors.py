"""The errors of the analysis layer, each a branch of nepi_lab's one tree.

::

    NepiError
    └── InvalidInputError (also ValueError)
        ├── UnknownParserError                   .name, .known
        ├── UnknownTraceError                    .guid, .rtype, .trace, .allowed
        │   └── TraceNotFoundError               .reason, .available
        └── RunDirectoryError                    .path, .file, .line, .reason
            └── RunFormatError                   .version, .supported

(``RunDirectoryError`` and ``RunFormatError`` live in :mod:`nepi_lab.core.errors`,
beside the reader of run directories that raises them, and are re-exported here.)

A damaged run directory is refused with the file (and line) that is wrong; a trace
that cannot be read says which resource it belongs to and which traces exist.
Malformed *content* inside a trace is never an error: parsers count it in the
frame's ``attrs`` (see :mod:`nepi_lab.analysis.parsers`).
"""

from __future__ import annotations

from collections.abc import Iterable

from ..core.errors import InvalidInputError, RunDirectoryError, RunFormatError, UnknownTraceError

__all__ = ["RunDirectoryError", "RunFormatError", "TraceNotFoundError", "UnknownParserError"]


class UnknownParserError(InvalidInputError):
    """A parser name that is not registered; the message lists the known ones."""

    def __init__(self, name: object, known: Iterable[str]) -> None:
        self.name = name
        self.known = sorted(known)
        super().__init__(
            f"unknown trace parser {name!r}; registered parsers are: {', '.join(self.known)} "
            f"(add one with nepi_lab.register_parser(name, function))"
        )


class TraceNotFoundError(UnknownTraceError):
    """A trace that cannot be read: not declared, not enabled, or not collected.

    ``allowed`` lists the traces the resource's type declares, ``available`` those
    that can be read now (enabled, and collected when reading a run directory).
    """

    def __init__(self, guid: int, rtype: str, trace: str, reason: str,
                 allowed: Iterable[str], available: Iterable[str]) -> None:
        self.reason = reason
        self.available = sorted(available)
        # UnknownTraceError builds a message of its own: set the attributes it sets, then ours
        self.guid, self.rtype, self.trace = guid, rtype, trace
        self.allowed = sorted(allowed)
        have = ", ".join(self.available) or "none"
        InvalidInputError.__init__(
            self, f"resource {guid} ({rtype}) has no trace {trace!r} to read: {reason}; "
                  f"its readable traces are: {have}"
        )
