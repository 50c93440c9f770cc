"""What a controller killed by SIGKILL leaves of ns-3, and ``nepi-lab cleanup``.

Real controllers in processes of their own, each with its own shared ns-3 process
(which imports ns-3: these tests are slow), killed by SIGKILL mid-simulation or while
their shared process still imports ns-3; then the real ``nepi-lab cleanup``.  Each
test's controllers use a temporary folder of its own (``TMPDIR``), so another user's or
test's ns-3 folders are never in the way.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile

import psutil
import pytest

from nepi_lab.resources.ns3 import _process

from ...guards import wait_until
from .conftest import needs_ns3

pytestmark = [pytest.mark.slow, needs_ns3]

COMMAND = [sys.executable, "-m", "nepi_lab.cli"]

#: A controller with a simulation that runs for minutes of wall time (a ping every
#: millisecond for a simulated day); says "running" once it runs, or "deployed" at once
#: with ``now``.  It never ends by itself.
CONTROLLER = """
import sys, time
from nepi_lab import ExperimentController
ec = ExperimentController(exp_id="ns3-cleanup", local_dir=sys.argv[1])
sim = ec.register_resource("ns3::Simulation", stopTime=86400.0)
a, b = (ec.register_resource("ns3::Node", connectedTo=sim) for _ in range(2))
link = ec.register_resource("ns3::PointToPointLink", connectedTo=a)
ec.register_connection(link, b)
ec.register_resource("ns3::Ping", connectedTo=a, target=b, interval=0.001)
ec.deploy()
if sys.argv[2] != "now":
    ec.wait_started(sim, timeout=300)
    print("running", flush=True)
else:
    print("deployed", flush=True)
time.sleep(600)
"""


@pytest.fixture
def temporary():
    """The controllers' temporary folder: a short path (the shared process's Unix socket
    is in it; a socket's path has at most 107 bytes)."""
    folder = tempfile.mkdtemp(prefix="nl-test-")
    yield folder
    shutil.rmtree(folder)


@pytest.fixture
def environment(tmp_path, temporary):
    """The controllers' and the cleanup's environment: their own temporary folder, state
    folder (the runs index) and results."""
    return dict(os.environ, TMPDIR=temporary, NEPI_LAB_STATE=str(tmp_path / "state"),
                NEPI_LAB_RESULTS=str(tmp_path / "results"))


@pytest.fixture
def controllers(tmp_path, environment):
    """``start(now=False)`` starts a controller process; every one is killed at the end,
    with its ns-3 processes."""
    started: list[subprocess.Popen] = []

    def start(now: bool = False) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", CONTROLLER, str(tmp_path / "results"),
                                 "now" if now else "wait"], env=environment, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)
    for proc in started:
        for pid in ns3_processes(proc.pid):
            os.kill(pid, signal.SIGKILL)
        assert wait_until(lambda proc=proc: ns3_processes(proc.pid) == [], 10)


def ns3_processes(owner: int) -> list[int]:
    """The ns-3 processes (shared, simulation) a controller process started, alive."""
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()
            and (_process._owner_of(int(entry)) or {}).get("pid") == owner and _process._alive(int(entry))]


def parents(pids: list[int]) -> list[int]:
    return [psutil.Process(pid).ppid() for pid in pids]


def folders(temporary: str, owner: int) -> list[str]:
    return glob.glob(os.path.join(temporary, f"nepi_lab-ns3-{owner}-*"))


def cleanup(environment, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*COMMAND, "cleanup", *args], capture_output=True, text=True, timeout=120,
                          env=environment)


def test_a_controller_killed_mid_simulation_leaves_no_ns3_process_and_cleanup_removes_its_folder(
        temporary, environment, controllers):
    proc = controllers()
    assert proc.stdout.readline() == "running\n", proc.stderr.read()
    running = ns3_processes(proc.pid)
    [shared] = [pid for pid in running if psutil.Process(pid).ppid() == proc.pid]
    assert sorted(parents(running)) == sorted([proc.pid, shared]), running  # shared + its fork
    [folder] = folders(temporary, proc.pid)
    assert os.path.exists(os.path.join(folder, "zygote.sock"))

    proc.kill()  # SIGKILL: no release, no exit handler
    proc.wait()
    # the shared process reads the end of its input, the simulation dies with it
    # (a process of 640 MB takes a moment to exit)
    assert wait_until(lambda: not any(_process._alive(pid) for pid in running), 10), running
    assert os.path.isdir(folder)  # nothing of the controller's was left to remove it

    dry = cleanup(environment, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"would remove the ns-3 folder {folder} of a dead controller" in dry.stdout
    assert os.path.isdir(folder)

    done = cleanup(environment)
    assert done.returncode == 0, done.stderr
    assert f"removed the ns-3 folder {folder} of a dead controller" in done.stdout
    assert "ns-3 processes" not in done.stdout  # there was none to kill
    assert not os.path.exists(folder)

    again = cleanup(environment)
    assert again.returncode == 0 and "ns-3" not in again.stdout, again.stdout  # (other runs' may show)


def test_cleanup_kills_a_shared_process_still_importing_ns3_and_keeps_a_live_controllers(
        temporary, environment, controllers):
    live, killed = controllers(now=True), controllers(now=True)
    for proc in (live, killed):
        assert proc.stdout.readline() == "deployed\n", proc.stderr.read()
        # the shared process started: it imports ns-3 for seconds
        assert wait_until(lambda proc=proc: len(ns3_processes(proc.pid)) == 1, 30), proc.pid
    [shared] = ns3_processes(killed.pid)
    [live_shared] = ns3_processes(live.pid)
    [folder], [live_folder] = folders(temporary, killed.pid), folders(temporary, live.pid)

    killed.kill()
    killed.wait()
    assert _process._alive(shared)  # its input ended, but it reads it only once ns-3 is imported

    done = cleanup(environment)
    assert done.returncode == 0, done.stderr
    assert f"killed 1 ns-3 processes of dead controllers ({shared})" in done.stdout
    assert f"removed the ns-3 folder {folder} of a dead controller" in done.stdout
    assert f"kept the ns-3 folder {live_folder} of a live controller (process {live.pid})" in done.stdout
    assert wait_until(lambda: not _process._alive(shared), 5)
    assert not os.path.exists(folder)
    assert os.path.isdir(live_folder) and _process._alive(live_shared)

    live.terminate()  # SIGTERM: the controller releases and its exit handler ends the shared process
    live.communicate(timeout=60)
    assert wait_until(lambda: ns3_processes(live.pid) == [], 10)
    assert not os.path.exists(live_folder)
