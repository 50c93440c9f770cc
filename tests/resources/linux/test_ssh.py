"""linux::Node over SSH, against a real OpenSSH sshd on loopback (see ``sshd.py``).

The sshd runs on this machine, so the tests see the remote processes with psutil:
they are found by a unique marker in their environment or command line, and every
test ends with no process of the test user left but sshd's own.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import pathlib
import socket
import sys
import time

import psutil
import pytest

from nepi_lab import ExperimentController, ExperimentFailedError, MissingTraceError, ResourceState, TraceAttr
from nepi_lab.resources.linux import _ssh, _tracking
from nepi_lab.resources.linux._ssh import (
    SshExecutor,
    SshPool,
    SshTarget,
    pool_for,
)
from nepi_lab.resources.linux.executor import CommandTimeoutError

from ...guards import OwnThreads
from .conftest import all_gone, processes_with, run_on_loop, wait_for_processes, wait_for_trace
from .sshd import Sshd, SshdFleet, SshdUnavailable, free_port, sshd  # noqa: F401 - the session fixture

S = ResourceState


@pytest.fixture
def ssh_node(ec, sshd):  # noqa: F811 - the fixture imported above
    """A linux::Node reached over SSH as the test user."""
    return ec.register_resource("linux::Node", **sshd.node_attributes())


@pytest.fixture(autouse=True)
def no_remote_leftover(request):
    """Every test leaves no process of the test user behind but sshd's own."""
    yield
    if "sshd" not in request.fixturenames:
        return
    server = request.getfixturevalue("sshd")
    deadline = time.monotonic() + 3
    while (left := remote_processes(server)) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert left == [], [p.cmdline() for p in left]


def remote_processes(server: Sshd) -> list[psutil.Process]:
    """The test user's processes that are not sshd's (the commands, the supervisors)."""
    left = []
    for p in server.user_processes():
        try:
            if p.name() != "sshd":
                left.append(p)
        except psutil.NoSuchProcess:
            continue
    return left


def app(ec, node, **attributes):
    return ec.register_resource("linux::Application", connectedTo=node, **attributes)


def executor_of(ec, node) -> SshExecutor:
    executor = ec.get_resource(node).executor
    assert isinstance(executor, SshExecutor)
    return executor


# -- applications over SSH ---------------------------------------------------------------


def test_an_application_with_sources_code_build_env_stdin_and_placeholders(ec, ssh_node, sshd, tmp_path):  # noqa: F811
    (tmp_path / "data.txt").write_text("from a source file\n")
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "sub" / "tool.sh").write_text("#!/bin/sh\necho tool says $1\n")
    os.chmod(pkg / "sub" / "tool.sh", 0o755)
    a = app(
        ec, ssh_node,
        sources=f"{tmp_path / 'data.txt'};{pkg}",
        code="#!/bin/sh\necho \"code sees $GREETING\"\ncat\n",
        build="cp ${SRC}/pkg/sub/tool.sh ${BIN}/tool && echo built",
        env="GREETING='hello ssh' WHERE=${APP_HOME}",
        stdin="line one\nline two\n",
        command='cat ${SRC}/data.txt; tool "$GREETING"; "${CODE}"; echo "$WHERE"; pwd; echo "$USER" >&2',
    )
    ec.deploy()
    ec.wait_finished(a, timeout=20)
    assert ec.state(a) == S.FINISHED, ec.failures
    app_home = ec.get_resource(a).app_home
    assert app_home.startswith(sshd.home + "/.nepi_lab/linux/")
    assert ec.trace(a, "stdout") == (
        "from a source file\n"
        "tool says hello ssh\n"
        "code sees hello ssh\nline one\nline two\n"
        f"{app_home}\n{app_home}\n"
    )
    assert ec.trace(a, "stderr") == f"{sshd.user}\n"  # it ran as the test user
    assert ec.trace(a, "build") == "built\n"
    assert ec.trace(a, "exitcode") == "0\n"


def test_traces_by_file_name_and_tear_down_over_ssh(ec, ssh_node, sshd):  # noqa: F811
    a = app(ec, ssh_node, command="echo 7 > bw.txt; exec sleep 30", splitStderr=False,
            tearDown="echo torn > farewell.txt")
    ec.deploy()
    ec.wait_started(a, timeout=20)
    deadline = time.monotonic() + 10
    while True:  # listed on the host with the executor's shell command
        try:
            assert ec.trace(a, "bw.txt") == "7\n"
            break
        except MissingTraceError:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    run_home = ec.get_resource(a).expand("${RUN_HOME}")
    assert ec.trace(a, "bw.txt", TraceAttr.PATH) == f"{run_home}/bw.txt"
    with pytest.raises(MissingTraceError):
        ec.trace(a, "never.txt")
    ec.release()
    assert not os.path.exists(run_home)
    assert ec.trace(a, "bw.txt") == "7\n"  # collected over SFTP before the folder went
    assert ec.trace(a, "farewell.txt") == "torn\n"


def test_the_four_trace_modes_read_the_host_while_it_runs(ec, ssh_node, sshd):  # noqa: F811
    a = app(ec, ssh_node, command="printf 'hello world'; printf 'oops' >&2; exec sleep 30")
    ec.deploy()
    ec.wait_started(a, timeout=20)
    assert wait_for_trace(ec, a, "stdout", "hello world") == "hello world"
    host_path = ec.get_resource(a).host_path("stdout")
    assert ec.trace(a, "stdout", attr=TraceAttr.PATH) == host_path  # a path on the host
    assert os.path.exists(host_path)  # (this host is also the SSH host)
    assert ec.trace(a, "stdout", attr=TraceAttr.SIZE) == 11
    assert ec.trace(a, "stdout", attr=TraceAttr.STREAM, block=4, offset=1) == "o wo"
    assert ec.trace(a, "stdout", attr=TraceAttr.STREAM, block=4, offset=9) == ""
    assert ec.trace(a, "stderr", attr=TraceAttr.ALL) == "oops"
    assert ec.trace(a, "build", attr=TraceAttr.SIZE) == 0  # never written: empty, not an error
    ec.stop(a, timeout=10)
    # once stopped, the traces are collected into the run directory
    local = ec.trace(a, "stdout", attr=TraceAttr.PATH)
    assert local.startswith(ec.run_dir)
    with open(local) as f:
        assert f.read() == "hello world"


def test_exit_codes_and_failure_records(ec, ssh_node):
    ok = app(ec, ssh_node, command="exit 0")
    three = app(ec, ssh_node, command="echo bad input >&2; exit 3", critical=False)
    killed = app(ec, ssh_node, command="kill -9 $$", critical=False)
    ec.deploy()
    ec.wait_finished([ok, three, killed], timeout=20)
    assert ec.state(ok) == S.FINISHED
    assert ec.state(three) == S.FAILED and ec.state(killed) == S.FAILED
    failures = {f.guid: f for f in ec.failures}
    assert failures[three].returncode == 3 and failures[three].stderr_tail == "bad input\n"
    assert "127.0.0.2" in failures[three].message
    assert failures[killed].returncode == -9  # killed by SIGKILL, as Python reports it
    assert ec.trace(three, "exitcode") == "3\n" and ec.trace(killed, "exitcode") == "-9\n"


def test_stop_terminates_the_remote_process_group(ec, ssh_node, marker):
    a = app(ec, ssh_node, command="sleep 100 & sleep 100", env=f"MARK={marker}")
    stubborn = app(ec, ssh_node, command="trap '' TERM; sleep 100 & sleep 100", env=f"MARK={marker}-2",
                   stopGracePeriod=0.5)
    ec.deploy()
    ec.wait_started([a, stubborn], timeout=20)
    assert len(wait_for_processes(marker, 6)) == 6  # 2 shells, 4 sleeps
    group = {p.pid: os.getpgid(p.pid) for p in processes_with(f"{marker}-2")}
    assert len(set(group.values())) == 1  # one group per application, led by its shell
    t0 = time.monotonic()
    ec.stop([a, stubborn], timeout=10)
    assert time.monotonic() - t0 < 3  # TERM, then KILL after 0.5 s for the one that ignores TERM
    assert all_gone(marker)
    assert ec.state(a) == S.STOPPED and ec.state(stubborn) == S.STOPPED
    assert ec.trace(a, "exitcode") == "-15\n" and ec.trace(stubborn, "exitcode") == "-9\n"


def test_conditions_between_a_local_and_an_ssh_node(ec, ssh_node, home):
    local = ec.register_resource("linux::Node", hostname="localhost", home=home)
    first = app(ec, local, command="sleep 0.2; echo local")
    second = app(ec, ssh_node, command="echo remote; hostname >/dev/null")
    third = app(ec, local, command="echo local again")
    ec.register_condition(second, "START", first, "FINISHED")
    ec.register_condition(third, "START", second, "FINISHED", "0.1s")
    ec.deploy()
    ec.wait_finished([first, second, third], timeout=20)
    assert [ec.state(g) for g in (first, second, third)] == [S.FINISHED] * 3
    assert ec.get_finish_time(first) <= ec.get_start_time(second)
    assert (ec.get_start_time(third) - ec.get_finish_time(second)).total_seconds() >= 0.1
    assert ec.trace(second, "stdout") == "remote\n"
    assert ec.get_resource(local).executor.where == "localhost"


# -- connections: shared, limited, checked ---------------------------------------------------


def test_nodes_on_one_account_share_one_connection_until_the_last_is_released(ec, sshd):  # noqa: F811
    accepted = sshd.log_text().count("Accepted publickey")
    n1 = ec.register_resource("linux::Node", **sshd.node_attributes())
    n2 = ec.register_resource("linux::Node", **sshd.node_attributes())
    apps = [app(ec, n, command="echo $PPID") for n in (n1, n2)]
    ec.deploy()
    ec.wait_finished(apps, timeout=20)
    pool = pool_for(ec)
    assert len(pool) == 1 and pool.connections()[0].refs == 2
    assert sshd.log_text().count("Accepted publickey") == accepted + 1
    ec.release([apps[0], n1], timeout=10)
    assert len(pool) == 1 and pool.connections()[0].refs == 1  # n2 still uses it
    assert run_on_loop(ec, ec.get_resource(n2).run("echo still here")).stdout == "still here\n"
    ec.release(timeout=10)
    assert len(pool) == 0


def test_nodes_of_one_host_released_together_leave_no_run_folder_there(ec, sshd):  # noqa: F811
    nodes = [ec.register_resource("linux::Node", **sshd.node_attributes()) for _ in range(3)]
    apps = [app(ec, n, command="true") for n in nodes]
    ec.deploy()
    ec.wait_finished(apps, timeout=20)
    run_home = ec.get_resource(nodes[0]).run_home  # the sshd runs on this machine: a local path
    assert os.path.isdir(run_home)
    ec.release(timeout=20)  # together: the last of them to be done with its files removes the run's
    assert not os.path.exists(run_home)


def test_a_gateway_is_a_pooled_connection_the_node_is_tunnelled_through(ec, sshd):  # noqa: F811
    gateway = f"{sshd.user}@{sshd.host}:{sshd.port}"
    node = ec.register_resource("linux::Node", **sshd.node_attributes(gateway=gateway))
    a = app(ec, node, command="echo through the gateway")
    ec.deploy()
    ec.wait_finished(a, timeout=20)
    assert ec.trace(a, "stdout") == "through the gateway\n"
    targets = sorted(c.target.where + (" via " + c.target.gateway.where if c.target.gateway else "")
                     for c in pool_for(ec).connections())
    assert targets == [f"{gateway}", f"{gateway} via {gateway}"]
    ec.release(timeout=10)
    assert len(pool_for(ec)) == 0


def test_per_command_latency_on_a_reused_connection(ec, ssh_node):
    ec.deploy()
    ec.wait_deployed(ssh_node, timeout=20)
    rm = ec.get_resource(ssh_node)
    conn = executor_of(ec, ssh_node).connection.conn
    sock = conn.get_extra_info("socket")
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)  # no 40 ms delayed-ACK stalls

    async def each(n):
        await rm.run("true")
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            await rm.run("true")
            times.append(time.perf_counter() - t0)
        return sorted(times)

    # A delayed-ACK stall costs every command ~40 ms: even the fastest of 30 would show
    # it. (The fastest, not the mean: a loaded machine slows some commands, never all;
    # the figure itself is measured by benchmarks/bench_ssh.py.)
    times = run_on_loop(ec, each(30))
    assert times[0] < 0.02, f"fastest of 30 commands {times[0] * 1000:.1f} ms (median {times[15] * 1000:.1f})"


def test_200_concurrent_applications_within_the_session_limit(ec, ssh_node, sshd):  # noqa: F811
    log_before = len(sshd.log_text())
    apps = [app(ec, ssh_node, command=f"echo {i}") for i in range(200)]
    threads = []
    own = OwnThreads()
    ec.deploy()
    deadline = time.monotonic() + 60
    while ec.state(apps[-1]) < S.FINISHED and time.monotonic() < deadline:
        threads.append(own.count())
        time.sleep(0.05)
    ec.wait_finished(apps, timeout=60)
    assert all(ec.state(a) == S.FINISHED for a in apps), ec.failures[:3]
    assert ec.trace(apps[123], "stdout") == "123\n"
    assert max(threads) <= 4, max(threads)
    log = sshd.log_text()[log_before:]
    assert "no more sessions" not in log and "refused" not in log.lower(), log[-2000:]
    entry = executor_of(ec, ssh_node).connection
    assert entry.target.max_sessions == 10
    free = entry.sessions._value + entry._closed_slots.count(entry.sessions)  # + closed, unconfirmed
    assert free == 10 - _ssh.RESERVED_SESSIONS  # every channel given back


def test_a_fleet_of_hosts_keeps_the_threads_bounded(ec, monkeypatch):
    """Several SSH hosts at once (sshds on 127.0.1.x, as the fleet figure of
    benchmarks/bench_ssh.py): at every state change at most 4 threads run in the
    controller's process -- the caller's, the loop's and the 2 of the blocking pool in
    which asyncssh reads its options.  The cgroup lock's warm spell that registering a
    linux::Node starts (made long here: with 50 hosts it still ran when the connections
    opened) ends when the nodes are given other hosts, and the nodes connect once the
    worker's last warming is over (made slow here, longer than connecting takes).
    Threads that other libraries left in the process before (Dask's callback thread,
    after the sweep tests) are not the controller's and are not counted."""
    own = OwnThreads()
    monkeypatch.setattr(_tracking, "WARM_SPELL", 30.0)
    warm = _tracking._warm
    monkeypatch.setattr(_tracking, "_warm", lambda: (time.sleep(0.6), warm()))
    try:
        fleet = SshdFleet(4)
        fleet.__enter__()
    except SshdUnavailable as exc:
        pytest.skip(f"no sshd for the SSH tests: {exc}")
    try:
        seen: list[list[str]] = []
        ec.events.subscribe(lambda *_: seen.append(own.names()))
        apps = []
        for server in fleet.servers:
            node = ec.register_resource("linux::Node", **server.node_attributes())
            apps += [app(ec, node, command=f"echo {server.host}") for _ in range(5)]
        ec.deploy()
        ec.wait_finished(apps, timeout=60)
        assert all(ec.state(a) == S.FINISHED for a in apps), ec.failures[:3]
        assert ec.trace(apps[-1], "stdout") == f"{fleet.servers[-1].host}\n"
        ec.release()
        ec.wait_released(apps, timeout=60)
    finally:
        fleet.__exit__(None, None, None)
        _tracking.cool_down()
    assert len(seen) > 4 * 5 * 3
    assert max(len(names) for names in seen) <= 4, max(seen, key=len)


def test_the_channel_limit_queues_commands_instead_of_failing(ec, sshd):  # noqa: F811
    async def scenario():
        target = SshTarget(sshd.host, sshd.port, sshd.user, identity_file=sshd.client_key,
                           known_hosts=sshd.known_hosts, max_sessions=3)
        executor = SshExecutor(target, SshPool())
        await executor.connect()
        try:
            t0 = time.monotonic()
            results = await asyncio.gather(*(executor.run("sleep 0.2; echo $PPID") for _ in range(6)))
            return time.monotonic() - t0, results
        finally:
            await executor.close()

    # on the controller's loop: asyncssh reads its options in the loop's (bounded) thread pool
    elapsed, results = run_on_loop(ec, scenario())
    assert all(r.returncode == 0 for r in results)
    assert elapsed >= 1.2  # 1 command channel (3 minus SFTP and the launcher): 6 rounds of 0.2 s


# -- failures: explicit and fast --------------------------------------------------------------


def deploy_and_fail(ec, node, timeout=15):
    a = app(ec, node, command="true", critical=False)
    t0 = time.monotonic()
    ec.deploy()
    ec.wait_finished([node, a], timeout=timeout)
    elapsed = time.monotonic() - t0
    assert ec.state(node) == S.FAILED and ec.state(a) == S.FAILED
    node_failure, app_failure = (ec.get_resource(g).failure for g in (node, a))
    assert node_failure.step == "discover"
    assert f"resource {node} (linux::Node) is FAILED" in app_failure.message
    return node_failure, elapsed


def test_a_host_key_mismatch_fails_the_node(ec, sshd):  # noqa: F811
    node = ec.register_resource("linux::Node", critical=False,
                                **sshd.node_attributes(knownHosts=sshd.wrong_known_hosts))
    failure, elapsed = deploy_and_fail(ec, node)
    assert failure.error == "SshHostKeyError"
    assert "SSH host key of" in failure.message and sshd.wrong_known_hosts in failure.message
    assert "strictHostKeyChecking=False" in failure.message
    assert elapsed < 5


def test_a_missing_known_hosts_file_fails_the_node(ec, sshd, tmp_path):  # noqa: F811
    node = ec.register_resource("linux::Node", critical=False,
                                **sshd.node_attributes(knownHosts=str(tmp_path / "none")))
    failure, _ = deploy_and_fail(ec, node)
    assert failure.error == "SshHostKeyError" and "does not exist" in failure.message


def test_a_known_hosts_file_is_parsed_once_and_again_once_it_changed(sshd, tmp_path, monkeypatch):  # noqa: F811
    """asyncssh parses a known_hosts file named by its path at every connection; nepi_lab
    parses it once while its bytes stay the same, and again when they change: a key
    replaced there (the same size, the same second) fails the next connection."""
    import asyncssh

    parsed = []
    real = asyncssh.import_known_hosts
    monkeypatch.setattr(asyncssh, "import_known_hosts", lambda text: parsed.append(text) or real(text))
    known = tmp_path / "known_hosts"
    known.write_bytes(pathlib.Path(sshd.known_hosts).read_bytes())

    def one_run():  # a controller of its own: a connection of its own
        with ExperimentController(exp_id="known-hosts", local_dir=str(tmp_path / "runs")) as ec:
            node = ec.register_resource("linux::Node", critical=False,
                                        **sshd.node_attributes(knownHosts=str(known)))
            a = app(ec, node, command="echo checked", critical=False)
            ec.deploy()
            ec.wait_finished([node, a], timeout=20)
            return ec.get_resource(node).failure, ec.trace(a, "stdout") if ec.state(a) == S.FINISHED else None

    assert [one_run() for _ in range(3)] == [(None, "checked\n")] * 3
    assert len(parsed) == 1
    wrong = pathlib.Path(sshd.wrong_known_hosts).read_bytes()
    assert len(wrong) == known.stat().st_size  # the cache cannot go by the size
    known.write_bytes(wrong)
    failure, out = one_run()
    assert failure is not None and failure.error == "SshHostKeyError" and out is None
    assert len(parsed) == 2


def test_host_key_checking_is_off_only_when_asked(ec, sshd):  # noqa: F811
    node = ec.register_resource("linux::Node", **sshd.node_attributes(
        knownHosts=sshd.wrong_known_hosts, strictHostKeyChecking=False))
    a = app(ec, node, command="echo unchecked")
    ec.deploy()
    ec.wait_finished(a, timeout=20)
    assert ec.trace(a, "stdout") == "unchecked\n"


def test_a_refused_key_fails_the_node_at_once_without_retrying(ec, sshd):  # noqa: F811
    attempts = sshd.log_text().count("Connection closed by authenticating user")
    node = ec.register_resource("linux::Node", critical=False,
                                **sshd.node_attributes(identityFile=sshd.other_key))
    failure, elapsed = deploy_and_fail(ec, node)
    assert failure.error == "SshAuthenticationError"
    assert "SSH authentication refused by" in failure.message and sshd.other_key in failure.message
    assert elapsed < 5
    deadline = time.monotonic() + 2
    while sshd.log_text().count("Connection closed by authenticating user") == attempts:
        assert time.monotonic() < deadline, sshd.log_text()[-1000:]
        time.sleep(0.02)
    time.sleep(0.2)
    assert sshd.log_text().count("Connection closed by authenticating user") == attempts + 1  # one try


def test_a_closed_port_fails_the_node_at_once(ec, sshd):  # noqa: F811
    node = ec.register_resource("linux::Node", critical=False,
                                **sshd.node_attributes(port=free_port(sshd.host)))
    failure, elapsed = deploy_and_fail(ec, node)
    assert failure.error == "SshUnreachableError" and "connection refused" in failure.message
    assert elapsed < 3


def test_a_critical_node_failure_fails_the_experiment(ec, sshd):  # noqa: F811
    node = ec.register_resource("linux::Node", **sshd.node_attributes(identityFile=sshd.other_key))
    a = app(ec, node, command="true")
    ec.deploy()
    with pytest.raises(ExperimentFailedError, match="authentication refused"):
        ec.wait_finished(a, timeout=15)


def test_without_asyncssh_deploy_fails_with_the_install_hint(ec, monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "asyncssh" else real_find_spec(name, *a))
    node = ec.register_resource("linux::Node", hostname="192.0.2.1", critical=False)
    ec.deploy()
    ec.wait_finished(node, timeout=10)
    assert "pip install 'nepi_lab[ssh]'" in ec.get_resource(node).failure.message
    monkeypatch.setitem(sys.modules, "asyncssh", None)
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'nepi_lab\[ssh\]'"):
        _ssh.import_asyncssh()


# -- dropped connections ---------------------------------------------------------------------


def test_a_dropped_connection_is_restored_and_the_outcome_read_back(ec, ssh_node, sshd, marker):  # noqa: F811
    a = app(ec, ssh_node, command="sleep 1; echo finished anyway; exit 4", env=f"MARK={marker}",
            critical=False)
    ec.deploy()
    ec.wait_started(a, timeout=20)
    assert wait_for_processes(marker, 2)
    before = executor_of(ec, ssh_node).connection.conn
    sshd.drop_connections()
    ec.wait_finished(a, timeout=15)
    assert ec.state(a) == S.FAILED
    failure = ec.get_resource(a).failure
    assert failure.returncode == 4, failure  # the real outcome, read from the host
    assert ec.trace(a, "stdout") == "finished anyway\n"
    assert executor_of(ec, ssh_node).connection.conn is not before  # reconnected
    assert ec.state(ssh_node) == S.STARTED


def test_a_re_attached_process_can_still_be_stopped(ec, ssh_node, sshd, marker):  # noqa: F811
    a = app(ec, ssh_node, command="sleep 100 & sleep 100", env=f"MARK={marker}")
    ec.deploy()
    ec.wait_started(a, timeout=20)
    assert len(wait_for_processes(marker, 3)) == 3
    sshd.drop_connections()
    entry = executor_of(ec, ssh_node).connection
    deadline = time.monotonic() + 5
    while (entry.conn is None or entry.conn.is_closed()) and time.monotonic() < deadline:
        time.sleep(0.01)  # reconnected; the application's supervisor is being re-attached
    ec.stop(a, timeout=10)  # signals go through the re-attached waiter's channel now
    assert ec.state(a) == S.STOPPED
    assert all_gone(marker)


def test_the_supervisor_also_runs_in_plain_sh(ec, ssh_node, sshd, marker):  # noqa: F811
    """On a host without bash, ``sh`` runs the same launcher and supervisor, with
    ``setsid`` instead of bash's job control, and lines instead of ``read -N``."""
    ec.deploy()
    ec.wait_deployed(ssh_node, timeout=20)
    rm = ec.get_resource(ssh_node)
    entry = executor_of(ec, ssh_node).connection
    entry.posix_login = False  # as for a csh user: its commands through ``exec sh -c``
    entry.launcher_shell = "sh"  # as if bash were missing: the next launcher runs in sh
    kill_launcher(ec, ssh_node, sshd)
    out = rm.node_home + "/out"

    async def scenario():
        done = await rm.spawn("echo $0 $MARK; exit 7", stdout=out, stderr=out, env={"MARK": marker})
        status = await done.wait()
        sleeper = await rm.spawn("sleep 100 & sleep 100", stdout=out, stderr=out, env={"MARK": marker})
        return status, sleeper

    status, sleeper = run_on_loop(ec, scenario())
    assert status == 7
    procs = wait_for_processes(marker, 3)
    assert {os.getsid(p.pid) for p in procs} == {sleeper.pid}  # its own session (setsid)
    assert run_on_loop(ec, sleeper.terminate(1.0)) == -15
    assert all_gone(marker)
    assert run_on_loop(ec, rm.run(f"cat {out}")).stdout == f"sh {marker}\n"
    assert [p.exe() for p in launchers(sshd)] == [os.path.realpath("/bin/sh")]
    assert run_on_loop(ec, executor_of(ec, ssh_node).sweep(f"NEPI_LAB_RUN={marker}\n")) == 0  # a C request


def test_a_run_timeout_kills_the_remote_process_group(ec, ssh_node, marker):
    ec.deploy()
    ec.wait_deployed(ssh_node, timeout=20)
    rm = ec.get_resource(ssh_node)
    with pytest.raises(CommandTimeoutError, match="timed out after 0.5 s"):
        run_on_loop(ec, rm.run(f"sleep 100 & sleep 100 # {marker}", timeout=0.5, env={"MARK": marker}))
    assert all_gone(marker)


# -- nothing left behind -----------------------------------------------------------------------


def sleepers(ec, node, marker, count=2):
    return [app(ec, node, command="sleep 100 & sleep 100", env=f"MARK={marker}") for _ in range(count)]


@pytest.mark.parametrize("how", ["release", "shutdown", "critical failure"])
def test_no_remote_process_outlives_the_experiment(ec, ssh_node, marker, how, sshd):  # noqa: F811
    apps = sleepers(ec, ssh_node, marker)
    if how == "critical failure":
        app(ec, ssh_node, command="sleep 0.3; exit 3")
    ec.deploy()
    ec.wait_started(apps, timeout=20)
    assert len(wait_for_processes(marker, 6)) == 6
    if how == "release":
        ec.release(timeout=10)
    elif how == "shutdown":
        ec.shutdown(timeout=10)
    else:
        ec.wait_released(timeout=10)
        assert ec.failures[0].returncode == 3
    assert all_gone(marker)
    assert len(pool_for(ec)) == 0
    run_home = os.path.join(sshd.home, ".nepi_lab", "linux", ec.run_id)
    assert not os.path.exists(run_home)  # cleanExperiment: the host's folders are gone


def test_clean_processes_kills_what_the_node_spawned(ec, ssh_node, marker):
    ec.deploy()
    ec.wait_deployed(ssh_node, timeout=20)
    rm = ec.get_resource(ssh_node)
    out = rm.node_home + "/out"
    handles = [run_on_loop(ec, rm.spawn("exec sleep 100", stdout=out, stderr=out,
                                        env={"MARK": marker})) for _ in range(3)]
    assert len(wait_for_processes(marker, 3)) >= 3
    assert all(h.returncode is None for h in handles)
    ec.release(timeout=10)
    assert all_gone(marker)
    assert all(h.returncode == -9 for h in handles)


# -- files -----------------------------------------------------------------------------------


def test_files_over_sftp(ec, ssh_node, sshd, tmp_path):  # noqa: F811
    ec.deploy()
    ec.wait_deployed(ssh_node, timeout=20)
    rm = ec.get_resource(ssh_node)
    ex = executor_of(ec, ssh_node)
    base = rm.node_home
    folder = tmp_path / "tree"
    (folder / "a").mkdir(parents=True)
    (folder / "a" / "x.txt").write_text("x")
    (folder / "run.sh").write_text("#!/bin/sh\necho run\n")
    os.chmod(folder / "run.sh", 0o750)
    big = os.urandom(3 << 20)
    (tmp_path / "big.bin").write_bytes(big)

    async def scenario():
        assert await ex.home_dir() == sshd.home
        await ex.makedirs(f"{base}/deep/er")
        await ex.makedirs(f"{base}/deep/er")  # existing is fine
        await rm.upload(str(folder), f"{base}/tree")
        await rm.upload(str(tmp_path / "big.bin"), f"{base}/big.bin")
        await rm.write_file(f"{base}/script", "echo written", 0o700)
        ran = await rm.run(f"{base}/tree/run.sh; sh {base}/script; cat {base}/tree/a/x.txt")
        assert ran.stdout == "run\nwritten\nx"
        assert await rm.download(f"{base}/big.bin", str(tmp_path / "back.bin"))
        assert not await rm.download(f"{base}/missing", str(tmp_path / "missing"))
        await rm.write_file(f"{base}/again", "old", 0o600)
        await rm.write_file(f"{base}/again", "new", 0o640)  # an existing file gets the new mode too
        assert (await rm.run(f"cat {base}/again; stat -c %a {base}/again")).stdout == "new640\n"
        await rm.write_file(f"{base}/log", "0123456789" * 300)
        assert await ex.tail(f"{base}/log", 15) == "567890123456789"
        assert await ex.tail(f"{base}/missing") == ""
        assert await rm.read_file(f"{base}/missing") == ""
        assert await rm.read_file(f"{base}/log", TraceAttr.SIZE) == 3000
        assert await ex.missing_commands(["sh", "no-such-command-here"]) == ["no-such-command-here"]
        await ex.remove_tree(f"{base}/deep")
        await ex.remove_empty_dirs([f"{base}/tree"])  # not empty: stays
        return await rm.run(f"ls {base}; stat -c %a {base}/tree/run.sh {base}/script")

    listing = run_on_loop(ec, scenario()).stdout.split()
    assert "deep" not in listing and "tree" in listing
    assert listing[-2:] == ["750", "700"]  # modes kept
    assert (tmp_path / "back.bin").read_bytes() == big


def test_list_files_over_sftp_lists_what_the_shell_listed(ec, ssh_node, sshd):  # noqa: F811
    """Regular files only (hidden ones too), never links, folders or a missing folder; the
    same names the host's shell lists with the same test."""
    ec.deploy()
    ec.wait_deployed(ssh_node, timeout=20)
    rm = ec.get_resource(ssh_node)
    ex = executor_of(ec, ssh_node)
    base = f"{rm.node_home}/listed"
    shell = ('cd "$1" 2>/dev/null || exit 0; for f in * .[!.]* ..?*; do '
             '[ -f "$f" ] && [ ! -L "$f" ] && printf "%s\\n" "$f"; done; exit 0')

    async def scenario():
        await rm.run(f"mkdir -p {base}/sub && cd {base} && : > b && echo x > a && : > .hidden && : > ..dots "
                     f"&& : > 'with space' && ln -s a link && ln -s sub dirlink && ln -s gone dangling "
                     f"&& mkfifo fifo")
        listed = await ex.list_files(base)
        by_shell = (await rm.run(f"sh -c '{shell}' list {base}")).stdout.splitlines()
        missing = await ex.list_files(f"{base}/no-such-folder")
        not_a_folder = await ex.list_files(f"{base}/a")
        return listed, sorted(by_shell), missing, not_a_folder

    listed, by_shell, missing, not_a_folder = run_on_loop(ec, scenario())
    assert listed == ["..dots", ".hidden", "a", "b", "with space"]
    assert listed == by_shell
    assert missing == [] and not_a_folder == []


def test_a_process_lists_the_folder_of_its_stdout_as_sftp_does_when_it_ends(ec, ssh_node, sshd):  # noqa: F811
    """The supervisor's listing at the end names what an SFTP listing names (odd names,
    links, a fifo and folders left out), tells empty files apart, and is not used for
    another folder."""
    ec.deploy()
    ec.wait_deployed(ssh_node, timeout=20)
    rm = ec.get_resource(ssh_node)
    ex = executor_of(ec, ssh_node)
    base = f"{rm.node_home}/ended"
    make = ("mkdir sub && : > b && echo x > a && : > .hidden && echo y > ..dots && : > 'with space' "
            "&& printf z > \"$(printf 'new\\nline')\" && : > \"$(printf 'bad\\377')\" && ln -s a link "
            "&& ln -s sub dirlink && ln -s gone dangling && mkfifo fifo && echo out")

    async def scenario():
        await ex.makedirs(base)
        process = await ex.spawn(make, stdout=f"{base}/stdout", stderr=f"{base}/stdout", cwd=base)
        assert await process.wait() == 0
        at_end = process.files_at_end(base + "/")
        other = process.files_at_end(rm.node_home)
        return at_end, other, await ex.list_files(base)

    at_end, other, listed = run_on_loop(ec, scenario())
    assert at_end is not None and other is None
    assert at_end == listed
    assert {"a", "b", ".hidden", "..dots", "with space", "new\nline", "stdout"} <= set(at_end)
    assert not {"link", "dirlink", "dangling", "fifo", "sub"} & set(at_end)
    assert [name for name in at_end if name.startswith("bad")] == ["bad\ufffd"]


def test_an_application_ending_over_ssh_collects_its_traces_without_listing_its_folder(
        ec, ssh_node, sshd, monkeypatch):  # noqa: F811
    """Its supervisor listed the folder: no SFTP listing, and what it wrote is collected."""
    listings = []
    real = SshExecutor.list_files

    async def spy(self, folder):
        listings.append(folder)
        return await real(self, folder)

    monkeypatch.setattr(SshExecutor, "list_files", spy)
    app = ec.register_resource("linux::Application", connectedTo=ssh_node,
                               command="echo hello; echo note > written.txt; : > empty.txt")
    ec.deploy()
    ec.wait_finished(app, timeout=30)
    rm = ec.get_resource(app)
    assert listings == []
    assert ec.trace(app, "stdout") == "hello\n"
    assert ec.trace(app, "written.txt") == "note\n"
    assert ec.trace(app, "empty.txt") == ""
    assert rm.state == ResourceState.FINISHED


def test_connection_prefers_aes_gcm_and_joins_the_writes_of_a_loop_turn(ec, ssh_node, sshd):  # noqa: F811
    ec.deploy()
    ec.wait_deployed(ssh_node, timeout=20)
    ex = executor_of(ec, ssh_node)
    conn = ex.connection.conn
    if _ssh._ciphers_configured():  # this user's ~/.ssh/config chooses: nothing of ours to check
        pytest.skip("~/.ssh/config names the ciphers (or includes a file that may)")
    assert conn.get_extra_info("send_cipher") == "aes128-gcm@openssh.com"
    assert conn.get_extra_info("recv_cipher") == "aes128-gcm@openssh.com"
    sent = []
    transport = conn._transport  # the corked transport asyncssh writes to
    assert isinstance(transport, _ssh._CorkedTransport)
    real = transport._transport
    original = real.write

    def spy(data):
        sent.append(len(data))
        original(data)

    async def five_at_once():
        real.write = spy
        try:
            return await asyncio.gather(*(ex.run(f"echo {i}") for i in range(5)))
        finally:
            del real.write

    results = run_on_loop(ec, five_at_once())
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(5)]
    # without the cork: a write per packet and per MSG_IGNORE before it, about 50
    assert len(sent) < 5 * 4, sent


def test_ciphers_are_left_to_an_ssh_config_that_names_them(tmp_path):
    config = tmp_path / "config"
    assert not _ssh._ciphers_configured(str(config))  # no file
    config.write_text("Host *\n  User someone\n")
    assert not _ssh._ciphers_configured(str(config))
    config.write_text("Host old\n  Ciphers aes256-ctr\n")
    assert _ssh._ciphers_configured(str(config))
    config.write_text("include ~/.ssh/more\n")
    assert _ssh._ciphers_configured(str(config))
    assert _ssh._encryption_algs()[:2] == ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com"]


def test_a_route_in_the_ssh_config_keeps_asyncssh_s_own_connection(tmp_path):
    # a tunnel of ours would make asyncssh ignore ProxyJump, ProxyCommand, BindAddress, AddressFamily
    config = tmp_path / "config"
    assert not _ssh._route_configured(str(config))  # no file
    config.write_text("Host *\n  User someone\n  Ciphers aes256-ctr\n")
    assert not _ssh._route_configured(str(config))
    for line in ("ProxyJump gw", "proxycommand nc %h %p", "  BindAddress 127.0.0.3", "AddressFamily inet",
                 "Include more"):
        config.write_text(f"Host lab\n{line}\n")
        assert _ssh._route_configured(str(config)), line


def test_listening_tcp_ports_on_the_host(ec, ssh_node, sshd):  # noqa: F811
    ec.deploy()
    ec.wait_deployed(ssh_node, timeout=20)
    ports = run_on_loop(ec, executor_of(ec, ssh_node).listening_tcp_ports())
    assert sshd.port in ports


# -- the launcher: one session starts every process ---------------------------------------------


def launchers(server: Sshd) -> list[psutil.Process]:
    """The launcher shells on the host: sshd's children that read launch requests (their
    supervisor subshells have the same command line, and the launcher as parent)."""
    found = []
    for p in remote_processes(server):
        try:
            if "read -r -N" in " ".join(p.cmdline()) and p.parent().name() == "sshd":
                found.append(p)
        except psutil.NoSuchProcess:
            continue
    return found


def kill_launcher(ec, node, server: Sshd) -> psutil.Process:
    """Kill the node's launcher shell and wait until nepi_lab was told it ended (sshd's
    exit status for its channel): a request written before that goes to the dead one
    (see :func:`test_a_spawn_written_to_a_launcher_just_killed_is_an_error_not_a_hang`)."""
    [launcher] = launchers(server)
    launcher.kill()
    launcher.wait(5)
    entry = executor_of(ec, node).connection

    async def told():
        while entry._launcher is not None and not entry._launcher.closed:
            await asyncio.sleep(0.005)

    run_on_loop(ec, asyncio.wait_for(told(), 10))
    return launcher


def test_more_processes_run_at_once_than_the_connection_has_channels(ec, ssh_node, sshd, marker):  # noqa: F811
    """Running processes hold no channel: 25 run at once on a MaxSessions 10 server,
    each is signalled through the one launcher, and each status comes back."""
    ec.deploy()
    ec.wait_deployed(ssh_node, timeout=20)
    rm = ec.get_resource(ssh_node)
    out = rm.node_home + "/many"

    async def start():
        return await asyncio.gather(*(rm.spawn("exec sleep 100", stdout=out, stderr=out,
                                               env={"MARK": marker}) for _ in range(25)))

    handles = run_on_loop(ec, start())
    assert len(wait_for_processes(marker, 25)) == 25
    assert len(launchers(sshd)) == 1
    assert len({h.pid for h in handles}) == 25

    async def stop():
        for sig, group in (("TERM", handles[:10]), ("INT", handles[10:20])):
            for h in group:
                h.send_signal(sig)
        executor_of(ec, ssh_node).kill_all()  # the other 5
        return await asyncio.gather(*(h.wait() for h in handles))

    statuses = run_on_loop(ec, stop())
    assert statuses == [-15] * 10 + [-2] * 10 + [-9] * 5
    assert all_gone(marker)


def test_a_command_that_cannot_start_says_why_and_leaves_no_control_file(ec, ssh_node, sshd):  # noqa: F811
    ec.deploy()
    ec.wait_deployed(ssh_node, timeout=20)
    rm = ec.get_resource(ssh_node)
    ex = executor_of(ec, ssh_node)
    base = rm.node_home + "/unstartable"

    async def scenario():
        await ex.makedirs(base)
        errors = []
        for kwargs in ({"cwd": base + "/no-such-folder"}, {"stdin": base + "/no-such-input"}):
            with pytest.raises(Exception) as info:
                await ex.spawn("echo never", stdout=base + "/out", stderr=base + "/out", **kwargs)
            errors.append(info.value)
        ok = await ex.spawn("echo fine", stdout=base + "/out", stderr=base + "/out")  # the launcher goes on
        return errors, await ok.wait(), await ex.list_files(base)

    errors, status, files = run_on_loop(ec, scenario())
    for error, what in zip(errors, ("no-such-folder", "no-such-input"), strict=True):
        assert "(cannot start it)" in str(error) and what in str(error), error
        assert error.returncode != 0
    assert status == 0
    assert [f for f in files if f.endswith(".pid")] == [f for f in files if f.startswith(".out.")
                                                        and f.endswith(".pid")]
    assert len([f for f in files if f.endswith(".pid")]) == 1  # only the started one's


def test_the_launcher_killed_its_processes_go_on_and_their_outcomes_are_read(
        ec, ssh_node, sshd, marker):  # noqa: F811
    """Killed while a process runs, the launcher is replaced at the next spawn, and what
    it started still reports its end."""
    a = app(ec, ssh_node, command="sleep 2; echo survived; exit 3", env=f"MARK={marker}", critical=False)
    ec.deploy()
    ec.wait_started(a, timeout=20)
    assert wait_for_processes(marker, 2)
    launcher = kill_launcher(ec, ssh_node, sshd)
    rm = ec.get_resource(ssh_node)
    out = rm.node_home + "/after"

    async def again():  # while the application still runs
        process = await asyncio.wait_for(rm.spawn("echo again", stdout=out, stderr=out), 10)
        return await asyncio.wait_for(process.wait(), 10)

    assert run_on_loop(ec, again()) == 0
    assert ec.state(a) == S.STARTED
    assert [p.pid for p in launchers(sshd)] != [launcher.pid] and len(launchers(sshd)) == 1
    ec.wait_finished(a, timeout=20)
    failure = ec.get_resource(a).failure
    assert failure is not None and failure.returncode == 3, failure
    assert ec.trace(a, "stdout") == "survived\n"


def test_a_spawn_written_to_a_launcher_just_killed_is_an_error_not_a_hang(
        ec, ssh_node, sshd, marker):  # noqa: F811
    """A request written to a launcher that died before nepi_lab heard of it cannot be
    told from one it read just before dying: the spawn says the command may run, then
    the next spawn goes through a new launcher."""
    ec.deploy()
    ec.wait_deployed(ssh_node, timeout=20)
    rm = ec.get_resource(ssh_node)
    out = rm.node_home + "/raced"
    [launcher] = launchers(sshd)

    async def raced():
        launcher.kill()  # sshd's word on it can only come once this coroutine awaits
        with pytest.raises(_ssh.SshConnectionLostError, match="may run on the host, unsupervised"):
            await asyncio.wait_for(rm.spawn("echo raced $MARK", stdout=out, stderr=out,
                                            env={"MARK": marker}), 10)
        again = await asyncio.wait_for(rm.spawn("echo again", stdout=out, stderr=out), 10)
        return await asyncio.wait_for(again.wait(), 10)

    assert run_on_loop(ec, raced()) == 0
    assert run_on_loop(ec, rm.run(f"cat {out}")).stdout == "again\n"  # the raced one never ran
    assert [p.pid for p in launchers(sshd)] != [launcher.pid] and len(launchers(sshd)) == 1


def test_after_a_reconnection_a_new_launcher_starts_processes(ec, ssh_node, sshd, marker):  # noqa: F811
    a = app(ec, ssh_node, command="sleep 1; echo first", env=f"MARK={marker}")
    ec.deploy()
    ec.wait_started(a, timeout=20)
    assert wait_for_processes(marker, 2)
    entry = executor_of(ec, ssh_node).connection
    before = entry.conn
    sshd.drop_connections()
    ec.wait_finished(a, timeout=20)
    assert ec.state(a) == S.FINISHED and ec.trace(a, "stdout") == "first\n"
    assert entry.conn is not before
    rm = ec.get_resource(ssh_node)
    out = rm.node_home + "/second"

    async def second():
        process = await rm.spawn("exit 5", stdout=out, stderr=out)
        return await process.wait()

    assert run_on_loop(ec, second()) == 5
    assert entry._launcher is not None and entry._launcher.conn is entry.conn
    assert len(launchers(sshd)) == 1


def test_a_killed_supervisor_ends_the_wait_at_once_saying_so(ec, ssh_node, sshd, marker):  # noqa: F811
    """A supervisor killed from outside (its command's end can no longer be recorded)
    ends the wait within a couple of seconds, not when the launcher's channel closes."""
    ec.deploy()
    ec.wait_deployed(ssh_node, timeout=20)
    rm = ec.get_resource(ssh_node)
    out = rm.node_home + "/orphaned"

    async def start():
        return await rm.spawn("exec sleep 100", stdout=out, stderr=out, env={"MARK": marker})

    handle = run_on_loop(ec, start())
    [sleeper] = wait_for_processes(marker, 1)
    with open(handle.control + ".pid") as f:  # the host is this machine
        supervisor = int(f.read().split()[1])
    os.kill(supervisor, 9)

    async def outcome():
        try:
            await asyncio.wait_for(handle.wait(), 5)
        except asyncio.TimeoutError:
            return None
        except Exception as exc:  # noqa: BLE001 - the error is what is checked
            return exc
        return "it returned"

    error = run_on_loop(ec, outcome())
    assert error is not None, "the wait did not end within 5 s of the supervisor's death"
    assert isinstance(error, _ssh.SupervisorLostError), error
    assert "killed by signal 9" in str(error) and ".exit is absent" in str(error), error
    assert error.pgid == handle.pid and handle.outcome_unknown
    assert sleeper.is_running()  # it said so: the command may still run
    os.killpg(handle.pid, 9)
    assert all_gone(marker)


def test_a_spawn_cancelled_in_flight_leaves_nothing_running_after_release(ec, sshd, marker):  # noqa: F811
    """Cancelled once its request was sent, a spawn's command starts anyway: it is
    killed as soon as it started (a release's kill_all does not know it yet), and
    closing the executor waits for that, also while another executor (another node on
    the same account) keeps the connection open."""
    target = SshTarget(sshd.host, sshd.port, sshd.user, identity_file=sshd.client_key,
                       known_hosts=sshd.known_hosts)
    pool = SshPool()

    async def scenario():
        other, executor = SshExecutor(target, pool), SshExecutor(target, pool)
        await other.connect()
        try:
            await executor.connect()
            try:
                folder = (await executor.home_dir()) + f"/{marker}"
                await executor.makedirs(folder)
                out = folder + "/out"
                first = await executor.spawn("true", stdout=out, stderr=out)  # the launcher runs
                assert await first.wait() == 0
                launcher = executor.connection._launcher
                task = asyncio.ensure_future(executor.spawn(
                    "exec sleep 100", stdout=out, stderr=out, env={"MARK": marker}))
                await asyncio.sleep(0)  # the request is written, the answer not read yet
                assert len(launcher._starting) == 1
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                executor.kill_all()  # what a node's release does first
            finally:
                await executor.close()
            deadline = time.monotonic() + 5  # the connection is still open: once it started,
            while time.monotonic() < deadline:  # (its control file written), is it running?
                if len([f for f in await other.list_files(folder) if f.endswith(".pid")]) == 2:
                    break
                await asyncio.sleep(0.02)
            left = await asyncio.to_thread(processes_with, marker)
            await other.remove_tree(folder)
            return left
        finally:
            await other.close()

    assert run_on_loop(ec, scenario()) == []


def test_a_request_read_across_the_launcher_s_one_second_check_is_read_whole(tmp_path):
    """The launcher (run here by bash, as on a host) reads headers with a one-second
    timeout while supervisors run; a header cut by that timeout, then finished after the
    last supervisor ended (a plain read then), is still read whole."""
    import select
    import subprocess

    def request(kind: bytes, body: str) -> tuple[bytes, bytes]:
        data = body.encode()
        return kind + str(len(data)).encode() + b"\n", data

    folder = str(tmp_path)
    args = (folder + "/.out.x", folder + "/out", "", "", "sleep 0.3", folder)
    spawn = " ".join(["1", *(_ssh._quote(a) for a in args)]) + "\n" + _ssh._prelude(folder, {})
    command = "2 " + _ssh._quote("echo \"$1\"") + " " + _ssh._quote("it ran") + "\n"
    launcher = subprocess.Popen(["bash", "-c", _ssh._LAUNCHER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                cwd=folder)

    def line(timeout: float) -> bytes:
        ready, _, _ = select.select([launcher.stdout], [], [], timeout)
        return launcher.stdout.readline() if ready else b"(nothing)"

    try:
        launcher.stdin.write(b"".join(request(b"", spawn)))
        launcher.stdin.flush()
        assert line(5).startswith(b"P 1 ")
        header, body = request(b"C ", command)
        launcher.stdin.write(header[:1])  # "C", then nothing for over two seconds: a timeout
        launcher.stdin.flush()  # cuts the header, the supervisor ends, and reads are plain
        assert line(5).startswith(b"E 1 0")
        time.sleep(2.2)
        launcher.stdin.write(header[1:] + body)
        launcher.stdin.flush()
        assert line(5) == b"R 2 0 it ran\n"
    finally:
        launcher.stdin.close()
        launcher.wait(5)


def test_a_connection_lost_during_one_of_nepi_labs_own_commands_says_the_outcome_is_unknown(
        ec, ssh_node, sshd):  # noqa: F811
    """A sweep or a removal runs in a subshell of the launcher (a ``C`` request); the
    connection dropped before its answer came, the caller gets SshConnectionLostError
    saying so, not a hang."""
    ec.deploy()
    ec.wait_deployed(ssh_node, timeout=20)
    executor = executor_of(ec, ssh_node)

    def sleeping() -> list[psutil.Process]:
        found = []
        for p in remote_processes(sshd):
            try:
                if p.cmdline() == ["sleep", "3"]:
                    found.append(p)
            except psutil.NoSuchProcess:
                continue
        return found

    async def scenario():
        asked = asyncio.ensure_future(executor._internal("sleep 3; echo late"))
        deadline = time.monotonic() + 10
        while not await asyncio.to_thread(sleeping) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert await asyncio.to_thread(sleeping), "the command did not start"
        await asyncio.to_thread(sshd.drop_connections)
        with pytest.raises(_ssh.SshConnectionLostError) as lost:
            await asyncio.wait_for(asked, 10)
        return str(lost.value)

    message = run_on_loop(ec, scenario())
    assert "lost while (nepi_lab's own command) ran; outcome unknown" in message, message
    deadline = time.monotonic() + 10  # what it started ends by itself (sleep 3)
    while sleeping() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not sleeping()
