"""Nothing is left behind: namespaces, veths, bridges, netfilter rules and the processes in them.

Release, a critical failure, Ctrl-C in a script and interpreter exit each remove
everything the run made; after a ``kill -9``, ``nepi-lab cleanup`` does, without
touching a live run.  (The ``nothing_left_behind`` fixture compares ``ip netns list``,
the root namespace's ``ip link`` and the run records before and after every test.)
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import psutil
import pytest

from nepi_lab import ExperimentFailedError, ResourceState, topology
from nepi_lab.resources.linux import _tracking
from nepi_lab.resources.netns import run_prefix

from .conftest import namespaces, records, wait_until

S = ResourceState


def ours(prefix):
    return {n for n in namespaces() if n.startswith(prefix)}


def processes_with(marker, name=None):
    """Live processes whose environment has MARK=marker (and called ``name``, if given)."""
    found = []
    for p in psutil.process_iter(["status", "name"]):
        try:
            if (p.info["status"] != psutil.STATUS_ZOMBIE and p.environ().get("MARK") == marker
                    and name in (None, p.info["name"])):
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def nft_tables(namespace):
    return subprocess.run(["ip", "netns", "exec", namespace, "nft", "list", "tables"], capture_output=True,
                          text=True).stdout


def test_release_removes_namespaces_links_bridges_and_rules(ec, home):
    graph = topology.star(2, switch=True, loss=5.0, rate="50mbit")
    graph.add_edge("h1", "h3", loss=5.0)
    topo = topology.build(ec, graph)
    for node in topo.nodes.values():
        ec.set(node, "home", home)
    ec.deploy()
    ec.wait_deployed(timeout=30)
    prefix = run_prefix(ec)
    assert ours(prefix) == {prefix + n for n in ("c", "h1", "h2", "h3")}
    assert "netdev nepi_lab_" in nft_tables(prefix + "h1")
    record = f"{prefix[2:-1]}.json"
    assert record in records()
    ec.release()
    assert ours(prefix) == set()
    assert record not in records()
    assert all(ec.state(g) == S.RELEASED for g in topo.guids)


def test_a_critical_failure_removes_everything(ec, home):
    topo = topology.build(ec, topology.line(3, loss=1.0))
    for node in topo.nodes.values():
        ec.set(node, "home", home)
    ec.register_resource("linux::Application", connectedTo=topo.nodes["h2"], command="sleep 0.3; exit 3")
    ec.deploy()
    with pytest.raises(ExperimentFailedError):
        ec.wait_finished(timeout=30)
    ec.wait_released(timeout=30)
    assert ours(run_prefix(ec)) == set()
    assert ec.failures[0].returncode == 3


# -- the interpreter goes away ---------------------------------------------------------------

SCRIPT = textwrap.dedent("""
    import sys
    from nepi_lab import ExperimentController, topology
    from nepi_lab.resources.netns import run_prefix
    ec = ExperimentController(exp_id="goes-away", local_dir={results!r})
    topo = topology.build(ec, topology.star(2, loss=1.0, rate="100mbit"))
    for name, node in topo.nodes.items():
        ec.set(node, "home", {home!r})
        ec.register_resource("linux::Application", connectedTo=node, command="sleep 100",
                             env="MARK={marker}")
    ec.deploy()
    ec.wait_started(timeout=30)
    print(run_prefix(ec), flush=True)
    sys.stdin.readline()  # the test looks around first
    print("going on", flush=True)
    {ending}
""")


def start_script(tmp_path, home, marker, ending):
    code = SCRIPT.format(results=str(tmp_path / "results"), home=home, marker=marker, ending=ending)
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    prefix = proc.stdout.readline().strip()
    if not prefix.startswith("nl"):
        proc.kill()
        pytest.fail(f"the script did not start: {proc.communicate()[1]}")
    try:
        assert ours(prefix) == {prefix + n for n in ("c", "h1", "h2")}
        assert wait_until(lambda: len(processes_with(marker, "sleep")) == 3)
    except BaseException:
        proc.send_signal(signal.SIGINT)  # it removes what it made on its way out
        proc.communicate(timeout=30)
        raise
    return proc, prefix


def go_on(proc):
    """Let the script go on to its ending."""
    proc.stdin.write("\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == "going on"


@pytest.fixture
def marker():
    return f"nepi-lab-netns-{uuid.uuid4().hex}"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_to_a_script_removes_everything(tmp_path, home, marker, sig):
    proc, prefix = start_script(tmp_path, home, marker, "ec.wait_finished()")
    go_on(proc)
    time.sleep(0.2)  # into wait_finished
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    if sig == signal.SIGINT:
        assert "KeyboardInterrupt" in err
    else:  # released, then died of the signal as usual
        assert proc.returncode == -signal.SIGTERM, err
    assert ours(prefix) == set()
    assert wait_until(lambda: not processes_with(marker))


def test_interpreter_exit_without_shutdown_removes_everything(tmp_path, home, marker):
    proc, prefix = start_script(tmp_path, home, marker, "sys.exit(0)")
    go_on(proc)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert ours(prefix) == set()
    assert wait_until(lambda: not processes_with(marker))


def test_the_last_resort_at_exit_removes_what_release_could_not(tmp_path, home, marker):
    """A namespace whose orderly release never ran (the loop was stuck) goes at exit anyway."""
    ending = "; ".join([
        "import threading, nepi_lab.core.controller as controller",
        "ec._runner.loop.call_soon_threadsafe(lambda: threading.Event().wait(60))",  # the loop hangs
        "controller._live_controllers.clear()",  # no orderly shutdown, as if it had timed out
        "sys.exit(0)",
    ])
    proc, prefix = start_script(tmp_path, home, marker, ending)
    go_on(proc)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert ours(prefix) == set()
    assert wait_until(lambda: not processes_with(marker))
    # the run was never released in order: it stays recorded until nepi-lab cleanup
    # collects what its hosts still hold and marks it
    done = cleanup()
    assert done.returncode == 0, done.stderr
    assert "marked run goes-away/" in done.stdout


def cleanup(*args):
    return subprocess.run([sys.executable, "-m", "nepi_lab.cli", "cleanup", *args], capture_output=True,
                          text=True, timeout=60)


def test_nepi_lab_cleanup_after_a_killed_run(tmp_path, home, marker):
    proc, prefix = start_script(tmp_path, home, marker, "")
    proc.kill()
    proc.communicate(timeout=30)
    # kill -9: nothing ran; the namespaces, the record and the applications are still there
    assert ours(prefix) == {prefix + n for n in ("c", "h1", "h2")}
    assert len(processes_with(marker, "sleep")) == 3
    dry = cleanup("--dry-run")
    assert dry.returncode == 0 and f"would remove network namespace {prefix}h1" in dry.stdout
    assert len(ours(prefix)) == 3
    done = cleanup()
    assert done.returncode == 0, done.stderr
    assert f"removed network namespace {prefix}c" in done.stdout
    # three shells, each with its sleep: stopped by the run's marker, or killed in its namespaces
    assert re.search(r"(stopped|killed) [1-9]\d* processes", done.stdout)
    assert ours(prefix) == set()
    assert wait_until(lambda: not processes_with(marker))
    assert prefix not in cleanup().stdout
    assert run_cgroups_left(tmp_path) == []  # namespace nodes make none here, so none is left


def run_cgroups_left(tmp_path):
    """The cgroup folders of the script's run on this machine (it made none: its commands
    ran in namespaces), found by name under this interpreter's cgroup."""
    base = _tracking.cgroup_base()
    if base is None:
        return []
    (run,) = os.listdir(tmp_path / "results" / "goes-away")
    return [name for name in os.listdir(base) if name == f"nepi_lab.goes-away.{run}"]


def test_nepi_lab_cleanup_leaves_a_live_run_alone(ec, home):
    node = ec.register_resource("netns::Node", name="alive", home=home)
    ec.deploy()
    ec.wait_deployed(timeout=30)
    prefix = run_prefix(ec)
    done = cleanup()
    assert done.returncode == 0, done.stderr
    assert f"kept the namespaces {prefix}* of a live run (process {os.getpid()})" in done.stdout
    assert ours(prefix) == {prefix + "alive"}
    ec.release()
    assert ec.state(node) == S.RELEASED


def test_nepi_lab_cleanup_removes_what_is_named_like_ours_and_has_no_live_owner():
    """A namespace named nl<tag>- with no record, and interfaces of that tag left in the
    root namespace (a veth pair a crash left before moving one end into its namespace),
    are leftovers; anything else is not ours.

    The pair is made in the root namespace on purpose: a veth end whose peer lives in
    the stray namespace dies with it, at a moment the kernel's namespace teardown
    chooses, so it may or may not still be there when cleanup lists the interfaces."""
    tag = "".join(random.choice("abcdefghijklmnopqrstuvwxyz234567") for _ in range(5))
    stray, other, root_end = f"nl{tag}-stray", f"not-ours-{os.getpid()}", f"nl{tag}-e0"
    subprocess.run(["ip", "netns", "add", stray], check=True)
    subprocess.run(["ip", "netns", "add", other], check=True)
    try:
        subprocess.run(["ip", "link", "add", root_end, "type", "veth", "peer", "name", f"nl{tag}-e1"],
                       check=True)
        done = cleanup()
        assert f"removed network namespace {stray}" in done.stdout
        assert f"removed interface {root_end}" in done.stdout
        assert stray not in namespaces() and other in namespaces()
        assert not {root_end, f"nl{tag}-e1"} & set(os.listdir("/sys/class/net"))
    finally:
        subprocess.run(["ip", "link", "del", root_end], capture_output=True)
        subprocess.run(["ip", "netns", "del", other], capture_output=True)
        subprocess.run(["ip", "netns", "del", stray], capture_output=True)
