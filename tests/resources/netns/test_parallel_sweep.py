"""Runs of a namespace sweep made at once (``max_parallel``): each run has its own
namespaces (``nl<tag>-h1`` ...), so the same addresses and the same fixed iperf3 port
in every run never collide, and every run measures its own link."""

from __future__ import annotations

import functools
import json

from nepi_lab import Sweep, topology


def shaped_transfer(ec, rate, *, home):
    """An iperf3 transfer across a two-host line limited to ``rate`` (port 5201 fixed)."""
    topo = topology.build(ec, topology.line(2, rate=rate))
    for node in topo.nodes.values():
        ec.set(node, "home", home)
    server = ec.register_resource("linux::Iperf3Server", connectedTo=topo.nodes["h2"], oneOff=True, json=True)
    client = ec.register_resource("linux::Iperf3Client", connectedTo=topo.nodes["h1"], json=True,
                                  server=topo.address("h2"), duration=5, omit=1)
    ec.register_condition(client, "START", server, "STARTED")


def received(run):
    """The bytes received over the sender's 5 s (iperf3's own receiver rate divides by the
    server's time, which also counts the server's lag in hearing the test's end), and what
    explains a shortfall: the server's seconds and the sender's retransmissions."""
    end = json.loads(run.trace(run.guids[-1], "stdout"))["end"]
    got, sent = end["sum_received"], end["sum_sent"]
    return {"mbit": got["bytes"] * 8 / sent["seconds"] / 1e6, "server_seconds": got["seconds"],
            "retransmits": sent.get("retransmits")}


def test_three_namespace_runs_at_once_each_measure_their_own_link(tmp_path, home):
    rates = [10, 20, 30]
    sweep = Sweep(functools.partial(shaped_transfer, home=home), {"rate": [f"{r}mbit" for r in rates]},
                  exp_id="parallel-netns", results=tmp_path / "results", metrics=received, timeout=60)
    assert sweep.run(max_parallel=3) == 3
    assert sweep.counts()["done"] == 3, [r["failure"] for r in sweep.runs]
    runs = sweep.runs
    # made at once: every run started before any ended
    assert max(r["start"] for r in runs) < min(r["end"] for r in runs)
    frame = sweep.frame()
    for rate, (mbit, seconds, retransmits) in zip(
            rates, frame[["mbit", "server_seconds", "retransmits"]].itertuples(index=False), strict=True):
        assert abs(mbit - rate) <= 0.10 * rate, (f"{mbit:.2f} Mbit/s through a {rate} Mbit/s link "
                                                 f"(server's {seconds:.2f} s, {retransmits} retransmissions)")
