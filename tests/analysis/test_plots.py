"""Plots of real runs (Agg backend): each returns its Axes and draws what it should."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
from matplotlib.axes import Axes
from matplotlib.colors import to_hex

from nepi_lab import InvalidInputError, ResourceState, load_run, load_runs, trace_frame
from nepi_lab.analysis import (
    STATE_COLOURS,
    parse_iperf3,
    parse_ping,
    plot_rtt,
    plot_throughput,
    plot_timeline,
)
from nepi_lab.analysis.plots import RELEASED_RING

from .conftest import requires


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def bar_colours(ax: Axes) -> set[str]:
    return {to_hex(p.get_facecolor()) for p in ax.patches if p.get_fill()}


def test_timeline_of_a_real_run(lab, tmp_path):
    ax = plot_timeline(lab.ec)
    assert isinstance(ax, Axes)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert len(labels) == len(lab.ec.resources) and labels[0] == "1  linux::Node"
    colours = bar_colours(ax)
    assert {STATE_COLOURS["READY"], STATE_COLOURS["STARTED"], STATE_COLOURS["FAILED"]} <= colours
    assert STATE_COLOURS["NEW"] not in colours and STATE_COLOURS["RELEASED"] not in colours
    # the failure is marked, with its reason
    assert any(line.get_marker() == "X" for line in ax.lines)
    assert any("CommandError" in t.get_text() for t in ax.texts)
    assert ax.get_xlabel() == "seconds since deployment began"
    ax.figure.savefig(tmp_path / "timeline.png", dpi=80)
    assert (tmp_path / "timeline.png").stat().st_size > 5000
    # the same picture from the directory alone
    again = plot_timeline(load_run(lab.run_dir))
    assert [t.get_text() for t in again.get_yticklabels()] == labels
    assert bar_colours(again) == colours


def test_timeline_draws_on_a_given_axes_and_marks_what_is_still_running(writer_run):
    from nepi_lab import ExperimentController

    _, ax = plt.subplots()
    ec, run_dir, _ = writer_run
    assert plot_timeline(run_dir, ax=ax) is ax
    with ExperimentController(exp_id="running", local_dir=str(writer_run[1]) + "-more") as live:
        g = live.register_resource("analysis_test::Writer")
        live.deploy()
        live.wait_finished(g, timeout=10)
        ax = plot_timeline(live)  # not released yet: its last state is hatched
        assert any(p.get_hatch() == "///" for p in ax.patches)


def test_timeline_wants_one_run(writer_run):
    import os

    runs = load_runs(os.path.dirname(writer_run[1]))
    with pytest.raises(InvalidInputError, match="draws one run"):
        plot_timeline([*runs, *runs])


def test_rtt_of_a_real_ping(lab, tmp_path):
    requires(lab, "ping", "ping is not installed (apt-get install iputils-ping)")
    ax = plot_rtt(lab.ec)
    assert isinstance(ax, Axes) and len(ax.lines) == 1
    x, y = ax.lines[0].get_data()
    assert len(x) == 5 and x[0] == 0 and (y > 0).all()
    assert ax.get_xlabel() == "seconds since the first reply" and ax.get_ylabel() == "round-trip time (ms)"
    ax.figure.savefig(tmp_path / "rtt.png", dpi=80)


def test_rtt_from_frames(data):
    ax = plot_rtt(parse_ping((data / "ping_hostname.txt").read_bytes()))  # no timestamps: by sequence
    assert ax.get_xlabel() == "ICMP sequence number" and list(ax.lines[0].get_xdata()) == [1, 2, 3]
    ax = plot_rtt(parse_ping((data / "ping_unreachable.txt").read_bytes()))
    assert "3 lost or errors" in ax.get_legend().get_texts()[0].get_text()
    with pytest.raises(InvalidInputError, match="no 'rtt_ms' column"):
        plot_rtt(parse_iperf3((data / "iperf3_tcp_client.json").read_bytes()))


def test_throughput_of_a_real_iperf3(lab, tmp_path):
    requires(lab, "client", "iperf3 is not installed (apt-get install iperf3)")
    ax = plot_throughput(lab.ec)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    guid = lab.guids["client"]
    assert labels[-1] == f"resource {guid}, all streams" and len(labels) == 3
    frame = trace_frame(lab.ec, guid, "stdout")
    first = frame[frame["stream"] == frame["stream"].min()]
    x, y = ax.lines[0].get_data()
    assert x[0] == 0 and list(x[1:]) == first["end"].tolist()
    assert y[1:] == pytest.approx((first["bits_per_second"] / 1e6).tolist())
    assert ax.get_ylabel() == "throughput (Mbit/s)"
    ax.figure.savefig(tmp_path / "throughput.png", dpi=80)


def test_throughput_from_a_frame(data):
    ax = plot_throughput(parse_iperf3((data / "iperf3_udp_client.txt").read_bytes()))
    assert len(ax.lines) == 1  # one stream: no total


def test_measurement_plots_need_the_resources(writer_run):
    with pytest.raises(InvalidInputError, match="no linux::Ping resource"):
        plot_rtt(writer_run[0])
    with pytest.raises(InvalidInputError, match="no linux::Iperf3Client resource"):
        plot_throughput(writer_run[1])


def test_colours_are_the_notebook_ones():
    notebook = pytest.importorskip("nepi_lab.notebook")
    assert {ResourceState(s).name: c for s, c in notebook.STATE_COLORS.items()} == STATE_COLOURS


def test_timeline_keeps_outcomes_after_release_and_names_rows(tmp_path):
    from matplotlib.collections import PathCollection

    from nepi_lab import ExperimentController

    with ExperimentController(exp_id="outcomes", local_dir=str(tmp_path / "results")) as ec:
        ok = ec.register_resource("analysis_test::Writer", name="writer $HOME")
        bad = ec.register_resource("analysis_test::Writer", fail=True, critical=False)
        ec.deploy()
        ec.wait_finished([ok, bad], timeout=10)
        running = plot_timeline(ec)
        [dots] = [c for c in running.collections if isinstance(c, PathCollection)]
        assert RELEASED_RING not in {to_hex(c) for c in dots.get_edgecolor()}  # nothing released yet
    for source in (ec, load_run(ec.run_dir)):  # the outcome comes from the events: RELEASED's "from"
        ax = plot_timeline(source)
        labels = [t.get_text() for t in ax.get_yticklabels()]
        assert labels == [f"{ok}  writer $HOME \u00b7 analysis_test::Writer", f"{bad}  analysis_test::Writer"]
        [dots] = [c for c in ax.collections if isinstance(c, PathCollection)]
        faces = [to_hex(c) for c in dots.get_facecolor()]
        assert faces == [STATE_COLOURS["FINISHED"], STATE_COLOURS["FAILED"]]  # the outcomes, not grey
        assert {to_hex(c) for c in dots.get_edgecolor()} == {RELEASED_RING}  # the released mark
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert "released (grey ring)" in legend and "RELEASED" not in legend
        assert STATE_COLOURS["RELEASED"] not in bar_colours(ax)
