#!/usr/bin/env python
"""Benchmark of linux::Node over SSH, against a real OpenSSH sshd on loopback.

Usage (as root: it creates a throw-away user and starts its own sshd, with the
recipe of ``tests/resources/linux/sshd.py``)::

    python benchmarks/bench_ssh.py            # full run
    python benchmarks/bench_ssh.py --quick    # fewer repetitions

Every figure is printed beside a baseline measured in the same run, against the same
sshd (``MaxSessions 10``), as the same user, and beside its target.

Figures
-------
1. Per-command latency on a reused connection: ``await node.run("true")`` one after
   the other on a deployed SSH node.  Baseline: ``await conn.run("true")`` on a bare
   asyncssh connection, alternating with it.  Target: <= 5 ms per command (mean).
2. 100 ``true`` applications on one SSH node, from ``ExperimentController()`` to after
   ``shutdown()`` (connect, folders, spawn, exit status, traces collected over SFTP,
   clean-up).  Baseline: a bare asyncssh connection opened, 100 ``conn.run("true")``
   started together (at most 10 at a time: sshd's MaxSessions) and the connection
   closed.  Target: <= 3x the baseline.
3. Threads: the most ``threading.active_count()`` seen during figure 2, sampled by an
   event subscriber and by the main thread.  Target: <= 4.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.resources.linux.sshd import Sshd, SshdUnavailable  # noqa: E402


def ms(seconds: float) -> str:  # noqa: D103
    return f"{seconds * 1000:7.2f} ms"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


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
    import asyncssh

    refused = 0
    t0 = time.perf_counter()
    async with asyncssh.connect(server.host, server.port, username=server.user,
                                client_keys=[server.client_key], known_hosts=server.known_hosts) as conn:
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
    return time.perf_counter() - t0, refused


def node_many(server: Sshd, n: int, results: str) -> tuple[float, int]:
    from nepi_lab import ExperimentController

    most = threading.active_count()

    def sample(*_: object) -> None:
        nonlocal most
        most = max(most, threading.active_count())

    t0 = time.perf_counter()
    ec = ExperimentController(exp_id="bench-ssh", local_dir=results)
    ec.events.subscribe(sample)
    node = ec.register_resource("linux::Node", **server.node_attributes())
    apps = [ec.register_resource("linux::Application", connectedTo=node, command="true") for _ in range(n)]
    ec.deploy()
    ec.wait_finished(apps, timeout=120)
    sample()
    ec.shutdown()
    elapsed = time.perf_counter() - t0
    assert all(ec.state(a).name == "RELEASED" for a in apps)
    assert not ec.failures, ec.failures[:3]
    return elapsed, most


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    commands = 100 if args.quick else 500
    rounds = 2 if args.quick else 5
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
            print()

            # -- 1. latency ---------------------------------------------------------------
            ours, base = latency(server, commands, results)
            mean_base, mean_ours = statistics.mean(base), statistics.mean(ours)
            print(f"1. per-command latency on a reused connection ({commands} x `true` each, one after "
                  f"the other, alternating)")
            for label, t in (("node.run (nepi_lab)", ours), ("conn.run (asyncssh)", base)):
                q = statistics.quantiles(t, n=20)
                print(f"   {label:22} mean {ms(statistics.mean(t))}  p50 {ms(statistics.median(t))}"
                      f"  p95 {ms(q[18])}")
            print(f"   overhead {ms(mean_ours - mean_base)} per command; target mean <= 5 ms: "
                  f"{verdict(mean_ours <= 0.005)}")
            print()

            # -- 2. many applications -------------------------------------------------------
            ours_many, bare = [], []
            most = refused = refusals_ours = refusals_bare = 0
            node_many(server, 10, results)  # warm-up: imports, first connection
            for _ in range(rounds):
                log_start = len(server.log_text())
                elapsed_bare, retried = asyncio.run(bare_many(server, apps, server.max_sessions))
                bare.append(elapsed_bare)
                refused += retried
                log_ours = len(server.log_text())
                elapsed, threads = node_many(server, apps, results)
                ours_many.append(elapsed)
                most = max(most, threads)
                log = server.log_text()
                refusals_ours += log[log_ours:].count("no more sessions")
                refusals_bare += log[log_start:log_ours].count("no more sessions")
            t_ours, t_bare = statistics.median(ours_many), statistics.median(bare)
            print(f"2. {apps} `true` applications on one SSH node, controller created to shut down "
                  f"(median of {rounds})")
            print(f"   nepi_lab               {ms(t_ours)}  ({ms(t_ours / apps)} per application)")
            print(f"   asyncssh baseline      {ms(t_bare)}  (connect, {apps} x conn.run 'true' "
                  f"{server.max_sessions} at a time, close)")
            print(f"   sshd 'no more sessions' refusals: nepi_lab {refusals_ours}, baseline {refusals_bare} "
                  f"(retried by the baseline: {refused})")
            print(f"   ratio {t_ours / t_bare:5.2f}x; target <= 3x: {verdict(t_ours <= 3 * t_bare)}")
            print()

            # -- 3. threads ----------------------------------------------------------------
            print(f"3. threads during figure 2: at most {most}; target <= 4: {verdict(most <= 4)}")
    finally:
        server.__exit__(None, None, None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
