"""Conditions between ns-3 resources, honoured in simulated time.

START and STOP conditions between the applications of one simulation (or on the
simulation itself) are compiled into the applications' simulated start and stop
times; the events carry those times, the traces show them.  A condition on a
resource outside the simulation fails the deploy saying what to do; resources outside
the simulation may follow it in wall-clock time.  Real simulations, in the session's
shared ns-3 process.
"""

from __future__ import annotations

import pytest

from nepi_lab import ExperimentController, ExperimentFailedError, ResourceState
from nepi_lab.analysis import trace_frame

from .conftest import BUILD, needs_ns3

pytestmark = [pytest.mark.slow, needs_ns3]

S = ResourceState


def pair(ec, stop=6.0):
    """Two nodes on one 10 Mbit/s, 5 ms link; returns (simulation, n0, n1, link)."""
    sim = ec.register_resource("ns3::Simulation", stopTime=stop)
    n0, n1 = (ec.register_resource("ns3::Node", connectedTo=sim, name=f"n{i}") for i in range(2))
    link = ec.register_resource("ns3::PointToPointLink", connectedTo=n0, delay="5ms")
    ec.register_connection(link, n1)
    return sim, n0, n1, link


def sim_time(ec, guid, state):
    """The simulated time of ``guid``'s event to ``state`` (None: no such event)."""
    times = [e.sim_time for e in ec.events.for_guid(guid) if e.new == state]
    assert len(times) <= 1, times
    return times[0] if times else None


def test_start_after_another_application_started_plus_a_delay(ec):
    sim, n0, n1, link = pair(ec)
    ec.enable_trace(link, "pcapA")
    sink = ec.register_resource("ns3::UdpEchoServer", connectedTo=n1, startTime=1.0)
    ping = ec.register_resource("ns3::Ping", connectedTo=n0, target="n1")
    ec.register_condition(ping, "START", sink, "STARTED", "2s")
    ec.deploy()
    ec.wait_finished([sim, sink, ping], timeout=BUILD)
    assert [ec.state(g) for g in (sim, sink, ping)] == [S.FINISHED] * 3, ec.explain(ping)
    assert (sim_time(ec, sink, S.STARTED), sim_time(ec, ping, S.STARTED)) == (1.0, 3.0)
    assert sim_time(ec, ping, S.FINISHED) == 6.0
    # one request a second from 3 s to the end at 6 s: three replies (five from the default 1 s)
    replies = trace_frame(ec, ping, "stdout")
    assert list(replies["seq"]) == [0, 1, 2]
    packets = trace_frame(ec, link, "pcapA")
    icmp = packets[packets["protocol"] == "ICMP"]
    seconds = (icmp["time"] - icmp["time"].iloc[0].normalize()).dt.total_seconds()
    assert seconds.iloc[0] == 3.0 and len(icmp) == 6, seconds.tolist()


def test_start_after_finished_and_stop_after_started(ec):
    sim, n0, n1, _ = pair(ec)
    first = ec.register_resource("ns3::Ping", connectedTo=n0, target="n1", startTime=0.5, stopTime=2.0)
    then = ec.register_resource("ns3::Ping", connectedTo=n0, target="n1")
    ec.register_condition(then, "START", first, "FINISHED", "1s")
    ec.register_condition(then, "STOP", first, "STARTED", "4.25s")
    ec.deploy()
    ec.wait_finished([sim, first, then], timeout=BUILD)
    assert ec.state(then) == S.FINISHED, ec.explain(then)  # ended by the simulation, not ec.stop
    assert (sim_time(ec, first, S.STARTED), sim_time(ec, first, S.FINISHED)) == (0.5, 2.0)
    assert (sim_time(ec, then, S.STARTED), sim_time(ec, then, S.FINISHED)) == (3.0, 4.75)
    assert list(trace_frame(ec, then, "stdout")["seq"]) == [0, 1]  # requests at 3 and 4 s


def test_a_chain_of_three_resolved_in_order_whatever_the_registration_order(ec):
    sim, n0, n1, _ = pair(ec)
    c = ec.register_resource("ns3::Ping", connectedTo=n0, target="n1", count=1)
    b = ec.register_resource("ns3::Ping", connectedTo=n1, target="n0", count=1)
    a = ec.register_resource("ns3::UdpEchoServer", connectedTo=n1, startTime=0.5)
    ec.register_condition(c, "START", b, "STARTED", "1.5s")
    ec.register_condition(b, "START", a, "STARTED", "1s")
    ec.deploy()
    ec.wait_finished([sim, a, b, c], timeout=BUILD)
    assert [sim_time(ec, g, S.STARTED) for g in (a, b, c)] == [0.5, 1.5, 3.0]
    frame = ec.events.to_dataframe()
    started = frame[frame["guid"].isin([a, b, c]) & (frame["to"] == "STARTED")]
    assert started.sort_values("sim_time")["guid"].tolist() == [a, b, c]


def test_several_conditions_the_latest_and_the_start_time(ec):
    sim, n0, n1, _ = pair(ec)
    early = ec.register_resource("ns3::UdpEchoServer", connectedTo=n1, startTime=0.5, stopTime=1.5)
    late = ec.register_resource("ns3::UdpEchoServer", connectedTo=n1, startTime=2.0, port=10)
    both = ec.register_resource("ns3::Ping", connectedTo=n0, target="n1", count=1)
    ec.register_condition(both, "START", early, "FINISHED", "2s")  # 3.5
    ec.register_condition(both, "START", [early, late], "STARTED", "1s")  # 3.0
    # a startTime that is set is a lower bound; the default (1 s) does not apply
    bound = ec.register_resource("ns3::Ping", connectedTo=n0, target="n1", count=1, startTime=4.0)
    ec.register_condition(bound, "START", early, "STARTED", "1s")
    sooner = ec.register_resource("ns3::Ping", connectedTo=n0, target="n1", count=1)
    ec.register_condition(sooner, "START", sim, "STARTED", "250ms")
    # one stops after the other started, which starts after the first started: no cycle
    first = ec.register_resource("ns3::Ping", connectedTo=n0, target="n1", startTime=1.0)
    second = ec.register_resource("ns3::Ping", connectedTo=n0, target="n1")
    ec.register_condition(first, "STOP", second, "STARTED", "1s")
    ec.register_condition(second, "START", first, "STARTED", "1s")
    ec.deploy()
    ec.wait_finished([sim, early, late, both, bound, sooner, first, second], timeout=BUILD)
    assert (sim_time(ec, first, S.FINISHED), sim_time(ec, second, S.STARTED)) == (3.0, 2.0)
    assert sim_time(ec, both, S.STARTED) == 3.5
    assert sim_time(ec, bound, S.STARTED) == 4.0
    assert sim_time(ec, sooner, S.STARTED) == 0.25
    assert ec.state(sooner) == S.FINISHED


def test_a_start_beyond_the_end_means_the_application_never_runs(ec):
    sim, n0, n1, _ = pair(ec, stop=4.0)
    first = ec.register_resource("ns3::Ping", connectedTo=n0, target="n1", startTime=1.0, stopTime=2.0)
    beyond = ec.register_resource("ns3::Ping", connectedTo=n0, target="n1", critical=False)
    ec.register_condition(beyond, "START", first, "FINISHED", "3s")  # 5 s, after the simulation's 4 s
    cut = ec.register_resource("ns3::Ping", connectedTo=n0, target="n1", stopTime=2.0, critical=False)
    ec.register_condition(cut, "START", first, "STARTED", "1.5s")  # 2.5 s, after its own stopTime
    chained = ec.register_resource("ns3::Ping", connectedTo=n0, target="n1", critical=False)
    ec.register_condition(chained, "START", beyond, "STARTED")
    ec.deploy()
    ec.wait_finished([sim, first, beyond, cut, chained], timeout=BUILD)
    assert ec.state(sim) == S.FINISHED and ec.state(first) == S.FINISHED
    ended = f"the simulation (resource {sim}) ended at simulated 4 s"
    messages = {g: ec.get_resource(g).failure.message for g in (beyond, cut, chained)}
    assert messages[beyond] == (f"{ended}, before this application's start (simulated 5 s, "
                                "from its conditions)")
    assert messages[cut] == (f"{ended}, and this application never ran: its conditions put its start "
                             "(simulated 2.5 s) at or after its end (simulated 2 s)")
    assert messages[chained] == (f"{ended}, before this application's start: its conditions wait for "
                                 "an application that never runs")
    for guid in (beyond, cut, chained):
        assert ec.state(guid) == S.FAILED and sim_time(ec, guid, S.STARTED) is None


def test_a_condition_on_a_resource_outside_the_simulation_fails_the_deploy_saying_what_to_do(ec, tmp_path):
    sim, n0, n1, _ = pair(ec)
    (tmp_path / "home").mkdir()
    host = ec.register_resource("linux::Node", home=str(tmp_path / "home"))
    local = ec.register_resource("linux::Application", connectedTo=host, command="true")
    ping = ec.register_resource("ns3::Ping", connectedTo=n0, target="n1")
    ec.register_condition(ping, "START", local, "STARTED", "2s")
    ec.deploy()
    with pytest.raises(ExperimentFailedError, match="cannot hold there"):
        ec.wait_finished([sim, ping], timeout=60)
    assert ec.get_resource(sim).outcome == S.FAILED and ec.get_resource(ping).outcome == S.FAILED
    message = ec.get_resource(ping).failure.message
    assert message == (
        f"condition 'START {ping} once resource {local} reached STARTED + 2 s' refers to "
        f"resource {local} (linux::Application), which runs outside simulation {sim}: an ns-3 application "
        "follows simulated time, so the condition cannot hold there. Refer to applications of simulation "
        f"{sim} or to the simulation itself, or put the condition on the ns3::Simulation (it then starts "
        "or stops in wall-clock time)")
    assert ec.get_resource(sim).failure.message == f"resource {ping} (ns3::Ping): {message}"
    assert ec.get_resource(sim).worker_pid is None  # refused before any ns-3 process


def test_a_condition_on_a_state_without_simulated_time_fails_the_deploy(ec, tmp_path):
    sim, n0, n1, link = pair(ec)
    sink = ec.register_resource("ns3::UdpEchoServer", connectedTo=n1)
    ping = ec.register_resource("ns3::Ping", connectedTo=n0, target="n1")
    ec.register_condition(ping, "STOP", sink, "READY")
    ec.deploy()
    with pytest.raises(ExperimentFailedError):
        ec.wait_finished([sim, ping], timeout=60)
    assert ec.get_resource(ping).outcome == S.FAILED
    message = ec.get_resource(ping).failure.message
    assert message.startswith(f"condition 'STOP {ping} once resource {sink} reached READY' "
                              "refers to state READY, which has no simulated time: use STARTED or FINISHED")
    sim2 = ExperimentController(exp_id="ns3-conditions-2", local_dir=str(tmp_path))
    try:  # a node or link of the simulation has no simulated start either
        s, m0, m1, wire = pair(sim2)
        app = sim2.register_resource("ns3::Ping", connectedTo=m1, target="n0")
        sim2.register_condition(app, "START", wire, "STARTED")
        sim2.deploy()
        with pytest.raises(ExperimentFailedError):
            sim2.wait_finished([s, app], timeout=60)
        assert (f"refers to resource {wire} (ns3::PointToPointLink), which has no simulated start or end"
                in sim2.get_resource(app).failure.message)
    finally:
        sim2.shutdown()


def test_a_condition_registered_after_the_build_fails_the_application(ec):
    sim, n0, n1, link = pair(ec, stop=3.0)
    sink = ec.register_resource("ns3::UdpEchoServer", connectedTo=n1)
    ping = ec.register_resource("ns3::Ping", connectedTo=n0, target="n1", critical=False)
    ec.deploy([sim, n0, n1, link, sink])
    ec.wait(sim, S.READY, timeout=BUILD)
    ec.register_condition(ping, "START", sink, "STARTED")
    ec.deploy(ping)
    ec.wait_finished([sim, ping], timeout=60)
    assert ec.state(ping) == S.FAILED and ec.state(sim) == S.FINISHED
    assert ec.get_resource(ping).failure.message == (
        f"condition 'START {ping} once resource {sink} reached STARTED' was registered after simulation "
        f"{sim} was built, so its simulated times do not include it: register the conditions of ns-3 "
        "applications before deploying them")


def test_a_local_application_starts_after_an_ns3_application_finished(ec, tmp_path):
    sim, n0, n1, _ = pair(ec, stop=3.0)
    ping = ec.register_resource("ns3::Ping", connectedTo=n0, target="n1", startTime=0.5, stopTime=1.5)
    (tmp_path / "home").mkdir()
    host = ec.register_resource("linux::Node", home=str(tmp_path / "home"))
    after_ping = ec.register_resource("linux::Application", connectedTo=host, command="echo ping done")
    after_sim = ec.register_resource("linux::Application", connectedTo=host, command="echo sim done")
    ec.register_condition(after_ping, "START", ping, "FINISHED")
    ec.register_condition(after_sim, "START", sim, "FINISHED")
    ec.deploy()
    ec.wait_finished([sim, ping, after_ping, after_sim], timeout=BUILD)
    assert ec.trace(after_ping, "stdout") == "ping done\n" and ec.trace(after_sim, "stdout") == "sim done\n"
    ping_done = [e for e in ec.events.for_guid(ping) if e.new == S.FINISHED][0]
    sim_done = [e for e in ec.events.for_guid(sim) if e.new == S.FINISHED][0]
    assert ping_done.sim_time == 1.5 and sim_done.sim_time == 3.0
    assert ec.get_start_time(after_ping) >= ec.get_finish_time(ping)
    assert ec.get_start_time(after_sim) >= ec.get_finish_time(sim)
    assert sim_time(ec, after_ping, S.STARTED) is None  # a wall-clock resource
