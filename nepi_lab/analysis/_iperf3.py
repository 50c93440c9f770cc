"""The ``iperf3`` parser: one row per reporting interval and stream.

Reads ``iperf3 -J`` JSON (client or server; several concatenated reports, as a
server that ran several tests writes, become several tests) and, failing that, the
plain text report.

Columns
-------
test : int64
    Which report in the trace (0 for the usual single test).
interval : int64
    The interval's index within its test.
stream : int64
    The stream's id (iperf3's socket number).
start, end, seconds : float64
    The interval, in seconds from the start of the test.
bytes : int64
    Bytes carried in the interval (from text output: as rounded by iperf3).
bits_per_second : float64
retransmits : Int64
    TCP retransmissions reported by the sender (NA for UDP and receivers).
sender : boolean
    Whether this side sent the stream (NA when the text report does not say).

plus whatever else iperf3 reports per stream (``snd_cwnd``, ``rtt``, ``packets``,
``omitted`` ...).  ``frame.attrs["summary"]`` holds the end of the report: protocol,
streams, duration, bytes and bits per second sent and received, retransmits,
jitter and loss (UDP), CPU use, and ``error`` when iperf3 reported one;
``attrs["summaries"]`` lists one such dict per test.
"""

from __future__ import annotations

import json
import math
import re
from typing import TYPE_CHECKING, Any

from ._common import as_text, example, finish, text_dtype

if TYPE_CHECKING:
    import pandas as pd

COLUMNS = ("test", "interval", "stream", "start", "end", "seconds", "bytes", "bits_per_second",
           "retransmits", "sender")

_INTERVAL = re.compile(
    r"^\[\s*(?P<stream>\d+|SUM)\]\s+(?P<start>\d+(?:\.\d+)?)-(?P<end>\d+(?:\.\d+)?)\s+sec"
    r"\s+(?P<transfer>\d+(?:\.\d+)?)\s+(?P<transfer_unit>[KMGT]?)Bytes"
    r"\s+(?P<rate>\d+(?:\.\d+)?)\s+(?P<rate_unit>[KMGT]?)bits/sec"
    r"(?:\s+(?P<jitter>\d+(?:\.\d+)?)\s+ms\s+(?P<lost>-?\d+)/(?P<total>\d+)\s+\((?P<loss>[\d.e+-]+|nan)%\))?"
    r"(?:\s+(?P<count>\d+))?(?:\s+(?P<cwnd>\d+(?:\.\d+)?)\s+(?P<cwnd_unit>[KMGT]?)Bytes)?"
    r"\s*(?P<role>sender|receiver)?\s*$"
)
_KNOWN_TEXT = re.compile(
    r"^(?:\s*|Connecting to host .*|\[\s*\d+\] local .*|\[ ID\].*|(?:- )+-?\s*|-+\s*|iperf Done\.?"
    r"|Server listening on .*|Accepted connection from .*|Reverse mode.*|Test Complete.*"
    r"|iperf3: .*|warning: .*)$"
)
_SCALE = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_RATE = {"": 1, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


def parse_iperf3(data: str | bytes) -> pd.DataFrame:
    """Parse an iperf3 report, JSON (``-J``) or text (see the module docstring).

    Example
    -------
    >>> frame = parse_iperf3(open("client.json").read())          # doctest: +SKIP
    >>> frame.groupby("stream").bits_per_second.mean()              # doctest: +SKIP
    """
    text = as_text(data)
    if text.lstrip().startswith("{"):
        return _parse_json(text)
    return _parse_text(text)


# -- JSON ------------------------------------------------------------------------


def _documents(text: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The JSON reports in ``text``, and a description of what could not be read."""
    decoder = json.JSONDecoder()
    documents: list[dict[str, Any]] = []
    bad: list[str] = []
    at, end = 0, len(text)
    while True:
        while at < end and text[at].isspace():
            at += 1
        if at >= end:
            break
        try:
            document, at = decoder.raw_decode(text, at)
        except json.JSONDecodeError as exc:
            line = text.count("\n", 0, exc.pos) + 1
            bad.append(example(line, f"{exc.msg} (the report is cut or damaged from here)"))
            break
        except (ValueError, RecursionError) as exc:  # a number of 5,000 digits; nested too deeply
            line = text.count("\n", 0, at) + 1
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            bad.append(example(line, f"{reason} (the report is damaged from here)"))
            break
        if isinstance(document, dict):
            documents.append(document)
        else:
            bad.append(example(text.count("\n", 0, at) + 1, f"not an iperf3 report: {document!r}"))
    return documents, bad


def _object(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one: a damaged report is read as far
    as it goes, never trusted to have the shape iperf3 writes."""
    return value if isinstance(value, dict) else {}


def _array(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _parse_json(text: str) -> pd.DataFrame:
    import pandas as pd

    documents, bad = _documents(text)
    pieces = []
    summaries = []
    for test, document in enumerate(documents):
        records: list[dict[str, Any]] = []
        numbers: list[int] = []
        for number, interval in enumerate(_array(document.get("intervals"))):
            streams = _object(interval).get("streams")
            for stream in _array(streams):
                if isinstance(stream, dict):
                    records.append(stream)
                    numbers.append(number)
                else:
                    bad.append(f"report {test + 1}, interval {number}: a stream that is not an object: "
                               f"{_shown(stream)}")
            if not isinstance(interval, dict) or streams is not None and not isinstance(streams, list):
                bad.append(f"report {test + 1}, interval {number}: not an interval: {_shown(interval)}")
        # iperf3's streams are flat; a damaged one nested deeper is not unfolded further
        streams = pd.json_normalize(records, max_level=1) if records else pd.DataFrame()
        if len(streams):
            streams.insert(0, "interval", numbers)
        streams.insert(0, "test", test)
        pieces.append(streams)
        summaries.append(_json_summary(document))
    frame = pd.concat(pieces, ignore_index=True) if pieces else pd.DataFrame()
    frame, unreadable = _normalise(frame.rename(columns={"socket": "stream"}))
    error = next((s["error"] for s in reversed(summaries) if s.get("error")), None)
    return finish(frame, "iperf3", len(bad) + len(unreadable), bad + unreadable,
                  summary=summaries[-1] if summaries else None, summaries=summaries, error=error)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:60] + "..."


def _json_summary(document: dict[str, Any]) -> dict[str, Any]:
    start = _object(document.get("start"))
    end = _object(document.get("end"))
    test = _object(start.get("test_start"))
    sent = _object(end.get("sum_sent") or end.get("sum"))
    received = _object(end.get("sum_received") or end.get("sum"))
    cpu = _object(end.get("cpu_utilization_percent"))
    streams = []
    for s in _array(end.get("streams")):
        s = _object(s)
        sender = _object(s.get("sender") or s.get("udp"))
        receiver = _object(s.get("receiver") or s.get("udp"))
        streams.append({"stream": sender.get("socket", receiver.get("socket")),
                        "sent_bytes": sender.get("bytes"),
                        "sent_bits_per_second": sender.get("bits_per_second"),
                        "retransmits": sender.get("retransmits"),
                        "received_bytes": receiver.get("bytes"),
                        "received_bits_per_second": receiver.get("bits_per_second")})
    return {
        "protocol": test.get("protocol"),
        "streams": test.get("num_streams"),
        "reverse": bool(test.get("reverse")) if "reverse" in test else None,
        "duration": test.get("duration"),
        "sent_bytes": sent.get("bytes"),
        "sent_bits_per_second": sent.get("bits_per_second"),
        "received_bytes": received.get("bytes"),
        "received_bits_per_second": received.get("bits_per_second"),
        "retransmits": sent.get("retransmits"),
        "jitter_ms": received.get("jitter_ms", sent.get("jitter_ms")),
        "lost_packets": received.get("lost_packets", sent.get("lost_packets")),
        "lost_percent": received.get("lost_percent", sent.get("lost_percent")),
        "cpu_host_percent": cpu.get("host_total"),
        "cpu_remote_percent": cpu.get("remote_total"),
        "per_stream": streams,
        "error": document.get("error"),
    }


# -- text ------------------------------------------------------------------------


def _parse_text(text: str) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    lines = pd.Series(text.splitlines(), dtype=text_dtype())
    found = lines.str.extract(_INTERVAL)
    is_row = found["stream"].notna().to_numpy()
    known = lines.str.match(_KNOWN_TEXT).to_numpy(dtype=bool, na_value=False)
    malformed = ~is_row & ~known
    numbers = np.flatnonzero(malformed) + 1
    examples = [example(n, t) for n, t in zip(numbers[:5], lines[malformed].head(5), strict=False)]
    errors = lines[lines.str.startswith("iperf3: error")]
    rows = found[is_row]

    def number(column: str) -> pd.Series:
        return pd.to_numeric(rows[column], errors="coerce")

    transfer = number("transfer") * rows["transfer_unit"].map(_SCALE).astype("float64")
    rate = number("rate") * rows["rate_unit"].map(_RATE).astype("float64")
    ending = rows["role"].notna()
    streams = rows["stream"] != "SUM"
    summaries = _text_summary(rows[ending], transfer[ending], rate[ending])
    keep = (~ending & streams).to_numpy()
    body = rows[keep]
    frame = pd.DataFrame({
        "test": 0,
        "stream": pd.to_numeric(body["stream"], errors="coerce"),
        "start": number("start")[keep],
        "end": number("end")[keep],
        "bytes": transfer[keep].round(),
        "bits_per_second": rate[keep],
        # TCP interval lines: "Retr Cwnd"; UDP: "Total Datagrams"
        "retransmits": pd.to_numeric(body["count"], errors="coerce").where(body["cwnd"].notna()),
        "packets": pd.to_numeric(body["count"], errors="coerce").where(body["cwnd"].isna()),
        "snd_cwnd": (pd.to_numeric(body["cwnd"], errors="coerce")
                     * body["cwnd_unit"].map(_SCALE).astype("float64")).round(),
    }).reset_index(drop=True)
    frame["seconds"] = frame["end"] - frame["start"]
    frame.insert(1, "interval", frame.groupby("stream").cumcount())
    frame["sender"] = pd.array([pd.NA] * len(frame), dtype="boolean")
    frame, unreadable = _normalise(frame)
    summary = summaries or None
    error = errors.iloc[-1] if len(errors) else None
    if summary is not None and error:
        summary["error"] = error
    return finish(frame, "iperf3", int(malformed.sum()) + len(unreadable), examples + unreadable,
                  summary=summary, summaries=[summary] if summary else [], error=error)


def _text_summary(rows: pd.DataFrame, transfer: pd.Series, rate: pd.Series) -> dict[str, Any]:
    """The end lines ("... sender" / "... receiver") as the JSON summary's keys."""
    if rows.empty:
        return {}
    total = rows["stream"] == "SUM"
    if not total.any():  # one stream: its own lines are the totals
        total = rows["stream"] == rows["stream"].iloc[0]
    summary: dict[str, Any] = {"protocol": "UDP" if rows["jitter"].notna().any() else "TCP",
                               "streams": int(rows.loc[rows["stream"] != "SUM", "stream"].nunique())}
    for role, prefix in (("sender", "sent"), ("receiver", "received")):
        pick = (total & (rows["role"] == role)).to_numpy()
        if pick.any():
            summary[f"{prefix}_bytes"] = float(transfer[pick].iloc[-1])
            summary[f"{prefix}_bits_per_second"] = float(rate[pick].iloc[-1])
            retransmits = _whole(rows["count"][pick].iloc[-1])
            if role == "sender" and retransmits is not None:
                summary["retransmits"] = retransmits
            if rows["jitter"][pick].notna().any():
                summary["jitter_ms"] = pd_number(rows["jitter"][pick].iloc[-1])
                summary["lost_packets"] = _whole(rows["lost"][pick].iloc[-1])
                summary["lost_percent"] = pd_number(rows["loss"][pick].iloc[-1])
    return summary


def pd_number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return None if number != number else number


def _whole(value: Any) -> int | None:
    """An integer from a text field; None if there is none (missing, NaN, 400 digits)."""
    number = pd_number(value)
    return int(number) if number is not None and math.isfinite(number) else None


_DTYPES = {"test": "int64", "interval": "int64", "stream": "int64", "start": "float64",
           "end": "float64", "seconds": "float64", "bytes": "int64", "bits_per_second": "float64",
           "retransmits": "Int64", "sender": "boolean"}


def _normalise(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The guaranteed columns first, with fixed dtypes; the others as iperf3 gave them.

    A value of a guaranteed column that is not of its kind (a string, an integer beyond
    64 bits, a list ...) becomes NA (an int64 column with NA becomes Int64); the rows
    that held one are returned, described, to be counted as malformed.
    """
    import numpy as np
    import pandas as pd

    lost: dict[int, list[str]] = {}  # row -> the columns whose value could not be read
    for column, dtype in _DTYPES.items():
        if column not in frame:
            frame[column] = pd.array([None] * len(frame), dtype=dtype if dtype in ("Int64", "boolean")
                                     else "float64")
            continue
        values = frame[column]
        if dtype == "boolean":
            if values.dtype.kind == "b" or str(values.dtype) == "boolean":
                frame[column] = values.astype("boolean")
                continue
            fine = values.map(lambda v: isinstance(v, (bool, np.bool_))).to_numpy(dtype=bool)
            converted = values.where(fine, None).astype("boolean")
        else:
            converted = pd.to_numeric(values, errors="coerce")
            if dtype != "float64" and converted.dtype.kind == "f":  # for int64: whole and in range
                converted = converted.where((converted >= -(2**63)) & (converted < 2**63)
                                            & (converted == np.floor(converted)))
            if dtype == "int64" and converted.isna().any():
                dtype = "Int64"
            converted = converted.astype(dtype)
        for row in np.flatnonzero((converted.isna() & values.notna()).to_numpy(dtype=bool)):
            lost.setdefault(int(row), []).append(column)
        frame[column] = converted
    rest = [c for c in frame.columns if c not in _DTYPES]
    described = [f"row {row}: unreadable {', '.join(columns)}" for row, columns in sorted(lost.items())]
    return frame[list(_DTYPES) + rest].reset_index(drop=True), described
