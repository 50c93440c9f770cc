"""``ns3::Node`` and ``ns3::PointToPointLink``: the network of an ns-3 simulation.

A node has ns-3's internet stack (IPv4, ARP, ICMP, UDP, TCP).  A point-to-point link
joins two nodes (one ``PointToPointHelper::Install``: two ``ns3::PointToPointNetDevice``
on one ``ns3::PointToPointChannel``) and gives its two ends IPv4 addresses from its
``network`` (automatic: ``10.0.<k>.0/24`` for the k-th link without one).  Its ends
are its two nodes in guid order: ``addressA`` is the end on the node with the smaller
guid.  NEPI spelled this out as four resources per link (two NetDevices, a Channel,
their queues and error models); one link resource with the link's properties is what
a topology needs, and it is what ``netns::Link`` is on the real-network side.
"""

from __future__ import annotations

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
    _connects_to = ("ns3::Simulation", "ns3::PointToPointLink", "ns3::Application")
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
        network = self.get("network")
        if network:
            import ipaddress

            try:
                network = str(ipaddress.IPv4Network(network, strict=False))
            except ValueError as exc:
                raise SimulationError(f"ns3::PointToPointLink {self.guid}: network {network!r}: {exc}") \
                    from None
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
