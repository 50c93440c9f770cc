"""Runs made at once in this process (``max_parallel``) and in the background
(``Sweep.start``): distinct run directories, the record kept by one thread, Ctrl-C and
stop() release every run in progress, which the next run() makes again."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import textwrap
import threading

import pytest

from nepi_lab import InvalidInputError, Sweep, SweepError
from nepi_lab.runner.sweep import read_record

from ..guards import interrupt, sleepers, wait_until
from .builds import echo, sleeper

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def app_stdout(sweep, entry) -> str:
    with open(os.path.join(sweep.run_dir(entry), "2-linux.Application", "stdout")) as f:
        return f.read()


def test_four_runs_at_once_have_their_own_directories_and_overlap(tmp_path, home):
    sweep = Sweep(functools.partial(sleeper, home=home, seconds=1.0), {"n": [1, 2, 3, 4]}, repetitions=2,
                  exp_id="four", results=tmp_path / "results")
    assert sweep.run(max_parallel=4) == 8
    assert sweep.counts() == {"pending": 0, "running": 0, "done": 8, "failed": 0}
    runs = sweep.runs
    assert len({r["run_dir"] for r in runs}) == 8
    assert [app_stdout(sweep, r) for r in runs] == [f"{n}\n" for n in (1, 2, 3, 4)] * 2
    first, second = runs[:4], runs[4:]
    # four at once: the first four overlapped, and never more than four ran together
    assert max(r["start"] for r in first) < min(r["end"] for r in first)
    for entry in runs:  # when each run started, at most four were running, itself included
        assert sum(r["start"] <= entry["start"] < r["end"] for r in runs) <= 4
    assert min(r["start"] for r in second) >= min(r["end"] for r in first)
    with open(os.path.join(sweep.path, "sweep.json")) as f:
        assert json.load(f)["runs"] == runs  # the journal folded in when run() ended
    assert not os.path.exists(os.path.join(sweep.path, "sweep.journal"))


def test_failures_in_parallel_runs_are_recorded_per_run(tmp_path, home):
    sweep = Sweep(functools.partial(echo, home=home), {"n": [1, 3], "word": ["a", "bad"]},
                  exp_id="failing", results=tmp_path / "results")
    assert sweep.run(max_parallel=4) == 4
    failures = {(sweep.points[r["point"]]["n"], sweep.points[r["point"]]["word"]): r["failure"]
                for r in sweep.runs}
    assert failures[(1, "a")] is None
    assert failures[(1, "bad")] == failures[(3, "bad")] == "build() raised ValueError: no experiment for " \
                                                          "the word 'bad'"
    assert "CommandError" in failures[(3, "a")]


def test_max_parallel_is_checked(tmp_path, home):
    sweep = Sweep(functools.partial(echo, home=home), {"n": [1], "word": ["a"]}, exp_id="checked",
                  results=tmp_path / "results")
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(InvalidInputError, match="max_parallel must be an int >= 1"):
            sweep.run(max_parallel=bad)
    assert sweep.counts()["pending"] == 1


SCRIPT = textwrap.dedent("""\
    import functools, sys
    sys.path.insert(0, {root!r})
    from nepi_lab import Sweep
    from tests.runner.builds import sleeper
    sweep = Sweep(functools.partial(sleeper, home={home!r}, seconds=30), {{"n": [1, 2, 3]}},
                  exp_id="interrupted", results={results!r})
    print("starting", flush=True)
    sweep.run(max_parallel=2)
""")


def test_ctrl_c_releases_every_run_in_progress_and_the_next_run_makes_them(tmp_path, home):
    results = tmp_path / "results"
    script = tmp_path / "sweep_script.py"
    script.write_text(SCRIPT.format(root=ROOT, home=home, results=str(results)))
    process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    path = results / "interrupted"

    def two_sleeping() -> bool:
        try:
            runs = read_record(str(path))["runs"]
        except (OSError, ValueError, TypeError):
            return False
        return all(os.path.exists(path / r["run_dir"] / "events.jsonl") for r in runs[:2] if r["run_dir"]) \
            and sum(r["state"] == "running" for r in runs) == 2 and len(sleepers(home)) == 2
    try:
        assert wait_until(two_sleeping, 30), "the two first runs never started their applications"
    finally:
        stderr = interrupt(process)
    assert process.returncode != 0 and "KeyboardInterrupt" in stderr, stderr
    assert not sleepers(home)  # both applications were stopped
    with open(path / "sweep.json") as f:
        runs = json.load(f)["runs"]
    assert [r["state"] for r in runs] == ["running", "running", "pending"]
    for entry in runs[:2]:
        with open(path / entry["run_dir"] / "experiment.json") as f:
            assert json.load(f)["end"] == "interrupted"
    again = Sweep(functools.partial(sleeper, home=home, seconds=0.1), {"n": [1, 2, 3]}, exp_id="interrupted",
                  results=results)
    assert again.run(max_parallel=2) == 3
    assert again.counts()["done"] == 3 and len(again.abandoned) == 2


def test_start_runs_in_the_background_and_stop_releases_what_runs(tmp_path, home):
    sweep = Sweep(functools.partial(sleeper, home=home, seconds=30), {"n": [1, 2, 3]}, exp_id="background",
                  results=tmp_path / "results")
    changes = []
    unsubscribe = sweep.subscribe(lambda s: changes.append((threading.current_thread().name, s.counts())))
    task = sweep.start(max_parallel=2)
    assert not task.done() and "running" in repr(task)
    assert wait_until(lambda: len(sleepers(home)) == 2, 30)
    with pytest.raises(TimeoutError, match="still running after 0.1 s"):
        task.wait(0.1)
    # while it runs, the sweep's directory is locked: another run() is refused
    other = Sweep(functools.partial(sleeper, home=home), {"n": [1, 2, 3]}, exp_id="background",
                  results=tmp_path / "results")
    with pytest.raises(SweepError, match="another process \\(or thread\\) is running this sweep"):
        other.run()
    assert task.stop(30) == 0
    assert task.done() and not sleepers(home)
    assert sweep.counts() == {"pending": 1, "running": 2, "done": 0, "failed": 0}
    # the subscriber heard every change, in the sweep's thread
    assert {name for name, _ in changes} == {"nepi_lab-sweep-background"}
    assert changes[-1][1] == sweep.counts()
    unsubscribe()
    heard = len(changes)
    fast = Sweep(functools.partial(sleeper, home=home, seconds=0.1), {"n": [1, 2, 3]}, exp_id="background",
                 results=tmp_path / "results")
    task = fast.start(max_parallel=3)
    assert task.wait(60) == 3
    assert fast.counts()["done"] == 3 and len(fast.abandoned) == 2
    assert len(changes) == heard  # unsubscribed (and another Sweep object)


def test_a_background_sweep_that_fails_hands_its_error_to_wait(tmp_path, home):
    sweep = Sweep(functools.partial(echo, home=home), {"n": [1], "word": ["a"]}, exp_id="blocked",
                  results=tmp_path / "results")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "blocked").write_text("a file where the sweep's folder goes")
    task = sweep.start()
    with pytest.raises(FileExistsError):
        task.wait(30)
    assert task.done()


def test_the_type_registry_loads_once_for_threads_asking_at_once():
    """The first register_resource of a built-in type loads the types: eight threads
    asking at once all find them (before the lock, some saw a half-loaded registry)."""
    script = textwrap.dedent("""\
        import threading
        from nepi_lab.core.registry import get_resource_type
        barrier, found, errors = threading.Barrier(8), [], []
        def ask():
            barrier.wait()
            try:
                found.append(get_resource_type("netns::Node").__name__)
            except Exception as exc:
                errors.append(repr(exc))
        threads = [threading.Thread(target=ask) for _ in range(8)]
        for t in threads: t.start()
        for t in threads: t.join()
        print(len(found), errors)
    """)
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
        assert out.stdout == "8 []\n", out.stderr
