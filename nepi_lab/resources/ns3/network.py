"""``ns3::Node``, ``ns3::PointToPointLink``, ``ns3::CsmaLink`` and ``ns3::Route``: the
network of an ns-3 simulation.

A node has ns-3's internet stack (IPv4, ARP, ICMP, UDP, TCP).  A point-to-point link
joins two nodes (one ``PointToPointHelper::Install``: two ``ns3::PointToPointNetDevice``
on one ``ns3::PointToPointChannel``) and gives its two ends IPv4 addresses from its
``network`` (automatic: ``10.0.<k>.0/24`` for the k-th link without one).  Its ends
are its two nodes in guid order: ``addressA`` is the end on the node with the smaller
guid.  NEPI spelled this out as four resources per link (two NetDevices, a Channel,
their queues and error models); one link resource with the link's properties is what
a topology needs, and it is what ``netns::Link`` is on the real-network side.

A CSMA link is a bus joining any number of nodes (one ``CsmaHelper::Install``: an
``ns3::CsmaNetDevice`` per node on one ``ns3::CsmaChannel``): ns-3's model of a shared
Ethernet segment, what a ``netns::Switch`` and its links are on the real-network side.
Its ends are its nodes in guid order; they get ``.1``, ``.2`` ... of its ``network``.
Its ``pcap`` trace is the first end's device in promiscuous mode: every frame on the
bus (Ethernet, ARP included), complete once the simulation has finished.

Every link's ``addresses`` attribute holds, after deploy, its ends' addresses with
their prefix length, in guid order, separated by spaces (``"10.0.0.1/30 10.0.0.2/30"``):
what the topology views write at each end.  A route (``ns3::Route``) is a static route
on one node; ``nepi_lab.topology.build(..., backend="ns3")`` adds the same routes as in
the namespace build.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from ...core.attributes import Alias, Attribute, Flags, Types
from ...core.resource import ResourceManager, TopologyRole
from ...core.traces import Trace
from ._process import SimulationError
from .simulation import Ns3Resource, Simulation


class Node(Ns3Resource):
    """An ns-3 node with the internet stack.

    Connect it to its ``ns3::Simulation``; with a single simulation in the experiment
    the connection may be left out.
    """

    _rtype = "ns3::Node"
    _help = "A simulated host with ns-3's internet stack (IPv4, ICMP, UDP, TCP)."
    _connects_to = ("ns3::Simulation", "ns3::PointToPointLink", "ns3::CsmaLink", "ns3::Application",
                    "ns3::Route")
    _topology_role = TopologyRole.HOST

    def valid_connection(self, other: ResourceManager) -> bool | str:
        if isinstance(other, Simulation):
            others = [rm for rm in self.get_connected(Simulation) if rm is not other]
            if others:
                return f"node {self.guid} already belongs to simulation {others[0].guid}"
        return True

    def simulation(self) -> Simulation:
        connected = self.get_connected(Simulation)
        if connected:
            return connected[0]  # type: ignore[return-value]
        every = [rm for rm in self.ec._resources.values() if isinstance(rm, Simulation)]
        if len(every) == 1:
            return every[0]
        raise SimulationError(
            f"ns3::Node {self.guid} belongs to no simulation: connect it to an ns3::Simulation"
            + ("" if not every else f" (the experiment has {len(every)}: {[rm.guid for rm in every]})")
        )


class PointToPointLink(Ns3Resource):
    """A point-to-point link between two ``ns3::Node`` (see the module docstring)."""

    _rtype = "ns3::PointToPointLink"
    _help = ("A simulated point-to-point link between two ns3::Node: data rate, delay, queue size, "
             "loss; its ends get IPv4 addresses from its network.")
    _connects_to = ("ns3::Node",)
    _topology_role = TopologyRole.LINK
    _topology_labels = (("dataRate", "{}"), ("delay", "{}"), ("lossRate", "loss {}"))
    _attributes = (
        Attribute("dataRate", "bit rate of both devices, in ns-3's units: '5Mbps', '100kbps', '1Gbps'",
                  default="5Mbps", flags=Flags.Design),
        Attribute("delay", "one-way propagation delay of the channel: '2ms', '10us', '0.5s'",
                  default="2ms", flags=Flags.Design),
        Attribute("queueSize", "each device's transmit queue (DropTailQueue MaxSize): '100p' packets "
                  "or '64KB' bytes", default="100p", flags=Flags.Design),
        Attribute("lossRate", "fraction of packets each receiving device drops at random "
                  "(a RateErrorModel per packet), 0 to 1; unset: none", type=Types.Double, range=(0, 1),
                  flags=Flags.Design),
        Attribute("network", "IPv4 network of the two ends, e.g. '10.1.2.0/24' (ends get .1 and .2); "
                  "unset: 10.0.<k>.0/24 for the k-th link without one", flags=Flags.Design),
        Attribute("addressA", "IPv4 address of the end on the node with the smaller guid (after deploy)",
                  flags=Flags.NoWrite),
        Attribute("addressB", "IPv4 address of the end on the other node (after deploy)",
                  flags=Flags.NoWrite),
        Attribute("addresses", "both ends' IPv4 addresses with prefix, in guid order, separated by a space "
                  "(after deploy)", flags=Flags.NoWrite),
    )
    _aliases = (Alias("DataRate", "dataRate"), Alias("Delay", "delay"))
    _traces = (
        Trace("pcapA", "packets of the end on the node with the smaller guid (pcap, link type PPP)"),
        Trace("pcapB", "packets of the end on the other node (pcap, link type PPP)"),
        Trace("asciiA", "ns-3's ASCII trace of the end on the node with the smaller guid: one line per "
              "queue and receive event (+ - d r), with the packet's headers"),
        Trace("asciiB", "ns-3's ASCII trace of the end on the other node"),
    )

    def valid_connection(self, other: ResourceManager) -> bool | str:
        nodes = self.get_connected(Node)
        if other not in nodes and len(nodes) >= 2:
            return f"link {self.guid} already joins two nodes ({nodes[0].guid} and {nodes[1].guid})"
        return True

    def _ends(self) -> list[Node]:
        nodes = self.get_connected(Node)
        if len(nodes) != 2:
            raise SimulationError(f"ns3::PointToPointLink {self.guid} joins {len(nodes)} node(s); "
                                  "connect it to exactly two ns3::Node")
        return nodes  # type: ignore[return-value]

    def simulation(self) -> Simulation:
        a, b = self._ends()
        sim = a.simulation()
        if b.simulation() is not sim:
            raise SimulationError(f"ns3::PointToPointLink {self.guid} joins nodes of two simulations")
        return sim

    def _describe(self) -> dict[str, Any]:
        a, b = self._ends()
        network = _network(self)
        return {
            "guid": self.guid, "a": a.guid, "b": b.guid,
            "data_rate": self.get("dataRate"), "delay": self.get("delay"),
            "queue_size": self.get("queueSize"), "loss_rate": self.get("lossRate"), "network": network,
            "pcap": [self.trace_path(name) if self.trace_enabled(name) else None
                     for name in ("pcapA", "pcapB")],
            "ascii": [self.trace_path(name) if self.trace_enabled(name) else None
                      for name in ("asciiA", "asciiB")],
            "ns3_attributes": self.get("ns3Attributes") or {},
        }

    def _assigned(self, addresses: list[str], network: str) -> None:
        """The worker gave the ends ``addresses`` in ``network``."""
        self.set("addressA", addresses[0], internal=True)
        self.set("addressB", addresses[1], internal=True)
        self.set("addresses", _with_prefix(addresses, network), internal=True)


def _network(link: ResourceManager) -> str | None:
    """A link's ``network`` attribute, normalised (None when unset)."""
    network = link.get("network")
    if not network:
        return None
    try:
        return str(ipaddress.IPv4Network(network, strict=False))
    except ValueError as exc:
        raise SimulationError(f"{link._rtype} {link.guid}: network {network!r}: {exc}") from None


def _with_prefix(addresses: list[str], network: str) -> str:
    prefix = ipaddress.IPv4Network(network).prefixlen
    return " ".join(f"{address}/{prefix}" for address in addresses)


class CsmaLink(Ns3Resource):
    """A CSMA bus joining ``ns3::Node`` resources (see the module docstring)."""

    _rtype = "ns3::CsmaLink"
    _help = ("A simulated shared Ethernet segment (CSMA bus) joining ns3::Nodes: data rate, "
             "delay, queue size, loss; its ends get .1, .2 ... of its network, in guid order.")
    _connects_to = ("ns3::Node",)
    _topology_role = TopologyRole.LINK
    _topology_labels = (("dataRate", "{}"), ("delay", "{}"), ("lossRate", "loss {}"))
    _attributes = (
        Attribute("dataRate", "bit rate of the bus (CsmaChannel DataRate), in ns-3's units: '100Mbps', "
                  "'10Mbps', '1Gbps'", default="100Mbps", flags=Flags.Design),
        Attribute("delay", "propagation delay of the bus (CsmaChannel Delay): '6560ns', '1ms'",
                  default="6560ns", flags=Flags.Design),
        Attribute("queueSize", "each device's transmit queue (DropTailQueue MaxSize): '100p' packets "
                  "or '64KB' bytes", default="100p", flags=Flags.Design),
        Attribute("lossRate", "fraction of packets each receiving device drops at random "
                  "(a RateErrorModel per packet), 0 to 1; unset: none", type=Types.Double, range=(0, 1),
                  flags=Flags.Design),
        Attribute("network", "IPv4 network of the ends, e.g. '10.1.0.0/24' (ends get .1, .2 ... in guid "
                  "order); unset: 10.0.<k>.0/24 for the k-th link without one", flags=Flags.Design),
        Attribute("addresses", "the ends' IPv4 addresses with prefix, in guid order, separated by spaces "
                  "(after deploy)", flags=Flags.NoWrite),
    )
    _aliases = (Alias("DataRate", "dataRate"), Alias("Delay", "delay"))
    _traces = (
        Trace("pcap", "every frame on the bus: the first end's device, promiscuous (pcap, link type "
              "Ethernet)"),
    )

    def _ends(self) -> list[Node]:
        nodes = self.get_connected(Node)
        if not nodes:
            raise SimulationError(f"ns3::CsmaLink {self.guid} joins no node; connect it to ns3::Node")
        return nodes  # type: ignore[return-value]

    def simulation(self) -> Simulation:
        nodes = self._ends()
        sim = nodes[0].simulation()
        if any(n.simulation() is not sim for n in nodes[1:]):
            raise SimulationError(f"ns3::CsmaLink {self.guid} joins nodes of two simulations")
        return sim

    def _describe(self) -> dict[str, Any]:
        return {
            "guid": self.guid, "kind": "csma", "nodes": [n.guid for n in self._ends()],
            "data_rate": self.get("dataRate"), "delay": self.get("delay"),
            "queue_size": self.get("queueSize"), "loss_rate": self.get("lossRate"),
            "network": _network(self),
            "pcap": self.trace_path("pcap") if self.trace_enabled("pcap") else None,
            "ns3_attributes": self.get("ns3Attributes") or {},
        }

    def _assigned(self, addresses: list[str], network: str) -> None:
        """The worker gave the ends ``addresses`` in ``network``."""
        self.set("addresses", _with_prefix(addresses, network), internal=True)


class Route(Ns3Resource):
    """A static route on an ``ns3::Node`` (ns-3's Ipv4StaticRouting): ``destination``
    through ``gateway``, on the node's interface whose subnet holds the gateway.  Static
    routes come before the simulation's global routing."""

    _rtype = "ns3::Route"
    _help = "A static IPv4 route on an ns3::Node: destination (a network or 'default') through gateway."
    _connects_to = ("ns3::Node",)
    _topology_role = TopologyRole.ROUTE
    _attributes = (
        Attribute("destination", "network, e.g. '10.0.0.4/30', or 'default'", default="default",
                  flags=Flags.Design),
        Attribute("gateway", "next hop: an address on a subnet of one of the node's links",
                  flags=Flags.Design),
    )

    def node(self) -> Node:
        """The node the route is on."""
        nodes = self.get_connected(Node)
        if not nodes:
            raise SimulationError(f"ns3::Route {self.guid} is on no node: connect it to an ns3::Node")
        return nodes[0]  # type: ignore[return-value]

    def valid_connection(self, other: ResourceManager) -> bool | str:
        nodes = self.get_connected(Node)
        if isinstance(other, Node) and nodes and other not in nodes:
            return f"route {self.guid} is already on node {nodes[0].guid}"
        return True

    def simulation(self) -> Simulation:
        return self.node().simulation()

    def _describe(self) -> dict[str, Any]:
        destination = str(self.get("destination") or "default").strip()
        gateway = self.get("gateway")
        try:
            if destination != "default":
                destination = str(ipaddress.IPv4Network(destination, strict=False))
            gateway = str(ipaddress.IPv4Address(str(gateway)))
        except ValueError as exc:
            raise SimulationError(f"ns3::Route {self.guid}: {exc} (destination: an IPv4 network or "
                                  "'default'; gateway: an IPv4 address)") from None
        if self.get("ns3Attributes"):
            raise SimulationError(f"ns3::Route {self.guid}: a route has no ns-3 object of its own to take "
                                  "ns3Attributes; leave them out")
        return {"guid": self.guid, "node": self.node().guid, "destination": destination, "gateway": gateway}
