"""NEPI's attribute names: scripts written as for NEPI 6 run with only their imports changed.

The first tests are NEPI-style scripts (NEPI's names, NEPI's calls); the others check
every alias both ways, that files keep the attributes' own names, and that unknown
names are still refused.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import struct
import time

import pytest

from nepi_lab import (
    Alias,
    ExperimentController,
    InvalidInputError,
    ResourceState,
    UnknownAttributeError,
    UnreachableStateError,
)
from nepi_lab.core.attributes import Types
from nepi_lab.resources.linux.node import Node

from .sshd import sshd  # noqa: F401 - the session fixture

S = ResourceState
NEPI_TYPES = ("linux::Node", "linux::Ping", "linux::Tcpdump")


def need(tool):
    return pytest.mark.skipif(shutil.which(tool) is None,
                              reason=f"{tool} is not installed (apt-get install {tool})")


# -- NEPI-style scripts ---------------------------------------------------------------------


@need("ping")
def test_a_nepi_script_with_a_localhost_node_and_a_ping(ec, home, tmp_path):
    # as in NEPI: leftovers of an earlier experiment are removed by cleanHome
    stale = os.path.join(home, ".nepi_lab", "an-old-experiment", "run-1")
    os.makedirs(stale)
    torn_down = tmp_path / "torn-down"
    node = ec.register_resource("linux::Node")
    ec.set(node, "hostname", "localhost")
    ec.set(node, "home", home)
    ec.set(node, "identity", str(tmp_path / "unused_key"))  # NEPI's name; not used for localhost
    ec.set(node, "cleanHome", True)
    ec.set(node, "cleanProcessesAfter", True)
    ec.set(node, "tearDown", f"pwd > {torn_down}")
    ping = ec.register_resource("linux::Ping")
    ec.set(ping, "target", "127.0.0.1")
    ec.set(ping, "address", "127.0.0.1")  # NEPI's -I: the source address
    ec.set(ping, "count", "2")
    ec.set(ping, "interval", "0.2")
    ec.set(ping, "verbose", True)
    ec.register_connection(ping, node)
    ec.deploy()
    ec.wait_finished(ping, timeout=15)
    assert ec.state(ping) == S.FINISHED, ec.failures
    assert ec.get(ping, "command") == "ping -c 2 -i 0.2 -I 127.0.0.1 -v -- 127.0.0.1"
    assert "2 packets transmitted, 2 received" in ec.trace(ping, "stdout")
    assert not os.path.exists(os.path.dirname(stale))  # cleanHome removed the old experiment
    assert ec.get(node, "ip") == "127.0.0.1"  # resolved at deploy, as NEPI did
    assert ec.get(node, "identityFile") == str(tmp_path / "unused_key")
    node_home = ec.get_resource(node).node_home
    ec.shutdown()
    assert torn_down.read_text() == node_home + "\n"  # tearDown ran in the node's folder at release
    assert not os.path.exists(node_home)


def test_a_failing_tear_down_is_reported_by_release_after_the_cleanup(ec, home):
    node = ec.register_resource("linux::Node", home=home, tearDown="echo no luck >&2; exit 3")
    ec.deploy()
    ec.wait_deployed(node, timeout=10)
    node_home = ec.get_resource(node).node_home
    ec.release()
    assert ec.state(node) == S.RELEASED
    released = [e for e in ec.events if e.guid == node and e.new == S.RELEASED]
    assert "exited with status 3" in released[-1].detail and "no luck" in released[-1].detail
    assert not os.path.exists(node_home)  # the cleanup went on


@need("tcpdump")
@need("ping")
@pytest.mark.skipif(os.geteuid() != 0, reason="capturing packets needs root")
def test_a_nepi_script_with_tcpdump_on_lo(ec, home):
    node = ec.register_resource("linux::Node", hostname="localhost", home=home)
    dump = ec.register_resource("linux::Tcpdump")
    ec.set(dump, "i", "lo")
    ec.set(dump, "w", True)
    ec.set(dump, "s", "96")
    ec.set(dump, "n", True)
    ec.set(dump, "expression", "icmp")
    ec.set(dump, "B", 4096)  # KiB of capture buffer
    ec.register_connection(dump, node)
    ping = ec.register_resource("linux::Ping", target="127.0.0.1", count=2, interval=0.1)
    ec.register_connection(ping, node)
    ec.register_condition(ping, "START", dump, "STARTED")
    ec.register_condition(dump, "STOP", ping, "FINISHED")
    ec.deploy()
    ec.wait_finished([dump, ping], timeout=20)
    assert (ec.state(dump), ec.state(ping)) == (S.STOPPED, S.FINISHED), ec.failures
    pcap = ec.trace(dump, "pcap")
    magic, _, _, _, _, snaplen, _ = struct.unpack("<IHHiIII", pcap[:24])
    assert magic in (0xA1B2C3D4, 0xA1B23C4D) and snaplen == 96
    packets, offset = 0, 24
    while offset + 16 <= len(pcap):
        offset += 16 + struct.unpack("<IIII", pcap[offset:offset + 16])[2]
        packets += 1
    assert packets >= 4  # two echo requests and two replies, nothing but icmp
    assert "listening on lo" in ec.trace(dump, "stderr")


@need("tcpdump")
@need("ping")
@pytest.mark.skipif(os.geteuid() != 0, reason="capturing packets needs root")
def test_tcpdump_without_w_prints_the_packets_as_nepi_did(ec, node):
    target = f"127.{random.randrange(1, 255)}.{random.randrange(1, 255)}.{random.randrange(1, 255)}"
    # lo answers every 127/8 address: an address of its own keeps other tests' pings out
    dump = ec.register_resource("linux::Tcpdump", connectedTo=node, i="lo", w=False,
                                expression=f"icmp and host {target}", tt=True, v=True)
    ping = ec.register_resource("linux::Ping", connectedTo=node, target=target, count=2, interval=0.1)
    ec.register_condition(ping, "START", dump, "STARTED")
    ec.register_condition(dump, "STOP", ping, "FINISHED")
    ec.deploy()
    ec.wait_finished([dump, ping], timeout=20)
    assert (ec.state(dump), ec.state(ping)) == (S.STOPPED, S.FINISHED), ec.failures
    assert "-w" not in ec.get(dump, "command") and " -l " in ec.get(dump, "command")
    out = ec.trace(dump, "stdout")
    assert out.count("ICMP echo request") == 2 and out.count("ICMP echo reply") == 2, out
    headers = [line for line in out.splitlines() if " IP (" in line]  # -v: the IP header's fields
    assert len(headers) == 4 and all("ttl 64" in line for line in headers)
    assert all(float(line.split()[0]) > 1.7e9 for line in headers)  # -tt: seconds since the epoch


def test_an_ssh_node_with_nepi_names(ec, sshd):  # noqa: F811 - the fixture imported above
    with open(os.path.join(sshd.dir, "host_key.pub")) as f:
        server_key = " ".join(f.read().split()[:2])
    node = ec.register_resource("linux::Node")
    ec.set(node, "hostname", sshd.host)
    ec.set(node, "port", sshd.port)
    ec.set(node, "username", sshd.user)
    ec.set(node, "identity", sshd.client_key)
    ec.set(node, "serverKey", server_key)  # the node's key: verified instead of a known_hosts lookup
    ec.set(node, "knownHosts", sshd.known_hosts)  # the gateway's (the same sshd)
    ec.set(node, "gateway", f"{sshd.host}:{sshd.port}")
    ec.set(node, "gatewayUser", sshd.user)
    ec.set(node, "cleanHome", True)
    app = ec.register_resource("linux::Application", command="echo $USER", connectedTo=node)
    ec.deploy()
    ec.wait_finished(app, timeout=30)
    assert ec.state(app) == S.FINISHED, ec.failures
    assert ec.trace(app, "stdout") == f"{sshd.user}\n"
    assert ec.get(node, "ip") == sshd.host
    executor = ec.get_resource(node).executor
    assert executor.target.server_key == server_key
    assert executor.target.gateway.username == sshd.user


@pytest.mark.parametrize(("key", "reason"), [
    ("wrong_host_key.pub", "did not present the key given as serverKey"),
    ("ssh-ed25519 not-base64", "serverKey is not an SSH public key"),
])
def test_a_server_key_that_is_not_the_hosts_is_refused(ec, sshd, key, reason):  # noqa: F811
    if key.endswith(".pub"):
        with open(os.path.join(sshd.dir, key)) as f:
            key = " ".join(f.read().split()[:2])
    # knownHosts holds the right key: serverKey, when given, is what counts
    node = ec.register_resource("linux::Node", **sshd.node_attributes(serverKey=key, critical=False))
    ec.deploy()
    with pytest.raises(UnreachableStateError):
        ec.wait_deployed(node, timeout=20)
    assert ec.state(node) == S.FAILED
    assert reason in ec.get_resource(node).failure.message


# -- every alias, both ways ----------------------------------------------------------------


def _value_for(declaration):
    """A valid value of ``declaration``'s type other than its default."""
    if declaration.type is Types.Bool:
        return not declaration.default
    if declaration.type is Types.Enumerate:
        return next(v for v in reversed(declaration.allowed) if v != declaration.default)
    if declaration.type in (Types.Integer, Types.Double):
        low = (declaration.range or (None, None))[0]
        value = max(2, int(low or 0) + 1)
        return float(value) if declaration.type is Types.Double else value
    return "some-text"


@pytest.mark.parametrize("rtype", NEPI_TYPES)
def test_every_alias_is_set_by_one_name_and_read_by_the_other(ec, rtype):
    cls = ec.get_resource(ec.register_resource(rtype)).__class__
    aliases = cls.get_attribute_aliases()
    assert aliases
    for alias in aliases.values():
        declaration = cls.get_attribute_declarations()[alias.attribute]
        value = _value_for(declaration)
        by_alias = ec.register_resource(rtype)
        assert ec.set(by_alias, alias.name, value) == value
        assert ec.get(by_alias, alias.attribute) == value
        assert ec.get_attribute(by_alias, alias.name).name == alias.attribute
        by_name = ec.register_resource(rtype)
        ec.set(by_name, alias.attribute, value)
        assert ec.get(by_name, alias.name) == value
        at_registration = ec.register_resource(rtype, **{alias.name: value})
        assert ec.get(at_registration, alias.attribute) == value


def test_the_aliases_nepi_scripts_need(ec):
    expected = {
        "linux::Node": {"identity": "identityFile", "cleanProcessesAfter": "cleanProcesses"},
        "linux::Ping": {"address": "interface", "sendBuff": "sendBuffer", "hint": "pmtuDiscovery"},
    }
    for rtype, names in expected.items():
        cls = ec.get_resource(ec.register_resource(rtype)).__class__
        assert {a.name: a.attribute for a in cls.get_attribute_aliases().values()} == names
    tcpdump = ec.get_resource(ec.register_resource("linux::Tcpdump")).__class__
    assert set(tcpdump.get_attribute_aliases()) | set(tcpdump.get_attribute_declarations()) >= {
        "A", "b", "B", "c", "e", "F", "i", "I", "j", "K", "l", "U", "n", "N", "S", "s", "T", "t", "tt",
        "ttt", "tttt", "ttttt", "v", "vv", "vvv", "w", "expression"}


def test_files_keep_the_attributes_own_names(ec, tmp_path):
    node = ec.register_resource("linux::Node", identity="/keys/id_ed25519", cleanProcessesAfter=False)
    ping = ec.register_resource("linux::Ping", address="lo", hint="do", connectedTo=node)
    path = ec.save(str(tmp_path / "nepi.json"))
    with open(path) as f:
        saved = {r["guid"]: r.get("attributes", {}) for r in json.load(f)["resources"]}
    assert saved[node] == {"identityFile": "/keys/id_ed25519", "cleanProcesses": False}
    assert saved[ping] == {"interface": "lo", "pmtuDiscovery": "do"}
    loaded = ExperimentController.load(path, local_dir=str(tmp_path / "results"))
    try:
        assert loaded.get(node, "identity") == "/keys/id_ed25519"
        assert loaded.get(ping, "address") == "lo"
        assert loaded.get(ping, "hint") == "do"
    finally:
        loaded.shutdown()


def test_unknown_names_are_still_refused_and_close_ones_suggested(ec):
    node = ec.register_resource("linux::Node")
    with pytest.raises(UnknownAttributeError) as error:
        ec.set(node, "identiy", "/keys/id")
    assert "identity" in error.value.suggestions
    assert "did you mean 'identity'" in str(error.value)
    with pytest.raises(UnknownAttributeError):
        ec.get(node, "serverkeys")
    with pytest.raises(UnknownAttributeError):
        ec.register_resource("linux::Ping", adress="lo")
    guids = ec.resources
    with pytest.raises(InvalidInputError, match="two names of attribute 'identityFile'"):
        ec.register_resource("linux::Node", identity="/a", identityFile="/b")
    assert ec.resources == guids  # refused before anything changed


def test_set_with_conditions_takes_an_alias(ec, node):
    ping = ec.register_resource("linux::Ping", connectedTo=node)
    ec.set_with_conditions("address", "lo", ping, node, S.READY)
    with pytest.raises(UnknownAttributeError):
        ec.set_with_conditions("adress", "lo", ping, node, S.READY)
    ec.deploy(node)
    ec.wait_deployed(node, timeout=10)
    deadline = time.monotonic() + 5
    while ec.get(ping, "interface") != "lo" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ec.get(ping, "interface") == "lo"


def test_aliases_are_inherited_and_checked_when_a_type_is_declared(ec, home):
    class MyNode(Node):  # no _rtype: not registered
        pass

    assert MyNode.get_attribute_aliases()["identity"].attribute == "identityFile"
    node = ec.register_resource(MyNode, identity="/keys/id", home=home)
    assert ec.get(node, "identityFile") == "/keys/id"

    with pytest.raises(TypeError, match="'nowhere', which is not a declared attribute"):
        type("Broken", (Node,), {"_aliases": (Alias("somewhere", "nowhere"),)})
    with pytest.raises(TypeError, match="'port' is also the name of an attribute"):
        type("Broken", (Node,), {"_aliases": (Alias("port", "hostname"),)})
    assert Alias("identity", "identityFile").note == "NEPI's name"


# -- NEPI's other flags, run for real ----------------------------------------------------------


@need("ping")
@pytest.mark.skipif(os.geteuid() != 0, reason="mark and preload above 3 need root")
def test_nepis_other_ping_flags_reach_ping(ec, node):
    names = {"mark": 5, "preload": 2, "pattern": "ff00", "tos": "0x10", "recordRoute": True,
             "routeBypass": True, "sendBuff": 65536, "hint": "do", "fullLatency": True, "verbose": True}
    ping = ec.register_resource("linux::Ping", connectedTo=node, target="127.0.0.1", count=2, interval=0.2,
                                **names)
    stamped = ec.register_resource("linux::Ping", connectedTo=node, target="127.0.0.1", count=1,
                                   timestamp="tsonly")
    flooded = ec.register_resource("linux::Ping", connectedTo=node, target="127.0.0.1", count=50,
                                   flood=True)
    ec.deploy()
    ec.wait_finished([ping, stamped, flooded], timeout=20)
    assert not ec.failures
    assert ec.get(ping, "command") == (
        "ping -c 2 -i 0.2 -m 5 -l 2 -p ff00 -Q 0x10 -R -r -S 65536 -M do -U -v -- 127.0.0.1")
    out = ec.trace(ping, "stdout")
    assert "2 packets transmitted, 2 received" in out
    assert "RR:" in out  # -R: the recorded route is printed
    assert "TS:" in ec.trace(stamped, "stdout")  # -T tsonly: the timestamps are printed
    assert ec.get(flooded, "command") == "ping -c 50 -f -- 127.0.0.1"
    assert "50 packets transmitted, 50 received" in ec.trace(flooded, "stdout")


def test_every_tcpdump_flag_of_nepi_reaches_the_command_line(ec, node):
    flags = {"i": "lo", "s": 96, "c": 5, "n": False, "U": False, "B": 4096, "F": "/tmp/filter",
             "I": True, "j": "host", "l": True, "A": True, "b": True, "e": True, "K": True, "N": True,
             "S": True, "T": "vxlan", "t": True, "tt": True, "ttt": True, "tttt": True, "ttttt": True,
             "v": True, "vv": True, "vvv": True, "w": False, "expression": "icmp"}
    dump = ec.register_resource("linux::Tcpdump", connectedTo=node, **flags)
    rm = ec.get_resource(dump)
    command = rm._compose()  # what do_discover sets as the read-only command
    assert command == ("tcpdump -i lo -s 96 -c 5 --immediate-mode -B 4096 -F /tmp/filter -I -j host -l -A -b "
                       "-e -K -N -S -T vxlan -t -tt -ttt -tttt -ttttt -v -vv -vvv icmp")
    ec.set(dump, "l", False)  # printed packets are always line-buffered: -l comes anyway
    assert rm._compose().endswith(" -vvv -l icmp")
    ec.set(dump, "w", True)
    assert rm._compose().endswith(' -w "${APP_HOME}/pcap" icmp')
