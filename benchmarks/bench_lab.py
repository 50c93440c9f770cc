#!/usr/bin/env python
"""Benchmark of the lab layer: grading 100 students' run directories.

Usage::

    python benchmarks/bench_lab.py            # full run
    python benchmarks/bench_lab.py --quick    # fewer repetitions

One real run on 127.0.0.1 (a ping of 5 packets, an iperf3 client and server for 1 s,
an application that prints two lines, one that fails on purpose) is copied into
``submissions/student-NNN/<run dir>`` 100 times; then timed, best of several:

- ``lab.grade("submissions/*")`` with 8 checks (state, not failed, exit status, loss,
  RTT, throughput, trace contents, ordering): every run loaded, every check
  evaluated, the frame and the totals built.  Target: <= 5 s.
- baseline: the same 100 runs' frames loaded by hand, as a teacher would without the
  lab layer: ``load_run``, ``resources_frame``, ``events_frame``, and ``trace_frame``
  of the ping, the iperf3 client and the application.

Results are written under a ``tempfile.TemporaryDirectory``; traffic: 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import sys
import tempfile
import time

STUDENTS = 100
TARGET = 5.0  # seconds for grading STUDENTS run directories


def best(function, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def real_run(tmp: str) -> str:
    from nepi_lab import ExperimentController

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with ExperimentController(exp_id="bench-lab", local_dir=os.path.join(tmp, "results")) as ec:
        node = ec.register_resource("linux::Node", hostname="localhost", home=os.path.join(tmp, "home"))
        ping = ec.register_resource("linux::Ping", connectedTo=node, name="ping", target="127.0.0.1", count=5,
                                    interval=0.2)
        server = ec.register_resource("linux::Iperf3Server", connectedTo=node, name="server", port=port,
                                      oneOff=True)
        client = ec.register_resource("linux::Iperf3Client", connectedTo=node, name="client",
                                      server="127.0.0.1", port=port, duration=1, json=True)
        ec.register_condition(client, "START", server, "STARTED")
        hello = ec.register_resource("linux::Application", connectedTo=node, name="hello",
                                     command="echo hello; echo world")
        bad = ec.register_resource("linux::Application", connectedTo=node, name="bad", command="exit 3",
                                   critical=False)
        ec.deploy()
        ec.wait_finished([ping, server, client, hello, bad], timeout=60)
    return ec.run_dir


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    repeat = 2 if parser.parse_args().quick else 4

    import pandas as pd

    from nepi_lab import load_run
    from nepi_lab.lab import (
        ExitStatus,
        Lab,
        NotFailed,
        Order,
        Reachable,
        RttBound,
        State,
        Throughput,
        TraceContains,
    )

    for tool in ("ping", "iperf3"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed", file=sys.stderr)
            return 2
    print(f"python {platform.python_version()}, pandas {pd.__version__}, {os.cpu_count()} cores, "
          f"{platform.machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        run = real_run(tmp)
        submissions = os.path.join(tmp, "submissions")
        for i in range(STUDENTS):
            shutil.copytree(run, os.path.join(submissions, f"student-{i:03d}", os.path.basename(run)))
        folders = sorted(os.path.join(submissions, s, os.path.basename(run)) for s in os.listdir(submissions))
        guids = {}
        first = load_run(folders[0]).resources_frame()
        for name in ("ping", "client", "hello"):
            guids[name] = int(first.loc[first["name"] == name, "guid"].iloc[0])

        lab = Lab([State("ping"), NotFailed("hello"), ExitStatus("hello"), Reachable("ping"),
                   RttBound("ping", max_ms=50, statistic="p95"), Throughput("client", min_mbps=1),
                   TraceContains("hello", text="world"), Order("server", "client", "STARTED", "STARTED")])

        def by_hand() -> None:
            for folder in folders:
                one = load_run(folder)
                one.resources_frame()
                one.events_frame()
                one.trace_frame(guids["ping"], "stdout")
                one.trace_frame(guids["client"], "stdout")
                one.trace_frame(guids["hello"], "stdout")

        grades = lab.grade(os.path.join(submissions, "*"))
        assert len(grades.totals) == STUDENTS and grades.all_passed, grades.frame[~grades.frame["passed"]]
        baseline = best(by_hand, repeat)
        graded = best(lambda: lab.grade(os.path.join(submissions, "*")), repeat)
        ok = graded <= TARGET
        print(f"\ngrading {STUDENTS} run directories, {len(lab.checks)} checks each")
        print(f"   baseline: load each run's frames by hand        {baseline:7.3f} s")
        print(f"   lab.grade('submissions/*')                      {graded:7.3f} s   "
              f"({graded / baseline:.2f} x the baseline; target <= {TARGET:g} s: {'PASS' if ok else 'FAIL'})")
        print(f"   per run: {graded / STUDENTS * 1000:.1f} ms")
    print(f"\n{'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
