"""The bad-input table: every refusal is typed, says what the user needs, and changes nothing.

Each case checks three things:

(a) the specific error class (all derive from :class:`nepi_lab.NepiError`, most from
    :class:`nepi_lab.InvalidInputError`);
(b) the message carries what the user needs to fix the call (guid, attribute,
    allowed names or values, suggestions ...);
(c) the experiment is left as it was (:func:`snapshot` before and after).
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import os
import threading
from types import SimpleNamespace

import pytest

from nepi_lab import (
    AttributeValueError,
    ConditionCycleError,
    ConditionError,
    ControllerClosedError,
    DuplicateGuidError,
    ECState,
    ExperimentController,
    InvalidConnectionError,
    InvalidInputError,
    InvalidTransitionError,
    NepiError,
    ReadOnlyAttributeError,
    ResourceAction,
    ResourceManager,
    ResourceState,
    ResultsDirectoryError,
    TimeFormatError,
    UnknownAttributeError,
    UnknownGuidError,
    UnknownResourceTypeError,
    UnknownTraceError,
    UnsafeNameError,
)
from nepi_lab.core.controller import MAX_GUID

S = ResourceState
A = ResourceAction

UNKNOWN = 99  # a guid no test registers


def snapshot(ec):
    """Everything a user can observe of the experiment's definition and progress."""
    graph = ec.graph()
    return {
        "resources": ec.resources,
        "nodes": {g: (d["type"], d["state"], d["attributes"]) for g, d in graph.nodes(data=True)},
        "edges": list(graph.edges(data=True)),
        "explain": {g: ec.explain(g) for g in ec.resources},
        "events": len(ec.events),
        "ecstate": ec.ecstate,
        "failures": ec.failures,
    }


@pytest.fixture
def two(ec):
    """An application and a node, registered and connected, not deployed."""
    node = ec.register_resource("test::Node")
    app = ec.register_resource("test::Application", connectedTo=node)
    return app, node


def expect_unchanged(ec, before):
    assert snapshot(ec) == before


# == resource types ===================================================================


@pytest.mark.parametrize(
    ("typo", "suggested"),
    [
        ("test::Aplication", "test::Application"),
        ("test::Applicaton", "test::Application"),
        ("test::node", "test::Node"),
        ("test::Nod", "test::Node"),
        ("Application", "test::Application"),
    ],
)
def test_unknown_resource_type_suggests_the_closest_names(ec, typo, suggested):
    ec.register_resource("test::Node")
    before = snapshot(ec)
    with pytest.raises(UnknownResourceTypeError) as info:
        ec.register_resource(typo, count=3)
    err = info.value
    assert isinstance(err, InvalidInputError) and isinstance(err, NepiError)
    assert err.rtype == typo
    assert suggested in err.suggestions
    assert repr(typo) in str(err) and "did you mean" in str(err) and repr(suggested) in str(err)
    expect_unchanged(ec, before)
    assert ec.register_resource("test::Node") == 2  # no guid was used up


def test_unknown_resource_type_without_anything_close(ec):
    with pytest.raises(UnknownResourceTypeError) as info:
        ec.register_resource("zzzz::Qqqqqqq")
    assert info.value.suggestions == []
    assert "'zzzz::Qqqqqqq'" in str(info.value) and "did you mean" not in str(info.value)
    assert ec.resources == []


def test_a_class_that_is_not_a_resource_manager_is_refused(ec):
    with pytest.raises(UnknownResourceTypeError):
        ec.register_resource(dict)
    assert ec.resources == [] and len(ec.events) == 0


# == attributes =======================================================================


def test_unknown_attribute_in_set_lists_the_allowed_names(ec, two):
    app, _ = two
    before = snapshot(ec)
    with pytest.raises(UnknownAttributeError) as info:
        ec.set(app, "cuont", 3)
    err = info.value
    assert (err.guid, err.rtype, err.attribute) == (app, "test::Application", "cuont")
    assert {"count", "mode", "duration", "critical", "fail_in"} <= set(err.allowed)
    msg = str(err)
    assert f"resource {app}" in msg and "'cuont'" in msg
    for name in ("count", "mode", "duration", "design_only", "read_only"):
        assert name in msg
    expect_unchanged(ec, before)


def test_unknown_attribute_in_get_and_get_attribute(ec, two):
    app, _ = two
    for call in (lambda: ec.get(app, "nosuch"), lambda: ec.get_attribute(app, "nosuch")):
        with pytest.raises(UnknownAttributeError) as info:
            call()
        assert "'nosuch'" in str(info.value) and "count" in str(info.value)


def test_unknown_attribute_at_registration_registers_nothing(ec):
    with pytest.raises(UnknownAttributeError) as info:
        ec.register_resource("test::Node", count=3, cuont=4)
    assert "test::Node" in str(info.value) and "count" in str(info.value)
    assert ec.resources == [] and len(ec.events) == 0
    assert ec.register_resource("test::Node") == 1


@pytest.mark.parametrize(
    ("attribute", "value", "words"),
    [
        ("count", "three", ["integer"]),
        ("count", [3], ["integer", "list"]),
        ("count", 3.5, ["integer", "float"]),
        ("count", True, ["integer", "bool"]),
        ("count", "3.0", ["integer"]),
        ("critical", "maybe", ["True or False"]),
        ("critical", 1, ["True or False"]),
        ("duration", "fast", ["number"]),
        ("duration", [1.0], ["number"]),
        ("label", ["x"], ["string"]),
    ],
)
def test_wrong_value_type(ec, two, attribute, value, words):
    app, _ = two
    old = ec.get(app, attribute)
    before = snapshot(ec)
    with pytest.raises(AttributeValueError) as info:
        ec.set(app, attribute, value)
    err = info.value
    assert (err.guid, err.attribute, err.value) == (app, attribute, value)
    msg = str(err)
    assert repr(attribute) in msg and repr(value) in msg and f"resource {app}" in msg
    for word in words:
        assert word in msg
    assert ec.get(app, attribute) == old
    expect_unchanged(ec, before)


def test_values_are_normalised_when_they_are_right(ec, two):
    """Control for the table above: what is accepted, and how it is stored."""
    app, _ = two
    assert ec.set(app, "count", "7") == 7
    assert ec.set(app, "critical", "no") is False
    assert ec.set(app, "duration", 2) == 2.0 and isinstance(ec.get(app, "duration"), float)
    assert ec.set(app, "mode", "b") == "b"


@pytest.mark.parametrize("value", ["c", "A", "", 1, ["a"]])
def test_value_outside_allowed_values(ec, two, value):
    app, _ = two
    before = snapshot(ec)
    with pytest.raises(AttributeValueError) as info:
        ec.set(app, "mode", value)
    err = info.value
    assert err.allowed == ["a", "b"]
    msg = str(err)
    assert "'mode'" in msg and "'a'" in msg and "'b'" in msg and repr(value) in msg
    assert ec.get(app, "mode") == "a"
    expect_unchanged(ec, before)


@pytest.mark.parametrize("value", [-1, 101, "101", 10**9])
def test_value_outside_range(ec, two, value):
    app, _ = two
    ec.set(app, "count", 42)
    before = snapshot(ec)
    with pytest.raises(AttributeValueError) as info:
        ec.set(app, "count", value)
    msg = str(info.value)
    assert "'count'" in msg and "[0, 100]" in msg and f"bad value {int(value)} " in msg
    assert ec.get(app, "count") == 42
    expect_unchanged(ec, before)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"count": "three"}, AttributeValueError),
        ({"count": 101}, AttributeValueError),
        ({"mode": "z"}, AttributeValueError),
        ({"read_only": "z"}, ReadOnlyAttributeError),
    ],
)
def test_bad_value_at_registration_registers_nothing(ec, kwargs, error):
    node = ec.register_resource("test::Node")
    before = snapshot(ec)
    with pytest.raises(error) as info:
        ec.register_resource("test::Application", connectedTo=node, **kwargs)
    assert repr(next(iter(kwargs))) in str(info.value)
    expect_unchanged(ec, before)
    assert ec.get_resource(node).connections == set()  # connectedTo was not applied
    assert ec.register_resource("test::Node") == node + 1


@pytest.mark.parametrize("when", ["just after deploy()", "once finished"])
@pytest.mark.parametrize(("attribute", "value"), [("design_only", "y"), ("critical", False)])
def test_design_attribute_after_deploy_is_read_only(ec, two, when, attribute, value):
    app, _ = two
    old = ec.get(app, attribute)
    ec.deploy()
    if when == "once finished":
        ec.wait_finished(timeout=5)
    with pytest.raises(ReadOnlyAttributeError) as info:
        ec.set(app, attribute, value)
    err = info.value
    assert (err.guid, err.attribute) == (app, attribute)
    msg = str(err)
    assert repr(attribute) in msg and f"resource {app}" in msg and "design" in msg and "deployed" in msg
    ec.wait_finished(timeout=5)
    assert ec.get(app, attribute) == old


def test_design_attribute_is_writable_before_deploy(ec, two):
    """Control for the test above."""
    app, _ = two
    assert ec.set(app, "design_only", "y") == "y"


@pytest.mark.parametrize("deployed", [False, True])
def test_read_only_attribute_is_never_writable(ec, two, deployed):
    app, _ = two
    if deployed:
        ec.deploy()
        ec.wait_finished(timeout=5)
    before = snapshot(ec)
    with pytest.raises(ReadOnlyAttributeError) as info:
        ec.set(app, "read_only", "mine")
    msg = str(info.value)
    assert "'read_only'" in msg and f"resource {app}" in msg and "read-only" in msg
    assert ec.get(app, "read_only") == "r"
    expect_unchanged(ec, before)


def test_set_with_conditions_checks_name_value_and_flags_at_once(ec, two):
    app, node = two
    before = snapshot(ec)
    with pytest.raises(UnknownAttributeError):
        ec.set_with_conditions("cuont", 3, app, node, S.STARTED)
    with pytest.raises(AttributeValueError):
        ec.set_with_conditions("count", "three", app, node, S.STARTED)
    with pytest.raises(ReadOnlyAttributeError):
        ec.set_with_conditions("read_only", "mine", app, node, S.STARTED)
    expect_unchanged(ec, before)


def test_set_with_conditions_refuses_a_design_attribute_of_a_deployed_resource(ec, two):
    """A design attribute may be set only before deploy, also through set_with_conditions.

    Here the resource is long deployed (FINISHED) when the call is made, so the call
    can only be refused, like ``ec.set`` refuses it.
    """
    app, node = two
    ec.deploy()
    ec.wait_finished(timeout=5)
    with pytest.raises(ReadOnlyAttributeError):
        ec.set_with_conditions("design_only", "late", app, node, S.STARTED)
    ec.wait(node, S.STARTED, timeout=5)
    assert ec.get(app, "design_only") == "x"


# == guids ============================================================================

#: Every call that takes a guid, with the unknown guid in each place it can go.
GUID_CALLS = {
    "set": lambda ec, g, k: ec.set(g, "count", 5),
    "get": lambda ec, g, k: ec.get(g, "count"),
    "get_attributes": lambda ec, g, k: ec.get_attributes(g),
    "get_attribute": lambda ec, g, k: ec.get_attribute(g, "count"),
    "get_resource": lambda ec, g, k: ec.get_resource(g),
    "state": lambda ec, g, k: ec.state(g),
    "state(hr)": lambda ec, g, k: ec.state(g, hr=True),
    "explain": lambda ec, g, k: ec.explain(g),
    "get_state_time": lambda ec, g, k: ec.get_state_time(g, S.READY),
    "get_ready_time": lambda ec, g, k: ec.get_ready_time(g),
    "get_start_time": lambda ec, g, k: ec.get_start_time(g),
    "get_release_time": lambda ec, g, k: ec.get_release_time(g),
    "register_connection(first)": lambda ec, g, k: ec.register_connection(g, k),
    "register_connection(second)": lambda ec, g, k: ec.register_connection(k, g),
    "register_condition(first)": lambda ec, g, k: ec.register_condition(g, A.START, k, S.STARTED),
    "register_condition(second)": lambda ec, g, k: ec.register_condition(k, A.START, g, S.STARTED),
    "register_condition(in list)": lambda ec, g, k: ec.register_condition(k, A.START, [k, g], S.READY),
    "set_with_conditions(first)": lambda ec, g, k: ec.set_with_conditions("count", 5, g, k, S.STARTED),
    "set_with_conditions(second)": lambda ec, g, k: ec.set_with_conditions("count", 5, k, g, S.STARTED),
    "register_resource(connectedTo)": lambda ec, g, k: ec.register_resource("test::Node", connectedTo=g),
    "deploy": lambda ec, g, k: ec.deploy(g),
    "deploy(list)": lambda ec, g, k: ec.deploy([k, g]),
    "discover": lambda ec, g, k: ec.discover(g),
    "provision": lambda ec, g, k: ec.provision(g),
    "start": lambda ec, g, k: ec.start(g),
    "stop": lambda ec, g, k: ec.stop(g),
    "start_with_conditions": lambda ec, g, k: ec.start_with_conditions([k, g]),
    "stop_with_conditions": lambda ec, g, k: ec.stop_with_conditions([k, g]),
    "wait": lambda ec, g, k: ec.wait(g, S.READY, timeout=1),
    "wait_deployed": lambda ec, g, k: ec.wait_deployed(g, timeout=1),
    "wait_started": lambda ec, g, k: ec.wait_started([k, g], timeout=1),
    "wait_finished": lambda ec, g, k: ec.wait_finished(g, timeout=1),
    "wait_released": lambda ec, g, k: ec.wait_released(g, timeout=1),
    "release": lambda ec, g, k: ec.release(g),
    "release(list)": lambda ec, g, k: ec.release([k, g]),
    "trace": lambda ec, g, k: ec.trace(g, "log"),
    "enable_trace": lambda ec, g, k: ec.enable_trace(g, "extra"),
    "trace_enabled": lambda ec, g, k: ec.trace_enabled(g, "log"),
    "get_traces": lambda ec, g, k: ec.get_traces(g),
    "wait_finished_async": lambda ec, g, k: asyncio.run(ec.wait_finished_async(g, timeout=1)),
}


@pytest.mark.parametrize("call", list(GUID_CALLS), ids=list(GUID_CALLS))
def test_unknown_guid_in_every_call_that_takes_one(ec, two, call):
    app, node = two
    before = snapshot(ec)
    with pytest.raises(UnknownGuidError) as info:
        GUID_CALLS[call](ec, UNKNOWN, app)
    err = info.value
    assert err.guid == UNKNOWN
    assert isinstance(err, InvalidInputError) and isinstance(err, KeyError)
    msg = str(err)
    assert f"guid {UNKNOWN}" in msg and f"guids: {node}, {app}" in msg  # what exists
    expect_unchanged(ec, before)


@pytest.mark.parametrize("not_a_guid", [True, 1.0, "1"], ids=["True", "1.0", "'1'"])
@pytest.mark.parametrize("call", ["state", "set", "explain", "deploy", "release"])
def test_values_that_only_look_like_a_guid_are_unknown_guids(ec, two, call, not_a_guid):
    """Guid 1 exists; ``True``, ``1.0`` and ``"1"`` are not guid 1.

    ``register_resource(guid=True)`` and ``deploy(True)`` already refuse them; every
    call must agree, or ``ec.set(True, ...)`` silently changes resource 1.
    """
    app, node = two
    assert node == 1
    before = snapshot(ec)
    with pytest.raises(UnknownGuidError) as info:
        GUID_CALLS[call](ec, not_a_guid, app)
    assert repr(not_a_guid) in str(info.value)
    expect_unchanged(ec, before)


@pytest.mark.parametrize("bad", [True, -1, 1.5, "7"])
def test_explicit_guid_must_be_a_non_negative_integer(ec, bad):
    with pytest.raises(InvalidInputError) as info:
        ec.register_resource("test::Node", guid=bad)
    assert repr(bad) in str(info.value) and "guid" in str(info.value)
    assert ec.resources == [] and len(ec.events) == 0


def test_duplicate_explicit_guid(ec):
    ec.register_resource("test::Node", guid=7, label="first")
    before = snapshot(ec)
    with pytest.raises(DuplicateGuidError) as info:
        ec.register_resource("test::Application", guid=7, label="second")
    err = info.value
    assert err.guid == 7
    assert "guid 7" in str(err) and "test::Node" in str(err)  # who has it
    expect_unchanged(ec, before)
    assert ec.get(7, "label") == "first"
    assert ec.register_resource("test::Node") == 8


def test_connecting_a_resource_to_itself(ec, two):
    app, _ = two
    before = snapshot(ec)
    with pytest.raises(InvalidConnectionError) as info:
        ec.register_connection(app, app)
    err = info.value
    assert (err.guid, err.other) == (app, app)
    assert f"resource {app} to {app}" in str(err) and "itself" in str(err)
    expect_unchanged(ec, before)
    assert app not in ec.get_resource(app).connections


class Plugged(ResourceManager):
    """A third-party type that declares it runs on a linux::Node (linux::Node does not name it)."""

    _rtype = "test::Plugged"
    _connects_to = ("linux::Node",)


#: (first, second, the type that refuses, the types it connects to): register_connection(first, second).
CONNECTION_REFUSALS = [
    ("linux::Application", "linux::Application", "linux::Application", ["linux::Node"]),
    ("linux::Ping", "netns::Link", "linux::Ping", ["linux::Node"]),
    ("linux::Node", "netns::Interface", "linux::Node", ["linux::Application"]),
    ("linux::Node", "test::Node", "linux::Node", ["linux::Application"]),  # undeclared: linux::Node refuses
    ("test::Application", "linux::Node", "linux::Node", ["linux::Application"]),
    ("netns::Link", "netns::Node", "netns::Link", ["netns::Interface", "netns::Switch"]),
    ("netns::Node", "netns::Link", "netns::Node", ["linux::Application", "netns::Interface", "netns::Route"]),
    ("netns::Switch", "netns::Interface", "netns::Switch", ["netns::Link"]),
    ("netns::Interface", "linux::Iperf3Server", "netns::Interface", ["netns::Node", "netns::Link"]),
    ("netns::Route", "linux::Node", "netns::Route", ["netns::Node"]),  # a linux::Node is no netns::Node
    ("netns::Route", "netns::Switch", "netns::Route", ["netns::Node"]),
    ("test::Plugged", "netns::Link", "test::Plugged", ["linux::Node"]),
]


@pytest.mark.parametrize(("first", "second", "refuser", "allowed"), CONNECTION_REFUSALS,
                         ids=[f"{a}-{b}" for a, b, _, _ in CONNECTION_REFUSALS])
def test_a_connection_the_types_cannot_use_names_the_allowed_types(ec, first, second, refuser, allowed):
    a = ec.register_resource(first)
    b = ec.register_resource(second)
    before = snapshot(ec)
    assert ec.can_connect(a, b) is False and ec.can_connect(b, a) is False
    with pytest.raises(InvalidConnectionError) as info:
        ec.register_connection(a, b)
    err = info.value
    assert (err.guid, err.other) == (a, b)
    refused = second if refuser == first else first
    assert (err.rtype, err.other_rtype, err.allowed) == (refuser, refused, allowed)
    msg = str(err)
    assert f"resource {a} to {b}" in msg and f"a {refuser} connects only to" in msg
    assert all(name in msg for name in allowed) and f"not to a {refused}" in msg
    expect_unchanged(ec, before)
    with pytest.raises(InvalidConnectionError):  # connectedTo= is checked the same way, before registering
        ec.register_resource(first, connectedTo=b)
    expect_unchanged(ec, before)


def test_an_undeclared_type_refused_by_a_declared_one_is_told_how_to_declare(ec):
    node = ec.register_resource("linux::Node")
    mine = ec.register_resource("test::Node")
    with pytest.raises(InvalidConnectionError) as info:
        ec.register_connection(mine, node)
    assert "_connects_to = ('linux::Node',)" in str(info.value)


#: Pairs the types accept (controls for the table above): what topology.build and the tools connect.
CONNECTIONS_ACCEPTED = [
    ("linux::Application", "linux::Node"),
    ("linux::Ping", "linux::Node"),
    ("linux::Tcpdump", "netns::Node"),  # a netns::Node is a linux::Node
    ("netns::Interface", "netns::Node"),
    ("netns::Interface", "netns::Link"),
    ("netns::Link", "netns::Switch"),
    ("netns::Route", "netns::Node"),
    ("test::Node", "test::Application"),  # neither declares: anything goes
    ("test::Plugged", "linux::Node"),  # it names linux::Node, which is enough
]


@pytest.mark.parametrize(("first", "second"), CONNECTIONS_ACCEPTED,
                         ids=[f"{a}-{b}" for a, b in CONNECTIONS_ACCEPTED])
def test_connections_the_types_declare_are_accepted_both_ways(ec, first, second):
    a, b = ec.register_resource(first), ec.register_resource(second)
    assert ec.can_connect(a, b) and ec.can_connect(b, a)
    ec.register_connection(b, a)
    assert ec.get_resource(a).connections == {b}
    c = ec.register_resource(first, connectedTo=ec.register_resource(second))
    assert len(ec.get_resource(c).connections) == 1


def test_connection_types_are_inherited_and_merged():
    from nepi_lab.core.registry import get_resource_type

    assert get_resource_type("linux::Ping").get_connection_types() == ["linux::Node"]
    assert get_resource_type("netns::Node").get_connection_types() == [
        "linux::Application", "netns::Interface", "netns::Route"]
    assert get_resource_type("test::Node").get_connection_types() == []
    with pytest.raises(TypeError, match="tuple of type names"):
        type("Wrong", (ResourceManager,), {"_rtype": "test::Wrong", "_connects_to": "linux::Node"})


def test_a_second_node_for_an_application_is_refused_by_the_instance_not_the_type(ec):
    node, other = ec.register_resource("linux::Node"), ec.register_resource("linux::Node")
    app = ec.register_resource("linux::Application", connectedTo=node)
    assert not ec.can_connect(app, other)
    with pytest.raises(InvalidConnectionError) as info:
        ec.register_connection(app, other)
    assert "already runs on node" in str(info.value) and info.value.allowed == []


# == times ============================================================================

BAD_DELAYS = ["2m30s", "-1s", "soon", "1.5", "", " ", "1 sec", "1.5.2s",
              -1, -0.5, math.nan, math.inf, True, [1]]


@pytest.mark.parametrize("delay", BAD_DELAYS, ids=repr)
def test_malformed_delay_in_register_condition(ec, two, delay):
    app, node = two
    before = snapshot(ec)
    with pytest.raises(TimeFormatError) as info:
        ec.register_condition(app, A.START, node, S.STARTED, delay)
    err = info.value
    assert err.value is delay or err.value == delay
    msg = str(err)
    assert repr(delay) in msg and "expected" in msg
    expect_unchanged(ec, before)
    assert ec.get_resource(app).conditions == {}


@pytest.mark.parametrize("delay", BAD_DELAYS + [None, "99999999999999999999"], ids=repr)
def test_malformed_date_in_schedule(ec, delay):
    calls = []
    with pytest.raises(TimeFormatError) as info:
        ec.schedule(delay, lambda: calls.append(1), track=True)
    msg = str(info.value)
    assert repr(delay) in msg and "expected" in msg
    assert ec.schedule("0s", lambda: None, track=True) == 1  # nothing was scheduled before
    assert calls == []


def test_schedule_needs_a_callable(ec):
    with pytest.raises(InvalidInputError) as info:
        ec.schedule("1s", "print('hi')")
    assert "callable" in str(info.value)
    assert ec.schedule("0s", lambda: None) == 1


@pytest.mark.parametrize(("delay", "seconds"), [(None, 0.0), (0, 0.0), (2, 2.0), (1.5, 1.5), ("1.5s", 1.5),
                                                ("500ms", 0.5), ("2m", 120.0)])
def test_good_delays_numbers_are_seconds(ec, two, delay, seconds):
    """Control for the table above: what a delay may be."""
    app, node = two
    ec.register_condition(app, A.START, node, S.STARTED, delay)
    [(_, _, data)] = [e for e in ec.graph().edges(data=True) if e[2]["kind"] == "condition"]
    assert data["delay"] == seconds


# == conditions =======================================================================


@pytest.mark.parametrize(
    ("action", "state", "words"),
    [("JUMP", S.STARTED, ["'JUMP'", "DEPLOY", "START", "STOP"]),
     (7, S.STARTED, ["7", "DEPLOY", "START", "STOP"]),
     (A.START, "DONE", ["'DONE'", "READY", "STARTED"]),
     (A.START, 42, ["42", "READY", "STARTED"]),
     (A.START, None, ["None", "READY", "STARTED"])],
    ids=["action JUMP", "action 7", "state DONE", "state 42", "state None"],
)
def test_unknown_action_or_state_in_register_condition(ec, two, action, state, words):
    app, node = two
    before = snapshot(ec)
    with pytest.raises(InvalidInputError) as info:
        ec.register_condition(app, action, node, state)
    for word in words:
        assert word in str(info.value)
    expect_unchanged(ec, before)


@pytest.mark.parametrize("state", ["DONE", 42])
def test_unknown_state_in_wait_and_get_state_time(ec, two, state):
    app, _ = two
    with pytest.raises(InvalidInputError):
        ec.wait(app, state, timeout=1)
    with pytest.raises(InvalidInputError):
        ec.get_state_time(app, state)


@pytest.mark.parametrize("side", ["first", "second"])
@pytest.mark.parametrize("empty", [None, []], ids=["None", "[]"])
def test_condition_needs_guids_on_both_sides(ec, two, side, empty):
    app, node = two
    before = snapshot(ec)
    args = (empty, app) if side == "first" else (app, empty)
    with pytest.raises(InvalidInputError) as info:
        ec.register_condition(args[0], A.START, args[1], S.STARTED)
    assert "register_condition" in str(info.value)
    expect_unchanged(ec, before)


def test_condition_cycle_is_refused_and_not_recorded(ec):
    a = ec.register_resource("test::Application")
    b = ec.register_resource("test::Application")
    ec.register_condition(a, A.START, b, S.STARTED)
    before = snapshot(ec)
    with pytest.raises(ConditionCycleError) as info:
        ec.register_condition(b, A.START, a, S.STARTED)
    err = info.value
    assert isinstance(err, ConditionError) and isinstance(err, InvalidInputError)
    assert f"resource {a} started" in err.cycle and f"resource {b} started" in err.cycle
    assert err.cycle[0] == err.cycle[-1]
    msg = str(err)
    assert "cycle" in msg and f"resource {a} started" in msg and f"resource {b} started" in msg
    expect_unchanged(ec, before)
    assert ec.get_resource(b).conditions == {}
    # the refused condition left nothing behind: the run goes b, then a, without hanging
    ec.deploy()
    ec.wait_finished(timeout=5)
    assert ec.get_start_time(b) <= ec.get_start_time(a)


def test_condition_cycle_from_a_list_records_none_of_it(ec):
    a, b, c = (ec.register_resource("test::Application") for _ in range(3))
    ec.register_condition(a, A.START, b, S.STARTED)
    before = snapshot(ec)
    with pytest.raises(ConditionCycleError):
        ec.register_condition([c, b], A.START, a, S.STARTED)  # c is fine, b closes the cycle
    expect_unchanged(ec, before)
    assert ec.get_resource(c).conditions == {} and ec.get_resource(b).conditions == {}


@pytest.mark.parametrize(("action", "state"),
                         [(A.START, S.STARTED), (A.DEPLOY, S.READY), (A.START, S.FINISHED)])
def test_condition_of_a_resource_on_itself_that_can_never_hold(ec, action, state):
    a = ec.register_resource("test::Application")
    before = snapshot(ec)
    with pytest.raises(ConditionCycleError) as info:
        ec.register_condition(a, action, a, state)
    assert f"resource {a}" in str(info.value)
    expect_unchanged(ec, before)


def test_deploy_after_started_cycle_through_a_group_is_refused_at_deploy(ec):
    a = ec.register_resource("test::Application")
    b = ec.register_resource("test::Application")
    ec.register_condition(a, A.DEPLOY, b, S.STARTED)  # fine alone ...
    before = snapshot(ec)
    with pytest.raises(ConditionCycleError) as info:
        ec.deploy()  # ... but b may start only once a is READY too: a cycle
    msg = str(info.value)
    assert "group" in msg and f"resource {a} deployed" in msg and f"resource {b} started" in msg
    expect_unchanged(ec, before)
    assert "not deployed yet" in ec.explain(a) and "not deployed yet" in ec.explain(b)
    # nothing was half-deployed: without the group barrier it runs
    ec.deploy(wait_all_ready=False)
    ec.wait_finished(timeout=5)
    assert ec.state(a) == ec.state(b) == S.FINISHED


def released_node(ec):
    node = ec.register_resource("test::Node")
    ec.release(node)
    return node


def failed_node(ec):
    node = ec.register_resource("test::Node", fail_in="discover", critical=False)
    ec.deploy(node)
    ec.wait_finished(node, timeout=5)
    return node


@pytest.mark.parametrize("step", ["discover", "provision", "configure", "start"])
def test_explain_of_a_failed_resource_is_stable(ec, step):
    """A FAILED resource runs nothing: explain() says why it failed, not that a step runs.

    (The "experiment unchanged" checks of this file compare explain() before and after.)
    """
    node = ec.register_resource("test::Node", fail_in=step, critical=False)
    ec.deploy(node)
    ec.wait_finished(node, timeout=5)
    assert ec.state(node) == S.FAILED
    first = ec.explain(node)
    assert f"failed in {step}" in first and f"{step} failed on purpose" in first
    assert "running its" not in first
    ec.wait_finished(node, timeout=5)
    assert ec.explain(node) == first


@pytest.mark.parametrize("make", [released_node, failed_node], ids=["RELEASED", "FAILED"])
@pytest.mark.parametrize("state", [S.READY, S.STARTED, S.FINISHED])
def test_condition_on_a_resource_that_can_never_reach_the_state(ec, make, state):
    app = ec.register_resource("test::Application")
    other = make(ec)
    end = ec.state(other)
    assert end in (S.RELEASED, S.FAILED)
    before = snapshot(ec)
    with pytest.raises(ConditionError) as info:
        ec.register_condition(app, A.START, other, state)
    msg = str(info.value)
    assert "can never hold" in msg
    assert f"resource {other}" in msg and end.name in msg and state.name in msg
    if end == S.FAILED:
        assert "discover failed on purpose" in msg  # why it failed
    expect_unchanged(ec, before)
    assert ec.get_resource(app).conditions == {}


# == names on disk ====================================================================


@pytest.mark.parametrize("exp_id", ["a/b", "..", "../x", "", ".hidden", "a b", "-rf", "a\\b", "x" * 129, 5])
def test_unsafe_exp_id(tmp_path, exp_id):
    with pytest.raises(UnsafeNameError) as info:
        ExperimentController(exp_id=exp_id, local_dir=str(tmp_path))
    err = info.value
    assert isinstance(err, InvalidInputError)
    assert err.name == exp_id and err.what == "exp_id"
    assert repr(exp_id) in str(err) and "exp_id" in str(err) and "letters, digits" in str(err)
    assert os.listdir(tmp_path) == []  # no run directory was made


def test_safe_exp_id_is_accepted(tmp_path):
    """Control for the test above."""
    with ExperimentController(exp_id="ping-test_2.v1+x", local_dir=str(tmp_path)) as ec:
        assert os.path.isdir(ec.run_dir)


TRACE_CALLS = {
    "trace": lambda ec, g, name: ec.trace(g, name),
    "trace(size)": lambda ec, g, name: ec.trace(g, name, attr="size"),
    "enable_trace": lambda ec, g, name: ec.enable_trace(g, name),
    "trace_enabled": lambda ec, g, name: ec.trace_enabled(g, name),
}


@pytest.mark.parametrize("call", list(TRACE_CALLS))
@pytest.mark.parametrize("name", ["../etc/passwd", "..", "/etc/passwd", "a/b", ""])
def test_unsafe_trace_name(ec, two, call, name):
    app, _ = two
    before = snapshot(ec)
    with pytest.raises(UnsafeNameError) as info:
        TRACE_CALLS[call](ec, app, name)
    assert info.value.what == "trace name" and repr(name) in str(info.value)
    expect_unchanged(ec, before)


@pytest.mark.parametrize("call", list(TRACE_CALLS))
def test_unknown_trace_lists_the_traces(ec, two, call):
    app, _ = two
    before = snapshot(ec)
    with pytest.raises(UnknownTraceError) as info:
        TRACE_CALLS[call](ec, app, "nosuch")
    err = info.value
    assert (err.guid, err.trace, err.allowed) == (app, "nosuch", ["extra", "log"])
    msg = str(err)
    assert f"resource {app}" in msg and "'nosuch'" in msg and "extra, log" in msg
    expect_unchanged(ec, before)
    assert not ec.trace_enabled(app, "extra")


def test_unknown_trace_mode(ec, two):
    app, _ = two
    with pytest.raises(InvalidInputError) as info:
        ec.trace(app, "log", attr="everything")
    assert "'everything'" in str(info.value)


# == after shutdown ===================================================================

CLOSED_CALLS = {
    "register_resource": lambda ec, g, k: ec.register_resource("test::Node"),
    "set": lambda ec, g, k: ec.set(g, "count", 5),
    "register_connection": lambda ec, g, k: ec.register_connection(g, k),
    "register_condition": lambda ec, g, k: ec.register_condition(g, A.START, k, S.STARTED),
    "set_with_conditions": lambda ec, g, k: ec.set_with_conditions("count", 5, g, k, S.STARTED),
    "deploy": lambda ec, g, k: ec.deploy(),
    "discover": lambda ec, g, k: ec.discover(g),
    "provision": lambda ec, g, k: ec.provision(g),
    "start": lambda ec, g, k: ec.start(g),
    "stop": lambda ec, g, k: ec.stop(g),
    "start_with_conditions": lambda ec, g, k: ec.start_with_conditions(g),
    "stop_with_conditions": lambda ec, g, k: ec.stop_with_conditions(g),
    "wait": lambda ec, g, k: ec.wait(g, S.RELEASED),
    "wait_deployed": lambda ec, g, k: ec.wait_deployed(),
    "wait_started": lambda ec, g, k: ec.wait_started(),
    "wait_finished": lambda ec, g, k: ec.wait_finished(),
    "wait_released": lambda ec, g, k: ec.wait_released(),
    "release": lambda ec, g, k: ec.release(),
    "enable_trace": lambda ec, g, k: ec.enable_trace(g, "extra"),
    "schedule": lambda ec, g, k: ec.schedule("0s", lambda: None),
    "start_async": lambda ec, g, k: asyncio.run(ec.start_async(g)),
    "wait_finished_async": lambda ec, g, k: asyncio.run(ec.wait_finished_async()),
    "release_async": lambda ec, g, k: asyncio.run(ec.release_async()),
}


@pytest.mark.parametrize("call", list(CLOSED_CALLS))
def test_calls_after_shutdown_are_refused(ec, two, call):
    app, node = two
    ec.shutdown()
    assert ec.ecstate == ECState.TERMINATED
    before = snapshot(ec)
    with pytest.raises(ControllerClosedError) as info:
        CLOSED_CALLS[call](ec, app, node)
    err = info.value
    assert err.exp_id == "test"
    name = call.removesuffix("_async")
    msg = str(err)
    assert f"{name}()" in msg and "shutdown()" in msg and "'test'" in msg
    assert "new ExperimentController" in msg
    expect_unchanged(ec, before)


def test_queries_still_answer_after_shutdown(ec, two):
    """Control for the test above: recorded data stays readable."""
    app, _ = two
    ec.set(app, "count", 9)
    ec.shutdown()
    assert ec.get(app, "count") == 9
    assert ec.state(app) == S.RELEASED
    assert "RELEASED" in ec.explain(app)
    ec.shutdown()  # idempotent


# == transitions ======================================================================


@pytest.fixture
def staged(ec):
    """Resources held in known states: {state name: guid}."""
    new = ec.register_resource("test::Application")
    started = ec.register_resource("test::Node")
    ready = ec.register_resource("test::Application")
    finished = ec.register_resource("test::Application")
    ec.register_condition(ready, A.START, new, S.STARTED)  # holds it READY: new is never deployed
    ec.deploy([started, ready, finished], wait_all_ready=False)
    ec.wait_deployed(ready, timeout=5)
    ec.wait_finished([started, finished], timeout=5)
    states = {"NEW": new, "READY": ready, "STARTED": started, "FINISHED": finished}
    assert {n: ec.state(g).name for n, g in states.items()} == {n: n for n in states}
    return states


@pytest.mark.parametrize(
    ("action", "state", "rule"),
    [("start", "NEW", "START needs READY or STOPPED"),
     ("start", "STARTED", "START needs READY or STOPPED"),
     ("start", "FINISHED", "START needs READY or STOPPED"),
     ("stop", "NEW", "STOP needs STARTED"),
     ("stop", "READY", "STOP needs STARTED"),
     ("stop", "FINISHED", "STOP needs STARTED")],
)
def test_illegal_transition_names_guid_state_and_action(ec, staged, action, state, rule):
    guid = staged[state]
    before = snapshot(ec)
    with pytest.raises(InvalidTransitionError) as info:
        getattr(ec, action)(guid, timeout=5)
    err = info.value
    assert isinstance(err, NepiError) and not isinstance(err, InvalidInputError)
    assert (err.guid, err.state, err.action) == (guid, S[state], action.upper())
    msg = str(err)
    assert f"resource {guid}" in msg and state in msg and action.upper() in msg and rule in msg
    expect_unchanged(ec, before)


@pytest.mark.parametrize(("action", "good", "bad"), [("start", "READY", "NEW"), ("stop", "STARTED", "READY")])
def test_an_illegal_transition_in_a_list_does_nothing_to_the_others(ec, staged, action, good, bad):
    before = snapshot(ec)
    with pytest.raises(InvalidTransitionError) as info:
        getattr(ec, action)([staged[good], staged[bad]], timeout=5)
    assert info.value.guid == staged[bad]
    expect_unchanged(ec, before)


def test_deploy_twice(ec, two):
    app, node = two
    ec.deploy(app)
    with pytest.raises(InvalidTransitionError) as info:
        ec.deploy(app)
    err = info.value
    assert (err.guid, err.action) == (app, "DEPLOY")
    assert f"resource {app}" in str(err) and "already deployed" in str(err)
    ec.deploy(node)
    ec.wait_finished(timeout=5)
    # deployed once: one NEW -> DISCOVERED transition
    assert [e.new for e in ec.events.for_guid(app)].count(S.DISCOVERED) == 1
    before = snapshot(ec)
    with pytest.raises(InvalidTransitionError) as info:
        ec.deploy([node, app])
    assert info.value.guid == node and info.value.state == S.STARTED
    assert f"resource {node}" in str(info.value) and "STARTED" in str(info.value)
    assert "already deployed" in str(info.value)
    expect_unchanged(ec, before)
    ec.deploy()  # deploying "whatever is new" when nothing is: a no-op, not an error
    expect_unchanged(ec, before)


@pytest.mark.parametrize("group", ["g1", 1.5, True])
def test_deploy_with_a_bad_group(ec, two, group):
    before = snapshot(ec)
    with pytest.raises(InvalidInputError) as info:
        ec.deploy(group=group)
    assert repr(group) in str(info.value) and "group" in str(info.value)
    expect_unchanged(ec, before)


# == values that escaped the error tree (issue 11, item 13) ============================


@pytest.fixture
def hosts(ec):
    """A linux::Node with an application and a ping on it, registered, not deployed."""
    node = ec.register_resource("linux::Node", hostname="localhost")
    app = ec.register_resource("linux::Application", connectedTo=node, command="true")
    ping = ec.register_resource("linux::Ping", connectedTo=node, target="127.0.0.1")
    return SimpleNamespace(node=node, app=app, ping=ping)


def _no_task_was_scheduled(ec):
    return ec.schedule("0s", lambda: None, track=True) == 1


#: (id, call, error, words in the message): each was a raw OverflowError, ValueError or
#: TypeError, or was accepted and failed later (at deploy, at start, when the date came).
ESCAPED = [
    ("guid=2**63", lambda ec, r: ec.register_resource("test::Node", guid=2**63),
     InvalidInputError, ["guid", "9223372036854775808", "2**63 - 1"]),
    ("guid=-2**70", lambda ec, r: ec.register_resource("test::Node", guid=-(2**70)),
     InvalidInputError, ["guid", "2**63 - 1"]),
    ("stopGracePeriod=10**400", lambda ec, r: ec.set(r.app, "stopGracePeriod", 10**400),
     AttributeValueError, ["'stopGracePeriod'", "finite", "401 characters"]),
    ("stopGracePeriod=10**400 at registration",
     lambda ec, r: ec.register_resource("linux::Application", stopGracePeriod=10**400),
     AttributeValueError, ["'stopGracePeriod'", "finite"]),
    ("schedule('99999999999h')", lambda ec, r: ec.schedule("99999999999h", lambda: None),
     TimeFormatError, ["'99999999999h'", "year 10000"]),
    ("schedule(1e308)", lambda ec, r: ec.schedule(1e308, lambda: None), TimeFormatError,
     ["1e+308", "year 10000"]),
    ("schedule('9'*400 + 's')", lambda ec, r: ec.schedule("9" * 400 + "s", lambda: None),
     TimeFormatError, ["cannot read time", "expected"]),
    ("delay '9'*400 + 's'", lambda ec, r: ec.register_condition(r.app, A.START, r.node, S.STARTED,
                                                                 "9" * 400 + "s"),
     TimeFormatError, ["finite"]),
    ("schedule(callback with an argument)", lambda ec, r: ec.schedule("1s", lambda x: None),
     InvalidInputError, ["without arguments", "missing a required argument: 'x'", "partial"]),
    ("schedule(callback with a keyword-only argument)", lambda ec, r: ec.schedule("1s", lambda *, x: None),
     InvalidInputError, ["without arguments"]),
    ("trace stream block=0", lambda ec, r: ec.trace(r.app, "stdout", "stream", block=0),
     InvalidInputError, ["block", ">= 1", "0"]),
    ("trace stream offset=-1", lambda ec, r: ec.trace(r.app, "stdout", "stream", offset=-1),
     InvalidInputError, ["offset", ">= 0", "-1"]),
    ("trace stream block='512'", lambda ec, r: ec.trace(r.app, "stdout", "stream", block="512"),
     InvalidInputError, ["block", "integer", "'512'"]),
    ("trace stream block=True", lambda ec, r: ec.trace(r.app, "stdout", "stream", block=True),
     InvalidInputError, ["block", "integer", "True"]),
    ("trace stream block=2**70", lambda ec, r: ec.trace(r.app, "stdout", "stream", block=2**70),
     InvalidInputError, ["block", "at most 1073741824", "ALL"]),
    ("trace stream offset beyond any file",
     lambda ec, r: ec.trace(r.app, "stdout", "stream", block=512, offset=2**62),
     InvalidInputError, ["offset", "largest file position"]),
    ("trace_async stream block=0",
     lambda ec, r: asyncio.run(ec.trace_async(r.app, "stdout", "stream", block=0)),
     InvalidInputError, ["block", ">= 1"]),
    ("autoDeploy='maybe'", lambda ec, r: ec.register_resource("test::Node", autoDeploy="maybe"),
     AttributeValueError, ["'autoDeploy'", "'maybe'", "True or False"]),
    ("autoDeploy=2", lambda ec, r: ec.register_resource("test::Node", autoDeploy=2),
     AttributeValueError, ["'autoDeploy'", "True or False"]),
    ("command with a NUL", lambda ec, r: ec.set(r.app, "command", "echo a\x00b"),
     AttributeValueError, ["'command'", "NUL", f"resource {2}"]),
    ("env with a NUL", lambda ec, r: ec.set(r.app, "env", "A=a\x00b"), AttributeValueError, ["'env'", "NUL"]),
    ("command with a NUL at registration",
     lambda ec, r: ec.register_resource("linux::Application", command="\x00"),
     AttributeValueError, ["'command'", "NUL"]),
    ("hostname=''", lambda ec, r: ec.set(r.node, "hostname", ""), AttributeValueError,
     ["'hostname'", "''", "needed"]),
    ("hostname='  '", lambda ec, r: ec.set(r.node, "hostname", "  "), AttributeValueError,
     ["'hostname'", "needed"]),
    ("hostname='my host'", lambda ec, r: ec.set(r.node, "hostname", "my host"), AttributeValueError,
     ["'hostname'", "spaces"]),
    ("hostname='-oProxyCommand=x'", lambda ec, r: ec.set(r.node, "hostname", "-oProxyCommand=x"),
     AttributeValueError, ["'hostname'", "'-'"]),
    ("hostname='' at registration", lambda ec, r: ec.register_resource("linux::Node", hostname=""),
     AttributeValueError, ["'hostname'", "needed"]),
    ("Ping count=2**70", lambda ec, r: ec.set(r.ping, "count", 2**70), AttributeValueError,
     ["'count'", "64 bits"]),
    ("Ping count='2**70' as a string", lambda ec, r: ec.set(r.ping, "count", str(2**70)),
     AttributeValueError, ["'count'", "64 bits"]),
    ("Ping deadline=2**31", lambda ec, r: ec.set(r.ping, "deadline", 2**31), AttributeValueError,
     ["'deadline'", "2147483647"]),
    ("Ping interval=1e300", lambda ec, r: ec.set(r.ping, "interval", 1e300), AttributeValueError,
     ["'interval'", "2147483"]),
]


@pytest.mark.parametrize(("call", "error", "words"), [c[1:] for c in ESCAPED], ids=[c[0] for c in ESCAPED])
def test_values_that_escaped_the_error_tree_are_refused_at_the_call(ec, hosts, call, error, words):
    before = snapshot(ec)
    with pytest.raises(error) as info:
        call(ec, hosts)
    err = info.value
    assert isinstance(err, InvalidInputError) and isinstance(err, NepiError)
    msg = str(err)
    for word in words:
        assert word in msg, f"{word!r} not in {msg!r}"
    expect_unchanged(ec, before)
    assert _no_task_was_scheduled(ec)
    assert [ec.get(hosts.node, "hostname"), ec.get(hosts.app, "command"), ec.get(hosts.ping, "count")] == [
        "localhost", "true", None]


def test_values_at_the_edge_of_those_are_accepted(ec, hosts):
    """Control for the table above."""
    assert ec.set(hosts.ping, "count", 2**63 - 1) == 2**63 - 1
    assert ec.set(hosts.ping, "count", str(2**63 - 1)) == 2**63 - 1
    assert ec.set(hosts.ping, "deadline", 2**31 - 1) == 2**31 - 1
    assert ec.set(hosts.app, "stopGracePeriod", "1e3") == 1000.0
    assert ec.set(hosts.app, "stopGracePeriod", 10**20) == 1e20
    for name in ("::1", "127.0.0.1", "host-1.example.org", "fe80::1%eth0", "localhost"):
        assert ec.set(hosts.node, "hostname", name) == name
    assert ec.register_resource("test::Node", guid=2**63 - 1) == 2**63 - 1
    assert ec.register_resource("test::Node", guid=0) == 0
    assert ec.schedule("99999h", lambda: None) == 1
    assert ec.schedule(3e9, lambda: None) == 2  # in the year 2120 or so: a datetime holds it


def _callback(a=1, *rest, b=2, **options):
    return a


class _Callable:
    def __call__(self):
        return 1


@pytest.mark.parametrize("callback", [
    lambda: None, _callback, functools.partial(_callback, 3), _Callable(), print, asyncio.sleep.__call__,
], ids=["lambda", "defaults", "partial", "callable object", "builtin", "method-wrapper"])
def test_callbacks_callable_without_arguments_are_scheduled(ec, callback):
    """Control for the arity refusal: defaults, partials, callable objects, builtins
    without a signature are all fine."""
    assert ec.schedule("1h", callback) == 1


def test_the_largest_guid_then_an_automatic_one(ec):
    """Before: the second call raised OverflowError after inserting a resource, every later
    call added another ghost, ``events.jsonl`` stayed empty and ``shutdown()`` raised
    ``ValueError`` from a zip."""
    top = ec.register_resource("test::Node", guid=MAX_GUID)
    assert top == MAX_GUID == 2**63 - 1
    before = snapshot(ec)
    for _ in range(3):
        with pytest.raises(InvalidInputError) as info:
            ec.register_resource("test::Node")
        assert "guid=" in str(info.value) and "2**63 - 1" in str(info.value)
        expect_unchanged(ec, before)
    assert ec.register_resource("test::Node", guid=5) == 5  # an explicit guid still works
    ec.deploy()
    ec.wait_finished(timeout=5)
    ec.shutdown()
    with open(os.path.join(ec.run_dir, "events.jsonl")) as f:
        lines = [json.loads(line) for line in f]
    assert len(lines) == len(ec.events) > 2
    assert {line["guid"] for line in lines} == {MAX_GUID, 5} == set(ec.resources)


@pytest.mark.parametrize(("value", "deployed"), [
    ("no", False), ("false", False), ("off", False), (False, False), (None, False),
    ("yes", True), ("true", True), (True, True),
])
def test_auto_deploy_is_read_as_a_bool_attribute(ec, value, deployed):
    """Before: ``autoDeploy="no"`` deployed (any truthy value did)."""
    guid = ec.register_resource("test::Node", autoDeploy=value)
    if deployed:
        ec.wait_finished(guid, timeout=5)
        assert ec.state(guid) == S.STARTED
    else:
        assert ec.state(guid) == S.NEW and "not deployed yet" in ec.explain(guid)


def test_stream_reads_within_the_limits(ec, two):
    """Control for the trace rows of the table: blocks of a trace that exists, and one
    as large as allowed (read without allocating a gigabyte)."""
    app, _ = two
    with open(ec.trace(app, "log", "path"), "w") as f:
        f.write("0123456789")
    assert ec.trace(app, "log", "stream", block=4, offset=1) == "4567"
    assert ec.trace(app, "log", "stream", block=4, offset=2) == "89"
    assert ec.trace(app, "log", "stream", block=4, offset=9) == ""
    assert ec.trace(app, "log", "stream", block=2**30, offset=0) == "0123456789"
    assert ec.trace(app, "log", "stream", block=1, offset=2**62) == ""
    assert ec.trace(app, "extra", "stream", block=3) == ""  # not written: empty, as before


def _too_long_to_hold_a_run(tmp_path):
    """A local_dir in which the experiment folder can be made, but not the run directory
    (the path would pass PATH_MAX, 4096): the folders made on the way must go again."""
    path = str(tmp_path)
    target = 4096 - len("/test") - 10  # room for /test, not for /test/<20-digit run id>
    while len(path) + 201 < target:
        path = os.path.join(path, "d" * 200)
    return os.path.join(path, "e" * (target - len(path) - 1))


#: (id, local_dir made from tmp_path, what the message says)
UNUSABLE_DIRS = [
    ("a file", lambda t: _file(t / "file"), "a file is in the way"),
    ("under a file", lambda t: os.path.join(_file(t / "file"), "sub"), "a file is in the way"),
    ("an int", lambda t: 5, "not int"),
    ("bytes", lambda t: os.fsencode(t), "not bytes"),
    ("empty", lambda t: "", "empty"),
    ("a NUL byte", lambda t: str(t / "a\x00b"), "NUL"),
    ("a name too long", lambda t: str(t / ("x" * 300)), "File name too long"),
    ("a path too long for the run", _too_long_to_hold_a_run, "File name too long"),
    ("read-only (/sys)", lambda t: "/sys", "cannot make the run directory"),
    ("not writable", lambda t: _read_only_dir(t / "ro"), "Permission denied"),
]


def _file(path):
    path.write_text("not a folder")
    return str(path)


def _read_only_dir(path):
    if os.geteuid() == 0:
        pytest.skip("root writes into a folder whatever its mode (the /sys row covers it)")
    path.mkdir()
    path.chmod(0o500)
    return str(path)


@pytest.mark.parametrize(("make", "words"), [c[1:] for c in UNUSABLE_DIRS], ids=[c[0] for c in UNUSABLE_DIRS])
def test_an_unusable_local_dir_is_refused_and_leaves_nothing(tmp_path, make, words):
    """Before: five raw OSError / TypeError / ValueError, and folders left behind."""
    if make is UNUSABLE_DIRS[8][1] and not os.path.isdir("/sys"):
        pytest.skip("no /sys here")
    local_dir = make(tmp_path)
    present = sorted(os.listdir(tmp_path))
    threads = threading.active_count()
    with pytest.raises(ResultsDirectoryError) as info:
        ExperimentController(exp_id="test", local_dir=local_dir)
    err = info.value
    assert isinstance(err, InvalidInputError)
    assert err.path == local_dir or err.path == os.path.abspath(local_dir)
    assert "local_dir" in str(err) and words in str(err), str(err)
    assert len(str(err)) < 600  # a path of 4,000 characters is shortened
    assert sorted(os.listdir(tmp_path)) == present  # no folder was left behind
    assert threading.active_count() == threads  # no loop thread was started
    if os.path.isdir("/sys"):
        assert not os.path.exists("/sys/test")


def test_a_local_dir_as_a_path_object_or_to_be_made_is_fine(tmp_path):
    """Control for the test above."""
    with ExperimentController(exp_id="test", local_dir=tmp_path / "new" / "results") as ec:
        assert ec.run_dir.startswith(str(tmp_path / "new" / "results" / "test"))
