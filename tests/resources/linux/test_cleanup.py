"""``nepi-lab cleanup`` after a ``kill -9`` of the controlling script (issue 11, item 5).

The killed run's processes, here and on an SSH host, are stopped, what its hosts hold
is collected into its run directory, and the run is marked ``"end": "killed"``; a live
run beside it is left exactly as it was.  The command is tested by its exit status and
its messages, as a user sees it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap

import pytest

from nepi_lab import ResourceState
from nepi_lab.resources.linux import _tracking

from .conftest import all_gone, processes_with, wait_for_processes, wait_for_trace
from .sshd import sshd  # noqa: F401 - the session fixture

pytestmark = pytest.mark.faults

S = ResourceState

SCRIPT = textwrap.dedent("""
    import time
    from nepi_lab import ExperimentController
    ec = ExperimentController(exp_id="killed", local_dir={results!r})
    here = ec.register_resource("linux::Node", home={home!r})
    there = ec.register_resource("linux::Node", **{ssh!r})
    mark = "MARK=" + {head!r} + {tail!r}  # not the marker itself: this command line
    apps = [ec.register_resource("linux::Application", connectedTo=node, env=mark,
                                 command="echo started; echo noted > notes.txt; setsid -f sleep 300; "
                                         "sleep 300")
            for node in (here, there)]
    ec.deploy()
    ec.wait_started(timeout=30)
    while not all(ec.trace(a, "stdout") == "started\\n" for a in apps):
        time.sleep(0.01)
    print(ec.run_dir, *apps, flush=True)
    time.sleep(600)
""")


def cleanup(*args):
    return subprocess.run([sys.executable, "-m", "nepi_lab.cli", "cleanup", *args], capture_output=True,
                          text=True, timeout=120)


def description(run_dir):
    with open(os.path.join(run_dir, "experiment.json")) as f:
        return json.load(f)


@pytest.fixture
def killed_run(tmp_path, home, marker, sshd):  # noqa: F811
    """A script that ran local and SSH applications, killed with SIGKILL: (run_dir, apps)."""
    code = SCRIPT.format(results=str(tmp_path / "results"), home=home, ssh=sshd.node_attributes(),
                         head=marker[:10], tail=marker[10:])
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    line = proc.stdout.readline().split()
    if not line:
        proc.kill()
        pytest.fail(f"the script did not start: {proc.communicate()[1]}")
    run_dir, apps = line[0], [int(g) for g in line[1:]]
    # two applications, each: its shell, its sleep, an escaped sleep (and the remote supervisor)
    assert len(wait_for_processes(marker, 6)) >= 6
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    try:
        yield run_dir, apps
    finally:
        for p in processes_with(marker):  # only if the test failed
            p.kill()


def test_cleanup_stops_a_killed_runs_processes_collects_its_traces_and_marks_it(
        killed_run, ec, node, sshd, marker, run_records):  # noqa: F811
    run_dir, (local_app, remote_app) = killed_run
    run = "killed/" + os.path.basename(run_dir)
    # kill -9: nothing ran; the processes live on and the run says RUNNING
    assert len(processes_with(marker)) >= 6
    assert description(run_dir)["ecstate"] == "RUNNING" and description(run_dir)["end"] is None

    # a live run beside it, here and on the same SSH account
    live_marker = marker.replace("-test-", "-live-")  # not containing the other
    there = ec.register_resource("linux::Node", **sshd.node_attributes())
    live = [ec.register_resource("linux::Application", connectedTo=n, env=f"MARK={live_marker}",
                                 command="echo live; setsid -f sleep 300; sleep 300") for n in (node, there)]
    ec.deploy()
    ec.wait_started(live, timeout=30)
    for a in live:
        assert wait_for_trace(ec, a, "stdout", "live\n") == "live\n"
    live_processes = wait_for_processes(live_marker, 6)
    live_description = description(ec.run_dir)

    dry = cleanup("--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"would stop what run {run} left on localhost" in dry.stdout
    assert f"would stop what run {run} left on {sshd.node_attributes()['username']}@" in dry.stdout
    assert len(processes_with(marker)) >= 6  # a dry run changes nothing

    done = cleanup()
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(rf"stopped [1-9]\d* processes of run {run} on localhost\n", done.stdout)
    assert re.search(rf"stopped [1-9]\d* processes of run {run} on {sshd.user}@", done.stdout)
    assert f"collected 3 traces of run {run} from localhost into {run_dir}" in done.stdout  # notes.txt
    assert f"marked run {run} as killed in {run_dir}/experiment.json" in done.stdout
    assert f"kept run linux/{ec.run_id} of a live process ({os.getpid()})" in done.stdout
    assert all_gone(marker)  # every process of the killed run, here and there, escaped ones too
    base = _tracking.cgroup_base()
    if base is not None:  # and its cgroups here
        assert not os.path.exists(os.path.join(base, "nepi_lab." + run.replace("/", ".")))
    for app in (local_app, remote_app):
        with open(os.path.join(run_dir, f"{app}-linux.Application", "stdout")) as f:
            assert f.read() == "started\n"
        with open(os.path.join(run_dir, f"{app}-linux.Application", "notes.txt")) as f:  # by file name
            assert f.read() == "noted\n"
    marked = description(run_dir)
    assert marked["end"] == "killed" and marked["cleanup"]["by"] == "nepi-lab cleanup"
    assert os.listdir(run_records / "runs") == [f"linux.{ec.run_id}.json"]  # only the live run's

    # the live run is untouched: its processes, its record, its description
    assert all(p.is_running() for p in live_processes)
    assert description(ec.run_dir)["end"] is None
    assert description(ec.run_dir)["resources"] == live_description["resources"]
    assert [ec.state(a) for a in live] == [S.STARTED, S.STARTED]
    ec.shutdown()
    assert all_gone(live_marker)
    after = cleanup()  # other runs on this machine (namespaces of live runs) may show up too
    assert after.returncode == 0 and run not in after.stdout and ec.run_id not in after.stdout
