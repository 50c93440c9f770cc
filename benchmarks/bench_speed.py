#!/usr/bin/env python
"""Every speed figure of nepi_lab in one command: the benchmarks that measure the cost a
user waits for, each against its baseline measured in the same run.

Usage::

    python benchmarks/bench_speed.py            # all of them (about 12 minutes)
    python benchmarks/bench_speed.py --quick    # fewer rounds (about 5 minutes)
    python benchmarks/bench_speed.py --log F    # also keep every script's whole output in F

It runs, one after the other (each in a process of its own, so that every "first"
figure is a fresh interpreter's):

- ``bench_import.py``: ``import nepi_lab``;
- ``bench_linux.py --dir <temp folder>``: the first application, ten, a one-app script's
  whole process, 100 and 1,000 applications, 100 and 1,000 nodes, ``ec.state`` and
  ``ec.trace(SIZE)``, with
  their files in the temporary folder (on this VM ``/tmp``: ext4 without a journal);
- ``bench_linux.py --dir /dev/shm``: the same on a tmpfs (skipped where there is none);
- ``bench_core.py``: 10,000 and 100,000 resources against as many bare asyncio tasks,
  memory per resource;
- ``bench_ssh.py --dir <temp folder>`` and ``--dir /dev/shm``: per command, 100
  applications and a fleet of 50 sshds over SSH against bare asyncssh, the applications'
  files in each place (needs root and OpenSSH's sshd: it makes a throw-away user;
  skipped, saying so, otherwise).

Each script's output is printed as it comes; at the end, every line that carries a
verdict (PASS or FAIL) is printed again under its script's name, and the exit status
is 1 if any figure failed (2 if a script could not run).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
VERDICT = re.compile(r"\b(PASS|FAIL)\b")


def runs(quick: bool) -> list[tuple[str, list[str], str | None]]:
    """(title, command, reason to skip it or None), in order."""
    extra = ["--quick"] if quick else []
    shm = "/dev/shm"
    no_tmpfs = None if os.path.isdir(shm) and os.access(shm, os.W_OK) else f"{shm} is not a writable tmpfs"
    no_ssh = None
    if os.geteuid() != 0:
        no_ssh = "needs root (it makes a throw-away user for its sshd)"
    elif not (shutil.which("sshd") or os.path.exists("/usr/sbin/sshd")):
        no_ssh = "OpenSSH's sshd is not installed (apt-get install openssh-server)"
    tmp = tempfile.gettempdir()
    return [
        ("import", ["bench_import.py"], None),
        (f"linux, files in {tmp}", ["bench_linux.py", *extra, "--dir", tmp], None),
        (f"linux, files on tmpfs ({shm})", ["bench_linux.py", *extra, "--dir", shm], no_tmpfs),
        ("core", ["bench_core.py", *extra], None),
        (f"ssh, files in {tmp}", ["bench_ssh.py", *extra, "--dir", tmp], no_ssh),
        (f"ssh, files on tmpfs ({shm})", ["bench_ssh.py", *extra, "--dir", shm], no_ssh or no_tmpfs),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds in every script")
    parser.add_argument("--log", help="also write every script's whole output to this file")
    args = parser.parse_args()
    log = open(args.log, "w", encoding="utf-8") if args.log else None  # noqa: SIM115 - closed below
    verdicts: list[tuple[str, str]] = []
    status = 0
    started = time.perf_counter()
    try:
        for title, command, skip in runs(args.quick):
            banner = f"== {title}: python benchmarks/{' '.join(command)}"
            print(banner, flush=True)
            if log:
                log.write(banner + "\n")
            if skip:
                print(f"   skipped: {skip}\n", flush=True)
                verdicts.append((title, f"skipped: {skip}"))
                continue
            process = subprocess.Popen([sys.executable, os.path.join(HERE, command[0]), *command[1:]],
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                       bufsize=1)
            assert process.stdout is not None
            for line in process.stdout:
                sys.stdout.write(line)
                sys.stdout.flush()
                if log:
                    log.write(line)
                if VERDICT.search(line):
                    verdicts.append((title, line.rstrip()))
            code = process.wait()
            if code not in (0, 1):  # 1: a figure missed its target, said in its output
                verdicts.append((title, f"FAIL: the script ended with status {code}"))
                status = 2
            print(flush=True)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if log:
            log.close()
    print(f"== every verdict ({time.perf_counter() - started:.0f} s)")
    width = max((len(title) for title, _ in verdicts), default=0)
    for title, line in verdicts:
        print(f"{title.ljust(width)} | {line.strip()}")
    if status == 0 and any(VERDICT.search(line) and "FAIL" in line for _, line in verdicts):
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
