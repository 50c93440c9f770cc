"""Link properties measured for real: rate with tbf and htb, random loss, and delay.

Delay needs netem, which this project's CI kernel lacks: there the test checks that a
link asking for delay fails at deploy with an error saying so; where netem exists it
checks the delay instead.
"""

from __future__ import annotations

import functools
import json
import math
import os
import subprocess

import pytest

from nepi_lab import ExperimentFailedError, ResourceState, topology
from nepi_lab.resources.netns import NetemUnavailableError, parse_rate

from .conftest import ping_counts

S = ResourceState


def line(ec, home, n=2, **edge):
    topo = topology.build(ec, topology.line(n, **edge))
    for node in topo.nodes.values():
        ec.set(node, "home", home)
    return topo


@pytest.mark.parametrize("shaper", ["tbf", "htb"])
def test_iperf3_through_a_rate_limited_link_measures_the_limit(ec, home, shaper):
    topo = line(ec, home, rate="20mbit", shaper=shaper)
    server = ec.register_resource("linux::Iperf3Server", connectedTo=topo.nodes["h2"], oneOff=True, json=True)
    client = ec.register_resource("linux::Iperf3Client", connectedTo=topo.nodes["h1"], json=True,
                                  server=topo.address("h2"), duration=3)
    ec.register_condition(client, "START", server, "STARTED")
    ec.deploy()
    ec.wait_finished([server, client], timeout=30)
    received = json.loads(ec.trace(client, "stdout"))["end"]["sum_received"]["bits_per_second"]
    assert abs(received - 20e6) <= 0.10 * 20e6, f"{received / 1e6:.2f} Mbit/s through a 20 Mbit/s {shaper}"
    stats = ec.trace(topo.link("h1", "h2"), "shaping")
    assert stats == ""  # collected at release only
    ec.release()
    assert f"qdisc {shaper} 1: root" in ec.trace(topo.link("h1", "h2"), "shaping")


def test_random_loss_within_binomial_tolerance(ec, home):
    """loss=20 on a link drops 20 % each way: a ping is lost with p = 1 - 0.8**2 = 0.36."""
    n, loss = 1000, 20.0
    topo = line(ec, home, loss=loss)
    ping = ec.register_resource("linux::Ping", connectedTo=topo.nodes["h1"], target=topo.address("h2"),
                                count=n, interval=0.002, timeout=1, quiet=True, critical=False)
    ec.deploy()
    ec.wait_finished(ping, timeout=60)
    sent, received = ping_counts(ec.trace(ping, "stdout"))
    assert sent == n
    p = 1 - (1 - loss / 100) ** 2
    sigma = math.sqrt(p * (1 - p) / n)  # 0.015: 4.5 sigma is 6.8 points, a false alarm once in 150,000 runs
    observed = 1 - received / sent
    assert abs(observed - p) <= 4.5 * sigma, f"lost {observed:.3f} of {n} pings, expected {p:.3f}"
    ec.release()
    stats = ec.trace(topo.link("h1", "h2"), "shaping")
    assert stats.count("numgen random mod 1000000 < 200000 counter packets") == 2


@functools.cache
def netem_available() -> bool:
    """Whether this kernel has netem: try it on a veth in a scratch namespace."""
    ns = f"nepi-lab-netem-probe-{os.getpid()}"
    try:
        subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
        subprocess.run(["ip", "-n", ns, "link", "add", "pa", "type", "veth", "peer", "name", "pb"],
                       check=True, capture_output=True)
        return subprocess.run(["tc", "-n", ns, "qdisc", "add", "dev", "pa", "root", "netem", "delay", "1ms"],
                              capture_output=True).returncode == 0
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_delay_without_netem_is_a_clear_error_at_deploy(ec, home):
    if netem_available():
        pytest.skip("this kernel has netem: test_delay_is_applied covers delay here")
    topo = line(ec, home, rate="20mbit", delay="10ms")
    ec.deploy()
    with pytest.raises(ExperimentFailedError) as failed:
        ec.wait_deployed(timeout=30)
    failure = ec.failures[0]  # the interfaces waiting for the link fail after it
    assert failure.guid == topo.link("h1", "h2") and failure.step == "provision"
    assert failure.error == NetemUnavailableError.__name__
    assert "delay '10ms' needs the netem qdisc, which this kernel does not have" in str(failed.value)
    assert failure.command.startswith("tc -n ") and failure.returncode != 0
    ec.wait_released(timeout=30)


def test_delay_is_applied(ec, home):
    if not netem_available():
        pytest.skip("this kernel has no netem (CI's does not): the clear-error test covers delay")
    topo = line(ec, home, delay="20ms")
    ping = ec.register_resource("linux::Ping", connectedTo=topo.nodes["h1"], target=topo.address("h2"),
                                count=3, interval=0.1)
    ec.deploy()
    ec.wait_finished(ping, timeout=30)
    rtts = [float(w.split("=")[1]) for w in ec.trace(ping, "stdout").split() if w.startswith("time=")]
    assert len(rtts) == 3 and min(rtts) >= 40


def test_rates_read_as_tc_reads_them():
    assert parse_rate("20mbit") == 20_000_000
    assert parse_rate("1.5Gbit") == 1_500_000_000
    assert parse_rate("100kbps") == 800_000  # tc: bps means bytes per second
    assert parse_rate(64000) == 64000
    for bad in ("fast", "20 furlongs", -5, "0bit"):
        with pytest.raises(ValueError):
            parse_rate(bad)


def test_zero_delay_and_zero_loss_ask_for_nothing(ec, home):
    topo = line(ec, home, delay="0ms", loss=0.0)
    ping = ec.register_resource("linux::Ping", connectedTo=topo.nodes["h1"], target=topo.address("h2"),
                                count=1)
    ec.deploy()
    ec.wait_finished(ping, timeout=20)
    assert ec.state(ping) == S.FINISHED
