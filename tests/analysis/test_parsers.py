"""The built-in parsers on saved real outputs of ping, iperf3 and tcpdump (see
``data/make_samples.sh``), including truncated and garbled ones, and the registry."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

from nepi_lab import InvalidInputError, NepiError
from nepi_lab.analysis import (
    UnknownParserError,
    _ping,
    default_parser,
    default_parsers,
    get_parser,
    parse_csv,
    parse_iperf3,
    parse_lines,
    parse_ping,
    parse_tcpdump,
    parser_names,
    register_parser,
    set_default_parser,
    unregister_parser,
)
from nepi_lab.analysis._common import Lines


def read(data, name: str) -> bytes:
    return (data / name).read_bytes()


# == ping =========================================================================


def test_ping_with_timestamps(data):
    frame = parse_ping(read(data, "ping_timestamps.txt"))
    assert list(frame.columns) == list(_ping.COLUMNS)
    assert frame["seq"].tolist() == [1, 2, 3, 4, 5]
    assert frame["rtt_ms"].tolist() == [0.046, 0.042, 0.051, 0.040, 0.046]
    assert (frame["ttl"] == 64).all() and (frame["bytes"] == 64).all()
    assert (frame["source"] == "127.0.0.1").all() and not frame["duplicate"].any()
    assert frame["error"].isna().all()
    assert str(frame["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert frame["timestamp"].iloc[0] == pd.Timestamp(1795547139.821640, unit="s", tz="UTC").round("us")
    assert frame["timestamp"].is_monotonic_increasing
    assert frame.attrs["malformed"] == 0 and frame.attrs["malformed_examples"] == []
    assert frame.attrs["summary"] == {
        "transmitted": 5, "received": 5, "duplicates": 0, "errors": 0, "loss_percent": 0.0, "time_ms": 814,
        "rtt_min_ms": 0.04, "rtt_avg_ms": 0.045, "rtt_max_ms": 0.051, "rtt_mdev_ms": 0.003,
    }
    assert frame.attrs["target"] == "127.0.0.1"


def test_ping_dtypes_do_not_depend_on_the_content(data):
    """Frames from different outputs concatenate without changing dtype."""
    frames = [parse_ping(read(data, name)) for name in
              ("ping_timestamps.txt", "ping_hostname.txt", "ping_unreachable.txt", "ping_quiet.txt")]
    frames.append(parse_ping(""))
    for frame in frames[1:]:
        pdt.assert_series_equal(frame.dtypes, frames[0].dtypes)
    combined = pd.concat(frames, ignore_index=True)
    pdt.assert_series_equal(combined.dtypes, frames[0].dtypes)


def test_ping_of_a_host_name_gives_the_address(data):
    frame = parse_ping(read(data, "ping_hostname.txt"))
    assert len(frame) == 3 and (frame["source"] == "127.0.0.1").all()
    assert frame["timestamp"].isna().all()  # no -D
    assert frame.attrs["target"] == "localhost"


def test_ping_ipv6(data):
    frame = parse_ping(read(data, "ping_ipv6.txt"))
    assert frame["source"].tolist() == ["::1"] * 3 and frame["rtt_ms"].iloc[0] == 0.253
    assert frame.attrs["target"] == "::1"


def test_ping_without_answers(data):
    frame = parse_ping(read(data, "ping_no_answer.txt"))
    assert frame["error"].tolist() == ["no answer yet"] * 2
    assert frame["seq"].tolist() == [1, 2] and frame["rtt_ms"].isna().all()
    assert frame.attrs["summary"]["loss_percent"] == 100.0 and frame.attrs["summary"]["rtt_avg_ms"] is None
    assert frame.attrs["malformed"] == 0


def test_ping_unreachable(data):
    frame = parse_ping(read(data, "ping_unreachable.txt"))
    assert frame["error"].tolist() == ["Destination Host Unreachable"] * 3
    assert frame["source"].tolist() == ["127.0.0.3"] * 3 and frame["ttl"].isna().all()
    assert frame.attrs["summary"]["errors"] == 3 and frame.attrs["summary"]["received"] == 0


def test_ping_quiet_gives_only_the_summary(data):
    frame = parse_ping(read(data, "ping_quiet.txt"))
    assert frame.empty and list(frame.columns) == list(_ping.COLUMNS)
    assert frame.attrs["summary"]["rtt_max_ms"] == 0.051


def test_ping_cut_short(data):
    """ping killed mid-line: the complete replies, the cut line counted, no summary."""
    frame = parse_ping(read(data, "ping_truncated.txt"))
    assert frame["seq"].tolist() == [1, 2, 3]
    assert frame.attrs["summary"] is None
    assert frame.attrs["malformed"] == 1
    assert frame.attrs["malformed_examples"] == ["line 5: [1795547140.431428] "]


def test_ping_garbled_lines_are_counted_with_their_numbers(data):
    frame = parse_ping(read(data, "ping_garbled.txt"))
    assert frame["seq"].tolist() == [1, 2, 5]
    assert frame["duplicate"].tolist() == [False, True, False]
    assert frame.attrs["malformed"] == 6
    numbers = [e.split(":")[0] for e in frame.attrs["malformed_examples"]]
    assert numbers == ["line 3", "line 5", "line 6", "line 7", "line 8"]
    assert "tim0.042" in frame.attrs["malformed_examples"][0]


def test_ping_reads_bytes_that_are_not_utf8():
    raw = (b"64 bytes from 127.0.0.1: icmp_seq=1 ttl=64 time=0.1 ms\n\xff\xfe\x00junk\n"
           b"64 bytes from 127.0.0.1: icmp_seq=2 ttl=64 time=0.2 ms\n")
    frame = parse_ping(raw)
    assert frame["rtt_ms"].tolist() == [0.1, 0.2] and frame.attrs["malformed"] == 1


@pytest.mark.parametrize("name", ["ping_timestamps.txt", "ping_hostname.txt", "ping_ipv6.txt"])
def test_ping_fast_and_full_grammar_agree(data, name):
    """The C-reader path and the str.extract path read the same replies alike."""
    raw = read(data, name)
    _, (start, stop), first, _ = _ping._split(raw)
    lines = Lines(raw, first, start, stop)
    replies = lines.containing(b" bytes from ")
    numbers, fast = _ping._fast(lines, replies)
    slow_numbers, slow, (bad, _) = _ping._slow(lines, replies)
    assert len(bad) == 0
    np.testing.assert_array_equal(numbers, slow_numbers)
    pdt.assert_frame_equal(fast, slow)


def test_ping_many_lines_with_errors_in_between():
    reply = "[1700000000.{:06d}] 64 bytes from 10.0.0.{}: icmp_seq={} ttl=63 time={}.5 ms\n"
    lines = [reply.format(i, i % 3, i, i % 7) for i in range(20_000)]
    for i in range(500, 20_000, 1000):
        lines[i] = f"[1700000000.{i:06d}] From 10.0.0.9 icmp_seq={i} Destination Net Unreachable\n"
    lines[777] = "garbage\n"
    frame = parse_ping("PING x (x) 56(84) bytes of data.\n" + "".join(lines))
    assert len(frame) == 19_999 and frame.attrs["malformed"] == 1
    assert frame.attrs["malformed_examples"] == ["line 779: garbage"]
    assert frame["seq"].is_monotonic_increasing  # the errors are merged back in line order
    errors = frame[frame["error"].notna()]
    assert len(errors) == 20 and (errors["source"] == "10.0.0.9").all()
    assert frame.loc[frame["seq"] == 3, "source"].item() == "10.0.0.0"
    assert frame.loc[frame["seq"] == 3, "rtt_ms"].item() == 3.5


def test_ping_of_nothing():
    for data in ("", b"", "\n\n"):
        frame = parse_ping(data)
        assert frame.empty and frame.attrs["malformed"] == 0 and frame.attrs["summary"] is None


# == iperf3 =======================================================================


def test_iperf3_tcp_client_json(data):
    report = json.loads(read(data, "iperf3_tcp_client.json"))
    frame = parse_iperf3(read(data, "iperf3_tcp_client.json"))
    assert list(frame.columns[:10]) == ["test", "interval", "stream", "start", "end", "seconds", "bytes",
                                        "bits_per_second", "retransmits", "sender"]
    assert len(frame) == 4 and sorted(frame["stream"].unique()) == [5, 7]
    assert frame["interval"].tolist() == [0, 0, 1, 1]
    first = report["intervals"][0]["streams"][0]
    row = frame.iloc[0]
    assert (row["bytes"], row["bits_per_second"], row["end"]) == (
        first["bytes"], first["bits_per_second"], first["end"])
    assert frame["sender"].all() and str(frame["retransmits"].dtype) == "Int64"
    assert "snd_cwnd" in frame and "rtt" in frame  # what iperf3 adds per stream is kept
    summary = frame.attrs["summary"]
    assert summary["protocol"] == "TCP" and summary["streams"] == 2
    assert summary["sent_bits_per_second"] == report["end"]["sum_sent"]["bits_per_second"]
    assert summary["received_bytes"] == report["end"]["sum_received"]["bytes"]
    assert len(summary["per_stream"]) == 2 and summary["error"] is None
    assert frame.attrs["malformed"] == 0


def test_iperf3_udp_reverse_and_server(data):
    udp = parse_iperf3(read(data, "iperf3_udp_client.json"))
    assert udp["packets"].tolist() == [10, 10] and udp["retransmits"].isna().all()
    assert udp.attrs["summary"]["protocol"] == "UDP" and udp.attrs["summary"]["lost_percent"] == 0
    reverse = parse_iperf3(read(data, "iperf3_reverse_client.json"))
    assert not reverse["sender"].any() and reverse.attrs["summary"]["reverse"] is True
    server = parse_iperf3(read(data, "iperf3_tcp_server.json"))
    assert len(server) == 2 and not server["sender"].any()


def test_iperf3_several_reports_are_several_tests(data):
    udp, tcp = read(data, "iperf3_udp_client.json"), read(data, "iperf3_tcp_client.json")
    frame = parse_iperf3(udp + b"\n" + tcp)
    assert frame.groupby("test").size().tolist() == [2, 4]
    assert [s["protocol"] for s in frame.attrs["summaries"]] == ["UDP", "TCP"]


def test_iperf3_error_report(data):
    frame = parse_iperf3(read(data, "iperf3_error.json"))
    assert frame.empty and frame.attrs["error"] == "unable to connect to server: Connection refused"
    assert frame.attrs["malformed"] == 0


def test_iperf3_cut_report(data):
    frame = parse_iperf3(read(data, "iperf3_truncated.json"))
    assert frame.empty and frame.attrs["malformed"] == 1
    assert frame.attrs["malformed_examples"][0].startswith("line 112: ")
    assert list(frame.columns) == ["test", "interval", "stream", "start", "end", "seconds", "bytes",
                                   "bits_per_second", "retransmits", "sender"]


def test_iperf3_text_tcp(data):
    frame = parse_iperf3(read(data, "iperf3_tcp_client.txt"))
    assert len(frame) == 4 and frame["stream"].tolist() == [5, 7, 5, 7]
    assert frame["interval"].tolist() == [0, 0, 1, 1]
    assert frame["bytes"].tolist() == [3 * 1024**2] * 4
    assert frame["bits_per_second"].tolist() == [50.3e6] * 4
    assert frame["retransmits"].tolist() == [0] * 4 and frame["snd_cwnd"].iloc[0] == round(1.12 * 1024**2)
    summary = frame.attrs["summary"]
    assert summary["sent_bits_per_second"] == 101e6 and summary["received_bytes"] == 12 * 1024**2
    assert summary["retransmits"] == 0 and summary["streams"] == 2
    assert frame.attrs["malformed"] == 0


def test_iperf3_text_udp(data):
    frame = parse_iperf3(read(data, "iperf3_udp_client.txt"))
    assert frame["packets"].tolist() == [10, 10] and frame["retransmits"].isna().all()
    assert frame.attrs["summary"]["jitter_ms"] == 0.004 and frame.attrs["summary"]["lost_packets"] == 0


def test_iperf3_garbled_text_lines_are_counted(data):
    lines = read(data, "iperf3_tcp_client.txt").decode().splitlines()
    lines[4] = lines[4][:30]  # an interval line cut short
    lines.insert(2, "\x00 noise noise")
    frame = parse_iperf3("\n".join(lines))
    assert len(frame) == 3 and frame.attrs["malformed"] == 2
    assert [e.split(":")[0] for e in frame.attrs["malformed_examples"]] == ["line 3", "line 6"]


def test_iperf3_json_and_text_dtypes_agree(data):
    json_frame = parse_iperf3(read(data, "iperf3_tcp_client.json"))
    text_frame = parse_iperf3(read(data, "iperf3_tcp_client.txt"))
    common = list(json_frame.columns[:8])
    pdt.assert_series_equal(json_frame[common].dtypes, text_frame[common].dtypes)


# == tcpdump ======================================================================


def test_tcpdump_capture_on_lo(data):
    frame = parse_tcpdump(read(data, "tcpdump_lo.pcap"))
    assert frame.attrs["linktype"] == 1 and frame.attrs["malformed"] == 0
    assert frame["protocol"].value_counts().to_dict() == {"TCP": 316, "UDP": 27, "ICMP": 6, "ICMP6": 4}
    icmp = frame[frame["protocol"] == "ICMP"]
    assert (icmp["length"] == 64).all() and (icmp["ip_length"] == 84).all()
    assert (icmp["source"] == "127.0.0.1").all() and icmp["source_port"].isna().all()
    assert set(frame.loc[frame["protocol"] == "ICMP6", "destination"]) == {"::1"}
    udp = frame[frame["protocol"] == "UDP"]
    assert 5399 in set(udp["destination_port"]) and (udp["length"] == 500).sum() > 0
    tcp = frame[frame["protocol"] == "TCP"]
    assert set(tcp["length"]) >= {0, 1000} and str(frame["time"].dtype) == "datetime64[ns, UTC]"
    assert frame["time"].is_monotonic_increasing


def test_tcpdump_capture_and_its_text_agree(data):
    """The frame read from the capture equals the one read from ``tcpdump -r -tt`` of it."""
    capture = parse_tcpdump(read(data, "tcpdump_lo.pcap"))
    text = parse_tcpdump(read(data, "tcpdump_lo_epoch.txt"))
    columns = ["time", "source", "destination", "protocol", "source_port", "destination_port", "length"]
    pdt.assert_frame_equal(capture[columns], text[columns])
    assert text.attrs["time"] == "UTC" and text.attrs["malformed"] == 0


def test_tcpdump_text_with_time_of_day(data):
    frame = parse_tcpdump(read(data, "tcpdump_lo.txt"))
    assert frame.attrs["time"] == "time of day"
    assert frame["time"].iloc[0] == pd.Timedelta("19:05:52.234737")
    epoch = parse_tcpdump(read(data, "tcpdump_lo_epoch.txt"))
    pdt.assert_frame_equal(frame.drop(columns="time"), epoch.drop(columns="time"))


def test_tcpdump_any_interface(data):
    """``-i any`` writes Linux cooked v2 frames; its text shows the interface."""
    frame = parse_tcpdump(read(data, "tcpdump_any.pcap"))
    assert frame.attrs["linktype"] == 276
    assert frame["protocol"].tolist() == ["ICMP"] * 6 and (frame["length"] == 64).all()
    text = parse_tcpdump(read(data, "tcpdump_any.txt"))
    assert text["interface"].tolist() == ["lo"] * 6
    assert text["source"].tolist() == frame["source"].tolist()


def test_tcpdump_cut_capture(data):
    full = parse_tcpdump(read(data, "tcpdump_lo.pcap"))
    cut = parse_tcpdump(read(data, "tcpdump_truncated.pcap"))
    assert cut.attrs["malformed"] == 1
    assert "cut or damaged" in cut.attrs["malformed_examples"][0]
    pdt.assert_frame_equal(cut, full.iloc[: len(cut)])


def test_tcpdump_pcapng(data):
    import dpkt

    packets = list(dpkt.pcap.Reader(io.BytesIO(read(data, "tcpdump_lo.pcap"))))
    out = io.BytesIO()
    writer = dpkt.pcapng.Writer(out, snaplen=128, linktype=1)
    for timestamp, packet in packets:
        writer.writepkt(packet, ts=timestamp)
    frame = parse_tcpdump(out.getvalue())
    expected = parse_tcpdump(read(data, "tcpdump_lo.pcap"))
    pdt.assert_frame_equal(frame, expected)
    for cut in (4, 50, 90):  # inside the last block: counted, the rest read
        frame = parse_tcpdump(out.getvalue()[:-cut])
        assert frame.attrs["malformed"] == 1 and "cut or damaged" in frame.attrs["malformed_examples"][0]
        pdt.assert_frame_equal(frame, expected.iloc[:-1])


def test_tcpdump_of_garbage():
    frame = parse_tcpdump(b"\xd4\xc3\xb2\xa1 this is no capture")
    assert frame.empty and frame.attrs["malformed"] == 1
    text = "12:00:00.000001 IP 10.0.0.1.80 > 10.0.0.2.5000: Flags [S], length 0\nnot a packet\n"
    frame = parse_tcpdump(text)
    assert frame["protocol"].tolist() == ["TCP"] and frame["source_port"].tolist() == [80]
    assert frame.attrs["malformed"] == 1 and frame.attrs["malformed_examples"] == ["line 2: not a packet"]


# == lines and csv ================================================================


def test_lines():
    frame = parse_lines("a\nb b\n\nlast")
    assert frame["line"].tolist() == [1, 2, 3, 4] and frame["text"].tolist() == ["a", "b b", "", "last"]
    assert parse_lines(b"").empty


def test_csv_counts_bad_lines():
    frame = parse_csv("x,y\n1,2\n3,4,5\n6,7\n")
    assert frame.to_dict("list") == {"x": [1, 6], "y": [2, 7]}
    assert frame.attrs["malformed"] == 1 and frame.attrs["malformed_examples"] == ["line 3: 3,4,5"]
    assert parse_csv("").empty


# == the registry =================================================================


def test_builtins_are_registered():
    assert {"lines", "csv", "ping", "iperf3", "tcpdump"} <= set(parser_names())
    assert get_parser("ping") is parse_ping


def test_unknown_parser_lists_the_known_ones():
    with pytest.raises(UnknownParserError) as info:
        get_parser("pong")
    assert isinstance(info.value, InvalidInputError) and isinstance(info.value, NepiError)
    assert info.value.name == "pong" and "ping" in info.value.known
    assert "csv, iperf3, lines, ns3_flows, packet_sink, ping, tcpdump" in str(info.value)


def test_defaults_are_keyed_by_type_name():
    assert default_parser("linux::Ping", "stdout") == "ping"
    assert default_parser("linux::Iperf3Client", "stdout") == "iperf3"
    assert default_parser("linux::Tcpdump", "pcap") == "tcpdump"
    assert default_parser("linux::Ping", "stderr") == "lines"
    assert default_parser("nobody::Knows", "this") == "lines"
    assert all(isinstance(k, tuple) and all(isinstance(p, str) for p in k) for k in default_parsers())


def test_register_a_parser_and_a_default():
    def squares(data):
        return pd.read_csv(io.StringIO(str(data)), names=["n", "square"])

    register_parser("squares", squares)
    try:
        assert get_parser("squares") is squares
        with pytest.raises(InvalidInputError, match="already registered"):
            register_parser("squares", lambda data: pd.DataFrame())
        register_parser("squares", squares)  # the same function again is harmless
        set_default_parser("analysis_test::Writer", "out", "squares")
        assert default_parser("analysis_test::Writer", "out") == "squares"
        with pytest.raises(UnknownParserError):
            set_default_parser("analysis_test::Writer", "out", "nope")
        with pytest.raises(InvalidInputError):
            register_parser("", squares)
        with pytest.raises(InvalidInputError):
            register_parser("x", "not callable")  # type: ignore[arg-type]
    finally:
        unregister_parser("squares")
    assert default_parser("analysis_test::Writer", "out") == "lines"
    with pytest.raises(UnknownParserError):
        unregister_parser("squares")


def test_a_subclass_gets_its_base_type_default_parser(tmp_path):
    """A run records each type's bases, so a derived ping still parses as ping."""
    import shutil

    from nepi_lab import ExperimentController
    from nepi_lab.analysis import load_run, trace_frame
    from nepi_lab.analysis.parsers import default_parser
    from nepi_lab.resources.linux import Ping

    if shutil.which("ping") is None:
        pytest.skip("ping is not installed")

    class LabPing(Ping):
        _rtype = "lab::Ping"

    assert default_parser("lab::Ping", "stdout") == "lines"
    assert default_parser("lab::Ping", "stdout", LabPing.get_bases()) == "ping"
    with ExperimentController(exp_id="bases", local_dir=str(tmp_path)) as ec:
        node = ec.register_resource("linux::Node", home=str(tmp_path / "home"))
        ping = ec.register_resource("lab::Ping", connectedTo=node, target="127.0.0.1", count=2,
                                    interval=0.2)
        ec.deploy()
        ec.wait_finished(ping, timeout=20)
        live = trace_frame(ec, ping, "stdout")
    assert live.attrs["parser"] == "ping" and list(live["seq"]) == [1, 2]
    loaded = trace_frame(load_run(ec.run_dir), ping, "stdout")
    assert loaded.attrs["parser"] == "ping" and list(loaded["seq"]) == [1, 2]
