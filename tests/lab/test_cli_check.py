"""``nepi-lab check LAB RUN_DIR...`` as a user runs it: a real process, its output and exit status."""

from __future__ import annotations

import csv
import importlib.util
import subprocess
import sys

import pytest

from nepi_lab.lab import ExitStatus, Lab, Reachable, State, TraceContains

from .conftest import copy_run

COMMAND = [sys.executable, "-m", "nepi_lab.cli", "check"]


def check(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


@pytest.fixture
def passing(tmp_path):
    path = tmp_path / "lab.json"
    Lab([State("ping"), Reachable("ping"), TraceContains("hello", text="world")], title="lab one").save(path)
    return str(path)


@pytest.fixture
def failing(tmp_path):
    path = tmp_path / "failing.json"
    Lab([State("ping"), ExitStatus("bad")]).save(path)
    return str(path)


def test_every_check_passes_exit_status_0(runs, passing):
    done = check(passing, runs.good)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("lab lab one: 3 checks, 3 points, 1 runs")
    assert "ping loses at most 0 % of packets  pass" in done.stdout
    assert "3/3     3/3     100 %" in done.stdout
    assert done.stderr == ""


def test_a_failed_check_exit_status_1(runs, failing, tmp_path):
    done = check(failing, runs.good, "--csv", str(tmp_path / "grades.csv"),
                 "--totals", str(tmp_path / "t.csv"))
    assert done.returncode == 1
    assert ("bad exits with status 0  FAIL    3         0         0/1     6 (bad) exited with status 3"
            in done.stdout)
    assert done.stderr == "1 of 2 checks failed\n"
    with open(tmp_path / "grades.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["name"], r["passed"], r["observed"]) for r in rows] == [
        ("ping reaches FINISHED", "True", "FINISHED"), ("bad exits with status 0", "False", "3")]
    with open(tmp_path / "t.csv") as f:
        assert next(csv.DictReader(f))["points"] == "1"


def test_a_check_that_cannot_be_evaluated_is_an_error_row(runs, passing, tmp_path):
    run = copy_run(runs.good, tmp_path / "subs" / "alice" / "run")
    copy_run(runs.broken, tmp_path / "subs" / "bob" / "run")
    (tmp_path / "subs" / "carol").mkdir()  # handed in nothing
    done = check(passing, str(tmp_path / "subs" / "*"))
    assert done.returncode == 1
    assert f"alice  ({run})" in done.stdout
    assert "ERROR" in done.stdout and "cannot be evaluated: TraceNotFoundError" in done.stdout
    assert "cannot be evaluated: the run directory cannot be read" in done.stdout  # carol
    totals = done.stdout.split("totals:")[1].split()
    assert totals[totals.index("alice") + 1:totals.index("alice") + 5] == ["3/3", "3/3", "100", "%"]


def test_a_bad_spec_file_names_the_line_exit_status_2(runs, tmp_path):
    path = tmp_path / "lab.json"
    path.write_text('{\n  "version": 1,\n  "checks": [\n'
                    '    {"kind": "reachable", "resourse": "ping"}\n  ]\n}\n')
    done = check(str(path), runs.good)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == (f"nepi-lab check: {path}, line 4: unknown key 'resourse' in a reachable check; "
                           "the known keys are: kind, resource, max_loss, name, points\n")


@pytest.mark.parametrize("problem", ["missing spec", "missing run", "no match", "duplicate student"])
def test_user_errors_exit_status_2(runs, passing, tmp_path, problem):
    if problem == "missing spec":
        done, expected = check(str(tmp_path / "nope.yaml"), runs.good), "nope.yaml: no such file"
    elif problem == "missing run":
        done, expected = check(passing, str(tmp_path / "nope")), "nope: no such run directory"
    elif problem == "no match":
        done, expected = check(passing, str(tmp_path / "nope" / "*")), "matches no folder"
    else:
        a = copy_run(runs.good, tmp_path / "alice" / "a")
        b = copy_run(runs.good, tmp_path / "alice" / "b")
        done, expected = check(passing, a, b), "two run directories for student 'alice'"
    assert done.returncode == 2
    assert done.stderr.startswith("nepi-lab check: ") and expected in done.stderr
    assert len(done.stderr.splitlines()) == 1


@pytest.mark.skipif(importlib.util.find_spec("yaml") is None, reason="PyYAML is not installed")
def test_a_yaml_spec_and_student_from(runs, tmp_path):
    spec = tmp_path / "lab.yaml"
    spec.write_text("version: 1\nchecks:\n  - kind: state\n    resource: ping\n    points: 2\n")
    done = check(str(spec), runs.good, "--student-from", "exp_id")
    assert done.returncode == 0, done.stderr
    assert "\nlab-good  (" in done.stdout and "2/2     100 %" in done.stdout
