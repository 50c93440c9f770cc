"""A sweep's runs as frames with their point's columns joined in (``load_runs`` of a sweep
directory), and the error-bar plot of a metric against a parameter: real localhost
applications, checked against the traces on disk and the artists drawn."""

from __future__ import annotations

import functools
import os
import shutil

import matplotlib
import pandas as pd
import pytest

from nepi_lab import InvalidInputError, Sweep, SweepError, load_runs
from nepi_lab.analysis import plot_sweep, sweep_summary
from nepi_lab.analysis.plots import DODGE

from .builds import echo, printed

matplotlib.use("Agg")

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


def test_plot_sweep_draws_the_summary_with_its_confidence_intervals(tmp_path, home):
    sweep = Sweep(functools.partial(echo, home=home), GRID, repetitions=3, exp_id="plotted",
                  results=tmp_path / "results", metrics=printed)
    assert sweep.run() == 12
    summary = sweep.summary()
    assert (summary["value_count"] == 3).all() and summary["value_std"].notna().all()

    ax = plot_sweep(summary, x="n", y="value", hue="word")
    assert len(ax.containers) == 2  # one errorbar container per word
    # the two lines side by side (DODGE of the x range apart), ticks at the values swept only
    shift = DODGE * (2 - 1) / 2
    for container, word, dx in zip(ax.containers, ["a", "b"], [-shift, shift], strict=True):
        expected = summary[summary["word"] == word].sort_values("n")
        line, _, (bars,) = container.lines
        assert container.get_label() == f"word = {word}"
        assert list(line.get_xdata()) == pytest.approx([1.0 + dx, 2.0 + dx])
        assert list(line.get_ydata()) == pytest.approx(expected["value_mean"].tolist())
        half = (expected["value_ci_high"] - expected["value_ci_low"]) / 2
        segments = bars.get_segments()
        assert [s[0][0] for s in segments] == pytest.approx([1.0 + dx, 2.0 + dx])
        assert [s[1][1] - s[0][1] for s in segments] == pytest.approx((2 * half).tolist())
        assert [s[0][1] for s in segments] == pytest.approx(expected["value_ci_low"].tolist())
    assert list(ax.get_xticks()) == [1.0, 2.0] and [t.get_text() for t in ax.get_xticklabels()] == ["1", "2"]
    assert ax.get_xlabel() == "n" and "value" in ax.get_ylabel()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["word = a", "word = b"]
    ax.figure.savefig(os.environ.get("NEPI_LAB_SWEEP_PNG", tmp_path / "sweep.png"), dpi=100)

    # the same from the sweep (through the core's hook) and from its directory alone
    for other in (sweep.plot(x="n", y="value", hue="word"),
                  plot_sweep(sweep.path, x="n", y="value", hue="word", metrics=printed)):
        assert [list(c.lines[0].get_ydata()) for c in other.containers] == \
            [list(c.lines[0].get_ydata()) for c in ax.containers]
    pd.testing.assert_frame_equal(sweep_summary(sweep.path, printed), summary)

    with pytest.raises(InvalidInputError, match=r"parameters \['word'\] vary too"):
        plot_sweep(summary, x="n", y="value")
    with pytest.raises(InvalidInputError, match="no 'nothing_mean' column"):
        plot_sweep(summary, x="n", y="nothing", hue="word")
    one_word = plot_sweep(summary[summary["word"] == "a"], x="n", y="value")
    assert len(one_word.containers) == 1 and one_word.get_legend() is None
    assert list(one_word.containers[0].lines[0].get_xdata()) == [1.0, 2.0]  # one line: in place
    by_word = plot_sweep(summary[summary["n"] == 1], x="word", y="value")  # categories
    assert [t.get_text() for t in by_word.get_xticklabels()] == ["a", "b"]
    assert list(by_word.containers[0].lines[0].get_xdata()) == [0.0, 1.0]
