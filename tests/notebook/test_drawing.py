"""draw() and GraphView as a person reads them: outcomes after release, names, and a
drawing that uses its canvas and keeps its labels apart, at 1, 10 and 100 resources
(and grouped by type beyond)."""

from __future__ import annotations

import itertools

import matplotlib.pyplot as plt
import pytest
from matplotlib.collections import PathCollection
from matplotlib.colors import to_hex
from matplotlib.patches import FancyArrowPatch
from matplotlib.path import Path

from nepi_lab import ResourceState
from nepi_lab.notebook import STATE_COLORS, GraphView, draw
from nepi_lab.notebook.drawing import GROUP_LIMIT

S = ResourceState
RING = STATE_COLORS[S.RELEASED]


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def build(ec, n, fail_every=7):
    """``n`` resources: a host per ten, named tasks on them, a chain of three conditions."""
    hosts = [ec.register_resource("nbtest::Host", name=f"host {i + 1}") for i in range(max(1, n // 10))]
    tasks = []
    while len(ec.resources) < n:
        k = len(tasks)
        tasks.append(ec.register_resource("nbtest::Task", connectedTo=hosts[k % len(hosts)], seconds=0.01,
                                          name=f"client {k + 1}", fail=k % fail_every == 3, critical=False))
    for a, b in zip(tasks[:3], tasks[1:4], strict=False):
        ec.register_condition(b, "START", a, "FINISHED", "2s")
    return hosts, tasks


def dots(ax):
    [collection] = [c for c in ax.collections if isinstance(c, PathCollection)]
    return collection


def label_texts(ax):
    """The labels on the graph: every text but the title (top) and the caption (bottom)."""
    return [t for t in ax.texts if t.get_transform() is ax.transData]


def extents(figure, texts):
    renderer = figure.canvas.get_renderer()
    return [t.get_window_extent(renderer) for t in texts]


def overlap(a, b):
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def check_readable(ax):
    """Labels stay inside, off each other, off the dots and off the arrows; the
    drawing fills the canvas.  Returns the labels drawn."""
    figure = ax.figure
    figure.canvas.draw()
    texts = label_texts(ax)
    boxes = extents(figure, texts)
    canvas = ax.bbox
    for text, box in zip(texts, boxes, strict=True):
        assert text.get_fontsize() >= 8.5, text  # 12 pixels at 100 dpi, not 7 or 8
        assert canvas.x0 <= box.x0 and box.x1 <= canvas.x1 and canvas.y0 <= box.y0 and box.y1 <= canvas.y1
    for (t1, a), (t2, b) in itertools.combinations(zip(texts, boxes, strict=True), 2):
        assert not overlap(a, b), (t1.get_text(), t2.get_text())
    collection = dots(ax)
    centres = ax.transData.transform(collection.get_offsets())
    radius = (collection.get_sizes()[0] ** 0.5) / 2 * figure.dpi / 72
    for text, box in zip(texts, boxes, strict=True):
        for x, y in centres:
            assert not (box.x0 < x + radius and x - radius < box.x1 and box.y0 < y + radius
                        and y - radius < box.y1), (text.get_text(), x, y)
    for arrow in (p for p in ax.patches if isinstance(p, FancyArrowPatch)):
        # the arc and the head, as polylines in pixels (to_polygons drops the CLOSEPOLY markers)
        for polyline in arrow.get_path().to_polygons(ax.transData, closed_only=False):
            path = Path(polyline)
            for text, box in zip(texts, boxes, strict=True):
                assert not path.intersects_bbox(box, filled=False), (text.get_text(), "on an arrow")
    return texts, centres


@pytest.mark.parametrize("n", [1, 10, 100])
def test_readable_at_1_10_and_100_resources(ec, n):
    hosts, tasks = build(ec, n)
    ax = draw(ec)
    texts, centres = check_readable(ax)
    shown = {t.get_text() for t in texts}
    names = {ec.get_resource(g).name for g in ec.resources}
    assert len(centres) == n  # one dot per resource
    if n <= 10:
        assert names <= shown  # every resource named
    else:
        labelled = len(names & shown)
        assert labelled >= 0.75 * n and {f"host {i + 1}" for i in range(len(hosts))} <= shown
        caption = [t.get_text() for t in ax.texts if "left out for room" in t.get_text()]
        assert caption == [] if labelled == n else f"{n - labelled} names" in caption[0]  # counted, said
    if n >= 10:  # the drawing uses the canvas: at least 80 % of its width and 60 % of its height
        width, height = ax.bbox.width, ax.bbox.height
        assert centres[:, 0].max() - centres[:, 0].min() >= 0.8 * width
        assert centres[:, 1].max() - centres[:, 1].min() >= 0.6 * height
        captions = [t.get_text() for t in ax.texts if t.get_text().startswith("arrow A \u2192 B")]
        assert captions == [captions[0]] and "B starts 2 s after A reached FINISHED" in captions[0]
    else:
        assert dots(ax).get_sizes()[0] >= 20**2  # a single resource gets a big dot


def test_beyond_the_limit_resources_are_grouped_by_type(ec):
    n = GROUP_LIMIT + 50
    build(ec, n)
    ax = draw(ec)
    assert not [c for c in ax.collections if isinstance(c, PathCollection)]  # no dot per resource
    texts = [t.get_text() for t in ax.texts]
    hosts, tasks = n // 10, n - n // 10
    assert f"Host \u00d7{hosts}" in texts and f"Task \u00d7{tasks}" in texts
    assert f"NEW {hosts}" in texts and f"NEW {tasks}" in texts  # a count per state
    assert f"{tasks} connections" in texts and "3 conditions among Task" in " ".join(texts)
    ec.deploy()
    ec.wait_finished(timeout=30)
    ec.shutdown()
    ax = draw(ec)
    texts = [t.get_text() for t in ax.texts]
    failed = sum(1 for g in ec.resources if ec.get_resource(g).outcome == S.FAILED)
    assert failed and f"FAILED {failed}" in texts and f"FINISHED {tasks - failed}" in texts
    assert f"STOPPED {hosts}" in texts
    assert f"released {tasks}" in texts and f"released {hosts}" in texts  # the mark beside the counts
    # each count is a badge of its outcome's colour
    badge = next(t for t in ax.texts if t.get_text() == f"FAILED {failed}")
    assert to_hex(badge.get_bbox_patch().get_facecolor()) == STATE_COLORS[S.FAILED]


def test_grouped_live_view_recolours_without_drawing_again(ec):
    build(ec, GROUP_LIMIT + 20)
    view = GraphView(ec)
    try:
        assert view.grouped and view.full_draws == 1
        ec.deploy()
        ec.wait_finished(timeout=30)
        ec.shutdown()
        view.update()
        assert view.full_draws == 1 and view.recolors >= 1
        assert set(view.outcomes.values()) == {"STOPPED", "FINISHED", "FAILED"}
        assert view.released == set(ec.resources)
    finally:
        view.close()


def outcome_run(ec):
    """A host, a task that finishes, one that fails, one that is stopped; then everything released."""
    host = ec.register_resource("nbtest::Host", name="server")
    done = ec.register_resource("nbtest::Task", connectedTo=host, name="done")
    bad = ec.register_resource("nbtest::Task", connectedTo=host, name="bad", fail=True, critical=False)
    stopped = ec.register_resource("nbtest::Task", connectedTo=host, name="stopped", seconds=30)
    ec.deploy()
    ec.wait_finished([done, bad], timeout=10)
    ec.wait_started(stopped, timeout=10)
    ec.stop(stopped)
    ec.wait(stopped, S.STOPPED, timeout=10)
    ec.shutdown()
    expected = {host: S.STOPPED, done: S.FINISHED, bad: S.FAILED, stopped: S.STOPPED}
    assert {g: ec.get_resource(g).outcome for g in expected} == expected
    assert all(ec.state(g) == S.RELEASED for g in expected)
    return expected


def test_outcome_colours_survive_release_in_draw(ec):
    expected = outcome_run(ec)
    ax = draw(ec)
    collection = dots(ax)
    faces = [to_hex(c) for c in collection.get_facecolor()]
    assert faces == [STATE_COLORS[expected[g]] for g in ec.resources]  # the outcome, not RELEASED grey
    assert STATE_COLORS[S.RELEASED] not in faces
    assert {to_hex(c) for c in collection.get_edgecolor()} == {RING}  # released: the grey ring
    assert min(collection.get_linewidths()) >= 1.6
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[:3] == ["STOPPED", "FINISHED", "FAILED"] and legend[3].startswith("released (grey ring")
    assert "RELEASED" not in legend


def test_outcome_colours_survive_release_in_the_live_graph(ec):
    task = ec.register_resource("nbtest::Task", name="t")
    view = GraphView(ec)
    try:
        first = dots(view.ax)
        assert to_hex(first.get_edgecolor()[0]) != RING
        ec.deploy()
        ec.wait_finished(timeout=10)
        ec.shutdown()
        view.update()  # in a script the controller's loop, which ran the view's timer, is gone now
        assert view.states == {task: "RELEASED"} and view.outcomes == {task: "FINISHED"}
        assert view.colors == {task: STATE_COLORS[S.FINISHED]} and view.released == {task}
        assert dots(view.ax) is first  # recoloured in place: ring colour and width on the same artist
        assert to_hex(first.get_edgecolor()[0]) == RING
        caption = view.children[1].value
        assert 'data-outcomes="{&quot;1&quot;: &quot;FINISHED&quot;}"' in caption
        assert 'data-released="[1]"' in caption and "released 1" in caption
        assert view.full_draws == 1
    finally:
        view.close()
