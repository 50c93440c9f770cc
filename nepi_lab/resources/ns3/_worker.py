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
error), builds it and answers ``{"event": "ready", "addresses": {link guid: [a, b]}}``
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
void watch_node(const std::string& node) {
    ns3::Config::Connect(node + "/$ns3::Ipv4L3Protocol/Rx", ns3::MakeCallback(&receive));
}
void watch_ping(const std::string& app) {
    ns3::Config::Connect(app + "/Rtt", ns3::MakeCallback(&ping_rtt));
    ns3::Config::Connect(app + "/Drop", ns3::MakeCallback(&ping_drop));
    ns3::Config::Connect(app + "/Report", ns3::MakeCallback(&ping_report));
}
void watch_echo(const std::string& app) {
    ns3::Config::Connect(app + "/Tx", ns3::MakeCallback(&echo_tx));
    ns3::Config::Connect(app + "/Rx", ns3::MakeCallback(&echo_rx));
}
std::string take(const std::string& app) {
    std::string text = records[app];
    records[app].clear();
    return text;
}
}
"""

#: The attribute values ns-3's checkers accepted, (type, attribute, value): each is checked
#: once per process; the shared process's warm-up checks the defaults, its forks inherit them.
_CHECKED: set[tuple[str, str, str]] = set()

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
        self.index: dict[int, int] = {}  # node guid -> ns-3 node id
        self.first_address: dict[int, str] = {}
        self.addresses: dict[str, list[str]] = {}
        self.apps: list[dict[str, Any]] = []
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
            names = sorted(_text(tid.GetAttribute(i).name) for i in range(tid.GetAttributeN()))
            raise BuildError(guid, f"{type_name} has no attribute {name!r}; it has: {', '.join(names)}")
        if not info.checker.CreateValidValue(ns.StringValue(value)):
            raise BuildError(guid, f"{value!r} is not a valid value for {type_name}::{name} "
                                   f"({_text(info.checker.GetValueTypeName())})")

    # -- building ------------------------------------------------------------------

    def _build(self) -> None:
        ns = self.ns
        container = ns.NodeContainer()  # one call for all (a call per node costs a JIT per fork)
        container.Create(len(self.spec["nodes"]))
        for i, node in enumerate(self.spec["nodes"]):
            n = container.Get(i)
            self.nodes[node["guid"]] = n
            self.index[node["guid"]] = n.GetId()
        ns.InternetStackHelper().Install(container)
        automatic = 0
        for link in self.spec["links"]:
            automatic = self._link(link, automatic)
        if self.spec.get("global_routing", True):
            ns.Ipv4GlobalRoutingHelper.PopulateRoutingTables()
        self.watched: set[int] = set()  # nodes whose received TTLs are followed (for their apps' lines)
        for app in self.spec["apps"]:
            self._app(app)

    def _link(self, link: dict[str, Any], automatic: int) -> int:
        ns, guid = self.ns, link["guid"]
        p2p = self._p2p_helper(link)
        a, b = self.nodes[link["a"]], self.nodes[link["b"]]
        devices = p2p.Install(a, b)
        loss = float(link.get("loss_rate") or 0.0)
        if loss > 0:
            for i in range(2):
                model = ns.CreateObject[ns.RateErrorModel]()
                model.SetAttribute("ErrorRate", ns.DoubleValue(loss))
                model.SetAttribute("ErrorUnit", ns.StringValue("ERROR_UNIT_PACKET"))
                devices.Get(i).SetAttribute("ReceiveErrorModel", ns.PointerValue(model))
        network = link.get("network")
        if not network:
            automatic += 1
            network = f"10.{automatic // 256}.{automatic % 256}.0/24"
        net, _, prefix = network.partition("/")
        helper = self.__dict__.get("_addressing") or self.__dict__.setdefault("_addressing",
                                                                             ns.Ipv4AddressHelper())
        helper.SetBase(ns.Ipv4Address(net), ns.Ipv4Mask(f"/{prefix or 24}"))
        interfaces = helper.Assign(devices)
        ends = []
        for i, node_guid in enumerate((link["a"], link["b"])):
            address = _address_text(interfaces.GetAddress(i))
            ends.append(address)
            self.first_address.setdefault(node_guid, address)
        self.addresses[str(guid)] = ends
        for i, path in enumerate(link.get("pcap") or ()):
            if path:
                p2p.EnablePcap(path, devices.Get(i), False, True)
        return automatic

    def _p2p_helper(self, link: dict[str, Any]) -> Any:
        """The PointToPointHelper of the link's data rate, delay and queue size: one per
        distinct set (its values checked once), not one per link (a tree of 100 links:
        about 50 ms less)."""
        key = (link["data_rate"], link["delay"], link["queue_size"])
        helpers = self.__dict__.setdefault("_p2p_helpers", {})
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
        else:
            raise BuildError(guid, f"unknown application kind {kind!r}")
        for name, value in attributes.items():
            helper.SetAttribute(name, self.check(guid, type_name, name, value))
        index = node.GetNApplications()
        installed = helper.Install(node)
        installed.Start(ns.Seconds(float(app["start"])))
        installed.Stop(ns.Seconds(float(app["stop"])))
        path = f"/NodeList/{node.GetId()}/ApplicationList/{index}/${type_name}"
        record = {**app, "path": path, "target_address": None, "out": None, "pending": [], "seen": 0}
        if kind in ("ping", "udp_echo_client"):
            record["target_address"] = self._target(app)
            (self.cpp.watch_ping if kind == "ping" else self.cpp.watch_echo)(path)
            if node.GetId() not in self.watched:
                self.watched.add(node.GetId())
                self.cpp.watch_node(f"/NodeList/{node.GetId()}")
        if app.get("stdout"):
            record["out"] = open(app["stdout"], "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
            if kind == "ping":
                size = int(attributes.get("Size", 56))
                record["out"].write(f"PING {record['target_address']} ({record['target_address']}) "
                                    f"{size}({size + 28}) bytes of data.\n")
        self.apps.append(record)

    # -- running ---------------------------------------------------------------------

    def run(self, send: Any) -> None:
        """Run to the stop time in chunks, reporting the applications' states."""
        ns = self.ns
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
            delay = ns.Seconds(t) - ns.Simulator.Now()
            if delay.IsStrictlyPositive():
                ns.Simulator.Stop(delay)
                ns.Simulator.Run()
            self._drain()
            for app, state in marks.get(t, ()):
                if state == "FINISHED":
                    self._close_app(app)
                send({"event": "app", "guid": app["guid"], "state": state, "sim_time": t})
            send({"event": "progress", "sim_time": t})
        for app in self.apps:
            self._close_app(app)
        send({"event": "finished", "sim_time": self.stop_time})

    def _drain(self) -> None:
        for app in self.apps:
            if app["kind"] in ("ping", "udp_echo_client"):
                text = str(self.cpp.take(app["path"]))
                if text and app["out"] is not None:
                    app["out"].write(self._format(app, text))
                    app["out"].flush()

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
                    lines.append(f"{size} bytes from {target}: icmp_seq={seq} ttl={ttl} "
                                 f"time={rtt_ns / 1e6:.3f} ms")
                elif kind == "D" and int(fields[1]) in _DROP_WORDS:
                    lines.append(f"From {target} icmp_seq={fields[0]} {_DROP_WORDS[int(fields[1])]}")
                elif kind == "S":
                    tx, rx, loss, duration = (int(x) for x in fields[:4])
                    lines += ["", f"--- {target} ping statistics ---",
                              f"{tx} packets transmitted, {rx} received, {loss}% packet loss, "
                              f"time {duration}ms"]
                    if rx:
                        rtts = "/".join(f"{float(x):.3f}" for x in fields[4:8])
                        lines.append(f"rtt min/avg/max/mdev = {rtts} ms")
            elif kind == "T":  # echo client: a request sent
                app["pending"].append(int(fields[0]))
            elif kind == "R":
                sent = app["pending"].pop(0) if app["pending"] else int(fields[0])
                app["seen"] += 1
                lines.append(f"{fields[1]} bytes from {target}: seq={app['seen'] - 1} ttl={fields[2]} "
                             f"time={(int(fields[0]) - sent) / 1e6:.3f} ms")
        return "".join(line + "\n" for line in lines)

    def _close_app(self, app: dict[str, Any]) -> None:
        out = app["out"]
        if out is None:
            return
        self._drain()
        app["out"] = None
        out.close()

    def close(self) -> None:
        for app in self.apps:
            if app["out"] is not None:
                app["out"].close()
        self.ns.Simulator.Destroy()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


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
    values are checked here, once for every fork."""
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
    ns.PingHelper(address.ConvertTo()).SetAttribute("Size", ns.StringValue("56"))
    ns.UdpEchoServerHelper(9)
    ns.UdpEchoClientHelper(address.ConvertTo(), 9)
    ns.Ipv4Mask("/24")
    str(address)  # Ipv4Address's operator<<: every link's addresses
    apps = ns.ApplicationContainer()  # empty: no application, no node
    apps.Start(ns.Seconds(1.0))
    apps.Stop(ns.Seconds(2.0))
    (ns.Seconds(2.0) - ns.Seconds(1.0)).IsStrictlyPositive()  # the chunks' arithmetic
    str(ns.cppyy.gbl.nepi_lab.take(""))  # the records' hand-over (an empty record of no application)
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
    send({"event": "ready", "addresses": world.addresses})
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
