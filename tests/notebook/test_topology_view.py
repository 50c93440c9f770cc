"""The topology view: hosts and switches as nodes, links as edges with addresses and
properties, applications as markers; roles read from the types, none hard-coded.

The structure tests need nothing but Python (nothing is deployed); the last one
deploys a namespace line for real (root), follows it live and keeps the outcomes
after the release.
"""

from __future__ import annotations

import subprocess

import matplotlib.pyplot as plt
import pytest
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.colors import to_hex

from nepi_lab import ExperimentController, ResourceManager, ResourceState, TopologyRole, topology
from nepi_lab.notebook import STATE_COLORS, TopologyView, draw_topology, topology_graph
from tests.resources.netns.conftest import _missing_capability

S = ResourceState
RING = STATE_COLORS[S.RELEASED]


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def line3(ec):
    graph = topology.line(3)
    graph.edges["h2", "h3"].update(rate="20mbit", loss=1.0)
    return topology.build(ec, graph)


def host_dots(ax):
    return [c for c in ax.collections if isinstance(c, PathCollection) and c.get_paths()
            and len(c.get_offsets()) and c.get_zorder() == 3]


def test_a_line_of_three_is_three_hosts_and_two_links_with_addresses(ec):
    topo = line3(ec)
    assert len(ec.resources) == 11  # 3 nodes, 2 links, 4 interfaces, 2 routes: 11 dots in ec.draw()
    network = topology_graph(ec)
    assert sorted(network.nodes[g]["label"] for g in network) == ["h1", "h2", "h3"]
    assert network.number_of_nodes() == 3 and network.number_of_edges() == 2
    assert {tuple(sorted((network.nodes[u]["label"], network.nodes[v]["label"])))
            for u, v in network.edges()} == {("h1", "h2"), ("h2", "h3")}
    ends = {}  # "h1-h2": the address at h1's end of the link to h2
    for _, _, d in network.edges(data=True):
        (a, text_a), (b, text_b) = d["ends"]
        name_a, name_b = network.nodes[a]["label"], network.nodes[b]["label"]
        ends[f"{name_a}-{name_b}"], ends[f"{name_b}-{name_a}"] = text_a, text_b
    assert ends == {"h1-h2": topo.address("h1") + "/30", "h2-h1": topo.address("h2", "h1") + "/30",
                    "h2-h3": topo.address("h2", "h3") + "/30", "h3-h2": topo.address("h3") + "/30"}
    link = network.edges[topo.nodes["h2"], topo.nodes["h3"], topo.link("h2", "h3")]
    assert link["text"] == "20mbit \u00b7 1.0% loss"
    assert dict(network.graph["not_drawn"]) == {"interface": 4, "route": 2}

    ax = draw_topology(ec)
    [hosts] = host_dots(ax)
    assert len(hosts.get_offsets()) == 3  # three host nodes, no interface, link or route dot
    links = [c for c in ax.collections if isinstance(c, LineCollection) and c.get_linewidths()[0] == 3.0]
    assert len(links) == 1 and len(links[0].get_segments()) == 2  # two link edges
    texts = {t.get_text() for t in ax.texts}
    assert {"h1", "h2", "h3", "20mbit \u00b7 1.0% loss"} <= texts
    assert {f"{a}/30" for a in (topo.address("h1"), topo.address("h2", "h1"), topo.address("h2", "h3"),
                                topo.address("h3"))} <= texts  # each end's address
    assert any(t.startswith("not drawn: 4 interfaces, 2 routes") for t in texts)


def test_roles_come_from_the_types_not_from_names():
    """A back end of its own: its types declare roles, and the view draws them."""

    class Box(ResourceManager):
        _rtype = "toy::Box"
        _topology_role = TopologyRole.HOST

    class Hub(ResourceManager):
        _rtype = "toy::Hub"
        _topology_role = TopologyRole.SWITCH

    class Cable(ResourceManager):
        _rtype = "toy::Cable"
        _topology_role = TopologyRole.LINK
        _topology_labels = (("metres", "{} m"),)
        from nepi_lab import Attribute, Types

        _attributes = (Attribute("metres", "length", type=Types.Integer),)

    class Job(ResourceManager):
        _rtype = "toy::Job"
        _topology_role = TopologyRole.APPLICATION

        async def do_run(self):
            return None

    class Note(ResourceManager):
        _rtype = "toy::Note"

    with ExperimentController(exp_id="toy") as ec:
        boxes = [ec.register_resource("toy::Box", name=f"box {i}") for i in range(3)]
        hub = ec.register_resource("toy::Hub", name="hub")
        for box in boxes:  # a cable joins a box and the hub directly: no interface
            ec.register_resource("toy::Cable", connectedTo=box, metres=3)
            ec.register_connection(ec.resources[-1], hub)
        ec.register_resource("toy::Job", connectedTo=boxes[0], name="job")
        ec.register_resource("toy::Note")
        network = topology_graph(ec)
        assert {network.nodes[g]["role"] for g in network} == {"host", "switch"}
        assert network.number_of_nodes() == 4 and network.number_of_edges() == 3
        assert all(d["text"] == "3 m" for _, _, d in network.edges(data=True))
        assert network.nodes[boxes[0]]["applications"] == [ec.resources[-2]]
        assert dict(network.graph["not_drawn"]) == {"toy::Note": 1}
        ax = draw_topology(ec)
        markers = {c.get_paths()[0].vertices.shape[0] for c in host_dots(ax)}
        assert len(host_dots(ax)) == 2 and len(markers) == 2  # circles for boxes, squares for the hub
        assert {"box 0", "box 1", "box 2", "hub", "job", "3 m"} <= {t.get_text() for t in ax.texts}


def test_a_link_joined_straight_to_hosts_gives_their_addresses_and_a_bus_is_a_square(ec):
    """ns-3's links: no interface resources; ``addresses`` names each end's, and a CSMA
    bus of three hosts is drawn as a square with a line to each (nothing deployed)."""
    line = topology.build(ec, topology.line(2), backend="ns3")
    star = topology.build(ec, topology.star(3, switch=True), backend="ns3", simulation=line.simulation,
                          subnet="10.1.0.0/16")
    link, bus = line.link("h1", "h2"), star.switches["c"]
    ec.get_resource(link).set("addresses", "10.0.0.1/30 10.0.0.2/30", internal=True)  # as deploy does
    ec.get_resource(bus).set("addresses", "10.1.0.1/24 10.1.0.2/24 10.1.0.3/24", internal=True)
    network = topology_graph(ec)
    assert network.edges[line.nodes["h1"], line.nodes["h2"], link]["ends"] == [
        (line.nodes["h1"], "10.0.0.1/30"), (line.nodes["h2"], "10.0.0.2/30")]
    assert network.nodes[bus]["role"] == "switch"
    assert network.nodes[bus]["label"] == "c\n10Gbps \u00b7 0ms"  # an edge without rate or delay: a veth's
    assert sorted((u, v) for u, v, k in network.edges(keys=True) if k == bus) == \
        sorted((min(h, bus), max(h, bus)) for h in star.nodes.values())
    assert sorted(e for _, _, k, d in network.edges(keys=True, data=True) if k == bus for e in d["ends"]
                  if e[0] != bus) == [(star.nodes[f"h{i}"], f"10.1.0.{i}/24") for i in (1, 2, 3)]
    assert dict(network.graph["not_drawn"]) == {"ns3::Simulation": 1}  # no route: all on-link
    ax = draw_topology(ec)
    texts = {t.get_text() for t in ax.texts}
    assert {"10.0.0.1/30", "10.0.0.2/30", "10.1.0.1/24", "10.1.0.3/24", "c\n10Gbps \u00b7 0ms"} <= texts
    markers = {c.get_paths()[0].vertices.shape[0] for c in host_dots(ax)}
    assert len(markers) == 2  # circles for hosts, a square for the bus


def test_an_experiment_without_a_network_says_so(ec):
    ec.register_resource("nbtest::Task")
    view = TopologyView(ec)
    try:
        assert view.topology.number_of_nodes() == 0
        assert any("no hosts or switches" in t.get_text() for t in view.ax.texts)
        assert view.png.startswith(b"\x89PNG")
    finally:
        view.close()


MISSING = _missing_capability()


@pytest.mark.skipif(MISSING is not None, reason=MISSING or "")
def test_a_deployed_line_live_then_released(tmp_path):
    ec = ExperimentController(exp_id="topology-view", local_dir=str(tmp_path))
    try:
        topo = line3(ec)
        ping = ec.register_resource("linux::Ping", connectedTo=topo.nodes["h1"], target=topo.address("h3"),
                                    count=2, interval=0.2, name="ping h3")
        fails = ec.register_resource("linux::Application", connectedTo=topo.nodes["h2"], command="exit 3",
                                     name="fails", critical=False)
        view = TopologyView(ec)
        hosts = set(topo.nodes.values())
        links = set(topo.links.values())
        drawn = hosts | links | {ping, fails}
        assert set(view.states) == drawn  # interfaces and routes are not drawn
        assert {view.ax.texts[i].get_text() for i in range(len(view.ax.texts))} >= {"h1", "h2", "h3",
                                                                                   "ping h3", "fails"}
        ec.deploy()
        ec.wait_finished([ping, fails], timeout=60)
        view.update()
        assert view.outcomes[ping] == "FINISHED" and view.outcomes[fails] == "FAILED"
        assert all(view.outcomes[g] == "STARTED" for g in hosts | links)
        prefix = ec.get(topo.nodes["h1"], "namespace").rsplit("-", 1)[0]
        ec.shutdown()
        view.update()  # in a script the controller's loop, which ran the view's timer, is gone now
        assert view.released == drawn and view.full_draws == 1
        assert view.outcomes[ping] == "FINISHED" and view.outcomes[fails] == "FAILED"
        assert all(view.outcomes[g] == "STOPPED" for g in hosts | links)  # released from STARTED: stopped
        # the picture: outcome fills, grey rings and casings
        [host_art] = [a for a, indices, _ in view._drawing.groups if len(indices) == 3]
        assert {to_hex(c) for c in host_art.get_facecolor()} == {STATE_COLORS[S.STOPPED]}
        assert {to_hex(c) for c in host_art.get_edgecolor()} == {RING}
        assert {to_hex(c) for c in view._drawing.casing.get_colors()} == {RING}
        assert {to_hex(c) for c in view._drawing.links.get_colors()} == {STATE_COLORS[S.STOPPED]}
        caption = view.children[1].value
        assert "3 hosts, 2 links, 2 applications" in caption and "released 7" in caption
        left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert prefix not in left
        view.close()
    finally:
        ec.shutdown()
