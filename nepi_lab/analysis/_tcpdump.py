"""The ``tcpdump`` parser: one row per packet, from a capture file or from text output.

Columns
-------
time : datetime64[ns, UTC] (capture files, ``-tt`` text), or timedelta64[ns]
    When the packet was seen.  tcpdump's default text shows only the time of day:
    it becomes a timedelta since midnight (``attrs["time"] == "time of day"``).
source, destination : str
    IP addresses (the sender and target addresses for ARP); NA for other frames.
protocol : str
    ``TCP``, ``UDP``, ``ICMP``, ``ICMP6``, ``ARP``, ... (from text output: what the
    line shows; UDP payloads that tcpdump decodes, such as DNS, show as ``IP``/``IP6``).
source_port, destination_port : Int64
    For TCP and UDP.
length : Int64
    What tcpdump prints as ``length``: the TCP or UDP payload, or the IP payload for
    other protocols, so that a frame read from the capture and one read from the
    text output of the same capture agree.
ip_length : Int64
    (capture files only) the size of the whole IP packet, as its header says.

Capture files (pcap, both byte orders, micro- and nanosecond; pcapng) are read with
`dpkt <https://dpkt.readthedocs.io>`_, which splits the file into packets; the
headers are then decoded for all packets at once with numpy (Ethernet, Linux
cooked v1 and v2 as ``tcpdump -i any`` writes, raw IP, BSD loopback, PPP as ns-3's
point-to-point devices write; IPv4 with
options, IPv6, ARP, TCP, UDP, ICMP).  A capture cut short (the last packet
truncated by a crash, not by the snap length) counts as malformed.
"""

from __future__ import annotations

import io
import ipaddress
import re
import struct
from typing import TYPE_CHECKING, Any

from ._common import as_bytes, as_text, example, finish, floats, nullable_integers, text_dtype, utc_times

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

COLUMNS = ("time", "source", "destination", "protocol", "source_port", "destination_port", "length")

_PCAPNG = b"\x0a\x0d\x0d\x0a"
_PCAP_MAGICS = (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d", _PCAPNG)
_PROTOCOLS = {1: "ICMP", 2: "IGMP", 6: "TCP", 17: "UDP", 41: "IPv6", 47: "GRE", 50: "ESP", 51: "AH",
              58: "ICMP6", 89: "OSPF", 103: "PIM", 112: "VRRP", 132: "SCTP"}
_ETHERTYPES = {0x0806: "ARP", 0x8035: "RARP", 0x88CC: "LLDP", 0x8847: "MPLS", 0x8100: "802.1Q"}
#: How many bytes of each packet the decoder looks at: the longest link header (20,
#: Linux cooked v2) + a VLAN tag + the longest IPv4 header (60) + TCP ports and offset.
_WINDOW = 20 + 4 + 60 + 16

_TEXT = re.compile(
    r"""^(?P<time>\d{4}-\d\d-\d\d\ \d\d:\d\d:\d\d(?:\.\d+)?|\d\d:\d\d:\d\d(?:\.\d+)?|\d+\.\d+)
    \s+(?:(?P<interface>\S+)\s+(?:In|Out|M|B|P)\s+)?
    (?:
        (?P<family>IP6?)\ (?P<source>(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]*:[0-9A-Fa-f:]*|[^\s>]+?)
            (?:\.(?P<source_port>\d+|[A-Za-z][\w-]*))?
            \ >\ (?P<destination>(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]*:[0-9A-Fa-f:]*|[^\s>]+?)
            (?:\.(?P<destination_port>\d+|[A-Za-z][\w-]*))?:\ (?P<info>.*?)
      | (?P<arp>ARP),\ (?P<arp_info>.*?)
      | (?P<other>[\w./-]+),?\ (?P<other_info>.*?)
    )\s*$""",
    re.X,
)


def parse_tcpdump(data: str | bytes) -> pd.DataFrame:
    """Parse a capture file (pcap or pcapng) or tcpdump's text output (see the module docstring).

    Example
    -------
    >>> frame = parse_tcpdump(open("capture.pcap", "rb").read())     # doctest: +SKIP
    >>> frame.groupby("protocol").length.sum()                         # doctest: +SKIP
    """
    raw = as_bytes(data)
    if raw[:4] in _PCAP_MAGICS:
        return _parse_capture(raw)
    return _parse_text(as_text(data))


# -- capture files --------------------------------------------------------------


def _read_packets(raw: bytes) -> tuple[list[float], list[bytes], int, int, list[str]]:
    """(timestamps, packets, link type, snap length, problems) read with dpkt."""
    try:
        import dpkt
    except ImportError as exc:  # a dependency of nepi_lab: only a broken install lands here
        raise ImportError("reading capture files needs dpkt: pip install dpkt") from exc

    problems: list[str] = []
    try:
        reader = dpkt.pcap.UniversalReader(io.BytesIO(raw))
    except (ValueError, dpkt.dpkt.UnpackError) as exc:
        return [], [], 0, 0, [f"not a readable capture file: {exc}"]
    times: list[float] = []
    packets: list[bytes] = []
    try:
        for timestamp, packet in reader:
            times.append(timestamp)
            packets.append(packet)
    except (dpkt.dpkt.NeedData, dpkt.dpkt.UnpackError, ValueError, struct.error) as exc:
        problems.append(f"packet {len(packets) + 1}: the capture is cut or damaged here "
                        f"({str(exc) or type(exc).__name__})")
    snaplen = getattr(reader, "snaplen", 0) or 0
    if not problems and raw[:4] == _PCAPNG:
        if _pcapng_cut(raw):  # dpkt leaves a cut last block out without a word
            problems.append(f"packet {len(packets) + 1}: the capture is cut or damaged here (the file "
                            f"ends inside a block; the packet is left out)")
    elif not problems and _cut_at_end(raw, packets):  # dpkt returns the cut last packet short
        problems.append(f"packet {len(packets)}: the capture is cut or damaged here (the file ends "
                        f"inside it; the packet is left out)")
        times.pop()
        packets.pop()
    return times, packets, reader.datalink(), snaplen, problems


def _pcapng_cut(raw: bytes) -> bool:
    """Whether a pcapng file ends inside a block: every block ends with its own length."""
    if len(raw) < 12:
        return True
    order = "<" if raw[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
    (length,) = struct.unpack_from(order + "I", raw, len(raw) - 4)
    if length < 12 or length > len(raw) or length % 4:
        return True
    return struct.unpack_from(order + "I", raw, len(raw) - length + 4)[0] != length


def _cut_at_end(raw: bytes, packets: list[bytes]) -> bool:
    """Whether a classic pcap file ends inside its last record."""
    if not packets:
        return False
    order = "<" if raw[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    last = 24 + 16 * (len(packets) - 1) + sum(map(len, packets[:-1]))
    if last + 16 > len(raw):
        return True
    (caplen,) = struct.unpack_from(order + "I", raw, last + 8)
    return caplen > len(packets[-1])


def _parse_capture(raw: bytes) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    times, packets, linktype, snaplen, problems = _read_packets(raw)
    n = len(packets)
    lengths = np.fromiter(map(len, packets), dtype=np.int64, count=n)
    window = _window(packets, lengths)
    decoded = _decode(window, lengths, linktype)
    # a packet shorter than both the snap length and what its IP header announces was cut
    expected = decoded.pop("_captured_expected")
    cut = (expected > 0) & (lengths < np.minimum(expected, snaplen or np.iinfo(np.int64).max))
    for index in np.flatnonzero(cut)[:5]:
        problems.append(f"packet {index + 1}: {lengths[index]} bytes captured of {expected[index]}")
    malformed = int(cut.sum()) + sum(1 for p in problems if "cut or damaged" in p or "not a readable" in p)
    time, outside = utc_times(times)
    for index in np.flatnonzero(outside)[:5]:  # a damaged record header: kept, without a time
        problems.append(f"packet {index + 1}: its time, {times[index]!r} s, is beyond any timestamp")
    malformed += int(outside.sum())
    frame = pd.DataFrame({"time": time, **decoded})
    return finish(frame, "tcpdump", malformed, problems, linktype=linktype, time="UTC")


def _window(packets: list[bytes], lengths: np.ndarray) -> np.ndarray:
    """The first :data:`_WINDOW` bytes of every packet, as an (n, _WINDOW) array (zero-padded)."""
    import numpy as np

    n = len(packets)
    if n == 0:
        return np.zeros((0, _WINDOW), dtype=np.uint8)
    flat = np.frombuffer(b"".join(packets), dtype=np.uint8)
    offsets = np.zeros(n, dtype=np.int64)
    np.cumsum(lengths[:-1], out=offsets[1:])
    columns = np.arange(_WINDOW)
    inside = columns[None, :] < lengths[:, None]
    index = np.where(inside, offsets[:, None] + columns[None, :], 0)
    return np.where(inside, flat[index] if len(flat) else 0, 0).astype(np.uint8)


def _u16(window: np.ndarray, at: np.ndarray) -> np.ndarray:
    import numpy as np

    rows = np.arange(len(window))
    at = np.clip(at, 0, window.shape[1] - 2)
    return (window[rows, at].astype(np.int64) << 8) | window[rows, at + 1]


def _decode(window: np.ndarray, lengths: np.ndarray, linktype: int) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    n = len(window)
    rows = np.arange(n)
    zeros = np.zeros(n, dtype=np.int64)
    # where the network layer starts, and what it is (an ethertype)
    if linktype == 1:  # Ethernet
        ethertype = _u16(window, zeros + 12)
        tagged = ethertype == 0x8100
        net = np.where(tagged, 18, 14)
        ethertype = np.where(tagged, _u16(window, zeros + 16), ethertype)
    elif linktype == 113:  # Linux cooked v1 (tcpdump -i any, libpcap < 1.10)
        ethertype, net = _u16(window, zeros + 14), zeros + 16
    elif linktype == 276:  # Linux cooked v2 (tcpdump -i any)
        ethertype, net = _u16(window, zeros), zeros + 20
    elif linktype in (0, 108):  # BSD loopback: a 4-byte address family, host or network order
        family = np.maximum(window[:, 0], window[:, 3]).astype(np.int64)
        ethertype = np.select([family == 2, np.isin(family, (10, 24, 28, 30))], [0x0800, 0x86DD], 0)
        net = zeros + 4
    elif linktype in (9, 50):  # PPP (ns-3's point-to-point devices): [0xff 0x03] then a 2-byte protocol
        hdlc = (window[:, 0] == 0xFF) & (window[:, 1] == 0x03)
        at = np.where(hdlc, 2, 0)
        protocol = _u16(window, at)
        ethertype = np.select([protocol == 0x0021, protocol == 0x0057], [0x0800, 0x86DD], 0)
        net = at + 2
    elif linktype in (12, 14, 101, 228, 229):  # raw IP
        version = window[:, 0] >> 4
        ethertype = np.select([version == 4, version == 6], [0x0800, 0x86DD], 0)
        net = zeros
    else:
        ethertype, net = zeros - 1, zeros
    first = window[rows, np.clip(net, 0, _WINDOW - 1)]
    ipv4 = (ethertype == 0x0800) & (first >> 4 == 4)
    ipv6 = (ethertype == 0x86DD) & (first >> 4 == 6)
    arp = ethertype == 0x0806
    header = np.where(ipv4, (first & 0x0F).astype(np.int64) * 4, 40)
    ip_length = np.select([ipv4, ipv6], [_u16(window, net + 2), _u16(window, net + 4) + 40], 0)
    proto = np.select([ipv4, ipv6], [window[rows, np.clip(net + 9, 0, _WINDOW - 1)],
                                     window[rows, np.clip(net + 6, 0, _WINDOW - 1)]], -1).astype(np.int64)
    transport = net + header
    tcp = (ipv4 | ipv6) & (proto == 6)
    udp = (ipv4 | ipv6) & (proto == 17)
    ports = tcp | udp
    in_window = transport + 13 < _WINDOW
    offset = np.where(tcp & in_window, (window[rows, np.clip(transport + 12, 0, _WINDOW - 1)] >> 4) * 4, 0)
    payload = ip_length - header
    length = np.select([tcp, udp, ipv4 | ipv6, arp], [payload - offset, payload - 8, payload, 28], -1)
    # IP addresses: few distinct ones, so format each once and index
    source = np.full(n, None, dtype=object)
    destination = np.full(n, None, dtype=object)
    _addresses(window, net, ipv4, 12, 4, source)
    _addresses(window, net, ipv4, 16, 4, destination)
    _addresses(window, net, ipv6, 8, 16, source)
    _addresses(window, net, ipv6, 24, 16, destination)
    _addresses(window, net, arp, 14, 4, source)
    _addresses(window, net, arp, 24, 4, destination)
    names = np.select(
        [ipv4 | ipv6, ethertype >= 0],
        [np.vectorize(_protocol_name, otypes=[object])(proto) if n else proto,
         np.vectorize(_ethertype_name, otypes=[object])(ethertype) if n else ethertype],
        "unknown",
    ) if n else np.empty(0, dtype=object)
    link_bytes = np.where(ipv4 | ipv6, net + ip_length, 0)

    def nullable(values: np.ndarray, valid: np.ndarray) -> pd.arrays.IntegerArray:
        return pd.arrays.IntegerArray(np.where(valid, values, 0).astype(np.int64), ~valid)

    sane = ~((ipv4 | ipv6) & (ip_length < header))
    return {
        "source": pd.array(source, dtype=text_dtype()),
        "destination": pd.array(destination, dtype=text_dtype()),
        "protocol": pd.array(names, dtype=text_dtype()),
        "source_port": nullable(_u16(window, transport), ports & in_window),
        "destination_port": nullable(_u16(window, transport + 2), ports & in_window),
        "length": nullable(length, (length >= 0) & sane),
        "ip_length": nullable(ip_length, (ipv4 | ipv6) & sane),
        "_captured_expected": link_bytes,
    }


def _addresses(window: np.ndarray, net: np.ndarray, mask: np.ndarray, at: int, size: int,
               out: np.ndarray) -> None:
    """Write the formatted ``size``-byte address at ``net + at`` of the masked rows into ``out``."""
    import numpy as np

    if not mask.any():
        return
    rows = np.flatnonzero(mask)
    columns = np.clip(net[rows, None] + at + np.arange(size)[None, :], 0, _WINDOW - 1)
    raw = np.ascontiguousarray(window[rows[:, None], columns])
    keys = raw.view(f"V{size}").ravel()
    unique, inverse = np.unique(keys, return_inverse=True)
    text = np.array([str(ipaddress.ip_address(bytes(u))) for u in unique], dtype=object)
    out[rows] = text[inverse.ravel()]


def _protocol_name(number: int) -> str:
    return _PROTOCOLS.get(int(number), f"IP proto {int(number)}")


def _ethertype_name(ethertype: int) -> str:
    return _ETHERTYPES.get(int(ethertype), f"ethertype 0x{int(ethertype):04x}")


# -- text output -----------------------------------------------------------------


def _parse_text(text: str) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    lines = pd.Series(text.splitlines(), dtype=text_dtype())
    found = lines.str.extract(_TEXT)
    matched = found["time"].notna().to_numpy()
    blank = lines.str.strip().eq("").to_numpy(dtype=bool, na_value=True)
    malformed = ~matched & ~blank
    numbers = np.flatnonzero(malformed) + 1
    examples = [example(n, t) for n, t in zip(numbers[:5], lines[malformed].head(5), strict=False)]
    found = found[matched]
    info = found["info"].fillna("")
    ip6 = found["family"] == "IP6"
    protocol = np.select(
        [info.str.startswith("Flags [").to_numpy(dtype=bool),
         info.str.match(r"UDP\b").to_numpy(dtype=bool),
         info.str.startswith("ICMP6").to_numpy(dtype=bool),
         info.str.startswith("ICMP").to_numpy(dtype=bool),
         found["arp"].notna().to_numpy(),
         found["family"].notna().to_numpy()],
        ["TCP", "UDP", "ICMP6", "ICMP", "ARP", np.where(ip6, "IP6", "IP")],
        found["other"].to_numpy(dtype=object, na_value=None),
    )
    all_info = info.where(found["arp"].isna(), found["arp_info"]).where(found["other"].isna(),
                                                                        found["other_info"])
    length = all_info.str.extract(r".*\blength (\d+)", expand=False)
    arp = found["arp"].notna()
    source = found["source"].where(~arp, found["arp_info"].str.extract(r"tell (\S+?),", expand=False))
    destination = found["destination"].where(
        ~arp, found["arp_info"].str.extract(r"who-has (\S+)|Reply (\S+) is-at", expand=True).bfill(axis=1)[0])
    time, kind = _times(found["time"])
    frame = pd.DataFrame({
        "time": time.array,
        "source": pd.array(source.to_numpy(dtype=object, na_value=None), dtype=text_dtype()),
        "destination": pd.array(destination.to_numpy(dtype=object, na_value=None), dtype=text_dtype()),
        "protocol": pd.array(protocol, dtype=text_dtype()),
        "source_port": nullable_integers(found["source_port"]),
        "destination_port": nullable_integers(found["destination_port"]),
        "length": nullable_integers(length),
    })
    interface = found["interface"]
    if interface.notna().any():
        frame["interface"] = pd.array(interface.to_numpy(dtype=object, na_value=None), dtype=text_dtype())
    return finish(frame, "tcpdump", int(malformed.sum()), examples, time=kind)


def _times(column: pd.Series) -> tuple[Any, str]:
    """The time column in the form tcpdump printed it: epoch, date and time, or time of day."""
    import pandas as pd

    column = column.reset_index(drop=True)
    sample = column.iloc[0] if len(column) else "0.0"
    if ":" not in sample:  # -tt
        times, _ = utc_times(floats(column))  # a time beyond the year 2261 is NaT, as one unreadable
        return pd.Series(times), "UTC"
    if "-" in sample:  # -tttt: local date and time, as the capturing machine printed it
        return pd.to_datetime(column, errors="coerce").astype("datetime64[ns]"), "local"
    return pd.to_timedelta(column, errors="coerce").astype("timedelta64[ns]"), "time of day"
