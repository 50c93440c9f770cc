"""An SSH host lost mid-run (issue 11, item 3), with a real sshd killed and restarted.

Within the node's ``reconnectTimeout`` the connection is retried with backoff: the
resources keep their state, ``ec.explain`` says what goes on, and once sshd is back the
run goes on (the remote supervisors are re-attached) and the traces are complete.  A
host lost for good is reported at release, its run's ``hosts.json`` lists what stays
there, and ``nepi-lab cleanup`` stops it and collects the traces once the host answers.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest

from nepi_lab import ResourceState

from ...guards import wait_until
from .conftest import all_gone, processes_with, wait_for_processes, wait_for_trace
from .sshd import sshd_or_skip

pytestmark = pytest.mark.faults

S = ResourceState
LINES = "".join(f"line {i}\n" for i in range(1, 17))


@pytest.fixture
def doomed_sshd():
    """An sshd of its own, for the tests that kill it."""
    yield from sshd_or_skip()


def cleanup(*args):
    return subprocess.run([sys.executable, "-m", "nepi_lab.cli", "cleanup", *args], capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("outage", [0.3, 5.0], ids=["0.3 s", "5 s"])
def test_sshd_restarted_within_the_reconnect_window_the_run_goes_on(ec, doomed_sshd, marker, outage):
    node = ec.register_resource("linux::Node", **doomed_sshd.node_attributes())  # reconnectTimeout: 30 s
    app = ec.register_resource("linux::Application", connectedTo=node, env=f"MARK={marker}",
                               command="for i in $(seq 16); do echo line $i; sleep 0.5; done")
    ec.deploy()
    ec.wait_started(app, timeout=20)
    assert wait_for_processes(marker, 2)
    doomed_sshd.kill()
    killed_at = time.monotonic()
    # while it reconnects, nothing changes state, and explain says why
    assert wait_until(lambda: "reconnecting" in ec.explain(node), 5), ec.explain(node)
    assert "reconnecting" in ec.explain(app) and "keeps running on the host" in ec.explain(app)
    time.sleep(max(0.0, outage - (time.monotonic() - killed_at)))
    assert ec.state(node) == S.STARTED and ec.state(app) == S.STARTED
    doomed_sshd.restart()
    ec.wait_finished(app, timeout=40)
    assert ec.state(app) == S.FINISHED, ec.get_resource(app).failure
    assert ec.trace(app, "stdout") == LINES
    assert ec.state(node) == S.STARTED
    assert "reconnecting" not in ec.explain(node) and "reconnecting" not in ec.explain(app)
    ec.release()
    with open(os.path.join(ec.get_resource(app).results_dir, "stdout")) as f:
        assert f.read() == LINES  # the collected copy is complete


def test_sshd_lost_for_good_is_recorded_at_release_and_cleaned_up_later(ec, doomed_sshd, marker,
                                                                          run_records):
    node = ec.register_resource("linux::Node", critical=False, reconnectTimeout=1,
                                **doomed_sshd.node_attributes())
    app = ec.register_resource("linux::Application", connectedTo=node, critical=False,
                               command="echo started; sleep 300", env=f"MARK={marker}")
    ec.deploy()
    ec.wait_started(app, timeout=20)
    assert wait_for_trace(ec, app, "stdout", "started\n") == "started\n"
    rm = ec.get_resource(app)
    app_home, run_dir, where = rm.app_home, ec.run_dir, ec.get_resource(node).executor.where
    doomed_sshd.kill()
    ec.wait_finished(app, timeout=20)
    assert ec.state(app) == S.FAILED
    assert "not restored within 1 s (reconnectTimeout" in rm.failure.message
    assert wait_until(lambda: ec.state(node) == S.FAILED, 10)

    ec.release(timeout=30)
    # release says what stays on the host ...
    for guid in (app, node):
        (released,) = [e for e in ec.events.for_guid(guid) if e.new == S.RELEASED]
        assert "LeftOnHostError" in released.detail and f"cannot reach {where}" in released.detail
    # ... and the run record lists it: host, user, process groups, folders
    with open(os.path.join(run_dir, "hosts.json")) as f:
        entry = json.load(f)["hosts"][str(node)]
    assert entry["state"] == "unreachable" and entry["where"] == where
    assert entry["ssh"]["username"] == doomed_sshd.user and entry["ssh"]["port"] == doomed_sshd.port
    left = entry["left"]
    running = processes_with(marker)  # the command lives on, as on a host whose sshd crashed
    assert running
    assert {p["process_group"] for p in left["processes"]} == {os.getpgid(p.pid) for p in running
                                                              if p.name() == "sleep"}
    assert app_home in left["folders"]
    assert len(os.listdir(run_records / "runs")) == 1
    ec.shutdown()

    # while the host stays down, cleanup says so and keeps the record
    down = cleanup()
    assert down.returncode == 3, down.stdout + down.stderr
    assert f"could not reach {where} for run linux/{ec.run_id}" in down.stderr
    assert processes_with(marker) and len(os.listdir(run_records / "runs")) == 1

    doomed_sshd.restart()
    assert f"would stop what run linux/{ec.run_id} left on {where}" in cleanup("--dry-run").stdout
    done = cleanup()
    assert done.returncode == 0, done.stdout + done.stderr
    # the supervisor and the command (its shell, its sleep)
    assert re.search(rf"stopped [23] processes of run linux/{ec.run_id} on {re.escape(where)}\n", done.stdout)
    assert f"collected 2 traces of run linux/{ec.run_id} from {where}" in done.stdout
    assert all_gone(marker)
    with open(os.path.join(rm.results_dir, "stdout")) as f:
        assert f.read() == "started\n"
    with open(os.path.join(run_dir, "hosts.json")) as f:
        assert json.load(f)["hosts"][str(node)]["state"] == "cleaned"
    assert os.listdir(run_records / "runs") == []
    assert not os.path.exists(app_home)  # cleanExperiment: the host's copy goes once collected
    assert ec.run_id not in cleanup().stdout  # other runs on this machine may show up
