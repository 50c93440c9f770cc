"""nepi_lab.topology without deploying: generators, address plan, routes, attribute mapping.

These need neither root nor namespaces; tests/resources/netns/test_topology.py runs
the same topologies for real.
"""

from __future__ import annotations

import ipaddress

import networkx as nx
import pytest

from nepi_lab import ExperimentController, InvalidInputError, topology


@pytest.fixture
def ec(tmp_path):
    controller = ExperimentController(exp_id="topology", local_dir=str(tmp_path))
    yield controller
    controller.shutdown()


def routes_of(ec, topo, node):
    return sorted((ec.get(r, "destination"), ec.get(r, "gateway")) for r in topo.routes[node])


@pytest.mark.parametrize(("graph", "nodes", "edges"), [
    (topology.line(5), 5, 4),
    (topology.star(4), 5, 4),
    (topology.tree(100), 100, 99),
    (topology.tree(13, fanout=3), 13, 12),
    (topology.ring(6), 6, 6),
    (topology.ladder(3), 6, 7),
    (topology.mesh(4), 4, 6),
], ids=["line", "star", "tree", "tree3", "ring", "ladder", "mesh"])
def test_generators(graph, nodes, edges):
    assert (graph.number_of_nodes(), graph.number_of_edges()) == (nodes, edges)
    assert all(isinstance(n, str) for n in graph.nodes)


def test_generator_keywords_go_on_every_edge():
    graph = topology.ring(4, rate="10mbit", loss=1.5)
    assert all(d == {"rate": "10mbit", "loss": 1.5} for _, _, d in graph.edges(data=True))
    with pytest.raises(InvalidInputError, match="ring: expected an integer >= 3"):
        topology.ring(2)


def test_a_line_gets_a_slash_30_per_link_and_routes_towards_the_far_end(ec):
    topo = topology.build(ec, topology.line(4))
    assert list(topo.subnets) == ["10.0.0.0/30", "10.0.0.4/30", "10.0.0.8/30"]
    assert topo.address("h1") == "10.0.0.1"
    assert topo.address("h2", "h3") == "10.0.0.5"
    assert topo.address("h4") == "10.0.0.10"
    # each node needs routes only to subnets it is not on: one default route each
    assert routes_of(ec, topo, "h1") == [("default", "10.0.0.2")]
    assert routes_of(ec, topo, "h2") == [("default", "10.0.0.6")]
    assert routes_of(ec, topo, "h3") == [("default", "10.0.0.5")]
    assert routes_of(ec, topo, "h4") == [("default", "10.0.0.9")]
    forwarding = [ec.get(topo.nodes[n], "forwarding") for n in ("h1", "h2", "h3", "h4")]
    assert forwarding == [False, True, True, False]


def test_explicit_routes_without_defaults(ec):
    topo = topology.build(ec, topology.line(4), default_route=False)
    assert routes_of(ec, topo, "h1") == [("10.0.0.4/30", "10.0.0.2"), ("10.0.0.8/30", "10.0.0.2")]
    assert routes_of(ec, topo, "h2") == [("10.0.0.8/30", "10.0.0.6")]


def test_no_routes(ec):
    topo = topology.build(ec, topology.line(3), routes=False)
    assert topo.routes == {"h1": [], "h2": [], "h3": []}


def test_a_tree_leaf_holds_one_route_and_the_root_one_per_subtree(ec):
    topo = topology.build(ec, topology.tree(7))  # h1 root; h2, h3; h4..h7 leaves
    for leaf in ("h4", "h5", "h6", "h7"):
        assert len(topo.routes[leaf]) == 1
        assert ec.get(topo.routes[leaf][0], "destination") == "default"
    # the root: a default via one child, explicit routes for the other child's subtree
    assert len(topo.routes["h1"]) == 3
    assert len(topo.routes["h2"]) == len(topo.routes["h3"]) == 1  # all beyond is up: default
    assert sum(len(r) for r in topo.routes.values()) == 4 + 1 + 1 + 3


def test_a_switch_makes_one_subnet(ec):
    graph = topology.star(3, switch=True)
    topo = topology.build(ec, graph)
    assert topo.subnets == {"10.0.0.0/24": ["h1", "h2", "h3"]}
    assert [topo.address(h) for h in ("h1", "h2", "h3")] == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    assert set(topo.switches) == {"c"} and set(topo.nodes) == {"h1", "h2", "h3"}
    assert all(r == [] for r in topo.routes.values())
    assert len(topo.interfaces) == 3 and len(topo.links) == 3
    with pytest.raises(KeyError, match="switches have no address"):
        topo.address("c")


def test_routers_between_switched_segments(ec):
    graph = nx.Graph()
    graph.add_node("s1", kind="switch")
    graph.add_node("s2", kind="switch")
    graph.add_edges_from([("a", "s1"), ("r", "s1"), ("r", "s2"), ("b", "s2"), ("c", "s2")])
    topo = topology.build(ec, graph)
    # the bigger segment first
    assert topo.subnets == {"10.0.0.0/24": ["r", "b", "c"], "10.0.1.0/24": ["a", "r"]}
    assert routes_of(ec, topo, "a") == [("default", "10.0.1.2")]
    assert routes_of(ec, topo, "b") == [("default", "10.0.0.1")]
    assert routes_of(ec, topo, "r") == []
    assert ec.get(topo.nodes["r"], "forwarding") is True


def test_switches_joined_in_a_line_form_one_segment_and_a_loop_is_refused(ec):
    graph = nx.Graph([("h1", "s1"), ("s1", "s2"), ("s2", "h2")])
    for s in ("s1", "s2"):
        graph.nodes[s]["kind"] = "switch"
    topo = topology.build(ec, graph)
    assert topo.subnets == {"10.0.0.0/24": ["h1", "h2"]}
    assert len(topo.links) == 3 and len(topo.interfaces) == 2
    graph.add_edges_from([("s2", "s3"), ("s3", "s1")])
    graph.nodes["s3"]["kind"] = "switch"
    with pytest.raises(InvalidInputError, match="form a loop"):
        topology.build(ec, graph)


def test_attributes_are_mapped_and_others_ignored(ec):
    graph = topology.line(3, rate="20mbit", loss=2.0, delay="5ms", mtu=1400, weight=1, colour="red")
    graph.nodes["h2"]["forwarding"] = False
    graph.nodes["h1"]["name"] = "client"
    graph.nodes["h1"]["pos"] = (0, 0)
    topo = topology.build(ec, graph)
    link = topo.link("h2", "h1")
    assert (ec.get(link, "rate"), ec.get(link, "loss"), ec.get(link, "delay")) == ("20mbit", 2.0, "5ms")
    assert ec.get(topo.interfaces[("h1", "h2")], "mtu") == 1400
    assert ec.get(topo.nodes["h2"], "forwarding") is False  # the graph's word wins
    assert ec.get(topo.nodes["h1"], "name") == "client" and topo.name("h1") == "client"


def test_labels_become_names_and_ipv6_is_optional(ec):
    topo = topology.build(ec, nx.grid_2d_graph(2, 2), ipv6=True)
    assert sorted(topo.name(n) for n in topo.nodes) == ["n0_0", "n0_1", "n1_0", "n1_1"]
    assert ipaddress.ip_address(topo.address((0, 0), version=6)).version == 6
    assert all(ipaddress.ip_address(a).version == 6 for a in topo.addresses(6).values())
    defaults = {ipaddress.ip_address(ec.get(r, "gateway")).version for rs in topo.routes.values() for r in rs
                if ec.get(r, "destination") == "default"}
    assert defaults == {4, 6}


def test_the_copied_graph_carries_the_plan(ec):
    graph = topology.line(3)
    topo = topology.build(ec, graph)
    edge = topo.graph.edges["h1", "h2"]
    assert edge["addresses"] == {"h1": "10.0.0.1/30", "h2": "10.0.0.2/30"} and edge["subnet"] == "10.0.0.0/30"
    assert edge["guid"] == topo.link("h1", "h2") and topo.graph.nodes["h3"]["guid"] == topo.nodes["h3"]
    assert "guid" not in graph.nodes["h1"] and "addresses" not in graph.edges["h1", "h2"]  # input unchanged


def test_topology_is_ordinary_guids(ec):
    topo = topology.build(ec, topology.line(3))
    assert set(topo.guids) == set(ec.resources)
    g = ec.graph()
    assert sum(1 for n in g.nodes if g.nodes[n]["type"] == "netns::Node") == 3


@pytest.mark.parametrize(("graph", "message"), [
    (nx.DiGraph([(1, 2)]), "undirected"),
    (nx.MultiGraph([(1, 2), (1, 2)]), "undirected"),
    (nx.Graph([(1, 1), (1, 2)]), "self-loops"),
    (nx.Graph(), "empty"),
    (nx.Graph([("a", "b", {"weight": -1})]), "weight"),
])
def test_bad_graphs_are_refused(ec, graph, message):
    with pytest.raises(InvalidInputError, match=message):
        topology.build(ec, graph)
    assert ec.resources == []  # refused before anything was registered


def test_names_must_be_distinct(ec):
    graph = nx.Graph([(1, "n1")])
    with pytest.raises(InvalidInputError, match="would both be named 'n1'"):
        topology.build(ec, graph)


def test_a_small_pool_is_refused(ec):
    with pytest.raises(InvalidInputError, match="too small"):
        topology.build(ec, topology.line(4), subnet="10.0.0.0/29")


# == backend="ns3": the same plan as ns-3 resources (tests/resources/ns3 runs them) ======


def plan(ec, topo):
    """Every (node, destination, gateway) route and every node's addresses."""
    routes = {(n, *r) for n in topo.routes for r in routes_of(ec, topo, n)}
    addresses = {n: sorted(d["addresses"][n] for _, _, d in topo.graph.edges(n, data=True))
                 for n in topo.nodes}
    return routes, addresses


@pytest.mark.parametrize("graph", [
    topology.line(4), topology.star(3, switch=True), topology.ladder(3), topology.tree(7),
    nx.Graph([("h1", "h2", {"weight": 5}), ("h2", "h3"), ("h3", "h4"), ("h4", "h1")]),
], ids=["line", "star-switch", "ladder", "tree", "weighted-square"])
def test_ns3_gets_the_same_addresses_and_routes_as_namespaces(tmp_path, graph):
    plans = {}
    for backend in ("netns", "ns3"):
        with ExperimentController(exp_id=backend, local_dir=str(tmp_path)) as ec:
            topo = topology.build(ec, graph, backend=backend)
            assert topo.backend == backend
            plans[backend] = plan(ec, topo)
            if backend == "ns3":
                assert set(topo.guids) == set(ec.resources)  # the simulation included
                types = {ec.get_resource(g)._rtype for g in topo.guids}
                assert types <= {"ns3::Simulation", "ns3::Node", "ns3::PointToPointLink", "ns3::CsmaLink",
                                 "ns3::Route"}
                assert ec.get(topo.simulation, "globalRouting") is False
    assert plans["ns3"] == plans["netns"]


def test_ns3_links_get_the_edges_subnets_and_ns3_units(ec):
    graph = topology.line(3, rate="20mbit", delay="10ms", loss=1.5, queue="50p")
    graph.edges["h2", "h3"].update(rate=1_500_000, delay="2.5ms")
    topo = topology.build(ec, graph, backend="ns3")
    first, second = topo.link("h1", "h2"), topo.link("h2", "h3")
    assert [ec.get(first, a) for a in ("network", "dataRate", "delay", "lossRate", "queueSize")] == \
        ["10.0.0.0/30", "20Mbps", "10ms", 0.015, "50p"]
    assert [ec.get(second, a) for a in ("network", "dataRate", "delay")] == \
        ["10.0.0.4/30", "1500kbps", "2500us"]
    # the link's first end (the node with the smaller guid) is the edge's first node: .1
    assert topo.nodes["h1"] < topo.nodes["h2"] and topo.address("h1") == "10.0.0.1"
    assert [ec.get(topo.nodes[n], "name") for n in ("h1", "h2", "h3")] == ["h1", "h2", "h3"]


def test_ns3_a_switch_segment_is_one_csma_bus(ec):
    topo = topology.build(ec, topology.star(3, switch=True, delay="1ms"), backend="ns3")
    bus = topo.switches["c"]
    assert ec.get_resource(bus)._rtype == "ns3::CsmaLink"
    assert {topo.link("c", h) for h in ("h1", "h2", "h3")} == {bus}
    assert [ec.get(bus, a) for a in ("name", "network", "delay")] == ["c", "10.0.0.0/24", "1ms"]
    assert sorted(ec.get_resource(bus)._connections) == sorted(topo.nodes.values())


def test_ns3_an_existing_simulation_takes_the_topology(ec):
    sim = ec.register_resource("ns3::Simulation", stopTime=3.0)
    topo = topology.build(ec, topology.line(2), backend="ns3", simulation=sim)
    assert topo.simulation == sim
    assert [g for g in ec.resources if ec.get_resource(g)._rtype == "ns3::Simulation"] == [sim]
    assert ec.get(sim, "globalRouting") is True  # left as the user set it (static routes come first)


@pytest.mark.parametrize(("graph", "keywords", "message"), [
    (topology.line(2, shaper="htb"), {}, "attribute 'shaper' cannot be built in ns-3"),
    (topology.line(2, burst=20000), {}, "attribute 'burst' cannot be built in ns-3"),
    (topology.line(2, mtu=9000), {}, "attribute 'mtu' cannot be built in ns-3"),
    (topology.line(2, rate="20mbit", dataRate="5Mbps"), {}, "both 'rate' and 'dataRate'"),
    (topology.line(2, rate="fast"), {}, "rate='fast'"),
    (topology.line(2, loss=150), {}, "percentage"),
    (topology.line(2), {"ipv6": True}, "network namespaces only"),
    (topology.line(2), {"simulation": 99}, "not the guid of an ns3::Simulation"),
])
def test_ns3_refuses_what_it_cannot_build(ec, graph, keywords, message):
    with pytest.raises(InvalidInputError, match=message):
        topology.build(ec, graph, backend="ns3", **keywords)
    assert ec.resources == []  # refused before anything was registered


def test_ns3_a_segment_has_one_set_of_properties(ec):
    graph = topology.star(2, switch=True, delay="1ms")
    graph.edges["c", "h2"]["delay"] = "5ms"
    with pytest.raises(InvalidInputError, match="one rate, delay, loss and queue for its whole segment"):
        topology.build(ec, graph, backend="ns3")
    assert ec.resources == []


def test_unknown_backend_and_simulation_without_ns3_are_refused(ec):
    with pytest.raises(InvalidInputError, match="backend 'mininet' is not one of 'netns', 'ns3'"):
        topology.build(ec, topology.line(2), backend="mininet")
    with pytest.raises(InvalidInputError, match="simulation= is for backend='ns3'"):
        topology.build(ec, topology.line(2), simulation=1)
