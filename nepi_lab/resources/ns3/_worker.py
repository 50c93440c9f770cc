"""The program that runs ns-3 simulations, in processes of their own.

Two ways to run it (see :mod:`._process` for the controller's side):

``python -m nepi_lab.resources.ns3._worker``
    one simulation over standard input and output (``isolated=True``);
``python -m nepi_lab.resources.ns3._worker --zygote FD``
    the shared process: imports ns-3 once (8-20 s, 640 MB), then forks a process per
    connection on the listening Unix socket ``FD``; ends when its standard input closes.

Either way one simulation's process speaks JSON lines (:func:`serve`): it says
``{"event": "hello", "pid": ...}``, reads the description of the world (see
``Simulation._describe``; ``log`` names the file that gets its standard output and
error), builds it and answers ``{"event": "ready", "addresses": {link guid: [a, b ...]},
"networks": {link guid: "10.0.1.0/24"}}``
or ``{"event": "error", "guid": ..., "message": ...}``.  Then ``{"do": "run"}`` runs
the simulated time in chunks (``Simulator::Stop`` + ``Run`` up to each mark: every
application's start and stop time, every twentieth of the stop time) and reports
``{"event": "app", "guid": g, "state": "STARTED"|"FINISHED", "sim_time": t}``,
``{"event": "progress", "sim_time": t}`` and ``{"event": "finished", "sim_time": t}``;
``{"do": "quit"}`` or the end of the input ends it.

An ns-3 ``NS_FATAL_ERROR`` aborts the process (SIGABRT, no backtrace): the parent reads
ns-3's ``msg="..."`` line from the log.  Attribute values are checked with ns-3's own
checkers first, so a refused value is an ``error`` naming the resource, not an abort.
Traces are written straight to the paths in the description.  A simulation's process
dies with its parent (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
from typing import Any

#: C++ trace callbacks: Python callables cannot be given to ns-3's MakeCallback.  They
#: append records to a string per application, which Python takes after each chunk.
_CPP = r"""
#include <map>
#include <set>
#include <sstream>
#include <string>
namespace nepi_lab {
std::map<std::string, int> last_ttl;      // "/NodeList/<n>" -> TTL of the last packet received
std::map<std::string, std::string> records;  // application path -> its records, one a line
static std::string node_of(const std::string& path) { return path.substr(0, path.find('/', 10)); }
static std::string app_of(const std::string& path) { return path.substr(0, path.rfind('/')); }
void receive(std::string path, ns3::Ptr<const ns3::Packet> packet, ns3::Ptr<ns3::Ipv4>, uint32_t) {
    ns3::Ipv4Header header;  // Rx fires before the packet goes up: its reply is read after this
    if (packet->PeekHeader(header)) last_ttl[node_of(path)] = header.GetTtl();
}
void ping_rtt(std::string path, uint16_t seq, ns3::Time rtt) {
    std::ostringstream s;
    s << "R " << seq << " " << rtt.GetNanoSeconds() << " " << last_ttl[node_of(path)] << "\n";
    records[app_of(path)] += s.str();
}
void ping_drop(std::string path, uint16_t seq, ns3::Ping::DropReason reason) {
    std::ostringstream s;
    s << "D " << seq << " " << int(reason) << "\n";
    records[app_of(path)] += s.str();
}
void ping_report(std::string path, const ns3::Ping::PingReport& r) {
    std::ostringstream s;
    s << "S " << r.m_transmitted << " " << r.m_received << " " << r.m_loss << " "
      << r.m_duration.GetMilliSeconds() << " " << r.m_rttMin << " " << r.m_rttAvg << " "
      << r.m_rttMax << " " << r.m_rttMdev << "\n";
    records[app_of(path)] += s.str();
}
void echo_tx(std::string path, ns3::Ptr<const ns3::Packet> p) {
    std::ostringstream s;
    s << "T " << ns3::Simulator::Now().GetNanoSeconds() << " " << p->GetSize() << "\n";
    records[app_of(path)] += s.str();
}
void echo_rx(std::string path, ns3::Ptr<const ns3::Packet> p) {
    std::ostringstream s;
    s << "R " << ns3::Simulator::Now().GetNanoSeconds() << " " << p->GetSize() << " "
      << last_ttl[node_of(path)] << "\n";
    records[app_of(path)] += s.str();
}
// Trace sources are connected on the objects themselves, with the context Config::Connect
// would pass (its path): no path lookup per connection (a tree of 50 pings: ~50 ms less).
static void hook(ns3::Ptr<ns3::Object> object, const std::string& path, const std::string& source,
                 const ns3::CallbackBase& callback) {
    object->TraceConnect(source, path + "/" + source, callback);
}
void watch_node(const std::string& node, ns3::Ptr<ns3::Node> object) {
    hook(object->GetObject<ns3::Ipv4L3Protocol>(), node + "/$ns3::Ipv4L3Protocol", "Rx",
         ns3::MakeCallback(&receive));
}
std::map<std::string, uint32_t> ping_count;  // application path -> echo requests it sends
void ping_tx(std::string path, uint16_t seq, ns3::Ptr<ns3::Packet>) {
    // ns-3's Ping given a Count stops 2 x the largest RTT *in whole milliseconds* after its
    // last request, so a reply under 1 ms (or slower than the ones before) is lost; this
    // one sends its Count without being told (no next request within the simulation) and
    // keeps listening until its stop time, as Linux ping lingers for the last replies
    std::string app = app_of(path);
    if (seq + 1u >= ping_count[app]) ns3::Config::Set(app + "/Interval", ns3::TimeValue(ns3::Seconds(1e9)));
}
void limit_ping(const std::string& app, ns3::Ptr<ns3::Application> object, uint32_t count) {
    ping_count[app] = count;
    hook(object, app, "Tx", ns3::MakeCallback(&ping_tx));
}
void watch_ping(const std::string& app, ns3::Ptr<ns3::Application> object) {
    hook(object, app, "Rtt", ns3::MakeCallback(&ping_rtt));
    hook(object, app, "Drop", ns3::MakeCallback(&ping_drop));
    hook(object, app, "Report", ns3::MakeCallback(&ping_report));
}
void watch_echo(const std::string& app, ns3::Ptr<ns3::Application> object) {
    hook(object, app, "Tx", ns3::MakeCallback(&echo_tx));
    hook(object, app, "Rx", ns3::MakeCallback(&echo_rx));
}
void sink_rx(std::string path, ns3::Ptr<const ns3::Packet> p, const ns3::Address& from) {
    std::ostringstream s;
    s << ns3::Simulator::Now().GetNanoSeconds() << " " << p->GetSize() << " ";
    if (ns3::InetSocketAddress::IsMatchingType(from)) {
        ns3::InetSocketAddress a = ns3::InetSocketAddress::ConvertFrom(from);
        s << a.GetIpv4() << " " << a.GetPort();
    } else {
        s << "- 0";
    }
    s << "\n";
    records[app_of(path)] += s.str();
}
void watch_sink(const std::string& app, ns3::Ptr<ns3::Application> object) {
    hook(object, app, "Rx", ns3::MakeCallback(&sink_rx));
}
// the congestion control types of a node's TCP sockets, space-separated
std::string congestion_of(const std::string& node) {
    ns3::Config::MatchContainer m = ns3::Config::LookupMatches(node + "/$ns3::TcpL4Protocol/SocketList/*");
    std::string names;
    for (std::size_t i = 0; i < m.GetN(); i++) {
        ns3::PointerValue ops;
        if (m.Get(i)->GetAttributeFailSafe("CongestionOps", ops) && ops.GetObject()) {
            names += ops.GetObject()->GetInstanceTypeId().GetName() + " ";
        }
    }
    return names;
}
// ns-3 objects matched by a Config path (its last segment, the attribute, left out)
std::string instance_types(const std::string& path) {
    ns3::Config::MatchContainer m = ns3::Config::LookupMatches(path);
    std::string names;
    for (std::size_t i = 0; i < m.GetN(); i++) names += m.Get(i)->GetInstanceTypeId().GetName() + "\n";
    return names;
}
// FlowMonitor's statistics per flow as CSV, times in integer nanoseconds (its XML rounds them)
std::string flow_table(ns3::Ptr<ns3::FlowMonitor> monitor, ns3::Ptr<ns3::FlowClassifier> classifier) {
    ns3::Ptr<ns3::Ipv4FlowClassifier> ipv4 = ns3::DynamicCast<ns3::Ipv4FlowClassifier>(classifier);
    std::ostringstream s;
    s << "flow_id,protocol,source,source_port,destination,destination_port,tx_packets,tx_bytes,"
         "rx_packets,rx_bytes,lost_packets,dropped_packets,times_forwarded,delay_sum_ns,jitter_sum_ns,"
         "max_delay_ns,first_tx_ns,last_tx_ns,first_rx_ns,last_rx_ns\n";
    for (const auto& entry : monitor->GetFlowStats()) {
        const ns3::FlowMonitor::FlowStats& f = entry.second;
        ns3::Ipv4FlowClassifier::FiveTuple t = ipv4->FindFlow(entry.first);
        uint64_t dropped = 0;
        for (uint32_t n : f.packetsDropped) dropped += n;
        s << entry.first << "," << int(t.protocol) << "," << t.sourceAddress << "," << t.sourcePort << ","
          << t.destinationAddress << "," << t.destinationPort << "," << f.txPackets << "," << f.txBytes << ","
          << f.rxPackets << "," << f.rxBytes << "," << f.lostPackets << "," << dropped << ","
          << f.timesForwarded << "," << f.delaySum.GetNanoSeconds() << "," << f.jitterSum.GetNanoSeconds()
          << "," << f.maxDelay.GetNanoSeconds() << "," << f.timeFirstTxPacket.GetNanoSeconds() << ","
          << f.timeLastTxPacket.GetNanoSeconds() << "," << f.timeFirstRxPacket.GetNanoSeconds() << ","
          << f.timeLastRxPacket.GetNanoSeconds() << "\n";
    }
    return s.str();
}
std::set<uint32_t> watched_nodes;  // nodes whose received TTLs are followed
// Installs `helper`'s application on `node`, started and stopped at the given simulated
// seconds, with the trace sources of its `kind` connected (0 none, 1 ping, 2 UDP echo
// client, 3 packet sink; a ping's `count` requests, 0 for no limit); returns its Config
// path.  One call from Python per application: in a fresh fork, the first call of every
// C++ method from Python costs cppyy a compilation (~10 ms each), and this one is made
// once, with a null node, in the shared process before it forks (it returns "" then).
std::string install(ns3::ApplicationHelper& helper, ns3::Ptr<ns3::Node> node, double start, double stop,
                    const std::string& type_name, int kind, uint32_t count) {
    if (!node) return "";
    uint32_t index = node->GetNApplications();
    ns3::ApplicationContainer apps = helper.Install(node);
    apps.Start(ns3::Seconds(start));
    apps.Stop(ns3::Seconds(stop));
    std::string node_path = "/NodeList/" + std::to_string(node->GetId());
    std::string path = node_path + "/ApplicationList/" + std::to_string(index) + "/$" + type_name;
    ns3::Ptr<ns3::Application> app = apps.Get(0);
    if (kind == 1) {
        watch_ping(path, app);
        if (count) limit_ping(path, app, count);
    } else if (kind == 2) {
        watch_echo(path, app);
    } else if (kind == 3) {
        watch_sink(path, app);
    }
    if ((kind == 1 || kind == 2) && watched_nodes.insert(node->GetId()).second) watch_node(node_path, node);
    return path;
}
// Runs the simulation until `t` simulated seconds (from Python: compiled in the shared
// process, by a call with t < 0 that does nothing, rather than in every fork)
void run_until(double t) {
    if (t < 0) return;
    ns3::Time delay = ns3::Seconds(t) - ns3::Simulator::Now();
    if (delay.IsStrictlyPositive()) {
        ns3::Simulator::Stop(delay);
        ns3::Simulator::Run();
    }
}
// every application's records since the last call, in one string (one call per chunk of
// simulated time, not one per application): "<path>\x1f<records>\x1e" each
std::string take_all() {
    std::string out;
    for (auto& entry : records) {
        if (entry.second.empty()) continue;
        out += entry.first;
        out += '\x1f';
        out += entry.second;
        out += '\x1e';
        entry.second.clear();
    }
    return out;
}
}
"""

#: The attribute values ns-3's checkers accepted, (type, attribute, value): each is checked
#: once per process; the shared process's warm-up checks the defaults, its forks inherit them.
_CHECKED: set[tuple[str, str, str]] = set()

#: The trace sources ``nepi_lab::install`` connects, by application kind (the others: none).
_HOOKS = {"ping": 1, "udp_echo_client": 2, "packet_sink": 3}

#: Application attributes ``ns3Attributes`` may not set, and what sets them instead.
_RESERVED = {"StartTime": "the resource's startTime and the conditions compiled into it",
             "StopTime": "the resource's stopTime and the conditions compiled into it"}
_PING_RESERVED = {"VerboseMode": "the stdout trace is Linux ping's lines, written by nepi_lab",
                  "Count": "the resource's count: ns-3's own loses replies under 1 ms"}

#: ns-3's Ping::DropReason values, as Linux ping words them (a timeout prints nothing).
_DROP_WORDS = {1: "Destination Host Unreachable"}


class BuildError(Exception):
    """The description cannot be built: ``guid`` names the resource at fault."""

    def __init__(self, guid: int | None, message: str) -> None:
        super().__init__(message)
        self.guid = guid


def _die_with_parent(parent: int | None = None) -> None:
    """SIGKILL when the parent ends; end at once if it already did (``parent``: its pid,
    when known: a subreaper, not only init, may have adopted us)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the end of standard input still ends us
        pass
    if os.getppid() == 1 or (parent is not None and os.getppid() != parent):  # it died before prctl
        os._exit(1)


class World:
    """One simulation built from its description (ns-3 imported here, in the child)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        ns = _import_ns()
        self.ns = ns
        self.spec = spec
        self.stop_time = float(spec["stop_time"])
        ns.RngSeedManager.SetSeed(int(spec["seed"]))
        ns.RngSeedManager.SetRun(int(spec["run"]))
        if spec.get("checksum"):
            ns.GlobalValue.Bind("ChecksumEnabled", ns.BooleanValue(True))
        self.cpp = ns.cppyy.gbl.nepi_lab
        self.nodes: dict[int, Any] = {}
        self.first_address: dict[int, str] = {}
        self.addresses: dict[str, list[str]] = {}
        self.networks: dict[str, str] = {}  # link guid -> its IPv4 network
        self.apps: list[dict[str, Any]] = []
        self.streams: list[Any] = []  # ASCII trace files, flushed at the end
        self.monitor: Any = None
        self.variants: dict[int, tuple[int, str]] = {}  # node id -> (application guid, TCP variant)
        self._addressing: Any = None  # the Ipv4AddressHelper every link's addresses come from
        self._p2p_helpers: dict[tuple[str, str, str], Any] = {}  # see _p2p_helper
        self._by_path: dict[str, dict[str, Any]] = {}  # application Config path -> its record
        for key, value in (spec.get("defaults") or {}).items():
            type_name, _, name = key.rpartition("::")
            if not type_name.startswith("ns3::"):
                raise BuildError(None, f"defaults: {key!r} is not 'ns3::Type::Attribute' "
                                       "(e.g. 'ns3::TcpSocket::SegmentSize')")
            ns.Config.SetDefault(key, self.check(None, type_name, name, value))
        self._build()

    # -- attributes, checked before ns-3 sees them (a bad one is NS_FATAL there) -------

    def check(self, guid: int, type_name: str, name: str, value: str) -> Any:
        """``value`` as an ns-3 attribute value of ``type_name``'s ``name``; raises BuildError."""
        key = (type_name, name, str(value))
        if key not in _CHECKED:
            self._check(guid, type_name, name, str(value))
            _CHECKED.add(key)
        return self.ns.StringValue(str(value))

    def _check(self, guid: int, type_name: str, name: str, value: str) -> None:
        ns = self.ns
        tid = ns.TypeId()
        if not ns.TypeId.LookupByNameFailSafe(type_name, tid):  # LookupByName aborts on a bad name
            raise BuildError(guid, f"ns-3 has no type {type_name!r}")
        info = ns.TypeId.AttributeInformation()
        if not tid.LookupAttributeByName(name, info):
            raise BuildError(guid, f"{type_name} has no attribute {name!r}; it has: {_names(ns, type_name)}")
        if not info.checker.CreateValidValue(ns.StringValue(value)):
            raise BuildError(guid, f"{value!r} is not a valid value for {type_name}::{name} "
                                   f"({_text(info.checker.GetValueTypeName())})")

    # -- building ------------------------------------------------------------------

    def _build(self) -> None:
        ns = self.ns
        container = ns.NodeContainer()  # one call for all (a call per node costs a JIT per fork)
        container.Create(len(self.spec["nodes"]))
        for i, node in enumerate(self.spec["nodes"]):
            self.nodes[node["guid"]] = container.Get(i)
        ns.InternetStackHelper().Install(container)
        for node in self.spec["nodes"]:
            self._node_attributes(node)
        automatic = 0
        for link in self.spec["links"]:
            if link.get("kind") == "csma":
                automatic = self._csma(link, automatic)
            else:
                automatic = self._link(link, automatic)
        for route in self.spec.get("routes", ()):
            self._route(route)
        if self.spec.get("global_routing", True):
            ns.Ipv4GlobalRoutingHelper.PopulateRoutingTables()
        for app in self.spec["apps"]:
            self._app(app)
        self._by_path = {app["path"]: app for app in self.apps}
        self._config(self.spec.get("config") or {})
        if self.spec.get("flows"):
            self.flow_helper = ns.FlowMonitorHelper()  # owns the classifier: kept
            self.monitor = self.flow_helper.InstallAll()

    def _node_attributes(self, node: dict[str, Any]) -> None:
        """A node's raw attributes: ``Attribute`` of ns3::Node, or ``ns3::Type::Attribute``
        of an object aggregated to it (``ns3::Ipv4L3Protocol::DefaultTtl``)."""
        ns, guid = self.ns, node["guid"]
        for key, value in (node.get("ns3_attributes") or {}).items():
            type_name, _, name = key.rpartition("::")
            n = self.nodes[guid]
            if not type_name:
                n.SetAttribute(key, self.check(guid, "ns3::Node", key, value))
                continue
            checked = self.check(guid, type_name, name, value)
            if not ns.Config.SetFailSafe(f"/NodeList/{n.GetId()}/${type_name}/{name}", checked):
                raise BuildError(guid, f"ns3Attributes: the node has no {type_name} (name an attribute of "
                                       "ns3::Node, or ns3::Type::Attribute of an object of its stack, such "
                                       "as "
                                       "ns3::Ipv4L3Protocol::DefaultTtl or ns3::TcpL4Protocol::SocketType)")

    def _config(self, config: dict[str, str]) -> None:
        """``Config::Set`` by path, each value checked against every object the path matches."""
        ns = self.ns
        for path, value in config.items():
            base, _, name = path.rpartition("/")
            if not base or not name:
                raise BuildError(None, f"config: {path!r} is not a Config path ending with an attribute, "
                                       "e.g. '/NodeList/0/$ns3::Ipv4L3Protocol/DefaultTtl'")
            types = [t for t in str(self.cpp.instance_types(base)).splitlines() if t]
            if not types:
                raise BuildError(None, f"config: no ns-3 object matches {base!r} (of {path!r})")
            for type_name in sorted(set(types)):
                checked = self.check(None, type_name, name, value)
            ns.Config.Set(path, checked)

    def _link(self, link: dict[str, Any], automatic: int) -> int:
        ns = self.ns
        p2p = self._p2p_helper(link)
        a, b = self.nodes[link["a"]], self.nodes[link["b"]]
        devices = p2p.Install(a, b)
        self._loss(link, devices)
        automatic = self._assign(link, devices, (link["a"], link["b"]), automatic)
        for i, path in enumerate(link.get("pcap") or ()):
            if path:
                p2p.EnablePcap(path, devices.Get(i), False, True)
        for i, path in enumerate(link.get("ascii") or ()):
            if path:
                stream = ns.AsciiTraceHelper().CreateFileStream(path)
                p2p.EnableAscii(stream, devices.Get(i))
                self.streams.append(stream)
        self._link_attributes(link, devices, "ns3::PointToPointNetDevice", "ns3::PointToPointChannel")
        return automatic

    def _link_attributes(self, link: dict[str, Any], devices: Any, device_type: str,
                         channel_type: str) -> None:
        """A link's ``ns3Attributes``: each on its devices, or else on their channel."""
        ns, guid = self.ns, link["guid"]
        for key, value in (link.get("ns3_attributes") or {}).items():
            info = ns.TypeId.AttributeInformation()
            if ns.TypeId.LookupByName(device_type).LookupAttributeByName(key, info):
                for i in range(devices.GetN()):
                    devices.Get(i).SetAttribute(key, self.check(guid, device_type, key, value))
            elif ns.TypeId.LookupByName(channel_type).LookupAttributeByName(key, info):
                devices.Get(0).GetChannel().SetAttribute(key, self.check(guid, channel_type, key, value))
            else:
                raise BuildError(guid, f"ns3Attributes: neither {device_type} nor {channel_type} has an "
                                       f"attribute {key!r}; the devices have: {_names(ns, device_type)}; "
                                       f"the channel has: {_names(ns, channel_type)}")

    def _assign(self, link: dict[str, Any], devices: Any, node_guids: Any, automatic: int) -> int:
        """IPv4 addresses for a link's ``devices`` (of ``node_guids``, in order) from its network."""
        ns, guid = self.ns, link["guid"]
        network = link.get("network")
        if not network:
            automatic += 1
            network = f"10.{automatic // 256}.{automatic % 256}.0/24"
        net, _, prefix = network.partition("/")
        if devices.GetN() > (1 << (32 - int(prefix or 24))) - 2:
            raise BuildError(guid, f"network {network} has too few addresses for {devices.GetN()} ends")
        if self._addressing is None:
            self._addressing = ns.Ipv4AddressHelper()
        helper = self._addressing
        helper.SetBase(ns.Ipv4Address(net), ns.Ipv4Mask(f"/{prefix or 24}"))
        interfaces = helper.Assign(devices)
        ends = []
        for i, node_guid in enumerate(node_guids):
            address = _address_text(interfaces.GetAddress(i))
            ends.append(address)
            self.first_address.setdefault(node_guid, address)
        self.addresses[str(guid)] = ends
        self.networks[str(guid)] = f"{net}/{prefix or 24}"
        return automatic

    def _loss(self, link: dict[str, Any], devices: Any) -> None:
        """The link's ``loss_rate``: a RateErrorModel per packet on each receiving device."""
        ns = self.ns
        loss = float(link.get("loss_rate") or 0.0)
        if loss <= 0:
            return
        for i in range(devices.GetN()):
            model = ns.CreateObject[ns.RateErrorModel]()
            model.SetAttribute("ErrorRate", ns.DoubleValue(loss))
            model.SetAttribute("ErrorUnit", ns.StringValue("ERROR_UNIT_PACKET"))
            devices.Get(i).SetAttribute("ReceiveErrorModel", ns.PointerValue(model))

    def _csma(self, link: dict[str, Any], automatic: int) -> int:
        """A CSMA bus: one CsmaChannel, a CsmaNetDevice per node."""
        ns, guid = self.ns, link["guid"]
        csma = ns.CsmaHelper()
        csma.SetChannelAttribute("DataRate",
                                 self.check(guid, "ns3::CsmaChannel", "DataRate", link["data_rate"]))
        csma.SetChannelAttribute("Delay", self.check(guid, "ns3::CsmaChannel", "Delay", link["delay"]))
        csma.SetQueue("ns3::DropTailQueue<Packet>", "MaxSize",
                      self.check(guid, "ns3::DropTailQueue<Packet>", "MaxSize", link["queue_size"]))
        members = ns.NodeContainer()
        for node_guid in link["nodes"]:
            members.Add(self.nodes[node_guid])
        devices = csma.Install(members)
        self._loss(link, devices)
        automatic = self._assign(link, devices, link["nodes"], automatic)
        self._link_attributes(link, devices, "ns3::CsmaNetDevice", "ns3::CsmaChannel")
        if link.get("pcap"):
            csma.EnablePcap(link["pcap"], devices.Get(0), True, True)
        return automatic

    def _route(self, route: dict[str, Any]) -> None:
        """A static route, on the interface whose subnet holds the gateway."""
        import ipaddress

        ns, guid = self.ns, route["guid"]
        ipv4 = self.nodes[route["node"]].GetObject[ns.Ipv4]()
        gateway = ipaddress.IPv4Address(route["gateway"])
        interface = None
        for i in range(1, ipv4.GetNInterfaces()):  # 0 is the loopback
            for j in range(ipv4.GetNAddresses(i)):
                address = ipv4.GetAddress(i, j)
                local = _address_text(address.GetLocal())
                subnet = ipaddress.IPv4Interface(f"{local}/{address.GetMask().GetPrefixLength()}").network
                if gateway in subnet:
                    interface = i
        if interface is None:
            raise BuildError(guid, f"gateway {gateway} is on no subnet of node {route['node']}'s links")
        static = ns.Ipv4StaticRoutingHelper().GetStaticRouting(ipv4)
        if route["destination"] == "default":
            static.SetDefaultRoute(ns.Ipv4Address(str(gateway)), interface)
        else:
            network = ipaddress.IPv4Network(route["destination"])
            static.AddNetworkRouteTo(ns.Ipv4Address(str(network.network_address)),
                                     ns.Ipv4Mask(f"/{network.prefixlen}"), ns.Ipv4Address(str(gateway)),
                                     interface)

    def _p2p_helper(self, link: dict[str, Any]) -> Any:
        """The PointToPointHelper of the link's data rate, delay and queue size: one per
        distinct set (its values checked once), not one per link (a tree of 100 links:
        about 50 ms less)."""
        key = (link["data_rate"], link["delay"], link["queue_size"])
        helpers = self._p2p_helpers
        if key not in helpers:
            ns, guid = self.ns, link["guid"]
            p2p = ns.PointToPointHelper()
            p2p.SetDeviceAttribute("DataRate", self.check(guid, "ns3::PointToPointNetDevice", "DataRate",
                                                          link["data_rate"]))
            p2p.SetChannelAttribute("Delay", self.check(guid, "ns3::PointToPointChannel", "Delay",
                                                        link["delay"]))
            p2p.SetQueue("ns3::DropTailQueue<Packet>", "MaxSize",
                         self.check(guid, "ns3::DropTailQueue<Packet>", "MaxSize", link["queue_size"]))
            helpers[key] = p2p
        return helpers[key]

    def _target(self, app: dict[str, Any]) -> str:
        target = app["target"]
        if isinstance(target, dict):
            address = self.first_address.get(target["node"])
            if address is None:
                raise BuildError(app["guid"], f"node {target['node']} has no IPv4 address (no link)")
            return address
        return str(target)

    def _app(self, app: dict[str, Any]) -> None:
        ns, guid, kind = self.ns, app["guid"], app["kind"]
        if float(app["start"]) >= self.stop_time:  # never runs (ns-3 would stop it before its start)
            return
        node = self.nodes[app["node"]]
        attributes = app.get("attributes", {})
        if kind == "ping":
            type_name = "ns3::Ping"
            helper = ns.PingHelper(ns.Ipv4Address(self._target(app)).ConvertTo())
            attributes = {**attributes, "VerboseMode": "Silent"}
        elif kind == "udp_echo_server":
            type_name = "ns3::UdpEchoServer"
            helper = ns.UdpEchoServerHelper(int(app["port"]))
        elif kind == "udp_echo_client":
            type_name = "ns3::UdpEchoClient"
            helper = ns.UdpEchoClientHelper(ns.Ipv4Address(self._target(app)).ConvertTo(), int(app["port"]))
        elif kind == "packet_sink":
            type_name = "ns3::PacketSink"
            helper = ns.PacketSinkHelper(app["protocol"], ns.InetSocketAddress(
                ns.Ipv4Address.GetAny(), int(app["port"])).ConvertTo())
        elif kind in ("onoff", "bulk_send"):
            type_name = "ns3::OnOffApplication" if kind == "onoff" else "ns3::BulkSendApplication"
            remote = ns.InetSocketAddress(ns.Ipv4Address(self._target(app)), int(app["port"])).ConvertTo()
            helper = (ns.OnOffHelper if kind == "onoff" else ns.BulkSendHelper)(app["protocol"], remote)
            if app.get("tcp_variant"):
                self._tcp_variant(guid, node, app["tcp_variant"])
        elif kind == "raw":
            type_name = str(app["type_id"])
            helper = None
            tid = ns.TypeId()
            if not ns.TypeId.LookupByNameFailSafe(type_name, tid) or \
                    not tid.IsChildOf(ns.TypeId.LookupByName("ns3::Application")):
                raise BuildError(guid, f"typeId {type_name!r} is not an ns-3 application type; ns-3 has: "
                                       + ", ".join(_subtypes(ns, "ns3::Application")))
        else:
            raise BuildError(guid, f"unknown application kind {kind!r}")
        raw = app.get("raw") or {}
        for name in raw:
            owner = _RESERVED.get(name) or (_PING_RESERVED.get(name) if kind == "ping" else None)
            if owner:
                raise BuildError(guid, f"ns3Attributes: {name} is set by nepi_lab ({owner}); leave it out")
        attributes = {**attributes, **raw}
        checked = {name: self.check(guid, type_name, name, value) for name, value in attributes.items()}
        if helper is None:  # any application type, by its TypeId
            helper = ns.ApplicationHelper(type_name)
        for name, value in checked.items():
            helper.SetAttribute(name, value)
        path = str(self.cpp.install(helper, node, float(app["start"]), float(app["stop"]), type_name,
                                    _HOOKS.get(kind, 0), int(app.get("count") or 0)))
        record = {**app, "path": path, "target_address": None, "out": None, "pending": [], "seen": 0}
        if kind in ("ping", "udp_echo_client"):
            record["target_address"] = self._target(app)
        if kind == "packet_sink":
            record["total"] = 0
            if app.get("rx"):
                record["rx_out"] = open(app["rx"], "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        if app.get("stdout"):
            record["out"] = open(app["stdout"], "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
            if kind == "ping":
                size = int(attributes.get("Size", 56))
                record["out"].write(f"PING {record['target_address']} ({record['target_address']}) "
                                    f"{size}({size + 28}) bytes of data.\n")
        self.apps.append(record)

    def _tcp_variant(self, guid: int, node: Any, variant: str) -> None:
        """The congestion control of ``node``'s TCP sockets (those made from now on)."""
        ns = self.ns
        tid = ns.TypeId()
        if not ns.TypeId.LookupByNameFailSafe(variant, tid) or \
                not tid.IsChildOf(ns.TypeId.LookupByName("ns3::TcpCongestionOps")) or \
                variant == "ns3::TcpCongestionOps":
            names = [n.removeprefix("ns3::") for n in _subtypes(ns, "ns3::TcpCongestionOps")]
            raise BuildError(guid, f"tcpVariant {variant.removeprefix('ns3::')!r} is not one of ns-3's TCP "
                                   f"congestion controls: {', '.join(names)}")
        chosen = self.variants.setdefault(node.GetId(), (guid, variant))
        if chosen[1] != variant:
            raise BuildError(guid, f"tcpVariant {variant} differs from {chosen[1]} of application "
                                   f"{chosen[0]} on the same node (the variant is the node's, for all its "
                                   "TCP sockets)")
        ns.Config.Set(f"/NodeList/{node.GetId()}/$ns3::TcpL4Protocol/SocketType", ns.TypeIdValue(tid))

    # -- running ---------------------------------------------------------------------

    def run(self, send: Any) -> None:
        """Run to the stop time in chunks, reporting the applications' states."""
        marks: dict[float, list[tuple[dict[str, Any], str]]] = {}
        for app in self.apps:
            start, stop = float(app["start"]), min(float(app["stop"]), self.stop_time)
            if start < self.stop_time:
                marks.setdefault(start, []).append((app, "STARTED"))
                marks.setdefault(max(stop, start), []).append((app, "FINISHED"))
        step = self.stop_time / 20 if self.stop_time > 0 else 1.0
        times = sorted({*marks, *(i * step for i in range(1, 20)), self.stop_time})
        for t in times:
            if t > self.stop_time:
                break
            self.cpp.run_until(t)
            self._drain()
            self._congestion()
            for app, state in marks.get(t, ()):
                if state == "FINISHED":
                    self._close_app(app)
                send({"event": "app", "guid": app["guid"], "state": state, "sim_time": t})
            send({"event": "progress", "sim_time": t})
        for app in self.apps:
            self._close_app(app)
        for stream in self.streams:
            stream.GetStream().flush()
        if self.monitor is not None:
            self.monitor.CheckForLostPackets()
            with open(self.spec["flows"], "w", encoding="utf-8") as flows:
                flows.write(str(self.cpp.flow_table(self.monitor, self.flow_helper.GetClassifier())))
        send({"event": "results", "values": self._results()})
        send({"event": "finished", "sim_time": self.stop_time})

    def _drain(self) -> None:
        """Write what the applications recorded since the last call (one call into C++)."""
        text = str(self.cpp.take_all())
        if not text:
            return
        by_path = self._by_path
        for chunk in text.split("\x1e"):
            path, _, records = chunk.partition("\x1f")
            app = by_path.get(path)
            if app is None or not records:
                continue
            if app["kind"] == "packet_sink":
                self._sink_records(app, records)
            elif app["kind"] in ("ping", "udp_echo_client") and app["out"] is not None:
                app["out"].write(self._format(app, records))
                app["out"].flush()

    def _sink_records(self, app: dict[str, Any], text: str) -> None:
        lines = []
        for record in text.splitlines():
            time_ns, size, source, port = record.split()
            app["total"] += int(size)
            lines.append(f"{int(time_ns) / 1e9:.9f} {size} {source} {port}\n")
        if app.get("rx_out") is not None:
            app["rx_out"].write("".join(lines))
            app["rx_out"].flush()

    def _results(self) -> dict[str, dict[str, Any]]:
        """What the applications measured, for their attributes."""
        values: dict[str, dict[str, Any]] = {}
        for app in self.apps:
            if app["kind"] == "packet_sink":
                values[str(app["guid"])] = {"totalRx": app["total"]}
            elif app["kind"] == "bulk_send" and app.get("congestion"):
                values[str(app["guid"])] = {"congestionControl": app["congestion"]}
        return values

    def _congestion(self) -> None:
        """Read the congestion control of a BulkSend's node's sockets once they exist."""
        for app in self.apps:
            if app["kind"] == "bulk_send" and not app.get("congestion"):
                names = str(self.cpp.congestion_of(app["path"].split("/ApplicationList")[0])).split()
                if names:
                    app["congestion"] = names[0]
                    print(f"application {app['guid']} (ns3::BulkSendApplication): TCP congestion control "
                          f"{names[0]}", flush=True)

    def _format(self, app: dict[str, Any], text: str) -> str:
        """Linux ping's lines from the C++ records."""
        lines = []
        target = app["target_address"]
        for record in text.splitlines():
            kind, *fields = record.split()
            if app["kind"] == "ping":
                size = int(app.get("attributes", {}).get("Size", 56)) + 8
                if kind == "R":
                    seq, rtt_ns, ttl = int(fields[0]), int(fields[1]), int(fields[2])
                    app.setdefault("rtts", []).append(rtt_ns / 1e6)
                    lines.append(f"{size} bytes from {target}: icmp_seq={seq} ttl={ttl} "
                                 f"time={rtt_ns / 1e6:.3f} ms")
                elif kind == "D" and int(fields[1]) in _DROP_WORDS:
                    lines.append(f"From {target} icmp_seq={fields[0]} {_DROP_WORDS[int(fields[1])]}")
                elif kind == "S":
                    tx, rx, loss, duration = (int(x) for x in fields[:4])
                    lines += ["", f"--- {target} ping statistics ---",
                              f"{tx} packets transmitted, {rx} received, {loss}% packet loss, "
                              f"time {duration}ms"]
                    rtts = app.get("rtts")
                    if rx and rtts:  # ns-3's figures are whole milliseconds: Linux ping's, from the replies
                        mean = sum(rtts) / len(rtts)
                        mdev = max(sum(r * r for r in rtts) / len(rtts) - mean * mean, 0.0) ** 0.5
                        lines.append(f"rtt min/avg/max/mdev = {min(rtts):.3f}/{mean:.3f}/{max(rtts):.3f}/"
                                     f"{mdev:.3f} ms")
            elif kind == "T":  # echo client: a request sent
                app["pending"].append(int(fields[0]))
            elif kind == "R":
                sent = app["pending"].pop(0) if app["pending"] else int(fields[0])
                app["seen"] += 1
                lines.append(f"{fields[1]} bytes from {target}: seq={app['seen'] - 1} ttl={fields[2]} "
                             f"time={(int(fields[0]) - sent) / 1e6:.3f} ms")
        return "".join(line + "\n" for line in lines)

    def _close_app(self, app: dict[str, Any]) -> None:
        """Close an application's files (in :meth:`run`, its records were drained just before)."""
        for key in ("out", "rx_out"):
            if app.get(key) is not None:
                app[key].close()
                app[key] = None

    def close(self) -> None:
        for app in self.apps:
            self._close_app(app)
        for stream in self.streams:
            stream.GetStream().flush()
        self.ns.Simulator.Destroy()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _describe_type(ns: Any, tid: Any) -> list[dict[str, str]]:
    """Every attribute of TypeId ``tid``, its parents' included (nearest first): name,
    help, value type, default, and the type that declares it."""
    entries = []
    seen: set[str] = set()
    while True:
        for i in range(tid.GetAttributeN()):
            info = tid.GetAttribute(i)
            name = _text(info.name)
            if name in seen:
                continue
            seen.add(name)
            try:
                default = _text(info.originalInitialValue.SerializeToString(info.checker))
            except Exception:  # noqa: BLE001 - a value that cannot print itself
                default = ""
            entries.append({"name": name, "help": _text(info.help),
                            "type": _text(info.checker.GetValueTypeName()).removeprefix("ns3::"),
                            "default": default, "declared_by": _text(tid.GetName()),
                            "access": ",".join(f for f, bit in (("get", 1), ("set", 2), ("construct", 4))
                                               if int(info.flags) & bit)})
        parent = tid.GetParent()
        if parent == tid or _text(parent.GetName()) in ("", _text(tid.GetName())):
            return entries
        tid = parent


def _names(ns: Any, type_name: str) -> str:
    """The attribute names of ``type_name`` (its parents' included), sorted, as text."""
    return ", ".join(sorted({e["name"] for e in _describe_type(ns, ns.TypeId.LookupByName(type_name))}))


def _subtypes(ns: Any, base: str) -> list[str]:
    """The names of ns-3's registered types that derive from ``base``, sorted."""
    parent = ns.TypeId.LookupByName(base)
    return sorted(_text(t.GetName()) for t in (ns.TypeId.GetRegistered(i)
                                               for i in range(ns.TypeId.GetRegisteredN()))
                  if t.IsChildOf(parent) and t != parent and t.HasConstructor())


def describe(ns: Any, type_name: str) -> dict[str, Any]:
    """The answer to a ``describe`` request: the attributes of ``type_name``, or an error
    with the closest type names."""
    import difflib

    tid = ns.TypeId()
    if not ns.TypeId.LookupByNameFailSafe(type_name, tid):
        names = [_text(ns.TypeId.GetRegistered(i).GetName()) for i in range(ns.TypeId.GetRegisteredN())]
        close = difflib.get_close_matches(type_name, names, n=5, cutoff=0.6)
        return {"event": "error", "guid": None,
                "message": f"ns-3 has no type {type_name!r}" + (f"; did you mean {', '.join(close)}?"
                                                                if close else "")}
    return {"event": "described", "type": type_name, "parent": _text(tid.GetParent().GetName()),
            "attributes": _describe_type(ns, tid)}


def _address_text(address: Any) -> str:
    import io

    # Ipv4Address prints itself through operator<<; cppyy maps it to str()
    text = str(address)
    if not text[:1].isdigit():  # an older cppyy: the object's repr
        buffer = io.StringIO()
        address.Print(buffer)
        text = buffer.getvalue()
    return text


def _import_ns() -> Any:
    """ns-3, with the C++ trace callbacks compiled (once per process)."""
    from ns import ns

    if not hasattr(ns.cppyy.gbl, "nepi_lab"):
        ns.cppyy.cppdef(_CPP)
        # an NS_FATAL_ERROR aborts: die at once (cppyy's handler would run gdb for a
        # backtrace of thousands of lines, seconds); ns-3 printed its msg="..." line before
        signal.signal(signal.SIGABRT, signal.SIG_DFL)
    return ns


def _warm_up(ns: Any) -> None:
    """Make cppyy compile, once in the shared process, the calls every simulation makes
    (a fork inherits them: about half of a small simulation's build time), without
    touching ns-3's global state: no node, no address, no simulator, no random stream
    (the seed and run number are set to their default values).  The default attribute
    values are checked here, once for every fork.

    Every call is made twice: cppyy's second call of a C++ function still costs about as
    much as its first (2-14 ms each, measured in the forks), the third costs microseconds."""
    for _ in range(2):
        _warm_calls(ns)


def _warm_calls(ns: Any) -> None:
    """The calls of :func:`_warm_up`, once."""
    for type_name, name, value in (("ns3::PointToPointNetDevice", "DataRate", "5Mbps"),
                                   ("ns3::PointToPointChannel", "Delay", "2ms"),
                                   ("ns3::DropTailQueue<Packet>", "MaxSize", "100p"),
                                   ("ns3::Ping", "Interval", "1.0s"), ("ns3::Ping", "Size", "56"),
                                   ("ns3::Ping", "VerboseMode", "Silent")):
        tid = ns.TypeId()
        info = ns.TypeId.AttributeInformation()
        if (ns.TypeId.LookupByNameFailSafe(type_name, tid) and tid.LookupAttributeByName(name, info)
                and info.checker.CreateValidValue(ns.StringValue(value))):
            _CHECKED.add((type_name, name, value))  # World.check's own test, done once here
    helper = ns.PointToPointHelper()
    helper.SetDeviceAttribute("DataRate", ns.StringValue("5Mbps"))
    helper.SetChannelAttribute("Delay", ns.StringValue("2ms"))
    helper.SetQueue("ns3::DropTailQueue<Packet>", "MaxSize", ns.StringValue("100p"))
    ns.InternetStackHelper()
    address = ns.Ipv4Address("10.0.0.1")
    ping = ns.PingHelper(address.ConvertTo())
    ping.SetAttribute("Size", ns.StringValue("56"))
    ns.cppyy.gbl.nepi_lab.install(ping, ns.Ptr[ns.Node](), 1.0, 2.0, "ns3::Ping", 1, 0)  # no node: nothing
    ns.ApplicationHelper("ns3::Ping")
    ns.UdpEchoServerHelper(9)
    ns.UdpEchoClientHelper(address.ConvertTo(), 9)
    ns.Ipv4Mask("/24")
    ns.Seconds(1.0)
    # the traffic applications' helpers (factories only: no object of the world is made)
    remote = ns.InetSocketAddress(address, 9).ConvertTo()
    ns.PacketSinkHelper("ns3::UdpSocketFactory", ns.InetSocketAddress(ns.Ipv4Address.GetAny(), 9).ConvertTo())
    ns.OnOffHelper("ns3::UdpSocketFactory", remote).SetAttribute("DataRate", ns.StringValue("1Mbps"))
    ns.BulkSendHelper("ns3::TcpSocketFactory", remote)
    str(address)  # Ipv4Address's operator<<: every link's addresses
    apps = ns.ApplicationContainer()  # empty: no application, no node
    apps.Start(ns.Seconds(1.0))
    apps.Stop(ns.Seconds(2.0))
    ns.cppyy.gbl.nepi_lab.run_until(-1.0)  # the chunks' loop: no simulator made
    str(ns.cppyy.gbl.nepi_lab.take_all())  # the records' hand-over (none yet: no application)
    ns.RngSeedManager.SetSeed(1)  # ns-3's defaults (every simulation sets its own)
    ns.RngSeedManager.SetRun(1)


def serve(incoming: Any, outgoing: Any) -> int:
    """Run one simulation: its description and commands read from ``incoming``, events
    written to ``outgoing`` (text files).  Returns the exit status."""

    def send(message: dict[str, Any]) -> None:
        outgoing.write(json.dumps(message, allow_nan=False) + "\n")
        outgoing.flush()

    send({"event": "hello", "pid": os.getpid()})
    line = incoming.readline()
    if not line:
        return 0
    spec = json.loads(line)
    if spec.get("describe"):  # a question about ns-3's types, no simulation
        send(describe(_import_ns(), str(spec["describe"])))
        return 0
    if spec.get("log"):  # C++ std::cout, std::cerr and ns-3's aborts go to the simulation's log
        fd = os.open(spec["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    try:
        world = World(spec)
    except BuildError as exc:
        send({"event": "error", "guid": exc.guid, "message": str(exc)})
        return 1
    except Exception as exc:  # noqa: BLE001 - a cppyy exception carries ns-3's message
        send({"event": "error", "guid": None, "message": f"{type(exc).__name__}: {exc}"})
        return 1
    send({"event": "ready", "addresses": world.addresses, "networks": world.networks})
    for line in incoming:
        command = json.loads(line)
        if command.get("do") == "run":
            try:
                world.run(send)
            except Exception as exc:  # noqa: BLE001
                send({"event": "error", "guid": None, "message": f"{type(exc).__name__}: {exc}"})
                return 1
        elif command.get("do") == "quit":
            break
    world.close()
    return 0


def main() -> int:
    """One simulation over standard input and output (see the module docstring)."""
    _die_with_parent()
    protocol = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # C++ std::cout (and Python's print) go to standard error
    return serve(sys.stdin, protocol)


def zygote(listen_fd: int) -> int:
    """Import ns-3 once, then fork a process per connection on the listening socket
    ``listen_fd``; each runs :func:`serve` over its connection.  Ends when standard
    input closes (the controller's process ended or closed it)."""
    import selectors
    import socket

    listener = socket.socket(fileno=listen_fd)
    os.dup2(2, 1)
    _warm_up(_import_ns())
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    selector.register(sys.stdin, selectors.EVENT_READ)
    while True:
        for key, _ in selector.select():
            if key.fileobj is sys.stdin:
                if not os.read(0, 4096):
                    return 0
                continue
            try:
                connection, _ = listener.accept()
            except OSError:
                continue
            me = os.getpid()
            if os.fork() == 0:  # the simulation's process
                try:
                    selector.close()
                    listener.close()
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    os.setsid()
                    _die_with_parent(me)
                    incoming = connection.makefile("r", encoding="utf-8")
                    outgoing = connection.makefile("w", encoding="utf-8")
                    status = serve(incoming, outgoing)
                    outgoing.flush()
                finally:
                    os._exit(locals().get("status", 1))
            connection.close()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--zygote":
        sys.exit(zygote(int(sys.argv[2])))
    sys.exit(main())
