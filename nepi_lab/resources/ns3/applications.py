"""ns-3 applications: ``ns3::Ping``, ``ns3::UdpEchoServer``, ``ns3::UdpEchoClient``,
``ns3::PacketSink``, ``ns3::OnOff``, ``ns3::BulkSend``, and ``ns3::App`` for any other.

An application is connected to one ``ns3::Node`` and runs from ``startTime`` to
``stopTime`` in simulated seconds (``stopTime`` unset: the simulation's).  Its states
follow simulated time: STARTED when the simulation reaches ``startTime``, FINISHED
at ``stopTime``, each event carrying that simulated time.  ``ec.stop`` on an
application records STOPPED but does not change what the simulation does (stopping
at a simulated time is ``stopTime``).

START and STOP conditions between applications of one simulation (or on the
simulation itself) are honoured in simulated time: the simulation compiles them into
the applications' start and stop times when it is built
(:meth:`Simulation._compile_conditions`), so ``ec.register_condition(ping, "START",
sink, "STARTED", "2s")`` starts the ping 2 simulated seconds after the sink, and its
STARTED event carries that time.  A condition on a resource outside the simulation,
or on a state without a simulated time, fails the deploy, its message saying how to
put it instead; one registered after the simulation was built fails the application
when it starts.

``target`` (Ping, UdpEchoClient) is an IPv4 address, or the guid or ``name`` of an
``ns3::Node``: then the address of that node's first link.

The ``stdout`` trace of ``ns3::Ping`` and ``ns3::UdpEchoClient`` is written in Linux
ping's format (``64 bytes from 10.0.2.2: icmp_seq=0 ttl=63 time=20.275 ms``, then the
statistics block for Ping), so ``trace_frame(ec, ping, "stdout")`` gives the ``ping``
parser's columns.  Sequence numbers start at 0, as ns-3's own Ping counts.  A Ping
with a ``count`` sends that many requests and listens for replies until its
``stopTime`` (ns-3's own Count would stop it 2 x the largest RTT in whole milliseconds
after the last request, losing a sub-millisecond reply); its statistics line is
computed from the replies to the microsecond, as Linux ping's.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from ...core.attributes import Alias, Attribute, Flags, Types
from ...core.resource import ResourceManager, TopologyRole
from ...core.states import ResourceAction, ResourceState
from ...core.traces import Trace
from ._process import SimulationError
from .network import Node
from .simulation import Ns3Resource, Simulation

S = ResourceState
A = ResourceAction


class Application(Ns3Resource):
    """Base of the ns-3 applications (see the module docstring)."""

    _rtype = "ns3::Application"
    _help = "An ns-3 application on one ns3::Node, from startTime to stopTime in simulated seconds."
    _connects_to = ("ns3::Node",)
    _topology_role = TopologyRole.APPLICATION
    #: ns-3's name of the application's type and what the worker builds
    _ns3_type = ""
    _kind = ""
    _attributes = (
        Attribute("startTime", "simulated seconds at which it starts", type=Types.Double, default=1.0,
                  range=(0, None), flags=Flags.Design),
        Attribute("stopTime", "simulated seconds at which it stops (unset: the simulation's stopTime)",
                  type=Types.Double, range=(0, None), flags=Flags.Design),
    )
    _aliases = (Alias("StartTime", "startTime"), Alias("StopTime", "stopTime"))

    def valid_connection(self, other: ResourceManager) -> bool | str:
        nodes = self.get_connected(Node)
        if isinstance(other, Node) and nodes and other not in nodes:
            return f"application {self.guid} already runs on node {nodes[0].guid}"
        return True

    def node(self) -> Node:
        """The node the application runs on."""
        nodes = self.get_connected(Node)
        if not nodes:
            raise SimulationError(f"{self._rtype} {self.guid} runs on no node: connect it to an ns3::Node")
        return nodes[0]  # type: ignore[return-value]

    def simulation(self) -> Simulation:
        return self.node().simulation()

    def _ns3_attributes(self) -> dict[str, str]:
        """The ns-3 attributes this application sets, by ns-3's names, as strings."""
        return {}

    def honours_condition(self, condition: Any) -> bool:
        """START and STOP conditions are compiled into simulated time by the simulation
        (:meth:`Simulation.honours`): the controller does not wait for them."""
        try:
            sim = self.simulation()
        except SimulationError:
            return False
        return sim.honours(self, condition)

    def _describe(self, sim: Simulation) -> dict[str, Any]:
        compiled = (sim._schedule or {}).get(self.guid)
        if compiled is not None:  # from its conditions; one that never runs starts at the end
            start, stop = compiled if compiled[0] < compiled[1] else (sim.get("stopTime"),) * 2
        else:
            start, stop = self.get("startTime"), self.get("stopTime")
            if stop is not None and stop <= start:
                raise SimulationError(f"{self._rtype} {self.guid}: its stopTime ({stop:g} s) must come "
                                      f"after its startTime ({start:g} s)")
        return {
            "guid": self.guid, "kind": self._kind, "node": self.node().guid,
            "start": start, "stop": sim.get("stopTime") if stop is None else stop,
            "attributes": self._ns3_attributes(), "raw": self.get("ns3Attributes") or {},
            "stdout": self.trace_path("stdout") if "stdout" in self._trace_table
            and self.trace_enabled("stdout") else None,
        }

    def _target(self, sim: Simulation) -> str | dict[str, int]:
        """The ``target`` attribute for the worker: an address, or ``{"node": guid}``."""
        target = self.get("target")
        if target is None:
            raise SimulationError(f"{self._rtype} {self.guid}: set its target (an address, or a node)")
        try:
            return str(ipaddress.IPv4Address(str(target)))
        except ValueError:
            pass
        for rm in sim._members:
            if isinstance(rm, Node) and (str(rm.guid) == str(target) or rm.name == str(target)):
                return {"node": rm.guid}
        raise SimulationError(f"{self._rtype} {self.guid}: target {target!r} is neither an IPv4 address "
                              f"nor the guid or name of a node of simulation {sim.guid}")

    async def _simulated(self, state: ResourceState) -> None:
        sim = self.simulation()
        self._waiting = lambda: (f"waits for simulation {sim.guid} to reach this application's "
                                 f"{'start' if state == S.STARTED else 'stop'} time")
        try:
            sim_time = await sim.app_state(self.guid, state)
        finally:
            self._waiting = None
        self._at_sim_time(state, sim_time)

    async def do_start(self) -> None:
        sim = self.simulation()
        late = [c for action in (A.START, A.STOP) for c in self._conditions.get(action, ())
                if not sim.honours(self, c)]
        if late:
            raise SimulationError(f"condition '{late[0].describe()}' was registered after simulation "
                                  f"{sim.guid} was built, so its simulated times do not include it: "
                                  "register the conditions of ns-3 applications before deploying them")
        await self._simulated(S.STARTED)

    async def do_run(self) -> None:
        await self._simulated(S.FINISHED)


class Ping(Application):
    """ns-3's Ping (ICMP echo) to ``target``; its stdout trace reads like Linux ping's."""

    _rtype = "ns3::Ping"
    _help = "ns-3's Ping: ICMP echo requests to a target; stdout in Linux ping's format."
    _ns3_type = "ns3::Ping"
    _kind = "ping"
    _attributes = (
        Attribute("target", "IPv4 address, or the guid or name of an ns3::Node (its first address)",
                  flags=Flags.Design),
        Attribute("count", "echo requests to send (unset: until stopTime)", type=Types.Integer,
                  range=(1, 2**32 - 1), flags=Flags.Design),
        Attribute("interval", "seconds between requests", type=Types.Double, default=1.0,
                  range=(1e-9, None), flags=Flags.Design),
        Attribute("packetSize", "bytes of data per request", type=Types.Integer, default=56,
                  range=(16, 65507), flags=Flags.Design),
    )
    _aliases = (Alias("size", "packetSize"),)
    _traces = (Trace("stdout", "the replies and statistics, in Linux ping's format", enabled=True),)

    def _ns3_attributes(self) -> dict[str, str]:
        # no Count: ns-3's Ping would stop too early after its last request (see _worker)
        return {"Interval": f"{self.get('interval')!r}s", "Size": str(self.get("packetSize"))}

    def _describe(self, sim: Simulation) -> dict[str, Any]:
        return {**super()._describe(sim), "target": self._target(sim), "count": self.get("count")}


class UdpEchoServer(Application):
    """ns-3's UdpEchoServer: sends every UDP datagram back to its sender."""

    _rtype = "ns3::UdpEchoServer"
    _help = "ns-3's UdpEchoServer: echoes UDP datagrams on a port."
    _ns3_type = "ns3::UdpEchoServer"
    _kind = "udp_echo_server"
    _attributes = (
        Attribute("port", "UDP port it listens on", type=Types.Integer, default=9, range=(1, 65535),
                  flags=Flags.Design),
    )

    def _describe(self, sim: Simulation) -> dict[str, Any]:
        return {**super()._describe(sim), "port": self.get("port")}


class UdpEchoClient(Application):
    """ns-3's UdpEchoClient: sends datagrams to a UdpEchoServer; its stdout trace has one
    ping-like line per echo received (``seq=``, ``ttl=``, ``time=``)."""

    _rtype = "ns3::UdpEchoClient"
    _help = "ns-3's UdpEchoClient: datagrams to a UdpEchoServer; stdout: one ping-like line per echo."
    _ns3_type = "ns3::UdpEchoClient"
    _kind = "udp_echo_client"
    _attributes = (
        Attribute("target", "the server: IPv4 address, or the guid or name of its ns3::Node",
                  flags=Flags.Design),
        Attribute("port", "the server's UDP port", type=Types.Integer, default=9, range=(1, 65535),
                  flags=Flags.Design),
        Attribute("maxPackets", "datagrams to send", type=Types.Integer, default=1, range=(1, 2**32 - 1),
                  flags=Flags.Design),
        Attribute("interval", "seconds between datagrams", type=Types.Double, default=1.0,
                  range=(1e-9, None), flags=Flags.Design),
        Attribute("packetSize", "bytes of payload per datagram", type=Types.Integer, default=1024,
                  range=(1, 65507), flags=Flags.Design),
    )
    _traces = (Trace("stdout", "one ping-like line per echo received", enabled=True),)

    def _ns3_attributes(self) -> dict[str, str]:
        return {"MaxPackets": str(self.get("maxPackets")), "Interval": f"{self.get('interval')!r}s",
                "PacketSize": str(self.get("packetSize"))}

    def _describe(self, sim: Simulation) -> dict[str, Any]:
        return {**super()._describe(sim), "target": self._target(sim), "port": self.get("port")}


def _protocol(value: str) -> str:
    return "ns3::TcpSocketFactory" if value == "tcp" else "ns3::UdpSocketFactory"


class PacketSink(Application):
    """ns-3's PacketSink: receives UDP datagrams or TCP streams on a port and counts them.

    Its ``rx`` trace has one line per packet received, ``<simulated seconds> <bytes>
    <source address> <source port>`` (``trace_frame(ec, sink, "rx")``: columns
    ``time_s``, ``bytes``, ``source``, ``source_port``); ``totalRx`` holds the bytes
    received once the simulation finished.
    """

    _rtype = "ns3::PacketSink"
    _help = "ns-3's PacketSink: receives UDP or TCP traffic on a port; trace rx, totalRx after the run."
    _ns3_type = "ns3::PacketSink"
    _kind = "packet_sink"
    _attributes = (
        Attribute("port", "port it listens on", type=Types.Integer, default=9, range=(1, 65535),
                  flags=Flags.Design),
        Attribute("protocol", "udp or tcp", type=Types.Enumerate, allowed=("udp", "tcp"), default="udp",
                  flags=Flags.Design),
        Attribute("totalRx", "bytes received (after the simulation finished)", type=Types.Integer,
                  flags=Flags.NoWrite),
    )
    _aliases = (Alias("Port", "port"), Alias("Protocol", "protocol"))
    _traces = (Trace("rx", "one line per packet received: simulated seconds, bytes, source address, "
                     "source port", enabled=True),)

    def _describe(self, sim: Simulation) -> dict[str, Any]:
        return {**super()._describe(sim), "port": self.get("port"),
                "protocol": _protocol(self.get("protocol")),
                "rx": self.trace_path("rx") if self.trace_enabled("rx") else None}


def _seconds_or_variable(value: Any) -> str:
    """OnOff's OnTime/OffTime: seconds (a constant) or an ns-3 random variable's text."""
    try:
        return f"ns3::ConstantRandomVariable[Constant={float(value)!r}]"
    except ValueError:
        return str(value)


class OnOff(Application):
    """ns-3's OnOffApplication: sends at ``dataRate`` during on periods, nothing during
    off periods, to ``target``:``port`` over UDP or TCP."""

    _rtype = "ns3::OnOff"
    _help = ("ns-3's OnOffApplication: constant-rate traffic (UDP or TCP) in on/off periods to a "
             "target's port.")
    _ns3_type = "ns3::OnOffApplication"
    _kind = "onoff"
    _attributes = (
        Attribute("target", "the receiver: IPv4 address, or the guid or name of its ns3::Node",
                  flags=Flags.Design),
        Attribute("port", "the receiver's port", type=Types.Integer, default=9, range=(1, 65535),
                  flags=Flags.Design),
        Attribute("protocol", "udp or tcp", type=Types.Enumerate, allowed=("udp", "tcp"), default="udp",
                  flags=Flags.Design),
        Attribute("dataRate", "rate while on, in ns-3's units: '1Mbps', '500kbps'", default="500kbps",
                  flags=Flags.Design),
        Attribute("packetSize", "bytes per packet", type=Types.Integer, default=512, range=(1, 65507),
                  flags=Flags.Design),
        Attribute("onTime", "length of an on period: seconds, or an ns-3 random variable such as "
                  "'ns3::ExponentialRandomVariable[Mean=0.5]'", default="1", flags=Flags.Design),
        Attribute("offTime", "length of an off period (seconds or a random variable); 0: always on",
                  default="0", flags=Flags.Design),
        Attribute("maxBytes", "bytes to send in all, 0: no limit", type=Types.Integer, default=0,
                  range=(0, None), flags=Flags.Design),
    )
    _aliases = (Alias("DataRate", "dataRate"), Alias("PacketSize", "packetSize"),
                Alias("OnTime", "onTime"), Alias("OffTime", "offTime"), Alias("MaxBytes", "maxBytes"))

    def _ns3_attributes(self) -> dict[str, str]:
        return {"DataRate": str(self.get("dataRate")), "PacketSize": str(self.get("packetSize")),
                "OnTime": _seconds_or_variable(self.get("onTime")),
                "OffTime": _seconds_or_variable(self.get("offTime")),
                "MaxBytes": str(self.get("maxBytes"))}

    def _describe(self, sim: Simulation) -> dict[str, Any]:
        return {**super()._describe(sim), "target": self._target(sim), "port": self.get("port"),
                "protocol": _protocol(self.get("protocol"))}


class BulkSend(Application):
    """ns-3's BulkSendApplication: sends as fast as TCP allows, ``maxBytes`` in all.

    ``tcpVariant`` (``TcpNewReno``, ``TcpCubic``, ``TcpBbr`` ... any subclass of
    ns-3's ``TcpCongestionOps``) is the congestion control of every TCP socket of this
    application's node (``/NodeList/<id>/$ns3::TcpL4Protocol/SocketType``), not of the
    whole simulation; ``congestionControl`` reads back the type the socket got.
    """

    _rtype = "ns3::BulkSend"
    _help = "ns-3's BulkSendApplication: TCP as fast as possible to a target's port, maxBytes in all."
    _ns3_type = "ns3::BulkSendApplication"
    _kind = "bulk_send"
    _attributes = (
        Attribute("target", "the receiver: IPv4 address, or the guid or name of its ns3::Node",
                  flags=Flags.Design),
        Attribute("port", "the receiver's TCP port", type=Types.Integer, default=9, range=(1, 65535),
                  flags=Flags.Design),
        Attribute("maxBytes", "bytes to send in all, 0: until stopTime", type=Types.Integer, default=0,
                  range=(0, None), flags=Flags.Design),
        Attribute("sendSize", "bytes handed to the socket per write", type=Types.Integer, default=512,
                  range=(1, None), flags=Flags.Design),
        Attribute("tcpVariant", "congestion control of the node's TCP sockets: TcpNewReno, TcpCubic, "
                  "TcpBbr ... (unset: ns-3's default)", flags=Flags.Design),
        Attribute("congestionControl", "the congestion control the socket got (after it started)",
                  flags=Flags.NoWrite),
    )
    _aliases = (Alias("MaxBytes", "maxBytes"), Alias("SendSize", "sendSize"))

    def _ns3_attributes(self) -> dict[str, str]:
        return {"MaxBytes": str(self.get("maxBytes")), "SendSize": str(self.get("sendSize"))}

    def _describe(self, sim: Simulation) -> dict[str, Any]:
        variant = self.get("tcpVariant")
        if variant and "::" not in variant:
            variant = f"ns3::{variant}"
        return {**super()._describe(sim), "target": self._target(sim), "port": self.get("port"),
                "protocol": "ns3::TcpSocketFactory", "tcp_variant": variant}


class App(Application):
    """Any ns-3 application by its TypeId: ``typeId="ns3::ThreeGppHttpClient"`` and its
    ns-3 attributes in ``ns3Attributes``, installed on its node by an ``ApplicationHelper``."""

    _rtype = "ns3::App"
    _help = "Any ns-3 application by TypeId name (typeId), its ns-3 attributes in ns3Attributes."
    _kind = "raw"
    _attributes = (
        Attribute("typeId", "the ns-3 type, a subclass of ns3::Application, e.g. 'ns3::UdpClient'",
                  flags=Flags.Design),
    )
    _aliases = (Alias("attributes", "ns3Attributes"),)

    def _describe(self, sim: Simulation) -> dict[str, Any]:
        type_id = self.get("typeId")
        if not type_id:
            raise SimulationError(f"ns3::App {self.guid}: set its typeId (e.g. 'ns3::UdpClient'); "
                                  "nepi_lab.resources.ns3.describe_type lists a type's attributes")
        return {**super()._describe(sim), "type_id": type_id}
