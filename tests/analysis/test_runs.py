"""Frames of real runs, from the controller and from the run directory alone, and the
errors a damaged run directory gives."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys

import pandas as pd
import pandas.testing as pdt
import pytest

import nepi_lab
from nepi_lab import (
    ExperimentController,
    InvalidInputError,
    RunDirectoryError,
    RunFormatError,
    TraceNotFoundError,
    UnknownGuidError,
    UnknownParserError,
    UnknownTraceError,
    events_frame,
    load_run,
    load_runs,
    resources_frame,
    trace_frame,
)
from nepi_lab.analysis import SUPPORTED_VERSIONS, Run, RunSet
from nepi_lab.core.results import RUN_FORMAT

from .conftest import requires

IDENTITY = ["run_id", "guid", "type", "trace"]


def copy_of(run_dir: str, tmp_path) -> str:
    """The run directory copied elsewhere: nothing of the original is used after this."""
    target = tmp_path / "elsewhere" / "copied-run"
    shutil.copytree(run_dir, target)
    return str(target)


# == the real run: ping, iperf3, tcpdump on 127.0.0.1 ==============================


def lab_traces(lab):
    """(guid, trace) of every trace the real run made that a test reads."""
    traces = [(lab.guids["fails"], "stderr"), (lab.guids["fails"], "exitcode")]
    for name, trace in (("ping", "stdout"), ("client", "stdout"), ("server", "stdout"), ("tcpdump", "pcap")):
        if lab.has(name):
            traces.append((lab.guids[name], trace))
    return traces


def test_round_trip_gives_identical_frames(lab, tmp_path):
    """run -> frames -> load_run on a copy of the directory -> the same frames."""
    run = load_run(copy_of(lab.run_dir, tmp_path))
    pdt.assert_frame_equal(events_frame(run), events_frame(lab.ec))
    pdt.assert_frame_equal(resources_frame(run), resources_frame(lab.ec))
    for guid, name in lab_traces(lab):
        from_controller = trace_frame(lab.ec, guid, name)
        from_directory = trace_frame(run, guid, name)
        pdt.assert_frame_equal(from_directory, from_controller)
        assert from_directory.attrs == from_controller.attrs


def test_frames_taken_during_the_run_match_the_directory(lab, tmp_path):
    """Trace frames read from the live controller (before release) equal those read later."""
    run = load_run(copy_of(lab.run_dir, tmp_path))
    if not lab.live:
        pytest.skip("neither ping nor iperf3 is installed")
    for name, frame in lab.live.items():
        pdt.assert_frame_equal(trace_frame(run, lab.guids[name], "stdout"), frame)


def test_ping_trace(lab):
    requires(lab, "ping", "ping is not installed (apt-get install iputils-ping)")
    frame = trace_frame(lab.ec, lab.guids["ping"], "stdout")
    assert list(frame.columns[:4]) == IDENTITY
    assert (frame["run_id"] == lab.ec.run_id).all() and (frame["type"] == "linux::Ping").all()
    assert frame["seq"].tolist() == [1, 2, 3, 4, 5]
    assert (frame["rtt_ms"] > 0).all() and frame["timestamp"].notna().all()
    assert (frame["source"] == "127.0.0.1").all()
    started = lab.ec.get_start_time(lab.guids["ping"]).timestamp()
    assert frame["timestamp"].iloc[0].timestamp() >= started - 1
    assert frame.attrs["summary"]["received"] == 5 and frame.attrs["parser"] == "ping"
    assert frame.attrs["malformed"] == 0


def test_iperf3_traces(lab):
    requires(lab, "client", "iperf3 is not installed (apt-get install iperf3)")
    client = trace_frame(lab.ec, lab.guids["client"], "stdout")
    assert sorted(client["stream"].unique().tolist()) == sorted(set(client["stream"])) and \
        client["stream"].nunique() == 2
    assert client.groupby("stream").size().tolist() == [2, 2]
    assert client["sender"].all() and (client["bits_per_second"] > 1e6).all()
    # 20 Mbit/s asked per stream
    assert client.attrs["summary"]["sent_bits_per_second"] == pytest.approx(40e6, rel=0.3)
    server = trace_frame(lab.ec, lab.guids["server"], "stdout")  # text: the server ran without -J
    assert server.attrs["parser"] == "iperf3" and server.attrs["malformed"] == 0
    assert server["stream"].nunique() == 2


def test_tcpdump_trace(lab):
    requires(lab, "tcpdump", "tcpdump is not installed, or this is not root")
    frame = trace_frame(lab.ec, lab.guids["tcpdump"], "pcap")
    assert frame.attrs["parser"] == "tcpdump" and frame.attrs["malformed"] == 0
    icmp = frame[frame["protocol"] == "ICMP"]
    if lab.has("ping"):
        assert len(icmp) == 10 and (icmp["length"] == 64).all()  # 5 requests, 5 replies
    tcp = frame[frame["protocol"] == "TCP"]
    if lab.has("client"):
        assert lab.port in set(tcp["destination_port"])
        assert tcp["length"].sum() > 1_000_000  # the 1 s test's payload, though only 96 bytes were kept
    assert (frame["source"] == "127.0.0.1").all()


def test_events_frame(lab):
    frame = events_frame(lab.ec)
    assert list(frame.columns) == ["run_id", "time", "guid", "type", "from", "to", "detail"]
    assert str(frame["time"].dtype) == "datetime64[ns, UTC]" and frame["time"].is_monotonic_increasing
    assert list(frame["to"].cat.categories) == [s.name for s in nepi_lab.ResourceState]
    firsts = frame.groupby("guid")["to"].first()
    lasts = frame.groupby("guid")["to"].last()
    assert (firsts == "NEW").all() and (lasts == "RELEASED").all()
    assert frame.loc[frame["to"] == "NEW", "from"].isna().all()
    failed = frame[(frame["guid"] == lab.guids["fails"]) & (frame["to"] == "FAILED")]
    assert len(failed) == 1 and "status 3" in failed["detail"].item()


def test_resources_frame(lab):
    frame = resources_frame(lab.ec).set_index("guid")
    assert len(frame) == len(lab.ec.resources)
    assert (frame["state"] == "RELEASED").all()
    fails = frame.loc[lab.guids["fails"]]
    assert fails["failure"].startswith("CommandError: ") and "exited with status 3" in fails["failure"]
    assert fails["failure_step"] == "run" and fails["returncode"] == 3
    assert fails["command"] == "echo 'oops' >&2; exit 3" and not fails["critical"]
    assert pd.notna(fails["failed_time"]) and pd.isna(fails["finish_time"])
    if lab.has("ping"):
        ping = frame.loc[lab.guids["ping"]]
        assert ping["target"] == "127.0.0.1" and ping["count"] == 5 and ping["printTimestamp"]
        assert ping["critical"]  # a default, from the description's types
        assert ping["ready_time"] <= ping["start_time"] <= ping["finish_time"] <= ping["release_time"]
        assert str(frame["count"].dtype) == "Int64"  # typed from the attribute declarations
    if lab.has("client"):
        assert frame.loc[lab.guids["client"], "protocol"] == "tcp"  # a default
    for column in ("register_time", "start_time", "release_time"):
        assert str(frame[column].dtype) == "datetime64[ns, UTC]"
    node = frame[frame["type"] == "linux::Node"].iloc[0]
    assert len(node["connections"]) == len(lab.ec.resources) - 1


# == runs that need nothing but Python ============================================


def test_writer_round_trip(writer_run, tmp_path):
    ec, run_dir, (ok, bad) = writer_run
    run = load_run(copy_of(run_dir, tmp_path))
    assert isinstance(run, Run) and run.run_id == ec.run_id and run.exp_id == "writers"
    assert run.ecstate == "TERMINATED" and run.guids == [ok, bad]
    pdt.assert_frame_equal(events_frame(run), events_frame(ec))
    pdt.assert_frame_equal(resources_frame(run), resources_frame(ec))
    for guid in (ok, bad):
        pdt.assert_frame_equal(trace_frame(run, guid, "out"), trace_frame(ec, guid, "out"))
    frame = trace_frame(run, ok, "out", parser="csv")
    assert frame.columns.tolist() == [*IDENTITY, "0", "0.1"] and len(frame) == 3  # a header row


def test_a_path_is_a_source_too(writer_run):
    ec, run_dir, (ok, _) = writer_run
    pdt.assert_frame_equal(trace_frame(run_dir, ok, "out"), trace_frame(ec, ok, "out"))
    pdt.assert_frame_equal(events_frame(run_dir), events_frame(ec))


def test_an_attribute_named_like_a_column(writer_run):
    ec, _, (ok, bad) = writer_run
    frame = resources_frame(ec).set_index("guid")
    assert frame.loc[ok, "state"] == "RELEASED"
    assert frame.loc[ok, "state_attribute"] == "set" and frame.loc[bad, "state_attribute"] == "x"
    assert frame.loc[bad, "failure"] == "RuntimeError: failed on purpose after writing"


def test_a_custom_parser_by_name_and_as_a_function(writer_run):
    ec, _, (ok, _) = writer_run

    def squares(data):
        assert isinstance(data, bytes)  # the file's bytes, from the controller as from the directory
        return pd.read_csv(io.BytesIO(data), names=["n", "square", "type"])

    nepi_lab.register_parser("analysis-test-squares", squares)
    try:
        by_name = trace_frame(ec, ok, "out", parser="analysis-test-squares")
    finally:
        from nepi_lab.analysis import unregister_parser

        unregister_parser("analysis-test-squares")
    by_function = trace_frame(ec, ok, "out", parser=squares)
    assert by_name["square"].tolist() == [0, 1, 4, 9]
    assert "type_data" in by_name  # renamed: "type" is the resource type's column
    assert by_name.attrs["parser"] == "analysis-test-squares" and by_function.attrs["parser"] == "squares"
    pdt.assert_frame_equal(by_name, by_function)
    with pytest.raises(InvalidInputError, match="returned list"):
        trace_frame(ec, ok, "out", parser=lambda data: [1, 2])


def test_frames_of_many_resources_and_runs_concatenate(writer_run, tmp_path):
    ec, _, (ok, bad) = writer_run
    results = os.path.dirname(os.path.dirname(ec.run_dir))
    with ExperimentController(exp_id="writers", local_dir=results) as ec2:
        g = ec2.register_resource("analysis_test::Writer", lines=2)
        ec2.deploy()
        ec2.wait_finished(g, timeout=10)
    runs = load_runs(os.path.dirname(ec.run_dir))
    assert isinstance(runs, RunSet) and runs.run_ids == sorted([ec.run_id, ec2.run_id])
    events = events_frame(runs)
    assert set(events["run_id"]) == {ec.run_id, ec2.run_id}
    resources = resources_frame(runs)
    assert resources.groupby("run_id").size().to_dict() == {ec.run_id: 2, ec2.run_id: 1}
    both = trace_frame(runs, ok, "out")
    assert both.groupby("run_id").size().to_dict() == {ec.run_id: 4, ec2.run_id: 2}
    assert both.attrs["malformed"] == 0 and len(both.attrs["parts"]) == 2
    mixed = pd.concat([trace_frame(ec, ok, "out"), trace_frame(ec, bad, "out"), trace_frame(ec2, g, "out")],
                      ignore_index=True)
    pdt.assert_series_equal(mixed.dtypes, trace_frame(ec, ok, "out").dtypes)
    assert trace_frame(ec, [ok, bad], "out")["guid"].tolist() == [ok] * 4 + [bad] * 3


def test_runs_never_deployed_are_left_out_of_an_experiment(writer_run):
    ec, _, (ok, _) = writer_run
    results = os.path.dirname(os.path.dirname(ec.run_dir))
    with ExperimentController(exp_id="writers", local_dir=results) as only_registered:
        only_registered.register_resource("analysis_test::Writer", lines=2)
    assert not load_run(only_registered.run_dir).deployed and load_run(ec.run_dir).deployed
    runs = load_runs(os.path.dirname(ec.run_dir))
    assert runs.run_ids == [ec.run_id] and runs.left_out == [only_registered.run_dir]
    assert repr(runs).endswith("(1 never deployed, left out)>")
    assert set(resources_frame(runs)["run_id"]) == {ec.run_id}
    everything = load_runs(os.path.dirname(ec.run_dir), undeployed=True)
    assert everything.run_ids == sorted([ec.run_id, only_registered.run_id]) and everything.left_out == []
    shutil.rmtree(ec.run_dir)
    with pytest.raises(RunDirectoryError, match=r"none of its 1 runs was ever deployed .*undeployed=True"):
        load_runs(os.path.dirname(ec.run_dir))


# == what cannot be read ==========================================================


def test_unknown_parser_is_refused_first(writer_run):
    ec, _, (ok, _) = writer_run
    with pytest.raises(UnknownParserError,
                       match="registered parsers are: csv, iperf3, lines, ns3_flows, packet_sink, ping"):
        trace_frame(ec, ok, "out", parser="nope")


@pytest.mark.parametrize("where", ["controller", "directory"])
def test_a_missing_trace_says_which_resource_and_which_traces_exist(writer_run, where):
    ec, run_dir, (ok, _) = writer_run
    source = ec if where == "controller" else load_run(run_dir)
    with pytest.raises(TraceNotFoundError) as info:
        trace_frame(source, ok, "stdout")
    assert isinstance(info.value, UnknownTraceError)
    assert info.value.guid == ok and info.value.rtype == "analysis_test::Writer"
    assert "resource 1 (analysis_test::Writer) has no trace 'stdout'" in str(info.value)
    assert "declares no such trace" in str(info.value) and "out" in str(info.value)
    with pytest.raises(TraceNotFoundError, match="not enabled"):
        trace_frame(source, ok, "debug")
    with pytest.raises(UnknownGuidError):
        trace_frame(source, 99, "out")
    with pytest.raises(InvalidInputError):
        trace_frame(source, ok, "../experiment.json")


def test_a_trace_that_was_not_collected(writer_run, tmp_path):
    _, run_dir, (ok, _) = writer_run
    copy = copy_of(run_dir, tmp_path)
    os.remove(os.path.join(copy, f"{ok}-analysis_test.Writer", "out"))
    with pytest.raises(TraceNotFoundError, match="not collected into the run directory") as info:
        trace_frame(copy, ok, "out")
    assert info.value.available == []


def test_a_source_that_is_not_a_run():
    with pytest.raises(InvalidInputError, match="cannot read a run from 42"):
        events_frame(42)


@pytest.fixture
def damaged(writer_run, tmp_path):
    """A copy of a real run directory to damage."""
    return copy_of(writer_run[1], tmp_path)


def rewrite_line(path, index, change):
    rewrite(path, lambda t: "\n".join(change(line) if i == index else line
                                      for i, line in enumerate(t.split("\n"))))


def rewrite(path, change):
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(change(text))


def test_missing_description(damaged):
    os.remove(os.path.join(damaged, "experiment.json"))
    with pytest.raises(RunDirectoryError, match=r"experiment.json: missing .*a run directory") as info:
        load_run(damaged)
    assert info.value.file == "experiment.json" and info.value.path == damaged


def test_garbled_description(damaged):
    rewrite(os.path.join(damaged, "experiment.json"), lambda t: t[: len(t) // 2])
    with pytest.raises(RunDirectoryError, match=r"experiment.json, line 1: not valid JSON") as info:
        load_run(damaged)
    assert info.value.line == 1


def test_unknown_format_version(damaged):
    path = os.path.join(damaged, "experiment.json")
    rewrite(path, lambda t: json.dumps({**json.loads(t), "version": 99}))
    with pytest.raises(RunFormatError, match="unknown run format version 99; this nepi_lab reads version 1") \
            as info:
        load_run(damaged)
    assert info.value.version == 99 and "upgrade" in str(info.value)
    rewrite(path, lambda t: json.dumps({**json.loads(t), "format": "something else"}))
    with pytest.raises(RunDirectoryError, match="not a nepi_lab run description"):
        load_run(damaged)


def test_the_reader_knows_the_version_the_core_writes():
    assert RUN_FORMAT in SUPPORTED_VERSIONS


def test_garbled_event_line(damaged):
    path = os.path.join(damaged, "events.jsonl")
    rewrite_line(path, 4, lambda line: line[:25])
    with pytest.raises(RunDirectoryError, match=r"events.jsonl, line 5: not valid JSON") as info:
        load_run(damaged)
    assert info.value.line == 5 and info.value.file == "events.jsonl"
    run = load_run(damaged, strict=False)  # the damaged line left out, and counted
    frame = events_frame(run)
    assert frame.attrs["malformed"] == 1 and frame.attrs["malformed_examples"][0].startswith("line 5: ")
    with open(path) as f:
        lines = f.read().count("\n")  # the file ends with a newline
    assert len(frame) == lines - 1  # every line but the damaged one


@pytest.mark.parametrize(("change", "message"), [
    (lambda line: "", "line 3: empty line"),
    (lambda line: "[1, 2]", "line 3: not a JSON object"),
    (lambda line: line.replace('"to": "', '"to": "NOT'), "line 3: unknown state"),
    (lambda line: line.replace('"guid": ', '"guid": "x'), "line 3: not valid JSON"),
])
def test_bad_event_lines(damaged, change, message):
    path = os.path.join(damaged, "events.jsonl")
    rewrite_line(path, 2, change)
    with pytest.raises(RunDirectoryError, match=message):
        load_run(damaged)


def test_missing_event_log_and_not_a_directory(damaged, tmp_path):
    os.remove(os.path.join(damaged, "events.jsonl"))
    with pytest.raises(RunDirectoryError, match="events.jsonl: missing"):
        load_run(damaged)
    with pytest.raises(RunDirectoryError, match="no such directory"):
        load_run(tmp_path / "nothing-here")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunDirectoryError, match="no run directory in it"):
        load_runs(tmp_path / "empty")


# == the package ==================================================================


def test_importing_the_analysis_layer_is_light(tmp_path):
    code = ("import json, sys\nimport nepi_lab, nepi_lab.analysis\n"
            "nepi_lab.trace_frame\n"
            "print(json.dumps(sorted(m for m in ('pandas', 'matplotlib', 'numpy') if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_top_level_names_are_the_analysis_ones():
    from nepi_lab import analysis

    for name in ("trace_frame", "events_frame", "resources_frame", "load_run", "load_runs", "Run", "RunSet",
                 "register_parser", "RunDirectoryError", "RunFormatError", "TraceNotFoundError",
                 "UnknownParserError"):
        assert getattr(nepi_lab, name) is getattr(analysis, name)
        assert name in nepi_lab.__all__
    for error in (RunDirectoryError, RunFormatError, TraceNotFoundError, UnknownParserError):
        assert issubclass(error, nepi_lab.InvalidInputError)
    with pytest.raises(AttributeError):
        nepi_lab.no_such_name  # noqa: B018


def test_frames_inside_a_running_loop(tmp_path):
    """In a notebook cell a loop is running (the kernel's): the frames work there too."""
    import asyncio

    async def main():
        with ExperimentController(exp_id="in-loop", local_dir=str(tmp_path)) as ec:
            g = ec.register_resource("analysis_test::Writer", lines=2)
            ec.deploy()
            await ec.wait_finished_async(g, timeout=10)
            frame = trace_frame(ec, g, "out", parser="csv")
            events = events_frame(ec)
        return ec, g, frame, events

    ec, g, frame, events = asyncio.run(main())
    assert frame.columns.tolist() == [*IDENTITY, "0", "0.1"] and frame["0"].tolist() == [1]
    assert set(events["to"]) >= {"NEW", "READY", "FINISHED"}
    pdt.assert_frame_equal(trace_frame(ec.run_dir, g, "out", parser="csv"), frame)


def test_resources_frame_has_names_and_outcomes(tmp_path):
    """Names and outcomes from the controller, and from the run directory alone."""
    with ExperimentController(exp_id="named", local_dir=str(tmp_path / "results")) as ec:
        ok = ec.register_resource("analysis_test::Writer", name="writer one")
        bad = ec.register_resource("analysis_test::Writer", fail=True, critical=False)
        ec.deploy()
        ec.wait_finished([ok, bad], timeout=10)
        live = resources_frame(ec).set_index("guid")
        assert live.loc[ok, "outcome"] == live.loc[ok, "state"] == "FINISHED"
    frame = resources_frame(ec)
    assert frame.columns.tolist()[:6] == ["run_id", "guid", "name", "type", "state", "outcome"]
    assert "name_attribute" not in frame.columns and frame.columns.tolist().count("name") == 1
    frame = frame.set_index("guid")
    assert frame.loc[ok, "name"] == "writer one" and pd.isna(frame.loc[bad, "name"])
    assert (frame["state"] == "RELEASED").all()
    assert frame.loc[ok, "outcome"] == "FINISHED" and frame.loc[bad, "outcome"] == "FAILED"
    assert frame["outcome"].dtype == frame["state"].dtype  # ordered categoricals of the states
    pdt.assert_frame_equal(resources_frame(load_run(ec.run_dir)), resources_frame(ec))
