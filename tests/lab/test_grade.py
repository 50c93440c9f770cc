"""Grading many run directories: students, globs, totals, CSV and Excel, the layer's imports."""

from __future__ import annotations

import importlib.util

import pandas as pd
import pytest

from nepi_lab import ExperimentController, load_runs
from nepi_lab.lab import Custom, ExitStatus, Grades, Lab, Reachable, State, TraceContains, expand_paths

from .conftest import copy_run
from .custom_checks import six_resources

LAB = Lab([State("ping"), Reachable("ping", max_loss=0), ExitStatus("hello"),
           TraceContains("hello", text="world"), Custom(six_resources, points=2)], title="grading")


@pytest.fixture
def submissions(runs, tmp_path):
    """submissions/<student>/<run dir>: three copies of the good run, one damaged, one of the broken run."""
    folder = tmp_path / "submissions"
    for student in ("alice", "bob", "carol", "dave"):
        copy_run(runs.good, folder / student / "run")
    (folder / "dave" / "run" / "events.jsonl").write_text("not json\n")
    copy_run(runs.broken, folder / "erin" / "run")
    return folder


def test_grade_a_folder_of_submissions_by_glob(submissions):
    grades = LAB.grade(str(submissions / "*"))
    assert isinstance(grades, Grades)
    frame, totals = grades.frame, grades.totals
    assert list(frame.columns[:4]) == ["student", "path", "run_id", "name"]
    assert len(frame) == 5 * len(LAB.checks)
    assert list(totals["student"]) == ["alice", "bob", "carol", "dave", "erin"]
    assert list(totals.columns) == ["student", "path", "run_id", "passed", "checks", "points",
                                    "max_points", "percent"]
    by_student = totals.set_index("student")
    for student in ("alice", "bob", "carol"):
        assert by_student.loc[student, "points"] == 6 and by_student.loc[student, "percent"] == 100.0
    assert by_student.loc["dave", "points"] == 0 and pd.isna(by_student.loc["dave", "run_id"])
    dave = frame[frame["student"] == "dave"]
    assert not dave["evaluated"].any()
    assert all("the run directory cannot be read" in m and "events.jsonl" in m for m in dave["message"])
    erin = frame[frame["student"] == "erin"].set_index("name")
    assert not erin.loc["ping reaches FINISHED", "passed"] and erin.loc["ping reaches FINISHED", "evaluated"]
    assert not erin.loc["ping loses at most 0 % of packets", "evaluated"]
    assert by_student.loc["erin", "max_points"] == 6
    assert not grades.all_passed


def test_students_are_named_as_chosen(runs, tmp_path):
    paths = []
    for name in ("alice", "bob"):
        with ExperimentController(exp_id=f"lab1-{name}", local_dir=str(tmp_path / "results"),
                                  parameters={"student": name.upper()}) as ec:
            node = ec.register_resource("linux::Node", hostname="localhost", home=str(tmp_path / "home"))
            ec.deploy()
            ec.wait_started(node, timeout=30)  # else the end of the block may release it before
        paths.append(ec.run_dir)
    lab = Lab([State(1, "STARTED")])
    assert list(lab.grade(paths, student_from="exp_id").totals["student"]) == ["lab1-alice", "lab1-bob"]
    assert list(lab.grade(paths, student_from="parameter").totals["student"]) == ["ALICE", "BOB"]
    assert list(lab.grade(paths, student_from="dir").totals["student"]) == sorted(p.rsplit("/", 1)[1]
                                                                                  for p in paths)
    assert list(lab.grade(paths, student_from=lambda p: p[-4:]).totals["student"]) == sorted(p[-4:]
                                                                                            for p in paths)
    assert lab.grade(paths, student_from="parameter").all_passed
    assert list(lab.grade(paths).totals["student"]) == ["lab1-alice", "lab1-bob"]  # auto: the parent
    with pytest.raises(ValueError, match="student_from='name': use one of auto, parent, dir, exp_id, param"):
        lab.grade(paths, student_from="name")


def test_two_runs_of_one_student_are_refused(runs, tmp_path):
    a = copy_run(runs.good, tmp_path / "alice" / "first")
    b = copy_run(runs.good, tmp_path / "alice" / "second")
    with pytest.raises(ValueError, match=r"two run directories for student 'alice': .*first and .*second"):
        LAB.grade([a, b])
    assert list(LAB.grade([a, b], student_from="dir").totals["student"]) == ["first", "second"]


def test_paths_globs_and_folders_of_runs(runs, tmp_path):
    run = copy_run(runs.good, tmp_path / "subs" / "alice" / "lab1" / "run-1")
    other = copy_run(runs.good, tmp_path / "subs" / "bob" / "run-1")
    assert expand_paths(str(tmp_path / "subs" / "alice" / "lab1")) == [run]  # a folder of runs: opened
    assert expand_paths(str(tmp_path / "subs" / "alice")) == [run]  # two levels down
    assert expand_paths(str(tmp_path / "subs" / "*" / "lab1")) == [run]
    assert expand_paths(str(tmp_path / "subs" / "**" / "run-*")) == [run, other]
    assert expand_paths([run, str(tmp_path / "subs" / "*")]) == [run, other]  # each once
    grades = Lab([State("ping")]).grade(str(tmp_path / "subs" / "*"))
    assert list(grades.totals["student"]) == ["alice", "bob"]  # the folders matched
    grades = Lab([State("ping")]).grade(str(tmp_path / "subs" / "*" / "run-1"))
    assert list(grades.totals["student"]) == ["bob"]  # run directories matched: their parent
    with pytest.raises(ValueError, match="matches no folder"):
        expand_paths(str(tmp_path / "nothing" / "*"))
    with pytest.raises(ValueError, match="no such run directory"):
        expand_paths(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="no run directory to grade"):
        expand_paths([])


def test_grades_to_csv_read_back(submissions, tmp_path):
    grades = LAB.grade(submissions / "*")
    grades.to_csv(tmp_path / "grades.csv", totals=tmp_path / "totals.csv")
    back = pd.read_csv(tmp_path / "grades.csv")
    assert list(back.columns) == list(grades.frame.columns)
    assert len(back) == len(grades.frame) and back["passed"].tolist() == grades.frame["passed"].tolist()
    totals = pd.read_csv(tmp_path / "totals.csv")
    assert totals["points"].tolist() == grades.totals["points"].tolist()


def test_grades_to_excel(submissions, tmp_path):
    grades = LAB.grade(submissions / "*")
    if importlib.util.find_spec("openpyxl") is None and importlib.util.find_spec("xlsxwriter") is None:
        with pytest.raises(ImportError, match=r"writing Excel files needs openpyxl \(pip install openpyxl\)"):
            grades.to_excel(tmp_path / "grades.xlsx")
        assert not (tmp_path / "grades.xlsx").exists()
        return
    grades.to_excel(tmp_path / "grades.xlsx")
    sheets = pd.read_excel(tmp_path / "grades.xlsx", sheet_name=None)
    assert set(sheets) == {"checks", "totals"} and len(sheets["checks"]) == len(grades.frame)


def test_check_of_several_runs_has_a_run_id_column(runs, tmp_path):
    copy_run(runs.good, tmp_path / "exp" / "20260101000000000001")
    copy_run(runs.good, tmp_path / "exp" / "20260101000000000002")
    frame = LAB.check(str(tmp_path / "exp"))
    assert frame.columns[0] == "run_id" and len(frame) == 2 * len(LAB.checks)
    assert frame["passed"].all()
    assert LAB.check(load_runs(tmp_path / "exp")).equals(frame)


def test_a_sweep_is_checked_run_by_run(tmp_path):
    from nepi_lab import Sweep

    def build(ec, count):
        node = ec.register_resource("linux::Node", hostname="localhost", home=str(tmp_path / "home"))
        ec.register_resource("linux::Application", connectedTo=node, name="app", command=f"seq {count}")

    sweep = Sweep(build, {"count": [1, 3]}, exp_id="lab-sweep", results=str(tmp_path / "results"))
    sweep.run()
    lab = Lab([State("app"), ExitStatus("app"), Custom("tests.lab.custom_checks:six_resources")])
    frame = lab.check(sweep)
    assert len(frame) == 6 and frame["run_id"].nunique() == 2
    assert frame["passed"].tolist() == [True, True, False] * 2  # two resources, not seven
    assert frame["observed"].tolist()[2] == 2
    lines = Lab([TraceContains("app", text="3")]).check(sweep)
    assert sorted(lines["passed"]) == [False, True]


def test_the_lab_layer_imports_no_layer_above_it():
    from tests.test_public_api import layer_offences

    above = ("nepi_lab.notebook", "nepi_lab.cli", "nepi_lab.demo", "ipywidgets", "IPython", "matplotlib")
    assert layer_offences("nepi_lab.lab", above) == {}


def test_importing_the_lab_loads_no_pandas(tmp_path):
    import subprocess
    import sys

    code = "import sys, nepi_lab.lab; print('pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr
