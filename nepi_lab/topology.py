"""Topologies from networkx graphs: network namespaces, or an ns-3 simulation.

:func:`build` turns any undirected networkx graph into ``netns`` resources of an
experiment (``backend="netns"``, the default; needs root): a ``netns::Node`` per graph
node (a ``netns::Switch`` where the node's ``kind`` is ``"switch"``), a ``netns::Link``
per edge with a ``netns::Interface`` on each node end, IPv4 addresses (and IPv6 ones
with ``ipv6=True``) and static routes along shortest paths; or into an ns-3 simulation
(``backend="ns3"``, see *Back ends*).  The result is an ordinary experiment: the guids
in the returned :class:`Topology` take applications, conditions and traces, and
``ec.graph()`` shows every resource.

Addresses
    Each point-to-point edge gets a ``/30`` (``.1`` for the edge's first node, ``.2``
    for the second); each *segment* (switches joined by edges, and the nodes attached
    to them) gets one subnet big enough for its nodes, at least a ``/24``, numbered
    from ``.1`` in graph order.  Subnets are taken in turn from ``subnet``
    (``10.0.0.0/8`` by default), segments first.  With ``ipv6=True`` every subnet also
    gets a ``/64`` of ``ipv6_subnet`` and addresses ``::1``, ``::2`` ...
Routes
    For every node and every subnet not attached to it, the next hop on a shortest
    path (edge ``weight`` attributes count, else hops).  With ``default_route=True``
    (the default) the most used next hop of a node becomes its default route and
    only the other destinations get a route of their own: a leaf of a tree holds one
    route.  A node on which paths cross gets ``forwarding=True``.
Attributes
    A node's attributes that are attributes of its resource type (``forwarding``,
    ``name``, ``home`` ...) are set on it; an edge's attributes that are
    ``netns::Link`` attributes (``rate``, ``loss``, ``delay``, ``shaper``, ``burst``) are
    set on its link, and ``mtu`` on both of its interfaces.  Other attributes (such as
    the ``pos`` networkx generators add) are left alone.  Node names come from the
    graph's labels: a string label is used as is, an integer ``3`` becomes ``n3`` and a
    tuple ``(0, 1)`` becomes ``n0_1``.

Back ends
    ``backend="ns3"`` builds the same graph in an ns-3 simulation (no root): an
    ``ns3::Node`` per host, an ``ns3::PointToPointLink`` per point-to-point edge, one
    ``ns3::CsmaLink`` (a CSMA bus, ns-3's shared Ethernet segment) per segment of
    switches, and ``ns3::Route`` static routes: the same subnets, addresses and
    routes as the namespace build, so ``topo.address("h3")`` and every path mean the
    same in both worlds.  Edge attributes are mapped to ns-3's: ``rate`` (tc units,
    ``"20mbit"``) to ``dataRate`` (``"20Mbps"``), ``delay`` (``"10ms"``; ns-3 needs no
    netem) to ``delay``, ``loss`` (a percentage) to ``lossRate`` (a fraction) and
    ``queue`` to ``queueSize`` (``"100p"``); the ns-3 names (``dataRate``,
    ``lossRate``, ``queueSize``) may be used as they are.  An edge without a rate is
    10 Gbit/s and without a delay has none, as a veth pair (not the link types' own
    defaults, 5 Mbit/s and 2 ms).  ``shaper``, ``burst`` and
    ``mtu`` have no ns-3 counterpart here and are refused, as are edges of one segment
    whose properties differ (a CSMA bus has one rate, delay and loss) and ``ipv6=True``
    (namespaces only for now).  The routes are static (the simulation registered here
    has ``globalRouting=False``), so ``weight`` counts as in the namespace build.
    ``simulation=`` puts the topology into an existing ``ns3::Simulation`` (its guid);
    without it one is registered (``topo.simulation``).

The generators :func:`line`, :func:`star`, :func:`tree`, :func:`ring`,
:func:`ladder` and :func:`mesh` return graphs whose nodes are named ``h1``, ``h2``
..., ready for :func:`build`; any keyword they do not take is set on every edge (so
``line(3, rate="20mbit")`` rate-limits every link).

Example
-------
>>> from nepi_lab import ExperimentController, topology                   # doctest: +SKIP
>>> with ExperimentController() as ec:                                    # doctest: +SKIP
...     topo = topology.build(ec, topology.line(4, rate="50mbit"))
...     ping = ec.register_resource("linux::Ping", connectedTo=topo.nodes["h1"],
...                                 target=topo.address("h4"), count=3)
...     ec.deploy()
...     ec.wait_finished(ping)

The same line in ns-3 (``ns3::Ping`` runs in simulated time):

>>> with ExperimentController() as ec:                                    # doctest: +SKIP
...     topo = topology.build(ec, topology.line(4, rate="50mbit"), backend="ns3")
...     ping = ec.register_resource("ns3::Ping", connectedTo=topo.nodes["h1"],
...                                 target=topo.address("h4"), count=3)
...     ec.deploy()
...     ec.wait_finished(ping)
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import re
from collections import Counter
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

import networkx as nx

from .core.errors import InvalidInputError, UnknownGuidError
from .core.registry import get_resource_type

if TYPE_CHECKING:
    from .core.controller import ExperimentController

__all__ = ["Topology", "build", "ladder", "line", "mesh", "ring", "star", "tree"]

_NAME = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]*")
_SWITCH = "switch"


# == generators ==========================================================================


def _named(graph: nx.Graph, edge_attributes: dict[str, Any], prefix: str = "h") -> nx.Graph:
    """``graph`` with nodes ``h1, h2 ...`` (in node order) and ``edge_attributes`` on every edge."""
    mapping = {node: f"{prefix}{i}" for i, node in enumerate(graph.nodes, start=1)}
    named = nx.relabel_nodes(nx.Graph(graph), mapping)
    for node in named.nodes:
        named.nodes[node].clear()
    for _, _, data in named.edges(data=True):
        data.clear()
        data.update(edge_attributes)
    return named


def line(n: int, **edge_attributes: Any) -> nx.Graph:
    """``h1 - h2 - ... - hn``: ``n`` nodes in a chain (``n - 1`` hops end to end)."""
    _at_least(n, 2, "line")
    return _named(nx.path_graph(n), edge_attributes)


def star(n: int, switch: bool = False, **edge_attributes: Any) -> nx.Graph:
    """``n`` nodes ``h1 .. hn`` around a centre ``c``: a router, or with ``switch=True``
    a ``netns::Switch`` (the nodes then share one subnet)."""
    _at_least(n, 1, "star")
    graph = nx.Graph()
    graph.add_node("c", **({"kind": _SWITCH} if switch else {}))
    for i in range(1, n + 1):
        graph.add_edge("c", f"h{i}", **edge_attributes)
    return graph


def tree(n: int, fanout: int = 2, **edge_attributes: Any) -> nx.Graph:
    """A tree of ``n`` nodes, each with up to ``fanout`` children, filled level by level;
    ``h1`` is the root."""
    _at_least(n, 1, "tree")
    _at_least(fanout, 1, "tree fanout")
    return _named(nx.full_rary_tree(fanout, n), edge_attributes)


def ring(n: int, **edge_attributes: Any) -> nx.Graph:
    """``n`` nodes in a cycle."""
    _at_least(n, 3, "ring")
    return _named(nx.cycle_graph(n), edge_attributes)


def ladder(n: int, **edge_attributes: Any) -> nx.Graph:
    """Two lines of ``n`` nodes with rungs between them (``2n`` nodes, many equal paths)."""
    _at_least(n, 2, "ladder")
    return _named(nx.ladder_graph(n), edge_attributes)


def mesh(n: int, **edge_attributes: Any) -> nx.Graph:
    """A full mesh: ``n`` nodes, each linked to every other."""
    _at_least(n, 2, "mesh")
    return _named(nx.complete_graph(n), edge_attributes)


def _at_least(value: int, low: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidInputError(f"{what}: expected an integer >= {low}, not {value!r}")


# == the result ==========================================================================


@dataclasses.dataclass(frozen=True)
class Topology:
    """What :func:`build` registered, by graph node and edge.

    Attributes hold guids; :meth:`address` and :meth:`addresses` the addresses given.
    With ``backend="ns3"`` the same fields hold the ns-3 resources (see each field).
    """

    #: a copy of the input: nodes gain ``name`` and ``guid``; edges ``guid``, ``addresses``
    #: (graph node -> ``"10.0.0.1/30"``), ``subnet`` for point-to-point edges, and with
    #: IPv6 ``addresses6`` and ``subnet6``
    graph: nx.Graph
    nodes: dict[Hashable, int]  #: graph node -> ``netns::Node`` (``ns3::Node``) guid
    #: graph node -> ``netns::Switch`` guid (ns-3: the ``ns3::CsmaLink`` of its segment)
    switches: dict[Hashable, int]
    #: edge (u, v), as the graph lists it -> link guid (ns-3: the ``ns3::PointToPointLink``,
    #: or for an edge of a segment its ``ns3::CsmaLink``)
    links: dict[tuple[Hashable, Hashable], int]
    interfaces: dict[tuple[Hashable, Hashable], int]  #: (node, neighbour) -> interface guid (ns-3: none)
    routes: dict[Hashable, list[int]]  #: node -> its ``netns::Route`` (``ns3::Route``) guids
    subnets: dict[str, list[Hashable]]  #: IPv4 subnet -> the graph nodes on it
    backend: str = "netns"  #: ``"netns"`` or ``"ns3"``
    simulation: int | None = None  #: ns-3: the guid of the ``ns3::Simulation``

    @property
    def guids(self) -> list[int]:
        """Every guid the topology registered."""
        found = {*self.nodes.values(), *self.switches.values(), *self.links.values(),
                 *self.interfaces.values()}
        for routes in self.routes.values():
            found.update(routes)
        if self.simulation is not None:
            found.add(self.simulation)
        return sorted(found)

    def link(self, u: Hashable, v: Hashable) -> int:
        """The guid of the link between ``u`` and ``v`` (either order)."""
        if (u, v) in self.links:
            return self.links[(u, v)]
        if (v, u) in self.links:
            return self.links[(v, u)]
        raise KeyError(f"no link between {u!r} and {v!r}")

    def address(self, node: Hashable, neighbour: Hashable | None = None, version: int = 4) -> str:
        """An address of ``node`` (on the link towards ``neighbour``, if given), without prefix.

        Any of a node's addresses reaches it from everywhere (routes cover every subnet).
        """
        if node not in self.nodes:
            raise KeyError(f"{node!r} is not a node of this topology (switches have no address)")
        key = "ip" if version == 4 else "ipv6"
        neighbours = [neighbour] if neighbour is not None else list(self.graph.neighbors(node))
        for other in neighbours:
            value = _get(self.graph.edges[node, other], key, node)
            if value:
                return value.split("/")[0]
        towards = f" towards {neighbour!r}" if neighbour is not None else ""
        raise KeyError(f"{node!r} has no IPv{version} address{towards}")

    def addresses(self, version: int = 4) -> dict[Hashable, str]:
        """The first address of every node (see :meth:`address`)."""
        found = {}
        for node in self.nodes:
            try:
                found[node] = self.address(node, version=version)
            except KeyError:
                continue
        return found

    def name(self, node: Hashable) -> str:
        """The resource name of graph node ``node`` (a namespace's is ``nl<tag>-<name>``)."""
        return self.graph.nodes[node]["name"]


#: Edge attribute of the copied graph holding each end's address, per interface attribute.
_ADDRESSES = {"ip": "addresses", "ipv6": "addresses6"}


def _put(data: dict[str, Any], key: str, node: Hashable, value: str) -> None:
    data.setdefault(_ADDRESSES[key], {})[node] = value


def _get(data: dict[str, Any], key: str, node: Hashable) -> str | None:
    return data.get(_ADDRESSES[key], {}).get(node)


@dataclasses.dataclass(frozen=True)
class _Segment:
    """A vertex of the routing graph standing for a switched segment (never a graph label)."""

    index: int


# == building ============================================================================


def _node_name(label: Hashable) -> str:
    if isinstance(label, str):
        name = label
    elif isinstance(label, bool):
        name = f"n{int(label)}"
    elif isinstance(label, int):
        name = f"n{label}"
    elif isinstance(label, tuple):
        name = "n" + "_".join(str(part) for part in label)
    else:
        name = str(label)
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    if not _NAME.fullmatch(name):
        name = "n" + name
    return name


class _Addresses:
    """Hands out aligned subnets from one pool, in order."""

    def __init__(self, pool: str, version: int) -> None:
        try:
            self.pool = ipaddress.ip_network(pool)
        except ValueError as exc:
            raise InvalidInputError(f"subnet pool {pool!r}: {exc}") from None
        if self.pool.version != version:
            raise InvalidInputError(f"subnet pool {pool!r} is not an IPv{version} network")
        self.next = int(self.pool.network_address)

    def take(self, prefix: int) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        size = 1 << (self.pool.max_prefixlen - prefix)
        start = -(-self.next // size) * size  # aligned up
        network = ipaddress.ip_network((start, prefix))
        if not network.subnet_of(self.pool):  # type: ignore[arg-type]
            raise InvalidInputError(f"subnet pool {self.pool} is too small for this topology")
        self.next = start + size
        return network


def build(ec: ExperimentController, graph: nx.Graph, *, subnet: str = "10.0.0.0/8", ipv6: bool = False,
          ipv6_subnet: str = "fd00:6e6c::/32", routes: bool = True, default_route: bool = True,
          weight: str | None = "weight", backend: str = "netns", simulation: int | None = None) -> Topology:
    """Register the ``netns`` (or ``ns3``) resources of ``graph`` in ``ec``; see the module docstring.

    Parameters
    ----------
    ec : ExperimentController
        Where to register; nothing is deployed (call ``ec.deploy()``).
    graph : networkx.Graph
        Undirected, without self-loops or parallel edges.  Node attribute ``kind``:
        ``"switch"`` for a switch, anything else (or none) for a host.
    subnet, ipv6_subnet : str
        Pools the IPv4 (and IPv6) subnets are taken from.
    ipv6 : bool
        Also give IPv6 addresses and routes.
    routes : bool
        Add static routes along shortest paths (False: only directly attached
        subnets are reachable).
    default_route : bool
        Use a default route for each node's most used next hop.
    weight : str or None
        Edge attribute used as the path length (absent: 1 per hop).
    backend : str
        ``"netns"`` (network namespaces, root) or ``"ns3"`` (an ns-3 simulation).
    simulation : int or None
        ``backend="ns3"``: the guid of the ``ns3::Simulation`` to build in (None:
        register one, with ``globalRouting=False``).

    Returns
    -------
    Topology
    """
    if not isinstance(graph, nx.Graph) or graph.is_directed() or graph.is_multigraph():
        raise InvalidInputError("build() takes an undirected networkx.Graph (no DiGraph, no MultiGraph)")
    if nx.number_of_selfloops(graph):
        raise InvalidInputError("build(): the graph has self-loops")
    if graph.number_of_nodes() == 0:
        raise InvalidInputError("build(): the graph is empty")
    if backend not in _BACKENDS:
        raise InvalidInputError(f"build(): backend {backend!r} is not one of "
                                f"{', '.join(map(repr, _BACKENDS))}")
    if backend == "ns3":
        if ipv6:
            raise InvalidInputError("build(backend='ns3'): ipv6=True is for network namespaces only for now; "
                                    "leave ipv6 out (the ns-3 topology is IPv4)")
        _check_simulation(ec, simulation)
    elif simulation is not None:
        raise InvalidInputError("build(): simulation= is for backend='ns3'")
    g = graph.copy()
    node_type = get_resource_type("netns::Node")
    switch_type = get_resource_type("netns::Switch")
    link_type = get_resource_type("netns::Link")
    node_attributes = node_type.get_attribute_declarations()
    switch_attributes = switch_type.get_attribute_declarations()
    link_attributes = set(link_type.get_attribute_declarations()) - {"critical", "hardRelease"}

    switches = {n for n, kind in g.nodes(data="kind") if kind == _SWITCH}
    hosts = [n for n in g.nodes if n not in switches]
    names: dict[str, Hashable] = {}
    for node in g.nodes:
        name = g.nodes[node].get("name") or _node_name(node)
        if name in names:
            raise InvalidInputError(f"graph nodes {names[name]!r} and {node!r} would both be named {name!r}; "
                                    f"give them distinct 'name' attributes")
        names[name] = node
        g.nodes[node]["name"] = name

    # -- segments: switches joined together, with the hosts attached to them -----------------
    switch_graph = g.subgraph(switches)
    segments: list[tuple[set[Hashable], list[Hashable]]] = []
    segment_of: dict[Hashable, int] = {}
    for component in nx.connected_components(switch_graph):
        if nx.cycle_basis(switch_graph.subgraph(component)):
            raise InvalidInputError(f"switches {sorted(map(str, component))} form a loop; without spanning "
                                    f"tree the frames would circle forever: remove a switch-to-switch edge")
        attached = []
        for node in g.nodes:  # graph order: addresses follow it
            if node in switches:
                continue
            ports = [s for s in g.neighbors(node) if s in component]
            if len(ports) > 1:
                raise InvalidInputError(f"node {node!r} is attached twice to the segment of switches "
                                        f"{sorted(map(str, component))}")
            if ports:
                attached.append(node)
        for s in component:
            segment_of[s] = len(segments)
        segments.append((component, attached))

    # -- addresses -----------------------------------------------------------------------------
    pools = [(_Addresses(subnet, 4), "ip")]
    if ipv6:
        pools.append((_Addresses(ipv6_subnet, 6), "ipv6"))
    subnets: dict[str, list[Hashable]] = {}
    # an L3 graph: hosts, plus one vertex per segment; edges carry the subnet's addresses
    l3 = nx.Graph()
    l3.add_nodes_from(hosts)
    by_segment: dict[int, dict[str, dict[Hashable, str]]] = {}  # segment -> key -> node -> address
    for index, (component, attached) in sorted(enumerate(segments), key=lambda item: -len(item[1][1])):
        per_key: dict[str, dict[Hashable, str]] = {}
        for pool, key in pools:
            prefix = min(24, 32 - math.ceil(math.log2(len(attached) + 3))) if key == "ip" else 64
            network = pool.take(prefix)
            if key == "ip":
                subnets[str(network)] = list(attached)
            per_key[key] = {node: f"{network[i]}/{prefix}" for i, node in enumerate(attached, start=1)}
        by_segment[index] = per_key
        for node in attached:
            l3.add_edge(node, _Segment(index), weight=_weight(g, node, component, weight))
    for u, v, data in g.edges(data=True):
        if u in switches or v in switches:
            if u in switches and v in switches:
                continue
            host, switch = (u, v) if v in switches else (v, u)
            for _, key in pools:
                _put(data, key, host, by_segment[segment_of[switch]][key][host])
            continue
        for pool, key in pools:
            network = pool.take(30 if key == "ip" else 64)
            first, second = (network[1], network[2])
            _put(data, key, u, f"{first}/{network.prefixlen}")
            _put(data, key, v, f"{second}/{network.prefixlen}")
            data["subnet" if key == "ip" else "subnet6"] = str(network)
            if key == "ip":
                subnets[str(network)] = [u, v]
        l3.add_edge(u, v, weight=_edge_weight(data, weight))

    if backend == "ns3":
        return _build_ns3(ec, g, hosts, switches, segments, segment_of, l3, subnets, routes, default_route,
                          simulation)

    # -- resources -----------------------------------------------------------------------------
    node_guids: dict[Hashable, int] = {}
    switch_guids: dict[Hashable, int] = {}
    forwarding = {n for n in hosts if l3.degree(n) > 1}
    for node in g.nodes:
        data = g.nodes[node]
        if node in switches:
            values = {k: v for k, v in data.items() if k in switch_attributes and k != "namespace"}
            switch_guids[node] = guid = ec.register_resource("netns::Switch", **values)
        else:
            values = {k: v for k, v in data.items()
                      if k in node_attributes and k not in ("namespace", "hostname")}
            values.setdefault("forwarding", node in forwarding)
            node_guids[node] = guid = ec.register_resource("netns::Node", **values)
        data["guid"] = guid
    link_guids: dict[tuple[Hashable, Hashable], int] = {}
    interface_guids: dict[tuple[Hashable, Hashable], int] = {}
    for u, v, data in g.edges(data=True):
        link = ec.register_resource("netns::Link", **{k: v for k, v in data.items() if k in link_attributes})
        link_guids[(u, v)] = link
        data["guid"] = link
        for end, other in ((u, v), (v, u)):
            if end in switches:
                ec.register_connection(link, switch_guids[end])
                continue
            values = {"mtu": data.get("mtu")}
            for _, key in pools:
                values[key] = _get(data, key, end)
            interface = ec.register_resource("netns::Interface", connectedTo=node_guids[end],
                                             **{k: v for k, v in values.items() if v is not None})
            ec.register_connection(interface, link)
            interface_guids[(end, other)] = interface

    route_guids: dict[Hashable, list[int]] = {n: [] for n in hosts}
    if routes:
        for key in [key for _, key in pools]:
            for node, entries in _routes(g, l3, hosts, switches, segment_of, key, default_route).items():
                for destination, gateway in entries:  # "default" is IPv6's when the gateway is
                    route_guids[node].append(ec.register_resource(
                        "netns::Route", connectedTo=node_guids[node], destination=destination,
                        gateway=gateway))
    return Topology(g, node_guids, switch_guids, link_guids, interface_guids, route_guids, subnets)


#: The back ends :func:`build` knows.
_BACKENDS = ("netns", "ns3")

#: Edge attributes of the namespace build that ns-3 cannot honour, and why.
_NS3_REFUSED = {
    "shaper": "it picks the kernel's qdisc (ns-3 devices send at dataRate)",
    "burst": "it sizes the kernel's token bucket (ns-3 devices send at dataRate)",
    "mtu": "ns3 links have no mtu attribute yet",
}


def _check_simulation(ec: ExperimentController, simulation: int | None) -> None:
    if simulation is None:
        return
    try:
        rtype = ec.get_resource(simulation)._rtype
    except (UnknownGuidError, TypeError):  # no such guid, or no guid at all
        rtype = None
    if rtype != "ns3::Simulation":
        raise InvalidInputError(f"build(): simulation={simulation!r} is not the guid of an ns3::Simulation "
                                f"of this experiment")


def _ns3_rate(value: Any) -> str:
    """A tc-style rate (``"20mbit"``, a number of bit/s) as ns-3's DataRate (``"20Mbps"``)."""
    from .resources.netns._shaping import parse_rate

    bits = parse_rate(value)
    for unit, size in (("Gbps", 10**9), ("Mbps", 10**6), ("kbps", 10**3)):
        if bits % size == 0:
            return f"{bits // size}{unit}"
    return f"{bits}bps"


def _ns3_time(value: Any) -> str:
    """A delay (``"10ms"``, seconds) as an ns-3 time (``"10ms"``, ``"2500us"``)."""
    from .core.times import parse_delay

    nanoseconds = round(parse_delay(value) * 1e9)
    for unit, size in (("s", 10**9), ("ms", 10**6), ("us", 10**3)):
        if nanoseconds % size == 0:
            return f"{nanoseconds // size}{unit}"
    return f"{nanoseconds}ns"


#: the data rate of an edge without ``rate`` in ns-3 (veth pairs have none)
_NS3_UNLIMITED_RATE = "10Gbps"


def _ns3_link_values(data: dict[str, Any], edge: tuple[Hashable, Hashable]) -> dict[str, Any]:
    """The ns-3 link attributes of an edge's attributes (raises on what ns-3 cannot honour)."""
    where = f"edge {edge[0]!r}-{edge[1]!r}"
    for name, why in _NS3_REFUSED.items():
        if data.get(name) is not None:
            raise InvalidInputError(f"{where}: attribute {name!r} cannot be built in ns-3 ({why}); "
                                    f"remove it, or use backend='netns'")
    values: dict[str, Any] = {}
    mapped = (("rate", "dataRate", _ns3_rate), ("delay", "delay", _ns3_time),
              ("loss", "lossRate", lambda v: float(v) / 100), ("queue", "queueSize", str))
    for ours, theirs, convert in mapped:
        if data.get(ours) is not None and data.get(theirs) is not None and ours != theirs:
            raise InvalidInputError(f"{where}: both {ours!r} and {theirs!r} are set; keep one")
        if data.get(ours) is not None:
            try:
                values[theirs] = convert(data[ours])
            except (ValueError, TypeError) as exc:
                raise InvalidInputError(f"{where}: {ours}={data[ours]!r}: {exc}") from None
        elif data.get(theirs) is not None:
            values[theirs] = data[theirs]
    if "lossRate" in values and not 0 <= float(values["lossRate"]) <= 1:
        raise InvalidInputError(f"{where}: loss must be a percentage from 0 to 100")
    # what an edge without them is in namespaces: a veth pair has no rate limit and no delay
    # (the ns-3 link types' own defaults, 5 Mbit/s and 2 ms, would make another network)
    values.setdefault("dataRate", _NS3_UNLIMITED_RATE)
    values.setdefault("delay", "0ms")
    return values


def _build_ns3(ec: ExperimentController, g: nx.Graph, hosts: list[Hashable], switches: set[Hashable],
               segments: list[tuple[set[Hashable], list[Hashable]]], segment_of: dict[Hashable, int],
               l3: nx.Graph, subnets: dict[str, list[Hashable]], routes: bool, default_route: bool,
               simulation: int | None) -> Topology:
    """The ns-3 resources of ``g`` (addresses already in its edges): see the module docstring."""
    node_attributes = set(get_resource_type("ns3::Node").get_attribute_declarations())
    # every edge's ns-3 values first: nothing is registered for a graph that cannot be built
    edge_values = {(u, v): _ns3_link_values(data, (u, v)) for u, v, data in g.edges(data=True)}
    segment_values: dict[int, dict[str, Any]] = {}
    for u, v, _ in g.edges(data=True):
        if u in switches or v in switches:
            index = segment_of[u if u in switches else v]
            values = edge_values[(u, v)]
            first = segment_values.setdefault(index, values)
            if values != first:
                raise InvalidInputError(
                    f"edge {u!r}-{v!r}: an ns-3 CSMA bus has one rate, delay, loss and queue for its whole "
                    f"segment, and this edge's ({values}) differ from another edge of the segment of "
                    f"switches {sorted(map(str, segments[index][0]))} ({first}); give them the same")
    if simulation is None:
        simulation = ec.register_resource("ns3::Simulation", globalRouting=False)
    node_guids: dict[Hashable, int] = {}
    for node in hosts:  # graph order: guid order is what the links number their ends by
        data = g.nodes[node]
        values = {k: v for k, v in data.items() if k in node_attributes}
        node_guids[node] = data["guid"] = ec.register_resource("ns3::Node", connectedTo=simulation, **values)
    link_guids: dict[tuple[Hashable, Hashable], int] = {}
    switch_guids: dict[Hashable, int] = {}
    for index, (component, attached) in enumerate(segments):
        if not attached:  # switches without hosts: nothing to simulate
            continue
        first = next(n for n in g.nodes if n in component)  # the bus is named after its first switch
        bus = ec.register_resource("ns3::CsmaLink", name=g.nodes[first]["name"],
                                   network=_segment_subnet(g, attached, component),
                                   **segment_values.get(index, {}))
        for node in attached:  # in graph order, as the addresses were numbered
            ec.register_connection(bus, node_guids[node])
        for s in component:
            switch_guids[s] = g.nodes[s]["guid"] = bus
    for u, v, data in g.edges(data=True):
        if u in switches or v in switches:
            link_guids[(u, v)] = data["guid"] = switch_guids[u if u in switches else v]
            continue
        if node_guids[u] > node_guids[v]:  # a link's first end is its smaller guid (never for nx.Graph)
            addresses = data["addresses"]
            addresses[u], addresses[v] = addresses[v], addresses[u]
        link = ec.register_resource("ns3::PointToPointLink", network=data["subnet"], **edge_values[(u, v)])
        ec.register_connection(link, node_guids[u])
        ec.register_connection(link, node_guids[v])
        link_guids[(u, v)] = data["guid"] = link
    route_guids: dict[Hashable, list[int]] = {n: [] for n in hosts}
    if routes:
        for node, entries in _routes(g, l3, hosts, switches, segment_of, "ip", default_route).items():
            for destination, gateway in entries:
                route_guids[node].append(ec.register_resource(
                    "ns3::Route", connectedTo=node_guids[node], destination=destination, gateway=gateway))
    return Topology(g, node_guids, switch_guids, link_guids, {}, route_guids, subnets, backend="ns3",
                    simulation=simulation)


def _segment_subnet(g: nx.Graph, attached: list[Hashable], component: set[Hashable]) -> str:
    """The IPv4 subnet given to a segment (read back from its first host's address)."""
    host = attached[0]
    switch = next(s for s in g.neighbors(host) if s in component)
    return str(ipaddress.ip_interface(_get(g.edges[host, switch], "ip", host)).network)  # type: ignore[arg-type]


def _edge_weight(data: dict[str, Any], weight: str | None) -> float:
    value = data.get(weight, 1) if weight else 1
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise InvalidInputError(f"edge weight {value!r} is not a positive number")
    return value


def _weight(g: nx.Graph, host: Hashable, component: set[Hashable], weight: str | None) -> float:
    switch = next(s for s in g.neighbors(host) if s in component)
    return _edge_weight(g.edges[host, switch], weight)


def _routes(g: nx.Graph, l3: nx.Graph, hosts: list[Hashable], switches: set[Hashable],
            segment_of: dict[Hashable, int], key: str, default_route: bool,
            ) -> dict[Hashable, list[tuple[str, str]]]:
    """(destination, gateway) pairs per host, along shortest paths of ``l3``."""
    # every subnet, and the L3 vertices it is attached to
    attached: dict[str, list[Hashable]] = {}
    address_on: dict[tuple[Hashable, Hashable], str] = {}  # (host, l3 neighbour) -> its address there
    for u, v, data in g.edges(data=True):
        if u in switches and v in switches:
            continue
        if u in switches or v in switches:
            host, switch = (u, v) if v in switches else (v, u)
            value = _get(data, key, host)
            network = str(ipaddress.ip_interface(value).network)
            attached.setdefault(network, []).append(_Segment(segment_of[switch]))
            address_on[(host, _Segment(segment_of[switch]))] = value.split("/")[0]
            continue
        value = _get(data, key, u)
        network = str(ipaddress.ip_interface(value).network)
        attached[network] = [u, v]
        address_on[(u, v)] = value.split("/")[0]
        address_on[(v, u)] = _get(data, key, v).split("/")[0]  # type: ignore[union-attr]
    table: dict[Hashable, list[tuple[str, str]]] = {}
    for source in hosts:
        distances, paths = nx.single_source_dijkstra(l3, source, weight="weight")
        entries: list[tuple[str, str]] = []
        for network, vertices in attached.items():
            if source in vertices or any(isinstance(v, _Segment) and l3.has_edge(source, v)
                                         for v in vertices):
                continue  # directly attached
            reachable = [v for v in vertices if v in paths]
            if not reachable:
                continue
            path = paths[min(reachable, key=lambda v: distances[v])]
            first = path[1]
            if isinstance(first, _Segment):  # through a segment: the next host on it
                gateway = address_on[(path[2], first)] if len(path) > 2 else None
            else:
                gateway = address_on[(first, source)]
            if gateway is not None:
                entries.append((network, gateway))
        if default_route and entries:
            common, _ = Counter(gw for _, gw in entries).most_common(1)[0]
            entries = [("default", common)] + [(n, gw) for n, gw in entries if gw != common]
        table[source] = entries
    return table
