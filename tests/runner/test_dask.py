"""Sweeps on a real Dask cluster: a scheduler and two workers started on 127.0.0.1 for
each test (removed afterwards), localhost experiments made on the workers, their run
directories brought back into the sweep directory; a worker killed mid-run; the result
compared with the same sweep made in this process."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import threading

import pytest

from nepi_lab import InvalidInputError, Sweep, SweepError

from ..guards import wait_until
from ..resources.linux.conftest import all_gone
from .builds import echo, sleeper

distributed = pytest.importorskip("distributed", reason="the dask extra is not installed (pip install "
                                                        "'nepi_lab[dask]')")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DASK = os.path.join(os.path.dirname(sys.executable), "dask")

pytestmark = pytest.mark.slow


class Cluster:
    """A ``dask scheduler`` and ``dask worker`` processes (one thread each, no nanny: a
    killed worker stays dead) on 127.0.0.1.  Each worker has its own temporary folder
    (TMPDIR, where it makes its runs) and nepi_lab state folder, under ``root``."""

    def __init__(self, root, workers: int = 2) -> None:
        self.root = root
        self.file = str(root / "scheduler.json")
        self.processes: list[subprocess.Popen] = []
        self.client = None
        try:
            self._begin(workers)
        except BaseException:
            self.close()
            raise

    def _begin(self, workers: int) -> None:
        self.scheduler = self._start([DASK, "scheduler", "--host", "127.0.0.1", "--port", "0",
                                      "--no-dashboard", "--scheduler-file", self.file], "scheduler")
        assert wait_until(lambda: os.path.exists(self.file), 30), "the scheduler never wrote its file"
        self.workers = [self.start_worker(i) for i in range(workers)]
        self.client = distributed.Client(scheduler_file=self.file, timeout=30)
        self.client.wait_for_workers(workers, timeout=30)

    def _start(self, command: list[str], name: str, **env: str) -> subprocess.Popen:
        log = open(self.root / f"{name}.log", "wb")  # noqa: SIM115  (closed with the process)
        # Dask's own scratch folders (dask-scratch-space) go under root too, never /tmp
        environment = dict(os.environ, PYTHONPATH=ROOT, PYTHONFAULTHANDLER="1", TMPDIR=str(self.root),
                           DASK_TEMPORARY_DIRECTORY=str(self.root))
        environment.update(env)
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   env=environment, cwd=self.root)
        log.close()
        self.processes.append(process)
        return process

    def start_worker(self, i: int) -> subprocess.Popen:
        tmp = self.tmp(i)
        tmp.mkdir(exist_ok=True)
        return self._start([DASK, "worker", "--scheduler-file", self.file, "--nthreads", "1", "--no-nanny",
                            "--no-dashboard", "--host", "127.0.0.1", "--local-directory", str(tmp)],
                           f"worker{i}", TMPDIR=str(tmp), NEPI_LAB_STATE=str(self.state(i)))

    def tmp(self, i: int):
        return self.root / f"worker{i}-tmp"

    def state(self, i: int):
        return self.root / f"worker{i}-state"

    def runs_in_progress(self, i: int) -> list[str]:
        """The temporary results folders worker ``i`` holds: runs it is making."""
        return [n for n in os.listdir(self.tmp(i)) if n.startswith("nepi_lab-sweep-")]

    def close(self) -> None:
        """Close the client, then end the workers and the scheduler (SIGTERM, their
        orderly close; SIGKILL after 15 s).  Workers first: one whose scheduler closed
        is already closing, and a SIGTERM then can hang it."""
        if self.client is not None:
            self.client.close()
        for process in self.processes[1:] + self.processes[:1]:
            for signalled in (signal.SIGTERM, signal.SIGKILL):
                if process.poll() is None:
                    process.send_signal(signalled)
                try:
                    process.wait(15)
                    break
                except subprocess.TimeoutExpired:
                    continue


@pytest.fixture(autouse=True)
def no_thread_leak():
    """As the runs layer's guard, except for the thread distributed keeps for its
    futures' callbacks once a client used them (one per process, never ended)."""
    def ours() -> list[str]:
        return [t.name for t in threading.enumerate() if not t.name.startswith("Dask-Callback-Thread")]
    before = ours()
    yield
    assert wait_until(lambda: len(ours()) <= len(before), 2.0), ours()


@pytest.fixture
def cluster(tmp_path):
    (tmp_path / "cluster").mkdir()
    made = Cluster(tmp_path / "cluster")
    try:
        yield made
    finally:
        made.close()


def normalised(run_dir: str, run_id: str) -> dict[str, object]:
    """A run directory's content without what differs between two makings of the same
    run: its run_id, and the times (events, saves, host states)."""
    volatile = {"saved", "time", "since", "run_id"}

    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in volatile}
        if isinstance(value, list):
            return [strip(v) for v in value]
        if isinstance(value, str):
            return value.replace(run_id, "RUN")
        return value

    content: dict[str, object] = {}
    for folder, _, files in os.walk(run_dir):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                data = f.read()
            key = os.path.relpath(path, run_dir)
            if name.endswith(".json"):
                content[key] = strip(json.loads(data))
            elif name.endswith(".jsonl"):
                content[key] = [strip(json.loads(line)) for line in data.splitlines()]
            else:
                content[key] = data.replace(run_id.encode(), b"RUN")
    return content


def by_run(sweep: Sweep) -> dict[tuple[int, int], dict[str, object]]:
    return {(e["point"], e["repetition"]): normalised(sweep.run_dir(e), e["run_dir"]) for e in sweep.runs}


def test_a_sweep_on_two_workers_equals_the_same_sweep_made_here(cluster, tmp_path, home):
    build = functools.partial(sleeper, home=home, seconds=0.3)
    params = {"n": [1, 2, 3]}
    remote = Sweep(build, params, repetitions=2, exp_id="dist", results=tmp_path / "remote")
    assert remote.run(executor=cluster.client) == 6
    assert remote.counts() == {"pending": 0, "running": 0, "done": 6, "failed": 0}

    def made(dask_worker):  # the sweep's tasks in a worker's log
        return {str(e[0]) for e in dask_worker.state.log if str(e[0]).startswith("nepi_lab-dist-")}
    per_worker = cluster.client.run(made)
    assert len(per_worker) == 2 and all(per_worker.values()), per_worker  # both made runs
    assert sum(len(keys) for keys in per_worker.values()) == 6
    here = Sweep(build, params, repetitions=2, exp_id="dist", results=tmp_path / "here")
    assert here.run() == 6
    assert by_run(remote) == by_run(here)
    # exactly the runs' folders and the record, nothing else: no staging folder left
    assert sorted(os.listdir(remote.path)) == sorted([e["run_dir"] for e in remote.runs]
                                                     + ["sweep.json", "sweep.lock"])
    # the workers' temporary folders are gone with their runs
    assert cluster.runs_in_progress(0) == cluster.runs_in_progress(1) == []
    frame = remote.frame()
    assert frame["state"].tolist() == ["done"] * 6 and (frame["duration"] >= 0.3).all()
    # each run records when it ran on its worker, not when it was submitted
    assert all(0.3 <= e["end"] - e["start"] < 10 for e in remote.runs)


def test_a_worker_killed_mid_run_loses_nothing_and_duplicates_nothing(cluster, tmp_path, home):
    build = functools.partial(sleeper, home=home, seconds=1.0)
    sweep = Sweep(build, {"n": list(range(6))}, exp_id="dask-killed", results=tmp_path / "results")
    task = sweep.start(executor=cluster.client)
    try:
        assert wait_until(lambda: cluster.runs_in_progress(0), 30), "worker 0 never started a run"
        cluster.workers[0].send_signal(signal.SIGKILL)
        cluster.workers[0].wait()
        assert task.wait(120) == 6
    finally:
        if not task.done():
            task.stop(60)
    assert sweep.counts() == {"pending": 0, "running": 0, "done": 6, "failed": 0}
    assert sweep.abandoned == []
    dirs = [e["run_dir"] for e in sweep.runs]
    assert len(set(dirs)) == 6
    assert sorted(os.listdir(sweep.path)) == sorted(dirs + ["sweep.json", "sweep.lock"])
    here = Sweep(build, {"n": list(range(6))}, exp_id="dask-killed", results=tmp_path / "here")
    assert here.run() == 6
    assert by_run(sweep) == by_run(here)  # the same content, run by run, as if nothing had happened
    # the killed worker's run: its temporary folder and its index entry stay on its
    # machine, for `nepi-lab cleanup`, which stops what it left (its sleep, if still there)
    assert cluster.runs_in_progress(0), "the killed worker's run folder is not where expected"
    state = dict(os.environ, NEPI_LAB_STATE=str(cluster.state(0)))
    cleanup = subprocess.run([sys.executable, "-m", "nepi_lab.cli", "cleanup"], capture_output=True,
                             text=True, env=state, timeout=60)
    assert cleanup.returncode == 0, cleanup.stderr
    assert all_gone("dask-killed/", 10), "the killed worker's processes stay"  # (their NEPI_LAB_RUN)


def test_interrupted_then_resumed_on_the_cluster_makes_only_the_missing_runs(cluster, tmp_path, home):
    build = functools.partial(sleeper, home=home, seconds=0.5)
    sweep = Sweep(build, {"n": list(range(8))}, exp_id="dask-resumed", results=tmp_path / "results")
    ended = []
    sweep.subscribe(lambda s: ended.append(s.counts()["done"]))
    task = sweep.start(executor=cluster.client, max_parallel=2)
    assert wait_until(lambda: ended and ended[-1] >= 2, 60), "waited in vain for two runs to end"
    made = task.stop(60)
    done_before = {(e["point"], e["repetition"]): e["run_dir"] for e in sweep.runs if e["state"] == "done"}
    assert made == len(done_before) >= 2
    assert 0 < sweep.counts()["running"] <= 2  # submitted, dropped: made again by the next run
    again = Sweep(build, {"n": list(range(8))}, exp_id="dask-resumed", results=tmp_path / "results")
    assert again.run(executor=cluster.client) == 8 - len(done_before)
    assert again.counts()["done"] == 8, [e for e in again.runs if e["state"] != "done"]
    for entry in again.runs:
        key = (entry["point"], entry["repetition"])
        if key in done_before:
            assert entry["run_dir"] == done_before[key]  # never made again
    # the dropped runs' results never reached the sweep directory
    assert sorted(os.listdir(again.path)) == sorted([e["run_dir"] for e in again.runs]
                                                    + ["sweep.json", "sweep.lock"])
    assert all_gone("dask-resumed/", 10), "the dropped runs never ended"


def test_failures_on_workers_are_recorded_with_their_reason(cluster, tmp_path, home):
    sweep = Sweep(functools.partial(echo, home=home), {"n": [1, 3], "word": ["a", "bad"]},
                  exp_id="failing", results=tmp_path / "results")
    assert sweep.run(executor=cluster.client) == 4
    failures = {(sweep.points[e["point"]]["n"], sweep.points[e["point"]]["word"]): e["failure"]
                for e in sweep.runs}
    assert failures[(1, "a")] is None
    assert failures[(1, "bad")] == "build() raised ValueError: no experiment for the word 'bad'"
    assert failures[(3, "a")].startswith("resource 2 (linux::Application) failed in run: CommandError")
    # a failed run's directory came back too (the application's output is there to read)
    entry = next(e for e in sweep.runs if e["failure"] and "CommandError" in e["failure"])
    assert os.path.isfile(os.path.join(sweep.run_dir(entry), "2-linux.Application", "stdout"))

    def unpicklable_on_worker(ec, n, word):  # a closure over a lock cannot be sent
        return lock

    lock = threading.Lock()
    broken = Sweep(unpicklable_on_worker, {"n": [1], "word": ["a"]}, exp_id="broken",
                   results=tmp_path / "results")
    with pytest.raises(SweepError, match=r"cannot send a run to the Dask cluster \(the build function .* "
                                         r"pickled to the workers.*\): .*lock"):
        broken.run(executor=cluster.client)
    assert broken.counts() == {"pending": 1, "running": 0, "done": 0, "failed": 0}


def test_executor_must_be_a_dask_client(tmp_path, home):
    sweep = Sweep(functools.partial(echo, home=home), {"n": [1], "word": ["a"]}, exp_id="x",
                  results=tmp_path / "results")
    with pytest.raises(InvalidInputError, match="executor must be a dask.distributed.Client"):
        sweep.run(executor="tcp://127.0.0.1:8786")
    assert sweep.counts()["pending"] == 1


def test_without_the_dask_extra_the_error_says_what_to_install(tmp_path):
    script = ("import sys; sys.modules['distributed'] = None\n"
              "from nepi_lab import Sweep\n"
              f"s = Sweep(lambda ec, n: None, {{'n': [1]}}, exp_id='x', results={str(tmp_path)!r})\n"
              "try:\n    s.run(executor=object())\nexcept ModuleNotFoundError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == ("running a sweep on Dask needs dask.distributed: "
                                  "pip install 'nepi_lab[dask]'")
