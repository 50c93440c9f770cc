"""Processes that leave their process group are still stopped (issue 11, item 7).

``setsid`` (and daemons) make a process the leader of a session and a group of its own,
so killing the command's group misses it.  Release finds it all the same: by the run's
marker in its environment, among the processes of the node's cgroup where this machine
allows one (root, cgroup v2), else among all processes; on an SSH host by the marker.
Each local case runs with and without cgroups.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

from nepi_lab import ResourceState
from nepi_lab.resources.linux import _tracking

from .conftest import all_gone, processes_with, run_on_loop, wait_for_processes
from .sshd import sshd  # noqa: F401 - the session fixture

pytestmark = pytest.mark.faults

S = ResourceState

#: Commands whose ``sleep`` leaves the shell's process group and outlives the shell (each
#: gives it a moment to leave before the shell ends, which kills what is left in its group).
ESCAPES = {
    "setsid -f": "setsid -f sleep 301; sleep 0.5; echo x",
    "setsid &": "setsid sleep 301 & sleep 0.5; echo x",
    "setsid double fork": "(setsid sh -c 'sleep 301 &' &); sleep 0.5; echo x",
    "nohup &": "nohup setsid sleep 301 >/dev/null 2>&1 & sleep 0.5; echo x",
}


@pytest.fixture(params=["cgroup", "marker"])
def tracking(request, monkeypatch):
    """Run the test with the node's cgroup, then with the marker alone."""
    if request.param == "cgroup":
        if _tracking.cgroup_base() is None:
            pytest.skip("no writable cgroup v2 here (needs root and a cgroup2 mount)")
    else:
        monkeypatch.setattr(_tracking, "_base", None)
    return request.param


def escaped_sleepers(marker: str, count: int = 1) -> list:
    """The ``sleep 301`` processes carrying ``marker``, once there are ``count`` (a
    double fork's middle shell may still be there for a moment)."""
    deadline = time.monotonic() + 5
    while True:
        found = [p for p in processes_with(marker) if p.cmdline() == ["sleep", "301"]]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.01)


def our_cgroups() -> list[str]:
    base = _tracking.cgroup_base()
    if base is None:
        return []
    return [name for name in os.listdir(base) if name.startswith("nepi_lab.")]


def finished_with_an_escape(ec, node, marker, command):
    """Run ``command`` as an application of ``node`` to its end: it FINISHED, its shell is
    gone, and the one process it sent out of its group lives on until release."""
    app = ec.register_resource("linux::Application", connectedTo=node, command=command, env=f"MARK={marker}")
    ec.deploy()
    ec.wait_finished(app, timeout=20)
    assert ec.state(app) == S.FINISHED
    assert ec.trace(app, "stdout") == "x\n"
    (sleeper,) = escaped_sleepers(marker)
    return app, sleeper


@pytest.mark.parametrize("command", ESCAPES.values(), ids=ESCAPES.keys())
def test_release_stops_what_left_the_process_group(ec, node, marker, tracking, command):
    app, sleeper = finished_with_an_escape(ec, node, marker, command)
    assert os.getsid(sleeper.pid) != os.getsid(os.getpid())
    ec.release(app)
    assert all_gone(marker)
    ec.release()
    assert ec.run_id not in "".join(our_cgroups())  # the node's cgroup is removed with it


def test_shutdown_stops_escaped_processes_of_every_application(ec, node, marker, tracking):
    apps = [ec.register_resource("linux::Application", connectedTo=node, command=command,
                                 env=f"MARK={marker}") for command in ESCAPES.values()]
    ec.deploy()
    ec.wait_finished(apps, timeout=20)
    assert len(escaped_sleepers(marker, len(apps))) == len(apps)
    ec.shutdown()
    assert all_gone(marker)
    assert [name for name in our_cgroups() if ec.run_id in name] == []


def test_the_escaped_processes_of_a_running_application_are_stopped_with_it(ec, node, marker, tracking):
    app = ec.register_resource("linux::Application", connectedTo=node,
                               command="setsid -f sleep 301; sleep 300", env=f"MARK={marker}")
    ec.deploy()
    ec.wait_started(app, timeout=20)
    assert len(wait_for_processes(marker, 3)) == 3  # the shell, its sleep, the escaped sleep
    ec.release()
    assert all_gone(marker)


def test_every_process_carries_the_run_marker(ec, node, marker, tracking):
    app = ec.register_resource("linux::Application", connectedTo=node,
                               command="setsid -f sleep 301; sleep 0.5", env=f"MARK={marker}")
    ec.deploy()
    ec.wait_finished(app, timeout=20)
    (sleeper,) = escaped_sleepers(marker)
    assert sleeper.environ()[_tracking.RUN_VARIABLE] == f"{ec.exp_id}/{ec.run_id}/{app}"
    if tracking == "cgroup":
        with open(f"/proc/{sleeper.pid}/cgroup") as f:
            assert f"/nepi_lab.{ec.exp_id}.{ec.run_id}/{node}\n" in f.read()  # the node's cgroup
    ec.release()
    assert all_gone(marker)


SCRIPT = textwrap.dedent("""
    import sys
    from nepi_lab import ExperimentController
    ec = ExperimentController(exp_id="escapes", local_dir={results!r})
    node = ec.register_resource("linux::Node", home={home!r})
    app = ec.register_resource("linux::Application", connectedTo=node,
                               command="setsid -f sleep 301; sleep 0.5",
                               env="MARK=" + {head!r} + {tail!r})  # not the marker: this command line
    ec.deploy()
    ec.wait_finished(timeout=10)
    sys.exit(0)  # no shutdown: the exit hook releases
""")


@pytest.mark.parametrize("cgroups", ["1", "0"])
def test_interpreter_exit_stops_escaped_processes(tmp_path, home, marker, cgroups):
    code = SCRIPT.format(results=str(tmp_path / "results"), home=home, head=marker[:10], tail=marker[10:])
    env = {**os.environ, _tracking.CGROUPS_ENV: cgroups}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    assert all_gone(marker)


def test_an_application_that_started_nothing_costs_no_sweep(ec, node, monkeypatch):
    """Marker mode scans /proc only for owners that started processes."""
    monkeypatch.setattr(_tracking, "_base", None)
    scans = []
    real = _tracking.kill_marked
    monkeypatch.setattr(_tracking, "kill_marked", lambda *a, **k: scans.append(a) or real(*a, **k))
    app = ec.register_resource("linux::Application", connectedTo=node)  # no command: nothing runs
    ec.deploy()
    ec.wait_finished(app, timeout=10)
    ec.release()
    assert scans == []


def test_processes_without_the_marker_are_never_touched(ec, node, marker, tracking):
    stranger = subprocess.Popen(["sleep", "300"], env={**os.environ, "MARK": marker}, start_new_session=True)
    try:
        app = ec.register_resource("linux::Application", connectedTo=node, command="setsid -f sleep 301")
        ec.deploy()
        ec.wait_finished(app, timeout=20)
        ec.release()
        assert stranger.poll() is None
        assert [p.pid for p in processes_with(marker)] == [stranger.pid]
    finally:
        stranger.kill()
        stranger.wait()


# -- over SSH (the marker, found by one command on the host), and the node's own commands ----------


@pytest.mark.parametrize("command", ESCAPES.values(), ids=ESCAPES.keys())
def test_release_stops_what_left_the_process_group_over_ssh(ec, sshd, marker, command):  # noqa: F811
    node = ec.register_resource("linux::Node", **sshd.node_attributes())
    app, sleeper = finished_with_an_escape(ec, node, marker, command)
    assert sleeper.username() == sshd.user
    ec.release(app)
    assert all_gone(marker)


@pytest.mark.parametrize("where", ["localhost", "ssh"])
def test_node_release_stops_what_node_commands_left(ec, sshd, home, marker, where):  # noqa: F811
    attributes = sshd.node_attributes() if where == "ssh" else {"home": home}
    node = ec.register_resource("linux::Node", **attributes)
    ec.deploy()
    ec.wait_deployed(node, timeout=20)
    rm = ec.get_resource(node)
    command = f"setsid -f sleep 301 >/dev/null 2>&1; sleep 0.5 # {marker}"
    run_on_loop(ec, rm.run(command, env={"MARK": marker}))
    assert escaped_sleepers(marker)
    ec.release()
    assert all_gone(marker)


def test_node_release_stops_a_process_that_rewrote_its_environment(ec, node, marker):
    """In the node's cgroup, even a process without the marker is stopped with the node."""
    if _tracking.cgroup_base() is None:
        pytest.skip("no writable cgroup v2 here (needs root and a cgroup2 mount)")
    app = ec.register_resource("linux::Application", connectedTo=node,
                               command=f"setsid -f env -i MARK={marker} sleep 301; sleep 0.5")
    ec.deploy()
    ec.wait_finished(app, timeout=20)
    (sleeper,) = escaped_sleepers(marker)
    assert _tracking.RUN_VARIABLE not in sleeper.environ()
    ec.release(app)
    assert processes_with(marker)  # the application's release cannot tell it is its own
    ec.release()
    assert all_gone(marker)  # the node's release kills what its cgroup holds


@pytest.mark.parametrize(("field", "path"), [
    ("/sys/fs/cgroup", "/sys/fs/cgroup"),
    ("/mnt/my\\040cgroups", "/mnt/my cgroups"),
    ("/mnt/caf\\303\\251", "/mnt/café"),
])
def test_mountinfo_paths_are_read_back(field, path):
    """The cgroup2 mount point is found also where its path has escapes in mountinfo."""
    assert _tracking._unescape(field) == path
