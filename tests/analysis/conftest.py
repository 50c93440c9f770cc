"""Fixtures for the analysis tests: saved tool outputs, real runs, a headless matplotlib.

The real runs (``lab``) use ping, iperf3 and tcpdump on 127.0.0.1 only; a tool that
is missing, or tcpdump without root, is left out of the run and the tests that need
it skip, saying why.  ``writer_run`` needs nothing but Python.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before anything imports pyplot

import pytest  # noqa: E402

from nepi_lab import Attribute, ExperimentController, ResourceManager, ResourceState, Trace, Types  # noqa: E402

DATA = Path(__file__).parent / "data"


class Writer(ResourceManager):
    """Writes ``lines`` numbered lines to its ``out`` trace (and ``debug`` if enabled)."""

    _rtype = "analysis_test::Writer"
    _attributes = (
        Attribute("lines", "how many lines to write", type=Types.Integer, default=3),
        Attribute("fail", "raise after writing", type=Types.Bool, default=False),
        Attribute("state", "an attribute named like a resources_frame column", default="x"),
    )
    _traces = (Trace("out", "numbered lines", enabled=True), Trace("debug", "off by default"))

    async def do_run(self) -> None:
        with open(self.trace_path("out"), "w") as f:
            f.write("".join(f"{i},{i * i}\n" for i in range(self.get("lines"))))
        await asyncio.sleep(0.01)
        if self.get("fail"):
            raise RuntimeError("failed on purpose after writing")


@pytest.fixture
def data():
    """The folder of saved tool outputs."""
    return DATA


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def writer_run(tmp_path):
    """A finished run of two Writers (one failing, non-critical): (controller, run_dir, guids)."""
    with ExperimentController(exp_id="writers", local_dir=str(tmp_path / "results")) as ec:
        ok = ec.register_resource("analysis_test::Writer", lines=4, state="set")
        bad = ec.register_resource("analysis_test::Writer", fail=True, critical=False)
        ec.deploy()
        ec.wait_finished([ok, bad], timeout=10)
    return ec, ec.run_dir, (ok, bad)


@dataclass
class Lab:
    """What the real run made."""

    ec: ExperimentController
    run_dir: str
    guids: dict[str, int]
    port: int
    live: dict[str, object] = field(default_factory=dict)  # frames taken before the release

    def has(self, name: str) -> bool:
        return name in self.guids


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """One real run on 127.0.0.1, shared by a test module: tcpdump on lo (root), a ping
    with timestamps, an iperf3 server and client (2 streams, 20 Mbit/s each, 1 s), and
    an application that fails on purpose (non-critical).  Traffic to 127.0.0.1 only.
    """
    from nepi_lab.analysis import trace_frame

    results = tmp_path_factory.mktemp("lab")
    port = free_port()
    guids: dict[str, int] = {}
    live: dict[str, object] = {}
    with ExperimentController(exp_id="lab", local_dir=str(results / "results")) as ec:
        node = ec.register_resource("linux::Node", hostname="localhost", home=str(results / "home"))
        waits = []
        if shutil.which("tcpdump") and os.geteuid() == 0:
            guids["tcpdump"] = ec.register_resource(
                "linux::Tcpdump", connectedTo=node, interface="lo", snapLength=96,
                filter=f"icmp or tcp port {port}")
        if shutil.which("ping"):
            guids["ping"] = ec.register_resource(
                "linux::Ping", connectedTo=node, target="127.0.0.1", count=5, interval=0.2,
                printTimestamp=True, numeric=True)
            waits.append(guids["ping"])
        if shutil.which("iperf3"):
            guids["server"] = ec.register_resource("linux::Iperf3Server", connectedTo=node, port=port,
                                                   oneOff=True)
            guids["client"] = ec.register_resource(
                "linux::Iperf3Client", connectedTo=node, server="127.0.0.1", port=port, duration=1,
                interval=0.5, parallel=2, bandwidth="20M", json=True)
            ec.register_condition(guids["client"], "START", guids["server"], "STARTED")
            waits += [guids["server"], guids["client"]]
        guids["fails"] = ec.register_resource("linux::Application", connectedTo=node,
                                              command="echo 'oops' >&2; exit 3", critical=False)
        waits.append(guids["fails"])
        if "tcpdump" in guids:
            for name in ("ping", "server"):
                if name in guids:
                    ec.register_condition(guids[name], "START", guids["tcpdump"], "STARTED")
        ec.deploy()
        ec.wait_finished(waits, timeout=30)
        if "ping" in guids:
            live["ping"] = trace_frame(ec, guids["ping"], "stdout")
        if "client" in guids:
            live["client"] = trace_frame(ec, guids["client"], "stdout")
        if "tcpdump" in guids:
            ec.stop(guids["tcpdump"])
            ec.wait(guids["tcpdump"], ResourceState.STOPPED, timeout=10)
    return Lab(ec, ec.run_dir, guids, port, live)


def requires(lab: Lab, name: str, why: str) -> None:
    if not lab.has(name):
        pytest.skip(why)
