"""``nepi-lab``: every subcommand by its exit status and its messages, through a real process.

User errors are one line on standard error and exit status 2, never a traceback;
``run`` runs real ``linux::Application`` processes from a saved experiment file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid

import pytest

from nepi_lab import ExperimentController, __version__
from nepi_lab.cli import FAILED_STATUS, INTERRUPTED_STATUS, TIMEOUT_STATUS, USAGE_STATUS

from .guards import terminal_output, wait_until
from .resources.linux.conftest import all_gone, processes_with

COMMAND = [sys.executable, "-m", "nepi_lab.cli"]
SUBCOMMANDS = ("run", "show", "types", "demo", "sweep", "version", "cleanup", "check")


def nepi_lab(*args: str, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=timeout, **kwargs)


def refused(proc: subprocess.CompletedProcess, *words: str) -> str:
    """Assert a user error: exit status 2, one line on stderr holding ``words``, no traceback."""
    assert proc.returncode == USAGE_STATUS, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def save_experiment(path, apps: dict[str, str], critical: bool = True, **app) -> str:
    """An experiment file: a localhost node and one application per (name, command).
    The controller that writes it keeps its (empty) run directory beside the file: a
    module's fixture calls this outside any test's $NEPI_LAB_RESULTS."""
    saving = os.path.join(os.path.dirname(path), "saving")
    with ExperimentController(exp_id="cli-test", local_dir=saving) as ec:
        host = ec.register_resource("linux::Node", name="host")
        for name, command in apps.items():
            ec.register_resource("linux::Application", connectedTo=host, name=name, command=command,
                                 critical=critical, **app)
        return ec.save(str(path))


def run_dir_of(out: str) -> str:
    return re.search(r"^run directory: (.+)$", out, re.M).group(1)


ROW = r"^(\d+)\s+(.+?)\s+((?:linux|netns)::\w+)\s+([A-Z]+)\s*(\d+\.\d+ s)?\s*(-?\d+)?\s*(.*)$"


def table(out: str) -> dict[str, tuple[str, ...]]:
    """The summary table: name -> (guid, type, ended, ran for, exit, first line)."""
    rows = {}
    for line in out.splitlines():
        found = re.match(ROW, line)
        if found:
            guid, name, rtype, ended, ran, code, first = found.groups()
            rows[name] = (guid, rtype, ended, ran or "", code or "", first)
    return rows


def final_states(run_dir: str) -> dict[int, str]:
    last = {}
    with open(os.path.join(run_dir, "events.jsonl")) as f:
        for event in map(json.loads, f):
            last[event["guid"]] = event["to"]
    return last


# -- version, help ------------------------------------------------------------------------


def test_version_option_and_subcommand():
    for args in (["--version"], ["version"]):
        proc = nepi_lab(*args)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split()[-1] == __version__


def test_every_subcommand_has_a_description():
    main = nepi_lab("--help")
    assert main.returncode == 0
    for name in SUBCOMMANDS:
        assert re.search(rf"^\s+{name}\s+\w", main.stdout, re.M), f"{name} has no summary in --help"
        sub = nepi_lab(name, "--help")
        assert sub.returncode == 0, sub.stderr
        description = sub.stdout.split("\n\n")[1]  # after the usage
        assert len(description.split()) >= 5
        assert not description.lstrip().startswith(("positional", "options"))
    assert "124" in main.stdout and "130" in main.stdout  # the exit statuses are listed


def test_a_usage_error_is_argparses_exit_2():
    proc = nepi_lab("run")
    assert proc.returncode == USAGE_STATUS and "FILE" in proc.stderr and "Traceback" not in proc.stderr
    proc = nepi_lab("nosuchcommand")
    assert proc.returncode == USAGE_STATUS and "invalid choice" in proc.stderr


# -- types --------------------------------------------------------------------------------


def test_types_lists_the_registered_types():
    proc = nepi_lab("types")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^linux::Application\s+A shell command", proc.stdout, re.M)
    assert re.search(r"^linux::Ping\s+", proc.stdout, re.M)


def test_types_with_a_name_shows_its_attributes_and_traces():
    proc = nepi_lab("types", "linux::Ping")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.splitlines()[0] == "linux::Ping"
    assert "derives from: linux::Application" in out and "connects to: linux::Node" in out
    attributes, traces = out.split("\nattributes:\n")[1].split("\ntraces:\n")
    assert re.search(r"^name\s+type\s+default\s+flags\s+allowed\s+help$", attributes, re.M)
    assert re.search(r"^count\s+INTEGER\s+\[1, \d+\]\s+stop after sending", attributes, re.M)
    assert re.search(r"^critical\s+BOOL\s+True\s+Design\s+a failure of this resource", attributes, re.M)
    assert re.search(r"^command\s+STRING\s+NoWrite\s+built from", attributes, re.M)
    assert re.search(r"^stdout\s+always\s+standard output", traces, re.M)


def test_types_with_a_name_lists_nepis_names_of_its_attributes():
    proc = nepi_lab("types", "linux::Node")
    assert proc.returncode == 0, proc.stderr
    aliases = proc.stdout.split("\naliases (other names of the attributes above):\n")[1].split("\ntraces:")[0]
    assert aliases.splitlines() == ["  identity \u2192 identityFile (NEPI's name)",
                                    "  cleanProcessesAfter \u2192 cleanProcesses (NEPI's name)"]
    proc = nepi_lab("types", "netns::Link")
    assert proc.returncode == 0 and "aliases" not in proc.stdout  # none: no section


def test_types_shows_allowed_values():
    proc = nepi_lab("types", "netns::Link")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^shaper\s+ENUM\s+tbf\s+(\S+\s+)?tbf, htb\s", proc.stdout, re.M), proc.stdout


def test_an_unknown_type_is_one_line_with_close_names():
    line = refused(nepi_lab("types", "linux::Aplication"), "unknown resource type 'linux::Aplication'")
    assert "(did you mean linux::Application" in line  # first: the closest name
    refused(nepi_lab("types", "nothing-like-it"), "unknown resource type")


# -- show ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A run directory of a real run: one application finished, one failed (non-critical)."""
    folder = tmp_path_factory.mktemp("show")
    results = folder / "results"
    apps = {"hello": "echo hello; echo more", "broken": "echo bad >&2; exit 7"}
    path = save_experiment(folder / "exp.json", apps, critical=False)
    proc = nepi_lab("run", path, "--results", str(results))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return run_dir_of(proc.stdout)


def test_show_reads_a_run_from_its_directory(finished_run):
    proc = nepi_lab("show", finished_run)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith(f"run cli-test/{os.path.basename(finished_run)} in {finished_run}\n")
    assert "3 resources: 1 STOPPED, 1 FINISHED, 1 FAILED; all released" in out
    assert "ended by shutdown" in out
    rows = table(out)
    assert rows["host"][1:3] == ("linux::Node", "STOPPED")
    assert rows["hello"][2] == "FINISHED" and rows["hello"][4:] == ("0", "hello")
    assert rows["broken"][2] == "FAILED" and rows["broken"][4:] == ("7", "bad")
    failures = out.split("\nfailures:\n")[1].split("\n\n")[0]
    assert re.match(r"  3 broken \(linux::Application\) failed in run \(non-critical\): "
                    r"CommandError: .*status 7", failures)
    times = out.split("\ntimes: ")[1].split("\n\n")[0].splitlines()
    assert times[1].split() == ["guid", "name", "NEW", "DISCOVERED", "PROVISIONED", "READY", "STARTED",
                                "STOPPED", "FINISHED", "FAILED", "RELEASED"]
    traces = out.split("\ntraces collected")[1]
    assert re.search(r"^2\s+hello\s+stdout\s+11 B$", traces, re.M)
    assert re.search(r"^3\s+broken\s+stderr\s+4 B$", traces, re.M)


def test_show_without_a_run_directory_is_one_line(tmp_path, finished_run):
    refused(nepi_lab("show", str(tmp_path / "missing")), "no such directory")
    refused(nepi_lab("show", os.path.dirname(finished_run)), "experiment.json: missing",
            "is this a run directory?")
    file = tmp_path / "file"
    file.write_text("x")
    refused(nepi_lab("show", str(file)), "not a directory")


def test_show_refuses_a_damaged_description(tmp_path, finished_run):
    copy = tmp_path / "run"
    subprocess.run(["cp", "-r", finished_run, str(copy)], check=True)
    (copy / "experiment.json").write_text(
        '{"format": "nepi_lab.run", "version": 1, "resources": [{"guid": "x"}]}')
    refused(nepi_lab("show", str(copy)), "experiment.json", "resources[0].guid must be an integer")
    (copy / "experiment.json").write_text('{"format": "nepi_lab.run", "version": 99, "resources": []}')
    refused(nepi_lab("show", str(copy)), "unknown run format version 99", "upgrade")


def test_show_leaves_out_a_damaged_last_event_and_says_so(tmp_path, finished_run):
    copy = tmp_path / "run"
    subprocess.run(["cp", "-r", finished_run, str(copy)], check=True)
    with open(copy / "events.jsonl", "ab") as f:
        f.write(b'{"time": 1.7e9, "gu')  # a write cut by a crash
    proc = nepi_lab("show", str(copy))
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"1 damaged lines of events\.jsonl left out \(line \d+: not valid JSON", proc.stdout)
    assert table(proc.stdout)["hello"][2] == "FINISHED"


# -- run ----------------------------------------------------------------------------------


def test_run_runs_a_saved_experiment_with_set_by_name_and_guid(tmp_path):
    path = save_experiment(tmp_path / "exp.json", {"a": "echo one", "b": "echo two", "c": "echo three"})
    proc = nepi_lab("run", path, "--set", "a.command=echo changed by name", "--set", "3.command=echo by guid",
                    "--results", str(tmp_path / "mine"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = table(proc.stdout)
    assert {name: (row[2], row[5]) for name, row in rows.items()} == {
        "host": ("STOPPED", ""), "a": ("FINISHED", "changed by name"), "b": ("FINISHED", "by guid"),
        "c": ("FINISHED", "three")}
    run_dir = run_dir_of(proc.stdout)
    assert run_dir.startswith(str(tmp_path / "mine" / "cli-test"))
    assert set(final_states(run_dir).values()) == {"RELEASED"}
    assert "nepi-lab show " + run_dir in proc.stdout and f"load_run({run_dir!r})" in proc.stdout


def test_run_accepts_a_run_directory(finished_run, tmp_path):
    proc = nepi_lab("run", finished_run, "--results", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert table(proc.stdout)["hello"][2] == "FINISHED"
    assert run_dir_of(proc.stdout) != finished_run


def test_run_exits_1_when_the_experiment_failed(tmp_path):
    path = save_experiment(tmp_path / "exp.json", {"fails": "exit 5", "waits": "sleep 30"})
    proc = nepi_lab("run", path)
    assert proc.returncode == FAILED_STATUS, proc.stdout + proc.stderr
    rows = table(proc.stdout)
    assert rows["fails"][2] == "FAILED" and rows["fails"][4] == "5"
    assert rows["waits"][2] == "STOPPED"  # stopped by the critical failure
    assert "the experiment FAILED" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_run_timeout_releases_everything_and_exits_124(tmp_path):
    marker = f"nepi-cli-{uuid.uuid4().hex}"
    path = save_experiment(tmp_path / "exp.json", {"long": f"sleep 30; echo {marker}"})
    started = time.monotonic()
    proc = nepi_lab("run", path, "--timeout", "1")
    assert proc.returncode == TIMEOUT_STATUS, proc.stdout + proc.stderr
    assert time.monotonic() - started < 20
    assert "--timeout 1 s ran out with 1 resources not finished" in proc.stderr
    assert table(proc.stdout)["long"][2] == "STOPPED"
    assert set(final_states(run_dir_of(proc.stdout)).values()) == {"RELEASED"}
    assert all_gone(marker)


@pytest.mark.parametrize(("args", "words"), [
    (["--set", "nobody.command=x"],
     ["--set nobody.command=x", "no resource named 'nobody'", "names: a, b, host"]),
    (["--set", "a.nosuch=1"], ["--set a.nosuch=1", "nosuch"]),
    (["--set", "a.stopGracePeriod=soon"], ["--set a.stopGracePeriod=soon", "expected a number"]),
    (["--set", "99.command=x"], ["no resource named '99'", "guids: 1-3"]),
    (["--set", "twin.command=x"], ["2 resources are named 'twin'", "give the guid"]),
])
def test_run_refuses_a_bad_set_in_one_line(tmp_path, args, words):
    path = save_experiment(tmp_path / "exp.json", {"a": "true", "b": "true"})
    if "twin" in args[1]:
        path = save_experiment(tmp_path / "twins.json", {"twin": "true", "b": "true"})
        with open(path) as f:
            description = json.load(f)
        description["resources"][2]["attributes"]["name"] = "twin"
        with open(path, "w") as f:
            json.dump(description, f)
    refused(nepi_lab("run", path, *args), *words)


def test_run_refuses_bad_files_and_folders_in_one_line(tmp_path):
    refused(nepi_lab("run", str(tmp_path / "missing.json")), "missing.json: no such file or directory")
    damaged = tmp_path / "damaged.json"
    damaged.write_text('{"format": "nepi_lab.experiment", "version": 1, "resources": [')
    refused(nepi_lab("run", str(damaged)), "damaged.json")
    path = save_experiment(tmp_path / "exp.json", {"a": "true"})
    with open(path) as f:
        description = json.load(f)
    description["resources"][1]["type"] = "linux::Aplication"
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps(description))
    refused(nepi_lab("run", str(unknown)), "linux::Aplication", "not registered")
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps({**description, "version": 99}))
    refused(nepi_lab("run", str(newer)), "version 99", "upgrade")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    refused(nepi_lab("run", path, "--results", str(blocker / "results")), "cannot keep results")
    refused(nepi_lab("run", path, "--results", "/proc/nope"), "cannot keep results in local_dir '/proc/nope'")
    proc = nepi_lab("run", path, "--timeout", "soon")
    assert proc.returncode == USAGE_STATUS and "not a number of seconds" in proc.stderr
    proc = nepi_lab("run", path, "--set", "no-equals-sign")
    assert proc.returncode == USAGE_STATUS and "NAME_OR_GUID.ATTRIBUTE=VALUE" in proc.stderr


def test_run_progress_is_plain_lines_when_not_a_terminal(tmp_path):
    path = save_experiment(tmp_path / "exp.json", {"a": "sleep 1.5", "b": "sleep 2.5"})
    proc = nepi_lab("run", path)
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stdout and "\x1b" not in proc.stdout
    progress = re.findall(r"^ +(\d+\.\d) s  (.+)$", proc.stdout, re.M)
    assert len(progress) >= 2, proc.stdout
    assert any("STARTED" in counts for _, counts in progress)
    assert progress[-1][1] == "1 STARTED, 2 FINISHED"  # the last counts, before the release
    assert len({counts for _, counts in progress}) == len(progress)  # a line per change


def test_run_progress_is_one_updating_line_on_a_terminal(tmp_path):
    path = save_experiment(tmp_path / "exp.json", {"a": "sleep 0.5", "b": "sleep 1.5"})
    text = terminal_output([*COMMAND, "run", path], 30)
    frames = text.split("\r\x1b[K")
    assert len(frames) >= 5, text  # redrawn in place, several times a second
    assert frames[0].startswith("nepi-lab run: experiment 'cli-test'") and frames[0].count("\n") == 1
    progress = frames[-1].split("\n")[0]  # the line ends once, when the wait ends
    assert re.fullmatch(r" +\d+\.\d s  1 STARTED, 2 FINISHED", progress), progress
    assert all(re.fullmatch(r" +\d+\.\d s  .+", frame) for frame in frames[1:-1]), frames
    assert "\nguid  name" in frames[-1]  # then the summary, in plain lines


def test_ctrl_c_releases_everything_collects_the_traces_and_records_the_run(tmp_path):
    marker = f"nepi-cli-{uuid.uuid4().hex}"
    apps = {f"sleeper {i}": "echo started; sleep 60" for i in range(3)}
    path = save_experiment(tmp_path / "exp.json", apps, env=f"MARK={marker}")
    proc = subprocess.Popen([*COMMAND, "run", path, "--results", str(tmp_path / "results")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:  # each sleep runs once its echo wrote the trace
        deadline = time.monotonic() + 20
        while len([p for p in processes_with(marker) if p.name() == "sleep"]) < 3:
            assert time.monotonic() < deadline, "the sleeps did not start"
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == INTERRUPTED_STATUS, out + err
    assert "Traceback" not in err and "interrupted; stopping and releasing everything" in err
    assert all_gone(marker)
    run_dir = run_dir_of(out)
    assert set(final_states(run_dir).values()) == {"RELEASED"}
    for guid in (2, 3, 4):
        with open(os.path.join(run_dir, f"{guid}-linux.Application", "stdout")) as f:
            assert f.read() == "started\n"
    with open(os.path.join(run_dir, "experiment.json")) as f:
        assert json.load(f)["end"] == "interrupted"
    assert {row[2] for name, row in table(out).items() if name.startswith("sleeper")} == {"STOPPED"}


# -- demo ---------------------------------------------------------------------------------


def test_demo_refuses_a_results_folder_it_cannot_use_in_one_line(tmp_path):
    refused(nepi_lab("demo", "--results", "/proc/nope"), "nepi-lab demo: cannot keep results in local_dir")
    blocker = tmp_path / "file"
    blocker.write_text("")
    refused(nepi_lab("demo", "--results", str(blocker)), "cannot keep results")


# -- sweep status -------------------------------------------------------------------------


def interrupt_at(n_stop):
    """A build of ``tests.runner.builds.echo`` that presses Ctrl-C (raises KeyboardInterrupt)
    at the point ``n == n_stop``: the sweep stops there, its run recorded as running."""
    from .runner.builds import echo

    def build(ec, n, word, *, home):
        if n == n_stop:
            raise KeyboardInterrupt
        echo(ec, n, word, home=home)
    return build


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    """Real sweeps of localhost applications: ``finished`` (2 points x 1 repetition, the
    point n=3 fails), ``half`` (2 points x 2 repetitions, interrupted at its second run)
    and ``long`` (45 points, interrupted at its first run: 44 pending)."""
    import functools

    from nepi_lab import Sweep

    from .runner.builds import echo

    folder = tmp_path_factory.mktemp("sweeps")
    home = folder / "home"
    home.mkdir()
    results = str(folder / "results")
    finished = Sweep(functools.partial(echo, home=str(home)), {"n": [1, 3], "word": ["a"]},
                     exp_id="finished", results=results)
    assert finished.run() == 2
    half = Sweep(functools.partial(interrupt_at(2), home=str(home)), {"n": [1, 2], "word": ["a"]},
                 repetitions=2, exp_id="half", results=results)
    with pytest.raises(KeyboardInterrupt):
        half.run()
    long = Sweep(functools.partial(interrupt_at(0), home=str(home)), {"n": list(range(45)), "word": ["a"]},
                 exp_id="long", results=results)
    with pytest.raises(KeyboardInterrupt):
        long.run()
    return {"finished": finished.path, "half": half.path, "long": long.path}


SWEEP_ROW = r"^(\d+)\s+(\w+)\s+(\d+)\s+(done|failed|pending|running)\b\s*(\d+\.\d+ s)?\s*(\d{20})?\s*(.*)$"


def sweep_rows(out: str) -> list[tuple[str, ...]]:
    """The runs table of ``sweep status``: (n, word, repetition, state, duration, run, failure)."""
    return [m.groups("") for line in out.splitlines() if (m := re.match(SWEEP_ROW, line))]


def test_sweep_status_of_a_finished_sweep_with_a_failed_run(sweeps):
    proc = nepi_lab("sweep", "status", sweeps["finished"])
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"sweep finished in {sweeps['finished']}"
    assert lines[1] == "  2 points (n, word) x 1 repetitions = 2 runs"
    assert lines[2] == "  1 done, 1 failed, 0 pending, 0 running, 0 abandoned"
    assert re.search(r"^n\s+word\s+repetition\s+state\s+duration\s+run\s+failure$", proc.stdout, re.M)
    with open(os.path.join(sweeps["finished"], "sweep.json")) as f:
        entries = json.load(f)["runs"]
    rows = sweep_rows(proc.stdout)
    assert [r[:4] for r in rows] == [("1", "a", "0", "done"), ("3", "a", "0", "failed")]
    assert all(r[4].endswith(" s") for r in rows)  # both ran, both timed
    assert [r[5] for r in rows] == [e["run_dir"] for e in entries]
    assert rows[0][6] == ""
    failure = rows[1][6]  # the reason, in short: sweep.json holds all of it
    assert failure.startswith("resource 2 (linux::Application) failed in run: CommandError")
    assert failure.endswith("...") and entries[1]["failure"].startswith(failure[:-3])


def test_sweep_status_of_an_interrupted_sweep(sweeps):
    proc = nepi_lab("sweep", "status", sweeps["half"])
    assert proc.returncode == 0, proc.stderr
    assert "  1 done, 0 failed, 2 pending, 1 running, 0 abandoned\n  no process is running it: the 1 " \
           "running were interrupted, and the next run() makes them again\n" in proc.stdout
    rows = sweep_rows(proc.stdout)
    # repetition by repetition: the first point done, the second interrupted, the rest to make
    assert [r[:4] for r in rows] == [("1", "a", "0", "done"), ("2", "a", "0", "running"),
                                     ("1", "a", "1", "pending"), ("2", "a", "1", "pending")]
    assert rows[1][5] and not rows[2][5] and not rows[2][4]  # the running one has its folder


def test_sweep_status_of_a_sweep_being_run_says_so(tmp_path):
    import functools

    from nepi_lab import Sweep

    from .runner.builds import sleeper

    home = tmp_path / "home"
    home.mkdir()
    sweep = Sweep(functools.partial(sleeper, home=str(home), seconds=30), {"n": [1]}, exp_id="live",
                  results=tmp_path / "results")
    task = sweep.start()
    try:
        assert wait_until(lambda: sweep.counts()["running"] == 1, 30)
        proc = nepi_lab("sweep", "status", sweep.path)
    finally:
        task.stop(30)
    assert proc.returncode == 0, proc.stderr
    assert "  0 done, 0 failed, 0 pending, 1 running, 0 abandoned\n  being run now: a live process holds " \
           "its lock (sweep.lock)\n" in proc.stdout
    assert "being run now" not in nepi_lab("sweep", "status", sweep.path).stdout


def test_sweep_status_caps_the_rows_and_says_how_many_are_left_out(sweeps):
    proc = nepi_lab("sweep", "status", sweeps["long"])
    assert proc.returncode == 0, proc.stderr
    assert "  0 done, 0 failed, 44 pending, 1 running, 0 abandoned" in proc.stdout
    assert len(sweep_rows(proc.stdout)) == 40
    assert proc.stdout.splitlines()[-1] == "... 5 more runs not shown (--all shows every run)"
    every = nepi_lab("sweep", "status", "--all", sweeps["long"])
    assert every.returncode == 0 and len(sweep_rows(every.stdout)) == 45
    assert "not shown" not in every.stdout


def test_sweep_status_refuses_what_is_not_a_sweep_in_one_line(tmp_path, sweeps, finished_run):
    refused(nepi_lab("sweep", "status", str(tmp_path / "nowhere")), "nepi-lab sweep status:",
            "no such directory")
    file = tmp_path / "file"
    file.write_text("x")
    refused(nepi_lab("sweep", "status", str(file)), "not a directory")
    refused(nepi_lab("sweep", "status", finished_run), "not a sweep directory")
    damaged = tmp_path / "damaged"
    shutil.copytree(sweeps["finished"], damaged)
    (damaged / "sweep.json").write_text('{"format": "nepi_lab.sweep", "version": 1, "exp_id": "x"')
    refused(nepi_lab("sweep", "status", str(damaged)), "sweep.json is damaged")
    (damaged / "sweep.json").write_text('{"format": "nepi_lab.sweep", "version": 1, "exp_id": "x", '
                                        '"parameters": ["n"], "points": [{"n": 1}], "repetitions": 1, '
                                        '"runs": [{"point": 7, "repetition": 0, "state": "done"}]}')
    refused(nepi_lab("sweep", "status", str(damaged)), "runs[0] is not a run entry")
    proc = nepi_lab("sweep")
    assert proc.returncode == USAGE_STATUS and "status" in proc.stderr
