"""netns::Route with NEPI's names (``network``, ``prefix``, ``nexthop``), in real namespaces."""

from __future__ import annotations

import json
import subprocess

import pytest

from nepi_lab import ExperimentController, ExperimentFailedError, ResourceState

S = ResourceState


def test_a_route_given_as_network_prefix_and_nexthop(ec, home, tmp_path):
    h1 = ec.register_resource("netns::Node", name="h1", home=home)
    h2 = ec.register_resource("netns::Node", name="h2", home=home)
    i1 = ec.register_resource("netns::Interface", connectedTo=h1, ip="10.0.0.1/30")
    i2 = ec.register_resource("netns::Interface", connectedTo=h2, ip="10.0.0.2/30")
    link = ec.register_resource("netns::Link", connectedTo=i1)
    ec.register_connection(link, i2)
    route = ec.register_resource("netns::Route")
    ec.set(route, "network", "10.9.0.0")
    ec.set(route, "prefix", "16")
    ec.set(route, "nexthop", "10.0.0.2")
    ec.register_connection(route, h1)
    host_route = ec.register_resource("netns::Route", connectedTo=h1, network="10.8.0.7", nexthop="10.0.0.2")
    assert ec.get(route, "gateway") == "10.0.0.2"
    with open(ec.save(str(tmp_path / "routes.json"))) as f:
        saved = json.load(f)
    by_guid = {r["guid"]: r.get("attributes") for r in saved["resources"]}
    assert by_guid[route] == {"network": "10.9.0.0", "prefix": 16, "gateway": "10.0.0.2"}
    ec.deploy()
    ec.wait_deployed(timeout=20)
    assert not ec.failures and ec.state(route) >= S.READY and ec.state(host_route) >= S.READY
    shown = subprocess.run(["ip", "-n", ec.get(h1, "namespace"), "route"], capture_output=True,
                           text=True).stdout
    assert "10.9.0.0/16 via 10.0.0.2" in shown
    assert "10.8.0.7 via 10.0.0.2" in shown  # no prefix: a host route
    loaded = ExperimentController.load(str(tmp_path / "routes.json"), local_dir=str(tmp_path / "again"))
    try:
        assert loaded.get(route, "nexthop") == "10.0.0.2"
    finally:
        loaded.shutdown()


@pytest.mark.parametrize(("attributes", "reason"), [
    ({"network": "10.9.0.1", "prefix": 16}, "is not a network: 10.9.0.1/16 has host bits set"),
    ({"network": "10.9.0.0", "prefix": 16, "destination": "10.9.0.0/16"}, "not both"),
    ({"prefix": 16}, "prefix needs network"),
])
def test_a_route_given_both_ways_or_half_is_refused_at_deploy(ec, home, attributes, reason):
    node = ec.register_resource("netns::Node", home=home)
    ec.register_resource("netns::Route", connectedTo=node, nexthop="10.0.0.2", **attributes)
    ec.deploy()
    with pytest.raises(ExperimentFailedError, match=reason):
        ec.wait_deployed(timeout=20)
    ec.wait_released(timeout=20)
