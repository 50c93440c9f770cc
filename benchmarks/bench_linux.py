#!/usr/bin/env python
"""Benchmark of the linux resources on localhost: real processes, real files.

Usage::

    python benchmarks/bench_linux.py                  # full run, files in the temp folder
    python benchmarks/bench_linux.py --quick          # fewer repetitions
    python benchmarks/bench_linux.py --dir /dev/shm   # files on another file system

An application creates a few files (its folder, stdout, stderr, exitcode, its results
folder, hard links) and the baseline none, so the file system's speed shows in
figures 1 and 2: the header prints what making one file or folder costs in ``--dir``,
and figure 2 estimates the file system's share.

Each measurement runs in a fresh Python process (this script re-invoked with a
hidden flag), so thread counts belong to that measurement alone.  Every figure is
printed beside a baseline measured in the same run, and beside its target.

Figures
-------
1. One ``true`` application: from ``ExperimentController()`` to after
   ``shutdown()`` (a node, an application, deploy, wait_finished, shutdown; traces
   collected).  Median over repetitions, after one warm-up.  Baseline: one
   ``subprocess.run("true", shell=True)``.  Target: <= 50 ms.
2. 1,000 ``true`` applications on one localhost node, same span (controller to
   shutdown).  Baseline: 1,000 ``asyncio.create_subprocess_exec("true")`` started
   together and awaited, on a fresh loop (Python 3.11's default child watcher:
   one thread per child).  Target: <= 2x the baseline.
3. Threads: the most ``threading.active_count()`` seen during figure 2, sampled by
   an event subscriber (in the loop thread, at every state change) and by the main
   thread between waits.  Baseline: the same count during the asyncio baseline.
   Target: <= 4.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

CHILD_FLAG = "--_child"
MARK = "@@BENCH@@ "


# == measurements (each in its own process) =======================================


def one_app(repeat: int, where: str) -> dict:
    from nepi_lab import ExperimentController

    times = []
    with tempfile.TemporaryDirectory(dir=where) as tmp:
        for i in range(repeat + 1):
            start = time.perf_counter()
            ec = ExperimentController(exp_id="bench", local_dir=os.path.join(tmp, "results"))
            node = ec.register_resource("linux::Node", home=os.path.join(tmp, "home"))
            app = ec.register_resource("linux::Application", connectedTo=node, command="true")
            ec.deploy()
            ec.wait_finished(app, timeout=30)
            ec.shutdown()
            elapsed = time.perf_counter() - start
            assert ec.trace(app, "exitcode") == "0\n"
            if i:  # the first run imports the linux modules
                times.append(elapsed)
    base = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run("true", shell=True, check=True)
        base.append(time.perf_counter() - start)
    return {"median": statistics.median(times), "min": min(times), "baseline": statistics.median(base)}


def many_apps(n: int, where: str) -> dict:
    from nepi_lab import ExperimentController, ResourceState

    peak = threading.active_count()

    def sample(*_: object) -> None:
        nonlocal peak
        peak = max(peak, threading.active_count())

    with tempfile.TemporaryDirectory(dir=where) as tmp:
        start = time.perf_counter()
        ec = ExperimentController(exp_id="bench", local_dir=os.path.join(tmp, "results"))
        ec.events.subscribe(sample)
        node = ec.register_resource("linux::Node", home=os.path.join(tmp, "home"))
        apps = [ec.register_resource("linux::Application", connectedTo=node, command="true")
                for _ in range(n)]
        ec.deploy()
        sample()
        ec.wait_finished(apps, timeout=300)
        finished = time.perf_counter()
        sample()
        ok = sum(ec.state(a) == ResourceState.FINISHED for a in apps)
        ec.shutdown()
        total = time.perf_counter() - start
        sample()
    return {"total": total, "to_finished": finished - start, "finished": ok, "threads": peak}


def raw_asyncio(n: int, where: str) -> dict:
    peak = threading.active_count()

    async def main() -> None:
        nonlocal peak
        processes = []
        for _ in range(n):
            processes.append(await asyncio.create_subprocess_exec("true"))
            peak = max(peak, threading.active_count())
        for p in processes:
            await p.wait()

    start = time.perf_counter()
    asyncio.run(main())
    return {"total": time.perf_counter() - start, "threads": peak}


FIGURES = {"one_app": one_app, "many_apps": many_apps, "raw_asyncio": raw_asyncio}


# == driver ==========================================================================


def child(name: str, arg: int, where: str) -> dict:
    out = subprocess.run([sys.executable, __file__, CHILD_FLAG, name, str(arg), where], capture_output=True,
                         text=True, timeout=600)
    for line in out.stdout.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    raise RuntimeError(f"{name} failed:\n{out.stderr}")


def inode_cost(where: str, count: int = 300) -> float:
    """Seconds to make one new file or folder in ``where``, made as applications make them
    (a folder holding two files, many side by side)."""
    with tempfile.TemporaryDirectory(dir=where) as tmp:
        start = time.perf_counter()
        for i in range(count):
            folder = os.path.join(tmp, str(i))
            os.mkdir(folder)
            open(os.path.join(folder, "stdout"), "wb").close()
            open(os.path.join(folder, "stderr"), "wb").close()
        return (time.perf_counter() - start) / (3 * count)


#: New files and folders one `true` application makes before it is FINISHED: its
#: folder on the host, stdout, stderr, its folder in the run directory, exitcode.
INODES_PER_APP = 5


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--dir", default=tempfile.gettempdir(),
                        help="folder for the results and the node's home (default: the temp folder)")
    parser.add_argument(CHILD_FLAG, nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._child:
        name, arg, where = args._child
        print(MARK + json.dumps(FIGURES[name](int(arg), where)), flush=True)
        return 0
    where = args.dir

    n = 1000
    rounds = 1 if args.quick else 3
    cost = inode_cost(where)
    print(f"nepi_lab linux benchmark: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"files in {where} ({cost * 1000:.3f} ms to make a file or folder there)")
    one = child("one_app", 10 if args.quick else 30, where)
    ok1 = one["median"] <= 0.050
    print(f"1. one `true` app, ExperimentController() .. shutdown(): median {one['median'] * 1000:.1f} ms "
          f"(min {one['min'] * 1000:.1f} ms); baseline subprocess.run('true', shell=True) "
          f"{one['baseline'] * 1000:.1f} ms; target <= 50 ms: {verdict(ok1)}")

    ours = [child("many_apps", n, where) for _ in range(rounds)]
    raw = [child("raw_asyncio", n, where) for _ in range(rounds)]
    best = min(ours, key=lambda r: r["total"])
    base = min(raw, key=lambda r: r["total"])
    ratio = best["total"] / base["total"]
    ok2 = ratio <= 2.0 and best["finished"] == n
    print(f"2. {n} `true` apps on localhost, controller .. shutdown: {best['total']:.2f} s "
          f"(all FINISHED after {best['to_finished']:.2f} s; {best['finished']}/{n} FINISHED); "
          f"baseline {n} x asyncio.create_subprocess_exec('true'): {base['total']:.2f} s; "
          f"ratio {ratio:.2f}x; target <= 2x: {verdict(ok2)}   (best of {rounds})")
    floor = n * INODES_PER_APP * cost
    print(f"   of which file system (est.): {n} x {INODES_PER_APP} new files/folders x {cost * 1000:.3f} ms "
          f"= {floor:.2f} s; ratio without it {(best['total'] - floor) / base['total']:.2f}x")
    threads = max(r["threads"] for r in ours)
    ok3 = threads <= 4
    print(f"3. max threads during {n} apps: {threads}; baseline asyncio subprocesses: "
          f"{max(r['threads'] for r in raw)}; target <= 4: {verdict(ok3)}")
    return 0 if ok1 and ok2 and ok3 else 1


if __name__ == "__main__":
    sys.exit(main())
