#!/usr/bin/env python
"""Benchmark of the linux resources on localhost: real processes, real files.

Usage::

    python benchmarks/bench_linux.py                  # full run, files in the temp folder
    python benchmarks/bench_linux.py --quick          # fewer repetitions
    python benchmarks/bench_linux.py --dir /dev/shm   # files on another file system
    python benchmarks/bench_linux.py --first          # figures 4-7 only (about a minute)

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
   one thread per child).  Target: <= 1.5x the baseline (issue 17).
   For reference, the same processes and the same files made by hand (no
   controller): one folder, stdout and stderr per process, ``/bin/sh -c true`` in its
   own session with the placeholders in its environment, watched through a pidfd,
   then a results folder, exitcode and two hard links, and the folders removed.
   This is what the design costs on this file system before any controller work.
3. Threads: the most ``threading.active_count()`` seen during figure 2, sampled by
   an event subscriber (in the loop thread, at every state change) and by the main
   thread between waits.  Baseline: the same count during the asyncio baseline.
   Target: <= 4.

8. Many nodes: 1,000 localhost nodes without processes (each with its folders, its
   cgroup and its entry in the run's ``hosts.json``), controller to shutdown, per node.
   Baseline: the same per node with 100 nodes, in the same run.  Target: <= 1.5x (what a
   node costs does not grow with their number; rewriting ``hosts.json`` for each node
   once made it 9 ms per node at 1,000 against 1.7 at 100, on tmpfs).

Figures 4-7, the first resource of a process (``--first`` runs only these; every one in
interleaved rounds of fresh processes, medians; the load average is printed beside):

4. One ``true`` application, the first of its process: ``ExperimentController()`` to
   after ``shutdown()``, ``import nepi_lab`` done before (so the type registry's start-up,
   the linux modules' import, counts).  Baseline: the first
   ``subprocess.run("true", shell=True)`` of a process that imported asyncio.
   Target: <= 4x.  For reference, the same with ``NEPI_LAB_CGROUPS=0``: where cgroup v2
   is writable, each command's shell first moves itself into its node's cgroup
   (``echo $$ > cgroup.procs``); strace shows that one write taking 4-15 ms on this
   project's VMs while the controller runs (the kernel's ``cgroup_threadgroup_rwsem``
   waits for an RCU grace period, unless cgroup2 is mounted with ``favordynmods``).
   And that move alone, where cgroup v2 is writable: a shell moving itself into a
   scratch cgroup after a quiet spell (0.2 s, as the first command of a process does)
   and right after another (as the rest of a burst does), beside a bare ``sh -c true``
   (medians; see :mod:`nepi_lab.resources.linux._tracking`, "What the cgroup costs").
5. Ten ``true`` applications, likewise.  Baseline: ten ``asyncio.create_subprocess_exec``
   of ``/bin/sh -c true`` started together on a fresh loop and awaited.  Target: <= 2x.
6. A one-app script, whole process: ``python -c`` importing nepi_lab, one ``true``
   application, shutdown, exit.  Baseline: ``python -c`` importing asyncio and running
   ``/bin/sh -c true`` through ``asyncio.create_subprocess_exec``.  Target: <= 1.3x.
7. Synchronous reads that need no loop, per call, in a process whose application has
   finished and whose traces are collected: ``ec.state(guid)`` against a plain
   function call returning an attribute, ``ec.trace(guid, "stdout", attr=SIZE)``
   against ``os.stat`` of that file, and ``ec.trace(guid, "stdout")`` (its content)
   against opening and reading it.  No target but "no thread hop" (the hop costs tens
   of microseconds; a call without it is within a few times the baseline).

Python's cached bytecode matters at this scale: with ``PYTHONDONTWRITEBYTECODE`` set and
no ``__pycache__`` (or a stale one, after an edit), every import compiles the source
again.  So figures 4-7 first compile nepi_lab's modules whose bytecode is missing or
stale, as installing the package does (the header says so).
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


def many_nodes(n: int, where: str) -> dict:
    """Figure 8: ``n`` localhost nodes, no process: controller .. shutdown (``where`` is a
    fresh folder, left in place)."""
    from nepi_lab import ExperimentController

    start = time.perf_counter()
    ec = ExperimentController(exp_id="bench", local_dir=os.path.join(where, "results"))
    nodes = [ec.register_resource("linux::Node", home=os.path.join(where, "home")) for _ in range(n)]
    ec.deploy()
    ec.wait_deployed(nodes, timeout=300)
    ec.shutdown()
    return {"total": time.perf_counter() - start}


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


def first_apps(n: int, where: str) -> dict:
    """Figures 4 and 5: the first controller of a fresh process, ``n`` ``true`` apps."""
    import nepi_lab  # noqa: F401 - imported before the clock starts, as a script would

    with tempfile.TemporaryDirectory(dir=where) as tmp:
        start = time.perf_counter()
        from nepi_lab import ExperimentController

        ec = ExperimentController(exp_id="bench", local_dir=os.path.join(tmp, "results"))
        node = ec.register_resource("linux::Node", home=os.path.join(tmp, "home"))
        apps = [ec.register_resource("linux::Application", connectedTo=node, command="true")
                for _ in range(n)]
        ec.deploy()
        ec.wait_finished(apps, timeout=60)
        ec.shutdown()
        elapsed = time.perf_counter() - start
        assert all(ec.trace(a, "exitcode") == "0\n" for a in apps)
    return {"total": elapsed}


def cgroup_moves(rounds: int, where: str) -> dict:
    """Reference of figure 4: what one move into a cgroup costs a command's shell, after a
    quiet spell (the first move of a process) and right after another (a burst), beside a
    bare ``sh -c true``; empty where no cgroup v2 is writable here."""
    from nepi_lab.resources.linux import _tracking

    base = _tracking.cgroup_base()
    if base is None:
        return {}
    folder = os.path.join(base, f"nepi_lab-bench.{os.getpid()}")
    os.mkdir(folder)
    move = ["/bin/sh", "-c", f"echo $$ >{folder}/cgroup.procs"]

    def timed(argv: list[str]) -> float:
        start = time.perf_counter()
        subprocess.run(argv, check=True)
        return time.perf_counter() - start

    quiet, burst, bare = [], [], []
    try:
        for _ in range(rounds):
            time.sleep(0.2)  # a few grace periods: the kernel's lock goes idle again
            quiet.append(timed(move))
            burst.append(timed(move))
            bare.append(timed(["/bin/sh", "-c", "true"]))
    finally:
        os.rmdir(folder)
    return {"quiet": statistics.median(quiet), "burst": statistics.median(burst),
            "bare": statistics.median(bare)}


def first_spawns(n: int, where: str) -> dict:
    """Baselines of figures 4 and 5: the first spawns of a process that imported asyncio."""
    if n == 1:
        start = time.perf_counter()
        subprocess.run("true", shell=True, check=True)
        return {"total": time.perf_counter() - start}

    async def main() -> None:
        processes = [await asyncio.create_subprocess_exec("/bin/sh", "-c", "true") for _ in range(n)]
        for p in processes:
            await p.wait()

    start = time.perf_counter()
    asyncio.run(main())
    return {"total": time.perf_counter() - start}


#: Figure 6: the script, and its baseline (``{where}`` is a fresh temporary folder).
SCRIPT = ("import os, sys\nfrom nepi_lab import ExperimentController\nwhere = sys.argv[1]\n"
          "ec = ExperimentController(exp_id='s', local_dir=os.path.join(where, 'results'))\n"
          "node = ec.register_resource('linux::Node', home=os.path.join(where, 'home'))\n"
          "app = ec.register_resource('linux::Application', connectedTo=node, command='true')\n"
          "ec.deploy()\nec.wait_finished(app)\nec.shutdown()\n")
SCRIPT_BASE = ("import asyncio\nasync def main():\n"
               "    p = await asyncio.create_subprocess_exec('/bin/sh', '-c', 'true')\n"
               "    await p.wait()\nasyncio.run(main())\n")


def whole_process(code: str, where: str) -> float:
    with tempfile.TemporaryDirectory(dir=where) as tmp:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code, tmp], check=True)
        return time.perf_counter() - start


def sync_reads(n: int, where: str) -> dict:
    """Figure 7: ``ec.state``, ``ec.trace(SIZE)`` and ``ec.trace`` (content) per call, and
    their baselines."""
    from nepi_lab import ExperimentController, TraceAttr

    class Plain:
        def __init__(self) -> None:
            self._state = 7

        def state(self, guid: int) -> int:
            return self._state

    def per_call(call, *args) -> float:  # noqa: ANN001
        rounds = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(n):
                call(*args)
            rounds.append((time.perf_counter() - start) / n)
        return statistics.median(rounds)

    with tempfile.TemporaryDirectory(dir=where) as tmp:
        ec = ExperimentController(exp_id="bench", local_dir=os.path.join(tmp, "results"))
        node = ec.register_resource("linux::Node", home=os.path.join(tmp, "home"))
        app = ec.register_resource("linux::Application", connectedTo=node, command="echo hello")
        ec.deploy()
        ec.wait_finished(app, timeout=30)
        path = ec.trace(app, "stdout", attr=TraceAttr.PATH)
        assert ec.trace(app, "stdout", attr=TraceAttr.SIZE) == os.stat(path).st_size == 6
        plain = Plain()
        assert ec.trace(app, "stdout") == "hello\n"

        def read(path: str) -> str:
            with open(path, "rb") as f:
                return f.read().decode()

        figures = {"state": per_call(ec.state, app), "plain": per_call(plain.state, app),
                   "size": per_call(ec.trace, app, "stdout", TraceAttr.SIZE), "stat": per_call(os.stat, path),
                   "all": per_call(ec.trace, app, "stdout"), "read": per_call(read, path)}
        ec.shutdown()
    return figures


FIGURES = {"first_apps": first_apps, "first_spawns": first_spawns, "cgroup_moves": cgroup_moves,
           "sync_reads": sync_reads, "one_app": one_app, "many_apps": many_apps, "raw_asyncio": raw_asyncio,
           "by_hand": by_hand, "many_nodes": many_nodes}


# == driver ==========================================================================


def child(name: str, arg: int, where: str, env: dict[str, str] | None = None) -> dict:
    out = subprocess.run([sys.executable, __file__, CHILD_FLAG, name, str(arg), where], capture_output=True,
                         text=True, timeout=600, env=None if env is None else {**os.environ, **env})
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
    parser.add_argument("--first", action="store_true", help="figures 4-7 only (the first resource, "
                                                                  "whole scripts, synchronous reads)")
    parser.add_argument(CHILD_FLAG, nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._child:
        name, arg, where = args._child
        print(MARK + json.dumps(FIGURES[name](int(arg), where)), flush=True)
        return 0
    where = args.dir
    if args.first:
        return first_figures(args, where)
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
    ok2 = ratio <= 1.5 and best["finished"] == n
    print(f"2. {n} `true` apps on localhost, controller .. shutdown: {best['total']:.2f} s "
          f"(all FINISHED after {best['to_finished']:.2f} s; {best['finished']}/{n} FINISHED); "
          f"baseline {n} x asyncio.create_subprocess_exec('true'): {base['total']:.2f} s; "
          f"ratio {ratio:.2f}x; target <= 1.5x: {verdict(ok2)}   (best of {rounds})")
    print(f"   for reference, the same processes and files by hand, no controller: {hand['total']:.2f} s "
          f"= {hand['total'] / base['total']:.2f}x the baseline ({hand_note}); "
          f"the controller adds {best['total'] / hand['total']:.2f}x to that")
    threads = max(r["threads"] for r in ours)
    ok3 = threads <= 4
    print(f"3. max threads during {n} apps: {threads}; baseline asyncio subprocesses: "
          f"{max(r['threads'] for r in raw)}; target <= 4: {verdict(ok3)}")
    ok8 = nodes_figure(rounds, settler)
    first_ok = first_figures(args, where) == 0
    return 0 if ok1 and ok2 and ok3 and ok8 and first_ok else 1


def nodes_figure(rounds: int, settler: Settler) -> bool:
    """Figure 8 (see the module docstring)."""
    few, many = 100, 1000
    small, large = [], []
    for _ in range(rounds):
        settler.settle()
        small.append(child("many_nodes", few, settler.fresh())["total"] / few)
        settler.settle()
        large.append(child("many_nodes", many, settler.fresh())["total"] / many)
    per_few, per_many = min(small), min(large)
    good = per_many <= 1.5 * per_few
    print(f"8. {many} localhost nodes, no process, controller .. shutdown: {per_many * 1000:.2f} ms "
          f"per node; baseline {few} nodes: {per_few * 1000:.2f} ms per node; ratio "
          f"{per_many / per_few:.2f}x; target <= 1.5x (a node costs the same among many): "
          f"{verdict(good)}   (best of {rounds}; {load()})", flush=True)
    return good


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def compiled_first() -> str:
    """Compile nepi_lab's modules whose cached bytecode is missing or stale, as installing
    the package does: a fresh process then imports what a user's would, not sources it
    compiles (about 10 ms for the linux modules just after one was edited, with
    ``PYTHONDONTWRITEBYTECODE`` set, as in this project's shells).  Returns what the
    header says about it."""
    import compileall
    import importlib.util

    spec = importlib.util.find_spec("nepi_lab")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    if not folders or not all(compileall.compile_dir(folder, quiet=1) for folder in folders):
        return " (nepi_lab's bytecode could not be compiled first: imports may compile)"
    return " (nepi_lab's bytecode compiled first, as an installed package has it)"


def first_figures(args: argparse.Namespace, where: str) -> int:
    """Figures 4-7 (see the module docstring)."""
    rounds = 5 if args.quick else 15
    note = compiled_first()
    print(f"first resource, whole scripts, synchronous reads: {rounds} interleaved rounds of fresh "
          f"processes, medians; {load()}{note}", flush=True)
    ok = True
    for figure, n, target, what, base_what in (
            (4, 1, 4.0, "one `true` app, first of its process, ExperimentController() .. shutdown()",
             "subprocess.run('true', shell=True), first of its process"),
            (5, 10, 2.0, "ten `true` apps, first of their process, ExperimentController() .. shutdown()",
             "ten asyncio.create_subprocess_exec('/bin/sh', '-c', 'true') together")):
        ours, base, plain = [], [], []
        for _ in range(rounds):
            ours.append(child("first_apps", n, where)["total"])
            base.append(child("first_spawns", n, where)["total"])
            plain.append(child("first_apps", n, where, {"NEPI_LAB_CGROUPS": "0"})["total"])
        mine, raw, without = statistics.median(ours), statistics.median(base), statistics.median(plain)
        good = mine <= target * raw
        ok = ok and good
        print(f"{figure}. {what}: {mine * 1000:.1f} ms; baseline {base_what}: {raw * 1000:.1f} ms; "
              f"ratio {mine / raw:.1f}x; target <= {target:g}x: {verdict(good)}   ({load()})\n"
              f"   for reference, without the node's cgroup (NEPI_LAB_CGROUPS=0: no command's shell moves "
              f"itself into it): {without * 1000:.1f} ms, {without / raw:.1f}x", flush=True)
        if figure == 4:
            moves = child("cgroup_moves", rounds, where)
            if moves:
                print(f"   for reference, a shell moving itself into a cgroup (echo $$ > cgroup.procs): "
                      f"{moves['quiet'] * 1000:.1f} ms after a quiet spell, {moves['burst'] * 1000:.1f} ms "
                      f"right after another; a bare sh -c true: {moves['bare'] * 1000:.1f} ms", flush=True)
    ours, base = [], []
    for _ in range(rounds):
        ours.append(whole_process(SCRIPT, where))
        base.append(whole_process(SCRIPT_BASE, where))
    mine, raw = statistics.median(ours), statistics.median(base)
    good = mine <= 1.3 * raw
    ok = ok and good
    print(f"6. a one-app script, whole process (python -c: import nepi_lab, one `true` app, shutdown): "
          f"{mine * 1000:.1f} ms; baseline python -c importing asyncio, one asyncio spawn of "
          f"/bin/sh -c true: {raw * 1000:.1f} ms; ratio {mine / raw:.2f}x; target <= 1.3x: {verdict(good)}   "
          f"({load()})", flush=True)
    reads = child("sync_reads", 20000, where)
    print(f"7. ec.state(guid): {reads['state'] * 1e6:.2f} us per call; baseline a plain method returning an "
          f"attribute: {reads['plain'] * 1e6:.2f} us ({reads['state'] / reads['plain']:.1f}x)\n"
          f"   ec.trace(guid, 'stdout', attr=SIZE) of a collected trace: {reads['size'] * 1e6:.2f} us "
          f"per call; baseline os.stat of the file: {reads['stat'] * 1e6:.2f} us "
          f"({reads['size'] / reads['stat']:.1f}x)\n"
          f"   ec.trace(guid, 'stdout') (its content) of a collected trace: {reads['all'] * 1e6:.2f} us "
          f"per call; baseline opening and reading the file: {reads['read'] * 1e6:.2f} us "
          f"({reads['all'] / reads['read']:.1f}x)"
          f"   ({load()})", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
