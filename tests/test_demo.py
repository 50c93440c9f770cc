"""The README's first command: ``nepi-lab demo`` runs a real experiment and exits 0."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys


def test_demo_runs_a_real_experiment(tmp_path):
    results = tmp_path / "results"
    scratch = tmp_path / "tmp"  # the demo's temporary "remote" home goes here
    scratch.mkdir()
    proc = subprocess.run([sys.executable, "-m", "nepi_lab.cli", "demo", "--results", str(results)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={**os.environ, "TMPDIR": str(scratch)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    rows = re.findall(r"^(\d+)\s+(node|echo server|client \d|fails on purpose)\s+(linux::\w+)\s+(\w+)",
                      out, re.M)
    assert [(name, rtype, state) for _, name, rtype, state in rows] == [
        ("node", "linux::Node", "STOPPED"), ("echo server", "linux::Application", "FINISHED"),
        ("client 1", "linux::Application", "FINISHED"), ("client 2", "linux::Application", "FINISHED"),
        ("client 3", "linux::Application", "FINISHED"), ("fails on purpose", "linux::Application", "FAILED")]
    # a node runs while its applications do; the release stops it (README, "Semantics")
    assert "the node ran while its applications did (STARTED); the release stopped it: STOPPED" in out
    assert "sent client-2 got CLIENT-2" in out
    assert "exited with status 3; stderr ends with: this application fails on purpose (non-critical)" in out
    gap = float(re.search(r"client 1 started ([\d.]+) ms after the server", out).group(1))
    assert 300 <= gap < 400
    run_dir = re.search(r"^run directory: (.+)$", out, re.M).group(1)
    assert run_dir.startswith(str(results))
    with open(os.path.join(run_dir, "2-linux.Application", "stdout")) as f:
        served = f.read()
    assert served.count("served client-") == 3 and "done after 3 clients" in served
    with open(os.path.join(run_dir, "events.jsonl")) as f:
        last = {}
        for event in map(json.loads, f):
            last[event["guid"]] = event["to"]
    assert set(last.values()) == {"RELEASED"}  # nothing left running
    assert os.listdir(scratch) == []  # its temporary home is removed
    # it ends by saying how to read the run again and where the tutorials are
    next_steps = out.split("\nthe run directory alone is enough")[1]
    assert f"nepi-lab show {run_dir}" in next_steps
    assert f"run = load_run({run_dir!r})" in next_steps and "from nepi_lab import load_run" in next_steps
    notebooks = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "notebooks")
    assert next_steps.rstrip().endswith(f"jupyter lab {notebooks}")  # a clone: its own folder


def test_the_demo_run_loads_as_the_demo_says(tmp_path):
    """The lines the demo prints for load_run and nepi-lab show work as printed."""
    proc = subprocess.run([sys.executable, "-m", "nepi_lab.cli", "demo", "--results", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.split("\nthe run directory alone is enough")[1].splitlines()
    code = "\n".join(line.strip() for line in lines if line.startswith("    "))
    code += "\nprint(run.resources_frame()['outcome'].tolist())"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            cwd=tmp_path)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip().splitlines()[-1] == str(
        ["STOPPED", "FINISHED", "FINISHED", "FINISHED", "FINISHED", "FAILED"])
    show = next(line.strip() for line in lines if line.strip().startswith("nepi-lab show "))
    shown = subprocess.run([sys.executable, "-m", "nepi_lab.cli", *show.split()[1:]], capture_output=True,
                           text=True, timeout=60)
    assert shown.returncode == 0 and "6 resources: 1 STOPPED, 4 FINISHED, 1 FAILED" in shown.stdout
