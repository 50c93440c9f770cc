#!/usr/bin/env python
"""Benchmark of the netns resources: a 100-node tree deployed and released, against ``ip``.

Usage (as root)::

    python benchmarks/bench_netns.py              # 100 nodes, best of 3
    python benchmarks/bench_netns.py --nodes 250  # another size
    python benchmarks/bench_netns.py --quick      # one round

Figures
-------
1. Deploy: ``topology.build(ec, topology.tree(N))``, ``ec.deploy()``,
   ``ec.wait_deployed()``: N namespaces (lo up, forwarding on the inner nodes), N - 1
   veth pairs, 2 (N - 1) addresses, interfaces up and the shortest-path routes.  Timed
   from ``deploy()`` to the return of ``wait_deployed()``.  Target: <= 5 s.
2. Release: ``ec.release()`` until every resource is RELEASED and every namespace is
   gone.  Target: <= 3 s.
3. Baseline, in the same run: the same namespaces, veths, addresses, links up, sysctls
   and routes (the very routes the topology computed) made by a plain loop of ``ip``
   (and ``ip netns exec ... sysctl``) commands, one ``subprocess.run`` each, then torn
   down with ``ip netns del``.

Both sides are checked: a ping from the root of the tree to its last leaf must pass.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time


def ours(n: int, home: str, results: str) -> dict:
    from nepi_lab import ExperimentController, ResourceState, topology
    from nepi_lab.resources.netns import run_prefix

    ec = ExperimentController(exp_id="bench-netns", local_dir=results)
    try:
        built = time.perf_counter()
        topo = topology.build(ec, topology.tree(n))
        for guid in topo.nodes.values():
            ec.set(guid, "home", home)
        built = time.perf_counter() - built
        last = f"h{n}"
        ping = ec.register_resource("linux::Ping", connectedTo=topo.nodes["h1"], target=topo.address(last),
                                    count=1, timeout=2)
        start = time.perf_counter()
        ec.deploy(topo.guids)
        ec.wait_deployed(topo.guids, timeout=120)
        deployed = time.perf_counter() - start
        threads = threading.active_count()
        ec.deploy(ping)
        ec.wait_finished(ping, timeout=30)
        reached = ec.state(ping) == ResourceState.FINISHED
        prefix = run_prefix(ec)
        start = time.perf_counter()
        ec.release()
        released = time.perf_counter() - start
        left = [name for name in os.listdir("/run/netns") if name.startswith(prefix)]
        counts = {
            "namespaces": len(topo.nodes), "links": len(topo.links), "interfaces": len(topo.interfaces),
            "routes": sum(len(r) for r in topo.routes.values()), "resources": len(topo.guids),
        }
        return {"build": built, "deploy": deployed, "release": released, "reached": reached, "left": left,
                "threads": threads, "counts": counts, "topo": topo, "ec": ec}
    finally:
        ec.shutdown()


def baseline(topo, ec) -> dict:
    """The same topology by a plain loop of ip commands."""
    tag = f"bench-ip-{os.getpid()}"  # not nl<tag>-: nepi-lab cleanup leaves it alone
    commands: list[list[str]] = []
    ns = {node: f"{tag}-{topo.name(node)}" for node in topo.nodes}
    for node, name in ns.items():
        commands.append(["ip", "netns", "add", name])
        commands.append(["ip", "-n", name, "link", "set", "lo", "up"])
        if ec.get(topo.nodes[node], "forwarding"):
            commands.append(["ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv4.ip_forward=1"])
    ifname = {key: ec.get(guid, "ifname") for key, guid in topo.interfaces.items()}
    for u, v in topo.links:
        commands.append(["ip", "-n", ns[u], "link", "add", ifname[(u, v)], "type", "veth", "peer", "name",
                         ifname[(v, u)], "netns", ns[v]])
    for (node, other), guid in topo.interfaces.items():
        commands.append(["ip", "-n", ns[node], "addr", "add", ec.get(guid, "ip"), "dev",
                         ifname[(node, other)]])
        commands.append(["ip", "-n", ns[node], "link", "set", ifname[(node, other)], "up"])
    for node, routes in topo.routes.items():
        for route in routes:
            commands.append(["ip", "-n", ns[node], "route", "add", ec.get(route, "destination"), "via",
                             ec.get(route, "gateway")])
    start = time.perf_counter()
    for command in commands:
        subprocess.run(command, check=True, capture_output=True)
    deployed = time.perf_counter() - start
    last = topo.address(f"h{len(topo.nodes)}")
    reached = subprocess.run(["ip", "netns", "exec", ns["h1"], "ping", "-c1", "-W2", last],
                             capture_output=True).returncode == 0
    start = time.perf_counter()
    for name in ns.values():
        subprocess.run(["ip", "netns", "del", name], check=True, capture_output=True)
    released = time.perf_counter() - start
    return {"deploy": deployed, "release": released, "reached": reached, "commands": len(commands)}


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=100, help="nodes in the tree (default 100)")
    parser.add_argument("--quick", action="store_true", help="one round instead of the best of three")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_netns needs root (network namespaces)", file=sys.stderr)
        return 2
    rounds = 1 if args.quick else 3
    n = args.nodes
    mine, base = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(rounds):
            result = ours(n, os.path.join(tmp, "home"), os.path.join(tmp, f"results{i}"))
            mine.append(result)
            base.append(baseline(result["topo"], result["ec"]))
    best = min(mine, key=lambda r: r["deploy"] + r["release"])
    fastest = min(base, key=lambda r: r["deploy"] + r["release"])
    counts = best["counts"]
    import pyroute2

    print(f"nepi_lab netns benchmark: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"kernel {os.uname().release}, pyroute2 {pyroute2.__version__}; best of {rounds}")
    print(f"   tree of {n} nodes: {counts['namespaces']} namespaces, {counts['links']} veth pairs, "
          f"{counts['interfaces']} addressed interfaces, {counts['routes']} routes; {counts['resources']} "
          f"resources (topology.build: {best['build'] * 1000:.0f} ms)")
    ok1 = best["deploy"] <= 5.0 and best["reached"]
    print(f"1. deploy .. wait_deployed: {best['deploy']:.2f} s (ping root -> last leaf "
          f"{'ok' if best['reached'] else 'FAILED'}; {best['threads']} threads); "
          f"baseline {fastest['commands']} ip commands in a loop: {fastest['deploy']:.2f} s "
          f"(ping {'ok' if fastest['reached'] else 'FAILED'}); "
          f"ratio {best['deploy'] / fastest['deploy']:.2f}x; "
          f"target <= 5 s: {verdict(ok1)}")
    ok2 = best["release"] <= 3.0 and not best["left"]
    print(f"2. release: {best['release']:.2f} s ({len(best['left'])} namespaces left); baseline {n} x "
          f"`ip netns del`: {fastest['release']:.2f} s; ratio {best['release'] / fastest['release']:.2f}x; "
          f"target <= 3 s: {verdict(ok2)}")
    def rounds_of(results: list[dict]) -> str:
        return ", ".join(f"{r['deploy']:.2f}/{r['release']:.2f}" for r in results)

    print(f"   all rounds, deploy/release s: ours {rounds_of(mine)}; ip loop {rounds_of(base)}")
    return 0 if ok1 and ok2 else 1


if __name__ == "__main__":
    sys.exit(main())
