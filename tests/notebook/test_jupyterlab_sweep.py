"""A sweep's live view in a real JupyterLab, in Chromium, following a sweep started in
the background while the kernel is idle.

The notebook shows ``sweep.view()`` and starts the sweep with ``sweep.start()``; after
"Restart Kernel and Run All Cells" every cell has ended and the kernel is idle, yet the
view in the page goes on changing: its counts grow and its squares change colour, run
after run, until every run is done or failed (those of the point whose application
fails are red, and their tooltip says why).

Screenshots of the view, during the sweep and at its end, are kept in the test's
temporary folder and, with ``NEPI_LAB_SCREENSHOTS=<folder>``, there too
(``sweep-view-running.png``, ``sweep-view-ended.png``).
"""

from __future__ import annotations

import time

import pytest

from .jupyterlab import keep_screenshot, missing, served_notebooks, write_notebook

if missing():
    pytest.skip(missing(), allow_module_level=True)

pytestmark = pytest.mark.slow

#: The squares' colours as the browser computes them (SWEEP_STATE_COLORS).
RGB = {"pending": "rgb(224, 224, 224)", "running": "rgb(30, 136, 229)", "done": "rgb(67, 160, 71)",
       "failed": "rgb(229, 57, 53)"}

SETUP = """
from nepi_lab import Sweep

def build(ec, n, word):
    node = ec.register_resource("linux::Node", hostname="localhost")
    fail = "; exit 3" if word == "bad" else ""
    ec.register_resource("linux::Application", connectedTo=node, command=f"sleep 0.3; echo {n} {word}{fail}")

sweep = Sweep(build, {"n": [1, 2], "word": ["a", "bad"]}, repetitions=3, exp_id="lab-sweep")
view = sweep.view()
view
"""

START = """
task = sweep.start()
"""

#: What the page shows of the view: the counts, each square's state and colour, a
#: failed square's tooltip, and the kernel's status.
READ_JS = """(id) => {
    const view = document.querySelector('.nepi-sweep-view');
    let status = null;
    for (const w of window.jupyterapp.shell.widgets('main')) {
        if (w.id === id) { const k = w.sessionContext.session.kernel; status = k && k.status; }
    }
    if (!view) return {status, counts: null, squares: []};
    const counts = view.querySelector('.nepi-sweep-counts');
    const squares = Array.from(view.querySelectorAll('td[data-state]')).map(td => ({
        state: td.dataset.state, color: getComputedStyle(td).backgroundColor, title: td.title,
        point: Number(td.parentElement.dataset.point),
        repetition: Array.from(td.parentElement.querySelectorAll('td[data-state]')).indexOf(td)}));
    return {status, counts: counts && JSON.parse(counts.dataset.counts), squares};
}"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory, kernel_name):
    with served_notebooks(tmp_path_factory.mktemp("lab"), [], kernel=kernel_name) as lab:
        yield lab


def test_the_view_follows_a_background_sweep_while_the_kernel_is_idle(lab, kernel_name, tmp_path):
    notebook = lab.open(write_notebook(lab, "sweep-view.ipynb", kernel_name, SETUP, START))
    notebook.clear_outputs()
    notebook.command("notebook:restart-run-all", wait=False)
    lab.accept_dialog()
    problems = notebook.watch_settled(cell_seconds=60)
    assert not problems and notebook.counts() == [1, 2], problems
    assert notebook.errors() == []

    page = lab.page
    samples = []  # what the page showed, while every cell had ended
    screenshot_taken = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        shown = page.evaluate(READ_JS, notebook.id)
        samples.append(shown)
        counts = shown["counts"]
        if counts and counts["running"] and counts["done"] >= 2 and not screenshot_taken:
            keep_screenshot(page.locator(".nepi-sweep-view"), tmp_path, "sweep-view-running.png")
            screenshot_taken = True
        if counts and counts["left"] == 0:
            break
        page.wait_for_timeout(50)
    final = samples[-1]
    assert final["counts"] == {"done": 6, "failed": 6, "running": 0, "pending": 0, "left": 0}, final

    # it changed while the kernel was idle: the cells had ended, the sweep went on
    idle = [s for s in samples if s["status"] == "idle" and s["counts"]]
    assert len(idle) >= len(samples) * 0.9, [s["status"] for s in samples]
    made = [s["counts"]["done"] + s["counts"]["failed"] for s in idle]
    assert made == sorted(made) and len(set(made)) >= 6, made
    colours = {tuple(square["color"] for square in s["squares"]) for s in idle}
    assert len(colours) >= 6
    assert any(RGB["running"] in c for c in colours) and any(RGB["pending"] in c for c in colours)
    assert notebook.counts() == [1, 2]  # and no cell ran meanwhile

    # the end: each square in its outcome's colour; the failing point's say why
    page.wait_for_timeout(300)
    final = page.evaluate(READ_JS, notebook.id)
    assert final["status"] == "idle" and len(final["squares"]) == 12
    for square in final["squares"]:
        failing = square["point"] in (1, 3)  # word "bad": its application exits with status 3
        assert square["state"] == ("failed" if failing else "done"), square
        assert square["color"] == RGB[square["state"]], square
        if failing:
            assert f"repetition {square['repetition']}: failed in " in square["title"], square
            assert "exited with status 3" in square["title"], square
    keep_screenshot(page.locator(".nepi-sweep-view"), tmp_path, "sweep-view-ended.png")
    assert screenshot_taken
