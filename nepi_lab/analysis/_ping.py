"""The ``ping`` parser: iputils ``ping`` output as one row per reply (or error).

Columns
-------
timestamp : datetime64[ns, UTC]
    When the line was printed, from ``-D`` (``printTimestamp``); NaT without it.
seq : Int64
    ``icmp_seq``.
ttl : Int64
    The reply's IP time to live.
rtt_ms : float64
    Round-trip time in milliseconds (NaN for error lines).
bytes : Int64
    Size of the reply (ICMP header and data).
source : str
    Address the reply came from (the address in parentheses when ping printed a name).
duplicate : bool
    The reply was flagged ``(DUP!)``.
error : str
    NA for a reply; otherwise what ping said (``Destination Host Unreachable``,
    ``no answer yet`` with ``-O``, ...).

``frame.attrs["summary"]`` holds the statistics block (``transmitted``, ``received``,
``duplicates``, ``errors``, ``loss_percent``, ``time_ms``, ``rtt_min_ms``,
``rtt_avg_ms``, ``rtt_max_ms``, ``rtt_mdev_ms``), or None when the output stops
before it (ping killed); ``attrs["target"]`` the pinged host from the header line.

How it stays fast: the reply lines are picked out with numpy, rewritten in one
``bytes.translate`` pass into space-separated fields, and read by pandas' C CSV
reader; the layout of the fields (with or without ``-D``, a host name or not) is
learnt from the first reply.  Lines that do not fit that layout (errors, other
ping versions, damage) go through one ``str.extract`` with the full grammar; what
that cannot read either is counted in ``attrs["malformed"]``.
"""

from __future__ import annotations

import csv
import io
import re
from typing import TYPE_CHECKING, Any

from ._common import MAX_EPOCH_SECONDS, Lines, as_bytes, example, finish, floats, text_dtype, utc_times

if TYPE_CHECKING:
    import pandas as pd

COLUMNS = ("timestamp", "seq", "ttl", "rtt_ms", "bytes", "source", "duplicate", "error")

# '[1718000000.123] 64 bytes from 10.0.0.1: icmp_seq=1 ttl=64 time=0.04 ms'
# -> '1718000000.123 64 bytes from 10.0.0.1: icmp_seq 1 ttl 64 time 0.04 ms'
_TRANSLATE = bytes.maketrans(b"=", b" ")
_DELETE = b"[]"

_LINE = re.compile(
    r"""^\s*(?:\[(?P<timestamp>\d+(?:\.\d+)?)\]\s*)?
    (?:
        (?P<bytes>\d+)\ bytes\ from\ (?P<name>[^\s(]+?)(?:\ \((?P<address>[^)]*)\))?:
            \ (?:icmp_[rs]eq|seq)=(?P<seq>\d+)(?:\ ident=\d+)?\ ttl=(?P<ttl>\d+)
            (?:\ time=(?P<rtt>\d+(?:\.\d+)?)\ ms)?(?P<flags>(?:\ \([^)]*\))*)
      | From\ (?P<error_name>[^\s(]+?)(?:\ \((?P<error_address>[^)]*)\))?:?
            \ icmp_seq=(?P<error_seq>\d+)\ (?P<error>.*?)
      | no\ answer\ yet\ for\ icmp_seq=(?P<pending_seq>\d+)
    )\s*$""",
    re.X,
)

_STATS_MARK = b" ping statistics ---"
_SUMMARY = {
    "transmitted": (r"(\d+) packets transmitted", int),
    "received": (r"(\d+) (?:packets )?received", int),
    "duplicates": (r"\+(\d+) duplicates", int),
    "errors": (r"\+(\d+) errors", int),
    "loss_percent": (r"([\d.]+)% packet loss", float),
    "time_ms": (r"time (\d+)ms", int),
}
_RTT = re.compile(r"(?:rtt|round-trip) min/avg/max(?:/mdev|/stddev)? = ([\d./]+) ms")


def parse_ping(data: str | bytes) -> pd.DataFrame:
    """Parse iputils ``ping`` output (see the module docstring for the columns).

    Example
    -------
    >>> frame = parse_ping("64 bytes from 127.0.0.1: icmp_seq=1 ttl=64 time=0.05 ms\\n")
    >>> float(frame.loc[0, "rtt_ms"])
    0.05
    """
    raw = as_bytes(data)
    head, (start, stop), first_line, stats = _split(raw)
    lines = Lines(raw, first_line, start, stop)
    nonblank = lines.lengths > 0
    rows = []  # (line numbers, frame) pieces, merged in line order at the end
    pending = nonblank.copy()
    replies = lines.containing(b" bytes from ") & nonblank
    if replies.any():
        fast = _fast(lines, replies)
        if fast is not None:
            numbers, frame = fast
            rows.append((numbers, frame))
            pending[numbers - first_line] = False
    malformed_numbers: Any = []
    malformed_text: list[str] = []
    if pending.any():
        numbers, frame, bad = _slow(lines, pending)
        rows.append((numbers, frame))
        malformed_numbers, malformed_text = bad
    frame = _merge(rows)
    examples = [example(n, t) for n, t in zip(malformed_numbers[:5], malformed_text[:5], strict=False)]
    return finish(frame, "ping", len(malformed_numbers), examples,
                  summary=_summary(stats), target=_target(head))


def _split(raw: bytes) -> tuple[bytes, tuple[int, int], int, bytes]:
    """(header line, (start, stop) of the body, number of its first line, statistics block)."""
    head = b""
    start, first_line = 0, 1
    if raw.startswith(b"PING "):
        end = raw.find(b"\n")
        start = len(raw) if end < 0 else end + 1
        head = raw[:start].rstrip(b"\n")
        first_line = 2
    stop = len(raw)
    stats = b""
    mark = raw.rfind(_STATS_MARK, start)
    if mark >= 0:
        stop = raw.rfind(b"\n", start, mark) + 1 or start
        stats = raw[stop:]
    return head, (start, stop), first_line, stats


def _layout(line: str) -> dict[str, int] | None:
    """Field positions in the translated reply ``line``, or None if it is not a reply."""
    tokens = line.translate({ord("="): " ", ord("["): None, ord("]"): None}).split(" ")
    try:
        at = tokens.index("bytes")
    except ValueError:
        return None
    layout = {"bytes": at - 1, "bytes_word": at, "from_word": at + 1}
    if at == 2:
        layout["timestamp"] = 0
    elif at != 1:
        return None
    i = at + 2
    if i + 1 < len(tokens) and tokens[i + 1].startswith("(") and tokens[i + 1].endswith("):"):
        layout["name"], i = i, i + 1
    layout["source"] = i
    layout["seq_word"], layout["seq"] = i + 1, i + 2
    i += 3
    if tokens[i:i + 1] == ["ttl"]:
        layout["ttl_word"], layout["ttl"] = i, i + 1
        i += 2
    else:
        return None
    if tokens[i:i + 1] == ["time"]:
        layout["time_word"], layout["rtt"], layout["ms_word"] = i, i + 1, i + 2
        i += 3
    layout["flag"], layout["extra"] = i, i + 1
    return layout


def _fast(lines: Lines, replies: Any) -> tuple[Any, pd.DataFrame] | None:
    """Read the reply lines with the C CSV reader; the rows that fit the first reply's
    layout, with their line numbers (the others are left to :func:`_slow`)."""
    import numpy as np
    import pandas as pd

    first = int(np.argmax(replies))
    start, end = lines.starts[first], lines.ends[first]
    layout = _layout(lines.data[start:end].decode("utf-8", "replace"))
    if layout is None:
        return None
    # blank lines come along (the reader skips them) so that the usual output is not copied
    selected = lines.select(replies | (lines.lengths == 0)).translate(_TRANSLATE, _DELETE)
    width = layout["extra"] + 1
    words = [k for k in layout if k.endswith("_word") or k in ("source", "name", "flag", "extra")]
    try:
        table = pd.read_csv(
            io.BytesIO(selected), sep=" ", header=None, names=list(range(width)),
            dtype={layout[k]: "category" for k in words},
            quoting=csv.QUOTE_NONE, skip_blank_lines=True, encoding_errors="replace",
            engine="c", na_filter=True, keep_default_na=False, na_values=[""],
        )
    except (pd.errors.ParserError, ValueError):  # a line with far too many fields
        return None
    if len(table) != int(replies.sum()):
        return None

    def number(key: str) -> Any:
        return floats(table[layout[key]])

    def word(key: str, expected: str) -> Any:
        return (table[layout[key]] == expected).to_numpy(dtype=bool, na_value=False)

    seq_words = table[layout["seq_word"]]
    ok = np.array(seq_words.isin(["icmp_seq", "icmp_req", "seq"]), dtype=bool)  # a writable copy
    ok &= word("bytes_word", "bytes") & word("from_word", "from") & word("ttl_word", "ttl")
    values = {k: number(k) for k in ("bytes", "seq", "ttl")}
    values["rtt"] = np.full(len(table), np.nan)
    if "rtt" in layout:
        ok &= word("time_word", "time") & word("ms_word", "ms")
        values["rtt"] = number("rtt")
    values["timestamp"] = number("timestamp") if "timestamp" in layout else np.full(len(table), np.nan)
    for key in ("bytes", "seq", "ttl", "rtt", "timestamp"):
        if key in layout:
            ok &= ~np.isnan(values[key])
    ok &= _readable(values)
    flag = table[layout["flag"]]
    ok &= (flag.isna() | (flag == "(DUP!)")).to_numpy(dtype=bool, na_value=False)
    ok &= table[layout["extra"]].isna().to_numpy(dtype=bool)
    source = table[layout["source"]]
    # as text: the reader makes the categories numbers when every source looks like one
    categories = source.cat.categories.astype(str)
    cleaned = categories.str.removesuffix(":") if len(categories) else categories
    if "name" in layout and len(categories):  # "localhost (127.0.0.1):" -> the address
        cleaned = cleaned.str.removeprefix("(").str.removesuffix(")")
    shape_ok = np.asarray(categories.str.endswith(":"), dtype=bool) if "name" not in layout else (
        np.asarray(categories.str.startswith("("), dtype=bool)
        & np.asarray(categories.str.endswith("):"), dtype=bool))
    codes = source.cat.codes.to_numpy()
    ok &= (codes >= 0) & np.append(shape_ok, False)[codes]
    if not ok.any():
        return None
    codes = codes[ok]
    frame = _frame(
        timestamp=values["timestamp"][ok], seq=values["seq"][ok], ttl=values["ttl"][ok],
        rtt_ms=values["rtt"][ok], bytes=values["bytes"][ok],
        source=np.asarray(cleaned, dtype=object)[codes] if len(cleaned) else np.empty(0, dtype=object),
        duplicate=(flag == "(DUP!)").to_numpy(dtype=bool, na_value=False)[ok],
        error=None,
    )
    return lines.numbers[replies][ok], frame


def _slow(lines: Lines, pending: Any) -> tuple[Any, pd.DataFrame, tuple[Any, list[str]]]:
    """Read the ``pending`` lines with the full grammar (``str.extract``)."""
    import numpy as np
    import pandas as pd

    texts = pd.Series(lines.text(pending), dtype=text_dtype())
    numbers = lines.numbers[pending]
    found = texts.str.extract(_LINE)
    matched = np.array(found.notna().any(axis=1), dtype=bool)  # a writable copy
    found = found[matched]
    values = {key: floats(found[column]) for key, column in (
        ("bytes", "bytes"), ("seq", "seq"), ("ttl", "ttl"), ("rtt", "rtt"), ("timestamp", "timestamp"),
        ("error_seq", "error_seq"), ("pending_seq", "pending_seq"))}
    readable = _readable(values)
    if not readable.all():  # a line of the right shape with a number no column holds
        matched[matched] = readable
        found = found[readable]
        values = {key: v[readable] for key, v in values.items()}

    def number(column: pd.Series) -> Any:
        return floats(column)

    def first(*columns: str) -> pd.Series:  # the first group that matched, column by column
        result = found[columns[0]]
        for column in columns[1:]:
            result = result.where(result.notna(), found[column])
        return result

    seq = first("seq", "error_seq", "pending_seq")
    source = first("address", "name", "error_address", "error_name")
    error = found["error"].where(found["pending_seq"].isna(), "no answer yet")
    frame = _frame(
        timestamp=number(found["timestamp"]), seq=number(seq), ttl=number(found["ttl"]),
        rtt_ms=number(found["rtt"]), bytes=number(found["bytes"]),
        source=source.to_numpy(dtype=object, na_value=np.nan),
        duplicate=found["flags"].str.contains("DUP!", regex=False).to_numpy(dtype=bool, na_value=False),
        error=error.to_numpy(dtype=object, na_value=np.nan),
    )
    bad_text = texts[~matched].tolist()
    return numbers[matched], frame, (numbers[~matched], bad_text)


#: [low, high) of each number of a line; out of it, the line is malformed (NaN: not on the line).
_LIMITS = {"bytes": (0, 2.0**63), "seq": (0, 2.0**63), "ttl": (0, 2.0**63), "error_seq": (0, 2.0**63),
           "pending_seq": (0, 2.0**63), "rtt": (0, float("inf")),
           "timestamp": (-MAX_EPOCH_SECONDS, MAX_EPOCH_SECONDS)}


def _readable(values: dict[str, Any]) -> Any:
    """The rows whose numbers all fit their columns (int64 counts, a finite rtt, a
    timestamp pandas holds)."""
    import numpy as np

    ok = np.ones(len(next(iter(values.values()))), dtype=bool)
    for key, (low, high) in _LIMITS.items():
        if key in values:
            number = values[key]
            ok &= np.isnan(number) | ((number >= low) & (number < high))
    return ok


def _frame(*, timestamp: Any, seq: Any, ttl: Any, rtt_ms: Any, bytes: Any, source: Any,
           duplicate: Any, error: Any) -> pd.DataFrame:
    import pandas as pd

    n = len(seq)
    time, _ = utc_times(timestamp)  # in range: checked by _readable
    return pd.DataFrame({
        "timestamp": time,
        "seq": pd.array(seq, dtype="Float64").astype("Int64"),
        "ttl": pd.array(ttl, dtype="Float64").astype("Int64"),
        "rtt_ms": pd.array(rtt_ms, dtype="float64"),
        "bytes": pd.array(bytes, dtype="Float64").astype("Int64"),
        "source": pd.array(source, dtype=text_dtype()),
        "duplicate": pd.array(duplicate, dtype="bool"),
        "error": (pd.Series(None, index=pd.RangeIndex(n), dtype=text_dtype()).array if error is None
                  else pd.array(error, dtype=text_dtype())),
    })


def _merge(pieces: list[tuple[Any, pd.DataFrame]]) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    if not pieces:
        return _frame(timestamp=[], seq=[], ttl=[], rtt_ms=[], bytes=[], source=[], duplicate=[], error=[])
    if len(pieces) == 1:
        return pieces[0][1]
    numbers = np.concatenate([n for n, _ in pieces])
    frame = pd.concat([f for _, f in pieces], ignore_index=True)
    order = np.argsort(numbers, kind="stable")
    return frame.take(order).reset_index(drop=True)


def _summary(stats: bytes) -> dict[str, Any] | None:
    if not stats:
        return None
    text = stats.decode("utf-8", "replace")
    summary: dict[str, Any] = {}
    for key, (pattern, kind) in _SUMMARY.items():
        found = re.search(pattern, text)
        summary[key] = kind(found.group(1)) if found else (0 if key in ("duplicates", "errors") else None)
    rtt = _RTT.search(text)
    parts = rtt.group(1).split("/") if rtt else []
    for i, key in enumerate(("rtt_min_ms", "rtt_avg_ms", "rtt_max_ms", "rtt_mdev_ms")):
        try:
            summary[key] = float(parts[i])
        except (IndexError, ValueError):
            summary[key] = None
    return summary


def _target(head: bytes) -> str | None:
    found = re.match(rb"PING ([^\s(]+)", head)
    return found.group(1).decode("utf-8", "replace") if found else None
