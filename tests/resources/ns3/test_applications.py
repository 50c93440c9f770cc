"""Real ns-3 traffic applications: OnOff -> PacketSink over UDP, BulkSend over TCP with
a chosen congestion control, ns3::App by TypeId, raw ns-3 attributes (defaults, Config
paths, ns3Attributes) checked against the installed ns-3's TypeIds, describe_type.

Every simulation is a fork of the session's shared ns-3 process (one import of ns-3).
"""

from __future__ import annotations

import pytest

from nepi_lab import ExperimentFailedError, ResourceState
from nepi_lab.analysis import trace_frame
from nepi_lab.resources.ns3 import SimulationError, describe_type

from .conftest import BUILD, needs_ns3

pytestmark = [pytest.mark.slow, needs_ns3]

S = ResourceState


def pair(ec, rate="10Mbps", delay="5ms", stop=4.0, **sim):
    """Two nodes n0 - n1 on one link; returns (simulation, n0, n1, link)."""
    s = ec.register_resource("ns3::Simulation", stopTime=stop, **sim)
    n0 = ec.register_resource("ns3::Node", connectedTo=s, name="n0")
    n1 = ec.register_resource("ns3::Node", connectedTo=s, name="n1")
    link = ec.register_resource("ns3::PointToPointLink", connectedTo=n0, dataRate=rate, delay=delay)
    ec.register_connection(link, n1)
    return s, n0, n1, link


def finished(ec, guids):
    ec.deploy()
    ec.wait_finished(guids, timeout=BUILD)
    for guid in guids:
        assert ec.state(guid) == S.FINISHED, ec.explain(guid)


def test_udp_onoff_to_packet_sink_delivers_rate_times_on_time(ec):
    sim, n0, n1, _ = pair(ec)
    sink = ec.register_resource("ns3::PacketSink", connectedTo=n1, port=9, startTime=0.0)
    always = ec.register_resource("ns3::OnOff", connectedTo=n0, target="n1", port=9, dataRate="1Mbps",
                                  packetSize=1000, startTime=1.0, stopTime=3.0)
    sink2 = ec.register_resource("ns3::PacketSink", connectedTo=n1, port=10, startTime=0.0)
    half = ec.register_resource("ns3::OnOff", connectedTo=n0, target=ec.get(n1, "name"), port=10,
                                dataRate="1Mbps", packetSize=500, onTime=0.5,
                                offTime="ns3::ConstantRandomVariable[Constant=0.5]",
                                startTime=1.0, stopTime=3.0)
    finished(ec, [sim, sink, always, sink2, half])

    # 1 Mbit/s for 2 s: 250,000 bytes, give or take the packet in progress at each end
    assert abs(ec.get(sink, "totalRx") - 250_000) <= 1000, ec.get(sink, "totalRx")
    # on half of the time (0.5 s on, 0.5 s off): 125,000 bytes, a packet per period edge
    assert abs(ec.get(sink2, "totalRx") - 125_000) <= 4 * 500, ec.get(sink2, "totalRx")

    rx = trace_frame(ec, sink, "rx")
    assert list(rx.columns[4:]) == ["time_s", "bytes", "source", "source_port"]
    assert rx["bytes"].sum() == ec.get(sink, "totalRx") and set(rx["bytes"]) == {1000}
    assert set(rx["source"]) == {"10.0.1.1"} and rx["source_port"].nunique() == 1
    assert 1.0 < rx["time_s"].min() < 1.05 and 2.95 < rx["time_s"].max() < 3.05
    # OnOff's rate counts the payload: 1000 bytes at 1 Mbit/s is a packet every 8 ms (ns-3
    # carries the rounding of each gap to the next, a microsecond at most)
    gaps = rx["time_s"].diff().dropna()
    assert gaps.sub(0.008).abs().max() < 2e-6, gaps.describe()


def test_tcp_bulk_send_delivers_max_bytes_exactly_with_the_chosen_variant_per_node(ec):
    s = ec.register_resource("ns3::Simulation", stopTime=10.0)
    a, b, server = (ec.register_resource("ns3::Node", connectedTo=s, name=n) for n in ("a", "b", "server"))
    for node in (a, b):
        link = ec.register_resource("ns3::PointToPointLink", connectedTo=node, dataRate="5Mbps", delay="10ms")
        ec.register_connection(link, server)
    sink = ec.register_resource("ns3::PacketSink", connectedTo=server, port=5000, protocol="tcp",
                                startTime=0.0)
    reno = ec.register_resource("ns3::BulkSend", connectedTo=a, target="server", port=5000,
                                maxBytes=123_456, tcpVariant="TcpNewReno", startTime=1.0)
    bbr = ec.register_resource("ns3::BulkSend", connectedTo=b, target="server", port=5000,
                               maxBytes=54_321, sendSize=1000, tcpVariant="ns3::TcpBbr", startTime=1.0)
    finished(ec, [s, sink, reno, bbr])

    assert ec.get(sink, "totalRx") == 123_456 + 54_321
    rx = trace_frame(ec, sink, "rx")
    per_source = rx.groupby("source")["bytes"].sum().to_dict()
    assert per_source == {"10.0.1.1": 123_456, "10.0.2.1": 54_321}  # a's link first, then b's
    # each sender's socket got its node's congestion control (read back from the socket)
    assert ec.get(reno, "congestionControl") == "ns3::TcpNewReno"
    assert ec.get(bbr, "congestionControl") == "ns3::TcpBbr"
    with open(ec.get_resource(s).trace_path("log"), encoding="utf-8") as f:
        log = f.read()
    assert f"application {bbr} (ns3::BulkSendApplication): TCP congestion control ns3::TcpBbr" in log


def test_raw_defaults_config_paths_and_node_attributes_take_effect(ec):
    sim, n0, n1, _ = pair(ec, stop=3.0,
                          defaults={"ns3::TcpSocket::SegmentSize": 1448},
                          config={"/NodeList/1/$ns3::Ipv4L3Protocol/DefaultTtl": "17"})
    ec.set(n0, "ns3Attributes", {"ns3::Ipv4L3Protocol::DefaultTtl": 9})
    to_n1 = ec.register_resource("ns3::Ping", connectedTo=n0, target="n1", count=1, startTime=0.5)
    to_n0 = ec.register_resource("ns3::Ping", connectedTo=n1, target="n0", count=1, startTime=0.5)
    sink = ec.register_resource("ns3::PacketSink", connectedTo=n1, port=80, protocol="tcp", startTime=0.0)
    bulk = ec.register_resource("ns3::BulkSend", connectedTo=n0, target="n1", port=80, maxBytes=100_000,
                                sendSize=100_000, startTime=1.0)
    finished(ec, [sim, to_n1, to_n0, sink, bulk])

    # the replies carry the TTL their sender got: n1's by Config path, n0's by its ns3Attributes
    assert list(trace_frame(ec, to_n1, "stdout")["ttl"]) == [17]
    assert list(trace_frame(ec, to_n0, "stdout")["ttl"]) == [9]
    # TCP segments of 1448 bytes (ns-3's default is 536)
    assert trace_frame(ec, sink, "rx")["bytes"].max() == 1448
    assert ec.get(sink, "totalRx") == 100_000


def test_an_app_by_type_id_with_raw_attributes(ec):
    sim, n0, n1, _ = pair(ec, stop=3.0)
    server = ec.register_resource("ns3::App", connectedTo=n1, typeId="ns3::UdpEchoServer",
                                  attributes={"Port": 7}, startTime=0.0)
    client = ec.register_resource("ns3::UdpEchoClient", connectedTo=n0, target="n1", port=7, maxPackets=3,
                                  interval=0.2, packetSize=100, startTime=1.0,
                                  ns3Attributes={"Tos": "16"})
    finished(ec, [sim, server, client])
    echoes = trace_frame(ec, client, "stdout")
    assert list(echoes["seq"]) == [0, 1, 2] and set(echoes["bytes"]) == {100}
    assert ec.get(server, "ns3Attributes") == {"Port": "7"}


@pytest.mark.parametrize("case", ["app name", "app value", "default name", "config path", "type id",
                                  "tcp variant", "link name", "reserved", "ping reserved"])
def test_a_bad_raw_name_or_value_fails_the_resource_with_what_ns3_has(ec, case):
    sim, n0, n1, link = pair(ec, stop=2.0)
    onoff = ec.register_resource("ns3::OnOff", connectedTo=n0, target="n1", startTime=1.0)
    culprit, expected = onoff, []
    if case == "app name":
        ec.set(onoff, "ns3Attributes", {"DataRat": "1Mbps"})
        # the type's own attributes and those it inherits (ns3::Application's StartTime)
        expected = ["ns3::OnOffApplication has no attribute 'DataRat'; it has:", "DataRate", "OnTime",
                    "StartTime"]
    elif case == "app value":
        ec.set(onoff, "ns3Attributes", {"DataRate": "fast"})
        expected = ["'fast' is not a valid value for ns3::OnOffApplication::DataRate (ns3::DataRateValue)"]
    elif case == "default name":
        ec.set(sim, "defaults", {"ns3::TcpSocket::SegSize": "1448"})
        culprit = sim
        expected = ["ns3::TcpSocket has no attribute 'SegSize'; it has:", "SegmentSize"]
    elif case == "config path":
        ec.set(sim, "config", {"/NodeList/7/$ns3::Ipv4L3Protocol/DefaultTtl": "3"})
        culprit = sim
        expected = ["config: no ns-3 object matches '/NodeList/7/$ns3::Ipv4L3Protocol'"]
    elif case == "type id":
        culprit = ec.register_resource("ns3::App", connectedTo=n1, typeId="ns3::Nothing")
        expected = ["typeId 'ns3::Nothing' is not an ns-3 application type; ns-3 has:", "ns3::PacketSink"]
    elif case == "tcp variant":
        culprit = ec.register_resource("ns3::BulkSend", connectedTo=n1, target="n0", tcpVariant="TcpFoo")
        expected = ["tcpVariant 'TcpFoo' is not one of ns-3's TCP congestion controls:", "TcpCubic",
                    "TcpNewReno", "TcpBbr"]
    elif case == "reserved":
        ec.set(onoff, "ns3Attributes", {"StartTime": "0.5s"})
        expected = ["ns3Attributes: StartTime is set by nepi_lab (the resource's startTime and the "
                    "conditions compiled into it); leave it out"]
    elif case == "ping reserved":
        culprit = ec.register_resource("ns3::Ping", connectedTo=n0, target="n1",
                                       ns3Attributes={"VerboseMode": "Verbose"})
        expected = ["ns3Attributes: VerboseMode is set by nepi_lab (the stdout trace is Linux ping's lines"]
    elif case == "link name":
        culprit = link
        ec.set(link, "ns3Attributes", {"Speed": "1Mbps"})
        expected = ["neither ns3::PointToPointNetDevice nor ns3::PointToPointChannel has an attribute "
                    "'Speed'",
                    "the devices have: Address, DataRate", "the channel has: Delay"]
    ec.deploy()
    with pytest.raises(ExperimentFailedError):
        ec.wait_finished([sim, onoff], timeout=BUILD)
    rm = ec.get_resource(culprit)
    assert rm.outcome == S.FAILED
    for words in expected:
        assert words in rm.failure.message, rm.failure.message


def test_a_mapping_attribute_refuses_what_is_no_mapping(ec):
    from nepi_lab.core.errors import AttributeValueError

    sim = ec.register_resource("ns3::Simulation")
    with pytest.raises(AttributeValueError, match="expected a dict"):
        ec.set(sim, "defaults", ["ns3::TcpSocket::SegmentSize"])
    with pytest.raises(AttributeValueError, match="must be a string, a number or a bool"):
        ec.set(sim, "defaults", {"ns3::TcpSocket::SegmentSize": [1]})
    ec.set(sim, "defaults", '{"ns3::TcpSocket::SegmentSize": 1448, "ns3::TcpSocket::TcpNoDelay": true}')
    assert ec.get(sim, "defaults") == {"ns3::TcpSocket::SegmentSize": "1448",
                                       "ns3::TcpSocket::TcpNoDelay": "true"}


def test_describe_type_lists_the_installed_ns3s_attributes():
    attributes = describe_type("ns3::OnOffApplication")
    by_name = {a["name"]: a for a in attributes}
    assert by_name["DataRate"] == {"name": "DataRate", "help": "The data rate in on state.",
                                   "type": "DataRateValue", "default": "500000bps",
                                   "declared_by": "ns3::OnOffApplication", "access": "get,set,construct"}
    assert by_name["StartTime"]["declared_by"] == "ns3::Application"  # inherited ones too
    assert {"OnTime", "OffTime", "MaxBytes", "PacketSize"} <= set(by_name)
    with pytest.raises(SimulationError, match="ns-3 has no type 'ns3::OnOffAplication'; did you mean "
                                              "ns3::OnOffApplication"):
        describe_type("ns3::OnOffAplication")
