"""linux::Tap, linux::Tun, linux::GRETunnel, linux::UdpTunnel, linux::Interface and
linux::Channel, in real namespaces (root).

Two ``netns::Node`` joined by a ``netns::Link`` (10.0.0.1/30 - 10.0.0.2/30) are the two
hosts of NEPI's tests; the tunnels' inner network is 192.168.1.0/24, reachable only
through the tap or tun devices.  Traffic is checked to cross the link inside the tunnel
(tcpdump on the link sees GRE or UDP packets, and nothing else carries them), and
release to remove devices, forwarder processes and namespaces (the package's
``nothing_left_behind`` fixture checks the last).
"""

# the NEPI-style scripts below keep NEPI 6's "%d" % value formatting, as its users wrote them
# ruff: noqa: UP031

from __future__ import annotations

import json
import os
import struct
import subprocess

import pytest

from nepi_lab import ExperimentController, ExperimentFailedError, ResourceState

from ..linux.conftest import all_gone, processes_with
from .conftest import ping_counts, wait_until

S = ResourceState


def _kernel_has_gre() -> bool:
    """Whether this kernel makes gretap devices (CONFIG_NET_IPGRE)."""
    probe = f"nepi-lab-gre-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", probe], capture_output=True)
    try:
        made = subprocess.run(["ip", "-n", probe, "link", "add", "g0", "type", "gretap", "local", "10.9.9.1",
                               "remote", "10.9.9.2"], capture_output=True, text=True)
        return made.returncode == 0
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)


KERNEL_GRE = _kernel_has_gre()


def two_hosts(ec, home):
    """Two namespaces joined by a link; returns the nodes and their interfaces."""
    h1 = ec.register_resource("netns::Node", name="h1", home=home)
    h2 = ec.register_resource("netns::Node", name="h2", home=home)
    i1 = ec.register_resource("netns::Interface", connectedTo=h1, ip="10.0.0.1/30")
    i2 = ec.register_resource("netns::Interface", connectedTo=h2, ip="10.0.0.2/30")
    link = ec.register_resource("netns::Link", connectedTo=i1)
    ec.register_connection(link, i2)
    return h1, h2, i1, i2


def device(ec, node, guid) -> dict:
    """``ip -json -details addr`` of the device of tap/tun ``guid`` on ``node``."""
    out = subprocess.run(["ip", "-n", ec.get(node, "namespace"), "-json", "-details", "-statistics", "addr",
                          "show", "dev", ec.get(guid, "deviceName")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)[0]


def pcap_packets(pcap: bytes) -> int:
    """How many packets a pcap file holds."""
    count, offset = 0, 24
    while offset + 16 <= len(pcap):
        offset += 16 + struct.unpack("<IIII", pcap[offset:offset + 16])[2]
        count += 1
    return count


@pytest.mark.parametrize("kind", ["linux::Tap", "linux::Tun"])
def test_a_device_is_made_configured_at_ready_follows_up_and_is_deleted_at_release(ec, home, kind):
    h1, _, _, _ = two_hosts(ec, home)
    extra = {"mac": "02:00:00:00:00:01"} if kind == "linux::Tap" else {"pointopoint": "192.168.1.9"}
    dev = ec.register_resource(kind, connectedTo=h1, ip="192.168.1.1", prefix=24, mtu=1400, txqueuelen=77,
                               **extra)
    ec.deploy()
    ec.wait_deployed(timeout=30)
    assert not ec.failures
    name = ec.get(dev, "deviceName")
    assert name == f"{kind[7:].lower()}{dev}"  # NEPI's tap<guid> / tun<guid>
    info = device(ec, h1, dev)
    assert "UP" in info["flags"] and info["mtu"] == 1400 and info["txqlen"] == 77
    assert info["linkinfo"]["info_kind"] == "tun"
    assert info["linkinfo"]["info_data"]["type"] == kind[7:].lower()
    address = next(a for a in info["addr_info"] if a["family"] == "inet")
    assert address["local"] == "192.168.1.1" and address["prefixlen"] == 24
    if kind == "linux::Tap":
        assert info["address"] == "02:00:00:00:00:01"
    else:
        assert address["address"] == "192.168.1.9"  # the point-to-point peer
    ec.set(dev, "up", False)
    assert wait_until(lambda: "UP" not in device(ec, h1, dev)["flags"], 5)
    ec.set(dev, "mtu", 1300)
    assert wait_until(lambda: device(ec, h1, dev)["mtu"] == 1300, 5)
    ec.release([dev])
    shown = subprocess.run(["ip", "-n", ec.get(h1, "namespace"), "link", "show", "dev", name],
                           capture_output=True, text=True)
    assert shown.returncode != 0  # deleted by its release, the namespace still there
    ec.release()


def test_a_tap_on_a_localhost_node_runs_its_tear_down_then_is_deleted(ec, home, tmp_path):
    name = f"nlt{os.getpid() % 100000}x"  # in the root namespace: a name of this test's own
    seen = tmp_path / "seen"
    node = ec.register_resource("linux::Node", hostname="localhost", home=home)
    tap = ec.register_resource("linux::Tap", connectedTo=node, deviceName=name, ip="fd00:77::1", prefix=64,
                               tearDown=f"ip -br link show dev {name} > {seen}")
    ec.deploy()
    ec.wait_deployed(timeout=30)
    assert not ec.failures, ec.failures
    shown = subprocess.run(["ip", "-json", "addr", "show", "dev", name], capture_output=True, text=True)
    addresses = json.loads(shown.stdout)[0]["addr_info"]
    assert ("fd00:77::1", 64) in {(a["local"], a["prefixlen"]) for a in addresses}
    ec.release()
    assert seen.read_text().startswith(name)  # the tear-down saw the device ...
    gone = subprocess.run(["ip", "link", "show", "dev", name], capture_output=True)
    assert gone.returncode != 0  # ... gone now
    assert ec.get(tap, "deviceName") == name


def test_a_tap_refuses_a_prefix_given_twice_differently_and_a_tun_a_mac(ec, home):
    h1 = ec.register_resource("netns::Node", name="h1", home=home)
    ec.register_resource("linux::Tap", connectedTo=h1, ip="192.168.1.1/24", prefix=16)
    ec.deploy()
    with pytest.raises(ExperimentFailedError, match="give the prefix length once"):
        ec.wait_deployed(timeout=20)
    ec.wait_released(timeout=20)
    with ExperimentController(exp_id="netns", local_dir=str(home) + "-results") as other:
        node = other.register_resource("netns::Node", name="h1", home=home)
        other.register_resource("linux::Tun", connectedTo=node, ip="192.168.1.1", mac="02:00:00:00:00:01")
        other.deploy()
        with pytest.raises(ExperimentFailedError, match="a tun device has no MAC address"):
            other.wait_deployed(timeout=20)


TUNNELS = [(kind, tunnel) for tunnel in ("linux::GRETunnel", "linux::UdpTunnel")
           for kind in ("linux::Tap", "linux::Tun")]


@pytest.mark.parametrize(("kind", "tunnel"), TUNNELS)
def test_a_tunnel_carries_ping_between_two_namespaces_and_release_leaves_nothing(ec, home, kind, tunnel):
    h1, h2, _, i2 = two_hosts(ec, home)
    t1 = ec.register_resource(kind, connectedTo=h1, ip="192.168.1.1", prefix=24)
    t2 = ec.register_resource(kind, connectedTo=h2, ip="192.168.1.2", prefix=24)
    tun = ec.register_resource(tunnel, connectedTo=t1)
    ec.register_connection(tun, t2)
    carried = "ip proto 47" if tunnel == "linux::GRETunnel" else "udp"
    dump = ec.register_resource("linux::Tcpdump", connectedTo=h2, interface=ec.get(i2, "ifname"),
                                filter=carried, count=6)
    ping = ec.register_resource("linux::Ping", connectedTo=h1, target="192.168.1.2", address="192.168.1.1",
                                count=3, interval=0.2)
    ec.register_condition(ping, "START", dump, "STARTED")
    ec.deploy()
    ec.wait_finished([ping, dump], timeout=60)
    assert not ec.failures, ec.failures
    assert ping_counts(ec.trace(ping, "stdout")) == (3, 3)
    # the six ICMP packets (and ARP, for taps) crossed the link inside GRE or UDP ...
    assert pcap_packets(ec.trace(dump, "pcap")) == 6
    # ... and came out of the far end's device
    assert device(ec, h2, t2)["stats64"]["rx"]["packets"] >= 3
    if tunnel == "linux::GRETunnel":
        assert ec.get(tun, "mechanism") == ("kernel" if KERNEL_GRE else "userspace")
    running = processes_with(home)
    if tunnel == "linux::UdpTunnel" or not KERNEL_GRE:
        forwarders = [p for p in running if len(p.cmdline()) > 1 and p.cmdline()[1].endswith("/forwarder.py")]
        assert len(forwarders) == 2, [p.cmdline() for p in running]  # one per end
    ec.release()
    assert all_gone(home)
    assert not os.path.exists(os.path.join(home, ".nepi_lab"))


def test_a_udp_tunnel_whose_forwarder_dies_fails_in_words(ec, home):
    h1, h2, _, _ = two_hosts(ec, home)
    t1 = ec.register_resource("linux::Tap", connectedTo=h1, ip="192.168.1.1", prefix=24)
    t2 = ec.register_resource("linux::Tap", connectedTo=h2, ip="192.168.1.2", prefix=24)
    tun = ec.register_resource("linux::UdpTunnel", connectedTo=t1, critical=False)
    ec.register_connection(tun, t2)
    ec.deploy()
    ec.wait_deployed(timeout=30)
    assert wait_until(lambda: ec.state(tun) == S.STARTED, 10)
    forwarders = [p for p in processes_with(home) if len(p.cmdline()) > 1
                  and p.cmdline()[1].endswith("/forwarder.py")]
    forwarders[0].kill()
    assert wait_until(lambda: ec.state(tun) == S.FAILED, 10)
    assert "the tunnel's forwarder ended" in ec.failures[0].message
    ec.release()
    assert all_gone(home)


def test_a_forwarder_that_cannot_start_fails_the_tunnel_with_its_stderr(ec, home):
    h1, h2, _, _ = two_hosts(ec, home)
    ec.set(h1, "ip", "10.9.9.9")  # not h1's: the forwarder cannot send from it
    t1 = ec.register_resource("linux::Tun", connectedTo=h1, ip="192.168.1.1", prefix=24)
    t2 = ec.register_resource("linux::Tun", connectedTo=h2, ip="192.168.1.2", prefix=24)
    tun = ec.register_resource("linux::UdpTunnel", connectedTo=t1)
    ec.register_connection(tun, t2)
    ec.deploy()
    refused = "forwarder exited with status 1: forwarder: .Errno 99. Cannot assign requested address"
    with pytest.raises(ExperimentFailedError, match=refused):
        ec.wait_deployed(timeout=30)
    ec.wait_released(timeout=30)
    assert all_gone(home)


def test_without_the_tunnel_the_inner_address_is_unreachable(ec, home):
    h1, h2, _, _ = two_hosts(ec, home)
    ec.register_resource("linux::Tap", connectedTo=h1, ip="192.168.1.1", prefix=24)
    ec.register_resource("linux::Tap", connectedTo=h2, ip="192.168.1.2", prefix=24)
    ping = ec.register_resource("linux::Ping", connectedTo=h1, target="192.168.1.2", count=2, interval=0.2,
                                deadline=2)
    ec.set(ping, "critical", False)
    ec.deploy()
    ec.wait_finished(ping, timeout=30)
    assert ping_counts(ec.trace(ping, "stdout"))[1] == 0


def test_a_udp_tunnel_joins_slash_32_ends_by_pointopoint_as_nepi_did(ec, home):
    h1, h2, _, _ = two_hosts(ec, home)
    t1 = ec.register_resource("linux::Tun", connectedTo=h1, ip4="192.168.1.1", prefix4=32)
    t2 = ec.register_resource("linux::Tun", connectedTo=h2, ip4="192.168.1.2", prefix4=32)
    tun = ec.register_resource("linux::UdpTunnel", connectedTo=t1, txQueueLen=200, bwLimit=10_000_000)
    ec.register_connection(tun, t2)
    ping = ec.register_resource("linux::Ping", connectedTo=h1, target="192.168.1.2", count=2, interval=0.2)
    ec.deploy()
    ec.wait_finished(ping, timeout=60)
    assert not ec.failures, ec.failures
    assert ping_counts(ec.trace(ping, "stdout")) == (2, 2)
    assert ec.get(t1, "pointopoint") == "192.168.1.2" and ec.get(t2, "pointopoint") == "192.168.1.1"
    assert device(ec, h1, t1)["txqlen"] == 200


def test_a_udp_tunnel_refuses_encryption_in_words(ec, home):
    h1, h2, _, _ = two_hosts(ec, home)
    t1 = ec.register_resource("linux::Tap", connectedTo=h1, ip="192.168.1.1", prefix=24)
    t2 = ec.register_resource("linux::Tap", connectedTo=h2, ip="192.168.1.2", prefix=24)
    tun = ec.register_resource("linux::UdpTunnel", connectedTo=t1, cipher="AES", cipherKey="secret")
    ec.register_connection(tun, t2)
    ec.deploy()
    with pytest.raises(ExperimentFailedError, match="encryption .AES. is not supported"):
        ec.wait_deployed(timeout=30)
    ec.wait_released(timeout=30)


def test_a_tunnel_joins_two_ends_of_one_kind(ec, home):
    h1, h2, _, _ = two_hosts(ec, home)
    t1 = ec.register_resource("linux::Tap", connectedTo=h1, ip="192.168.1.1", prefix=24)
    t2 = ec.register_resource("linux::Tun", connectedTo=h2, ip="192.168.1.2", prefix=24)
    tun = ec.register_resource("linux::GRETunnel", connectedTo=t1)
    ec.register_connection(tun, t2)
    third = ec.register_resource("linux::Tap", connectedTo=h2)
    with pytest.raises(Exception, match="already joins"):
        ec.register_connection(tun, third)
    ec.deploy()
    with pytest.raises(ExperimentFailedError, match="joins a tap and a tun"):
        ec.wait_deployed(timeout=30)
    ec.wait_released(timeout=30)


@pytest.mark.skipif(KERNEL_GRE, reason="this kernel has GRE: the refusal cannot happen")
def test_kernel_gre_is_refused_in_words_where_the_kernel_has_none(ec, home):
    h1, h2, _, _ = two_hosts(ec, home)
    t1 = ec.register_resource("linux::Tap", connectedTo=h1, ip="192.168.1.1", prefix=24)
    t2 = ec.register_resource("linux::Tap", connectedTo=h2, ip="192.168.1.2", prefix=24)
    tun = ec.register_resource("linux::GRETunnel", connectedTo=t1, implementation="kernel")
    ec.register_connection(tun, t2)
    ec.deploy()
    with pytest.raises(ExperimentFailedError, match="has no GRE .* set implementation='auto'"):
        ec.wait_deployed(timeout=30)
    ec.wait_released(timeout=30)


@pytest.mark.skipif(not KERNEL_GRE, reason="this kernel has no GRE (CONFIG_NET_IPGRE): the kernel's "
                    "gretap/gre devices cannot be made; the userspace GRE is tested above")
@pytest.mark.parametrize("kind", ["linux::Tap", "linux::Tun"])
def test_kernel_gre_devices_replace_the_tuntap_ones(ec, home, kind):
    h1, h2, _, _ = two_hosts(ec, home)
    t1 = ec.register_resource(kind, connectedTo=h1, ip="192.168.1.1", prefix=24)
    t2 = ec.register_resource(kind, connectedTo=h2, ip="192.168.1.2", prefix=24)
    tun = ec.register_resource("linux::GRETunnel", connectedTo=t1, implementation="kernel")
    ec.register_connection(tun, t2)
    ping = ec.register_resource("linux::Ping", connectedTo=h1, target="192.168.1.2", count=2, interval=0.2)
    ec.deploy()
    ec.wait_finished(ping, timeout=60)
    assert ping_counts(ec.trace(ping, "stdout")) == (2, 2)
    expected = "gretap" if kind == "linux::Tap" else "gre"
    assert device(ec, h1, t1)["linkinfo"]["info_kind"] == expected


# -- scripts written as for NEPI 6 (NEPI's names and calls; the hosts are namespaces) -----------------


def nepi_style_tunnel(home, device_type, tunnel_type, prefix):
    """A NEPI 6 style script: two hosts, a tap or tun on each, a tunnel between them, an
    application pinging across; returns what it read back.  Only the lines marked
    ``# host`` say where the hosts are (NEPI's scripts named two machines)."""
    ec = ExperimentController(exp_id="nepi-style-tunnel", local_dir=str(home) + "-results")
    ends = []
    for last in (1, 2):
        host = ec.register_resource("netns::Node")                         # host
        ec.set(host, "home", home)                                         # host
        vif = ec.register_resource(device_type)
        ec.set(vif, "ip4", "172.20.%d.%d" % (last, last) if prefix == 16 else "172.20.0.%d" % last)
        ec.set(vif, "prefix4", prefix)
        ec.register_connection(vif, host)
        ends.append((host, vif))
    (left, left_vif), (right, right_vif) = ends
    underlay = ec.register_resource("netns::Link")                        # host
    for host, address in ((left, "10.0.0.1/30"), (right, "10.0.0.2/30")):  # host
        nic = ec.register_resource("netns::Interface", ip=address)         # host
        ec.register_connection(nic, host)                                  # host
        ec.register_connection(nic, underlay)                              # host
    tunnel = ec.register_resource(tunnel_type)
    for vif in (left_vif, right_vif):
        ec.register_connection(vif, tunnel)
    far = ec.get(right_vif, "ip4")
    pinger = ec.register_resource("linux::Application")
    ec.set(pinger, "command", "ping -c 2 -W 5 " + far)
    ec.register_connection(pinger, left)
    ec.deploy()
    ec.wait_finished(pinger)
    seen = {"stdout": ec.trace(pinger, "stdout"), "state": ec.state(pinger),
            "names": (ec.get(left_vif, "deviceName"), ec.get(right_vif, "deviceName"))}
    ec.shutdown()
    return seen


@pytest.mark.parametrize(("device_type", "tunnel_type", "prefix"), [
    ("linux::Tap", "linux::GRETunnel", 16),
    ("linux::Tun", "linux::UdpTunnel", 32),   # NEPI's /32 ends: each other's point-to-point peer
])
def test_a_nepi_style_tunnel_script(home, device_type, tunnel_type, prefix):
    seen = nepi_style_tunnel(home, device_type, tunnel_type, prefix)
    assert seen["state"] == S.FINISHED
    assert ping_counts(seen["stdout"]) == (2, 2)
    kind = device_type[len("linux::"):].lower()
    assert all(name.startswith(kind) for name in seen["names"])  # NEPI's tap<guid> / tun<guid>
    assert all_gone(home)


# -- linux::Interface and linux::Channel ---------------------------------------------------------------


def test_a_nepi_style_interface_script_reads_the_node_s_device(home):
    # as for NEPI 6: an interface of a node and its channel, read back after deploy; the
    # node is a namespace with one link (the lines marked "host")
    ec = ExperimentController(local_dir=str(home) + "-results")
    hosts = [ec.register_resource("netns::Node", home=home) for _ in range(2)]      # host
    nics = [ec.register_resource("netns::Interface", connectedTo=host, ip=address)  # host
            for host, address in zip(hosts, ("10.0.0.1/30", "10.0.0.2/30"), strict=True)]  # host
    wire = ec.register_resource("netns::Link")                                      # host
    for nic in nics:                                                                 # host
        ec.register_connection(wire, nic)                                           # host
    channel = ec.register_resource("linux::Channel")
    interface = ec.register_resource("linux::Interface")
    ec.register_connection(interface, hosts[0])
    ec.register_connection(interface, channel)
    ec.deploy()
    ec.wait_started([hosts[0], interface], timeout=30)
    assert ec.state(interface, hr=True) == "STARTED"
    read_back = {name: ec.get(interface, name) for name in ("deviceName", "ip4", "mask4", "up", "mtu", "mac")}
    veth = ec.get(nics[0], "ifname")
    ec.shutdown()
    assert read_back["deviceName"] == veth  # NEPI read "eth0" on its hosts
    assert (read_back["ip4"], read_back["mask4"]) == ("10.0.0.1", "255.255.255.252")
    assert read_back["up"] is True and read_back["mtu"] == 1500 and read_back["mac"]


def test_without_a_name_or_address_the_interface_is_the_first_up_device_with_an_ipv4_address(ec, home):
    # as NEPI's hosts' eth0: a device up without an address (a bare veth end, listed first)
    # is passed over for the next one that has an IPv4 address
    h1, _, i1, _ = two_hosts(ec, home)
    iface = ec.register_resource("linux::Interface", connectedTo=h1)
    rm = ec.get_resource(iface)
    ec.deploy()
    ec.wait_deployed(timeout=30)
    assert ec.get(iface, "deviceName") == ec.get(i1, "ifname")  # the namespace's one device
    for name in ("deviceName", "ip4", "ip6"):  # as before deploy: nothing to find it by
        rm.set(name, None, internal=True)

    def device(name, up=True, *families):
        return {"ifname": name, "flags": ["BROADCAST", "UP"] if up else ["BROADCAST"],
                "addr_info": [{"family": f, "local": "x"} for f in families]}

    lo = {"ifname": "lo", "flags": ["LOOPBACK", "UP"], "addr_info": [{"family": "inet", "local": "::1"}]}
    listed = [lo, device("bare"), device("down", False, "inet"), device("v6", True, "inet6"),
              device("eth0", True, "inet6", "inet")]
    assert rm._choose(listed)["ifname"] == "eth0"
    assert rm._choose([lo, device("bare"), device("v6", True, "inet6")])["ifname"] == "bare"  # none has IPv4
    with pytest.raises(Exception, match="no device up but lo"):
        rm._choose([lo, device("down", False, "inet")])


def test_an_interface_not_found_says_what_to_set(ec, home):
    h1, _, _, _ = two_hosts(ec, home)
    ec.register_resource("linux::Interface", connectedTo=h1, ip4="172.16.0.1", mask4="16")
    ec.deploy()
    with pytest.raises(ExperimentFailedError, match="no device of .* has address 172.16.0.1; set deviceName"):
        ec.wait_deployed(timeout=30)
    ec.wait_released(timeout=30)


def test_an_interface_with_a_device_name_adds_and_gives_back(ec, home):
    h1, _, i1, _ = two_hosts(ec, home)
    ec.set(i1, "ifname", "veth-a")
    iface = ec.register_resource("linux::Interface", connectedTo=h1, deviceName="veth-a", ip4="172.16.0.1",
                                 mask4="16", ip6="fd00:9::1", mask6=64, mtu=1400)
    ec.deploy()
    ec.wait_deployed(timeout=30)
    assert not ec.failures, ec.failures
    namespace = ec.get(h1, "namespace")

    def shown() -> dict:
        out = subprocess.run(["ip", "-n", namespace, "-json", "addr", "show", "dev", "veth-a"],
                             capture_output=True, text=True).stdout
        return json.loads(out)[0]

    addresses = {(a["local"], a["prefixlen"]) for a in shown()["addr_info"]}
    assert {("10.0.0.1", 30), ("172.16.0.1", 16), ("fd00:9::1", 64)} <= addresses
    assert shown()["mtu"] == 1400 and ec.get(iface, "mtu") == 1400
    assert ec.get(iface, "mask4") == "255.255.0.0"
    ec.set(iface, "up", False)
    assert wait_until(lambda: "UP" not in shown()["flags"], 5)
    ec.release([iface])
    after = shown()
    left = {(a["local"], a["prefixlen"]) for a in after["addr_info"]}
    assert not left & {("172.16.0.1", 16), ("fd00:9::1", 64)}
    assert after["mtu"] == 1500 and "UP" in after["flags"]  # given back as found
    assert ("10.0.0.1", 30) in left
    ec.release()
