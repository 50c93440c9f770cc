"""linux::UdpTest (NEPI's, with iperf3 -u): a server and a client on 127.0.0.1, for real."""

from __future__ import annotations

import shutil
import socket

import pytest

from nepi_lab import AttributeValueError, ResourceState, UnknownAttributeError

S = ResourceState

pytestmark = pytest.mark.skipif(shutil.which("iperf3") is None,
                                reason="iperf3 is not installed (apt-get install iperf3)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def nepi_udptest(ec, node, port, **client):
    """A NEPI script's server and client, with NEPI's attribute names, set one by one."""
    server = ec.register_resource("linux::UdpTest")
    ec.set(server, "s", True)
    ec.set(server, "p", port)
    ec.register_connection(server, node)
    test = ec.register_resource("linux::UdpTest")
    ec.set(test, "target", "127.0.0.1")
    ec.set(test, "p", port)
    for name, value in client.items():
        ec.set(test, name, value)
    ec.register_connection(test, node)
    ec.register_condition(test, "START", server, "STARTED")  # the server is STARTED once it listens
    return server, test


def test_udp_throughput_between_a_server_and_a_client(ec, node):
    from nepi_lab.analysis import trace_frame

    port = free_port()
    server, client = nepi_udptest(ec, node, port, t=1, T=20, l=1200, q="2")
    ec.deploy()
    ec.wait_finished(client, timeout=30)
    assert ec.state(client) == S.FINISHED, ec.failures
    assert ec.get(client, "command") == (f"iperf3 -c 127.0.0.1 -u -t 1 -l 1200 -p {port} --forceflush "
                                         f"-b 20M -S 0x08")
    assert ec.get(server, "command") == f"iperf3 -s -p {port} --forceflush"
    assert ec.state(server) == S.STARTED  # serves until stopped, as hpcbench's udpserver
    ec.stop(server, timeout=10)
    assert ec.state(server) == S.STOPPED
    # parsed with the iperf3 parser, this type's default (a kind of linux::Iperf3Client)
    frame = trace_frame(ec, client, "stdout")
    summary = frame.attrs["summary"]
    assert summary["protocol"] == "UDP", summary
    assert 5e6 < summary["sent_bits_per_second"] <= 25e6  # paced at 20 Mbit/s
    assert "lost_percent" in summary and "jitter_ms" in summary
    assert len(frame) >= 1 and (frame["bits_per_second"] > 0).all()
    assert "Accepted connection from 127.0.0.1" in ec.trace(server, "stdout")


def test_output_repeat_and_timestamp(ec, node):
    port = free_port()
    server, client = nepi_udptest(ec, node, port, t=1, T=5, r=2, o="udp.txt", printTimestamp=True)
    ec.deploy()
    ec.wait_finished(client, timeout=30)
    assert ec.state(client) == S.FINISHED, ec.failures
    report = ec.trace(client, "udp.txt")  # NEPI's o: a file in ${RUN_HOME}, a trace by its name
    assert report.count("iperf Done.") == 2  # r=2: two tests, one after the other
    stamps = ec.trace(client, "stdout").split()  # what stays on stdout: the timestamps
    assert len(stamps) == 2 and all(len(s) == 14 and s.isdigit() for s in stamps)
    ec.stop(server, timeout=10)


def test_a_client_without_server_fails_with_iperf3s_message(ec, node):
    client = ec.register_resource("linux::UdpTest", connectedTo=node, target="127.0.0.1",
                                  p=free_port(), t=1, continuous=True, critical=False)
    ec.deploy()
    ec.wait_finished(client, timeout=30)  # continuous, but the first failing test ends the rounds
    assert ec.state(client) == S.FAILED
    assert "Connection refused" in ec.get_resource(client).failure.message


def test_what_a_client_needs_and_what_udptest_does_not_accept(ec, node):
    client = ec.register_resource("linux::UdpTest", connectedTo=node, critical=False)
    both = ec.register_resource("linux::UdpTest", connectedTo=node, target="127.0.0.1", T=10,
                                bandwidth="10M", critical=False)
    ec.deploy()
    ec.wait_finished([client, both], timeout=10)
    assert "set target" in ec.get_resource(client).failure.message
    assert "not both" in ec.get_resource(both).failure.message
    with pytest.raises(UnknownAttributeError):  # hpcbench's RTT test: no iperf3 equivalent
        ec.register_resource("linux::UdpTest", connectedTo=node, a=True)
    with pytest.raises(AttributeValueError):
        ec.register_resource("linux::UdpTest", connectedTo=node, o="../out.txt")
    with pytest.raises(AttributeValueError):
        ec.register_resource("linux::UdpTest", connectedTo=node, q="7")
