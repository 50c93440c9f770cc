#!/usr/bin/env python
"""Benchmark of linux::Node over SSH, against a real OpenSSH sshd on loopback.

Usage (as root: it creates a throw-away user and starts its own sshd, with the
recipe of ``tests/resources/linux/sshd.py``)::

    python benchmarks/bench_ssh.py            # full run
    python benchmarks/bench_ssh.py --quick    # fewer repetitions
    python benchmarks/bench_ssh.py --hosts 20 # a smaller fleet (figure 4)
    python benchmarks/bench_ssh.py --dir /dev/shm  # files on another file system

An application makes files on the host (its folder, traces, control files) and in the
run directory, and the baselines none: the file system's speed shows in figures 2 and
4.  ``--dir`` chooses where both live (the sshds' folders, their user's home, the run
directories); the header prints what making a file there costs (see
``bench_linux.py`` on ext4 without a journal, where a file made soon after many were
removed costs 0.3-0.8 ms instead of 0.02 ms).

Every figure is printed beside a baseline measured in the same run, against the same
sshd (``MaxSessions 10``), as the same user, and beside its target; the load average
is printed with each figure (the machine may be shared).

Figures
-------
1. Per-command latency on a reused connection: ``await node.run("true")`` one after
   the other on a deployed SSH node.  Baseline: ``await conn.run("true")`` on a bare
   asyncssh connection, alternating with it.  Target: mean <= 1.2x the baseline's.
2. 100 ``true`` applications on one SSH node, from ``ExperimentController()`` to after
   ``shutdown()`` (connect, folders, spawn, exit status, traces collected over SFTP,
   clean-up).  Baseline: a bare asyncssh connection opened, 100 ``conn.run("true")``
   started together (at most 10 at a time: sshd's MaxSessions) and the connection
   closed.  Target: <= 1.5x the baseline (medians of interleaved rounds).  Beside it,
   the CPU each application cost on either side, nepi_lab's and the baseline's: the
   client's (this process) and the hosts' (the machine's busy time less this process's:
   sshd, the shells, the commands), so that a ratio can be told apart from the load.
3. Threads: the most ``threading.active_count()`` seen during figure 2, sampled by an
   event subscriber and by the main thread.  Target: <= 4.
4. A fleet: 50 sshds (``--hosts``), one per loopback address (127.0.1.1 ...), sharing
   one throw-away user (``SshdFleet``), started together; one controller deploys 20
   ``true`` applications (``--apps-per-host``) on each of 50 nodes, from
   ``ExperimentController()`` to after ``shutdown()``.  Baseline: 50 bare asyncssh
   connections opened together, 20 ``conn.run("true")`` on each (at most MaxSessions at
   a time per connection, a refused channel retried), closed.  Target: <= 1.5x the
   baseline, no channel refused by any sshd ("no more sessions": the per-host limit
   respected) and <= 4 threads in the controller's process.  The CPU per application
   on either side is printed as in figure 2: on one machine the 50 sshds and the
   controller share its cores, so the hosts' side bounds this figure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.resources.linux.sshd import Sshd, SshdFleet, SshdUnavailable  # noqa: E402


def ms(seconds: float) -> str:  # noqa: D103
    return f"{seconds * 1000:7.2f} ms"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def load() -> str:
    """The load average, as the figures' context (the machine may be shared)."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def cpu_now() -> tuple[float, float]:
    """(this process's CPU seconds, the machine's busy CPU seconds) so far.  Over a
    measurement, the first is the client's side (the controller, or the bare asyncssh
    client), the second less the first the hosts' side: sshd, the shells and what they
    run (and whatever else ran meanwhile: the load average is printed beside)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    with open("/proc/stat") as f:
        user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in f.readline().split()[1:9])
    busy = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    return usage.ru_utime + usage.ru_stime, busy


def measured(work, cpu: dict[str, list[float]]):
    """``work()``'s result, its client and host CPU seconds (see :func:`cpu_now`) appended
    to ``cpu["client"]`` and ``cpu["host"]``."""
    mine, busy = cpu_now()
    result = work()
    mine_after, busy_after = cpu_now()
    cpu.setdefault("client", []).append(mine_after - mine)
    cpu.setdefault("host", []).append(max(0.0, (busy_after - busy) - (mine_after - mine)))
    return result


def cpu_line(cpu_ours: dict[str, list[float]], cpu_bare: dict[str, list[float]], count: int) -> str:
    """The CPU per application on either side, nepi_lab's beside the baseline's (medians)."""
    per = {side: (statistics.median(cpu_ours[side]) / count, statistics.median(cpu_bare[side]) / count)
           for side in ("client", "host")}
    return (f"   CPU per application: client {ms(per['client'][0])} (baseline {ms(per['client'][1])}), "
            f"hosts' side {ms(per['host'][0])} (baseline {ms(per['host'][1])}; the machine's busy time "
            f"less this process's)")


def file_cost(where: str) -> float:
    """Seconds to make one empty file in a new folder of ``where`` (50 made, then removed)."""
    with tempfile.TemporaryDirectory(dir=where) as folder:
        start = time.perf_counter()
        for i in range(50):
            open(os.path.join(folder, str(i)), "wb").close()
        return (time.perf_counter() - start) / 50


def latency(server: Sshd, n: int, results: str) -> tuple[list[float], list[float]]:
    """Per-command times through ``node.run`` and through a bare asyncssh connection to
    the same sshd, taken in alternation on the controller's loop (so both see the same
    machine load)."""
    import asyncssh

    from nepi_lab import ExperimentController

    with ExperimentController(exp_id="bench-ssh", local_dir=results) as ec:
        node = ec.register_resource("linux::Node", **server.node_attributes())
        ec.deploy()
        ec.wait_deployed(node, timeout=30)
        rm = ec.get_resource(node)

        async def measure() -> tuple[list[float], list[float]]:
            async with asyncssh.connect(server.host, server.port, username=server.user,
                                        client_keys=[server.client_key],
                                        known_hosts=server.known_hosts) as conn:
                ours, bare = [], []
                for _ in range(n + 5):  # the first 5 of each are a warm-up
                    t0 = time.perf_counter()
                    await rm.run("true")
                    t1 = time.perf_counter()
                    await conn.run("true")
                    t2 = time.perf_counter()
                    ours.append(t1 - t0)
                    bare.append(t2 - t1)
                return ours[5:], bare[5:]

        return asyncio.run_coroutine_threadsafe(measure(), ec.loop).result(300)


async def bare_many(server: Sshd, n: int, limit: int) -> tuple[float, int]:
    """``n`` commands, ``limit`` at a time; a refused channel is retried (sshd frees a
    closed session a moment late, so a bare client at the limit gets "open failed")."""
    t0 = time.perf_counter()
    refused = await bare_host(server.host, server.port, server.user, server.client_key,
                              server.known_hosts, n, limit)
    return time.perf_counter() - t0, refused


async def bare_host(host: str, port: int, user: str, key: str, known_hosts: str, n: int,
                    limit: int) -> int:
    """Connect, run ``n`` commands ``limit`` at a time, close; how many channels were refused."""
    import asyncssh

    refused = 0
    async with asyncssh.connect(host, port, username=user, client_keys=[key],
                                known_hosts=known_hosts) as conn:
        slots = asyncio.Semaphore(limit)

        async def one() -> None:
            nonlocal refused
            async with slots:
                while True:
                    try:
                        await conn.run("true", check=True)
                        return
                    except asyncssh.ChannelOpenError:
                        refused += 1
                        await asyncio.sleep(0.001)

        await asyncio.gather(*(one() for _ in range(n)))
    return refused


async def bare_fleet(fleet: SshdFleet, n: int) -> tuple[float, int]:
    """Every host of ``fleet`` at once: connect, ``n`` commands, close."""
    t0 = time.perf_counter()
    refused = await asyncio.gather(*(
        bare_host(m.host, m.port, fleet.user, fleet.client_key, fleet.known_hosts, n, fleet.max_sessions)
        for m in fleet.servers))
    return time.perf_counter() - t0, sum(refused)


def node_fleet(fleet: SshdFleet, n: int, results: str) -> tuple[float, int]:
    """One controller, a node per host of ``fleet``, ``n`` applications on each."""
    return nodes_with_apps([m.node_attributes() for m in fleet.servers], n, results, "bench-ssh-fleet", 600)


def node_many(server: Sshd, n: int, results: str) -> tuple[float, int]:
    """One controller, one node on ``server``, ``n`` applications."""
    return nodes_with_apps([server.node_attributes()], n, results, "bench-ssh", 120)


def nodes_with_apps(nodes: list[dict], n: int, results: str, exp_id: str,
                    timeout: float) -> tuple[float, int]:
    """``ExperimentController()`` to after ``shutdown()``: a ``linux::Node`` per attribute
    set of ``nodes``, ``n`` ``true`` applications on each; returns (seconds, the most
    threads seen, sampled on every event)."""
    from nepi_lab import ExperimentController

    most = threading.active_count()

    def sample(*_: object) -> None:
        nonlocal most
        most = max(most, threading.active_count())

    t0 = time.perf_counter()
    ec = ExperimentController(exp_id=exp_id, local_dir=results)
    ec.events.subscribe(sample)
    apps = []
    for attributes in nodes:
        node = ec.register_resource("linux::Node", **attributes)
        apps += [ec.register_resource("linux::Application", connectedTo=node, command="true")
                 for _ in range(n)]
    ec.deploy()
    ec.wait_finished(apps, timeout=timeout)
    sample()
    ec.shutdown()
    elapsed = time.perf_counter() - t0
    assert all(ec.state(a).name == "RELEASED" for a in apps)
    assert not ec.failures, ec.failures[:3]
    return elapsed, most


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--hosts", type=int, default=50, help="sshds of the fleet (figure 4; 0: none)")
    parser.add_argument("--apps-per-host", type=int, default=20, help="applications per fleet host")
    parser.add_argument("--dir", default=tempfile.gettempdir(),
                        help="where the sshds' folders and the run directories live (default: temp folder)")
    args = parser.parse_args()
    tempfile.tempdir = args.dir  # Sshd and SshdFleet make their folders with tempfile too
    commands = 100 if args.quick else 500
    rounds = 2 if args.quick else 5
    fleet_rounds = 1 if args.quick else 3
    apps = 100

    import asyncssh

    try:
        server = Sshd()
        server.__enter__()
    except SshdUnavailable as exc:
        print(f"cannot run: {exc}")
        return 2
    try:
        with tempfile.TemporaryDirectory() as results:
            print(f"bench_ssh: Python {sys.version.split()[0]}, asyncssh {asyncssh.__version__}, "
                  f"{os.cpu_count()} CPUs, sshd on {server.host}:{server.port} "
                  f"(MaxSessions {server.max_sessions}), user {server.user}")
            print(f"files in {args.dir} ({file_cost(args.dir) * 1000:.3f} ms to make a file there now)")
            print()

            # -- 1. latency ---------------------------------------------------------------
            ours, base = latency(server, commands, results)
            mean_base, mean_ours = statistics.mean(base), statistics.mean(ours)
            print(f"1. per-command latency on a reused connection ({commands} x `true` each, one after "
                  f"the other, alternating; {load()})")
            for label, t in (("node.run (nepi_lab)", ours), ("conn.run (asyncssh)", base)):
                q = statistics.quantiles(t, n=20)
                print(f"   {label:22} mean {ms(statistics.mean(t))}  p50 {ms(statistics.median(t))}"
                      f"  p95 {ms(q[18])}")
            print(f"   overhead {ms(mean_ours - mean_base)} per command, ratio {mean_ours / mean_base:5.2f}x "
                  f"(means); target <= 1.2x: {verdict(mean_ours <= 1.2 * mean_base)}")
            print()

            # -- 2. many applications -------------------------------------------------------
            ours_many, bare = [], []
            most = refused = refusals_ours = refusals_bare = 0
            node_many(server, 10, results)  # warm-up: imports, first connection
            cpu_ours: dict[str, list[float]] = {}
            cpu_bare: dict[str, list[float]] = {}
            for _ in range(rounds):
                log_start = len(server.log_text())
                elapsed_bare, retried = measured(
                    lambda: asyncio.run(bare_many(server, apps, server.max_sessions)), cpu_bare)
                bare.append(elapsed_bare)
                refused += retried
                log_ours = len(server.log_text())
                elapsed, threads = measured(lambda: node_many(server, apps, results), cpu_ours)
                ours_many.append(elapsed)
                most = max(most, threads)
                log = server.log_text()
                refusals_ours += log[log_ours:].count("no more sessions")
                refusals_bare += log[log_start:log_ours].count("no more sessions")
            t_ours, t_bare = statistics.median(ours_many), statistics.median(bare)
            print(f"2. {apps} `true` applications on one SSH node, controller created to shut down "
                  f"(median of {rounds}; {load()})")
            print(f"   nepi_lab               {ms(t_ours)}  ({ms(t_ours / apps)} per application)")
            print(f"   asyncssh baseline      {ms(t_bare)}  (connect, {apps} x conn.run 'true' "
                  f"{server.max_sessions} at a time, close)")
            print(f"   sshd 'no more sessions' refusals: nepi_lab {refusals_ours}, baseline {refusals_bare} "
                  f"(retried by the baseline: {refused})")
            print(cpu_line(cpu_ours, cpu_bare, apps))
            print(f"   ratio {t_ours / t_bare:5.2f}x; target <= 1.5x: {verdict(t_ours <= 1.5 * t_bare)}")
            print()

            # -- 3. threads ----------------------------------------------------------------
            print(f"3. threads during figure 2: at most {most}; target <= 4: {verdict(most <= 4)}")
            print()

            # -- 4. a fleet ----------------------------------------------------------------
            if args.hosts > 0:
                fleet_figure(args.hosts, args.apps_per_host, fleet_rounds, results)
    finally:
        server.__exit__(None, None, None)
    return 0


def fleet_figure(hosts: int, per_host: int, rounds: int, results: str) -> None:
    """Figure 4: ``hosts`` sshds, ``per_host`` applications on each, from one controller."""
    t0 = time.perf_counter()
    try:
        fleet = SshdFleet(hosts)
        fleet.__enter__()
    except SshdUnavailable as exc:
        print(f"4. fleet: cannot run: {exc}")
        return
    started = time.perf_counter() - t0
    try:
        ours, bare = [], []
        most = refused = refusals_ours = refusals_bare = 0
        node_fleet(fleet, 2, results)  # warm-up: every host's first connection
        cpu_ours: dict[str, list[float]] = {}
        cpu_bare: dict[str, list[float]] = {}
        for _ in range(rounds):
            before = fleet.log_text().count("no more sessions")
            elapsed_bare, retried = measured(lambda: asyncio.run(bare_fleet(fleet, per_host)), cpu_bare)
            bare.append(elapsed_bare)
            refused += retried
            between = fleet.log_text().count("no more sessions")
            elapsed, threads = measured(lambda: node_fleet(fleet, per_host, results), cpu_ours)
            ours.append(elapsed)
            most = max(most, threads)
            refusals_bare += between - before
            refusals_ours += fleet.log_text().count("no more sessions") - between
        t_ours, t_bare = statistics.median(ours), statistics.median(bare)
        total = hosts * per_host
        ok = t_ours <= 1.5 * t_bare and refusals_ours == 0 and most <= 4
        print(f"4. a fleet: {hosts} sshds on {fleet.servers[0].host} ... {fleet.servers[-1].host} "
              f"(started in {ms(started)}), {per_host} `true` applications on each from one controller "
              f"(median of {rounds}; {load()})")
        print(f"   nepi_lab               {ms(t_ours)}  ({ms(t_ours / total)} per application)")
        print(f"   asyncssh baseline      {ms(t_bare)}  ({hosts} connections, {per_host} x conn.run 'true' "
              f"each, {fleet.max_sessions} at a time per connection)")
        print(f"   sshd 'no more sessions' refusals: nepi_lab {refusals_ours}, baseline {refusals_bare} "
              f"(retried by the baseline: {refused}); threads: at most {most}")
        print(cpu_line(cpu_ours, cpu_bare, total))
        print(f"   ratio {t_ours / t_bare:5.2f}x; target <= 1.5x, no refusal, <= 4 threads: {verdict(ok)}")
    finally:
        fleet.__exit__(None, None, None)


if __name__ == "__main__":
    sys.exit(main())
