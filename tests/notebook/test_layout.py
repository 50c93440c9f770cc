"""StableLayout: computed once, never moves a node, deterministic, linear for big components."""

from __future__ import annotations

import math
import time

import networkx as nx

from nepi_lab.notebook import StableLayout


def test_old_nodes_never_move():
    layout = StableLayout()
    g = nx.MultiDiGraph()
    g.add_edges_from([(1, 2), (2, 3), (4, 5)])
    first = dict(layout.update(g))
    g.add_edge(6, 1)  # attached to a placed node
    g.add_edges_from([(7, 8), (8, 9)])  # a new component
    g.add_node(10)
    after = layout.update(g)
    assert {n: after[n] for n in first} == first
    assert set(after) == set(range(1, 11))


def test_a_new_neighbour_lands_next_to_its_anchor():
    layout = StableLayout()
    g = nx.path_graph(6)
    layout.update(g)
    g.add_edge(0, 99)
    positions = layout.update(g)
    assert math.dist(positions[99], positions[0]) < 1.5


def test_removed_nodes_are_forgotten():
    layout = StableLayout()
    g = nx.path_graph(4)
    layout.update(g)
    g.remove_node(3)
    assert set(layout.update(g)) == {0, 1, 2}


def test_deterministic():
    g = nx.star_graph(12)
    g.add_edges_from([(20, 21), (21, 22)])
    assert StableLayout().update(g) == StableLayout().update(g)


def test_no_two_nodes_share_a_place():
    g = nx.Graph()
    for hub in range(0, 1000, 10):
        g.add_edges_from((hub, hub + k) for k in range(1, 10))
    g.add_node(5000)
    positions = StableLayout().update(g)
    assert len({(round(x, 6), round(y, 6)) for x, y in positions.values()}) == len(positions)


def test_a_thousand_nodes_in_one_component_is_fast():
    g = nx.star_graph(999)  # one node, 999 applications
    start = time.perf_counter()
    positions = StableLayout().update(g)
    assert time.perf_counter() - start < 1.0
    assert len(positions) == 1000
