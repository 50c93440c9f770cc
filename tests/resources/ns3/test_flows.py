"""FlowMonitor's flows as a frame (live and from the run directory alone), a TCP
throughput through a bottleneck, and ns-3's ASCII traces of a link's ends.

Every simulation is a fork of the session's shared ns-3 process (one import of ns-3).
"""

from __future__ import annotations

import pytest

from nepi_lab import ResourceState, flows_frame
from nepi_lab.analysis import trace_frame
from nepi_lab.analysis.errors import TraceNotFoundError

from .conftest import BUILD, needs_ns3

pytestmark = [pytest.mark.slow, needs_ns3]

S = ResourceState


def finished(ec, guids):
    ec.deploy()
    ec.wait_finished(guids, timeout=BUILD)
    for guid in guids:
        assert ec.state(guid) == S.FINISHED, ec.explain(guid)


def test_a_lossy_udp_flow_in_the_flows_frame_live_and_from_the_run_directory(ec):
    # lost packets are those not received within FlowMonitor's MaxPerHopDelay (10 s by
    # default): 1 s here, set through the raw defaults, so that the 3 s after the sender
    # stopped count every packet the lossy link dropped
    sim = ec.register_resource("ns3::Simulation", stopTime=6.0, flowMonitor=True, seed=3,
                               defaults={"ns3::FlowMonitor::MaxPerHopDelay": "1s"})
    n0, n1 = (ec.register_resource("ns3::Node", connectedTo=sim, name=f"n{i}") for i in range(2))
    link = ec.register_resource("ns3::PointToPointLink", connectedTo=n0, dataRate="10Mbps", delay="5ms",
                                lossRate=0.1)
    ec.register_connection(link, n1)
    sink = ec.register_resource("ns3::PacketSink", connectedTo=n1, port=9, startTime=0.0)
    onoff = ec.register_resource("ns3::OnOff", connectedTo=n0, target="n1", port=9, dataRate="1Mbps",
                                 packetSize=1000, startTime=1.0, stopTime=3.0)
    ping = ec.register_resource("ns3::Ping", connectedTo=n0, target="n1", count=2, startTime=1.0)
    finished(ec, [sim, sink, onoff, ping])

    flows = flows_frame(ec)
    assert list(flows.columns[:3]) == ["run_id", "simulation", "flow_id"]
    assert {"tx_packets", "tx_bytes", "rx_packets", "rx_bytes", "lost_packets", "delay_sum_s",
            "delay_mean_ms", "jitter_sum_s", "jitter_mean_ms", "first_tx_s", "last_rx_s",
            "throughput_bps"} <= set(flows.columns)
    assert len(flows) == 1  # the UDP flow; ICMP (the ping) is no flow of Ipv4FlowClassifier
    flow = flows.iloc[0]
    assert (flow.protocol, flow.source, flow.destination, flow.destination_port) == (
        "udp", ec.get(link, "addressA"), ec.get(link, "addressB"), 9)
    assert flow.simulation == sim and flow.run_id == ec.run_id
    # the sink counts payload; FlowMonitor IP packets: 28 bytes of UDP and IP headers each
    assert flow.rx_bytes == ec.get(sink, "totalRx") + 28 * flow.rx_packets
    assert flow.tx_bytes == 1028 * flow.tx_packets and 245 <= flow.tx_packets <= 250
    # every packet the link dropped is lost, and only those
    assert flow.lost_packets == flow.tx_packets - flow.rx_packets
    assert 0.03 < flow.lost_packets / flow.tx_packets < 0.2, flow.lost_packets
    assert flow.loss_ratio == pytest.approx(flow.lost_packets / flow.tx_packets)
    # one-way delay: 5 ms + 1030 bytes at 10 Mbit/s, the same for every packet (no queue)
    assert flow.delay_mean_ms == pytest.approx(5 + 1030 * 8 / 10e6 * 1e3, abs=1e-6)
    assert flow.delay_sum_s == pytest.approx(flow.delay_mean_ms * flow.rx_packets / 1e3)
    assert flow.jitter_mean_ms == pytest.approx(0, abs=1e-6)
    assert 1.0 <= flow.first_tx_s < 1.01 and 2.99 < flow.last_rx_s < 3.01

    # from the run directory, once the controller is gone
    run_dir = ec.run_dir
    ec.shutdown()
    again = flows_frame(run_dir)
    assert again.drop(columns="run_id").equals(flows.drop(columns="run_id"))
    assert list(trace_frame(run_dir, sink, "rx")["bytes"].unique()) == [1000]


def test_tcp_through_a_bottleneck_runs_at_the_link_rate(ec):
    sim = ec.register_resource("ns3::Simulation", stopTime=8.0, flowMonitor=True)
    nodes = [ec.register_resource("ns3::Node", connectedTo=sim, name=f"n{i}") for i in range(3)]
    for (a, b), rate in (((0, 1), "100Mbps"), ((1, 2), "2Mbps")):
        link = ec.register_resource("ns3::PointToPointLink", connectedTo=nodes[a], dataRate=rate,
                                    delay="10ms")
        ec.register_connection(link, nodes[b])
    sink = ec.register_resource("ns3::PacketSink", connectedTo=nodes[2], port=8080, protocol="tcp",
                                startTime=0.0)
    bulk = ec.register_resource("ns3::BulkSend", connectedTo=nodes[0], target="n2", port=8080,
                                sendSize=1448, startTime=1.0, stopTime=7.0)
    finished(ec, [sim, sink, bulk])
    flows = flows_frame(ec, sim)
    data = flows[flows.destination_port == 8080].iloc[0]
    acks = flows[flows.source_port == 8080].iloc[0]
    assert data.protocol == acks.protocol == "tcp" and len(flows) == 2  # one flow per direction
    # IP bytes over 6 s through 2 Mbit/s (2 bytes of PPP per packet on the wire): the
    # window fills the queue after the first round trips, then the link is never idle
    assert 0.93 * 2e6 < data.throughput_bps < 2e6, data.throughput_bps
    assert ec.get(sink, "totalRx") * 8 / 6 > 0.85 * 2e6


def test_flows_of_a_simulation_without_flow_monitor_say_what_to_do(ec):
    sim = ec.register_resource("ns3::Simulation", stopTime=1.0)
    ec.register_resource("ns3::Node", connectedTo=sim)
    finished(ec, [sim])
    with pytest.raises(TraceNotFoundError, match="flows"):
        flows_frame(ec)
    with pytest.raises(TraceNotFoundError, match="enable_trace"):
        flows_frame(ec.run_dir, sim)


def test_ascii_traces_of_a_links_ends(ec):
    sim = ec.register_resource("ns3::Simulation", stopTime=2.0)
    n0, n1 = (ec.register_resource("ns3::Node", connectedTo=sim, name=f"n{i}") for i in range(2))
    link = ec.register_resource("ns3::PointToPointLink", connectedTo=n0)
    ec.register_connection(link, n1)
    ec.enable_trace(link, "asciiA")
    ec.enable_trace(link, "asciiB")
    server = ec.register_resource("ns3::UdpEchoServer", connectedTo=n1, startTime=0.0)
    client = ec.register_resource("ns3::UdpEchoClient", connectedTo=n0, target="n1", maxPackets=2,
                                  interval=0.2, startTime=1.0)
    finished(ec, [sim, server, client])
    a = trace_frame(ec, link, "asciiA")["text"].tolist()
    b = trace_frame(ec, link, "asciiB")["text"].tolist()
    # each end: its device's queue (+ enqueue, - dequeue) and what it received (r)
    requests_sent = [t for t in a if t.startswith("+ ") and "ns3::UdpHeader" in t and "> 9)" in t]
    assert len(requests_sent) == 2 and requests_sent[0].startswith("+ 1 /NodeList/0/DeviceList/1/")
    assert "10.0.1.1 > 10.0.1.2" in requests_sent[0]
    assert sum(t.startswith("r ") and "ns3::UdpHeader" in t for t in b) == 2
    assert sum(t.startswith("r ") and "ns3::UdpHeader" in t for t in a) == 2  # the echoes
    assert {t[0] for t in a + b} <= {"+", "-", "r", "d"}
