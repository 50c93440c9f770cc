"""ping, iperf3 and tcpdump on 127.0.0.1, for real."""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct

import pytest

from nepi_lab import AttributeValueError, ReadOnlyAttributeError, ResourceState, TraceAttr

S = ResourceState


def need(tool):
    return pytest.mark.skipif(shutil.which(tool) is None,
                              reason=f"{tool} is not installed (apt-get install {tool})")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@need("ping")
def test_ping_localhost_three_times(ec, node):
    ping = ec.register_resource("linux::Ping", connectedTo=node, target="127.0.0.1", count=3,
                                interval=0.2, printTimestamp=True)
    ec.deploy()
    ec.wait_finished(ping, timeout=10)
    assert ec.state(ping) == S.FINISHED
    assert ec.get(ping, "command") == "ping -c 3 -i 0.2 -D -- 127.0.0.1"
    out = ec.trace(ping, "stdout")
    replies = [line for line in out.splitlines() if "bytes from 127.0.0.1" in line]
    assert len(replies) == 3 and all(line.startswith("[") for line in replies)  # -D timestamps
    assert "3 packets transmitted, 3 received" in out


@need("ping")
def test_ping_options_are_typed(ec, node):
    with pytest.raises(AttributeValueError):
        ec.register_resource("linux::Ping", connectedTo=node, target="127.0.0.1", count="many")
    with pytest.raises(ReadOnlyAttributeError):
        ec.register_resource("linux::Ping", connectedTo=node, depends="sh")


def test_a_tool_without_its_target_fails_at_deploy(ec, node):
    ping = ec.register_resource("linux::Ping", connectedTo=node, critical=False)
    ec.deploy()
    ec.wait_finished(ping, timeout=10)
    assert "needs target" in ec.get_resource(ping).failure.message


@need("iperf3")
def test_iperf3_client_after_server_started(ec, node):
    port = free_port()
    server = ec.register_resource("linux::Iperf3Server", connectedTo=node, port=port, oneOff=True)
    client = ec.register_resource("linux::Iperf3Client", connectedTo=node, server="127.0.0.1", port=port,
                                  duration=1, json=True, parallel=2)
    # the server is STARTED only once it listens, so no delay is needed
    ec.register_condition(client, "START", server, "STARTED")
    ec.deploy()
    ec.wait_finished([server, client], timeout=20)
    assert (ec.state(server), ec.state(client)) == (S.FINISHED, S.FINISHED), ec.failures
    assert ec.get_start_time(client) >= ec.get_start_time(server)
    report = json.loads(ec.trace(client, "stdout"))
    assert report["end"]["sum_received"]["bits_per_second"] > 0
    assert report["start"]["test_start"]["num_streams"] == 2
    assert f"-p {port} -1" in ec.get(server, "command")


@need("iperf3")
def test_iperf3_udp_reverse_and_a_stopped_server(ec, node):
    port = free_port()
    server = ec.register_resource("linux::Iperf3Server", connectedTo=node, port=port)
    client = ec.register_resource("linux::Iperf3Client", connectedTo=node, server="127.0.0.1", port=port,
                                  duration=1, protocol="udp", bandwidth="1M", reverse=True, interval=0.1)
    ec.register_condition(client, "START", server, "STARTED")
    ec.register_condition(server, "STOP", client, "FINISHED")
    ec.deploy()
    ec.wait_finished([server, client], timeout=20)
    assert (ec.state(server), ec.state(client)) == (S.STOPPED, S.FINISHED), ec.failures
    assert ec.get(client, "command").endswith(" -u")
    assert "Reverse mode" in ec.trace(client, "stdout")
    assert "Server listening" in ec.trace(server, "stdout")


@need("iperf3")
@pytest.mark.parametrize("json_output", [True, False])
def test_an_iperf3_client_without_a_server_fails_with_iperf3s_error(ec, node, json_output):
    """iperf3 3.12 exits with 0 after an error with -J: the error in its JSON fails the client."""
    client = ec.register_resource("linux::Iperf3Client", connectedTo=node, server="127.0.0.1",
                                  port=free_port(), duration=1, json=json_output, critical=False)
    ec.deploy()
    ec.wait_finished(client, timeout=20)
    assert ec.state(client) == S.FAILED
    failure = ec.get_resource(client).failure
    assert "unable to connect to server" in failure.message and "Connection refused" in failure.message
    if json_output:
        assert json.loads(ec.trace(client, "stdout"))["error"].startswith("unable to connect")


@need("iperf3")
def test_an_iperf3_server_that_cannot_listen_fails_with_its_error(ec, node):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = ec.register_resource("linux::Iperf3Server", connectedTo=node, port=port, bind="127.0.0.1",
                                      critical=False)
        ec.deploy()
        ec.wait_finished(server, timeout=20)
    failure = ec.get_resource(server).failure
    assert failure is not None and failure.step in ("start", "run")
    assert failure.returncode not in (None, 0) and "in use" in failure.stderr_tail


@need("tcpdump")
@need("ping")
@pytest.mark.skipif(os.geteuid() != 0, reason="capturing packets needs root")
def test_tcpdump_on_lo_captures_a_ping(ec, node):
    dump = ec.register_resource("linux::Tcpdump", connectedTo=node, interface="lo", filter="icmp",
                                snapLength=128)
    ping = ec.register_resource("linux::Ping", connectedTo=node, target="127.0.0.1", count=2, interval=0.1)
    ec.register_condition(ping, "START", dump, "STARTED")  # STARTED once capturing
    ec.register_condition(dump, "STOP", ping, "FINISHED")
    ec.deploy()
    ec.wait_finished([dump, ping], timeout=20)
    assert (ec.state(dump), ec.state(ping)) == (S.STOPPED, S.FINISHED), ec.failures
    pcap = ec.trace(dump, "pcap")
    assert isinstance(pcap, bytes)
    magic, _, _, _, _, snaplen, _ = struct.unpack("<IHHiIII", pcap[:24])
    assert magic in (0xA1B2C3D4, 0xA1B23C4D) and snaplen == 128
    packets = 0
    offset = 24
    while offset + 16 <= len(pcap):
        captured = struct.unpack("<IIII", pcap[offset:offset + 16])[2]
        offset += 16 + captured
        packets += 1
    assert packets >= 4  # two echo requests and two replies
    assert ec.trace(dump, "pcap", TraceAttr.SIZE) == len(pcap)
    assert "listening on lo" in ec.trace(dump, "stderr")
