"""NEPI's path probes (linux::Traceroute, linux::Mtr, linux::NPing) on 127.0.0.1, for
real, registered with NEPI's attribute names as a NEPI script does."""

from __future__ import annotations

import re
import shutil

import pytest

from nepi_lab import ResourceState

from ...guards import wait_until

S = ResourceState


def need(tool, package):
    return pytest.mark.skipif(shutil.which(tool) is None,
                              reason=f"{tool} is not installed (apt-get install {package})")


@need("traceroute", "traceroute")
def test_traceroute_to_localhost_one_hop(ec, node):
    trace = ec.register_resource("linux::Traceroute", connectedTo=node, target="127.0.0.1", numeric=True,
                                 queries=1, wait=1)
    ec.deploy()
    ec.wait_finished(trace, timeout=30)
    assert ec.state(trace) == S.FINISHED
    assert ec.get(trace, "command") == "traceroute -n -q 1 -w 1 -- 127.0.0.1"
    out = ec.trace(trace, "stdout")
    assert out.startswith("traceroute to 127.0.0.1 (127.0.0.1)")
    assert re.search(r"^ 1  127\.0\.0\.1  \d+\.\d+ ms$", out, re.M), out


@need("traceroute", "traceroute")
def test_traceroute_use_ip_resolves_the_name_on_the_host(ec, node):
    trace = ec.register_resource("linux::Traceroute", connectedTo=node, target="localhost", useIP=True,
                                 queries=1, wait=1, printTimestamp=True)
    ec.deploy()
    ec.wait_finished(trace, timeout=30)
    assert ec.state(trace) == S.FINISHED, ec.get_resource(trace).failure
    first, second = ec.trace(trace, "stdout").splitlines()[:2]
    assert re.fullmatch(r"\d{14}", first)  # NEPI's timestamp, YYYYmmddHHMMSS
    assert second.startswith("traceroute to 127.0.0.1 (127.0.0.1)")  # the address, not the name


@need("mtr", "mtr-tiny")
def test_mtr_reports_in_rounds_until_stopped(ec, node):
    mtr = ec.register_resource("linux::Mtr", connectedTo=node, target="127.0.0.1", reportCycles=1,
                               noDns=True, interval=0.1, graceTime=0.2, continuous=True, printTimestamp=True)
    ec.deploy()
    ec.wait_started(mtr, timeout=30)
    assert ec.get(mtr, "command") == \
        "while true; do date +%Y%m%d%H%M%S; mtr --report -c 1 -n -i 0.1 -G 0.2 -- 127.0.0.1; done"
    assert wait_until(lambda: ec.trace(mtr, "stdout").count("HOST:") >= 2, 30)
    ec.stop(mtr, timeout=30)
    assert ec.state(mtr) == S.STOPPED  # continuous: it never finishes by itself
    out = ec.trace(mtr, "stdout")
    rounds = re.findall(r"^(\d{14})\nStart: .*\nHOST: .*\n\s+1\.\|-- 127\.0\.0\.1\s+0\.0%\s+1\b", out, re.M)
    assert len(rounds) >= 2, out


@need("nping", "nmap")
def test_nping_icmp_probes_with_nepi_names(ec, node):
    nping = ec.register_resource("linux::NPing", connectedTo=node, target="127.0.0.1", c=3, delay="0.1",
                                 icmp=True)
    ec.deploy()
    ec.wait_finished(nping, timeout=30)
    assert ec.state(nping) == S.FINISHED, ec.get_resource(nping).failure
    assert ec.get(nping, "command") == "nping -c 3 --delay 0.1 --icmp 127.0.0.1"
    out = ec.trace(nping, "stdout")
    assert len(re.findall(r"^RCVD .*Echo reply", out, re.M)) == 3, out
    assert "Raw packets sent: 3" in out and "Lost: 0 (0.00%)" in out


def test_a_probe_without_target_fails_at_deploy(ec, node):
    probe = ec.register_resource("linux::Mtr", connectedTo=node, critical=False)
    ec.deploy()
    ec.wait_finished(probe, timeout=10)
    assert "needs target" in ec.get_resource(probe).failure.message
