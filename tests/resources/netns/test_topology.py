"""Topologies built by nepi_lab.topology, deployed for real."""

from __future__ import annotations

import subprocess
import threading

import networkx as nx
import pytest

from nepi_lab import ExperimentController, ResourceState, topology
from nepi_lab.resources.netns import run_prefix

from .conftest import namespaces, ping_counts

S = ResourceState


def test_ping_across_a_three_hop_routed_line(ec, home):
    topo = topology.build(ec, topology.line(4), ipv6=True)
    for node in topo.nodes.values():
        ec.set(node, "home", home)
    p4 = ec.register_resource("linux::Ping", connectedTo=topo.nodes["h1"], target=topo.address("h4"),
                              count=3, interval=0.05)
    p6 = ec.register_resource("linux::Ping", connectedTo=topo.nodes["h4"],
                              target=topo.address("h1", version=6), count=3, interval=0.05)
    ec.deploy()
    ec.wait_finished([p4, p6], timeout=30)
    out = ec.trace(p4, "stdout")
    assert ping_counts(out) == (3, 3)
    assert "ttl=62" in out  # three hops: the reply crossed two routers
    assert ping_counts(ec.trace(p6, "stdout")) == (3, 3)
    prefix = run_prefix(ec)
    assert {prefix + n for n in ("h1", "h2", "h3", "h4")} <= namespaces()
    table = subprocess.run(["ip", "-n", prefix + "h1", "route"], capture_output=True, text=True).stdout
    assert table.splitlines()[0] == "default via 10.0.0.2 dev " + prefix + "e0 proto static "


def switched_segments():
    """Two switches in a row with hosts on both, a router to a third segment."""
    graph = nx.Graph([("h1", "s1"), ("s1", "s2"), ("s2", "h2"), ("s2", "r"), ("r", "s3"), ("s3", "h3")])
    for s in ("s1", "s2", "s3"):
        graph.nodes[s]["kind"] = "switch"
    return graph


@pytest.mark.parametrize("graph", [
    topology.star(3), topology.star(3, switch=True), topology.tree(7), topology.ring(5), topology.ladder(3),
    topology.mesh(4), switched_segments(),
], ids=["star", "star-switch", "tree", "ring", "ladder", "mesh", "switched-segments"])
def test_every_node_reaches_every_other(ec, home, graph):
    topo = topology.build(ec, graph)
    pings = []
    for source, guid in topo.nodes.items():
        ec.set(guid, "home", home)
        targets = " ".join(a for node, a in topo.addresses().items() if node != source)
        pings.append(ec.register_resource(  # one application per node pings the others
            "linux::Application", connectedTo=guid,
            command=f"for a in {targets}; do ping -c1 -W2 $a >/dev/null || echo unreachable $a; done"))
    ec.deploy()
    ec.wait_finished(pings, timeout=60)
    assert [ec.state(p) for p in pings] == [S.FINISHED] * len(pings)
    assert "".join(ec.trace(p, "stdout") for p in pings) == ""


def test_two_experiments_side_by_side_do_not_collide(tmp_path, home):
    """The same topology (same names, same addresses) twice at once, each in its own namespaces."""
    results = {}
    both_deployed = threading.Barrier(2, timeout=30)

    def run(label):
        with ExperimentController(exp_id="twin", local_dir=str(tmp_path / label)) as ec:
            topo = topology.build(ec, topology.line(3, rate="100mbit"))
            for node in topo.nodes.values():
                ec.set(node, "home", home)
            ec.deploy()
            ec.wait_deployed(timeout=30)
            both_deployed.wait()
            live = namespaces()
            ping = ec.register_resource("linux::Ping", connectedTo=topo.nodes["h1"],
                                        target=topo.address("h3"), count=5, interval=0.05)
            ec.deploy(ping)
            ec.wait_finished(ping, timeout=30)
            results[label] = (run_prefix(ec), ping_counts(ec.trace(ping, "stdout")), live)

    threads = [threading.Thread(target=run, args=(label,)) for label in ("left", "right")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    (left, left_ping, seen), (right, right_ping, _) = results["left"], results["right"]
    assert left != right
    assert {left + "h1", left + "h2", left + "h3", right + "h1", right + "h2", right + "h3"} <= seen
    assert left_ping == right_ping == (5, 5)
