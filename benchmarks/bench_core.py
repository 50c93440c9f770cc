#!/usr/bin/env python
"""Benchmark of the core engine: controller overhead, condition and wait latency, threads.

Usage::

    python benchmarks/bench_core.py            # full run (10k and 100k resources)
    python benchmarks/bench_core.py --quick    # 10k only, fewer repetitions (< 20 s)
    python benchmarks/bench_core.py --profile  # also: cProfile of one 100k lifecycle

Every measurement runs in a fresh Python process (this script re-invoked with a
hidden ``--_child`` flag), so peak RSS (``ru_maxrss`` of that child) and thread
counts belong to that one measurement.  Each figure is printed beside a baseline
measured in the same run, on the same machine, in the same kind of child process,
and beside its target, with PASS/FAIL.

Figures
-------
1. Controller overhead: ``ExperimentController()``, register N instant resources,
   ``deploy()``, ``wait_finished()``, ``shutdown()``.  Baseline: N trivial
   coroutines run as tasks and gathered on a fresh event loop, in rounds interleaved
   with the lifecycle's (9 at 10k, 5 with ``--quick``, 3 at 100k); the figures are the
   medians (the ratio of the best runs is printed beside).  Beside the time:
   its ratio to the baseline (target <= 2x), and the memory per resource: the peak
   RSS of the N-resource child minus that of the same child with none, over N
   (target <= 1.2 KiB), beside the same figure for the bare tasks.
2. Condition latency: B has "START once A is STARTED, + 0s"; B's start time minus
   A's (``ec.get_start_time``).  Baseline: ``asyncio.Event.set()`` -> waiter wakes.
3. Wait latency: ``ec.wait_finished(app)`` called from the main thread returns how
   long after the FINISHED event.  Baseline: a ``run_coroutine_threadsafe`` future
   completed in a loop thread -> the blocked main thread wakes.
4. Threads: the most ``threading.active_count()`` seen by an event subscriber during
   the 10k and 100k lifecycles.  Baseline: the bare-asyncio child.
5. One by one: the lifecycle of figure 1 with one ``deploy(guid)`` and one
   ``release(guid)`` call per resource (a notebook's or a script's loop), per resource,
   at 3,000 (1,000 with ``--quick``) against 300 (100), medians of 3 interleaved rounds.
   Target: <= 1.5x (a call costs the same however many came before; writing the whole
   description at each made them O(n²): at 3,000, 1.27 ms per ``deploy(guid)`` and 1.57
   per ``release(guid)``).  For reference, figure 1's one ``deploy()`` and
   ``shutdown()`` at the larger size, per resource.
6. The first condition of a process: ``register_condition`` between two new resources,
   the first of a fresh process, against the median of the 200 after it.  Target: <= 1 ms
   (no import: its cycle check once imported networkx, 130-230 ms).

The resource types used are defined here (``bench::Instant``, ``bench::Sleeper``),
and every run writes its results under a ``tempfile.TemporaryDirectory``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from nepi_lab import ExperimentController, ResourceAction, ResourceManager, ResourceState

CHILD_FLAG = "--_child"
RESULT_MARK = "@@BENCH_RESULT@@ "
CHILD_TIMEOUT = 900  # seconds; a hung child is reported, not waited on forever

SLEEP_RUN = 0.2  # seconds the Sleeper's do_run takes (figure 3)


# == the resource types measured ===================================================


class BenchInstant(ResourceManager):
    """Does nothing, at once: what is left is the controller's own cost."""

    _rtype = "bench::Instant"
    _help = "Benchmark: finishes at once."

    async def do_run(self) -> None:
        return None


class BenchSleeper(ResourceManager):
    """Runs for SLEEP_RUN seconds, then finishes."""

    _rtype = "bench::Sleeper"
    _help = "Benchmark: sleeps, then finishes."

    async def do_run(self) -> None:
        await asyncio.sleep(SLEEP_RUN)


INSTANT = BenchInstant._rtype
SLEEPER = BenchSleeper._rtype


# == helpers used in the children ==================================================


def peak_rss_mb() -> float:
    """Peak resident set size of this process, in MiB."""
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB on Linux


def quantiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "median": statistics.median(ordered),
        "p90": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))],
        "max": ordered[-1],
        "min": ordered[0],
    }


# == the children: one measurement each ============================================


def child_lifecycle(n: int, subscribe: bool, one_by_one: bool = False) -> dict:
    """Figure 1 (and 4 with ``subscribe``): full lifecycle of n instant resources; figure
    5 with ``one_by_one``: deployed and released with one call per resource."""
    boundary_threads = [threading.active_count()]
    max_seen = [0]

    def sample(_event: object) -> None:
        count = threading.active_count()
        if count > max_seen[0]:
            max_seen[0] = count

    gc_time = [0.0, 0.0]  # seconds in the garbage collector; start of the current collection

    def gc_clock(phase: str, _info: dict) -> None:
        if phase == "start":
            gc_time[1] = time.perf_counter()
        else:
            gc_time[0] += time.perf_counter() - gc_time[1]

    gc.callbacks.append(gc_clock)
    with tempfile.TemporaryDirectory(prefix="bench_core-") as results:
        t0 = time.perf_counter()
        ec = ExperimentController(exp_id="bench-lifecycle", local_dir=results)
        t_created = time.perf_counter()
        boundary_threads.append(threading.active_count())
        if subscribe:
            ec.events.subscribe(sample)
            t_created_2 = time.perf_counter()  # the subscription is not the controller's cost
        else:
            t_created_2 = t_created
        register = ec.register_resource
        guids = [register(INSTANT) for _ in range(n)]
        t_registered = time.perf_counter()
        boundary_threads.append(threading.active_count())
        if one_by_one:
            for guid in guids:
                ec.deploy(guid)
        else:
            ec.deploy()
        boundary_threads.append(threading.active_count())
        ec.wait_finished()
        t_finished = time.perf_counter()
        boundary_threads.append(threading.active_count())
        # check (not timed): every resource FINISHED, nothing failed
        finished = sum(1 for g in ec.resources if ec.state(g) == ResourceState.FINISHED)
        failures = len(ec.failures)
        events = len(ec.events)
        t_shutdown = time.perf_counter()
        if one_by_one:
            for guid in guids:
                ec.release(guid)
        ec.shutdown()
        t_end = time.perf_counter()
        boundary_threads.append(threading.active_count())
    gc.callbacks.remove(gc_clock)
    return {
        "n": n,
        "construct": t_created - t0,
        "register": t_registered - t_created_2,
        "deploy_to_finished": t_finished - t_registered,
        "shutdown": t_end - t_shutdown,
        "total": (t_created - t0) + (t_finished - t_created_2) + (t_end - t_shutdown),
        "rss_mb": peak_rss_mb(),
        "threads_boundaries": max(boundary_threads),
        "threads_subscriber": max_seen[0] if subscribe else None,
        "finished": finished,
        "failures": failures,
        "events": events,
        "gc": gc_time[0],
    }


def child_bare_tasks(n: int) -> dict:
    """Baseline of figure 1: n trivial coroutines as tasks, gathered, on a fresh loop."""

    async def trivial() -> None:
        return None

    async def main() -> None:
        create_task = asyncio.ensure_future
        await asyncio.gather(*[create_task(trivial()) for _ in range(n)])

    t0 = time.perf_counter()
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    total = time.perf_counter() - t0
    return {"n": n, "total": total, "rss_mb": peak_rss_mb(), "threads": threading.active_count()}


def child_first_condition(later: int) -> dict:
    """Figure 6: the first ``register_condition`` of a process, and the median of the
    ``later`` ones after it (each between two new resources)."""
    with tempfile.TemporaryDirectory(prefix="bench_core-") as results:
        ec = ExperimentController(exp_id="bench-first-condition", local_dir=results)
        times = []
        for _ in range(later + 1):
            a, b = ec.register_resource(INSTANT), ec.register_resource(INSTANT)
            start = time.perf_counter()
            ec.register_condition(b, ResourceAction.START, a, ResourceState.STARTED, "0s")
            times.append(time.perf_counter() - start)
        ec.shutdown()
    return {"first": times[0], "later": statistics.median(times[1:]),
            "networkx": "networkx" in sys.modules}


def child_condition(pairs: int, concurrent: bool) -> dict:
    """Figure 2: B START after A STARTED + 0s; latency = B's start - A's start."""
    with tempfile.TemporaryDirectory(prefix="bench_core-") as results:
        ec = ExperimentController(exp_id="bench-condition", local_dir=results)
        made = []
        for _ in range(pairs):
            a = ec.register_resource(INSTANT)
            b = ec.register_resource(INSTANT)
            ec.register_condition(b, ResourceAction.START, a, ResourceState.STARTED, "0s")
            made.append((a, b))
            if not concurrent:  # one pair at a time: nothing else in the loop
                ec.deploy([a, b])
                ec.wait_finished([a, b], timeout=30)
        if concurrent:  # every pair in one deployment
            ec.deploy()
            ec.wait_finished(timeout=60)
        latencies = [(ec.get_start_time(b) - ec.get_start_time(a)).total_seconds() for a, b in made]
        failures = len(ec.failures)
        ec.shutdown()
    out = quantiles(latencies)
    out.update(failures=failures, negative=sum(1 for x in latencies if x < 0))
    return out


def child_event_wake(reps: int) -> dict:
    """Baseline of figure 2: asyncio.Event.set() -> the waiting task runs, in a bare loop."""

    async def main() -> list[float]:
        latencies = []
        for _ in range(reps):
            event = asyncio.Event()
            woke: list[float] = []

            async def waiter(event: asyncio.Event = event, woke: list[float] = woke) -> None:
                await event.wait()
                woke.append(time.perf_counter())

            task = asyncio.ensure_future(waiter())
            await asyncio.sleep(0)  # the waiter is now blocked on the event
            t_set = time.perf_counter()
            event.set()
            await task
            latencies.append(woke[0] - t_set)
        return latencies

    loop = asyncio.new_event_loop()
    try:
        latencies = loop.run_until_complete(main())
    finally:
        loop.close()
    return quantiles(latencies)


def child_wait(reps: int) -> dict:
    """Figure 3: wait_finished(app) from the main thread returns how long after FINISHED."""
    latencies = []
    with tempfile.TemporaryDirectory(prefix="bench_core-") as results:
        ec = ExperimentController(exp_id="bench-wait", local_dir=results)
        clock_offset_0 = time.time() - time.monotonic()
        for _ in range(reps):
            app = ec.register_resource(SLEEPER)
            ec.deploy(app)
            ec.wait_finished(app, timeout=30)
            t_return = time.time()
            finished = [e for e in ec.events.for_guid(app) if e.new == ResourceState.FINISHED]
            if not finished:
                raise RuntimeError(f"wait_finished({app}) returned before FINISHED: {ec.explain(app)}")
            latencies.append(t_return - finished[-1].time)
        clock_drift = (time.time() - time.monotonic()) - clock_offset_0
        failures = len(ec.failures)
        ec.shutdown()
    out = quantiles(latencies)
    out.update(failures=failures, clock_drift=clock_drift)
    return out


def child_future_wake(reps: int) -> dict:
    """Baseline of figure 3: a coroutine in a loop thread completes a concurrent future
    at a known time; the main thread blocked in ``result()`` wakes how long after."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="baseline-loop", daemon=True)
    thread.start()

    async def work() -> float:
        await asyncio.sleep(0.05)
        return time.time()  # the coroutine returns: the future is set right after

    latencies = []
    try:
        for _ in range(reps):
            future = asyncio.run_coroutine_threadsafe(work(), loop)
            t_set = future.result(timeout=30)
            latencies.append(time.time() - t_set)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
    return quantiles(latencies)


def child_profile(n: int, top: int) -> dict:
    """cProfile of one n-resource lifecycle; the loop thread's and the main thread's."""
    import cProfile
    import io
    import pstats

    per_thread = sys.version_info < (3, 12)  # from 3.12 cProfile sees every thread
    main_prof = cProfile.Profile()
    loop_prof = cProfile.Profile() if per_thread else None
    with tempfile.TemporaryDirectory(prefix="bench_core-") as results:
        t0 = time.perf_counter()
        main_prof.enable()
        ec = ExperimentController(exp_id="bench-profile", local_dir=results)
        if loop_prof is not None:
            asyncio.run_coroutine_threadsafe(_enable_in_loop(loop_prof), ec.loop).result()
        for _ in range(n):
            ec.register_resource(INSTANT)
        ec.deploy()
        ec.wait_finished()
        ec.shutdown()  # the loop thread ends with its profiler still on; stats are flushed below
        main_prof.disable()
        total = time.perf_counter() - t0

    def table(prof: cProfile.Profile, title: str) -> str:
        buf = io.StringIO()
        buf.write(f"--- {title} ---\n")
        pstats.Stats(prof, stream=buf).strip_dirs().sort_stats("tottime").print_stats(top)
        return buf.getvalue()

    text = []
    if loop_prof is not None:
        loop_prof.create_stats()
        text.append(table(loop_prof, f"event-loop thread, top {top} by tottime"))
        text.append(table(main_prof, f"main thread (register, blocking calls), top {top} by tottime"))
    else:
        text.append(table(main_prof, f"all threads, top {top} by tottime"))
    return {"n": n, "total_profiled": total, "text": "\n".join(text)}


async def _enable_in_loop(prof) -> None:
    prof.enable()


CHILDREN = {
    "lifecycle": child_lifecycle,
    "bare_tasks": child_bare_tasks,
    "condition": child_condition,
    "first_condition": child_first_condition,
    "event_wake": child_event_wake,
    "wait": child_wait,
    "future_wake": child_future_wake,
    "profile": child_profile,
}


def child_main(spec_json: str) -> None:
    spec = json.loads(spec_json)
    kind = spec.pop("kind")
    result = CHILDREN[kind](**spec)
    sys.stdout.write(RESULT_MARK + json.dumps(result) + "\n")
    sys.stdout.flush()


# == the parent: runs the children, prints the table ===============================


def run_child(kind: str, **params: object) -> dict:
    """Run one measurement in a fresh interpreter; return its result dict."""
    spec = json.dumps({"kind": kind, **params})
    cmd = [sys.executable, os.path.abspath(__file__), CHILD_FLAG, spec]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=CHILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise SystemExit(f"benchmark child {kind} {params} took more than {CHILD_TIMEOUT} s") from None
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_MARK):
            if proc.stderr.strip():
                sys.stderr.write(f"[{kind}] stderr:\n{proc.stderr}")
            return json.loads(line[len(RESULT_MARK):])
    raise SystemExit(
        f"benchmark child {kind} {params} failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    )


def progress(msg: str) -> None:
    print(f"  .. {msg}", flush=True)


def best(runs: list[dict]) -> dict:
    return min(runs, key=lambda r: r["total"])


def median_run(runs: list[dict]) -> dict:
    """The run with the median total (the lower middle one of an even number)."""
    return sorted(runs, key=lambda r: r["total"])[(len(runs) - 1) // 2]


def fmt_s(x: float) -> str:
    return f"{x:.3f} s"


def fmt_ms(x: float) -> str:
    return f"{x * 1000:.3f} ms"


def verdict(ok: bool | None) -> str:
    return "info" if ok is None else ("PASS" if ok else "FAIL")


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    print(line)
    print("-+-".join("-" * w for w in widths))
    for r in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


def source_version() -> str:
    """The nepi_lab commit measured, and whether its working tree had changes."""
    import nepi_lab

    package = os.path.dirname(os.path.abspath(nepi_lab.__file__))
    try:
        head = subprocess.run(["git", "-C", package, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", package, "status", "--porcelain", "--", "."],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        head, dirty = "", ""
    if not head:
        return f"nepi_lab {nepi_lab.__version__}"
    return f"nepi_lab {nepi_lab.__version__} at {head}" + (" + uncommitted changes" if dirty else "")


def load_average() -> str:
    """The 1, 5 and 15-minute load averages, as ``uptime`` prints them."""
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10k only, fewer repetitions (< 20 s)")
    parser.add_argument("--profile", action="store_true",
                        help="also profile one 100k lifecycle (10k with --quick) and print the top 25")
    args = parser.parse_args()

    quick = args.quick
    sizes = [10_000] if quick else [10_000, 100_000]
    # interleaved rounds (lifecycle, then bare tasks), figure 1 on their medians
    reps = {10_000: 5 if quick else 9, 100_000: 3}
    pairs = 50 if quick else 200
    wake_reps = 200 if quick else 1000
    wait_reps = 10 if quick else 50
    future_reps = 20 if quick else 100

    print(f"nepi_lab core benchmark ({'quick' if quick else 'full'}) - Python {platform.python_version()} "
          f"on {platform.system()} {platform.machine()}, {os.cpu_count()} CPUs; "
          f"each measurement in a fresh process", flush=True)
    print(f"measuring {source_version()}; load average {load_average()}", flush=True)
    started = time.perf_counter()

    # -- 1 and 4: lifecycle, baseline, threads ---------------------------------------
    life: dict[int, list[dict]] = {}
    bare: dict[int, list[dict]] = {}
    threads: dict[int, dict] = {}
    for n in sizes:
        life[n], bare[n] = [], []
        for i in range(reps[n]):
            progress(f"lifecycle of {n:,} instant resources, run {i + 1}/{reps[n]}")
            life[n].append(run_child("lifecycle", n=n, subscribe=False))
            progress(f"baseline: {n:,} bare asyncio tasks, run {i + 1}/{reps[n]}")
            bare[n].append(run_child("bare_tasks", n=n))
        progress(f"threads: lifecycle of {n:,} with a sampling subscriber")
        threads[n] = run_child("lifecycle", n=n, subscribe=True)

    progress("memory baselines: the lifecycle child and the bare-tasks child with N = 0")
    life_zero = run_child("lifecycle", n=0, subscribe=False)
    bare_zero = run_child("bare_tasks", n=0)

    # -- 5: deploys one by one -----------------------------------------------------------
    one_sizes = (100, 1_000) if quick else (300, 3_000)
    one: dict[int, list[dict]] = {k: [] for k in one_sizes}
    bulk: list[dict] = []
    for i in range(3):
        for k in one_sizes:
            progress(f"one by one: {k:,} instant resources deployed and released, run {i + 1}/3")
            one[k].append(run_child("lifecycle", n=k, subscribe=False, one_by_one=True))
        progress(f"reference: {one_sizes[1]:,} instant resources in one deploy(), run {i + 1}/3")
        bulk.append(run_child("lifecycle", n=one_sizes[1], subscribe=False))

    # -- 6: the first condition of a process ---------------------------------------------
    progress("the first register_condition of a process, 5 fresh processes")
    firsts = [run_child("first_condition", later=200) for _ in range(5)]

    # -- 2: condition latency ----------------------------------------------------------
    progress(f"condition latency: {pairs} pairs, one at a time")
    cond_seq = run_child("condition", pairs=pairs, concurrent=False)
    progress(f"condition latency: {pairs} pairs, deployed together")
    cond_all = run_child("condition", pairs=pairs, concurrent=True)
    progress(f"baseline: asyncio.Event wake, {wake_reps} times")
    event_wake = run_child("event_wake", reps=wake_reps)

    # -- 3: wait latency -------------------------------------------------------------
    progress(f"wait latency: wait_finished on a {SLEEP_RUN} s app, {wait_reps} times")
    wait = run_child("wait", reps=wait_reps)
    progress(f"baseline: cross-thread future wake, {future_reps} times")
    future_wake = run_child("future_wake", reps=future_reps)

    # -- details -------------------------------------------------------------------------
    print()
    print("Per-phase times of each lifecycle run (seconds; peak RSS of that process)")
    rows = []
    for n in sizes:
        for i, r in enumerate(life[n]):
            rows.append([f"{n:,}", f"run {i + 1}", f"{r['construct']:.3f}", f"{r['register']:.3f}",
                         f"{r['deploy_to_finished']:.3f}", f"{r['shutdown']:.3f}", f"{r['total']:.3f}",
                         f"{r['gc']:.3f}", f"{r['rss_mb']:.1f} MB", str(r["threads_boundaries"]),
                         f"{r['finished']:,}/{n:,}", str(r["failures"])])
        r = threads[n]
        rows.append([f"{n:,}", "subscribed", f"{r['construct']:.3f}", f"{r['register']:.3f}",
                     f"{r['deploy_to_finished']:.3f}", f"{r['shutdown']:.3f}", f"{r['total']:.3f}",
                     f"{r['gc']:.3f}", f"{r['rss_mb']:.1f} MB", str(r["threads_subscriber"]),
                     f"{r['finished']:,}/{n:,}", str(r["failures"])])
        for i, b in enumerate(bare[n]):
            rows.append([f"{n:,}", f"bare tasks {i + 1}", "", "", "", "", f"{b['total']:.3f}", "",
                         f"{b['rss_mb']:.1f} MB", str(b["threads"]), "", ""])
    print_table(["N", "run", "construct", "register", "deploy->finished", "shutdown", "total",
                 "of which gc", "peak RSS", "threads", "FINISHED", "failures"], rows)
    print("(\"subscribed\": the thread-count run, with a subscriber called on every event; "
          "its times include that subscriber.  Totals exclude the check that every resource finished; "
          "\"of which gc\": time in the garbage collector, any thread.)")

    print()
    print("Latency distributions")
    lat_rows = []
    for name, d in (("condition, pairs one at a time", cond_seq),
                    ("condition, pairs deployed together", cond_all),
                    ("baseline asyncio.Event wake", event_wake),
                    ("wait_finished return after FINISHED", wait),
                    ("baseline cross-thread future wake", future_wake)):
        lat_rows.append([name, str(d["n"]), fmt_ms(d["min"]), fmt_ms(d["median"]), fmt_ms(d["p90"]),
                         fmt_ms(d["max"])])
    print_table(["measurement", "n", "min", "median", "p90", "max"], lat_rows)
    notes = []
    for name, d in (("condition (one at a time)", cond_seq), ("condition (together)", cond_all),
                    ("wait", wait)):
        if d.get("failures"):
            notes.append(f"{name}: {d['failures']} resource failures recorded")
    if cond_seq.get("negative") or cond_all.get("negative"):
        notes.append("some B started before its A: the condition was not honoured")
    if abs(wait.get("clock_drift", 0.0)) > 0.0005:
        notes.append(f"wall clock drifted {wait['clock_drift'] * 1000:.3f} ms against the monotonic "
                     f"clock during the wait measurement (it skews that figure)")
    for note in notes:
        print("NOTE:", note)

    # -- the summary table -------------------------------------------------------------
    summary = []
    failed = False

    def row(figure: str, measured: str, baseline: str, target: str, ok: bool | None) -> None:
        nonlocal failed
        failed = failed or ok is False
        summary.append([figure, measured, baseline, target, verdict(ok)])

    targets_s = {10_000: 0.3, 100_000: 3.0}
    for n in sizes:
        m, b = median_run(life[n]), median_run(bare[n])
        complete = all(r["finished"] == n and r["failures"] == 0 for r in life[n])
        label = f"1. overhead, {n:,} resources (median of {len(life[n])})"
        row(label, fmt_s(m["total"]) + ("" if complete else " (INCOMPLETE)"),
            f"{fmt_s(b['total'])} bare tasks ({m['total'] / b['total']:.0f}x)",
            f"<= {targets_s[n]:g} s", complete and m["total"] <= targets_s[n])
    for n in sizes:
        m, b = median_run(life[n]), median_run(bare[n])
        ratio = m["total"] / b["total"]
        low = best(life[n])["total"] / best(bare[n])["total"]
        row(f"1. ratio to bare tasks, {n:,} resources (medians of {len(life[n])} interleaved rounds)",
            f"{ratio:.2f}x (best of each: {low:.2f}x)", f"{fmt_s(b['total'])} bare tasks", "<= 2x",
            ratio <= 2.0)
    for n in sizes:
        per = (max(r["rss_mb"] for r in life[n]) - life_zero["rss_mb"]) * 1024 * 1024 / n
        base_per = (max(r["rss_mb"] for r in bare[n]) - bare_zero["rss_mb"]) * 1024 * 1024 / n
        row(f"1. memory per resource, {n:,} (peak RSS - RSS with none, worst run)",
            f"{per / 1024:.2f} KiB", f"{base_per / 1024:.2f} KiB per bare task", "<= 1.2 KiB",
            per <= 1.2 * 1024)
    if 100_000 in sizes:
        peak = max(r["rss_mb"] for r in life[100_000])
        base_peak = max(r["rss_mb"] for r in bare[100_000])
        row("1. peak RSS, 100,000 resources (worst run)", f"{peak:.1f} MB", f"{base_peak:.1f} MB bare tasks",
            "<= 200 MB", peak <= 200)
    else:
        peak = max(r["rss_mb"] for r in life[10_000])
        base_peak = max(r["rss_mb"] for r in bare[10_000])
        row("1. peak RSS, 10,000 resources (worst run)", f"{peak:.1f} MB", f"{base_peak:.1f} MB bare tasks",
            "(200 MB at 100k)", None)
    for name, d in (("one at a time", cond_seq), ("deployed together", cond_all)):
        ok_n = d["failures"] == 0 and d["negative"] == 0
        row(f"2. condition latency, median ({d['n']} pairs, {name})", fmt_ms(d["median"]),
            f"{fmt_ms(event_wake['median'])} Event wake", "<= 5 ms", ok_n and d["median"] <= 0.005)
        row(f"2. condition latency, max ({d['n']} pairs, {name})", fmt_ms(d["max"]),
            f"{fmt_ms(event_wake['max'])} Event wake", "<= 5 ms", ok_n and d["max"] <= 0.005)
    row(f"3. wait_finished latency, median ({wait['n']} waits)", fmt_ms(wait["median"]),
        f"{fmt_ms(future_wake['median'])} future wake", "<= 5 ms", wait["median"] <= 0.005)
    row(f"3. wait_finished latency, max ({wait['n']} waits)", fmt_ms(wait["max"]),
        f"{fmt_ms(future_wake['max'])} future wake", "<= 5 ms", wait["max"] <= 0.005)
    small, large = one_sizes
    per_small = median_run(one[small])["total"] / small
    per_large = median_run(one[large])["total"] / large
    complete = all(r["finished"] == r["n"] and r["failures"] == 0 for k in one_sizes for r in one[k])
    row(f"5. deploy(guid), release(guid) one by one, {large:,} resources, per resource (medians of 3)",
        f"{per_large * 1e6:.0f} us" + ("" if complete else " (INCOMPLETE)"),
        f"{per_small * 1e6:.0f} us at {small:,} ({per_large / per_small:.2f}x); one deploy() of "
        f"{large:,}: {median_run(bulk)['total'] / large * 1e6:.0f} us", "<= 1.5x",
        complete and per_large <= 1.5 * per_small)
    first = statistics.median(r["first"] for r in firsts)
    later = statistics.median(r["later"] for r in firsts)
    imported = any(r["networkx"] for r in firsts)
    row("6. the first register_condition of a process (median of 5 processes)",
        fmt_ms(first) + (" (imported networkx)" if imported else ""),
        f"{fmt_ms(later)} each later one ({first / later:.0f}x)", "<= 1 ms", first <= 0.001)
    for n in sizes:
        t = threads[n]["threads_subscriber"]
        base = bare[n][0]["threads"]
        row(f"4. max threads during {n:,} lifecycle", str(t), f"{base} bare asyncio", "<= 4", t <= 4)

    print()
    print(f"Summary (measured in {time.perf_counter() - started:.1f} s; load average now {load_average()}: "
          f"other work on the machine slows the lifecycle and the baseline alike, not always equally)")
    print_table(["figure", "measured", "baseline", "target", "verdict"], summary)

    if args.profile:
        n = 10_000 if quick else 100_000
        print()
        print(f"Profile of one {n:,}-resource lifecycle (cProfile; its total includes profiling overhead)",
              flush=True)
        prof = run_child("profile", n=n, top=25)
        print(f"profiled total: {prof['total_profiled']:.3f} s")
        print(prof["text"])
    elif failed:
        print()
        print("Some targets fail: run with --profile for the top 25 functions by own time.")
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == CHILD_FLAG:
        child_main(sys.argv[2])
    else:
        sys.exit(main())
