"""Route and address checks on real namespaces (root), read live from the nodes and from a
recorded ``ip route`` / ``ip addr``; reachability with real loss.

h1 -- r -- h2, routes on h1 and h2, forwarding on r; traffic only inside the namespaces.
One experiment for the module, kept deployed while its tests read the nodes live, then
released: its namespaces are gone afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from nepi_lab import ExperimentController
from nepi_lab.lab import AddressPresent, Lab, Reachable, RoutePresent, State
from nepi_lab.resources.linux._records import STATE_ENV


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "ping"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    try:
        import pyroute2  # noqa: F401
    except ImportError:
        return "pyroute2 is not installed: pip install 'nepi_lab[netns]'"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=str(_missing()))


def _namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    """The deployed experiment: (controller, namespaces made); released at the end of the module."""
    root = tmp_path_factory.mktemp("lab-net")
    before = _namespaces()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(STATE_ENV, str(root / "state"))
        ec = ExperimentController(exp_id="lab-net", local_dir=str(root / "results"))
        try:
            home = str(root / "home")
            h1 = ec.register_resource("netns::Node", name="h1", home=home)
            r = ec.register_resource("netns::Node", name="r", home=home, forwarding=True)
            h2 = ec.register_resource("netns::Node", name="h2", home=home)
            ends: dict[str, list[int]] = {}
            for host, ip in ((h1, "10.0.1.1/24"), (r, "10.0.1.254/24"), (r, "10.0.2.254/24"),
                             (h2, "10.0.2.1/24")):
                ends.setdefault(ip.rsplit(".", 1)[0], []).append(
                    ec.register_resource("netns::Interface", connectedTo=host, ip=ip))
            for a, b in ends.values():
                link = ec.register_resource("netns::Link", connectedTo=a)
                ec.register_connection(link, b)
            ec.register_resource("netns::Route", connectedTo=h1, destination="10.0.2.0/24",
                                 gateway="10.0.1.254")
            ec.register_resource("netns::Route", connectedTo=h2, destination="default", gateway="10.0.2.254")
            ping = ec.register_resource("linux::Ping", connectedTo=h1, name="ping", target="10.0.2.1",
                                        count=3, interval=0.05)
            # 10.0.1.9 is on h1's network, and nobody: every request is lost
            lost = ec.register_resource("linux::Ping", connectedTo=h1, name="lost", target="10.0.1.9",
                                        count=2, interval=0.2, critical=False)
            routes = ec.register_resource("linux::Application", connectedTo=h1, name="routes",
                                          command="ip route")
            addresses = ec.register_resource("linux::Application", connectedTo=h2, name="addresses",
                                             command="ip -j addr")
            ec.deploy()
            ec.wait_finished([ping, lost, routes, addresses], timeout=60)
            made = _namespaces() - before
            assert len(made) == 3
            yield ec, made
        finally:
            ec.shutdown()
    assert not (_namespaces() & made)


LIVE_AND_RECORDED = [
    # (check, passes)
    (RoutePresent(node="h1", destination="10.0.2.0/24", gateway="10.0.1.254"), True),
    (RoutePresent(node="h1", destination="10.0.2.0/24", gateway="10.0.1.253"), False),
    (RoutePresent(node="h1", destination="10.0.1.0/24"), True),
    (RoutePresent(node="h1", destination="default"), False),
    (RoutePresent(node="h1", destination="10.0.3.0/24"), False),
    (AddressPresent(node="h2", address="10.0.2.1/24"), True),
    (AddressPresent(node="h2", address="10.0.2.1"), True),
    (AddressPresent(node="h2", address="10.0.2.1/30"), False),
    (AddressPresent(node="h2", address="10.0.1.1"), False),
]


@pytest.mark.parametrize("check, passes", LIVE_AND_RECORDED, ids=[c.describe() for c, _ in LIVE_AND_RECORDED])
def test_read_live_from_the_namespace(net, check, passes):
    ec, _ = net
    result = check.evaluate(ec)
    assert result.evaluated, result
    assert result.passed is passes, result
    assert "live" in result.message and "namespace" in result.message


# the recording is on h1 for routes and on h2 for addresses
RECORDED = [(c, p) for c, p in LIVE_AND_RECORDED
            if (isinstance(c, RoutePresent) and c.node == "h1")
            or (isinstance(c, AddressPresent) and c.node == "h2")]


@pytest.mark.parametrize("check, passes", RECORDED, ids=[c.describe() for c, _ in RECORDED])
def test_read_from_the_recorded_trace(net, check, passes):
    ec, _ = net
    result = check.evaluate(ec.run_dir)  # a run directory: no live node to read
    assert result.evaluated, result
    assert result.passed is passes, result
    assert "the stdout of" in result.message


def test_from_app_names_the_recording(net):
    ec, _ = net
    check = RoutePresent(from_app="routes", destination="10.0.2.0/24", gateway="10.0.1.254")
    assert check.evaluate(ec).passed and check.evaluate(ec.run_dir).passed
    assert "the stdout of" in check.evaluate(ec).message  # from_app: the trace, also live


def test_a_node_that_recorded_nothing_cannot_be_checked_from_its_directory(net):
    ec, _ = net
    result = RoutePresent(node="r", destination="10.0.1.0/24").evaluate(ec.run_dir)
    assert not result.passed and not result.evaluated
    assert "no application on" in result.message and "recorded its routes" in result.message
    assert RoutePresent(node="r", destination="10.0.1.0/24").evaluate(ec).passed  # live it can


def test_reachability_with_real_loss(net):
    ec, _ = net
    frame = Lab([Reachable("ping"), Reachable("lost"),
                 Reachable("lost", max_loss=100, name="lost at most all"),
                 State("lost", "FAILED")]).check(ec.run_dir)
    assert list(frame["passed"]) == [True, False, True, True]
    assert frame["observed"].tolist()[:3] == [0.0, 100.0, 100.0]
    assert "0 of 2 packets answered" in frame["message"][1]
