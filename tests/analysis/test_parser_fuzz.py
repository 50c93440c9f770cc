"""Every built-in parser, fuzzed: bad input never crashes a parser (README, "Parsers").

Each parser gets junk (arbitrary bytes and text) and, more to the point, its own real
outputs (``data/``) damaged the ways real traces are: lines cut anywhere, tokens
replaced by huge, negative, non-numeric or non-ASCII values, lines shuffled and
repeated, JSON reports whose subtrees are replaced by any JSON value, captures with
flipped bytes, other link types and cut records.  Whatever it gets, a parser returns a
DataFrame with its documented columns and says in ``attrs["malformed"]`` how much it
could not read.

The example counts are bounded so that the suite stays fast (a few seconds per
parser); ``HYPOTHESIS_PROFILE=thorough`` runs a hundred times more.
"""

from __future__ import annotations

import io
import json
import os
import re
import struct
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from nepi_lab.analysis import parse_csv, parse_iperf3, parse_lines, parse_ping, parse_tcpdump
from nepi_lab.analysis._iperf3 import COLUMNS as IPERF3_COLUMNS
from nepi_lab.analysis._ping import COLUMNS as PING_COLUMNS
from nepi_lab.analysis._tcpdump import COLUMNS as TCPDUMP_COLUMNS

DATA = Path(__file__).parent / "data"

settings.register_profile("fast", max_examples=60, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("thorough", max_examples=int(os.environ.get("FUZZ_EXAMPLES", 6000)), deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FUZZ = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))


def sample(name: str) -> bytes:
    return (DATA / name).read_bytes()


def sample_lines(*names: str) -> list[str]:
    # bytes that are not UTF-8 (ping_garbled.txt) are kept, as surrogates
    return sorted({line for name in names
                   for line in sample(name).decode("utf-8", "surrogateescape").splitlines()})


#: What replaces a token of a real line: the values that break naive parsing.
NASTY = ["", " ", "0", "-1", "-0", "1e400", "nan", "NaN", "inf", "-inf", "99999999999999999999999999",
         "9" * 400, "0.", ".5", "1.2.3", "0x10", "é", "\u2028", "\x00", "\ufffd", "\t", "(", ")", ":", "=",
         "[", "]", "{", "}", ",", "\"", "/", "-", "+", "ms", "sec", "bytes", "from", "(DUP!)", "SUM",
         "sender", "receiver", "Mbits/sec", "KBytes", "length", ">", "IP", "IP6", "ARP", "Flags [S]",
         "icmp_seq=", "ttl=", "time=", "\r", "\n"]
_TOKEN = re.compile(r"\d+(?:\.\d+)?|\w+|\s+|.", re.S)


@st.composite
def damaged_text(draw: st.DrawFn, lines: list[str], header: str = "", footer: str = "") -> str:
    """Lines drawn from ``lines``, each maybe cut, with tokens replaced, joined with
    newlines (maybe without the last one), between ``header`` and ``footer`` (each
    maybe left out or damaged too)."""
    chosen = draw(st.lists(st.sampled_from(lines), max_size=25))
    out = []
    for line in chosen:
        tokens = _TOKEN.findall(line)
        for _ in range(draw(st.integers(0, 3))):
            if not tokens:
                break
            at = draw(st.integers(0, len(tokens) - 1))
            tokens[at] = draw(st.sampled_from(NASTY) | st.text(max_size=6))
        line = "".join(tokens)
        if draw(st.booleans()) and draw(st.booleans()):
            line = line[: draw(st.integers(0, len(line)))]
        out.append(line)
    text = "\n".join(out)
    if out and draw(st.booleans()):
        text += "\n"
    if header and draw(st.booleans()):
        text = header[: draw(st.integers(0, len(header)))] + text
    if footer and draw(st.booleans()):
        text += footer[: draw(st.integers(0, len(footer)))]
    return text


junk = st.binary(max_size=3000) | st.text(max_size=2000)


def encoded(text_strategy: st.SearchStrategy[str]) -> st.SearchStrategy[str | bytes]:
    """The text, or its bytes as UTF-8 or Latin-1 (a trace is bytes; ec.trace gives str)."""
    return text_strategy.flatmap(lambda t: st.sampled_from([
        t, t.encode("utf-8", "surrogateescape"), t.encode("latin-1", "replace")]))


def check(frame: object, parser: str, columns: tuple[str, ...] = ()) -> pd.DataFrame:
    assert isinstance(frame, pd.DataFrame)
    assert frame.attrs["parser"] == parser
    malformed = frame.attrs["malformed"]
    assert isinstance(malformed, int) and malformed >= 0
    assert isinstance(frame.attrs["malformed_examples"], list)
    assert len(frame.attrs["malformed_examples"]) <= min(malformed, 5)
    missing = [c for c in columns if c not in frame.columns]
    assert not missing, f"columns {missing} missing from {list(frame.columns)}"
    return frame


# == lines and csv ==================================================================


@FUZZ
@given(junk)
def test_lines_never_crashes(data):
    frame = check(parse_lines(data), "lines", ("line", "text"))
    text = data if isinstance(data, str) else data.decode("utf-8", "replace")
    assert len(frame) == len(text.split("\n")) - (text.endswith("\n") or text == "")


CSV_CELLS = st.text(alphabet=st.sampled_from(list(',"\n\r\t ;a1.-eé\x00')), max_size=12) \
    | st.sampled_from(NASTY)


@FUZZ
@given(junk | encoded(st.lists(CSV_CELLS, max_size=60).map("".join)))
def test_csv_never_crashes(data):
    check(parse_csv(data), "csv")


# == ping =============================================================================

PING_SAMPLES = ("ping_timestamps.txt", "ping_hostname.txt", "ping_ipv6.txt", "ping_no_answer.txt",
                "ping_unreachable.txt", "ping_garbled.txt", "ping_truncated.txt", "ping_quiet.txt")
PING_LINES = sample_lines(*PING_SAMPLES)
PING_HEADER = "PING 127.0.0.1 (127.0.0.1) 56(84) bytes of data.\n"
PING_FOOTER = ("\n--- 127.0.0.1 ping statistics ---\n5 packets transmitted, 5 received, +1 duplicates, "
               "0% packet loss, time 804ms\nrtt min/avg/max/mdev = 0.040/0.046/0.051/0.004 ms\n")


@FUZZ
@given(junk | encoded(damaged_text(PING_LINES, PING_HEADER, PING_FOOTER)))
def test_ping_never_crashes(data):
    frame = check(parse_ping(data), "ping", PING_COLUMNS)
    assert list(frame.columns) == list(PING_COLUMNS)
    summary = frame.attrs["summary"]
    assert summary is None or isinstance(summary, dict)


@FUZZ
@given(damaged_text(PING_LINES))
def test_ping_rows_and_malformed_account_for_every_line(text):
    """Every non-blank line is either a row or counted as malformed (header and
    statistics aside), whichever path (fast or full grammar) read it."""
    assume(" ping statistics ---" not in text and not text.startswith("PING "))
    frame = parse_ping(text)
    nonblank = sum(1 for line in text.split("\n") if line)
    assert len(frame) + frame.attrs["malformed"] == nonblank


# == iperf3 ===========================================================================

IPERF3_JSON = [json.loads(sample(name)) for name in (
    "iperf3_tcp_client.json", "iperf3_tcp_server.json", "iperf3_udp_client.json",
    "iperf3_reverse_client.json", "iperf3_error.json")]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
    | st.sampled_from([2**70, -(2**70), 10**30, 1e308, -1e308, float("nan"), float("inf"), "", "nan"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["streams", "intervals", "sum", "socket", "start", "end", "seconds", "bytes",
                         "bits_per_second", "retransmits", "sender", "omitted", "test_start", "sum_sent",
                         "sum_received", "error", "x"]) | st.text(max_size=5), inner, max_size=5),
    max_leaves=20,
)


@st.composite
def damaged_report(draw: st.DrawFn) -> str:
    """A real iperf3 JSON report with a few subtrees replaced by any JSON value, maybe
    several reports in a row, maybe cut."""
    reports = []
    for _ in range(draw(st.integers(1, 2))):
        report = json.loads(json.dumps(draw(st.sampled_from(IPERF3_JSON))))
        for _ in range(draw(st.integers(0, 4))):
            node = report  # walk down a few levels, then replace what is there
            for _ in range(draw(st.integers(0, 6))):
                children = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
                if not children:
                    break
                key, child = draw(st.sampled_from(children))
                if isinstance(child, (dict, list)) and child and draw(st.booleans()):
                    node = child
                    continue
                node[key] = draw(json_values)
                break
        reports.append(json.dumps(report, indent=draw(st.sampled_from([None, 2]))))
    text = "\n".join(reports)
    if draw(st.booleans()):
        text = text[: draw(st.integers(0, len(text)))]
    return text


IPERF3_LINES = sample_lines("iperf3_tcp_client.txt", "iperf3_udp_client.txt")


@FUZZ
@given(junk | encoded(damaged_report()) | json_values.map(json.dumps))
def test_iperf3_json_never_crashes(data):
    frame = check(parse_iperf3(data), "iperf3", IPERF3_COLUMNS)
    assert list(frame.columns[: len(IPERF3_COLUMNS)]) == list(IPERF3_COLUMNS)


@FUZZ
@given(encoded(damaged_text(IPERF3_LINES)))
def test_iperf3_text_never_crashes(data):
    frame = check(parse_iperf3(data), "iperf3", IPERF3_COLUMNS)
    assert list(frame.columns[: len(IPERF3_COLUMNS)]) == list(IPERF3_COLUMNS)


# == tcpdump ==========================================================================

PCAPS = [sample("tcpdump_lo.pcap")[:3000], sample("tcpdump_any.pcap"),
         sample("tcpdump_truncated.pcap")[:3000]]
LINKTYPES = [0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 147, 65535]


def pcapng_of(pcap: bytes) -> bytes:
    import dpkt

    out = io.BytesIO()
    writer = dpkt.pcapng.Writer(out, snaplen=128, linktype=1)
    for timestamp, packet in dpkt.pcap.Reader(io.BytesIO(pcap)):
        writer.writepkt(packet, ts=timestamp)
    return out.getvalue()


PCAPNGS = [pcapng_of(sample("tcpdump_lo.pcap"))[:3000]]


@st.composite
def damaged_capture(draw: st.DrawFn) -> bytes:
    """A real capture (pcap, or pcapng) with bytes flipped, a header field changed (link
    type, snap length), records of random packets, cut anywhere."""
    if draw(st.booleans()):  # a well-formed file of random packets on any link type
        linktype = draw(st.sampled_from(LINKTYPES))
        order = draw(st.sampled_from(["<", ">"]))
        magic = 0xA1B2C3D4 if draw(st.booleans()) else 0xA1B23C4D
        data = struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, draw(st.integers(0, 2**32 - 1)), linktype)
        for packet in draw(st.lists(st.binary(max_size=120), max_size=12)):
            data += struct.pack(order + "IIII", draw(st.integers(0, 2**32 - 1)),
                                draw(st.integers(0, 2**32 - 1)), len(packet),
                                draw(st.sampled_from([len(packet), len(packet) + 40, 0, 2**31]))) + packet
    else:
        data = bytearray(draw(st.sampled_from(PCAPS + PCAPNGS)))
        for _ in range(draw(st.integers(0, 8))):
            at = draw(st.integers(0, len(data) - 1))
            data[at] = draw(st.integers(0, 255))
        if data[:4] != b"\x0a\x0d\x0d\x0a" and draw(st.booleans()):
            data[20:24] = struct.pack("<I", draw(st.sampled_from(LINKTYPES)))
        data = bytes(data)
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return data


TCPDUMP_LINES = sample_lines("tcpdump_lo.txt", "tcpdump_any.txt", "tcpdump_lo_epoch.txt")


@FUZZ
@given(junk | damaged_capture())
def test_tcpdump_capture_never_crashes(data):
    check(parse_tcpdump(data), "tcpdump", TCPDUMP_COLUMNS)


@FUZZ
@given(encoded(damaged_text(TCPDUMP_LINES)))
def test_tcpdump_text_never_crashes(data):
    check(parse_tcpdump(data), "tcpdump", TCPDUMP_COLUMNS)


@pytest.mark.parametrize("parser", [parse_lines, parse_csv, parse_ping, parse_iperf3, parse_tcpdump])
@pytest.mark.parametrize("data", [b"", "", b"\n", b"\x00", b"\xff" * 10, "\ufeff", "\r\n" * 3],
                         ids=repr)
def test_every_parser_on_the_smallest_inputs(parser, data):
    check(parser(data), parser.__name__.removeprefix("parse_"))


# == what fuzzing found: each crashed the parser before ================================

_REPLY = "64 bytes from 127.0.0.1: icmp_seq=1 ttl=64 time=0.046 ms"
_INTERVAL = "[  5]   0.00-0.50   sec  3.00 MBytes  50.3 Mbits/sec    0   1.12 MBytes"
_UDP_END = "[  5]   0.00-1.00   sec  1.00 MBytes  8.00 Mbits/sec  0.010 ms  {}/100 (0%)  receiver"
_TCPDUMP = "1795547152.234737 IP 127.0.0.1.{} > 127.0.0.1.80: Flags [S], seq 1, win 1, length {}"


def _pcapng_at(timestamp: float) -> bytes:
    import dpkt

    out = io.BytesIO()
    writer = dpkt.pcapng.Writer(out, snaplen=128, linktype=1)
    for _, packet in dpkt.pcap.Reader(io.BytesIO(sample("tcpdump_lo.pcap"))):
        writer.writepkt(packet, ts=timestamp)
        break
    return out.getvalue()


#: (id, parser, input, how many of its lines or records are malformed; None: not checked)
FOUND = [
    ("ping: a number beyond any float", parse_ping, "2" + "0" * 310 + " bytes from  = ttl", 1),
    ("ping: a timestamp of 400 digits", parse_ping, "[" + "9" * 400 + "] " + _REPLY + "\n" + _REPLY, 1),
    ("ping: a timestamp beyond 2262", parse_ping, "[99999999999.5] " + _REPLY + "\n" + _REPLY, 1),
    ("ping: a first field read as a timestamp", parse_ping,
     "\n9999999999999996999 9 bytes from : icmp_seq=1 ttl=6 time=0 ms  \n", 1),
    ("ping: icmp_seq beyond 64 bits", parse_ping, _REPLY.replace("icmp_seq=1", "icmp_seq=" + "9" * 30), 1),
    ("ping: an error line with icmp_seq beyond 64 bits", parse_ping,
     "From 127.0.0.3 icmp_seq=" + "9" * 30 + " Destination Host Unreachable\n" + _REPLY, 1),
    ("ping: sources that look like numbers", parse_ping, " bytes from 0=  ttl", 1),
    ("iperf3: start is true", parse_iperf3, '{"start": true, "end": 5}', 0),
    ("iperf3: intervals is true", parse_iperf3, '{"intervals": true}', 0),
    ("iperf3: streams is a number", parse_iperf3, '{"intervals": [{"streams": 5}, 7]}', 2),
    ("iperf3: a stream that is a list", parse_iperf3,
     '{"intervals": [{"streams": [[1], {"socket": 5}]}]}', 1),
    ("iperf3: values that are not numbers", parse_iperf3,
     '{"intervals": [{"streams": [{"socket": "x", "bytes": "many", "start": [], "sender": "yes"}]}]}', 1),
    ("iperf3: an integer beyond 64 bits", parse_iperf3,
     '{"intervals": [{"streams": [{"socket": 5, "bytes": ' + "9" * 30 + "}]}]}", 1),
    ("iperf3: end streams that are numbers", parse_iperf3, '{"end": {"streams": [5], "sum": []}}', 0),
    ("iperf3: nested too deeply", parse_iperf3, '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}", 1),
    ("iperf3: a number of 5,000 digits", parse_iperf3, '{"end": ' + "9" * 5000 + "}", 1),
    ("iperf3 text: a transfer of 400 digits", parse_iperf3, _INTERVAL.replace("3.00", "9" * 400), 1),
    ("iperf3 text: lost packets of 5,000 digits", parse_iperf3, _UDP_END.format("9" * 5000), None),
    ("iperf3 text: a stream beyond 64 bits", parse_iperf3,
     _INTERVAL.replace("[  5]", "[" + "9" * 30 + "]"), 1),
    ("tcpdump text: a time beyond 2262", parse_tcpdump,
     _TCPDUMP.format(1, 0).replace("1795547152", "99999999999"), 0),
    ("tcpdump text: a port and a length beyond 64 bits", parse_tcpdump,
     _TCPDUMP.format("9" * 30, "9" * 30), 0),
    ("tcpdump: a pcapng time beyond 2262", parse_tcpdump, _pcapng_at(1e12), 1),
]


@pytest.mark.parametrize(("parser", "data", "malformed"), [c[1:] for c in FOUND], ids=[c[0] for c in FOUND])
def test_what_fuzzing_found(parser, data, malformed):
    frame = check(parser(data), parser.__name__.removeprefix("parse_"))
    if malformed is not None:
        assert frame.attrs["malformed"] == malformed, frame.attrs["malformed_examples"]
