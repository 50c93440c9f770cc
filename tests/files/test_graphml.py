"""ec.write_graphml(): GraphML that networkx, Gephi and yEd read."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import networkx as nx

from nepi_lab import ResourceState
from nepi_lab.core.files import graphml_graph

from .test_save_load import build

NS = "{http://graphml.graphdrawing.org/xmlns}"
#: The value types GraphML defines for <key attr.type=...>.
GRAPHML_TYPES = {"boolean", "int", "long", "float", "double", "string"}


def edges(g) -> list:
    """Edges with their data, without the key (read_graphml makes keys of the edge ids)."""
    return sorted((u, v, sorted((k, x) for k, x in d.items() if k != "id")) for u, v, d in g.edges(data=True))


def test_write_then_read_gives_the_same_graph(ec, tmp_path):
    guids = build(ec)
    ec.set(guids["a"], "note", "carriage\r\nreturn and \x07 bell")
    ec.deploy()
    ec.wait_finished(guids["b"], timeout=10)
    ec.release()  # states, outcomes and the released mark are all set
    path = ec.write_graphml(tmp_path / "exp.graphml")
    assert path == str(tmp_path / "exp.graphml")
    expected = graphml_graph(ec)
    read = nx.read_graphml(path, node_type=int)
    assert isinstance(read, nx.MultiDiGraph)
    assert dict(read.nodes(data=True)) == dict(expected.nodes(data=True))
    assert edges(read) == edges(expected)
    read_graph = {k: v for k, v in read.graph.items() if k not in ("node_default", "edge_default")}
    assert read_graph == expected.graph == {"exp_id": "files", "run_id": ec.run_id}  # (defaults: networkx's)
    # what the serialisation made of the graph's values
    node = read.nodes[guids["b"]]
    assert node["state"] == "RELEASED" and node["outcome"] == "FINISHED" and node["released"] is True
    assert node["attribute.count"] == 2**63 - 1 and node["attribute.max-rate"] == -2.5e10
    assert node["attribute.fast"] is False and node["attribute.mode"] == "a"
    assert "name" not in node and node["label"] == "8 Task"  # None is left out
    assert read.nodes[guids["a"]]["attribute.note"] == "carriage\\u000d\nreturn and \\u0007 bell"
    assert read.nodes[guids["host"]]["attribute.discovered"] == "host-1"
    assert "attribute.password" not in read.nodes[guids["host"]]
    conditions = [d for u, v, d in read.edges(data=True) if d["kind"] == "condition"]
    assert {d["delay"] for d in conditions} == {1.5, 0.1234567891234, 3600.0, 0.0}
    assert {"action", "state", "label"} <= set(conditions[0])
    # a connection and a condition between the same two resources are two edges
    assert read.number_of_edges(guids["host"], guids["c"]) == 2


def test_the_file_is_graphml_with_one_typed_key_per_attribute(ec, tmp_path):
    build(ec)
    root = ET.parse(ec.write_graphml(tmp_path / "exp.graphml")).getroot()
    assert root.tag == f"{NS}graphml"
    keys = root.findall(f"{NS}key")
    assert keys and {k.get("attr.type") for k in keys} <= GRAPHML_TYPES
    names = [(k.get("for"), k.get("attr.name")) for k in keys]
    assert len(names) == len(set(names))  # one type per key: Gephi reads every column
    graph = root.find(f"{NS}graph")
    assert graph.get("edgedefault") == "directed"
    assert sorted(int(n.get("id")) for n in graph.findall(f"{NS}node")) == sorted(ec.resources)
    types = {k.get("attr.name"): k.get("attr.type") for k in keys if k.get("for") == "node"}
    assert types["attribute.count"] == "long" and types["attribute.fast"] == "boolean"
    assert types["attribute.seconds"] == "double" and types["state"] == "string"


def test_values_of_several_types_under_one_key_get_one_type(ec, tmp_path):
    """linux::Node's ``port`` is an Integer, a type of one's own may make it a Double or text."""
    from nepi_lab import Attribute, ResourceManager, Types

    class Mixed(ResourceManager):
        _rtype = "files::Mixed"
        _attributes = (Attribute("count", "a number", type=Types.Double), Attribute("fast", "text"))

    ec.register_resource("files::Task", count=3, fast=True)
    ec.register_resource(Mixed, count=2.5, fast="yes")
    g = graphml_graph(ec)
    assert [g.nodes[n]["attribute.count"] for n in g] == [3.0, 2.5]
    assert [g.nodes[n]["attribute.fast"] for n in g] == ["true", "yes"]
    read = nx.read_graphml(ec.write_graphml(tmp_path / "mixed.graphml"), node_type=int)
    assert dict(read.nodes(data=True)) == dict(g.nodes(data=True))
    assert ResourceState.NEW.name == read.nodes[1]["state"]
