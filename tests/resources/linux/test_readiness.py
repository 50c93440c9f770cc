"""STARTED means ready for any application (readyPort, readyPattern, readyFile): the
client conditioned on a slow server's STARTED never races it, for real on 127.0.0.1."""

from __future__ import annotations

import socket
import sys

import pytest

from nepi_lab import AttributeValueError, ResourceState

S = ResourceState

#: A server that sleeps before it listens (the race NEPI's users met), says "listening"
#: once it does, then serves one connection with a line.
SLOW_SERVER = """#!{python}
import socket, time
time.sleep(0.6)
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", {port}))
server.listen()
print("listening", flush=True)
connection, _ = server.accept()
connection.sendall(b"hello\\n")
connection.close()
"""
CLIENT = """#!{python}
import socket
print(socket.create_connection(("127.0.0.1", {port})).recv(100).decode().strip())
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client_after_server(ec, node, readiness):
    """A client conditioned on the slow server's STARTED; ``readiness(port)``: the server's
    readiness attributes."""
    port = free_port()
    server = ec.register_resource("linux::Application", connectedTo=node, **readiness(port),
                                  code=SLOW_SERVER.format(python=sys.executable, port=port))
    client = ec.register_resource("linux::Application", connectedTo=node, critical=False,
                                  code=CLIENT.format(python=sys.executable, port=port))
    ec.register_condition(client, "START", server, "STARTED")
    ec.deploy()
    ec.wait_finished(client, timeout=30)
    if ec.state(client) == S.FINISHED:  # (else the server still waits for it: released at the end)
        ec.wait_finished(server, timeout=30)
    return server, client


def test_without_readiness_the_client_races_the_server(ec, node):
    """The race itself, so that the tests below can fail: STARTED once spawned."""
    _, client = client_after_server(ec, node, lambda port: {})
    assert ec.state(client) == S.FAILED
    assert "Connection refused" in ec.trace(client, "stderr")


@pytest.mark.parametrize("readiness", [lambda port: {"readyPort": port},
                                       lambda port: {"readyPattern": r"^listening$"},
                                       lambda port: {"readyPort": port, "readyPattern": "listen"}],
                         ids=["port", "pattern", "both"])
def test_started_once_ready_the_client_connects(ec, node, readiness):
    server, client = client_after_server(ec, node, readiness)
    assert ec.state(client) == S.FINISHED, ec.trace(client, "stderr")
    assert ec.trace(client, "stdout") == "hello\n"
    ready = next(e.time for e in ec.events if e.guid == server and e.new == S.READY)
    started = next(e.time for e in ec.events if e.guid == server and e.new == S.STARTED)
    assert started - ready >= 0.5  # it waited for the server's sleep


def test_ready_file_relative_to_the_command_folder(ec, node):
    app = ec.register_resource("linux::Application", connectedTo=node,
                               command="sleep 0.4; touch ready.flag; sleep 0.3", readyFile="ready.flag")
    ec.deploy()
    ec.wait_started(app, timeout=30)
    assert ec.state(app) in (S.STARTED, S.FINISHED)
    deployed = next(e.time for e in ec.events if e.guid == app and e.new == S.READY)
    started = next(e.time for e in ec.events if e.guid == app and e.new == S.STARTED)
    assert started - deployed >= 0.35
    ec.wait_finished(app, timeout=30)
    assert ec.state(app) == S.FINISHED


def test_never_ready_fails_saying_what_was_awaited(ec, node):
    app = ec.register_resource("linux::Application", connectedTo=node, command="sleep 30",
                               readyPattern="never printed", readyTimeout=0.5, critical=False)
    ec.deploy()
    ec.wait_finished(app, timeout=30)
    assert ec.state(app) == S.FAILED
    message = ec.get_resource(app).failure.message
    assert "was not ready ('never printed' in stdout)" in message, message


def test_a_bad_pattern_is_refused_at_set(ec, node):
    with pytest.raises(AttributeValueError, match="not a regular expression"):
        ec.register_resource("linux::Application", connectedTo=node, command="true", readyPattern="(")
