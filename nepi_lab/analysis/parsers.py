"""Trace parsers: the registry, the built-in ones, and which one a trace gets by default.

A parser is a function ``parser(data) -> pandas.DataFrame`` where ``data`` is the
trace's content as ``bytes``, exactly the file's (decode text with
``data.decode()``; the built-in parsers also accept ``str``).  It returns one row
per record, never raises on malformed content, and says what it could not read in
the frame's ``attrs``:

- ``attrs["malformed"]``: how many lines (or records, or documents) it skipped;
- ``attrs["malformed_examples"]``: the first few, as ``"line 7: <text>"``;
- anything else it knows (``summary`` for ping and iperf3, ...).

Built-in parsers (each vectorised: pandas' C CSV reader, ``str.extract``,
``json_normalize`` or numpy over the whole buffer, never a Python loop per line):

=========  ====================================================================
``lines``  one row per line: ``line`` (1-based number) and ``text``
``csv``    ``pandas.read_csv`` with a header row; bad lines are skipped and counted
``ping``   iputils ping (see :mod:`nepi_lab.analysis._ping`)
``iperf3`` iperf3 ``-J`` JSON or text (see :mod:`nepi_lab.analysis._iperf3`)
``tcpdump`` pcap/pcapng capture or tcpdump text (see :mod:`nepi_lab.analysis._tcpdump`)
``packet_sink`` ns3::PacketSink's rx trace (see :mod:`nepi_lab.analysis._ns3`)
``ns3_flows`` ns3::Simulation's FlowMonitor flows (see :mod:`nepi_lab.analysis._ns3`)
=========  ====================================================================

Defaults are keyed by resource type *name* and trace name, so a run directory is
read without importing any resource class; a trace with no entry gets ``lines``.

Example
-------
>>> import io
>>> import pandas as pd
>>> from nepi_lab.analysis import register_parser, set_default_parser, unregister_parser
>>> def counts(data: bytes) -> pd.DataFrame:
...     return pd.read_csv(io.BytesIO(data), names=["time", "count"])
>>> register_parser("counts", counts)
>>> set_default_parser("lab::Capture", "counts", "counts")
>>> unregister_parser("counts")          # when done with it: its defaults go too
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ..core.errors import InvalidInputError
from ._common import as_bytes, as_text, example, finish, text_dtype
from ._iperf3 import parse_iperf3
from ._ns3 import parse_ns3_flows, parse_packet_sink
from ._ping import parse_ping
from ._tcpdump import parse_tcpdump
from .errors import UnknownParserError

if TYPE_CHECKING:
    import pandas as pd

Parser = Callable[[bytes], "pd.DataFrame"]

#: The parser of a trace with no default.
FALLBACK = "lines"

_lock = threading.Lock()
_parsers: dict[str, Parser] = {}
_defaults: dict[tuple[str, str], str] = {}


def register_parser(name: str, parser: Parser, *, replace: bool = False) -> None:
    """Make ``parser`` available as ``trace_frame(..., parser=name)``.

    ``replace=True`` is needed to rebind a name already registered (a built-in
    included), so that a typo cannot silently shadow one.
    """
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError(f"a parser name must be a non-empty string, not {name!r}")
    if not callable(parser):
        raise InvalidInputError(f"parser {name!r} must be callable (data -> DataFrame), not {parser!r}")
    with _lock:
        if name in _parsers and not replace and _parsers[name] is not parser:
            raise InvalidInputError(
                f"a parser named {name!r} is already registered; pass replace=True to rebind it")
        _parsers[name] = parser


def unregister_parser(name: str) -> None:
    """Remove a parser (and the defaults that name it)."""
    with _lock:
        if name not in _parsers:
            raise UnknownParserError(name, _parsers)
        del _parsers[name]
        for key in [k for k, v in _defaults.items() if v == name]:
            del _defaults[key]


def parser_names() -> list[str]:
    """The registered parser names, sorted."""
    with _lock:
        return sorted(_parsers)


def get_parser(name: str) -> Parser:
    """The parser registered as ``name``; an unknown name lists the known ones."""
    with _lock:
        try:
            return _parsers[name]
        except (KeyError, TypeError):
            raise UnknownParserError(name, _parsers) from None


def set_default_parser(rtype: str, trace: str, parser: str | None) -> None:
    """Parse trace ``trace`` of resources of type ``rtype`` with ``parser`` by default
    (None: back to :data:`FALLBACK`)."""
    with _lock:
        if parser is None:
            _defaults.pop((rtype, trace), None)
            return
        if parser not in _parsers:
            raise UnknownParserError(parser, _parsers)
        _defaults[(rtype, trace)] = parser


def default_parser(rtype: str, trace: str, bases: Sequence[str] = ()) -> str:
    """The name of the parser a trace gets when none is given.

    ``bases`` are the type's base type names, nearest first (a run directory records
    them), so a subclass of ``linux::Ping`` gets the ``ping`` parser too.
    """
    with _lock:
        for name in (rtype, *bases):
            if (name, trace) in _defaults:
                return _defaults[name, trace]
        return FALLBACK


def default_parsers() -> dict[tuple[str, str], str]:
    """Every default: ``{(type name, trace name): parser name}``."""
    with _lock:
        return dict(_defaults)


def resolve(parser: str | Parser | None, rtype: str, trace: str,
            bases: Sequence[str] = ()) -> tuple[str, Parser]:
    """``(name, function)`` for a parser given by name, as a function, or by default."""
    if parser is None:
        parser = default_parser(rtype, trace, bases)
    if callable(parser):
        return getattr(parser, "__name__", repr(parser)), parser
    return parser, get_parser(parser)


# -- the simple built-ins ------------------------------------------------------------


def parse_lines(data: str | bytes) -> pd.DataFrame:
    """One row per line: ``line`` (1-based) and ``text`` (without its newline)."""
    import numpy as np
    import pandas as pd

    text = as_text(data)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    frame = pd.DataFrame({"line": np.arange(1, len(lines) + 1, dtype=np.int64),
                          "text": pd.array(lines, dtype=text_dtype())})
    return finish(frame, "lines")


_BAD_LINE = re.compile(r"Skipping line (\d+): (.*)")


def parse_csv(data: str | bytes) -> pd.DataFrame:
    """``pandas.read_csv`` (C engine) with a header row.

    Lines with too many fields are skipped and counted; an empty trace gives an
    empty frame.  For other options register ``functools.partial`` of your own.
    """
    import io
    import warnings

    import pandas as pd

    raw = as_bytes(data)
    if not raw.strip():
        return finish(pd.DataFrame(), "csv")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", pd.errors.ParserWarning)
        try:
            frame = pd.read_csv(io.BytesIO(raw), on_bad_lines="warn", encoding_errors="replace")
        except (pd.errors.ParserError, ValueError) as exc:
            return finish(pd.DataFrame(), "csv", raw.count(b"\n") or 1, [f"line ?: {exc}"])
    bad = [m for w in caught for m in _BAD_LINE.finditer(str(w.message))]
    lines = raw.split(b"\n") if bad else []
    examples = [example(int(m.group(1)), lines[int(m.group(1)) - 1] if int(m.group(1)) <= len(lines) else "")
                for m in bad[:5]]
    return finish(frame, "csv", len(bad), examples)


for _name, _function in (("lines", parse_lines), ("csv", parse_csv), ("ping", parse_ping),
                         ("iperf3", parse_iperf3), ("tcpdump", parse_tcpdump),
                         ("packet_sink", parse_packet_sink), ("ns3_flows", parse_ns3_flows)):
    register_parser(_name, _function)

for _key, _name in (
    (("linux::Ping", "stdout"), "ping"),
    (("linux::Iperf3Client", "stdout"), "iperf3"),
    (("linux::Iperf3Server", "stdout"), "iperf3"),
    (("linux::Tcpdump", "pcap"), "tcpdump"),
    (("ns3::Ping", "stdout"), "ping"),
    (("ns3::UdpEchoClient", "stdout"), "ping"),
    (("ns3::PointToPointLink", "pcapA"), "tcpdump"),
    (("ns3::PointToPointLink", "pcapB"), "tcpdump"),
    (("ns3::CsmaLink", "pcap"), "tcpdump"),
    (("ns3::PacketSink", "rx"), "packet_sink"),
    (("ns3::Simulation", "flows"), "ns3_flows"),
):
    set_default_parser(*_key, _name)
