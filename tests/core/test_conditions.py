"""Conditions, groups and interactive deployment."""

from __future__ import annotations

import time

import pytest

from nepi_lab import ResourceAction, ResourceState, WaitTimeoutError

from ..guards import wait_until

S = ResourceState
A = ResourceAction


def seconds_between(earlier, later):
    return (later - earlier).total_seconds()


@pytest.mark.parametrize("delay", ["0s", "300ms", "0.5s"])
def test_start_condition_delay_is_kept_within_10ms(ec, delay):
    a = ec.register_resource("test::Application", duration=1)
    b = ec.register_resource("test::Application")
    ec.register_condition(b, A.START, a, S.STARTED, delay)
    ec.deploy()
    ec.wait_finished(timeout=10)
    measured = seconds_between(ec.get_start_time(a), ec.get_start_time(b))
    wanted = {"0s": 0.0, "300ms": 0.3, "0.5s": 0.5}[delay]
    assert wanted <= measured <= wanted + 0.010


def test_stop_condition_with_delay(ec):
    a = ec.register_resource("test::Application", duration=0.1)
    b = ec.register_resource("test::Application", duration=30)
    ec.register_condition(b, A.STOP, a, S.FINISHED, "200ms")
    ec.deploy()
    ec.wait_finished(timeout=10)
    assert ec.state(b) == S.STOPPED
    measured = seconds_between(ec.get_finish_time(a), ec.get_stop_time(b))
    assert 0.2 <= measured <= 0.21


def test_condition_on_several_resources_counts_from_the_last(ec):
    fast = ec.register_resource("test::Application", duration=0.05)
    slow = ec.register_resource("test::Application", duration=0.3)
    after = ec.register_resource("test::Application")
    ec.register_condition(after, A.START, [fast, slow], S.FINISHED, "100ms")
    ec.deploy()
    ec.wait_finished(timeout=10)
    measured = seconds_between(ec.get_finish_time(slow), ec.get_start_time(after))
    assert 0.1 <= measured <= 0.11


def test_stopped_condition_is_met_by_any_end(ec):
    """NEPI's ``>= STOPPED``: an application that ended by itself counts."""
    a = ec.register_resource("test::Application", duration=0.05)
    b = ec.register_resource("test::Application")
    ec.register_condition(b, A.START, a, S.STOPPED)
    ec.deploy()
    ec.wait_finished(timeout=10)
    assert ec.get_start_time(b) >= ec.get_finish_time(a)


def test_deploy_condition(ec):
    a = ec.register_resource("test::Application", duration=0.1)
    b = ec.register_resource("test::Application")
    ec.register_condition(b, A.DEPLOY, a, S.FINISHED)
    ec.deploy(wait_all_ready=False)
    ec.wait_finished(timeout=10)
    assert ec.get_discover_time(b) >= ec.get_finish_time(a)


def test_condition_that_can_no_longer_hold_fails_at_once(ec):
    a = ec.register_resource("test::Application", fail_in="start", critical=False)
    b = ec.register_resource("test::Application", critical=False)
    ec.register_condition(b, A.START, a, S.STARTED, "10s")
    started = time.monotonic()
    ec.deploy()
    ec.wait_finished(timeout=5)
    assert time.monotonic() - started < 2  # not after the 10 s delay, and no hang
    assert ec.state(b) == S.FAILED
    message = ec.get_resource(b).failure.message
    assert f"condition 'START {b} once resource {a} reached STARTED + 10 s' can never hold" in message
    assert "FAILED" in message


def test_set_with_conditions(ec):
    a = ec.register_resource("test::Application", duration=0.1)
    b = ec.register_resource("test::Application", label="before")
    ec.set_with_conditions("label", "after", b, a, S.FINISHED, "50ms")
    ec.deploy()
    ec.wait_finished(timeout=5)
    deadline = time.monotonic() + 2
    while ec.get(b, "label") != "after" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ec.get(b, "label") == "after"


def test_a_condition_the_resource_honours_itself_is_not_waited_for(ec):
    """``honours_condition``: the controller leaves such a condition to the resource."""
    a = ec.register_resource("test::Application", duration=30)
    own = ec.register_resource("test::SelfTimed", duration=0.05)
    waits = ec.register_resource("test::SelfTimed", duration=0.05, honours=False)
    ec.register_condition([own, waits], A.START, a, S.FINISHED)
    ec.deploy()
    ec.wait_finished(own, timeout=10)
    assert ec.state(own) == S.FINISHED and ec.state(a) == S.STARTED
    assert ec.state(waits) == S.READY
    assert "waits to START until resource" in ec.explain(waits)
    assert "waits to START" not in ec.explain(own)


def test_a_stop_condition_the_resource_honours_itself_does_not_stop_it(ec):
    a = ec.register_resource("test::Application", duration=30)
    own = ec.register_resource("test::SelfTimed", duration=0.2)
    stopped = ec.register_resource("test::SelfTimed", duration=30, honours=False)
    ec.register_condition([own, stopped], A.STOP, a, S.STARTED)
    ec.deploy()
    ec.wait_finished([own, stopped], timeout=10)
    assert ec.state(own) == S.FINISHED and ec.state(stopped) == S.STOPPED
    assert ec.state(a) == S.STARTED


def test_wait_all_ready_holds_the_group_until_everyone_is_ready(ec):
    fast = ec.register_resource("test::Application")
    slow = ec.register_resource("test::Application", deploy_delay=0.3)
    ec.deploy()
    ec.wait_finished(timeout=5)
    assert ec.get_start_time(fast) >= ec.get_ready_time(slow)


def test_without_wait_all_ready_each_starts_when_ready(ec):
    fast = ec.register_resource("test::Application")
    slow = ec.register_resource("test::Application", deploy_delay=0.3)
    ec.deploy(wait_all_ready=False)
    ec.wait_finished(timeout=5)
    assert ec.get_start_time(fast) < ec.get_ready_time(slow)


def test_explicit_group_starts_and_can_be_extended(ec):
    """In NEPI, naming a group left its resources READY forever."""
    a = ec.register_resource("test::Application")
    ec.deploy(a, group=7)
    ec.wait_finished(a, timeout=5)
    assert ec.state(a) == S.FINISHED
    b = ec.register_resource("test::Application", deploy_delay=0.2)
    c = ec.register_resource("test::Application")
    ec.deploy([b, c], group=7)
    ec.wait_finished(timeout=5)
    assert ec.get_start_time(c) >= ec.get_ready_time(b)


def test_failed_non_critical_member_does_not_hold_the_group(ec):
    bad = ec.register_resource("test::Application", fail_in="provision", critical=False)
    good = ec.register_resource("test::Application")
    ec.deploy()
    ec.wait_finished(timeout=5)
    assert ec.state(bad) == S.FAILED and ec.state(good) == S.FINISHED


def test_interactive_deploy_deploys_what_was_added_since(ec):
    node = ec.register_resource("test::Node")
    first = ec.register_resource("test::Application", connectedTo=node)
    ec.deploy()
    ec.wait_finished(timeout=5)
    first_ready = ec.get_ready_time(first)
    second = ec.register_resource("test::Application", connectedTo=node)
    assert ec.state(second) == S.NEW
    ec.deploy()
    ec.wait_finished(second, timeout=5)
    assert ec.state(second) == S.FINISHED
    assert ec.get_ready_time(first) == first_ready  # untouched
    auto = ec.register_resource("test::Application", connectedTo=node, autoDeploy=True)
    ec.wait_finished(auto, timeout=5)
    assert ec.state(auto) == S.FINISHED


def test_timeout_says_who_waits_for_what(ec):
    a = ec.register_resource("test::Application", duration=30)
    b = ec.register_resource("test::Application")
    ec.register_condition(b, A.START, a, S.FINISHED)
    ec.deploy()
    with pytest.raises(WaitTimeoutError) as info:
        ec.wait_finished(timeout=0.3)
    assert isinstance(info.value, TimeoutError)
    text = str(info.value)
    assert "wait_finished timed out after 0.3 s" in text
    assert f"resource {a} (test::Application) is STARTED: running its run step" in text
    assert f"resource {b} (test::Application) is READY: waits to START until resource {a}" in text
    assert "reaches FINISHED" in text


def test_explain_in_words(ec):
    node = ec.register_resource("test::Node", deploy_delay=0.5)
    app = ec.register_resource("test::Application", duration=30, connectedTo=node)
    late = ec.register_resource("test::Application")
    never = ec.register_resource("test::Application")
    ec.register_condition(late, A.START, app, S.STARTED, "20s")
    ec.deploy([node, app, late])
    time.sleep(0.2)
    assert "running its provision step" in ec.explain(node)
    assert f"waits for resource {node} (test::Node, now DISCOVERED) to reach READY" in ec.explain(app)
    assert ec.explain(never) == (f"resource {never} (test::Application) is NEW: "
                                 f"not deployed yet: call ec.deploy()")
    ec.wait_started(app, timeout=5)
    text = ec.explain(late)
    assert text.startswith(f"resource {late} (test::Application) is READY: waits ")
    assert "s more (condition: START" in text and "+ 20 s" in text
    left = float(text.split("waits ")[1].split(" s more")[0])
    assert 19 < left <= 20


def test_explain_right_after_deploy_says_what_comes_next(ec):
    """Never a bare "is NEW" once deploy() returned, whatever the loop did meanwhile."""
    node = ec.register_resource("test::Node", deploy_delay=0.3)
    a = ec.register_resource("test::Application", duration=0.2, connectedTo=node)
    b = ec.register_resource("test::Application", connectedTo=node)
    ec.register_condition(b, A.START, a, S.STARTED, "500ms")
    before = ec.explain(b)
    assert "not deployed yet: call ec.deploy()" in before
    assert f"then waits to START until resource {a} (test::Application, now NEW) reaches STARTED" in before
    ec.deploy()
    texts = {g: ec.explain(g) for g in (node, a, b)}
    for guid, text in texts.items():
        head, _, said = text.partition(": ")
        assert said, f"{guid}: {text}"
        assert "not deployed yet" not in said
    assert "waits to START until resource" in texts[b] or "s more (condition: START" in texts[b]
    ec.wait_finished(timeout=10)


def test_cycle_through_a_group_is_refused_at_deploy(ec):
    from nepi_lab import ConditionCycleError

    a = ec.register_resource("test::Application")
    b = ec.register_resource("test::Application")
    ec.register_condition(a, A.DEPLOY, b, S.STARTED)
    with pytest.raises(ConditionCycleError, match="group"):
        ec.deploy()
    assert ec.state(a) == S.NEW and ec.state(b) == S.NEW
    ec.deploy(wait_all_ready=False)  # without the group barrier there is no cycle
    ec.wait_finished(timeout=5)
    assert ec.get_discover_time(a) >= ec.get_start_time(b)


def test_a_resource_waiting_for_one_not_deployed_says_so(ec, caplog):
    """``deploy(app)`` without its node: the application waits (the node may be deployed
    later, as NEPI allows), and says at once, in the log and in ``explain``, that nothing
    will move until the node is deployed; deployed, the node lets it go on."""
    node = ec.register_resource("test::Node")
    app = ec.register_resource("test::Application", connectedTo=node)
    with caplog.at_level("WARNING", logger="nepi_lab"):
        ec.deploy(app)
        wait_until(lambda: "not deployed yet: call ec.deploy" in ec.explain(app), timeout=5)
    assert (f"waits for resource {node} (test::Node, now NEW, not deployed yet: call ec.deploy({node})) "
            f"to reach READY") in ec.explain(app)
    said = [r.getMessage() for r in caplog.records if r.name == "nepi_lab"]
    assert said == [f"resource {app} (test::Application) waits for resource {node} (test::Node), "
                    f"which is not deployed yet: it goes on once that one is (call ec.deploy({node}))"]
    ec.deploy(node)
    ec.wait_finished(app, timeout=10)
    assert ec.state(app) == S.FINISHED
