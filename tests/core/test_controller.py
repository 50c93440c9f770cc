"""The controller around the lifecycle: loop modes, threads, events, graph, run directory."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time

import pytest

from nepi_lab import (
    ECState,
    ExperimentController,
    ResourceAction,
    ResourceState,
    ResultsDirectoryError,
    TaskStatus,
)

from ..faults import removed_once_made

S = ResourceState


def test_script_mode_runs_in_one_background_thread(ec):
    assert ec.loop_mode == "thread"
    node = ec.register_resource("test::Node", deploy_delay=0.2)
    app = ec.register_resource("test::Application", connectedTo=node)
    before = time.monotonic()
    ec.deploy()
    assert time.monotonic() - before < 0.1  # returns at once
    assert ec.state(app) < S.READY
    time.sleep(0.6)  # the caller does something else; the experiment goes on
    assert ec.state(app) == S.FINISHED


def test_thread_count_is_constant_at_10000_resources(ec):
    threads = []
    baseline = threading.active_count()
    ec.events.subscribe(lambda event: threads.append(threading.active_count()))
    for _ in range(10_000):
        ec.register_resource("test::Instant")
    ec.deploy()
    ec.wait_finished(timeout=60)
    ec.release(timeout=60)
    assert len(threads) >= 60_000
    assert max(threads) == baseline  # the loop thread existed before; nothing was added
    assert {ec.state(g) for g in ec.resources} == {S.RELEASED}


def test_inside_a_running_loop_as_in_jupyter(tmp_path):
    """Inside a running loop (a kernel, ``asyncio.run``) the controller still runs its own
    loop in one thread: a sync call blocks the caller's loop without re-entering it."""
    threads_before = threading.active_count()
    seen_threads = set()

    async def cell_by_cell():
        caller = asyncio.get_running_loop()
        ec = ExperimentController(exp_id="kernel", local_dir=str(tmp_path))
        assert ec.loop is not caller and threading.active_count() == threads_before + 1
        ec.events.subscribe(lambda e: e.old is not None and seen_threads.add(threading.get_ident()))
        node = ec.register_resource("test::Node", deploy_delay=0.1)
        app = ec.register_resource("test::Application", duration=0.1, connectedTo=node)
        ec.deploy()  # returns at once (its node takes 0.1 s to deploy)
        assert ec.state(app) < S.READY
        await asyncio.sleep(0.5)  # the kernel is idle between cells: changes still arrive
        assert ec.state(app) == S.FINISHED
        late = ec.register_resource("test::Application", duration=0.2, connectedTo=node)
        ec.deploy()
        queued = []
        caller.call_soon(queued.append, "the next cell")  # what a kernel has queued meanwhile
        ec.wait_finished(late, timeout=5)  # a sync call in a running loop
        assert ec.state(late) == S.FINISHED
        assert queued == []  # the caller's loop was not re-entered during the call
        await asyncio.sleep(0)
        assert queued == ["the next cell"]
        other = ec.register_resource("test::Application", duration=0.1)
        ec.deploy()
        await ec.wait_finished_async(other, timeout=5)  # the async twin
        await ec.shutdown_async()
        assert threading.active_count() == threads_before  # its thread is gone
        return ec

    ec = asyncio.run(cell_by_cell())
    # every state change is made in the controller's thread (registrations in the caller's)
    assert len(seen_threads) == 1 and threading.get_ident() not in seen_threads
    assert ec.ecstate == ECState.TERMINATED


def test_async_twins_from_another_loop(ec):
    app = ec.register_resource("test::Application", duration=0.1)

    async def elsewhere():
        ec.deploy()
        await ec.wait_finished_async(app, timeout=5)
        return await ec.trace_async(app, "log")

    assert asyncio.run(elsewhere()) == f"ran {app}\n"


def test_blocking_call_from_the_loop_thread_is_refused(ec):
    app = ec.register_resource("test::Application")
    tid = ec.schedule("0s", lambda: ec.wait_finished(app), track=True)
    deadline = time.monotonic() + 5
    while ec.get_task(tid).status == TaskStatus.NEW and time.monotonic() < deadline:
        time.sleep(0.01)
    task = ec.get_task(tid)
    assert task.status == TaskStatus.ERROR
    assert "use 'await ec.wait_finished_async" in str(task.result)


def test_schedule_runs_callbacks_and_coroutines_on_time(ec):
    calls = []
    start = time.time()
    t1 = ec.schedule("100ms", lambda: calls.append(time.time()) or "done", track=True)

    async def later():
        await asyncio.sleep(0.01)
        return 42

    t2 = ec.schedule(0.05, later, track=True)
    deadline = time.monotonic() + 5
    while (ec.get_task(t1).status, ec.get_task(t2).status) != (TaskStatus.DONE,) * 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert ec.get_task(t1).result == "done" and ec.get_task(t2).result == 42
    assert 0.1 <= calls[0] - start <= 0.12


def test_events_are_logged_to_memory_file_and_subscribers(ec):
    received = []
    unsubscribe = ec.events.subscribe(received.append)
    app = ec.register_resource("test::Application")
    ec.deploy()
    ec.wait_finished(app, timeout=5)
    unsubscribe()
    ec.release()
    assert [e.new for e in received] == [S.NEW, S.DISCOVERED, S.PROVISIONED, S.READY, S.STARTED, S.FINISHED]
    assert received[0].old is None and received[1].old == S.NEW
    assert received[-1].to_dict() == {
        "time": received[-1].time, "guid": app, "type": "test::Application",
        "from": "STARTED", "to": "FINISHED", "detail": None,
    }
    assert len(ec.events) == 7  # the release came after unsubscribing
    ec.events.flush()
    with open(os.path.join(ec.run_dir, "events.jsonl")) as f:
        lines = [json.loads(line) for line in f]
    assert lines == [e.to_dict() for e in ec.events]


def test_a_failing_subscriber_does_not_break_the_run(ec, caplog):
    ec.events.subscribe(lambda e: 1 / 0)
    app = ec.register_resource("test::Application")
    ec.deploy()
    ec.wait_finished(app, timeout=5)
    assert ec.state(app) == S.FINISHED
    assert "event subscriber" in caplog.text


def test_events_frame(ec):
    app = ec.register_resource("test::Application")
    ec.deploy()
    ec.wait_finished(app, timeout=5)
    frame = ec.events.to_dataframe()
    assert list(frame.columns) == ["time", "guid", "type", "from", "to", "detail"]
    assert list(frame["to"]) == ["NEW", "DISCOVERED", "PROVISIONED", "READY", "STARTED", "FINISHED"]


def test_graph_has_resources_connections_and_conditions(ec):
    node = ec.register_resource("test::Node")
    a = ec.register_resource("test::Application", connectedTo=node, label="server")
    b = ec.register_resource("test::Application", connectedTo=node)
    ec.register_condition(b, ResourceAction.START, a, S.STARTED, "2s")
    g = ec.graph()
    assert set(g.nodes) == {node, a, b}
    assert g.nodes[a]["type"] == "test::Application" and g.nodes[a]["state"] == S.NEW
    assert g.nodes[a]["attributes"]["label"] == "server"
    kinds = sorted((u, v, d["kind"]) for u, v, d in g.edges(data=True))
    assert kinds == sorted([(node, a, "connection"), (node, b, "connection"), (a, b, "condition")])
    (cond,) = [d for _, _, d in g.edges(data=True) if d["kind"] == "condition"]
    assert (cond["action"], cond["state"], cond["delay"]) == ("START", "STARTED", 2.0)
    assert cond["label"] == "START after STARTED +2 s"


def test_names_label_resources_in_the_graph_and_explain(ec):
    server = ec.register_resource("test::Application", name="server")
    client = ec.register_resource("test::Application")
    ec.set(client, "name", "client 1")
    plain = ec.register_resource("test::Node")
    g = ec.graph()
    assert (g.nodes[server]["name"], g.nodes[server]["label"]) == ("server", "server")
    assert (g.nodes[client]["name"], g.nodes[client]["label"]) == ("client 1", "client 1")
    assert (g.nodes[plain]["name"], g.nodes[plain]["label"]) == (None, f"{plain} Node")
    assert ec.explain(server).startswith(f"resource {server} 'server' (test::Application) is NEW")
    assert ec.get_resource(client).label == "client 1"


def test_outcomes_survive_release(ec):
    node = ec.register_resource("test::Node")
    done = ec.register_resource("test::Application", connectedTo=node)
    broken = ec.register_resource("test::Application", connectedTo=node, fail_in="run", critical=False)
    stopped = ec.register_resource("test::Application", connectedTo=node, duration=30)
    ec.deploy()
    ec.wait_finished([done, broken], timeout=5)
    ec.wait_started(stopped, timeout=5)
    ec.stop(stopped, timeout=5)
    expected = {node: S.STARTED, done: S.FINISHED, broken: S.FAILED, stopped: S.STOPPED}
    assert {g: ec.get_resource(g).outcome for g in expected} == expected
    ec.release(timeout=5)
    expected[node] = S.STOPPED  # a running node is stopped on its way to RELEASED
    g = ec.graph()
    assert {guid: ec.state(guid) for guid in expected} == dict.fromkeys(expected, S.RELEASED)
    assert {guid: g.nodes[guid]["outcome"] for guid in expected} == expected
    assert all(g.nodes[guid]["released"] for guid in expected)


def test_done_is_what_wait_finished_waits_for(ec):
    node = ec.register_resource("test::Node")
    app = ec.register_resource("test::Application", connectedTo=node, duration=30)
    assert not ec.get_resource(node).done and not ec.get_resource(app).done  # NEW
    ec.deploy()
    ec.wait_started(app, timeout=5)
    assert ec.get_resource(node).done  # long-lived: done once started
    assert not ec.get_resource(app).done  # still running
    ec.stop(app, timeout=5)
    assert ec.get_resource(app).done
    ec.wait_finished(timeout=5)


def test_run_directory_describes_the_run(tmp_path):
    with ExperimentController(exp_id="described", local_dir=str(tmp_path)) as ec:
        node = ec.register_resource("test::Node")
        app = ec.register_resource("test::Application", connectedTo=node, fail_in="run", critical=False)
        ec.enable_trace(app, "extra")
        ec.register_condition(app, ResourceAction.START, node, S.STARTED, "10ms")
        ec.deploy()
        ec.wait_finished(timeout=5)
        assert ec.run_dir == os.path.join(str(tmp_path), "described", ec.run_id)
        assert len(ec.run_id) == 20 and ec.run_id.isdigit()
    with open(os.path.join(ec.run_dir, "experiment.json")) as f:
        description = json.load(f)
    assert description["format"] == "nepi_lab.run" and description["version"] == 1
    assert (description["exp_id"], description["run_id"]) == ("described", ec.run_id)
    assert description["ecstate"] == "TERMINATED"
    by_guid = {r["guid"]: r for r in description["resources"]}
    assert by_guid[app]["type"] == "test::Application"
    assert by_guid[app]["attributes"]["critical"] is False
    assert by_guid[app]["connections"] == [node]
    assert by_guid[app]["traces"] == ["extra", "log"]
    assert "traces" not in by_guid[node] and "attributes" not in by_guid[node]  # as declared
    # every attribute is recoverable: set values here, defaults in the type's declaration
    declared = description["types"]["test::Application"]["attributes"]
    assert declared["duration"] == {"type": "DOUBLE", "default": 0.0, "flags": 0, "allowed": None,
                                    "help": "seconds do_run takes"}
    assert description["types"]["test::Node"]["long_lived"] is True
    (failure,) = description["failures"]
    assert (failure["guid"], failure["step"], failure["critical"]) == (app, "run", False)
    # states and their times are in the event log
    with open(os.path.join(ec.run_dir, "events.jsonl")) as f:
        states = [e["to"] for e in map(json.loads, f) if e["guid"] == app]
    assert states == ["NEW", "DISCOVERED", "PROVISIONED", "READY", "STARTED", "FAILED", "RELEASED"]
    assert description["conditions"] == [
        {"guid": app, "action": "START", "after": [node], "state": "STARTED", "delay": 0.01}]


def test_two_controllers_never_share_a_run_directory(tmp_path):
    a = ExperimentController(exp_id="same", local_dir=str(tmp_path))
    b = ExperimentController(exp_id="same", local_dir=str(tmp_path))
    try:
        assert a.run_dir != b.run_dir and os.path.isdir(a.run_dir) and os.path.isdir(b.run_dir)
    finally:
        a.shutdown()
        b.shutdown()


def test_shutdown_is_idempotent_and_keeps_recorded_data(tmp_path):
    ec = ExperimentController(local_dir=str(tmp_path))
    assert ec.exp_id.startswith("exp-") and len(ec.exp_id) == 20
    app = ec.register_resource("test::Application")
    ec.deploy()
    ec.wait_finished(timeout=5)
    ec.shutdown()
    ec.shutdown()
    assert ec.finished and ec.ecstate == ECState.TERMINATED
    assert ec.state(app) == S.RELEASED and ec.trace(app, "log") == f"ran {app}\n"


@pytest.mark.parametrize("value", ["1.5s", "500ms", "10us", "2m", "1h", "0s", 3, 0.25])
def test_time_strings(value):
    from nepi_lab import parse_delay

    expected = {"1.5s": 1.5, "500ms": 0.5, "10us": 1e-5, "2m": 120, "1h": 3600, "0s": 0, 3: 3, 0.25: 0.25}
    assert parse_delay(value) == pytest.approx(expected[value])


def test_a_controller_makes_its_experiment_folder_again_when_another_process_removed_it(tmp_path,
                                                                                        monkeypatch):
    from nepi_lab.core.results import MAKE_ATTEMPTS

    exp_dir = str(tmp_path / "same")
    removals = removed_once_made(monkeypatch, exp_dir, times=3)
    ec = ExperimentController(exp_id="same", local_dir=str(tmp_path))
    try:
        assert removals == [exp_dir] * 3 and os.path.dirname(ec.run_dir) == exp_dir
        assert os.path.isfile(os.path.join(ec.run_dir, "experiment.json"))
    finally:
        ec.shutdown()
    monkeypatch.undo()
    # removed every time: the error says why, after a bounded number of attempts
    other = str(tmp_path / "other")
    removals = removed_once_made(monkeypatch, other, times=10 * MAKE_ATTEMPTS)
    with pytest.raises(ResultsDirectoryError, match="cannot make the run directory: No such file"):
        ExperimentController(exp_id="other", local_dir=str(tmp_path))
    assert len(removals) == MAKE_ATTEMPTS
    assert os.listdir(tmp_path) == ["same"]
