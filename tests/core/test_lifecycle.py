"""Lifecycle, dependencies, failure policy: modelled on NEPI's execution tests."""

from __future__ import annotations

import pathlib

import pytest

from nepi_lab import (
    ECState,
    ExperimentController,
    ExperimentFailedError,
    InvalidTransitionError,
    ResourceState,
    TraceAttr,
)

S = ResourceState


def build_network(ec, deploy_delay=0.05):
    """Two nodes, an interface on each, a channel between them, an app on each node."""
    nodes = [ec.register_resource("test::Node", deploy_delay=deploy_delay) for _ in range(2)]
    ifaces = [ec.register_resource("test::Interface", deploy_delay=deploy_delay) for _ in range(2)]
    channel = ec.register_resource("test::Channel")
    apps = [ec.register_resource("test::Application", duration=0.05) for _ in range(2)]
    for node, iface, app in zip(nodes, ifaces, apps, strict=True):
        ec.register_connection(iface, node)
        ec.register_connection(app, node)
        ec.register_connection(channel, iface)
    return nodes, ifaces, channel, apps


def test_deploy_order_follows_dependencies(ec):
    nodes, ifaces, channel, apps = build_network(ec)
    ec.deploy()
    ec.wait_finished(timeout=10)

    ready = {g: ec.get_ready_time(g) for g in ec.resources}
    for node, iface, app in zip(nodes, ifaces, apps, strict=True):
        assert ready[iface] > ready[node]  # an interface provisions once its node is READY
        assert ready[app] > ready[node]
        assert ec.get_provision_time(iface) > ready[node]
    assert ready[channel] > max(ready[i] for i in ifaces)
    # one deployment group: nothing starts before everything is READY
    assert min(ec.get_start_time(g) for g in ec.resources) >= max(ready.values())
    assert [ec.state(g) for g in apps] == [S.FINISHED, S.FINISHED]
    assert [ec.state(g) for g in nodes] == [S.STARTED, S.STARTED]  # long-lived


def test_every_state_is_timestamped_in_order(ec):
    node = ec.register_resource("test::Node")
    app = ec.register_resource("test::Application", connectedTo=node)
    ec.deploy()
    ec.wait_finished(app, timeout=5)
    ec.release()
    times = [ec.get_register_time(app), ec.get_discover_time(app), ec.get_provision_time(app),
             ec.get_ready_time(app), ec.get_start_time(app), ec.get_finish_time(app),
             ec.get_release_time(app)]
    assert all(t is not None for t in times)
    assert times == sorted(times)
    assert ec.get_reserve_time(app) is None  # types without do_reserve skip RESERVED
    assert ec.get_stop_time(app) is None and ec.get_failed_time(app) is None
    assert [e.new for e in ec.events.for_guid(app)] == [
        S.NEW, S.DISCOVERED, S.PROVISIONED, S.READY, S.STARTED, S.FINISHED, S.RELEASED]


def test_thousand_concurrent_resources_all_finish(ec):
    node = ec.register_resource("test::Node")
    apps = [ec.register_resource("test::Application", duration=0.5, connectedTo=node) for _ in range(1000)]
    ec.deploy()
    ec.wait_finished(timeout=60)
    assert {ec.state(a) for a in apps} == {S.FINISHED}
    # they ran side by side, not one after another
    assert max(ec.get_start_time(a) for a in apps) < min(ec.get_finish_time(a) for a in apps)


@pytest.mark.parametrize("step", ["discover", "provision", "configure", "start", "run"])
def test_hook_error_fails_resource_and_critical_fails_experiment(ec, step):
    node = ec.register_resource("test::Node")
    bad = ec.register_resource("test::Application", fail_in=step, connectedTo=node)
    good = ec.register_resource("test::Application", duration=30, connectedTo=node)
    ec.deploy(wait_all_ready=False)
    with pytest.raises(ExperimentFailedError) as info:
        ec.wait_finished(timeout=10)
    assert f"failed in {step}" in str(info.value)
    (failure,) = info.value.failures
    assert (failure.guid, failure.step, failure.error) == (bad, step, "TestError")
    assert failure.critical
    assert ec.ecstate == ECState.FAILED and ec.abort
    # everything still running is stopped and released
    ec.wait_released(timeout=10)
    assert ec.state(bad) == S.RELEASED and ec.get_failed_time(bad) is not None
    assert ec.state(good) == S.RELEASED and ec.get_finish_time(good) is None
    with pytest.raises(ExperimentFailedError):
        ec.wait_started(good)
    with pytest.raises(ExperimentFailedError):
        ec.deploy()


def test_waiting_on_the_failing_resource_itself_always_raises(tmp_path):
    """Its end and the experiment's failure come together: the wait must not pick either."""
    for _ in range(20):
        with ExperimentController(local_dir=str(tmp_path)) as ec:
            app = ec.register_resource("test::Application", fail_in="run")
            ec.deploy()
            with pytest.raises(ExperimentFailedError):
                ec.wait_finished(app, timeout=5)


def test_non_critical_failure_lets_the_rest_finish(ec):
    node = ec.register_resource("test::Node")
    bad = ec.register_resource("test::Application", fail_in="run", critical=False, connectedTo=node)
    good = ec.register_resource("test::Application", duration=0.2, connectedTo=node)
    ec.deploy()
    ec.wait_finished(timeout=10)  # a non-critical failure counts as finished
    assert ec.state(bad) == S.FAILED
    assert ec.state(good) == S.FINISHED
    assert ec.ecstate == ECState.RUNNING and not ec.abort
    assert [f.guid for f in ec.failures] == [bad] and not ec.failures[0].critical
    assert "(non-critical)" in str(ec.failures[0])


def test_resource_needing_a_failed_node_fails_at_once(ec):
    node = ec.register_resource("test::Node", fail_in="provision", deploy_delay=0.05, critical=False)
    app = ec.register_resource("test::Application", connectedTo=node, critical=False)
    ec.deploy()
    ec.wait_finished(timeout=5)
    assert ec.state(app) == S.FAILED
    failure = ec.get_resource(app).failure
    assert failure.step == "provision"
    assert f"resource {node} (test::Node) is FAILED and can no longer reach READY" in failure.message


def test_illegal_transitions_name_resource_state_and_action(ec):
    app = ec.register_resource("test::Application")
    message = rf"cannot START resource {app} \(test::Application\) while it is NEW"
    with pytest.raises(InvalidTransitionError, match=message):
        ec.start(app)
    with pytest.raises(InvalidTransitionError, match="STOP needs STARTED"):
        ec.stop(app)


def test_start_stop_and_restart_on_demand(ec):
    node = ec.register_resource("test::Node")
    app = ec.register_resource("test::Application", duration=30, connectedTo=node)
    ec.deploy()
    ec.wait_started(app, timeout=5)
    ec.stop(app, timeout=5)
    assert ec.state(app) == S.STOPPED
    ec.start(app, timeout=5)
    assert ec.state(app) == S.STARTED
    ec.wait_finished(node, timeout=5)  # a node counts as finished once started
    ec.release(app, timeout=5)
    expected = [S.STARTED, S.STOPPED, S.STARTED, S.STOPPED, S.RELEASED]
    assert [e.new for e in ec.events.for_guid(app)][-5:] == expected


def test_discover_and_provision_steps_alone(ec):
    node = ec.register_resource("test::Node")
    ec.discover(node)
    assert ec.state(node) == S.DISCOVERED
    ec.provision(node)
    assert ec.state(node) == S.PROVISIONED
    with pytest.raises(InvalidTransitionError):
        ec.provision(node)


def test_release_goes_from_dependents_to_what_they_need(ec):
    node = ec.register_resource("test::Node", fail_in="none")
    apps = [ec.register_resource("test::Application", duration=30, connectedTo=node) for _ in range(3)]
    ec.deploy()
    ec.wait_started(timeout=5)
    ec.release(timeout=5)
    assert ec.ecstate == ECState.RELEASED
    assert all(ec.get_release_time(node) >= ec.get_release_time(a) for a in apps)
    assert all(ec.get_stop_time(a) is not None for a in apps)  # stopped, then released


def test_hard_release_removes_the_resource(ec):
    ec.register_resource("test::Application", hardRelease=True)
    keep = ec.register_resource("test::Application")
    ec.deploy()
    ec.wait_finished(timeout=5)
    ec.release()
    assert ec.resources == [keep]


def test_release_error_still_ends_released(ec):
    app = ec.register_resource("test::Application", fail_in="release")
    ec.deploy()
    ec.wait_finished(timeout=5)
    ec.release(timeout=5)
    assert ec.state(app) == S.RELEASED
    assert "release error: TestError" in ec.events.for_guid(app)[-1].detail


def test_context_manager_releases_on_exception(tmp_path):
    with pytest.raises(ZeroDivisionError), ExperimentController(exp_id="ctx", local_dir=str(tmp_path)) as ec:
        app = ec.register_resource("test::Application", duration=30)
        ec.deploy()
        ec.wait_started(app, timeout=5)
        raise ZeroDivisionError("in the block")
    assert ec.state(app) == S.RELEASED
    assert ec.ecstate == ECState.TERMINATED


def test_traces_in_all_four_modes(ec):
    app = ec.register_resource("test::Application")
    assert ec.trace_enabled(app, "log") and not ec.trace_enabled(app, "extra")
    ec.enable_trace(app, "extra")
    assert ec.trace_enabled(app, "extra")
    ec.deploy()
    ec.wait_finished(app, timeout=5)
    text = f"ran {app}\n"
    assert ec.trace(app, "log") == text
    assert ec.trace(app, "log", TraceAttr.SIZE) == len(text)
    assert ec.trace(app, "log", TraceAttr.STREAM, block=3, offset=1) == text[3:6]
    path = ec.trace(app, "log", TraceAttr.PATH)
    assert path.startswith(ec.run_dir) and pathlib.Path(path).read_text() == text
    assert ec.trace(app, "extra", TraceAttr.SIZE) == 0  # declared, produced nothing
    assert ec.get_traces(app) == ["extra", "log"]
