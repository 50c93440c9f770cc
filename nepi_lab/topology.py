"""Network-namespace topologies from networkx graphs.

:func:`build` turns any undirected networkx graph into ``netns`` resources of an
experiment: a ``netns::Node`` per graph node (a ``netns::Switch`` where the node's
``kind`` is ``"switch"``), a ``netns::Link`` per edge with a ``netns::Interface`` on
each node end, IPv4 addresses (and IPv6 ones with ``ipv6=True``) and static routes
along shortest paths.  The result is an ordinary experiment: the guids in the
returned :class:`Topology` take applications, conditions and traces, and
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

The generators :func:`line`, :func:`star`, :func:`tree`, :func:`ring`,
:func:`ladder` and :func:`mesh` return graphs whose nodes are named ``h1``, ``h2``
..., ready for :func:`build`; any keyword they do not take is set on every edge (so
``line(3, rate="20mbit")`` rate-limits every link).

Example
-------
>>> from nepi_lab import ExperimentController, topology
>>> with ExperimentController() as ec:                                    # doctest: +SKIP
...     topo = topology.build(ec, topology.line(4, rate="50mbit"))
...     ping = ec.register_resource("linux::Ping", connectedTo=topo.nodes["h1"],
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

from .core.errors import InvalidInputError
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
    """

    #: a copy of the input: nodes gain ``name`` and ``guid``; edges ``guid``, ``addresses``
    #: (graph node -> ``"10.0.0.1/30"``), ``subnet`` for point-to-point edges, and with
    #: IPv6 ``addresses6`` and ``subnet6``
    graph: nx.Graph
    nodes: dict[Hashable, int]  #: graph node -> ``netns::Node`` guid
    switches: dict[Hashable, int]  #: graph node -> ``netns::Switch`` guid
    links: dict[tuple[Hashable, Hashable], int]  #: edge (u, v), as the graph lists it -> link guid
    interfaces: dict[tuple[Hashable, Hashable], int]  #: (node, neighbour) -> interface guid
    routes: dict[Hashable, list[int]]  #: node -> its ``netns::Route`` guids
    subnets: dict[str, list[Hashable]]  #: IPv4 subnet -> the graph nodes on it

    @property
    def guids(self) -> list[int]:
        """Every guid the topology registered."""
        found = [*self.nodes.values(), *self.switches.values(), *self.links.values(),
                 *self.interfaces.values()]
        for routes in self.routes.values():
            found.extend(routes)
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
        """The resource name of graph node ``node`` (its namespace is ``nl<tag>-<name>``)."""
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
          weight: str | None = "weight") -> Topology:
    """Register the ``netns`` resources of ``graph`` in ``ec``; see the module docstring.

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
