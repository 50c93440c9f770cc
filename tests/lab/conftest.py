"""Real runs for the lab checks, made once per test session and shared read-only.

``runs.good``: one run on 127.0.0.1 (traffic to 127.0.0.1 only): a ping, an iperf3
server and a client started by a condition once the server is up, an application
that prints two lines, one that fails on purpose (non-critical, exit status 3), and
an ``ip -br addr`` / ``ip route`` recording on the node.

``runs.broken``: a run that failed before its ping ran: a critical application fails,
the ping waited for it to finish, so the ping's output was never made.

Tests that change a run directory copy it first (:func:`copy_run`).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest

from nepi_lab import ExperimentController
from nepi_lab.core.errors import ExperimentFailedError
from nepi_lab.resources.linux._records import STATE_ENV

NEEDS = ("ping", "iperf3", "ip")


@dataclass
class Runs:
    good: str
    broken: str
    root: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_good_run(results: Path, home: Path) -> str:
    port = free_port()
    with ExperimentController(exp_id="lab-good", local_dir=str(results)) as ec:
        node = ec.register_resource("linux::Node", hostname="localhost", home=str(home), name="host")
        ping = ec.register_resource("linux::Ping", connectedTo=node, name="ping", target="127.0.0.1", count=3,
                                    interval=0.2)
        server = ec.register_resource("linux::Iperf3Server", connectedTo=node, name="server", port=port,
                                      oneOff=True)
        client = ec.register_resource("linux::Iperf3Client", connectedTo=node, name="client",
                                      server="127.0.0.1", port=port, duration=1, json=True)
        ec.register_condition(client, "START", server, "STARTED")
        hello = ec.register_resource("linux::Application", connectedTo=node, name="hello",
                                     command="echo hello; echo world")
        bad = ec.register_resource("linux::Application", connectedTo=node, name="bad",
                                   command="echo oops >&2; exit 3", critical=False)
        table = ec.register_resource("linux::Application", connectedTo=node, name="table",
                                     command="ip -br addr; ip route")
        ec.deploy()
        ec.wait_finished([ping, server, client, hello, bad, table], timeout=60)
    return ec.run_dir


def make_broken_run(results: Path, home: Path) -> str:
    with ExperimentController(exp_id="lab-broken", local_dir=str(results)) as ec:
        node = ec.register_resource("linux::Node", hostname="localhost", home=str(home))
        first = ec.register_resource("linux::Application", connectedTo=node, name="first", command="exit 1")
        ping = ec.register_resource("linux::Ping", connectedTo=node, name="ping", target="127.0.0.1", count=1)
        ec.register_condition(ping, "START", first, "FINISHED")
        ec.deploy()
        with contextlib.suppress(ExperimentFailedError):  # the point of this run
            ec.wait_finished([first, ping], timeout=60)
    return ec.run_dir


@pytest.fixture(scope="session")
def runs(tmp_path_factory) -> Runs:
    missing = [tool for tool in NEEDS if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (.ci/run installs iputils-ping, iperf3, iproute2)")
    root = tmp_path_factory.mktemp("lab-runs")
    with pytest.MonkeyPatch.context() as patch:  # the index of runs in our folder, never the user's
        patch.setenv(STATE_ENV, str(root / "state"))
        good = make_good_run(root / "results", root / "home")
        broken = make_broken_run(root / "results", root / "home")
    return Runs(good, broken, root)


def copy_run(run_dir: str, into: Path) -> str:
    """A copy of a run directory at ``into`` (made with its parents)."""
    into.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(run_dir, into)
    return str(into)
