"""linux::Application with real processes: files, steps, placeholders, traces, exit codes, stop."""

from __future__ import annotations

import os
import pathlib
import time

import pytest

from nepi_lab import (
    AttributeValueError,
    ExperimentFailedError,
    InvalidConnectionError,
    ReadOnlyAttributeError,
    ResourceState,
    TraceAttr,
    UnknownTraceError,
)

from .conftest import all_gone, wait_for_processes, wait_for_trace

S = ResourceState


def app(ec, node, **attributes):
    return ec.register_resource("linux::Application", connectedTo=node, **attributes)


def run(ec, *guids, timeout=10):
    ec.deploy()
    ec.wait_finished(list(guids), timeout=timeout)


# -- what runs, and with what ----------------------------------------------------------


def test_stdout_and_stderr_traces(ec, node):
    a = app(ec, node, command="echo to-out; echo to-err >&2")
    run(ec, a)
    assert ec.state(a) == S.FINISHED
    assert ec.trace(a, "stdout") == "to-out\n"
    assert ec.trace(a, "stderr") == "to-err\n"
    assert ec.trace(a, "exitcode") == "0\n"


def test_sources_are_uploaded_to_src(ec, node, tmp_path):
    (tmp_path / "one.txt").write_text("first")
    folder = tmp_path / "pkg"
    folder.mkdir()
    (folder / "two.txt").write_text("second")
    a = app(ec, node, sources=f"{tmp_path / 'one.txt'}; {folder}",
            command="cat ${SRC}/one.txt ${SRC}/pkg/two.txt")
    run(ec, a)
    assert ec.trace(a, "stdout") == "firstsecond"


def test_a_missing_source_fails_at_deploy(ec, node, tmp_path):
    a = app(ec, node, sources=str(tmp_path / "nope"), command="true", critical=False)
    run(ec, a)
    assert ec.state(a) == S.FAILED
    assert ec.failures[0].step == "provision" and "does not exist" in ec.failures[0].message


def test_code_is_an_executable_script_and_the_default_command(ec, node):
    a = app(ec, node, code="#!/bin/sh\necho \"code in $(basename $(dirname $0)) args:$#\"\n")
    b = app(ec, node, code="echo no shebang", command="sh ${CODE} && test -x ${CODE} && echo exec")
    run(ec, a, b)
    assert ec.trace(a, "stdout") == f"code in {a} args:0\n"
    assert ec.trace(b, "stdout") == "no shebang\nexec\n"


def test_build_and_install_run_in_order_and_log_to_their_traces(ec, node):
    a = app(ec, node,
            build="echo building; echo '#!/bin/sh' > tool; echo 'echo tool ran' >> tool; chmod +x tool",
            install="echo installing >&2; cp tool ${BIN}/mytool",
            command="mytool")  # ${BIN} is first on PATH
    run(ec, a)
    assert ec.trace(a, "build") == "building\n"
    assert ec.trace(a, "install") == "installing\n"
    assert ec.trace(a, "stdout") == "tool ran\n"
    assert ec.get_ready_time(a) <= ec.get_start_time(a)


def test_a_failing_build_fails_the_application_with_its_log(ec, node):
    a = app(ec, node, build="echo compiling; echo 'error: no compiler' >&2; exit 2", command="true",
            critical=False)
    run(ec, a)
    (failure,) = ec.failures
    assert (failure.step, failure.returncode) == ("provision", 2)
    assert "no compiler" in failure.stderr_tail and failure.command.startswith("echo compiling")
    assert "no compiler" in ec.trace(a, "build")  # collected although it failed


def test_env_values_are_literal_and_may_use_placeholders(ec, node):
    a = app(ec, node, env="GREETING='hello world' TRICKY='$(touch /tmp/pwned);`id`' WHERE=${APP_HOME}/x",
            command='printf "%s|%s|%s" "$GREETING" "$TRICKY" "$WHERE"')
    run(ec, a)
    rm = ec.get_resource(a)
    assert ec.trace(a, "stdout") == f"hello world|$(touch /tmp/pwned);`id`|{rm.app_home}/x"


def test_bad_env_is_refused_at_set(ec, node):
    with pytest.raises(AttributeValueError, match="NAME=value"):
        app(ec, node, env="not-a-pair")
    with pytest.raises(AttributeValueError):
        app(ec, node, env="A='unclosed")
    with pytest.raises(AttributeValueError, match="command name"):
        app(ec, node, depends="ping; rm -rf /")


def test_stdin_is_fed_to_the_command(ec, node):
    a = app(ec, node, stdin="line one\nline two\n", command="wc -l")
    b = app(ec, node, command="cat")  # no stdin: empty input, never the controller's
    run(ec, a, b)
    assert ec.trace(a, "stdout").strip() == "2"
    assert ec.trace(b, "stdout") == ""


def test_placeholders(ec, node, home):
    names = ["HOME", "EXP", "EXP_HOME", "NODE_HOME", "BIN", "USR", "LIB", "SHARE", "RUN_HOME", "APP_HOME",
             "SRC", "CODE"]
    a = app(ec, node, command=" ; ".join(f'echo "{n}=${{{n}}}"' for n in names) + " ; pwd")
    run(ec, a)
    rm = ec.get_resource(a)
    n = ec.get_resource(node)
    seen = dict(line.split("=", 1) for line in ec.trace(a, "stdout").splitlines()[:-1])
    own = f"{home}/.nepi_lab/{ec.exp_id}/{ec.run_id}/{a}"  # the application's folder for this run
    assert seen == {
        "HOME": home, "EXP": f"{home}/.nepi_lab", "EXP_HOME": f"{home}/.nepi_lab/{ec.exp_id}",
        "NODE_HOME": f"{home}/.nepi_lab/{ec.exp_id}/{ec.run_id}/{node}", "BIN": f"{n.node_home}/bin",
        "USR": f"{home}/.nepi_lab/.usr", "LIB": f"{home}/.nepi_lab/.usr/lib",
        "SHARE": f"{home}/.nepi_lab/.usr/share", "RUN_HOME": own, "APP_HOME": own, "SRC": f"{own}/src",
        "CODE": f"{own}/code",
    }
    assert rm.app_home == own
    assert ec.trace(a, "stdout").splitlines()[-1] == own  # the default working directory


def test_working_directory(ec, node, tmp_path):
    a = app(ec, node, workingDirectory=str(tmp_path), command="pwd")
    b = app(ec, node, build="mkdir sub", workingDirectory="${APP_HOME}/sub", command="pwd")
    run(ec, a, b)
    assert ec.trace(a, "stdout") == f"{tmp_path}\n"
    assert ec.trace(b, "stdout") == f"{ec.get_resource(b).app_home}/sub\n"


def test_depends_names_the_missing_commands(ec, node):
    a = app(ec, node, depends="sh no-such-tool-1 no-such-tool-2", command="true", critical=False)
    run(ec, a)
    (failure,) = ec.failures
    assert failure.error == "MissingCommandsError"
    assert "no-such-tool-1, no-such-tool-2" in failure.message and "sh," not in failure.message


def test_an_application_without_command_only_deploys(ec, node):
    a = app(ec, node, build="echo built")
    run(ec, a)
    assert ec.state(a) == S.FINISHED and ec.trace(a, "build") == "built\n"


# -- traces -------------------------------------------------------------------------------


def test_all_four_trace_modes(ec, node):
    a = app(ec, node, command="printf 0123456789abcdef")
    run(ec, a)
    assert ec.trace(a, "stdout", TraceAttr.ALL) == "0123456789abcdef"
    assert ec.trace(a, "stdout", TraceAttr.SIZE) == 16
    assert ec.trace(a, "stdout", TraceAttr.STREAM, block=4, offset=2) == "89ab"
    assert ec.trace(a, "stdout", "stream", block=4, offset=9) == ""
    path = ec.trace(a, "stdout", TraceAttr.PATH)
    assert path == os.path.join(ec.get_resource(a).results_dir, "stdout")
    assert pathlib.Path(path).read_text() == "0123456789abcdef"


def test_traces_are_readable_while_running_and_after_shutdown(ec, node, tmp_path):
    a = app(ec, node, command="echo early; sleep 30")
    ec.deploy()
    ec.wait_started(a, timeout=10)
    assert wait_for_trace(ec, a, "stdout", "early\n") == "early\n"
    host = ec.trace(a, "stdout", TraceAttr.PATH)
    assert host.startswith(ec.get_resource(node).run_home)  # still on the host
    ec.shutdown()
    assert ec.trace(a, "stdout") == "early\n"  # collected into the run directory
    assert ec.trace(a, "stdout", TraceAttr.PATH).startswith(ec.run_dir)
    assert ec.trace(a, "exitcode") == "-15\n"


def test_big_output_goes_to_files_not_memory(ec, node):
    a = app(ec, node, command="head -c 50000000 /dev/zero")
    run(ec, a)
    assert ec.trace(a, "stdout", TraceAttr.SIZE) == 50_000_000
    assert ec.trace(a, "stdout", TraceAttr.STREAM, block=8, offset=10) == "\0" * 8


def test_unknown_trace_names_are_refused(ec, node):
    a = app(ec, node, command="true")
    with pytest.raises(UnknownTraceError):
        ec.trace(a, "nope")
    with pytest.raises(Exception, match="unsafe"):
        ec.trace(a, "../stdout")


def test_binary_traces_come_back_as_bytes(ec, node):
    a = app(ec, node, command="printf '\\377\\376'")
    run(ec, a)
    assert ec.trace(a, "stdout") == b"\xff\xfe"


# -- exit codes and failures ----------------------------------------------------------------


def test_exit_code_0_finishes_and_3_fails_with_code_and_stderr_tail(ec, node):
    ok = app(ec, node, command="true")
    bad = app(ec, node, command="echo first >&2; echo 'disk on fire' >&2; exit 3", critical=False)
    run(ec, ok, bad)
    assert ec.state(ok) == S.FINISHED
    assert ec.state(bad) == S.FAILED
    (failure,) = ec.failures
    assert (failure.guid, failure.step, failure.returncode) == (bad, "run", 3)
    assert failure.command == "echo first >&2; echo 'disk on fire' >&2; exit 3"
    assert failure.stderr_tail.endswith("disk on fire\n")
    assert ec.trace(bad, "exitcode") == "3\n"


def test_a_critical_failure_fails_the_experiment(ec, node):
    app(ec, node, command="exit 5")
    other = app(ec, node, command="sleep 100")
    ec.deploy()
    with pytest.raises(ExperimentFailedError, match="status 5"):
        ec.wait_finished(timeout=10)
    ec.wait_released(timeout=10)
    assert ec.get_stop_time(other) is not None and ec.state(other) == S.RELEASED


def test_an_application_without_node_fails_at_deploy(ec):
    a = ec.register_resource("linux::Application", command="true", critical=False)
    run(ec, a)
    (failure,) = ec.failures
    assert failure.step == "discover"
    assert "not connected to a linux::Node" in failure.message


def test_an_application_fails_at_once_when_its_node_failed(ec, home):
    node = ec.register_resource("linux::Node", hostname="unreachable.invalid", home=home, critical=False)
    a = ec.register_resource("linux::Application", connectedTo=node, command="true", critical=False)
    started = time.monotonic()
    ec.deploy()
    ec.wait_finished(a, timeout=10)
    assert time.monotonic() - started < 2
    assert ec.state(a) == S.FAILED
    failure = ec.get_resource(a).failure
    assert f"resource {node} (linux::Node) is FAILED" in failure.message


def test_an_application_runs_on_one_node_only(ec, node, home):
    other = ec.register_resource("linux::Node", home=home)
    a = app(ec, node, command="true")
    with pytest.raises(InvalidConnectionError, match="already runs on node"):
        ec.register_connection(a, other)


# -- stop ----------------------------------------------------------------------------------


def test_stop_terminates_the_process_group(ec, node, marker):
    a = app(ec, node, command="sleep 100 & sleep 100", env=f"MARK={marker}", stopGracePeriod=5)
    ec.deploy()
    ec.wait_started(a, timeout=10)
    assert len(wait_for_processes(marker, 3)) == 3  # the shell and its two sleeps
    started = time.monotonic()
    ec.stop(a, timeout=10)
    assert time.monotonic() - started < 1  # SIGTERM was enough: no grace period spent
    assert ec.state(a) == S.STOPPED
    assert all_gone(marker)
    assert ec.trace(a, "exitcode") == "-15\n"


def test_stop_escalates_to_sigkill_after_the_grace_period(ec, node, marker):
    a = app(ec, node, command="trap '' TERM; sleep 100; sleep 100", env=f"MARK={marker}",
            stopGracePeriod=0.3)
    ec.deploy()
    ec.wait_started(a, timeout=10)
    assert len(wait_for_processes(marker, 2)) == 2  # the shell set its trap and started sleeping
    started = time.monotonic()
    ec.stop(a, timeout=10)
    assert 0.25 < time.monotonic() - started < 2
    assert ec.state(a) == S.STOPPED
    assert all_gone(marker)
    assert ec.trace(a, "exitcode") == "-9\n"


def test_a_stopped_application_can_start_again(ec, node):
    a = app(ec, node, command="echo run; sleep 100")
    ec.deploy()
    ec.wait_started(a, timeout=10)
    assert wait_for_trace(ec, a, "stdout", "run\n") == "run\n"
    ec.stop(a, timeout=10)
    ec.start(a, timeout=10)
    assert wait_for_trace(ec, a, "stdout", "run\nrun\n") == "run\nrun\n"
    ec.stop(a, timeout=10)
    assert ec.trace(a, "stdout") == "run\nrun\n"


def test_background_leftovers_die_with_the_main_process(ec, node, marker):
    a = app(ec, node, command="sleep 100 & echo spawned", env=f"MARK={marker}")
    run(ec, a)
    assert ec.state(a) == S.FINISHED
    assert all_gone(marker)


# -- conditions -----------------------------------------------------------------------------


def test_b_starts_after_a_finished(ec, node, tmp_path):
    flag = tmp_path / "flag"
    a = app(ec, node, command=f"sleep 0.2; touch {flag}")
    b = app(ec, node, command=f"test -e {flag} && echo saw-flag")
    ec.register_condition(b, "START", a, "FINISHED")
    run(ec, a, b)
    assert ec.state(b) == S.FINISHED and ec.trace(b, "stdout") == "saw-flag\n"
    assert ec.get_start_time(b) >= ec.get_finish_time(a)


def test_stop_condition_stops_a_long_application(ec, node):
    short = app(ec, node, command="sleep 0.1")
    long = app(ec, node, command="sleep 100")
    ec.register_condition(long, "STOP", short, "FINISHED", "100ms")
    started = time.monotonic()
    run(ec, short, long)
    assert ec.state(long) == S.STOPPED
    assert time.monotonic() - started < 3


# -- the typed tools refuse raw command lines ----------------------------------------------


def test_tools_build_their_command_quoted_and_refuse_a_raw_one(ec, node, home):
    ping = ec.register_resource("linux::Ping", connectedTo=node, target="127.0.0.1; touch pwned",
                                count=1, critical=False)
    with pytest.raises(ReadOnlyAttributeError):
        ec.set(ping, "command", "rm -rf /")
    run(ec, ping)
    assert ec.get(ping, "command") == "ping -c 1 -- '127.0.0.1; touch pwned'"
    assert ec.state(ping) == S.FAILED  # no such host; and nothing else ran
    assert not os.path.exists(os.path.join(ec.get_resource(ping).app_home, "pwned"))


# -- synchronous reads without the loop ----------------------------------------------------


def _block_the_loop(ec):
    """Hold the controller's loop thread until the returned event is set."""
    import threading

    held, release = threading.Event(), threading.Event()

    def hold():
        held.set()
        release.wait(30)  # bounded: a failing test does not hang the suite

    ec.schedule("0s", hold)
    assert held.wait(10)
    return release


def test_state_and_collected_traces_need_no_loop(ec, node, monkeypatch):
    a = app(ec, node, command="printf 0123456789", build="echo built")
    run(ec, a)
    results = ec.get_resource(a).results_dir
    release = _block_the_loop(ec)

    def to_the_loop(*args):
        raise AssertionError(f"{args[1]} went to the loop")

    monkeypatch.setattr(ec._runner, "run", to_the_loop)
    try:  # the loop thread is busy: an answer that needed it would wait for it
        assert ec.state(a) == S.FINISHED
        assert ec.trace(a, "stdout", TraceAttr.SIZE) == 10
        assert ec.trace(a, "stdout", TraceAttr.PATH) == os.path.join(results, "stdout")
        assert ec.trace(a, "build", TraceAttr.SIZE) == len("built\n")
        assert ec.trace(a, "build") == "built\n"  # the content too
        assert ec.trace(a, "build", TraceAttr.STREAM, block=3, offset=1) == "lt\n"
    finally:
        release.set()
        monkeypatch.undo()
    # the same answers as the loop gives
    import asyncio

    for name in ("stdout", "build", "exitcode"):
        for attr in (TraceAttr.SIZE, TraceAttr.PATH, TraceAttr.ALL):
            assert ec.trace(a, name, attr) == asyncio.run(ec.trace_async(a, name, attr))
        for offset in (0, 1, 5):
            assert (ec.trace(a, name, TraceAttr.STREAM, block=2, offset=offset)
                    == asyncio.run(ec.trace_async(a, name, TraceAttr.STREAM, block=2, offset=offset)))


def test_a_trace_not_collected_is_still_read_through_the_loop(ec, node):
    a = app(ec, node, command="echo early; sleep 30")
    b = app(ec, node, command="printf done")  # no build step: its build trace stays on the host
    ec.deploy()
    ec.wait_started(a, timeout=10)
    ec.wait_finished(b, timeout=10)
    assert wait_for_trace(ec, a, "stdout", "early\n") == "early\n"
    rm = ec.get_resource(a)
    assert rm._read_trace_here("stdout", TraceAttr.SIZE) is None  # running: the host's file, via the loop
    assert ec.trace(a, "stdout", TraceAttr.SIZE) == 6
    assert ec.trace(a, "stdout", TraceAttr.PATH).startswith(ec.get_resource(node).run_home)
    host_build = ec.trace(b, "build", TraceAttr.PATH)  # a step that did not run: not collected
    assert ec.get_resource(b)._read_trace_here("build", TraceAttr.PATH) is None
    assert host_build.startswith(ec.get_resource(node).run_home)
    assert ec.get_resource(b)._read_trace_here("stdout", TraceAttr.SIZE) == 4


def test_a_restarted_application_is_read_through_the_loop_until_collected_again(ec, node):
    a = app(ec, node, command="printf x; sleep 30")
    ec.deploy()
    ec.wait_started(a, timeout=10)
    assert wait_for_trace(ec, a, "stdout", "x") == "x"
    ec.stop(a)
    ec.wait(a, S.STOPPED, timeout=10)
    rm = ec.get_resource(a)
    assert rm._read_trace_here("stdout", TraceAttr.SIZE) == 1  # collected when it ended
    count = rm._collections
    ec.start(a)
    ec.wait_started(a, timeout=10)
    assert rm._read_trace_here("stdout", TraceAttr.SIZE) is None  # running again: the loop answers
    ec.stop(a)
    ec.wait(a, S.STOPPED, timeout=10)
    assert rm._collections == count + 1 and ec.trace(a, "stdout", TraceAttr.SIZE) >= 1
