#!/usr/bin/env python
"""Benchmark of the linux resources on localhost: real processes, real files.

Usage::

    python benchmarks/bench_linux.py                  # full run, files in the temp folder
    python benchmarks/bench_linux.py --quick          # fewer repetitions
    python benchmarks/bench_linux.py --dir /dev/shm   # files on another file system

An application creates a few files (its folder, stdout, stderr, exitcode, its results
folder, hard links) and the baseline none, so the file system's speed shows in
figures 1 and 2: the header prints what making one file costs in ``--dir``, and
figure 2 also times the same processes and files made by hand, without the
controller.

Settling.  On ext4 *without a journal* (this project's VMs: ``/`` is mounted so), the
kernel will not reuse an inode freed less than 60 s ago (360 s while its block is
dirty), and every new file scans past all of them: after one round has removed its
3,000 files, making a file costs 0.3-0.8 ms instead of 0.02 ms for the next minutes.
A round would then measure the previous round's clean-up.  So before each round of
figure 2 the script syncs and waits (``--settle``, at most that many seconds) until
making a file in ``--dir`` costs no more than 0.03 ms, prints what it found, keeps
every round's folders until the end, and interleaves the rounds with the baseline's.
The probe makes its files in one folder; files spread over 1,000 new folders, as a
round makes them, cost more (on this project's VMs about 0.09 ms each while the probe
reads 0.02 ms), which the by-hand reference of figure 2 includes.

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
   For reference, the same processes and the same files made by hand (no
   controller): one folder, stdout and stderr per process, ``/bin/sh -c true`` in its
   own session with the placeholders in its environment, watched through a pidfd,
   then a results folder, exitcode and two hard links, and the folders removed.
   This is what the design costs on this file system before any controller work.
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
import shutil
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
    """``where`` is a fresh folder, left in place (removed by the driver at the end)."""
    from nepi_lab import ExperimentController, ResourceState

    peak = threading.active_count()

    def sample(*_: object) -> None:
        nonlocal peak
        peak = max(peak, threading.active_count())

    start = time.perf_counter()
    ec = ExperimentController(exp_id="bench", local_dir=os.path.join(where, "results"))
    ec.events.subscribe(sample)
    node = ec.register_resource("linux::Node", home=os.path.join(where, "home"))
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


def by_hand(n: int, where: str) -> dict:
    """The processes and files of ``many_apps`` made without the controller (``where``
    is a fresh folder, left in place)."""
    env = dict(os.environ)
    homes = [os.path.join(where, "home", str(i)) for i in range(n)]
    results = os.path.join(where, "results")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        left = n
        done = loop.create_future()
        popens = []

        def exited(fd: int, i: int) -> None:
            nonlocal left
            loop.remove_reader(fd)
            os.close(fd)
            _, status = os.waitpid(popens[i].pid, 0)
            popens[i].returncode = os.waitstatus_to_exitcode(status)
            folder = os.path.join(results, str(i))
            os.mkdir(folder)
            with open(os.path.join(folder, "exitcode"), "w") as f:
                f.write(f"{popens[i].returncode}\n")
            for name in ("stdout", "stderr"):
                os.link(os.path.join(homes[i], name), os.path.join(folder, name))
            left -= 1
            if not left:
                done.set_result(None)

        os.makedirs(os.path.join(where, "home"))
        os.mkdir(results)
        for i, home in enumerate(homes):
            os.mkdir(home)
            child_env = {**env, "APP_HOME": home, "RUN_HOME": where, "NODE_HOME": where, "EXP_HOME": where,
                         "BIN": where, "SRC": home + "/src", "CODE": home + "/code"}
            out_path, err_path = os.path.join(home, "stdout"), os.path.join(home, "stderr")
            with open(out_path, "ab") as out, open(err_path, "ab") as err:
                popen = subprocess.Popen(["/bin/sh", "-c", "true"], cwd=home, env=child_env, stdout=out,
                                         stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)
            popens.append(popen)
            fd = os.pidfd_open(popen.pid)
            loop.add_reader(fd, exited, fd, i)
            await asyncio.sleep(0)
        await done
        for home in homes:
            for name in ("stdout", "stderr"):
                os.unlink(os.path.join(home, name))
            os.rmdir(home)

    start = time.perf_counter()
    asyncio.run(main())
    return {"total": time.perf_counter() - start}


FIGURES = {"one_app": one_app, "many_apps": many_apps, "raw_asyncio": raw_asyncio, "by_hand": by_hand}


# == driver ==========================================================================


def child(name: str, arg: int, where: str) -> dict:
    out = subprocess.run([sys.executable, __file__, CHILD_FLAG, name, str(arg), where], capture_output=True,
                         text=True, timeout=600)
    for line in out.stdout.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    raise RuntimeError(f"{name} failed:\n{out.stderr}")


class Settler:
    """Waits until making a file in ``where`` is cheap again (see "Settling" above).

    Probes make 50 empty files each in a scratch folder kept until :meth:`close`, so
    probing frees no inode itself.
    """

    QUIET = 0.03e-3  #: seconds per new file at or below which the file system counts as settled

    def __init__(self, where: str, limit: float) -> None:
        self.scratch = tempfile.mkdtemp(prefix="nepi-lab-bench-", dir=where)
        self.limit = limit
        self.probes = 0

    def probe(self) -> float:
        self.probes += 1
        folder = os.path.join(self.scratch, f"probe{self.probes}")
        os.mkdir(folder)
        start = time.perf_counter()
        for i in range(50):
            open(os.path.join(folder, str(i)), "wb").close()
        return (time.perf_counter() - start) / 50

    def settle(self) -> str:
        """Wait until quiet or ``limit`` seconds passed; say what happened."""
        start = time.monotonic()
        os.sync()
        cost = self.probe()
        while cost > self.QUIET and time.monotonic() - start < self.limit:
            time.sleep(2)
            cost = self.probe()
        waited = time.monotonic() - start
        note = f"new file {cost * 1000:.3f} ms after {waited:.0f} s"
        if cost > self.QUIET:
            note += " (NOT settled: this round includes the file system's recently-freed-inode scan)"
        return note

    def fresh(self) -> str:
        """A new folder for one round, kept until :meth:`close`."""
        return tempfile.mkdtemp(prefix="round-", dir=self.scratch)

    def close(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--dir", default=tempfile.gettempdir(),
                        help="folder for the results and the node's home (default: the temp folder)")
    parser.add_argument("--settle", type=float, default=240, metavar="SECONDS",
                        help="before each round of figure 2, wait at most this long for the file "
                             "system to settle (0: do not wait; see the module docstring)")
    parser.add_argument(CHILD_FLAG, nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._child:
        name, arg, where = args._child
        print(MARK + json.dumps(FIGURES[name](int(arg), where)), flush=True)
        return 0
    where = args.dir
    settler = Settler(where, args.settle)
    try:
        return run_figures(args, where, settler)
    finally:
        settler.close()


def run_figures(args: argparse.Namespace, where: str, settler: Settler) -> int:
    n = 1000
    rounds = 1 if args.quick else 3
    print(f"nepi_lab linux benchmark: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"files in {where} ({settler.probe() * 1000:.3f} ms to make a file there now)", flush=True)
    one = child("one_app", 10 if args.quick else 30, where)
    ok1 = one["median"] <= 0.050
    print(f"1. one `true` app, ExperimentController() .. shutdown(): median {one['median'] * 1000:.1f} ms "
          f"(min {one['min'] * 1000:.1f} ms); baseline subprocess.run('true', shell=True) "
          f"{one['baseline'] * 1000:.1f} ms; target <= 50 ms: {verdict(ok1)}")

    ours, raw = [], []
    for i in range(rounds):
        note = settler.settle()
        ours.append(child("many_apps", n, settler.fresh()))
        raw.append(child("raw_asyncio", n, where))
        print(f"   round {i + 1}: {ours[-1]['total']:.2f} s, baseline {raw[-1]['total']:.2f} s ({note})",
              flush=True)
    hand_note = settler.settle()
    hand = child("by_hand", n, settler.fresh())
    best = min(ours, key=lambda r: r["total"])
    base = min(raw, key=lambda r: r["total"])
    ratio = best["total"] / base["total"]
    ok2 = ratio <= 2.0 and best["finished"] == n
    print(f"2. {n} `true` apps on localhost, controller .. shutdown: {best['total']:.2f} s "
          f"(all FINISHED after {best['to_finished']:.2f} s; {best['finished']}/{n} FINISHED); "
          f"baseline {n} x asyncio.create_subprocess_exec('true'): {base['total']:.2f} s; "
          f"ratio {ratio:.2f}x; target <= 2x: {verdict(ok2)}   (best of {rounds})")
    print(f"   for reference, the same processes and files by hand, no controller: {hand['total']:.2f} s "
          f"= {hand['total'] / base['total']:.2f}x the baseline ({hand_note}); "
          f"the controller adds {best['total'] / hand['total']:.2f}x to that")
    threads = max(r["threads"] for r in ours)
    ok3 = threads <= 4
    print(f"3. max threads during {n} apps: {threads}; baseline asyncio subprocesses: "
          f"{max(r['threads'] for r in raw)}; target <= 4: {verdict(ok3)}")
    return 0 if ok1 and ok2 and ok3 else 1


if __name__ == "__main__":
    sys.exit(main())
