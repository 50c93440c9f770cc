"""A sweep's runs as frames with their point's columns joined in (``load_runs`` of a sweep
directory): real localhost applications, checked against the traces on disk."""

from __future__ import annotations

import functools
import os
import shutil

import pandas as pd
import pytest

from nepi_lab import Sweep, SweepError, load_runs

from .builds import echo

GRID = {"n": [1, 2], "word": ["a", "b"]}
POINT_COLUMNS = ["run_id", "n", "word", "repetition", "point"]


def printed_by(sweep) -> dict[str, tuple[int, str]]:
    """``{run_id: (n, word)}`` as each run's application printed it, read from its stdout file."""
    found = {}
    for entry in sweep.runs:
        with open(os.path.join(sweep.run_dir(entry), "2-linux.Application", "stdout")) as f:
            n, word, _ = f.read().split()
        found[entry["run_dir"]] = (int(n), word)
    return found


def test_frames_over_a_sweep_carry_the_point_columns(tmp_path, home):
    sweep = Sweep(functools.partial(echo, home=home), GRID, repetitions=2, exp_id="joined",
                  results=tmp_path / "results")
    assert sweep.run() == 8
    truth = printed_by(sweep)
    entries = {e["run_dir"]: e for e in sweep.runs}

    runs = load_runs(sweep.path)
    assert sorted(runs.run_ids) == sorted(truth)
    traces = runs.trace_frame(2, "stdout")
    resources = runs.resources_frame()
    events = runs.events_frame()
    for frame in (traces, resources, events):
        assert list(frame.columns[:5]) == POINT_COLUMNS
        assert frame["run_id"].nunique() == 8
        for row in frame[POINT_COLUMNS].itertuples(index=False):
            entry = entries[row.run_id]
            assert (row.n, row.word) == truth[row.run_id]
            assert (row.repetition, row.point) == (entry["repetition"], entry["point"])
    # the joined values are those the application printed, row by row
    assert len(traces) == 8
    for row in traces.itertuples(index=False):
        n, word, _ = row.text.split()
        assert (row.n, row.word) == (int(n), word)
    assert (resources.groupby(["n", "word"]).size() == 4).all()  # a node and an application x 2
    assert str(traces["n"].dtype) == "int64" and str(traces["repetition"].dtype) == "Int64"

    # from the directory alone, copied elsewhere: the same frames
    copy = shutil.copytree(sweep.path, tmp_path / "elsewhere" / "joined")
    shutil.rmtree(sweep.path)
    again = load_runs(copy)
    pd.testing.assert_frame_equal(again.trace_frame(2, "stdout"), traces)
    pd.testing.assert_frame_equal(again.resources_frame(), resources)
    pd.testing.assert_frame_equal(again.events_frame(), events)

    # a parser column named like a parameter is renamed, not overwritten
    def numbers(data):
        n, word, _ = data.decode().split()
        return pd.DataFrame({"n": [int(n) * 10], "word": [word.upper()]})

    parsed = again.trace_frame(2, "stdout", parser=numbers)
    assert list(parsed.columns) == [*POINT_COLUMNS, "guid", "type", "trace", "n_data", "word_data"]
    assert (parsed["n_data"] == parsed["n"] * 10).all()
    assert (parsed["word_data"] == parsed["word"].str.upper()).all()


def shout(ec, command, *, home):
    node = ec.register_resource("linux::Node", hostname="localhost", home=home)
    ec.register_resource("linux::Application", connectedTo=node, command=command)


def test_an_attribute_named_like_a_parameter_is_renamed(tmp_path, home):
    sweep = Sweep(functools.partial(shout, home=home), {"command": ["echo hi"]}, exp_id="clash",
                  results=tmp_path / "results")
    sweep.run()
    resources = load_runs(sweep.path).resources_frame()
    assert list(resources.columns[:4]) == ["run_id", "command", "repetition", "point"]
    application = resources[resources["type"] == "linux::Application"].iloc[0]
    assert application["command"] == "echo hi" and application["command_attribute"] == "echo hi"


@pytest.mark.parametrize("name", ["guid", "type", "trace"])
def test_the_runs_frames_identity_columns_are_reserved(tmp_path, name):
    with pytest.raises(SweepError, match=f"'{name}' names a column"):
        Sweep(shout, {name: [1]}, exp_id="x", results=tmp_path / "results")
