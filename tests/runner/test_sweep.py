"""Sweeps: real localhost applications, one run directory per (point, repetition),
resumable after SIGKILL and Ctrl-C, failures recorded and retried, frames from the
directory alone."""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest

from nepi_lab import ExperimentController, InvalidInputError, Sweep, SweepError, load_run, load_sweep
from nepi_lab.analysis import sweep_frame, sweep_summary
from nepi_lab.runner.sweep import read_record

from ..guards import interrupt, sleepers, wait_until
from .builds import echo, printed

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GRID = {"n": [1, 2], "word": ["a", "b"]}


def stdout_of(sweep, entry) -> str:
    """A run's application stdout, read from its run directory's file, not through nepi_lab."""
    folder = os.path.join(sweep.run_dir(entry), "2-linux.Application")
    with open(os.path.join(folder, "stdout")) as f:
        return f.read()


def record(path) -> dict:
    """The record as it stands: sweep.json, with the journal of a sweep being run folded in."""
    found = read_record(str(path))
    if found is None:
        raise FileNotFoundError(os.path.join(path, "sweep.json"))
    return found


# -- a grid, repetitions, parameters recorded ----------------------------------------------

def test_grid_two_by_two_with_two_repetitions(tmp_path, home):
    sweep = Sweep(functools.partial(echo, home=home), GRID, repetitions=2, exp_id="grid",
                  results=tmp_path / "results", metrics=printed)
    assert sweep.path == str(tmp_path / "results" / "grid")
    # the documented order: the grid's product, the last key fastest; repetition by repetition
    assert sweep.points == [{"n": 1, "word": "a"}, {"n": 1, "word": "b"},
                            {"n": 2, "word": "a"}, {"n": 2, "word": "b"}]
    assert [(r["point"], r["repetition"]) for r in sweep.runs] == [(p, r) for r in (0, 1) for p in range(4)]
    assert sweep.run() == 8
    assert sweep.counts() == {"pending": 0, "running": 0, "done": 8, "failed": 0}
    assert sweep.run() == 0  # all done: nothing runs again

    runs = sweep.runs
    assert len({r["run_dir"] for r in runs}) == 8
    on_disk = record(sweep.path)
    assert on_disk["runs"] == runs and on_disk["points"] == sweep.points and on_disk["repetitions"] == 2
    for entry in runs:
        point = sweep.points[entry["point"]]
        run = load_run(sweep.run_dir(entry))
        assert run.parameters == point and run.exp_id == "grid"
        with open(os.path.join(sweep.run_dir(entry), "experiment.json")) as f:
            assert json.load(f)["parameters"] == point
        n, word, _ = stdout_of(sweep, entry).split()
        assert (int(n), word) == (point["n"], point["word"])


def test_frame_and_summary_against_the_traces(tmp_path, home):
    sweep = Sweep(functools.partial(echo, home=home), GRID, repetitions=2, exp_id="grid",
                  results=tmp_path / "results", metrics=printed)
    sweep.run()
    frame = sweep.frame()
    assert list(frame.columns) == ["n", "word", "repetition", "point", "run_id", "state", "failure",
                                   "start", "duration", "printed_n", "value"]
    assert len(frame) == 8 and (frame["state"] == "done").all() and frame["failure"].isna().all()
    assert (frame["duration"] > 0).all() and str(frame["start"].dtype) == "datetime64[ns, UTC]"
    values = {}
    for entry, (_, row) in zip(sweep.runs, frame.iterrows(), strict=True):
        n, word, value = stdout_of(sweep, entry).split()
        assert (row["n"], row["word"], row["repetition"], row["run_id"]) == (
            int(n), word, entry["repetition"], entry["run_dir"])
        assert row["printed_n"] == int(n) and row["value"] == int(value)
        assert row["duration"] == pytest.approx(entry["end"] - entry["start"])
        values.setdefault(entry["point"], []).append(int(value))

    summary = sweep.summary()
    assert list(summary.index) == [0, 1, 2, 3]
    for point, got in summary.iterrows():
        sample = values[point]
        mean = sum(sample) / 2
        std = math.sqrt(sum((v - mean) ** 2 for v in sample))  # n - 1 = 1
        half = 12.7062 * std / math.sqrt(2)
        assert (got["n"], got["word"]) == (sweep.points[point]["n"], sweep.points[point]["word"])
        assert (got["runs"], got["failed"], got["value_count"]) == (2, 0, 2)
        assert got["value_mean"] == pytest.approx(mean)
        assert got["value_std"] == pytest.approx(std)
        assert got["value_ci_low"] == pytest.approx(mean - half)
        assert got["value_ci_high"] == pytest.approx(mean + half)
        assert got["printed_n_mean"] == sweep.points[point]["n"] and got["printed_n_std"] == 0
    # the same through the analysis functions
    pd.testing.assert_frame_equal(sweep_frame(sweep), frame)
    pd.testing.assert_frame_equal(sweep_summary(sweep), summary)


# -- other ways to give the points ------------------------------------------------------------

def test_list_of_dicts_and_dataframe(tmp_path, home):
    points = [{"n": 5, "word": "x"}, {"n": 7, "word": "y"}]
    build = functools.partial(echo, home=home)
    listed = Sweep(build, points, exp_id="listed", results=tmp_path / "results")
    framed = Sweep(build, pd.DataFrame(points), exp_id="framed", results=tmp_path / "results")
    assert listed.points == framed.points == points
    assert type(framed.points[0]["n"]) is int  # numpy's int64 made plain: JSON, and equal on resume
    assert listed.run() == framed.run() == 2
    for sweep in (listed, framed):
        for entry in sweep.runs:
            assert load_run(sweep.run_dir(entry)).parameters == points[entry["point"]]
    columns = ["n", "word", "state"]
    pd.testing.assert_frame_equal(listed.frame()[columns], framed.frame()[columns])
    # the same DataFrame again resumes the same sweep
    assert Sweep(build, pd.DataFrame(points), exp_id="framed", results=tmp_path / "results").run() == 0


# -- failures ---------------------------------------------------------------------------------

def test_failed_runs_are_recorded_and_retried_on_request(tmp_path, home):
    build = functools.partial(echo, home=home)
    points = [{"n": 1, "word": "a"}, {"n": 3, "word": "a"}, {"n": 1, "word": "bad"}]
    sweep = Sweep(build, points, exp_id="failing", results=tmp_path / "results")
    assert sweep.run() == 3
    assert sweep.counts() == {"pending": 0, "running": 0, "done": 1, "failed": 2}
    ok, app_failed, build_failed = sweep.runs
    assert ok["state"] == "done" and ok["failure"] is None
    assert app_failed["state"] == "failed"
    assert "resource 2 (linux::Application) failed" in app_failed["failure"]
    assert "exited with status 1" in app_failed["failure"]
    assert build_failed["state"] == "failed"
    assert build_failed["failure"] == "build() raised ValueError: no experiment for the word 'bad'"
    # a failed build still leaves its (complete, empty) run directory, recorded
    assert load_run(sweep.run_dir(build_failed)).parameters == points[2]

    frame = sweep.frame()
    assert list(frame["state"]) == ["done", "failed", "failed"]
    assert frame["failure"].tolist()[1:] == [app_failed["failure"], build_failed["failure"]]
    summary = sweep.summary()
    assert summary["failed"].tolist() == [0, 1, 1] and summary["runs"].tolist() == [1, 0, 0]

    assert sweep.run() == 0  # failed runs are not retried silently
    open(os.path.join(home, "fixed"), "w").close()
    done_before = ok["run_dir"]
    assert sweep.run(retry_failed=True) == 2  # only the failed ones
    again = sweep.runs
    assert again[0]["run_dir"] == done_before
    assert again[1]["state"] == "done" and again[1]["failure"] is None
    assert again[1]["run_dir"] != app_failed["run_dir"]
    assert again[2]["state"] == "failed"  # build() still raises


# -- resuming ---------------------------------------------------------------------------------

SCRIPT = textwrap.dedent("""\
    import functools, sys
    sys.path.insert(0, {root!r})
    from nepi_lab import Sweep
    from tests.runner.builds import echo
    sweep = Sweep(functools.partial(echo, home={home!r}, seconds={seconds!r}), {grid!r}, repetitions=2,
                  exp_id="resumed", results={results!r})
    print(sweep.run(), flush=True)
""")


def start_sweep_script(tmp_path, home, seconds) -> subprocess.Popen:
    script = tmp_path / "sweep_script.py"
    script.write_text(SCRIPT.format(root=ROOT, home=home, seconds=seconds, grid=GRID,
                                    results=str(tmp_path / "results")))
    return subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def wait_for(predicate, path, timeout=60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            current = record(path)
        except (OSError, ValueError):
            current = None
        if current is not None and predicate(current):
            return current
        time.sleep(0.02)
    raise AssertionError(f"the sweep did not get there in {timeout} s")


def test_resume_after_sigkill(tmp_path, home):
    """Kill -9 the process running a sweep halfway: run() again makes only the missing runs."""
    path = str(tmp_path / "results" / "resumed")
    process = start_sweep_script(tmp_path, home, seconds=0.3)
    try:
        wait_for(lambda r: sum(e["state"] == "done" for e in r["runs"]) >= 3, path)
    finally:
        process.kill()
        process.communicate()
    time.sleep(0.5)  # the killed run's application ends by itself (sleep 0.3)
    killed = record(path)
    done = {(e["point"], e["repetition"]): e["run_dir"] for e in killed["runs"] if e["state"] == "done"}
    assert 3 <= len(done) < 8
    # the changes since run() began are in the journal, a line each; sweep.json is the
    # snapshot run() wrote when it began (nothing done yet)
    with open(os.path.join(path, "sweep.json")) as f:
        assert [e["state"] for e in json.load(f)["runs"]] == ["pending"] * 8
    with open(os.path.join(path, "sweep.journal")) as f:
        lines = [json.loads(line) for line in f]
    assert sum(line["state"] == "done" for line in lines) == len(done)
    # a change cut short (a crash while writing it) is skipped, the record stays readable
    with open(os.path.join(path, "sweep.journal"), "a") as f:
        f.write('{"run": 7, "point": 3, "repetition": 1, "state": "do')
    assert record(path) == killed

    sweep = Sweep(functools.partial(echo, home=home, seconds=0.3), GRID, repetitions=2, exp_id="resumed",
                  results=tmp_path / "results", metrics=printed)
    assert sweep.run() == 8 - len(done)
    assert sweep.counts()["done"] == 8
    for entry in sweep.runs:  # the runs done before the kill were kept, not made again
        if (entry["point"], entry["repetition"]) in done:
            assert entry["run_dir"] == done[(entry["point"], entry["repetition"])]
    # the run killed midway is kept aside, not counted; the sweep's runs are complete
    running = [e for e in killed["runs"] if e["state"] == "running"]
    named = [a for a in sweep.abandoned if a["point"] is not None]
    assert [a["run_dir"] for a in named] == [f"abandoned/{e['run_dir']}" for e in running]
    # (a kill between making a run's directory and recording it leaves one the record never
    # named: it is kept aside too, see the next test)
    assert len(sweep.abandoned) - len(named) <= 1
    assert all(os.path.isdir(os.path.join(path, a["run_dir"])) for a in sweep.abandoned)
    runs_on_disk = sorted(d for d in os.listdir(path) if d[0].isdigit())
    assert runs_on_disk == sorted(e["run_dir"] for e in sweep.runs)
    assert len(sweep.frame()) == 8 and sweep.frame()["value"].notna().all()
    assert not os.path.exists(os.path.join(path, "sweep.journal"))  # folded into sweep.json
    with open(os.path.join(path, "sweep.json")) as f:
        assert json.load(f)["runs"] == sweep.runs


def test_a_run_directory_the_record_never_named_is_kept_aside(tmp_path, home):
    """A process killed after its controller made the run directory and before the record
    named it leaves a folder no entry knows: the next run() moves it to abandoned/, and
    removes a Dask run's unpacking left half done."""
    sweep = Sweep(functools.partial(echo, home=home), {"n": [1], "word": ["a"]}, exp_id="orphan",
                  results=tmp_path / "results")
    stray = ExperimentController(exp_id="orphan", local_dir=tmp_path / "results")
    stray.shutdown()
    os.makedirs(os.path.join(sweep.path, ".incoming-x1", "20260101000000000000"))
    assert sweep.run() == 1
    assert sweep.abandoned == [{"point": None, "repetition": None, "run_dir": f"abandoned/{stray.run_id}",
                                "reason": "interrupted: its process stopped before the record named the run"}]
    assert sorted(os.listdir(sweep.path)) == sorted([sweep.runs[0]["run_dir"], "abandoned", "sweep.json",
                                                     "sweep.lock"])
    assert len(sweep.frame()) == 1


def test_resuming_stops_what_the_killed_run_left_running(tmp_path, home):
    """Kill -9 the sweep's process while a run's application runs (sleep 30): the next
    run() stops that application (as nepi-lab cleanup would) before making the run again,
    and the abandoned run's directory says it was killed."""
    path = str(tmp_path / "results" / "resumed")
    process = start_sweep_script(tmp_path, home, seconds=30)
    try:
        wait_for(lambda r: r["runs"][0]["state"] == "running", path)
        assert wait_until(lambda: sleepers(home), 30)
    finally:
        process.kill()
        process.communicate()
    assert sleepers(home)  # left running by the killed process
    sweep = Sweep(functools.partial(echo, home=home), GRID, repetitions=2, exp_id="resumed",
                  results=tmp_path / "results")
    assert sweep.run() == 8
    assert not sleepers(home)
    kept = os.path.join(path, sweep.abandoned[0]["run_dir"])
    with open(os.path.join(kept, "experiment.json")) as f:
        assert json.load(f)["end"] == "killed"


def test_ctrl_c_stops_the_sweep_and_releases_the_run(tmp_path, home):
    """SIGINT (Ctrl-C) during a run: the sweep stops, the run is released (its application
    killed, its directory says interrupted), and the next run() makes it again."""
    path = str(tmp_path / "results" / "resumed")
    process = start_sweep_script(tmp_path, home, seconds=30)
    try:
        current = wait_for(lambda r: r["runs"][0]["state"] == "running", path)
        run_dir = os.path.join(path, current["runs"][0]["run_dir"])
        wait_for(lambda r: os.path.exists(os.path.join(run_dir, "2-linux.Application"))
                 or _started(run_dir), path)
    finally:
        stderr = interrupt(process)
    assert process.returncode != 0 and "KeyboardInterrupt" in stderr
    with open(os.path.join(run_dir, "experiment.json")) as f:
        assert json.load(f)["end"] == "interrupted"
    assert record(path)["runs"][0]["state"] == "running"  # not done: made again next time
    assert not sleepers(home)  # the application was released

    sweep = Sweep(functools.partial(echo, home=home), GRID, repetitions=2, exp_id="resumed",
                  results=tmp_path / "results")
    assert sweep.run() == 8
    assert [a["run_dir"] for a in sweep.abandoned] == [f"abandoned/{os.path.basename(run_dir)}"]


def _started(run_dir) -> bool:
    try:
        with open(os.path.join(run_dir, "events.jsonl")) as f:
            return any('"to":"STARTED"' in line.replace(" ", "") and '"guid":2' in line.replace(" ", "")
                       for line in f)
    except OSError:
        return False


# -- frames from the directory alone ----------------------------------------------------------

def test_frames_from_the_directory_alone_equal_the_live_ones(tmp_path, home):
    sweep = Sweep(functools.partial(echo, home=home), GRID, repetitions=2,
                  exp_id="moved", results=tmp_path / "results", metrics=printed)
    sweep.run()
    live_frame, live_summary = sweep.frame(), sweep.summary()
    # another machine: the folder copied elsewhere, no build function
    elsewhere = tmp_path / "elsewhere" / "moved"
    shutil.copytree(sweep.path, elsewhere)
    shutil.rmtree(sweep.path)
    loaded = load_sweep(elsewhere, metrics=printed)
    pd.testing.assert_frame_equal(loaded.frame(), live_frame)
    pd.testing.assert_frame_equal(loaded.summary(), live_summary)
    pd.testing.assert_frame_equal(Sweep.load(elsewhere).frame(printed), live_frame)
    pd.testing.assert_frame_equal(sweep_frame(str(elsewhere), printed), live_frame)
    with pytest.raises(SweepError, match="no build function"):
        loaded.run()
    # a metric named like a column would overwrite it: refused
    with pytest.raises(SweepError, match=r"returned \['n', 'state'\]"):
        loaded.frame(lambda run: {"n": 1, "state": 2, "fine": 3})


# -- refusals ---------------------------------------------------------------------------------

def test_bad_definitions_are_refused(tmp_path, home):
    build = functools.partial(echo, home=home)
    results = tmp_path / "results"
    with pytest.raises(SweepError, match="Python identifier"):
        Sweep(build, [{"not a name": 1}], exp_id="x", results=results)
    with pytest.raises(SweepError, match="names a column"):
        Sweep(build, {"state": [1]}, exp_id="x", results=results)
    with pytest.raises(SweepError, match="list of values"):
        Sweep(build, {"n": 1}, exp_id="x", results=results)
    with pytest.raises(SweepError, match="no point"):
        Sweep(build, [], exp_id="x", results=results)
    with pytest.raises(SweepError, match="must be a str"):
        Sweep(build, {"n": [object()]}, exp_id="x", results=results)
    with pytest.raises(InvalidInputError, match="repetitions"):
        Sweep(build, GRID, repetitions=0, exp_id="x", results=results)
    with pytest.raises(InvalidInputError, match="exp_id"):
        Sweep(lambda ec, n: None, {"n": [1]}, results=results)
    with pytest.raises(SweepError, match="not a sweep directory"):
        load_sweep(tmp_path)
    with pytest.raises(InvalidInputError, match="parameter 'x'"):
        ExperimentController(exp_id="x", local_dir=str(results), parameters={"x": [1]})
    assert not os.path.exists(results / "x")  # refused before any folder is made
    # another sweep in the same folder
    Sweep(build, {"n": [1], "word": ["a"]}, exp_id="taken", results=results).run()
    with pytest.raises(SweepError, match="holds another sweep"):
        Sweep(build, {"n": [2], "word": ["a"]}, exp_id="taken", results=results)
    # more repetitions extend it
    more = Sweep(build, {"n": [1], "word": ["a"]}, repetitions=2, exp_id="taken", results=results)
    assert more.counts() == {"pending": 1, "running": 0, "done": 1, "failed": 0}
    assert more.run() == 1


def test_a_run_past_its_timeout_fails_and_is_released(tmp_path, home):
    sweep = Sweep(functools.partial(echo, home=home, seconds=30), {"n": [1], "word": ["slow"]},
                  exp_id="slow", results=tmp_path / "results", timeout=0.5)
    started = time.monotonic()
    assert sweep.run() == 1
    assert time.monotonic() - started < 15
    (entry,) = sweep.runs
    assert entry["state"] == "failed" and entry["failure"].startswith("WaitTimeoutError")
    assert not sleepers(home)


# -- the parameters in experiment.json, checked by the one description checker ------------------

@pytest.mark.parametrize("bad", [[1], {"x": [1]}, {"x": {"y": 1}}])
def test_damaged_parameters_are_refused_by_both_readers(tmp_path, bad):
    from nepi_lab import ExperimentFileError, RunDirectoryError

    with ExperimentController(exp_id="p", local_dir=str(tmp_path), parameters={"x": 1}) as ec:
        assert ec.parameters == {"x": 1}
    path = os.path.join(ec.run_dir, "experiment.json")
    with open(path) as f:
        description = json.load(f)
    assert description["parameters"] == {"x": 1}
    with open(ec.save(str(tmp_path / "saved.json"))) as f:
        assert "parameters" not in json.load(f)  # a saved experiment is not one run
    description["parameters"] = bad
    with open(path, "w") as f:
        json.dump(description, f)
    with pytest.raises(RunDirectoryError, match="parameters"):
        load_run(ec.run_dir)
    with pytest.raises(ExperimentFileError, match="parameters"):
        ExperimentController.load(ec.run_dir, local_dir=str(tmp_path / "again"))
