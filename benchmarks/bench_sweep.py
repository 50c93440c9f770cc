#!/usr/bin/env python
"""Benchmark of sweeps: overhead per run, scaling on a Dask cluster, resuming after a kill.

Usage::

    python benchmarks/bench_sweep.py                  # full run (3 to 4 minutes)
    python benchmarks/bench_sweep.py --quick          # fewer rounds and runs, no settling (1.5 min)
    python benchmarks/bench_sweep.py --dir /var/tmp --tmpfs /dev/shm

Every figure is printed beside a baseline measured in the same run, on the same
machine, and beside its target, with PASS/FAIL.  The experiment of every run is one
localhost node and one application; the node's ``home``, the results folder and the
index of runs (``$NEPI_LAB_STATE``) all lie in the folder measured, so that the file
system measured is the one written.

File systems.  Figures 1 and 3 write many small files, so they are measured twice:
in ``--dir`` (default: the temp folder) and in ``--tmpfs`` (default ``/dev/shm``).
On ext4 *without a journal* (this project's VMs), a file freed less than a minute ago
makes every new file slower (see ``bench_linux.py``): each run removes its folders on
the node, and the sweep rewrites its record (sweep.json, by an atomic rename) now and
then as its journal fills, so a
round slows the next.  Before figure 1 in ``--dir`` the script waits (``--settle``
seconds at most) until making a file there is cheap again, prints what making a file
costs before each round, and alternates which of the two goes first in each round.

Figures
-------
1. Overhead per run: a sweep of 200 runs of a ``true`` application (``{"i":
   range(200)}``, one at a time, ``Sweep.run()``), from ``Sweep(...)`` to the return
   of ``run()``.  Baseline: the same 200 runs made by hand, one controller each
   (``with ExperimentController(...) as ec: build(ec); ec.deploy(); ec.wait_finished()``),
   in this process, in rounds alternating with the sweep's, after one warm-up of
   each.  The times printed are medians over the rounds; the ratio is the median of
   each round's ratio (the two halves of a round see the same load on the machine).
   Target: <= 1.2x the baseline.  (The sweep records two changes per run, each a
   line appended to ``sweep.journal``; until 2026-12-01 it rewrote the whole record
   each time, 0.8 to 2.6 ms for 200 runs, which made this figure 1.4 to 1.7x.)
2. Scaling on Dask: a real ``dask scheduler`` and two ``dask worker --nthreads 1``
   processes on 127.0.0.1 (started here, stopped at the end); a sweep of 40 runs of
   ``sleep 1`` through ``executor=Client(...)``.  Baseline: the same 40 runs,
   sequential (``Sweep.run()`` in this process).  Target: <= 0.6x the baseline
   (two workers: 0.5x at best).  ``--quick`` makes 16 runs of each, so that the
   fixed costs (the workers' first imports, the first task's trip) weigh more.
3. Resume: a sweep of 40 runs of ``sleep 0.2`` runs in a child process, which is
   SIGKILLed once half its runs are done (read from ``sweep.json`` and its journal); then this
   process calls ``run()`` on the same sweep.  Measured: how many runs it makes
   (target: exactly the missing ones, none of the done ones made again: their
   entries and run directories unchanged) and the time from calling ``run()`` to
   the first new run's start (the record's ``start``; target <= 1 s).  Baseline:
   the same span for a fresh sweep of the same runs.  ``--quick`` makes 10 runs.

Everything made here (folders, the Dask processes, what the killed child left,
which ``nepi-lab cleanup`` collects) is removed before the script ends.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

CHILD_FLAG = "--_child"
HERE = os.path.dirname(os.path.abspath(__file__))
RESUMED = "bench_sweep-resumed"  #: the exp_id of the sweep killed and resumed (figure 3)
QUIET = 0.03e-3  #: seconds per new file at or below which the file system counts as settled


# == the experiments (imported by name on the Dask workers) =========================


def build_true(ec: Any, i: int, *, home: str) -> None:
    """One localhost application running ``true``."""
    node = ec.register_resource("linux::Node", hostname="localhost", home=home)
    ec.register_resource("linux::Application", connectedTo=node, command="true")


def build_sleep(ec: Any, i: int, *, home: str, seconds: float) -> None:
    """One localhost application sleeping ``seconds``."""
    node = ec.register_resource("linux::Node", hostname="localhost", home=home)
    ec.register_resource("linux::Application", connectedTo=node, command=f"sleep {seconds}")


def experiments() -> Any:
    """This script as an importable module, so that its build functions pickle by name
    (the Dask workers import it from their PYTHONPATH) rather than by value."""
    return importlib.import_module(os.path.splitext(os.path.basename(__file__))[0])


# == helpers ========================================================================


class Place:
    """A scratch folder in the file system measured, holding the results, the node's home
    and the index of runs (``$NEPI_LAB_STATE``, set inside the ``with`` block); removed
    when the block ends."""

    def __init__(self, where: str, name: str) -> None:
        self.where = where
        self.root = tempfile.mkdtemp(prefix=f"bench_sweep-{name}-", dir=where)
        self.results = os.path.join(self.root, "results")
        self.home = os.path.join(self.root, "home")
        self.state = os.path.join(self.root, "state")
        self.probes = 0

    def __enter__(self) -> Place:
        self._state_before = os.environ.get("NEPI_LAB_STATE")
        os.environ["NEPI_LAB_STATE"] = self.state
        return self

    def __exit__(self, *exc: object) -> None:
        if self._state_before is None:
            os.environ.pop("NEPI_LAB_STATE", None)
        else:
            os.environ["NEPI_LAB_STATE"] = self._state_before
        shutil.rmtree(self.root, ignore_errors=True)

    def probe(self) -> float:
        """Seconds to make one empty file here now (50 made, kept until the end: probing
        frees no inode itself)."""
        self.probes += 1
        folder = os.path.join(self.root, "probes", str(self.probes))
        os.makedirs(folder)
        start = time.perf_counter()
        for i in range(50):
            open(os.path.join(folder, str(i)), "wb").close()
        return (time.perf_counter() - start) / 50

    def settle(self, limit: float) -> str:
        """Wait at most ``limit`` seconds until making a file here is cheap; say what was found."""
        start = time.monotonic()
        os.sync()
        cost = self.probe()
        while cost > QUIET and time.monotonic() - start < limit:
            time.sleep(2)
            cost = self.probe()
        note = f"new file {cost * 1000:.3f} ms after waiting {time.monotonic() - start:.0f} s"
        return note + (" (not settled)" if cost > QUIET else "")


def file_system(path: str) -> str:
    """``<type> at <mount point>`` of the file system holding ``path``."""
    path = os.path.realpath(path)
    best, kind = "", "?"
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split()
                point = fields[4].encode().decode("unicode_escape")
                kind_here = fields[fields.index("-") + 1]
                if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
                    best, kind = point, kind_here
    except (OSError, ValueError, IndexError):
        pass
    return f"{kind} at {best or '?'}"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print(" | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("-+-".join("-" * w for w in widths))
    for r in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


def progress(msg: str) -> None:
    print(f"  .. {msg}", flush=True)


def source_version() -> str:
    """The nepi_lab version and commit measured."""
    import nepi_lab

    package = os.path.dirname(os.path.abspath(nepi_lab.__file__))
    try:
        head = subprocess.run(["git", "-C", package, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        head = ""
    return f"nepi_lab {nepi_lab.__version__}" + (f" at {head}" if head else "") + f" ({package})"


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of the processes started here: they import this nepi_lab and this script."""
    import nepi_lab

    source = os.path.dirname(os.path.dirname(os.path.abspath(nepi_lab.__file__)))
    path = [source, HERE] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path), **(extra or {})}


# == figure 1: overhead per run =====================================================


def overhead(place: Place, runs: int, rounds: int, settle: float) -> dict:
    """Medians of ``rounds`` sweeps of ``runs`` ``true`` runs and of as many runs by hand."""
    from nepi_lab import ExperimentController
    from nepi_lab.runner.sweep import Sweep

    build = functools.partial(build_true, home=place.home)
    points = {"i": list(range(runs))}

    def by_sweep(exp_id: str, count: int) -> float:
        start = time.perf_counter()
        sweep = Sweep(build, {"i": list(range(count))} if count != runs else points,
                      exp_id=exp_id, results=place.results)
        made = sweep.run(progress=False)
        elapsed = time.perf_counter() - start
        if made != count or sweep.counts()["done"] != count:
            raise RuntimeError(f"sweep {exp_id}: {made} runs made, {sweep.counts()}")
        return elapsed

    def by_hand(exp_id: str, count: int) -> float:
        start = time.perf_counter()
        for i in range(count):
            with ExperimentController(exp_id=exp_id, local_dir=place.results, parameters={"i": i}) as ec:
                build(ec, i)
                ec.deploy()
                ec.wait_finished()
        elapsed = time.perf_counter() - start
        made = len(os.listdir(os.path.join(place.results, exp_id)))
        if made != count:
            raise RuntimeError(f"by hand: {made} run directories for {count} runs")
        return elapsed

    by_sweep("warmup-sweep", 10)  # imports the linux resources, warms the caches
    by_hand("warmup-hand", 10)
    note = place.settle(settle) if settle > 0 else f"new file {place.probe() * 1000:.3f} ms (no settling)"
    progress(f"{place.where}: {note}")
    swept, hand = [], []
    for r in range(rounds):
        cost = place.probe()
        order = [("sweep", by_sweep), ("hand", by_hand)]
        if r % 2:
            order.reverse()
        times = {name: measure(f"{name}{r}", runs) for name, measure in order}
        swept.append(times["sweep"])
        hand.append(times["hand"])
        progress(f"round {r + 1}/{rounds} ({order[0][0]} first; new file {cost * 1000:.3f} ms before): "
                 f"sweep {times['sweep']:.2f} s, by hand {times['hand']:.2f} s, "
                 f"ratio {times['sweep'] / times['hand']:.2f}")
    return {"sweep": statistics.median(swept), "hand": statistics.median(hand), "runs": runs,
            "rounds": rounds, "ratio": statistics.median(s / h for s, h in zip(swept, hand, strict=True))}


# == figure 2: scaling on Dask ======================================================


class DaskCluster:
    """A ``dask scheduler`` and ``workers`` ``dask worker --nthreads 1`` processes on
    127.0.0.1, each in a session of its own; :meth:`close` stops them and waits."""

    def __init__(self, folder: str, workers: int) -> None:
        self.folder = folder
        os.makedirs(folder)
        self.processes: list[subprocess.Popen[bytes]] = []
        self.scheduler_file = os.path.join(folder, "scheduler.json")
        self.env = child_env({"TMPDIR": folder})  # the workers' temporary results folders
        self._start("scheduler", ["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                  "--scheduler-file", self.scheduler_file])
        deadline = time.monotonic() + 60
        while not os.path.exists(self.scheduler_file):
            if time.monotonic() > deadline or self.processes[0].poll() is not None:
                raise RuntimeError(f"the Dask scheduler did not start:\n{self.log('scheduler')}")
            time.sleep(0.1)
        for n in range(workers):
            self._start(f"worker{n}", ["worker", "--scheduler-file", self.scheduler_file,
                                       "--host", "127.0.0.1", "--nthreads", "1", "--no-dashboard",
                                       "--name", f"bench-{n}", "--death-timeout", "60",
                                       "--local-directory", os.path.join(folder, f"worker{n}")])

    def _start(self, name: str, args: list[str]) -> None:
        with open(os.path.join(self.folder, f"{name}.log"), "wb") as log:
            self.processes.append(subprocess.Popen([sys.executable, "-m", "dask", *args], stdout=log,
                                                   stderr=log, stdin=subprocess.DEVNULL, env=self.env,
                                                   cwd=self.folder, start_new_session=True))

    def log(self, name: str) -> str:
        path = os.path.join(self.folder, f"{name}.log")
        with contextlib.suppress(OSError), open(path, errors="replace") as f:
            return f.read()[-3000:]
        return ""

    def close(self) -> None:
        """Workers first (their nannies stop their worker processes), then the scheduler."""
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for process in reversed(self.processes):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)  # its own session: the nanny's worker too
                process.wait()


def scaling(place: Place, runs: int) -> dict:
    """A Dask sweep of ``runs`` ``sleep 1`` runs on two workers, and the same runs sequential."""
    from distributed import Client

    from nepi_lab.runner.sweep import Sweep

    module = experiments()
    build = functools.partial(module.build_sleep, home=place.home, seconds=1)
    points = {"i": list(range(runs))}
    cluster = None
    client = None
    try:
        started = time.perf_counter()
        cluster = DaskCluster(os.path.join(place.root, "dask"), workers=2)
        client = Client(scheduler_file=cluster.scheduler_file, timeout=60)
        client.wait_for_workers(2, timeout=60)
        progress(f"Dask scheduler and 2 workers up in {time.perf_counter() - started:.1f} s "
                 f"(not counted): {sorted(client.nthreads().values())} threads")
        result: dict[str, Any] = {"runs": runs}
        for name, executor in (("dask", client), ("sequential", None)):
            called, start = time.time(), time.perf_counter()
            sweep = Sweep(build, points, exp_id=name, results=place.results)
            made = sweep.run(progress=False, executor=executor)
            elapsed = time.perf_counter() - start
            done = sweep.counts()["done"]
            present = sum(os.path.isdir(sweep.run_dir(e) or "") for e in sweep.runs)
            if made != runs or done != runs or present != runs:
                failures = {e["failure"] for e in sweep.runs if e["failure"]}
                raise RuntimeError(f"{name} sweep: {made} made, {done} done, {present} run directories; "
                                   f"{failures}")
            durations = [e["end"] - e["start"] for e in sweep.runs]
            result[name] = elapsed
            first = min(e["start"] for e in sweep.runs) - called
            typical = statistics.median(durations)
            progress(f"{name}: {runs} runs in {elapsed:.2f} s; a run took {typical:.3f} s (median, start to "
                     f"end as recorded); the first began {first:.2f} s after Sweep()")
        return result
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()


# == figure 3: resume ===============================================================


def child_resume(results: str, home: str, runs: str) -> None:
    """In the child process: the sweep that will be killed."""
    from nepi_lab.runner.sweep import Sweep

    build = functools.partial(build_sleep, home=home, seconds=0.2)
    Sweep(build, {"i": list(range(int(runs)))}, exp_id=RESUMED, results=results).run(progress=False)


def first_start_latency(sweep: Any, before: set[tuple[int, int]]) -> tuple[int, float, float]:
    """Call ``sweep.run()``: the runs it made, seconds from the call to the record's start
    of its first new run, and to the first subscriber call that saw it running."""
    seen: list[float] = []

    def watch(current: Any) -> None:
        if not seen and any(e["state"] == "running" and (e["point"], e["repetition"]) not in before
                            for e in current.runs):
            seen.append(time.time())

    unsubscribe = sweep.subscribe(watch)
    called = time.time()
    try:
        made = sweep.run(progress=False)
    finally:
        unsubscribe()
    starts = [e["start"] for e in sweep.runs if (e["point"], e["repetition"]) not in before]
    return made, min(starts) - called, seen[0] - called


def fingerprint(sweep: Any, entry: dict) -> tuple:
    """What must not change in a done run: its entry and its run directory's description."""
    folder = sweep.run_dir(entry)
    try:
        stat = os.stat(os.path.join(folder, "experiment.json"))
        files = (stat.st_ino, stat.st_mtime_ns, len(os.listdir(folder)))
    except (OSError, TypeError):
        files = None
    return entry["run_dir"], entry["start"], entry["end"], files


def resume(place: Place, runs: int) -> dict:
    """Kill a sweep's process half-way, resume it here; and a fresh sweep for the baseline."""
    from nepi_lab.runner.sweep import Sweep

    build = functools.partial(build_sleep, home=place.home, seconds=0.2)
    points = {"i": list(range(runs))}

    fresh = Sweep(build, points, exp_id="fresh", results=place.results)
    fresh_made, fresh_latency, fresh_seen = first_start_latency(fresh, set())
    if fresh_made != runs:
        raise RuntimeError(f"the fresh sweep made {fresh_made} of {runs} runs")

    from nepi_lab.runner.sweep import read_record

    record = os.path.join(place.results, RESUMED)
    child = subprocess.Popen([sys.executable, os.path.abspath(__file__), CHILD_FLAG, "resume", place.results,
                              place.home, str(runs)], env=child_env(), stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60 + runs
        while True:
            with contextlib.suppress(OSError, ValueError):  # (a SweepError is a ValueError)
                current = read_record(record)
                if current is not None and sum(e["state"] == "done" for e in current["runs"]) >= runs // 2:
                    break
            if child.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the sweep to kill ended early or hung:\n{child.stdout.read().decode()}")
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        child.stdout.close()

    sweep = Sweep(build, points, exp_id=RESUMED, results=place.results)
    done = {(e["point"], e["repetition"]): fingerprint(sweep, e) for e in sweep.runs if e["state"] == "done"}
    running = sum(e["state"] == "running" for e in sweep.runs)
    made, latency, seen = first_start_latency(sweep, set(done))
    after = {(e["point"], e["repetition"]): e for e in sweep.runs}
    changed = sum(fingerprint(sweep, after[key]) != print_ for key, print_ in done.items())
    result = {"runs": runs, "done_before": len(done), "running_at_kill": running, "made": made,
              "missing": runs - len(done), "changed": changed, "done_after": sweep.counts()["done"],
              "abandoned": len(sweep.abandoned), "latency": latency, "seen": seen,
              "fresh_latency": fresh_latency, "fresh_seen": fresh_seen}
    result["cleanup"] = clean_killed(place, sweep)
    return result


def clean_killed(place: Place, sweep: Any) -> str:
    """What the killed child left: ``nepi-lab cleanup`` on this place's index of runs
    (``$NEPI_LAB_STATE``: only this benchmark's runs), then the killed run's cgroup
    folders if cleanup left them (empty: their processes have ended); says what it found."""
    from nepi_lab.resources.linux import _tracking

    out = subprocess.run([sys.executable, "-m", "nepi_lab.cli", "cleanup"], env=child_env(),
                         capture_output=True, text=True, timeout=120)
    said = " ".join((out.stdout + out.stderr).split())[:300] or "(nothing printed)"
    note = f"nepi-lab cleanup (exit {out.returncode}): {said}"
    base = _tracking.cgroup_base()
    left = []
    for entry in sweep.abandoned:
        run_id = os.path.basename(entry["run_dir"] or "")
        folder = os.path.join(base, "nepi_lab." + _tracking.run_key(sweep.exp_id, run_id).replace("/", "."))
        if base is None or not run_id or not os.path.isdir(folder):
            continue
        left.append(os.path.basename(folder))
        time.sleep(0.5)  # the killed run's `sleep 0.2` has ended: the cgroups are empty
        for sub in os.listdir(folder):
            if os.path.isdir(os.path.join(folder, sub)):
                with contextlib.suppress(OSError):
                    os.rmdir(os.path.join(folder, sub))
        with contextlib.suppress(OSError):
            os.rmdir(folder)
    if left:
        note += f"; cgroup folders it left, removed here: {', '.join(left)}"
    index = os.path.join(place.state, "runs")
    entries = os.listdir(index) if os.path.isdir(index) else []
    if entries:
        note += f"; index entries it left: {', '.join(entries)}"
    return note


# == driver =========================================================================


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="3 rounds in figure 1, fewer runs in 2 and 3, no settling (1.5 minutes)")
    parser.add_argument("--dir", default=tempfile.gettempdir(),
                        help="folder for figures 1 to 3 (default: the temp folder)")
    parser.add_argument("--tmpfs", default="/dev/shm",
                        help="second folder for figures 1 and 3, on a tmpfs (default /dev/shm; '' to skip)")
    parser.add_argument("--settle", type=float, default=None, metavar="SECONDS",
                        help="before figure 1 in --dir, wait at most this long for the file system to "
                             "settle (default 60, 0 with --quick: no wait)")
    args = parser.parse_args()
    quick = args.quick
    settle = args.settle if args.settle is not None else (0 if quick else 60)
    rounds = 3 if quick else 5
    dask_runs = 16 if quick else 40
    resume_runs = 10 if quick else 40
    places = [args.dir] + ([args.tmpfs] if args.tmpfs else [])

    import dask

    print(f"nepi_lab sweep benchmark ({'quick' if quick else 'full'}): Python {platform.python_version()} "
          f"on {platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, dask {dask.__version__}",
          flush=True)
    print(f"measuring {source_version()}; load average {os.getloadavg()[0]:.2f} (other work on the machine "
          f"skews the figures)")
    for where in places:
        print(f"files in {where}: {file_system(where)}")
    started = time.perf_counter()

    summary: list[list[str]] = []
    failed = False

    def row(figure: str, measured: str, baseline: str, ratio: str, target: str, ok: bool) -> None:
        nonlocal failed
        failed = failed or not ok
        summary.append([figure, measured, baseline, ratio, target, verdict(ok)])

    for where in places:
        progress(f"1. overhead per run in {where}: {rounds} rounds of a 200-run sweep and 200 runs by hand")
        with Place(where, "overhead") as place:
            r = overhead(place, 200, rounds, settle if where == args.dir else 0)
        per_run = (r["sweep"] - r["hand"]) / r["runs"]
        row(f"1. overhead, {r['runs']} `true` runs, {where} (median of {r['rounds']})",
            f"{r['sweep']:.2f} s sweep", f"{r['hand']:.2f} s by hand", f"{r['ratio']:.2f}x "
            f"({per_run * 1000:+.1f} ms/run)", "<= 1.2x", r["ratio"] <= 1.2)

    progress(f"2. scaling: {dask_runs} runs of `sleep 1` on 2 Dask workers, then sequential, in {args.dir}")
    with Place(args.dir, "dask") as place:
        r = scaling(place, dask_runs)
    ratio = r["dask"] / r["sequential"]
    row(f"2. Dask, 2 workers, {r['runs']} `sleep 1` runs", f"{r['dask']:.2f} s", f"{r['sequential']:.2f} s "
        f"sequential", f"{ratio:.2f}x", "<= 0.6x", ratio <= 0.6)

    for where in places:
        progress(f"3. resume in {where}: {resume_runs} runs of `sleep 0.2`, killed half-way")
        with Place(where, "resume") as place:
            r = resume(place, resume_runs)
        progress(f"{r['done_before']} done and {r['running_at_kill']} running at the kill; "
                 f"{r['abandoned']} abandoned; {r['done_after']}/{r['runs']} done after; first new run "
                 f"seen by a subscriber {r['seen'] * 1000:.0f} ms after run() "
                 f"(fresh: {r['fresh_seen'] * 1000:.0f} ms)")
        progress(r["cleanup"])
        exact = r["made"] == r["missing"] and r["changed"] == 0 and r["done_after"] == r["runs"]
        row(f"3. resume, runs made, {where}", f"{r['made']} made",
            f"{r['missing']} missing ({r['runs']} - {r['done_before']} done)",
            f"{r['changed']} done runs changed", "only the missing", exact)
        row(f"3. resume, run() -> first new run's start, {where}", f"{r['latency'] * 1000:.0f} ms",
            f"{r['fresh_latency'] * 1000:.0f} ms fresh sweep", f"{r['latency'] / r['fresh_latency']:.2f}x",
            "<= 1 s", r["latency"] <= 1.0)

    print()
    print(f"Summary (measured in {time.perf_counter() - started:.0f} s)")
    print_table(["figure", "measured", "baseline", "ratio", "target", "verdict"], summary)
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == CHILD_FLAG:
        {"resume": child_resume}[sys.argv[2]](*sys.argv[3:])
    else:
        sys.exit(main())
