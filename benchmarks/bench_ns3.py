#!/usr/bin/env python
"""Benchmark of the ns-3 back end: a 100-node simulated tree against a hand-written ns-3 script,
and the controller's loop while a simulation runs.

Usage::

    python benchmarks/bench_ns3.py              # 100 nodes, 5 interleaved rounds
    python benchmarks/bench_ns3.py --nodes 250  # another size
    python benchmarks/bench_ns3.py --quick      # 2 rounds, fewer condition pairs
    python benchmarks/bench_ns3.py --profile    # also: cProfile of one build and run in a worker

Figures
-------
1. A tree of N ``ns3::Node`` (``topology.tree``'s shape: each node has up to two
   children, filled level by level), an ``ns3::PointToPointLink`` per edge and an
   ``ns3::Ping`` from every leaf to the root (default interval, 56 bytes, from 1 s),
   10 s simulated: ``ExperimentController()``, register, ``deploy()``,
   ``wait_finished()``, ``shutdown()``.  *Build* is deploy until the simulation is READY
   (its process forked and the world built), *run* STARTED to FINISHED, *total* the
   whole wall time from the controller's creation to the end of its shutdown.
   Baseline, in the same run, in the same process model: a hand-written ns-3 script
   (nodes, ``InternetStackHelper``, a ``PointToPointHelper`` and ``Ipv4AddressHelper``
   per link, global routing, a ``PingHelper`` per leaf with the same attributes,
   ``Simulator::Run`` to 10 s, ``Simulator::Destroy``) run in a fork of a process that
   imported ns-3 and made the same warm-up calls as nepi_lab's shared process; timed
   from the request to the fork's result, so that the fork is counted on both sides.
   Target: total <= 1.3 x the baseline.  Rounds are interleaved (ours, baseline, ...);
   the medians are compared.  The one-off cost of importing ns-3 (nepi_lab's shared
   process: the first simulation of an interpreter; the baseline's parent) is reported
   apart: neither side pays it per simulation.  A baseline forked from a parent that
   only imported ns-3 (no warm-up) is shown for information.
2. The controller's loop during a long simulation (the same tree, pings every 0.1 s for
   a long simulated time: several wall seconds of a busy ns-3 process): pairs of local
   resources, B with "START once A is STARTED, + 0s", deployed one pair after the
   other; the lag is B's start time minus A's (``ec.get_start_time``), counted only for
   pairs that ran while the simulation did.  Baseline: the same pairs with no
   simulation running.  Target: p99 <= 5 ms.

Both sides are checked: every leaf's ping must get every reply.  Everything is written
under a ``tempfile.TemporaryDirectory``; the shared ns-3 process and the baseline's
process are ended at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

BASELINE_FLAG = "--_baseline"
STOP = 10.0  # simulated seconds of figure 1


# == the tree ========================================================================


def tree_edges(n: int) -> list[tuple[int, int]]:
    """``topology.tree(n)``'s edges (networkx's full r-ary tree, r = 2): node i's
    children are 2i + 1 and 2i + 2."""
    return [(parent, child) for child in range(1, n) for parent in [(child - 1) // 2]]


def leaves(n: int) -> list[int]:
    return [i for i in range(n) if 2 * i + 1 >= n]


# == nepi_lab's side ==================================================================


def local_instant_type() -> str:
    """A local resource type that does nothing, at once (figure 2): what is measured is
    the controller's loop, not a process."""
    from nepi_lab import ResourceManager

    class BenchInstant(ResourceManager):
        """Does nothing, at once."""

        _rtype = "bench::Instant"
        _help = "Benchmark: finishes at once."

        async def do_run(self) -> None:
            return None

    return BenchInstant._rtype


def register_tree(ec: Any, n: int, stop: float, interval: float = 1.0) -> tuple[int, list[int]]:
    """The simulated tree of figure 1 with resources; returns (simulation, pings)."""
    sim = ec.register_resource("ns3::Simulation", stopTime=stop)
    nodes = [ec.register_resource("ns3::Node", connectedTo=sim) for _ in range(n)]
    for parent, child in tree_edges(n):
        link = ec.register_resource("ns3::PointToPointLink", connectedTo=nodes[parent])
        ec.register_connection(link, nodes[child])
    pings = [ec.register_resource("ns3::Ping", connectedTo=nodes[leaf], target=nodes[0], interval=interval)
             for leaf in leaves(n)]
    return sim, pings


def replies(ec: Any, ping: int) -> int:
    with open(ec.trace(ping, "stdout", "path")) as f:
        return sum(1 for line in f if " bytes from " in line)


def ours(n: int, results: str) -> dict:
    """Figure 1, nepi_lab's side, in this process (the shared ns-3 process already runs)."""
    from nepi_lab import ExperimentController, ResourceState

    t0 = time.perf_counter()
    ec = ExperimentController(exp_id="bench-ns3", local_dir=results)
    try:
        sim, pings = register_tree(ec, n, STOP)
        deployed = time.time()  # the events' clock
        ec.deploy()
        ec.wait_finished(timeout=300)
        states = {ec.state(g) for g in [sim, *pings]}
        got = [replies(ec, p) for p in pings]
        times = {e.new: e.time for e in ec.events.for_guid(sim)}
    finally:
        ec.shutdown()
    t_end = time.perf_counter()
    return {"build": times[ResourceState.READY] - deployed,
            "run": times[ResourceState.FINISHED] - times[ResourceState.STARTED], "total": t_end - t0,
            "ok": states == {ResourceState.FINISHED} and all(g == 9 for g in got), "replies": sum(got)}


def first_simulation(results: str) -> float:
    """Wall time of a first, tiny simulation: it starts the shared ns-3 process, which
    imports ns-3 and warms up (the one-off cost of an interpreter)."""
    from nepi_lab import ExperimentController

    t0 = time.perf_counter()
    ec = ExperimentController(exp_id="bench-ns3-first", local_dir=results)
    try:
        register_tree(ec, 2, 2.0)
        ec.deploy()
        ec.wait_finished(timeout=600)
    finally:
        ec.shutdown()
    return time.perf_counter() - t0


# == the baseline: a hand-written ns-3 script, forked from a parent that imported ns-3 ====


def hand_written(ns: Any, n: int, stop: float, interval: float) -> tuple[float, float]:
    """The same world as :func:`register_tree`, with ns-3's helpers; returns (build, run)
    wall seconds.  Run in a fresh fork: it uses ns-3's global state."""
    t0 = time.perf_counter()
    nodes = ns.NodeContainer()
    nodes.Create(n)
    ns.InternetStackHelper().Install(nodes)
    p2p = ns.PointToPointHelper()
    p2p.SetDeviceAttribute("DataRate", ns.StringValue("5Mbps"))
    p2p.SetChannelAttribute("Delay", ns.StringValue("2ms"))
    p2p.SetQueue("ns3::DropTailQueue<Packet>", "MaxSize", ns.StringValue("100p"))
    address = ns.Ipv4AddressHelper()
    root = None
    for k, (parent, child) in enumerate(tree_edges(n), start=1):
        devices = p2p.Install(nodes.Get(parent), nodes.Get(child))
        address.SetBase(ns.Ipv4Address(f"10.{k // 256}.{k % 256}.0"), ns.Ipv4Mask("255.255.255.0"))
        interfaces = address.Assign(devices)
        if root is None:
            root = interfaces.GetAddress(0)
    ns.Ipv4GlobalRoutingHelper.PopulateRoutingTables()
    for leaf in leaves(n):
        ping = ns.PingHelper(root.ConvertTo())
        ping.SetAttribute("Interval", ns.StringValue(f"{interval!r}s"))
        ping.SetAttribute("Size", ns.StringValue("56"))
        ping.SetAttribute("VerboseMode", ns.StringValue("Quiet"))  # one summary line: the check
        apps = ping.Install(nodes.Get(leaf))
        apps.Start(ns.Seconds(1.0))
        apps.Stop(ns.Seconds(stop))
    t1 = time.perf_counter()
    ns.Simulator.Stop(ns.Seconds(stop))
    ns.Simulator.Run()
    ns.Simulator.Destroy()
    return t1 - t0, time.perf_counter() - t1


def baseline_main(warm: bool) -> int:
    """The baseline's parent: imports ns-3, then forks a child per request line read on
    standard input; each child runs :func:`hand_written` and the parent answers its
    result as a JSON line."""
    t0 = time.perf_counter()
    from ns import ns

    imported = time.perf_counter() - t0
    if warm:  # as nepi_lab's shared process: its C++ callbacks compiled, the same warm-up calls
        from nepi_lab.resources.ns3._worker import _import_ns, _warm_up

        _warm_up(_import_ns())
    out = os.fdopen(os.dup(1), "w", buffering=1)
    print(json.dumps({"import": imported, "warm_up": time.perf_counter() - t0 - imported}), file=out)
    for line in sys.stdin:
        request = json.loads(line)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                os.close(read)
                log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(log, 1)  # ns-3's std::cout: the pings' summaries
                build, run = hand_written(ns, request["n"], request["stop"], request["interval"])
                sys.stdout.flush()
                os.write(write, json.dumps({"build": build, "run": run}).encode())
                status = 0
            finally:
                os._exit(status)
        os.close(write)
        with os.fdopen(read) as f:
            result = f.read()
        os.waitpid(pid, 0)
        print(result or json.dumps({"error": "the child died"}), file=out)
    return 0


class Baseline:
    """The baseline's parent process (see :func:`baseline_main`)."""

    def __init__(self, warm: bool, log: str) -> None:
        with open(log, "wb") as errors:  # cppyy's and ns-3's noise
            self.process = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), BASELINE_FLAG, "warm" if warm else "cold"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, text=True, bufsize=1)
        self.log = log
        t0 = time.perf_counter()
        line = self.process.stdout.readline()  # type: ignore[union-attr]
        if not line:
            with open(log) as f:
                raise SystemExit(f"the baseline's process ended:\n{f.read()[-3000:]}")
        hello = json.loads(line)
        self.started = time.perf_counter() - t0
        self.imported = hello["import"]
        self.warm_up = hello["warm_up"]

    def run(self, n: int, stop: float, log: str, interval: float = 1.0) -> dict:
        t0 = time.perf_counter()
        self.process.stdin.write(json.dumps(  # type: ignore[union-attr]
            {"n": n, "stop": stop, "interval": interval, "log": log}) + "\n")
        result = json.loads(self.process.stdout.readline())  # type: ignore[union-attr]
        total = time.perf_counter() - t0
        if "error" in result:
            raise SystemExit(f"baseline: {result['error']}")
        with open(log) as f:
            summaries = [line for line in f if "packets transmitted" in line]
        ok = len(summaries) == len(leaves(n)) and all(" 9 received" in s for s in summaries)
        return {**result, "total": total, "ok": ok}

    def close(self) -> None:
        self.process.stdin.close()  # type: ignore[union-attr]
        self.process.wait(timeout=30)


# == figure 2: conditions on local resources during a long simulation ==================


def condition_lags(ec: Any, kind: str, pairs: int, while_running: int | None) -> list[float]:
    """Deploy ``pairs`` pairs one after the other (B START after A STARTED + 0s); the lags
    of the pairs that ran while simulation ``while_running`` was STARTED (all pairs
    without one)."""
    from nepi_lab import ResourceAction, ResourceState

    lags = []
    for _ in range(pairs):
        a = ec.register_resource(kind)
        b = ec.register_resource(kind)
        ec.register_condition(b, ResourceAction.START, a, ResourceState.STARTED, "0s")
        ec.deploy([a, b])
        ec.wait_finished([a, b], timeout=30)
        if while_running is not None and ec.state(while_running) != ResourceState.STARTED:
            break
        lags.append((ec.get_start_time(b) - ec.get_start_time(a)).total_seconds())
    return lags


def responsiveness(n: int, stop: float, pairs: int, results: str) -> dict:
    from nepi_lab import ExperimentController, ResourceState

    kind = local_instant_type()
    ec = ExperimentController(exp_id="bench-ns3-loop", local_dir=results)
    try:
        quiet = condition_lags(ec, kind, pairs, None)
        guids = set(ec.resources)
        sim, pings = register_tree(ec, n, stop, interval=0.1)
        ec.deploy(sorted(set(ec.resources) - guids))
        ec.wait_started(sim, timeout=300)
        t0 = time.perf_counter()
        busy = condition_lags(ec, kind, pairs * 100, sim)
        during = time.perf_counter() - t0
        ec.wait_finished(sim, timeout=600)
        times = {e.new: e.time for e in ec.events.for_guid(sim)}
        sim_wall = times[ResourceState.FINISHED] - times[ResourceState.STARTED]
        ok = ec.state(sim) == ResourceState.FINISHED and not ec.failures
    finally:
        ec.shutdown()
    return {"quiet": quiet, "busy": busy, "sim_wall": sim_wall, "during": during, "ok": ok}


# == report ============================================================================


def quantiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"n": len(ordered), "min": ordered[0], "median": statistics.median(ordered), "p90": at(0.9),
            "p99": at(0.99), "max": ordered[-1]}


def ms(x: float) -> str:
    return f"{x * 1000:.3f} ms"


def verdict(ok: bool | None) -> str:
    return "info" if ok is None else ("PASS" if ok else "FAIL")


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print(" | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("-+-".join("-" * w for w in widths))
    for r in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


def progress(message: str) -> None:
    print(f"  .. {message}", flush=True)


def profile(n: int, results: str, top: int = 25) -> str:
    """cProfile of one build and run of the tree in a fork of a warmed-up ns-3 process,
    as nepi_lab's worker does it (``_worker.World`` from ``Simulation._describe()``)."""
    from nepi_lab import ExperimentController

    ec = ExperimentController(exp_id="bench-ns3-profile", local_dir=results)
    try:
        sim, _ = register_tree(ec, n, STOP)
        rm = ec._resources[sim]
        rm._members = rm.members()
        spec = rm._describe()
    finally:
        ec.shutdown()
    code = (
        "import cProfile, io, json, os, pstats, sys\n"
        "from nepi_lab.resources.ns3 import _worker\n"
        "ns = _worker._import_ns(); _worker._warm_up(ns)\n"
        "spec = json.loads(sys.stdin.read())\n"
        "if os.fork() == 0:\n"
        "    prof = cProfile.Profile(); prof.enable()\n"
        "    world = _worker.World(spec); world.run(lambda m: None); world.close()\n"
        "    prof.disable(); buf = io.StringIO()\n"
        f"    pstats.Stats(prof, stream=buf).sort_stats('cumulative').print_stats({top})\n"
        f"    pstats.Stats(prof, stream=buf).sort_stats('tottime').print_stats({top})\n"
        "    sys.__stdout__.write(buf.getvalue()); sys.__stdout__.flush(); os._exit(0)\n"
        "os.wait()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], input=json.dumps(spec), capture_output=True,
                          text=True, timeout=900)
    return done.stdout + done.stderr[-2000:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=100, help="nodes in the tree (default 100)")
    parser.add_argument("--rounds", type=int, help="rounds of figure 1 (default 5; 2 with --quick)")
    parser.add_argument("--quick", action="store_true", help="2 rounds, 100 condition pairs")
    parser.add_argument("--long-stop", type=float, default=100.0,
                        help="simulated seconds of figure 2's simulation (default 100)")
    parser.add_argument("--profile", action="store_true", help="also: cProfile of one build and run")
    args = parser.parse_args()
    import importlib.util

    if importlib.util.find_spec("ns") is None:  # found, not imported (that takes seconds)
        print("bench_ns3 needs the ns3 package: pip install 'nepi_lab[ns3]'", file=sys.stderr)
        return 2
    from nepi_lab.resources.ns3 import stop_shared_process

    rounds = args.rounds or (2 if args.quick else 5)
    pairs = 100 if args.quick else 300
    n = args.nodes
    started = time.perf_counter()
    print(f"nepi_lab ns-3 benchmark: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"ns3 wheel {_version('ns3')}, cppyy {_version('cppyy')}; load average "
          f"{os.getloadavg()[0]:.2f}", flush=True)
    base = cold = None
    with tempfile.TemporaryDirectory(prefix="bench_ns3-") as tmp:
        try:
            progress("the one-off costs: nepi_lab's shared ns-3 process, the baselines' parents")
            first = first_simulation(os.path.join(tmp, "first"))
            base = Baseline(warm=True, log=os.path.join(tmp, "baseline.log"))
            cold = Baseline(warm=False, log=os.path.join(tmp, "baseline-cold.log"))
            mine, theirs, colds = [], [], []
            for i in range(rounds):
                progress(f"figure 1, round {i + 1}/{rounds}: nepi_lab, baseline, baseline without warm-up")
                mine.append(ours(n, os.path.join(tmp, f"ours{i}")))
                theirs.append(base.run(n, STOP, os.path.join(tmp, f"base{i}.log")))
                colds.append(cold.run(n, STOP, os.path.join(tmp, f"cold{i}.log")))
            progress(f"figure 2: {pairs} condition pairs with no simulation, then during a "
                     f"{args.long_stop:g} s simulation (pings every 0.1 s)")
            loop = responsiveness(n, args.long_stop, pairs, os.path.join(tmp, "loop"))
            text = profile(n, os.path.join(tmp, "profile")) if args.profile else None
        finally:
            stop_shared_process()
            for process in (base, cold):
                if process is not None:
                    process.close()

    def med(results: list[dict], key: str) -> float:
        return statistics.median(r[key] for r in results)

    print()
    print(f"1. tree of {n} nodes, {n - 1} point-to-point links, {len(leaves(n))} pings leaf -> root, "
          f"{STOP:g} s simulated; medians of {rounds} interleaved rounds")
    rows = [["nepi_lab (ExperimentController, deploy .. shutdown)", f"{med(mine, 'build'):.3f}",
             f"{med(mine, 'run'):.3f}", f"{med(mine, 'total'):.3f}", "1.00"]]
    for name, results in (("baseline: hand-written script, fork of a warmed-up ns-3 process", theirs),
                          ("baseline without warm-up (info): fork of a process that imported ns-3", colds)):
        rows.append([name, f"{med(results, 'build'):.3f}", f"{med(results, 'run'):.3f}",
                     f"{med(results, 'total'):.3f}", f"{med(mine, 'total') / med(results, 'total'):.2f}"])
    print_table(["", "build s", "run s", "total wall s", "nepi_lab / this"], rows)
    def totals(results: list[dict]) -> str:
        return ", ".join(f"{r['total']:.3f}" for r in results)

    print(f"   all rounds, total s: nepi_lab {totals(mine)}; baseline {totals(theirs)}; "
          f"without warm-up {totals(colds)}")
    print(f"   one-off, not in the figures: nepi_lab's first simulation {first:.2f} s (it starts the shared "
          f"process: import + warm-up); the baseline's parent: import {base.imported:.2f} s + warm-up "
          f"{base.warm_up:.2f} s (without warm-up: import {cold.imported:.2f} s)")
    ok1 = all(r["ok"] for r in mine + theirs + colds)
    ratio = med(mine, "total") / med(theirs, "total")
    ok_ratio = ratio <= 1.3 and ok1
    print(f"   checks: every ping got its 9 replies on both sides: {'yes' if ok1 else 'NO'}")

    quiet, busy = quantiles(loop["quiet"]), quantiles(loop["busy"]) if loop["busy"] else None
    print()
    print(f"2. condition lag (B START once A STARTED + 0s; local resources, one pair at a time); the "
          f"simulation: {n} nodes, pings every 0.1 s, {args.long_stop:g} s simulated in "
          f"{loop['sim_wall']:.2f} s of wall time")
    rows = []
    for name, d in (("during the simulation", busy), ("baseline: no simulation", quiet)):
        if d is not None:
            rows.append([name, str(d["n"]), ms(d["min"]), ms(d["median"]), ms(d["p90"]), ms(d["p99"]),
                         ms(d["max"])])
    print_table(["", "pairs", "min", "median", "p90", "p99", "max"], rows)
    ok2 = busy is not None and busy["n"] >= 20 and busy["p99"] <= 0.005 and loop["ok"]
    if busy is None or busy["n"] < 20:
        print("NOTE: fewer than 20 pairs ran during the simulation: raise --long-stop")

    print()
    print(f"Summary (measured in {time.perf_counter() - started:.1f} s)")
    summary = [
        ["1. total wall, nepi_lab vs hand-written (medians)", f"{med(mine, 'total'):.3f} s",
         f"{med(theirs, 'total'):.3f} s ({ratio:.2f}x)", "<= 1.3x", verdict(ok_ratio)],
        ["2. condition lag p99 during a simulation", ms(busy["p99"]) if busy else "-",
         f"{ms(quiet['p99'])} no simulation", "<= 5 ms", verdict(ok2)],
    ]
    print_table(["figure", "measured", "baseline", "target", "verdict"], summary)
    if text is not None:
        print()
        print("Profile of one build and run in a worker (cProfile)")
        print(text)
    return 0 if ok_ratio and ok2 else 1


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "?"


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == BASELINE_FLAG:
        sys.exit(baseline_main(sys.argv[2] == "warm"))
    sys.exit(main())
