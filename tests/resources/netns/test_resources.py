"""The netns resource types, wired by hand: nodes, interfaces, links, switches, routes."""

from __future__ import annotations

import subprocess

import pytest

from nepi_lab import (
    AttributeValueError,
    ExperimentFailedError,
    InvalidConnectionError,
    ResourceState,
)
from nepi_lab.resources.netns import run_prefix

from .conftest import ping_counts, wait_until

S = ResourceState


def pair(ec, home, **link):
    """Two nodes h1, h2 joined by one link; returns (h1, h2, i1, i2, link)."""
    h1 = ec.register_resource("netns::Node", name="h1", home=home)
    h2 = ec.register_resource("netns::Node", name="h2", home=home)
    i1 = ec.register_resource("netns::Interface", connectedTo=h1, ip="10.0.0.1/30", ipv6="fd00::1/64")
    i2 = ec.register_resource("netns::Interface", connectedTo=h2, ip="10.0.0.2/30", ipv6="fd00::2/64")
    lk = ec.register_resource("netns::Link", connectedTo=i1, **link)
    ec.register_connection(lk, i2)
    return h1, h2, i1, i2, lk


def test_applications_run_inside_the_node_namespace(ec, home):
    node = ec.register_resource("netns::Node", name="alone", home=home)
    app = ec.register_resource("linux::Application", connectedTo=node,
                               command="ip -o link; cat /proc/sys/net/ipv4/ip_forward")
    ec.deploy()
    ec.wait_finished(app, timeout=20)
    assert ec.state(app) == S.FINISHED
    out = ec.trace(app, "stdout")
    assert [line.split(":")[1].strip() for line in out.splitlines()[:-1]] == ["lo"]  # a fresh namespace
    assert out.splitlines()[-1] == "0"  # a host, not a router
    name = ec.get(node, "namespace")
    assert name == run_prefix(ec) + "alone"
    assert name in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    ec.release()
    assert name not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def test_ping_over_one_link_ipv4_and_ipv6(ec, home):
    h1, h2, i1, i2, _ = pair(ec, home)
    p4 = ec.register_resource("linux::Ping", connectedTo=h1, target="10.0.0.2", count=3, interval=0.05)
    p6 = ec.register_resource("linux::Ping", connectedTo=h2, target="fd00::1", count=3, interval=0.05)
    ec.deploy()
    ec.wait_finished([p4, p6], timeout=20)
    assert ping_counts(ec.trace(p4, "stdout")) == (3, 3)
    assert ping_counts(ec.trace(p6, "stdout")) == (3, 3)
    prefix = run_prefix(ec)
    assert ec.get(i1, "ifname") == ec.get(i2, "ifname") == prefix + "e0"
    assert len(prefix + "e0") <= 15


def test_switch_joins_hosts_on_one_segment(ec, home):
    switch = ec.register_resource("netns::Switch", name="s1")
    hosts = []
    for i in (1, 2, 3):
        host = ec.register_resource("netns::Node", name=f"h{i}", home=home)
        nic = ec.register_resource("netns::Interface", connectedTo=host, ip=f"10.1.0.{i}/24")
        link = ec.register_resource("netns::Link", connectedTo=nic)
        ec.register_connection(link, switch)
        hosts.append(host)
    pings = [ec.register_resource("linux::Ping", connectedTo=hosts[0], target=f"10.1.0.{i}", count=2,
                                  interval=0.05) for i in (2, 3)]
    ec.deploy()
    ec.wait_finished(pings, timeout=20)
    assert [ping_counts(ec.trace(p, "stdout")) for p in pings] == [(2, 2), (2, 2)]
    prefix = run_prefix(ec)
    assert ec.get(switch, "namespace") == prefix + "s1"
    assert ec.get(switch, "bridge") == prefix + "br"
    ports = subprocess.run(["ip", "-n", prefix + "s1", "-o", "link", "show", "master", prefix + "br"],
                           capture_output=True, text=True).stdout
    assert sorted(line.split(":")[1].strip().split("@")[0] for line in ports.splitlines()) == [
        prefix + "p0", prefix + "p1", prefix + "p2"]
    # the switch lives in its own namespace: the root namespace has no bridge of ours
    assert prefix not in subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout


def test_routes_and_forwarding_by_hand(ec, home):
    """h1 -- r -- h2, with routes on h1 and h2 and forwarding on r."""
    h1 = ec.register_resource("netns::Node", name="h1", home=home)
    r = ec.register_resource("netns::Node", name="r", home=home, forwarding=True)
    h2 = ec.register_resource("netns::Node", name="h2", home=home)
    ends = {}
    for host, ip in ((h1, "10.0.1.1/24"), (r, "10.0.1.254/24"), (r, "10.0.2.254/24"), (h2, "10.0.2.1/24")):
        ends.setdefault(ip.rsplit(".", 1)[0], []).append(
            ec.register_resource("netns::Interface", connectedTo=host, ip=ip))
    for a, b in ends.values():
        link = ec.register_resource("netns::Link", connectedTo=a)
        ec.register_connection(link, b)
    ec.register_resource("netns::Route", connectedTo=h1, destination="10.0.2.0/24", gateway="10.0.1.254")
    ec.register_resource("netns::Route", connectedTo=h2, destination="default", gateway="10.0.2.254")
    ping = ec.register_resource("linux::Ping", connectedTo=h1, target="10.0.2.1", count=2, interval=0.05)
    ec.deploy()
    ec.wait_finished(ping, timeout=20)
    out = ec.trace(ping, "stdout")
    assert ping_counts(out) == (2, 2) and "ttl=63" in out
    routes = subprocess.run(["ip", "-n", ec.get(h2, "namespace"), "route"], capture_output=True, text=True)
    assert "default via 10.0.2.254" in routes.stdout


def test_mtu_is_set_on_both_ends(ec, home):
    h1 = ec.register_resource("netns::Node", name="h1", home=home)
    h2 = ec.register_resource("netns::Node", name="h2", home=home)
    i1 = ec.register_resource("netns::Interface", connectedTo=h1, ip="10.0.0.1/30", mtu=1400)
    i2 = ec.register_resource("netns::Interface", connectedTo=h2, ip="10.0.0.2/30", mtu=1400)
    link = ec.register_resource("netns::Link", connectedTo=i1)
    ec.register_connection(link, i2)
    fits = ec.register_resource("linux::Application", connectedTo=h1,
                                command="ping -c1 -M do -s 1372 10.0.0.2")
    too_big = ec.register_resource("linux::Application", connectedTo=h1, critical=False,
                                   command="ping -c1 -W1 -M do -s 1373 10.0.0.2")
    ec.deploy()
    ec.wait_finished([fits, too_big], timeout=20)
    assert ec.state(fits) == S.FINISHED
    assert ec.state(too_big) == S.FAILED
    for node, iface in ((h1, i1), (h2, i2)):
        shown = subprocess.run(["ip", "-n", ec.get(node, "namespace"), "link", "show",
                                ec.get(iface, "ifname")], capture_output=True, text=True).stdout
        assert "mtu 1400" in shown


def test_an_interface_goes_down_and_up_while_running(ec, home):
    h1, h2, i1, _, _ = pair(ec, home)
    ec.deploy()
    ec.wait_deployed(timeout=20)

    def ping_once():
        p = ec.register_resource("linux::Ping", connectedTo=h1, target="10.0.0.2", count=1, timeout=0.5,
                                 critical=False)
        ec.deploy(p)
        ec.wait_finished(p, timeout=10)
        return ec.state(p)

    assert ping_once() == S.FINISHED
    ec.set(i1, "up", False)

    def shown():
        return subprocess.run(["ip", "-n", ec.get(h1, "namespace"), "link", "show", ec.get(i1, "ifname")],
                              capture_output=True, text=True).stdout

    assert wait_until(lambda: "state DOWN" in shown())
    assert ping_once() == S.FAILED
    ec.set(i1, "up", True)
    assert wait_until(lambda: "UP" in shown().split(">")[0])
    assert ping_once() == S.FINISHED


def test_the_experiment_graph_shows_the_topology(ec, home):
    h1, h2, i1, i2, link = pair(ec, home, rate="10mbit")
    g = ec.graph()
    assert {g.nodes[n]["type"] for n in g.nodes} == {"netns::Node", "netns::Interface", "netns::Link"}
    connections = {frozenset((u, v)) for u, v, d in g.edges(data=True) if d["kind"] == "connection"}
    assert connections == {frozenset(e) for e in ((h1, i1), (h2, i2), (i1, link), (i2, link))}
    assert g.nodes[link]["attributes"]["rate"] == "10mbit"


# -- refused at once, or at deploy, with the reason -------------------------------------------------


def test_bad_input_is_refused_at_the_call(ec):
    node = ec.register_resource("netns::Node")
    link = ec.register_resource("netns::Link")
    with pytest.raises(InvalidConnectionError, match="connect a netns::Interface"):
        ec.register_connection(link, node)
    with pytest.raises(AttributeValueError, match="prefix length"):
        ec.register_resource("netns::Interface", ip="10.0.0.1")
    with pytest.raises(AttributeValueError, match="IPv6"):
        ec.register_resource("netns::Interface", ipv6="10.0.0.1/24")
    with pytest.raises(AttributeValueError, match="at most 15"):
        ec.register_resource("netns::Interface", ifname="a-very-long-interface-name")
    with pytest.raises(AttributeValueError, match="letters, digits"):
        ec.register_resource("netns::Node", name="h 1")
    with pytest.raises(AttributeValueError, match="unknown rate unit"):
        ec.register_resource("netns::Link", rate="20 furlongs")
    with pytest.raises(AttributeValueError, match="localhost"):
        ec.register_resource("netns::Node", hostname="example.org")
    iface = ec.register_resource("netns::Interface", connectedTo=node)
    other = ec.register_resource("netns::Node")
    with pytest.raises(InvalidConnectionError, match="already connected"):
        ec.register_connection(iface, other)


def test_a_route_without_gateway_or_device_fails_at_deploy(ec, home):
    node = ec.register_resource("netns::Node", home=home)
    route = ec.register_resource("netns::Route", connectedTo=node, destination="10.9.0.0/16")
    ec.deploy()
    with pytest.raises(ExperimentFailedError, match="needs a gateway or a device"):
        ec.wait_deployed(timeout=20)
    ec.wait_released(timeout=20)
    assert ec.failures[0].guid == route


def test_an_unreachable_gateway_fails_with_the_kernel_reason(ec, home):
    node = ec.register_resource("netns::Node", home=home)
    ec.register_resource("netns::Route", connectedTo=node, destination="10.9.0.0/16", gateway="10.8.0.1")
    ec.deploy()
    with pytest.raises(ExperimentFailedError, match="route add dst 10.9.0.0/16 gateway 10.8.0.1 in network "
                                                    "namespace .* failed: Network is unreachable"):
        ec.wait_deployed(timeout=20)
    ec.wait_released(timeout=20)


def test_a_link_with_one_end_fails_at_deploy(ec, home):
    node = ec.register_resource("netns::Node", home=home)
    nic = ec.register_resource("netns::Interface", connectedTo=node)
    ec.register_resource("netns::Link", connectedTo=nic)
    ec.deploy()
    with pytest.raises(ExperimentFailedError, match="needs two ends"):
        ec.wait_deployed(timeout=20)
    ec.wait_released(timeout=20)


def test_releasing_a_link_or_a_route_alone_removes_just_it(ec, home):
    h1, h2, i1, i2, link = pair(ec, home, loss=1.0)
    route = ec.register_resource("netns::Route", connectedTo=h1, destination="10.9.0.0/16",
                                 gateway="10.0.0.2")
    ec.deploy()
    ec.wait_deployed(timeout=20)
    ns1, ns2, ifname = ec.get(h1, "namespace"), ec.get(h2, "namespace"), ec.get(i1, "ifname")

    def show(*args):
        return subprocess.run(["ip", "-n", ns1, *args], capture_output=True, text=True).stdout

    assert "10.9.0.0/16 via 10.0.0.2" in show("route")
    ec.release(route)
    assert "10.9.0.0/16" not in show("route")
    assert ifname in show("link")
    ec.release([i1, i2, link])
    assert ifname not in show("link")
    assert ifname not in subprocess.run(["ip", "-n", ns2, "link"], capture_output=True, text=True).stdout
    tables = subprocess.run(["ip", "netns", "exec", ns1, "nft", "list", "tables"], capture_output=True,
                            text=True)
    assert "nepi_lab" not in tables.stdout
    assert ec.state(h1) == ec.state(h2) == S.STARTED  # the nodes live on


def test_two_nodes_of_one_name_fail_clearly_and_leave_nothing(ec, home):
    ec.register_resource("netns::Node", name="twin", home=home)
    ec.register_resource("netns::Node", name="twin", home=home)
    ec.deploy()
    with pytest.raises(ExperimentFailedError, match=r"network namespace 'nl[a-z2-7]{5}-twin' already exists"):
        ec.wait_deployed(timeout=20)
    ec.wait_released(timeout=20)
