"""GraphView and draw(): colours follow states by themselves, cheaply, in both loop modes."""

from __future__ import annotations

import asyncio
import threading
import time
from types import SimpleNamespace

import pytest

from nepi_lab import ExperimentController
from nepi_lab.notebook import STATE_COLORS, GraphView, draw
from nepi_lab.notebook._schedule import Coalescer

from .helpers import wait_until


@pytest.fixture
def view_of():
    views = []

    def make(ec, **kwargs):
        view = GraphView(ec, **kwargs)
        views.append(view)
        return view

    yield make
    for view in views:
        view.close()


def test_colours_follow_the_states_without_any_call(ec, view_of):
    host = ec.register_resource("nbtest::Host")
    task = ec.register_resource("nbtest::Task", connectedTo=host)
    view = view_of(ec)
    assert view.colors == {host: STATE_COLORS[0], task: STATE_COLORS[0]}
    assert view.png.startswith(b"\x89PNG")
    ec.deploy()
    ec.wait_finished(timeout=10)
    assert wait_until(lambda: view.states == {host: "STARTED", task: "FINISHED"})
    assert view.colors == {host: STATE_COLORS[ec.state(host)], task: STATE_COLORS[ec.state(task)]}
    # only the node colours changed: the graph was drawn once, then recoloured
    assert view.full_draws == 1 and view.recolors >= 1
    expected = 'data-states="{&quot;1&quot;: &quot;STARTED&quot;, &quot;2&quot;: &quot;FINISHED&quot;}"'
    assert wait_until(lambda: expected in view.children[1].value)  # the caption, for browser tests


def test_recolouring_sets_face_colours_on_the_existing_artist(ec, view_of):
    task = ec.register_resource("nbtest::Task")
    view = view_of(ec)
    collection = view._drawing.nodes
    ec.deploy()
    ec.wait_finished(timeout=10)
    assert wait_until(lambda: view.states.get(task) == "FINISHED")
    assert view._drawing.nodes is collection  # the same PathCollection, recoloured in place
    assert view.colors[task] == STATE_COLORS[ec.state(task)]


def test_new_resources_do_not_move_the_old_ones(ec, view_of):
    nodes = [ec.register_resource("nbtest::Host") for _ in range(3)]
    ec.register_connection(nodes[0], nodes[1])
    view = view_of(ec)
    before = view.positions
    app = ec.register_resource("nbtest::Task", connectedTo=nodes[2])
    lone = ec.register_resource("nbtest::Task")
    assert wait_until(lambda: set(view.states) == {*nodes, app, lone})
    after = view.positions
    assert {g: after[g] for g in before} == before
    assert view.full_draws == 2


def test_connections_and_conditions_appear_on_refresh(ec, view_of):
    a = ec.register_resource("nbtest::Task")
    b = ec.register_resource("nbtest::Task")
    view = view_of(ec)
    before = view.positions
    ec.register_connection(a, b)
    ec.register_condition(b, "START", a, "FINISHED", "20ms")
    view.update()
    from matplotlib.collections import LineCollection
    from matplotlib.patches import FancyArrowPatch

    assert any(isinstance(c, LineCollection) for c in view.ax.collections)
    arrows = [p for p in view.ax.patches if isinstance(p, FancyArrowPatch)]
    assert len(arrows) == 1 and arrows[0].get_linestyle() == "--"
    assert any("START after FINISHED" in t.get_text() for t in view.ax.texts)
    assert view.positions == before
    full = view.full_draws
    view.update()  # nothing changed: no new drawing
    assert view.full_draws == full


def test_a_removed_resource_leaves_the_picture(ec, view_of):
    keep = ec.register_resource("nbtest::Task")
    gone = ec.register_resource("nbtest::Task", hardRelease=True)
    view = view_of(ec)
    ec.deploy()
    ec.wait_finished(timeout=10)
    ec.release(gone)
    assert wait_until(lambda: gone not in view.states and view.states.get(keep) == "FINISHED")


def test_display_bundle_has_the_widget_and_a_static_png(ec, view_of):
    ec.register_resource("nbtest::Host")
    view = view_of(ec)
    bundle = view._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["image/png"]  # shown by viewers without widgets (nbviewer, GitHub)
    assert "GraphView" in bundle["text/plain"]


def test_draw_returns_axes_with_legend_conditions_and_labels(ec):
    host = ec.register_resource("nbtest::Host")
    task = ec.register_resource("nbtest::Task", connectedTo=host)
    ec.register_condition(task, "START", host, "STARTED", "1s")
    ax = draw(ec)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["NEW", "connection", "condition"]  # only what the drawing holds
    texts = [t.get_text() for t in ax.texts]
    assert "START after STARTED +1 s" in texts
    assert "1 Host" in texts and "2 Task" in texts
    # the arrow's direction, said once in words
    assert any(t.startswith("arrow A \u2192 B: B waits for A") and "B starts 1 s after A reached STARTED" in t
               for t in texts)
    assert ec.draw().figure is not None  # the controller's thin delegation


def test_the_legend_follows_the_outcomes_present(ec, view_of):
    task = ec.register_resource("nbtest::Task")
    bad = ec.register_resource("nbtest::Task", fail=True, critical=False)
    view = view_of(ec)
    assert [t.get_text() for t in view.ax.get_legend().get_texts()] == ["NEW"]
    ec.deploy()
    ec.wait_finished(timeout=10)
    assert wait_until(lambda: view.outcomes == {task: "FINISHED", bad: "FAILED"})
    assert [t.get_text() for t in view.ax.get_legend().get_texts()] == ["FINISHED", "FAILED"]
    ec.shutdown()
    view.update()  # in a script the controller's loop, which ran the view's timer, is gone now
    assert view.released == {task, bad}
    legend = [t.get_text() for t in view.ax.get_legend().get_texts()]
    assert legend[:2] == ["FINISHED", "FAILED"] and legend[2].startswith("released")
    assert view.full_draws == 1  # the legend is redrawn with the dots, not the whole graph


def test_names_label_the_resources(ec, view_of):
    server = ec.register_resource("nbtest::Host", name="server")
    client = ec.register_resource("nbtest::Task", connectedTo=server, name="client $HOME 1")
    view = view_of(ec)
    texts = {t.get_text() for t in view.ax.texts}
    assert {"server", "client $HOME 1"} <= texts  # names, typeset as written (no maths)
    assert all(not t.get_parse_math() for t in view.ax.texts if t.get_text() in ("server", "client $HOME 1"))
    ec.set(client, "name", "client 2")
    view.update()  # a new name is a new drawing
    assert "client 2" in {t.get_text() for t in view.ax.texts} and view.full_draws == 2
    assert {t.get_text() for t in draw(ec).texts} >= {"server", "client 2"}
def test_coalescing_caps_updates_at_ten_a_second():
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        seen = []
        scheduler = SimpleNamespace(
            call_later=lambda delay, callback: loop.call_soon_threadsafe(loop.call_later, delay, callback))
        coalescer = Coalescer(lambda: seen.append(time.monotonic()), scheduler, interval=0.1)
        start = time.monotonic()
        requests = 0
        while time.monotonic() - start < 0.5:  # a storm of requests from another thread
            coalescer.request()
            requests += 1
        last_request = time.monotonic()
        assert wait_until(lambda: seen and seen[-1] > last_request, timeout=1)  # the last change is shown
        assert requests > 1000
        assert 2 <= len(seen) <= 6, seen
        gaps = [b - a for a, b in zip(seen, seen[1:], strict=False)]
        assert min(gaps) >= 0.095
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_updates_run_in_the_view_thread_also_during_a_blocking_call(tmp_path):
    """A view made inside a running loop (a kernel) touches its widgets only in that
    thread: while the loop is idle, and while a cell blocks in a synchronous call."""
    ec = ExperimentController(local_dir=str(tmp_path))
    try:
        async def main():
            host = ec.register_resource("nbtest::Host")
            task = ec.register_resource("nbtest::Task", connectedTo=host)
            view = GraphView(ec)
            updates = []
            update = view._subscription.coalescer._callback
            shown = []  # (when, what the view shows then)

            def traced() -> None:
                updates.append((threading.get_ident(), time.monotonic()))
                update()
                shown.append((time.monotonic(), dict(view.states)))

            view._subscription.coalescer._callback = traced
            ec.deploy()
            for _ in range(500):  # idle: the loop runs the updates
                await asyncio.sleep(0.01)
                if view.states == {host: "STARTED", task: "FINISHED"}:
                    break
            idle = view.states
            slow = ec.register_resource("nbtest::Task", connectedTo=host, seconds=0.6)
            ec.deploy()
            began = time.monotonic()
            ec.wait_finished(slow, timeout=10)  # blocks this thread (and its loop)
            ended = time.monotonic()
            during = [states.get(slow) for t, states in shown if began < t < ended]
            view.close()
            return idle, {thread for thread, _ in updates}, during

        idle, threads, during = asyncio.run(main())
        assert idle == {1: "STARTED", 2: "FINISHED"}
        assert threads == {threading.get_ident()}
        assert "STARTED" in during  # the view kept following while the call blocked
    finally:
        ec.shutdown()
