"""The parsers of the ns-3 back end's traces, on text written here (no ns-3 needed):
PacketSink's rx lines and FlowMonitor's flows CSV, malformed lines counted, never raised."""

from __future__ import annotations

import math

from nepi_lab.analysis import default_parser, parse_ns3_flows, parse_packet_sink

HEADER = ("flow_id,protocol,source,source_port,destination,destination_port,tx_packets,tx_bytes,"
          "rx_packets,rx_bytes,lost_packets,dropped_packets,times_forwarded,delay_sum_ns,jitter_sum_ns,"
          "max_delay_ns,first_tx_ns,last_tx_ns,first_rx_ns,last_rx_ns\n")


def test_packet_sink_lines_and_what_it_could_not_read():
    frame = parse_packet_sink(b"1.008000000 1000 10.0.1.1 49153\n1.016 1000 10.0.1.1 49153\n"
                              b"oops\n1.5 x 10.0.1.1 1\n")
    assert list(frame.columns) == ["time_s", "bytes", "source", "source_port"]
    assert frame["time_s"].tolist() == [1.008, 1.016] and frame["bytes"].tolist() == [1000, 1000]
    assert list(frame["source"]) == ["10.0.1.1"] * 2 and frame["source_port"].tolist() == [49153] * 2
    assert frame.attrs["malformed"] == 2 and frame.attrs["total_bytes"] == 2000
    empty = parse_packet_sink(b"")
    assert len(empty) == 0 and list(empty.columns) == ["time_s", "bytes", "source", "source_port"]
    assert default_parser("ns3::PacketSink", "rx") == "packet_sink"


def test_flows_columns_means_and_throughput():
    text = HEADER + (
        # 10 packets of 1028 bytes sent from 1 s, 9 received (one lost), 5 ms each
        "3,17,10.0.1.1,49153,10.0.1.2,9,10,10280,9,9252,1,0,0,45000000,800000,5000000,"
        "1000000000,1900000000,1005000000,1805000000\n"
        # nothing received: no means, no throughput
        "4,6,10.0.1.1,49154,10.0.2.2,80,1,60,0,0,1,1,0,0,0,0,2000000000,2000000000,0,0\n"
        "not,a,flow\n")
    frame = parse_ns3_flows(text.encode())
    assert frame.attrs["malformed"] == 1 and len(frame) == 2
    udp, tcp = frame.iloc[0], frame.iloc[1]
    assert (udp.protocol, udp.source, udp.destination_port, tcp.protocol) == ("udp", "10.0.1.1", 9, "tcp")
    assert (udp.tx_packets, udp.rx_bytes, udp.lost_packets) == (10, 9252, 1)
    assert math.isclose(udp.loss_ratio, 0.1) and math.isclose(udp.delay_sum_s, 0.045)
    assert math.isclose(udp.delay_mean_ms, 5.0) and math.isclose(udp.jitter_mean_ms, 0.1)
    assert math.isclose(udp.throughput_bps, 9252 * 8 / 0.805)
    assert math.isclose(udp.first_tx_s, 1.0) and math.isclose(udp.last_rx_s, 1.805)
    assert math.isnan(tcp.delay_mean_ms) and math.isnan(tcp.throughput_bps) and math.isnan(tcp.last_rx_s)
    assert default_parser("ns3::Simulation", "flows") == "ns3_flows"


def test_flows_of_nothing_or_of_another_file():
    assert len(parse_ns3_flows(b"")) == 0
    assert len(parse_ns3_flows(HEADER.encode())) == 0
    other = parse_ns3_flows(b"a,b\n1,2\n")
    assert len(other) == 0 and other.attrs["malformed"] == 2  # its lines, header included
    assert "not a ns3_flows trace" in other.attrs["malformed_examples"][0]
