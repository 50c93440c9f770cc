"""The live view of a sweep, on real sweeps of localhost applications: each run's square
in its state's colour (a failure's tooltip says why), the counts and the estimate of the
time left; following a sweep run in the background and one blocking the thread of a
loop (a kernel's) from that thread; coalesced; silent once closed; the same table as a
static fallback and as the sweep's own HTML."""

from __future__ import annotations

import asyncio
import functools
import html
import json
import os
import threading
import time
from html.parser import HTMLParser

import pytest

from nepi_lab import Sweep, load_sweep
from nepi_lab.notebook import SWEEP_STATE_COLORS, SweepView, sweep_html, sweep_view
from nepi_lab.notebook._static import WIDGET_VIEW

from ...guards import wait_until
from ...runner.builds import echo


class Table(HTMLParser):
    """What a sweep's HTML shows: the counts, and per point its labels and its squares."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.counts: dict[str, int] = {}
        self.eta: list[str] = []
        self.rows: dict[int, dict[str, list]] = {}
        self._row: int | None = None
        self._cell: dict | None = None
        self._in_eta = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "data-counts" in attrs:
            self.counts = json.loads(attrs["data-counts"])
        if attrs.get("class") == "nepi-sweep-eta":
            self._in_eta = True
        if tag == "tr" and "data-point" in attrs:
            self._row = int(attrs["data-point"])
            self.rows[self._row] = {"labels": [], "runs": []}
        elif tag == "td" and self._row is not None:
            self._cell = {"attrs": attrs, "text": ""}

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data
        if self._in_eta:
            self.eta.append(data)

    def handle_endtag(self, tag):
        if tag == "span":
            self._in_eta = False
        if tag == "td" and self._cell is not None:
            attrs = self._cell["attrs"]
            if "data-state" in attrs:
                self.rows[self._row]["runs"].append(attrs)
            else:
                self.rows[self._row]["labels"].append(self._cell["text"])
            self._cell = None
        elif tag == "tr":
            self._row = None


def states(view_or_html) -> dict[tuple[int, int], str]:
    """(point, repetition) -> the state its square shows."""
    table = Table(view_or_html if isinstance(view_or_html, str) else view_or_html.value)
    return {(p, r): cell["data-state"] for p, row in table.rows.items() for r, cell in enumerate(row["runs"])}


def recorded(sweep) -> dict[tuple[int, int], str]:
    return {(e["point"], e["repetition"]): e["state"] for e in sweep.runs}


def test_each_run_in_its_state_a_failure_says_why_and_the_counts(tmp_path, home):
    # n=1/a finishes; the word "bad" makes build() raise; n=3 makes the application fail
    sweep = Sweep(functools.partial(echo, home=home), {"n": [1, 3], "word": ["a", "bad"]}, repetitions=2,
                  exp_id="shown", results=tmp_path / "results")
    view = sweep.view()
    try:
        assert isinstance(view, SweepView)
        before = Table(view.value)
        assert before.counts == {"done": 0, "failed": 0, "running": 0, "pending": 8, "left": 8}
        assert set(states(view).values()) == {"pending"} and before.eta == []
        assert sweep.run() == 8
        assert wait_until(lambda: Table(view.value).counts["left"] == 0)
        table = Table(view.value)
        assert table.counts == {"done": 2, "failed": 6, "running": 0, "pending": 0, "left": 0}
        assert view.counts() == table.counts
        assert "2 done" in view.value and "6 failed" in view.value
        # rows labelled with the point's values, in the sweep's order; one square per repetition
        assert [row["labels"] for row in table.rows.values()] == [["1", "a"], ["1", "bad"], ["3", "a"],
                                                                  ["3", "bad"]]
        assert states(view) == recorded(sweep)
        runs = {(e["point"], e["repetition"]): e for e in sweep.runs}
        for point, row in table.rows.items():
            for repetition, cell in enumerate(row["runs"]):
                entry = runs[(point, repetition)]
                assert f"background:{SWEEP_STATE_COLORS[entry['state']]}" in cell["style"]
                assert cell["title"].startswith(f"repetition {repetition}: {entry['state']} in ")
                if entry["state"] == "failed":
                    assert entry["failure"] and entry["failure"][:100] in cell["title"], cell["title"]
                if entry["run_dir"]:
                    assert cell["title"].endswith("\n" + entry["run_dir"])
        bad = table.rows[1]["runs"][0]["title"]
        assert "no experiment for the word 'bad'" in bad, bad
    finally:
        view.close()


def test_follows_a_background_sweep_with_an_estimate_then_stops_when_closed(tmp_path, home):
    sweep = Sweep(functools.partial(echo, home=home, seconds=0.3), {"n": [1, 2], "word": ["a"]},
                  repetitions=2, exp_id="background", results=tmp_path / "results")
    view = sweep_view(sweep)
    seen = []
    try:
        task = sweep.start()
        while not task.done():
            shown = Table(view.value)
            if not seen or (shown.counts, shown.eta) != seen[-1]:
                seen.append((shown.counts, shown.eta))
            time.sleep(0.01)
        assert task.wait() == 4
        assert wait_until(lambda: Table(view.value).counts["done"] == 4)
        done = [counts["done"] for counts, _ in seen]
        assert done == sorted(done) and {0, 1, 2, 3} <= set(done), seen  # it followed each run
        assert any(counts["running"] == 1 for counts, _ in seen)
        # an estimate once a run ended and another is being made; none before, none at the end
        estimates = [eta for counts, eta in seen if eta]
        assert estimates and all(counts["done"] >= 1 for counts, eta in seen if eta), seen
        assert all("".join(eta).endswith(" s left") for eta in estimates), estimates
        assert Table(view.value).eta == []
        assert set(states(view).values()) == {"done"}
    finally:
        view.close()
    # closed: the view no longer follows (it unsubscribed), the sweep goes on without it
    shown = view.value
    again = Sweep(functools.partial(echo, home=home), {"n": [1, 2], "word": ["a"]}, repetitions=3,
                  exp_id="background", results=tmp_path / "results")
    assert again.run() == 2
    time.sleep(0.3)
    assert view.value == shown and view.frozen
    assert sweep._listeners == []


def test_updates_are_coalesced(tmp_path, home):
    sweep = Sweep(functools.partial(echo, home=home), {"n": [1, 2, 4, 5], "word": ["a", "b"]},
                  exp_id="coalesced", results=tmp_path / "results")
    changes = []
    unsubscribe = sweep.subscribe(lambda s: changes.append(time.monotonic()))
    view = SweepView(sweep, interval=0.5)
    try:
        started = time.monotonic()
        sweep.run(max_parallel=4)
        took = time.monotonic() - started
        assert wait_until(lambda: Table(view.value).counts["done"] == 8)
        calls = view._subscription.coalescer.calls
        # 1 at the start, then at most one per interval however many changes came (the last
        # one up to an interval after the sweep ended; one more for rounding)
        assert len(changes) >= 16 and calls <= 4 + took / 0.5, (len(changes), calls, took)
    finally:
        unsubscribe()
        view.close()


class ThreadSpy(SweepView):
    """Notes the thread of every update and what it showed."""

    def __init__(self, *args, **kwargs):
        self.updates: list[tuple[int, dict[str, int]]] = []
        super().__init__(*args, **kwargs)

    def _update(self) -> None:
        super()._update()
        self.updates.append((threading.get_ident(), Table(self.value).counts))


def test_updated_in_the_loop_thread_idle_or_blocked_in_run(tmp_path, home):
    """As in a Jupyter kernel: a view made in a thread that runs a loop is updated only
    there, while the loop is free (sweep.start()) and while it is blocked in sweep.run()."""
    build = functools.partial(echo, home=home, seconds=0.2)

    async def main():
        loop_thread = threading.get_ident()
        background = Sweep(build, {"n": [1, 2], "word": ["a"]}, repetitions=2, exp_id="idle",
                           results=tmp_path / "results")
        idle = ThreadSpy(background)
        task = background.start()
        while not task.done():
            await asyncio.sleep(0.02)  # the loop is free, as a kernel between cells
        await asyncio.sleep(0.3)
        blocking = Sweep(build, {"n": [1, 2], "word": ["a"]}, repetitions=2, exp_id="blocked",
                         results=tmp_path / "results")
        blocked = ThreadSpy(blocking)
        made = blocking.run()  # blocks this thread, as a cell does
        during = list(blocked.updates)
        for view in (idle, blocked):
            view.close()
        return loop_thread, task.wait(), made, idle.updates, during

    loop_thread, made_idle, made_blocked, idle, during = asyncio.run(main())
    assert made_idle == made_blocked == 4
    for updates in (idle, during):
        assert {thread for thread, _ in updates} == {loop_thread}
        done = [counts["done"] for _, counts in updates]
        assert len(set(done)) >= 3 and done == sorted(done), updates  # it followed the runs
    # while run() blocked, the view showed runs in progress
    assert any(counts["running"] for _, counts in during), during


def test_static_fallback_and_the_sweeps_own_html_show_the_same_table(tmp_path, home):
    sweep = Sweep(functools.partial(echo, home=home), {"n": [1, 3], "word": ["a"]}, exp_id="static",
                  results=tmp_path / "results")
    sweep.run()
    view = sweep.view()
    try:
        bundle = view._repr_mimebundle_()
        assert WIDGET_VIEW in bundle and bundle["text/html"] == view.value == sweep_html(sweep)
        assert sweep._repr_html_() == view.value
        assert html.escape("<SweepView of <Sweep static") in html.escape(bundle["text/plain"])
        loaded = load_sweep(sweep.path)  # no build: it cannot run, it still shows
        assert states(loaded._repr_html_()) == recorded(sweep) == {(0, 0): "done", (1, 0): "failed"}
    finally:
        view.close()


def test_a_thousand_runs_make_one_widget_and_one_modest_string(tmp_path):
    sweep = Sweep(lambda ec, a, b: None, {"a": list(range(100)), "b": list(range(5))}, repetitions=2,
                  exp_id="big", results=tmp_path / "results")
    view = SweepView(sweep)
    try:
        assert getattr(view, "children", ()) == ()
        shown = states(view)
        assert len(shown) == 1000 and set(shown.values()) == {"pending"}
        # bytes sent per update: about 120 a run (inline styles on every square gave 200 and more)
        assert len(view.value) < 128 * 1000
    finally:
        view.close()


def test_an_executed_notebook_keeps_the_views_last_frame(tmp_path, monkeypatch, kernel_name):
    """nbclient (nbconvert --execute): the view is shown before the sweep starts in the
    background; the cell that waits for it ends after the last run, and the view's output
    (what nbconvert's HTML and GitHub show) holds the final table, not the all-pending one."""
    nbformat = pytest.importorskip("nbformat", reason="the test extra installs nbformat")
    nbclient = pytest.importorskip("nbclient", reason="the test extra installs nbclient")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # the kernel's linux::Node keeps its folders under ~
    os.makedirs(tmp_path / "home")
    monkeypatch.setenv("NEPI_LAB_RESULTS", str(tmp_path / "results"))
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in (
        "from nepi_lab import Sweep\n"
        "def build(ec, n):\n"
        "    node = ec.register_resource('linux::Node', hostname='localhost')\n"
        "    ec.register_resource('linux::Application', connectedTo=node, command=f'sleep 0.2; exit {n}')\n"
        "sweep = Sweep(build, {'n': [0, 1]}, repetitions=2, exp_id='executed')\n"
        "sweep.view()",
        "task = sweep.start()",
        "task.wait()",
    )])
    nbclient.NotebookClient(nb, timeout=60, kernel_name=kernel_name,
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    (shown,) = [o for o in nb.cells[0].outputs if o.get("output_type") == "display_data"]
    table = Table(shown["data"]["text/html"])
    assert table.counts == {"done": 2, "failed": 2, "running": 0, "pending": 0, "left": 0}
    assert states(shown["data"]["text/html"]) == {(0, 0): "done", (0, 1): "done",
                                                 (1, 0): "failed", (1, 1): "failed"}
    assert WIDGET_VIEW in shown["data"] and nb.cells[2].outputs[0]["data"]["text/plain"] == "4"
