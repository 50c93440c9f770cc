"""Real ns-3 simulations: a line of three nodes with ping and UDP echo, their traces
read by the analysis parsers, states at simulated times, ns-3's errors as failures,
two simulations side by side, nothing left behind.

The session imports ns-3 once (in the shared ns-3 process), except the test that runs
a simulation in a fresh process of its own (``isolated``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess

import psutil
import pytest

from nepi_lab import ExperimentFailedError, ResourceState
from nepi_lab.analysis import events_frame, trace_frame
from nepi_lab.resources.ns3 import _process

from ...guards import wait_until
from .conftest import BUILD, needs_ns3

pytestmark = [pytest.mark.slow, needs_ns3]

S = ResourceState


def line(ec, delays=("5ms", "10ms"), rate="10Mbps", stop=6.0, **sim):
    """Three nodes in a line, n0 - n1 - n2; returns (simulation, nodes, links)."""
    s = ec.register_resource("ns3::Simulation", stopTime=stop, **sim)
    nodes = [ec.register_resource("ns3::Node", connectedTo=s, name=f"n{i}") for i in range(3)]
    links = []
    for i, delay in enumerate(delays):
        link = ec.register_resource("ns3::PointToPointLink", connectedTo=nodes[i], dataRate=rate, delay=delay)
        ec.register_connection(link, nodes[i + 1])
        links.append(link)
    return s, nodes, links


def events_of(ec, guid):
    return {e.new: e for e in ec.events.for_guid(guid)}


def test_line_ping_and_udp_echo_states_at_simulated_times_and_traces(ec):
    sim, (n0, n1, n2), (l1, l2) = line(ec)
    ec.set(l2, "network", "192.168.7.0/30")
    ec.enable_trace(l1, "pcapA")
    ping = ec.register_resource("ns3::Ping", connectedTo=n0, target="n2", count=3, startTime=1.0)
    server = ec.register_resource("ns3::UdpEchoServer", connectedTo=n2, startTime=0.5, port=7)
    client = ec.register_resource("ns3::UdpEchoClient", connectedTo=n0, target=n2, port=7, maxPackets=2,
                                  packetSize=500, startTime=2.0, stopTime=4.5)
    ec.deploy()
    ec.wait_finished([sim, ping, server, client], timeout=BUILD)
    for guid in (sim, ping, server, client):
        assert ec.state(guid) == S.FINISHED, ec.explain(guid)

    # addresses: automatic for the first link, from its network for the second
    assert (ec.get(l1, "addressA"), ec.get(l1, "addressB")) == ("10.0.1.1", "10.0.1.2")
    assert (ec.get(l2, "addressA"), ec.get(l2, "addressB")) == ("192.168.7.1", "192.168.7.2")

    # the ping, read by Linux ping's parser: RTT = 2 x (5 + 10 ms) + 4 transmissions of
    # 84 bytes of IP + 2 of PPP at 10 Mbit/s
    replies = trace_frame(ec, ping, "stdout")
    assert list(replies["seq"]) == [0, 1, 2]
    expected = 2 * 15.0 + 4 * (86 * 8 / 10e6) * 1e3
    assert replies["rtt_ms"].sub(expected).abs().max() < 0.01, (replies["rtt_ms"].tolist(), expected)
    assert set(replies["ttl"]) == {63} and set(replies["source"]) == {"192.168.7.2"}
    summary = replies.attrs["summary"]
    assert (summary["transmitted"], summary["received"], summary["loss_percent"]) == (3, 3, 0.0)

    # the echo client's lines, in the same columns
    echoes = trace_frame(ec, client, "stdout")
    assert list(echoes["bytes"]) == [500, 500] and (echoes["rtt_ms"] > expected).all()

    # states at their simulated times, in the events and their frame
    assert events_of(ec, sim)[S.STARTED].sim_time == 0.0 and events_of(ec, sim)[S.FINISHED].sim_time == 6.0
    assert events_of(ec, server)[S.STARTED].sim_time == 0.5
    assert events_of(ec, ping)[S.STARTED].sim_time == 1.0 and events_of(ec, ping)[S.FINISHED].sim_time == 6.0
    assert events_of(ec, client)[S.STARTED].sim_time == 2.0
    assert events_of(ec, client)[S.FINISHED].sim_time == 4.5
    assert events_of(ec, client)[S.FINISHED].detail == "simulated 4.500000 s"
    assert events_of(ec, n0)[S.READY].time >= events_of(ec, sim)[S.READY].time  # READY once built
    frame = ec.events.to_dataframe()
    started = frame[(frame["guid"] == client) & (frame["to"] == "STARTED")]
    assert started["sim_time"].tolist() == [2.0]
    assert ec.get(sim, "simulatedTime") == 6.0
    run_dir = ec.run_dir

    # the pcap of n0's end of the first link: 3 pings and 2 echoes, requests and replies
    packets = trace_frame(ec, l1, "pcapA")
    assert packets["protocol"].value_counts().to_dict() == {"ICMP": 6, "UDP": 4}
    assert set(packets.loc[packets["protocol"] == "UDP", "length"]) == {500}
    assert set(packets["source"]) == {"10.0.1.1", "192.168.7.2"}
    if shutil.which("tcpdump"):
        out = subprocess.run(["tcpdump", "-nr", ec.trace(l1, "pcapA", "path")],
                             capture_output=True, text=True)
        assert len(out.stdout.splitlines()) == 10, out.stderr

    # the analysis layer's events frame, from the controller and from the run directory
    ec.release()
    ec.events.flush()
    for source in (ec, run_dir):
        events = events_frame(source)
        rows = events[(events["guid"] == ping) & events["to"].isin(["STARTED", "FINISHED"])]
        assert rows["sim_time"].tolist() == [1.0, 6.0]
        assert events.loc[events["type"] == "ns3::Node", "sim_time"].isna().all()


def test_a_counted_ping_gets_every_sub_millisecond_reply_and_exact_statistics(ec):
    """ns-3's own Count stops a Ping 2 x the largest RTT in whole milliseconds after its
    last request: with RTTs under 1 ms the last reply was lost and the statistics read
    0.000.  Ours sends ``count`` requests and hears every reply until its stopTime."""
    sim, (n0, _, _), _ = line(ec, delays=("10us", "20us"), rate="1Gbps", stop=5.0)
    fast = ec.register_resource("ns3::Ping", connectedTo=n0, target="n2", count=3, interval=0.5,
                                startTime=1.0)
    ec.deploy()
    ec.wait_finished([sim, fast], timeout=BUILD)
    replies = trace_frame(ec, fast, "stdout")
    assert list(replies["seq"]) == [0, 1, 2]
    rtt = 2 * (10e-6 + 20e-6) + 4 * 86 * 8 / 1e9  # both links both ways + four 86-byte PPP frames
    assert replies["rtt_ms"].tolist() == pytest.approx([rtt * 1e3] * 3, abs=0.0005)
    summary = replies.attrs["summary"]
    assert (summary["transmitted"], summary["received"], summary["loss_percent"]) == (3, 3, 0)
    assert summary["rtt_min_ms"] == pytest.approx(rtt * 1e3, abs=0.0005) and summary["rtt_min_ms"] > 0
    assert sum("icmp_seq=" in line for line in ec.trace(fast, "stdout").splitlines()) == 3  # not one more


def test_bad_attribute_fails_the_resource_with_ns3s_words(ec):
    sim, nodes, (l1, l2) = line(ec, stop=2.0)
    ec.set(l2, "dataRate", "fast")
    ping = ec.register_resource("ns3::Ping", connectedTo=nodes[0], target="n2")
    ec.deploy()
    with pytest.raises(ExperimentFailedError):
        ec.wait_finished(ping, timeout=BUILD)
    link = ec.get_resource(l2)
    assert link.state in (S.FAILED, S.RELEASED) and link.outcome == S.FAILED
    assert "'fast' is not a valid value for ns3::PointToPointNetDevice::DataRate" in link.failure.message
    assert f"resource {l2} (ns3::PointToPointLink): 'fast'" in ec.get_resource(sim).failure.message
    assert ec.get_resource(l1).outcome == S.FAILED  # its simulation was not built


def test_an_ns3_abort_fails_the_simulation_with_its_message(ec):
    # two links on one network: ns-3's address helper aborts the process (NS_FATAL)
    sim, nodes, (l1, l2) = line(ec, stop=2.0)
    ec.set(l1, "network", "10.9.0.0/24")
    ec.set(l2, "network", "10.9.0.0/24")
    ec.deploy()
    with pytest.raises(ExperimentFailedError, match="Address Collision"):
        ec.wait_finished(sim, timeout=BUILD)
    failure = ec.get_resource(sim).failure
    assert failure.message == "ns-3 aborted: Ipv4AddressGeneratorImpl::Add(): Address Collision: 10.9.0.1"
    assert 'msg="Ipv4AddressGeneratorImpl::Add(): Address Collision' in ec.trace(sim, "log")
    assert ec.get_resource(nodes[0]).outcome == S.FAILED


def test_a_dying_simulation_process_fails_it_and_its_applications_without_a_hang(ec):
    # a long simulation: a ping every millisecond of simulated time for a day
    sim, nodes, _ = line(ec, stop=86400.0)
    ping = ec.register_resource("ns3::Ping", connectedTo=nodes[0], target="n2", interval=0.001,
                                critical=False)
    ec.set(sim, "critical", False)
    ec.deploy()
    ec.wait(ping, S.STARTED, timeout=BUILD)
    simulation = ec.get_resource(sim)
    assert ec.state(sim) == S.STARTED and 0 < ec.get(sim, "simulatedTime") < 86400
    os.kill(simulation.worker_pid, signal.SIGKILL)
    ec.wait([sim, ping], S.FAILED, timeout=30)
    assert "the ns-3 process ended" in simulation.failure.message
    assert f"the simulation (resource {sim}) failed" in ec.get_resource(ping).failure.message


def test_the_shared_process_started_ahead_is_the_one_simulations_fork_from(ec):
    pid = _process.start_shared_process()  # returns at once: ns-3 imports in the background
    assert _process.start_shared_process() == pid  # one shared process
    s, nodes, _ = line(ec, stop=100.0)
    # 100,000 requests: seconds of wall time, the simulation's process alive all along
    ec.register_resource("ns3::Ping", connectedTo=nodes[0], target=nodes[2], interval=0.001)
    ec.deploy()
    ec.wait_started(s, timeout=BUILD)
    assert psutil.Process(ec.get_resource(s).worker_pid).ppid() == pid


def test_the_shared_process_listens_under_a_temporary_folder_too_long_for_a_socket(monkeypatch, tmp_path):
    import socket
    import tempfile

    deep = tmp_path / ("x" * 60) / ("y" * 60)  # the socket's path alone would pass 108 bytes
    deep.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    zygote = _process._Zygote()
    try:
        assert zygote.folder.startswith(str(deep)) and len(zygote.path) < 108
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(zygote.path)  # its listening socket (the backlog answers before ns-3 is imported)
    finally:
        zygote.stop()
    assert not os.path.exists(zygote.folder)


@pytest.mark.faults
def test_a_full_disk_under_a_pcap_fails_the_simulation_saying_so(tmp_path):
    from nepi_lab import ExperimentController

    from ...faults import small_disk

    with small_disk(tmp_path / "disk", "400k") as disk:
        ec = ExperimentController(exp_id="full", local_dir=str(disk))
        try:
            s = ec.register_resource("ns3::Simulation", stopTime=5.0)
            a, b = (ec.register_resource("ns3::Node", connectedTo=s) for _ in range(2))
            link = ec.register_resource("ns3::PointToPointLink", connectedTo=a, dataRate="100Mbps")
            ec.register_connection(link, b)
            ec.enable_trace(link, "pcapA")  # 20 Mbit/s for 4 s: 10 MB of pcap
            ec.register_resource("ns3::PacketSink", connectedTo=b, protocol="udp", port=9)
            ec.register_resource("ns3::OnOff", connectedTo=a, target=b, port=9, dataRate="20Mbps",
                                 protocol="udp")
            ec.deploy()
            with pytest.raises(ExperimentFailedError):
                ec.wait_finished(timeout=BUILD)
            failure = ec.get_resource(s).failure
            assert failure is not None, ec.failures
            assert "the run directory's file system is full" in failure.message, failure.message
        finally:
            ec.shutdown()


def test_two_simulations_side_by_side_a_shared_and_an_isolated_one(ec):
    runs = []
    for isolated, delay in ((False, "1ms"), (True, "3ms")):
        s = ec.register_resource("ns3::Simulation", stopTime=3.0, isolated=isolated)
        a, b = (ec.register_resource("ns3::Node", connectedTo=s) for _ in range(2))
        link = ec.register_resource("ns3::PointToPointLink", connectedTo=a, delay=delay, dataRate="1Gbps")
        ec.register_connection(link, b)
        ping = ec.register_resource("ns3::Ping", connectedTo=a, target=b, count=2)
        runs.append((s, ping, delay))
    ec.deploy()
    ec.wait_finished([guid for s, ping, _ in runs for guid in (s, ping)], timeout=BUILD)
    pids = set()
    for s, ping, delay in runs:
        assert ec.state(s) == S.FINISHED and ec.state(ping) == S.FINISHED
        rtt = trace_frame(ec, ping, "stdout")["rtt_ms"]
        assert len(rtt) == 2 and abs(rtt.mean() - 2 * float(delay[:-2])) < 0.01
        pids.add(ec.get_resource(s).worker_pid)
    assert len(pids) == 2 and os.getpid() not in pids


def test_a_lossy_link_loses_packets_as_the_seed_and_run_number_draw_them(ec):
    lost = []
    for run in (1, 1, 2):
        sim = ec.register_resource("ns3::Simulation", stopTime=30.0, seed=7, runNumber=run, checksum=True)
        a, b = (ec.register_resource("ns3::Node", connectedTo=sim) for _ in range(2))
        link = ec.register_resource("ns3::PointToPointLink", connectedTo=a, lossRate=0.3)
        ec.register_connection(link, b)
        ping = ec.register_resource("ns3::Ping", connectedTo=a, target=b, count=25, interval=1.0)
        lost.append((sim, ping))
    ec.deploy()
    ec.wait_finished([guid for pair in lost for guid in pair], timeout=BUILD)
    received = [trace_frame(ec, ping, "stdout").attrs["summary"]["received"] for _, ping in lost]
    assert all(0 < r < 25 for r in received), received  # each way: 0.7 ** 2 = 49 % arrive
    assert received[0] == received[1]  # the same seed and run: the same losses
    sequences = [list(trace_frame(ec, ping, "stdout")["seq"]) for _, ping in lost]
    assert sequences[0] == sequences[1] != sequences[2]


def test_a_resource_added_after_the_build_fails_with_the_reason(ec):
    sim, nodes, _ = line(ec, stop=2.0)
    ec.deploy()
    ec.wait(sim, S.READY, timeout=BUILD)
    late = ec.register_resource("ns3::Ping", connectedTo=nodes[0], target="n2", critical=False)
    ec.deploy(late)
    ec.wait(late, S.FAILED, timeout=30)
    assert "was built without it" in ec.get_resource(late).failure.message
    ec.wait_finished(sim, timeout=30)
    assert ec.state(sim) == S.FINISHED


def test_an_application_starting_after_the_stop_time_fails_with_the_reason(ec):
    sim, nodes, _ = line(ec, stop=2.0)
    never = ec.register_resource("ns3::Ping", connectedTo=nodes[0], target="n2", startTime=5.0,
                                 critical=False)
    ec.deploy()
    ec.wait_finished([sim, never], timeout=BUILD)
    assert ec.state(sim) == S.FINISHED and ec.state(never) == S.FAILED
    assert ec.get_resource(never).failure.message == (
        f"the simulation (resource {sim}) ended at simulated 2 s, before this application's startTime")


def test_a_linux_application_starts_once_the_simulation_finished(ec, tmp_path):
    sim, nodes, _ = line(ec, stop=3.0)
    ping = ec.register_resource("ns3::Ping", connectedTo=nodes[0], target="n2", count=2)
    (tmp_path / "home").mkdir()
    host = ec.register_resource("linux::Node", home=str(tmp_path / "home"))
    after = ec.register_resource("linux::Application", connectedTo=host, command="echo done")
    ec.register_condition(after, "START", sim, "FINISHED")
    ec.deploy()
    ec.wait_finished([sim, ping, after], timeout=BUILD)
    assert ec.trace(after, "stdout") == "done\n"
    finished = events_of(ec, sim)[S.FINISHED]
    assert events_of(ec, after)[S.STARTED].time >= finished.time and finished.sim_time == 3.0


def test_release_ends_the_simulation_process(ec, caplog):
    sim, nodes, _ = line(ec, stop=86400.0)
    ping = ec.register_resource("ns3::Ping", connectedTo=nodes[0], target="n2", interval=0.001)
    ec.deploy()
    ec.wait(ping, S.STARTED, timeout=BUILD)
    pid = ec.get_resource(sim).worker_pid
    assert pid in _process.live_pids()
    ec.release()
    assert ec.state(sim) == S.RELEASED and ec.get_resource(sim).outcome == S.STOPPED
    assert pid not in _process.live_pids() and not _process._alive(pid)
    # the run's reader and the stop waited for the same end: each saw it (none waited 10 s)
    assert not [r for r in caplog.records if "did not end" in r.getMessage()]


@pytest.mark.parametrize("round_", range(3))
def test_a_shutdown_as_the_simulation_ends_waits_for_its_end_once(ec, caplog, round_):
    """The ping FINISHED at the stop time, as the simulation ends its process: a shutdown
    right then kills it while the run waits for the same end.  Both must see it (a second
    reader on the process's pidfd used to replace the first: a 10 s wait, a warning)."""
    sim, nodes, _ = line(ec, stop=4.0)
    ping = ec.register_resource("ns3::Ping", connectedTo=nodes[0], target="n2", count=2)
    ec.deploy()
    ec.wait_finished(ping, timeout=BUILD)
    pid = ec.get_resource(sim).worker_pid
    ec.shutdown()
    assert ec.get_resource(sim).failure is None and not _process._alive(pid)
    assert not [r for r in caplog.records if "did not end" in r.getMessage() or r.levelname == "ERROR"]


def test_shutdown_while_an_isolated_simulation_imports_ns3_ends_it_at_once(ec):
    sim, nodes, _ = line(ec, stop=2.0, isolated=True)
    ec.deploy()
    simulation = ec.get_resource(sim)
    assert wait_until(lambda: simulation.worker_pid is not None, 60)
    pid = simulation.worker_pid
    assert ec.state(sim) < S.READY and _process._alive(pid)  # importing ns-3 (seconds)
    ec.shutdown(timeout=10)
    assert not _process._alive(pid) and _process.live_pids() == []
    assert ec.get_resource(sim).state == S.RELEASED
