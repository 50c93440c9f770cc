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
    rows = re.findall(r"^(\d+)\s+(node|echo server|client \d|fails on purpose)\s+(\w+)", out, re.M)
    assert [(role, state) for _, role, state in rows] == [
        ("node", "STOPPED"), ("echo server", "FINISHED"), ("client 1", "FINISHED"),
        ("client 2", "FINISHED"), ("client 3", "FINISHED"), ("fails on purpose", "FAILED")]
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
