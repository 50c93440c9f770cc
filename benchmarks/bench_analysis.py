#!/usr/bin/env python
"""Benchmark of the analysis layer: parsing a big ping trace, reading a big trace.

Usage::

    python benchmarks/bench_analysis.py            # full run
    python benchmarks/bench_analysis.py --quick    # fewer repetitions

Every figure is printed beside baselines measured in the same run on the same file,
and beside its target, with PASS/FAIL.  Each is the best of several repetitions.

Figures
-------
1. 1,000,000 lines of ``ping -D`` output -> DataFrame.  The output goes through a
   real run (a ``linux::Application`` that ``cat``s it, so it is collected into the
   run directory like any trace), then ``trace_frame(load_run(dir), app, "stdout",
   parser="ping")`` is timed: reading the file, parsing, adding the identity columns.
   Also timed: ``parse_ping`` on the bytes alone.  Baselines: ``pandas.read_csv`` of
   the same file (space-separated, no header) and just reading its lines.
   Target: <= 1.5 s.
2. A 10 MiB trace read in ALL mode through ``ec.trace(guid, "stdout")`` of a
   finished application, against ``open(path).read()`` of the same file (text
   mode, as a user would; the binary read is shown too).
   Target: <= 1.5 x the plain read.

Results are written under a ``tempfile.TemporaryDirectory``; traffic: none.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time

LINES = 1_000_000
TRACE_BYTES = 10 * 1024 * 1024
PARSE_TARGET = 1.5  # seconds
READ_TARGET = 1.5  # x the plain read


def best(function, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def ping_output(lines: int) -> str:
    """``ping -D -c N`` output with N replies, shaped like iputils' own."""
    reply = "[{:.6f}] 64 bytes from 127.0.0.1: icmp_seq={} ttl=64 time={:.3f} ms\n"
    start = 1_700_000_000.0
    body = "".join(reply.format(start + i * 0.2, i + 1, 0.02 + (i % 97) / 1000) for i in range(lines))
    return ("PING 127.0.0.1 (127.0.0.1) 56(84) bytes of data.\n" + body +
            "\n--- 127.0.0.1 ping statistics ---\n"
            f"{lines} packets transmitted, {lines} received, 0% packet loss, time {lines * 200}ms\n"
            "rtt min/avg/max/mdev = 0.020/0.068/0.116/0.028 ms\n")


def run_application(ec, command: str) -> int:
    node = ec.register_resource("linux::Node", hostname="localhost", home=os.path.join(ec.local_dir, "home"))
    app = ec.register_resource("linux::Application", connectedTo=node, command=command)
    ec.deploy()
    ec.wait_finished(app, timeout=120)
    return app


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    repeat = 3 if parser.parse_args().quick else 5

    import pandas as pd

    from nepi_lab import ExperimentController, load_run, trace_frame
    from nepi_lab.analysis import parse_ping

    print(f"python {platform.python_version()}, pandas {pd.__version__}, {os.cpu_count()} cores, "
          f"{platform.machine()}")
    verdicts = []
    with tempfile.TemporaryDirectory() as tmp:
        # -- 1. one million ping lines ------------------------------------------------
        source = os.path.join(tmp, "ping.txt")
        with open(source, "w") as f:
            f.write(ping_output(LINES))
        with ExperimentController(exp_id="bench-analysis", local_dir=tmp) as ec:
            app = run_application(ec, f"cat {source}")
        run = load_run(ec.run_dir)
        path = os.path.join(run.resource_dir(app), "stdout")
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            raw = f.read()

        def read_lines() -> None:
            with open(path) as f:
                f.read().splitlines()

        frame = trace_frame(run, app, "stdout", parser="ping")
        assert len(frame) == LINES and frame.attrs["malformed"] == 0, frame.attrs
        read_csv = best(lambda: pd.read_csv(path, sep=" ", header=None, skiprows=1, nrows=LINES), repeat)
        lines = best(read_lines, repeat)
        parse = best(lambda: parse_ping(raw), repeat)
        end_to_end = best(lambda: trace_frame(run, app, "stdout", parser="ping"), repeat)
        ok = end_to_end <= PARSE_TARGET
        verdicts.append(ok)
        print(f"\n1. {LINES:,} lines of ping output ({size / 2**20:.1f} MiB) -> DataFrame")
        print(f"   baseline: pandas.read_csv of the file        {read_csv:7.3f} s")
        print(f"   baseline: read its lines (splitlines)        {lines:7.3f} s")
        print(f"   parse_ping(bytes)                            {parse:7.3f} s")
        print(f"   trace_frame(run, app, 'stdout', 'ping')      {end_to_end:7.3f} s   "
              f"({end_to_end / read_csv:.2f} x read_csv); target <= {PARSE_TARGET} s: "
              f"{'PASS' if ok else 'FAIL'}")

        # -- 2. a 10 MiB trace through ec.trace ------------------------------------
        with ExperimentController(exp_id="bench-trace", local_dir=tmp) as ec:
            line = "a trace line of some sixty characters, as tools print them.."
            count = TRACE_BYTES // (len(line) + 1)
            app = run_application(ec, f"yes '{line}' | head -n {count}")
            path = ec.trace(app, "stdout", attr="path")
            size = os.path.getsize(path)
            content = ec.trace(app, "stdout")
            assert isinstance(content, str) and len(content) == size

            def plain() -> None:
                with open(path) as f:
                    f.read()

            def binary() -> None:
                with open(path, "rb") as f:
                    f.read()

            baseline = best(plain, repeat * 2)
            raw_read = best(binary, repeat * 2)
            through = best(lambda: ec.trace(app, "stdout"), repeat * 2)
        ratio = through / baseline
        ok = ratio <= READ_TARGET
        verdicts.append(ok)
        print(f"\n2. a {size / 2**20:.1f} MiB trace read whole")
        print(f"   baseline: open(path).read()                  {baseline * 1000:7.1f} ms")
        print(f"   baseline: open(path, 'rb').read() (no decode) {raw_read * 1000:6.1f} ms")
        print(f"   ec.trace(app, 'stdout')  (ALL mode)          {through * 1000:7.1f} ms   "
              f"({ratio:.2f} x); target <= {READ_TARGET} x: {'PASS' if ok else 'FAIL'}")
    print(f"\n{'PASS' if all(verdicts) else 'FAIL'}")
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
