"""Nothing is left behind, and the thread count stays constant.

Release, shutdown, a critical failure, Ctrl-C in a wait and interpreter exit each
stop every process the experiment started.  Processes are found by a unique marker
in their environment (children inherit it) or command line.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from nepi_lab import ResourceState

from ...guards import OwnThreads
from .conftest import all_gone, processes_with, run_on_loop, wait_for_processes

pytestmark = pytest.mark.faults

S = ResourceState


def sleepers(ec, node, marker, count=2):
    """Applications that each run a shell and two sleeps (3 processes) carrying ``marker``."""
    return [ec.register_resource("linux::Application", connectedTo=node, command="sleep 100 & sleep 100",
                                 env=f"MARK={marker}") for _ in range(count)]


def test_release_kills_everything(ec, node, marker):
    apps = sleepers(ec, node, marker)
    ec.deploy()
    ec.wait_started(apps, timeout=10)
    assert len(wait_for_processes(marker, 6)) == 6
    ec.release()
    assert all_gone(marker)
    assert all(ec.state(a) == S.RELEASED for a in apps)


def test_shutdown_kills_everything(ec, node, marker):
    apps = sleepers(ec, node, marker)
    ec.deploy()
    ec.wait_started(apps, timeout=10)
    assert len(wait_for_processes(marker, 6)) == 6
    ec.shutdown()
    assert all_gone(marker)


def test_a_critical_failure_kills_everything(ec, node, marker):
    apps = sleepers(ec, node, marker)
    bad = ec.register_resource("linux::Application", connectedTo=node, command="sleep 0.3; exit 3")
    ec.deploy()
    ec.wait_started(apps, timeout=10)
    assert len(wait_for_processes(marker, 6)) == 6
    ec.wait_released(timeout=10)
    assert all_gone(marker)
    assert ec.failures[0].guid == bad and ec.failures[0].returncode == 3


def test_release_during_build_kills_the_build(ec, node, marker):
    a = ec.register_resource("linux::Application", connectedTo=node, build="sleep 100", command="true",
                             env=f"MARK={marker}")
    ec.deploy()
    assert wait_for_processes(marker, 1)
    ec.release(timeout=10)
    assert all_gone(marker)
    assert ec.state(a) == S.RELEASED


def test_clean_processes_kills_what_the_node_started(ec, home, marker, tmp_path):
    node = ec.register_resource("linux::Node", home=home, cleanProcesses=True)
    ec.deploy()
    ec.wait_deployed(timeout=10)
    rm = ec.get_resource(node)
    out = str(tmp_path / "out")
    run_on_loop(ec, rm.spawn("sleep 100", stdout=out, stderr=out, env={"MARK": marker}))
    assert wait_for_processes(marker, 1)
    ec.release()
    assert all_gone(marker)


def test_without_clean_processes_the_node_leaves_its_own_processes(ec, home, marker, tmp_path):
    node = ec.register_resource("linux::Node", home=home, cleanProcesses=False)
    ec.deploy()
    ec.wait_deployed(timeout=10)
    rm = ec.get_resource(node)
    out = str(tmp_path / "out")
    process = run_on_loop(ec, rm.spawn("sleep 100", stdout=out, stderr=out, env={"MARK": marker}))
    ec.release()
    try:
        assert processes_with(marker)
    finally:
        ec.loop.call_soon_threadsafe(process.kill)  # the loop still runs: it reaps it
    assert all_gone(marker)


# -- the interpreter goes away ---------------------------------------------------------------

SCRIPT = textwrap.dedent("""
    import sys
    from nepi_lab import ExperimentController
    ec = ExperimentController(exp_id="goes-away", local_dir={results!r})
    node = ec.register_resource("linux::Node", home={home!r})
    for _ in range(3):
        ec.register_resource("linux::Application", connectedTo=node, command="sleep 100 & sleep 100",
                             env="MARK=" + {head!r} + {tail!r})  # not the marker: this command line
    ec.deploy()
    ec.wait_started(timeout=10)
    print("started", flush=True)
    {ending}
""")


def start_script(tmp_path, home, marker, ending):
    code = SCRIPT.format(results=str(tmp_path / "results"), home=home, head=marker[:10], tail=marker[10:],
                         ending=ending)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    line = proc.stdout.readline().strip()
    if line != "started":
        proc.kill()
        pytest.fail(f"the script did not start: {proc.communicate()[1]}")
    return proc


def final_states(tmp_path):
    (run,) = os.listdir(tmp_path / "results" / "goes-away")
    last = {}
    with open(tmp_path / "results" / "goes-away" / run / "events.jsonl") as f:
        for line in f:
            event = json.loads(line)
            last[event["guid"]] = event["to"]
    return last


def test_ctrl_c_in_wait_finished_kills_everything(tmp_path, home, marker):
    proc = start_script(tmp_path, home, marker, "ec.wait_finished()")
    assert len(wait_for_processes(marker, 9)) == 9
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert "KeyboardInterrupt" in err
    assert all_gone(marker)
    assert set(final_states(tmp_path).values()) == {"RELEASED"}
    assert os.listdir(home) == []


def test_sigterm_kills_everything(tmp_path, home, marker):
    proc = start_script(tmp_path, home, marker, "ec.wait_finished()")
    assert len(wait_for_processes(marker, 9)) == 9
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGTERM, err
    assert all_gone(marker)
    assert set(final_states(tmp_path).values()) == {"RELEASED"}
    assert os.listdir(home) == []


def test_interpreter_exit_without_shutdown_kills_everything(tmp_path, home, marker):
    proc = start_script(tmp_path, home, marker, "sys.exit(0)")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert all_gone(marker)
    assert set(final_states(tmp_path).values()) == {"RELEASED"}


INTERRUPTED_SCRIPT = textwrap.dedent("""
    import sys
    from nepi_lab import ExperimentController
    ec = ExperimentController(exp_id="goes-away", local_dir={results!r})
    node = ec.register_resource("linux::Node", home={home!r})
    for i in range(3):  # each ignores SIGTERM: a release waits 2 s, then kills
        ec.register_resource("linux::Application", connectedTo=node, stopGracePeriod=2,
                             command="trap '' TERM; echo started $MARK; sleep 100 & sleep 100; wait",
                             env="MARK=" + {head!r} + {tail!r})
    ec.deploy()
    ec.wait_started(timeout=10)
    print("started", flush=True)
    with ec:
        ec.wait_finished()
""")


def test_a_double_ctrl_c_still_collects_and_records_the_run(tmp_path, home, marker):
    """Ctrl-C in the wait, and again while the release waits for the grace period."""
    code = INTERRUPTED_SCRIPT.format(results=str(tmp_path / "results"), home=home, head=marker[:10],
                                     tail=marker[10:])
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "started"
    assert len(wait_for_processes(marker, 9)) == 9
    proc.send_signal(signal.SIGINT)  # out of wait_finished, into shutdown (the with block)
    time.sleep(0.8)
    proc.send_signal(signal.SIGINT)  # out of shutdown's wait, mid-release
    _, err = proc.communicate(timeout=60)
    assert err.count("KeyboardInterrupt") == 2, err
    assert all_gone(marker)
    assert set(final_states(tmp_path).values()) == {"RELEASED"}
    (run,) = os.listdir(tmp_path / "results" / "goes-away")
    run_dir = tmp_path / "results" / "goes-away" / run
    for guid in (2, 3, 4):  # every trace collected
        assert (run_dir / f"{guid}-linux.Application" / "stdout").read_text() == f"started {marker}\n"
    description = json.loads((run_dir / "experiment.json").read_text())
    assert (description["ecstate"], description["end"]) == ("TERMINATED", "interrupted")


def test_a_dropped_controller_is_released_at_exit(tmp_path, home, marker):
    code = textwrap.dedent(f"""
        import gc
        import time
        from nepi_lab import ExperimentController

        def forget():
            ec = ExperimentController(exp_id="goes-away", local_dir={str(tmp_path / "results")!r})
            node = ec.register_resource("linux::Node", home={home!r})
            app = ec.register_resource("linux::Application", connectedTo=node,
                                       command="echo $MARK; sleep 100",
                                       env="MARK=" + {marker[:10]!r} + {marker[10:]!r})
            ec.deploy()
            ec.wait_started(timeout=10)
            while not ec.trace(app, "stdout"):  # STARTED once spawned: let it write first
                time.sleep(0.001)

        forget()
        gc.collect()
        print("dropped", flush=True)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "dropped", proc.stderr
    assert all_gone(marker)
    assert set(final_states(tmp_path).values()) == {"RELEASED"}
    (run,) = os.listdir(tmp_path / "results" / "goes-away")
    run_dir = tmp_path / "results" / "goes-away" / run
    assert (run_dir / "2-linux.Application" / "stdout").read_text() == f"{marker}\n"
    assert json.loads((run_dir / "experiment.json").read_text())["end"] == "exit"


# -- constant threads ------------------------------------------------------------------------


def test_200_concurrent_applications_use_a_constant_number_of_threads(ec, node):
    apps = [ec.register_resource("linux::Application", connectedTo=node, command="sleep 0.3")
            for _ in range(200)]
    own = OwnThreads()
    peak = own.count()
    ec.deploy()
    deadline = time.monotonic() + 30
    while not all(ec.state(a) >= S.FINISHED for a in apps) and time.monotonic() < deadline:
        peak = max(peak, own.count())
        time.sleep(0.002)
    ec.wait_finished(apps, timeout=10)
    assert all(ec.state(a) == S.FINISHED for a in apps)
    assert peak <= 4, own.names()
    # they really ran at the same time
    assert max(ec.get_start_time(a) for a in apps) < min(ec.get_finish_time(a) for a in apps)
