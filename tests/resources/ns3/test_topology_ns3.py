"""One topology, two worlds: ``topology.build(..., backend="ns3")`` simulated, next to
the same graph built with network namespaces (where root can make them).

The ns-3 simulations share the session's ns-3 process; the namespace halves make real
namespaces and remove them (checked).
"""

from __future__ import annotations

import pytest

from nepi_lab import ExperimentController, ExperimentFailedError, ResourceState, topology
from nepi_lab.analysis import trace_frame
from nepi_lab.notebook.topology_view import topology_graph
from nepi_lab.resources.netns import run_prefix

from ..netns.conftest import MISSING, namespaces
from .conftest import BUILD, needs_ns3

pytestmark = [pytest.mark.slow, needs_ns3]


def ns3_ping(ec, topo, source, target, count=3, **ping):
    """A ping from ``source`` to ``target``'s address, run to its end; its replies frame."""
    guid = ec.register_resource("ns3::Ping", connectedTo=topo.nodes[source], target=topo.address(target),
                                count=count, startTime=1.0, **ping)
    ec.deploy()
    ec.wait_finished(guid, timeout=BUILD)
    return guid, trace_frame(ec, guid, "stdout")


def test_a_line_of_three_in_ns3_and_in_namespaces(ec, tmp_path, home):
    graph = topology.line(3, rate="100mbit")
    topo = topology.build(ec, graph, backend="ns3")
    ec.set(topo.simulation, "stopTime", 6.0)
    _, simulated = ns3_ping(ec, topo, "h1", "h3")
    assert list(simulated["ttl"]) == [63, 63, 63]  # one router between h1 and h3
    ends = {ec.get(link, "addresses") for link in topo.links.values()}
    assert ends == {"10.0.0.1/30 10.0.0.2/30", "10.0.0.5/30 10.0.0.6/30"}
    drawn = topology_graph(ec)  # what the topology view draws: hosts, links, addresses at each end
    h1, h2, h3 = (topo.nodes[n] for n in ("h1", "h2", "h3"))
    assert {(d["ends"][0], d["ends"][1], d["text"]) for _, _, d in drawn.edges(data=True)} == {
        ((h1, "10.0.0.1/30"), (h2, "10.0.0.2/30"), "100Mbps · 0ms"),
        ((h2, "10.0.0.5/30"), (h3, "10.0.0.6/30"), "100Mbps · 0ms")}
    assert len(drawn.nodes[h1]["applications"]) == 1

    if MISSING:
        pytest.skip(f"the namespace half: {MISSING}")
    with ExperimentController(exp_id="netns", local_dir=str(tmp_path / "netns")) as real:
        same = topology.build(real, graph)
        for node in same.nodes.values():
            real.set(node, "home", home)
        ping = real.register_resource("linux::Ping", connectedTo=same.nodes["h1"], target=same.address("h3"),
                                      count=3, interval=0.05)
        real.deploy()
        real.wait_finished(ping, timeout=60)
        prefix = run_prefix(real)
        assert {prefix + n for n in ("h1", "h2", "h3")} <= namespaces()
        measured = trace_frame(real, ping, "stdout")
        assert same.addresses() == topo.addresses()
        interfaces = {real.get(i, "ip") for i in same.interfaces.values()}
        assert interfaces == {a for pair in ends for a in pair.split()}
    assert not [n for n in namespaces() if n.startswith(prefix)]  # (other tests' may come and go)
    assert set(measured.columns) == set(simulated.columns)
    assert list(measured["ttl"]) == [63, 63, 63]
    assert len(measured) == len(simulated) == 3


def test_a_star_with_a_switch_is_one_csma_bus(ec):
    topo = topology.build(ec, topology.star(3, switch=True, rate="10mbit", delay="1ms"), backend="ns3")
    bus = topo.switches["c"]
    ec.enable_trace(bus, "pcap")
    ec.set(topo.simulation, "stopTime", 5.0)
    _, replies = ns3_ping(ec, topo, "h1", "h3", count=2)
    assert list(replies["ttl"]) == [64, 64]  # one segment: no router
    assert ec.get(bus, "addresses") == "10.0.0.1/24 10.0.0.2/24 10.0.0.3/24"
    assert [ec.get(bus, a) for a in ("dataRate", "delay")] == ["10Mbps", "1ms"]
    drawn = topology_graph(ec)  # the bus: a square named after the switch, a line to each host
    assert drawn.nodes[bus]["role"] == "switch" and drawn.nodes[bus]["label"] == "c\n10Mbps · 1ms"
    assert sorted(end for _, _, d in drawn.edges(data=True) for end in d["ends"] if end[0] != bus) == \
        [(topo.nodes[f"h{i}"], f"10.0.0.{i}/24") for i in (1, 2, 3)]
    # after the first (ARP) exchange: 2 x (1 ms + 98 bytes of Ethernet frame at 10 Mbit/s)
    assert replies["rtt_ms"].iloc[1] == pytest.approx(2 * (1 + 98 * 8 / 1e4), abs=0.05)
    ec.wait_finished(topo.simulation, timeout=BUILD)  # ns-3 closes its pcap files at the end
    frames = trace_frame(ec, bus, "pcap")  # the first end, promiscuous: the whole bus
    icmp = frames[frames["protocol"] == "ICMP"]
    assert set(zip(icmp["source"], icmp["destination"], strict=True)) == {("10.0.0.1", "10.0.0.3"),
                                                                          ("10.0.0.3", "10.0.0.1")}
    assert len(icmp) == 4
    assert "ARP" in set(frames["protocol"])  # Ethernet frames: the link type the parser read


def test_rate_delay_and_loss_of_the_edges_reach_the_simulation(ec):
    delayed = topology.build(ec, topology.line(3, rate="1mbit", delay="10ms"), backend="ns3")
    lossy = topology.build(ec, topology.line(2, loss=100), backend="ns3", subnet="10.200.0.0/16")
    for topo in (delayed, lossy):
        ec.set(topo.simulation, "stopTime", 6.0)
    slow = ec.register_resource("ns3::Ping", connectedTo=delayed.nodes["h1"], target=delayed.address("h3"),
                                count=3, startTime=1.0)
    lost = ec.register_resource("ns3::Ping", connectedTo=lossy.nodes["h1"], target=lossy.address("h2"),
                                count=3, startTime=1.0)
    ec.deploy()
    ec.wait_finished([slow, lost], timeout=BUILD)
    # 4 crossings of a link: 10 ms each, plus 86 bytes (84 of IP, 2 of PPP) at 1 Mbit/s
    rtts = trace_frame(ec, slow, "stdout")["rtt_ms"]
    assert list(rtts) == pytest.approx([4 * (10 + 86 * 8 / 1e3)] * 3, abs=0.05)
    out = ec.trace(lost, "stdout")
    assert "3 packets transmitted, 0 received, 100% packet loss" in out


def test_weights_choose_the_same_longer_path(ec):
    """A square whose direct edge h1-h2 is expensive: h1 reaches h2's far address through
    h4 and h3, as the namespaces' routes say; static routes come before ns-3's global
    routing (which counts hops and would go straight), in a simulation of one's own too."""
    import networkx as nx

    graph = nx.Graph([("h1", "h2", {"weight": 10}), ("h2", "h3"), ("h3", "h4"), ("h4", "h1")])
    own = ec.register_resource("ns3::Simulation", stopTime=5.0, globalRouting=True)
    pings = []
    for keywords in ({}, {"simulation": own}):
        topo = topology.build(ec, graph, backend="ns3", **keywords)
        ec.set(topo.simulation, "stopTime", 5.0)
        pings.append(ec.register_resource("ns3::Ping", connectedTo=topo.nodes["h1"],
                                          target=topo.address("h2", "h3"), count=2, startTime=1.0))
    ec.deploy()
    ec.wait_finished(pings, timeout=BUILD)
    for ping in pings:
        assert list(trace_frame(ec, ping, "stdout")["ttl"]) == [62, 62]  # two routers each way


def test_a_csma_bus_takes_raw_ns3_attributes_of_its_devices_and_channel(ec):
    topo = topology.build(ec, topology.star(2, switch=True), backend="ns3")
    bus = topo.switches["c"]
    ec.set(bus, "ns3Attributes", {"Mtu": "500"})  # a CsmaNetDevice attribute: IP fragments of <= 500 bytes
    ec.enable_trace(bus, "pcap")
    ec.set(topo.simulation, "stopTime", 4.0)
    _, replies = ns3_ping(ec, topo, "h1", "h2", count=1, packetSize=1000)
    assert len(replies) == 1
    ec.wait_finished(topo.simulation, timeout=BUILD)
    lengths = trace_frame(ec, bus, "pcap")["ip_length"].dropna()
    assert len(lengths) >= 6 and lengths.max() <= 500  # request and reply, 3 fragments each


def test_a_csma_bus_refuses_a_raw_name_its_devices_and_channel_lack(ec):
    topo = topology.build(ec, topology.star(2, switch=True), backend="ns3")
    bus = topo.switches["c"]
    ec.set(bus, "ns3Attributes", {"Colour": "blue"})
    ec.deploy()
    with pytest.raises(ExperimentFailedError):
        ec.wait_finished(topo.simulation, timeout=BUILD)
    assert ec.get_resource(bus).outcome == ResourceState.FAILED
    assert "neither ns3::CsmaNetDevice nor ns3::CsmaChannel has an attribute 'Colour'" in \
        ec.get_resource(bus).failure.message
