"""A lab's ChecksView in a real JupyterLab, in Chromium, filling in while the kernel is idle.

The notebook shows the view, then deploys; after "Restart Kernel and Run All Cells"
every cell has ended, yet the rows in the page go on changing: the ping's rows turn
green first, then the application that says hello, then the one that fails (red); a
check of a trace the type does not declare cannot be evaluated (amber) and one of a
resource nobody registered stays pending (grey) while the experiment runs.

A screenshot of the view at the end is kept in the test's temporary folder and, with
``NEPI_LAB_SCREENSHOTS=<folder>``, there too (``checks-view.png``).
"""

from __future__ import annotations

import time

import pytest

from .jupyterlab import keep_screenshot, missing, served_notebooks, write_notebook

if missing():
    pytest.skip(missing(), allow_module_level=True)

pytestmark = pytest.mark.slow

#: The badges' colours as the browser computes them (STATUS_COLORS).
RGB = {"passed": "rgb(67, 160, 71)", "failed": "rgb(229, 57, 53)", "cannot-evaluate": "rgb(251, 140, 0)",
       "pending": "rgb(224, 224, 224)"}

SETUP = """
from nepi_lab import ChecksView, ExperimentController
from nepi_lab.lab import ExitStatus, Lab, Reachable, RttBound, State, TraceContains

ec = ExperimentController(exp_id="checks-view")
node = ec.register_resource("linux::Node", hostname="localhost")
ec.register_resource("linux::Ping", connectedTo=node, target="127.0.0.1", count=3, interval=0.2, name="ping")
ec.register_resource("linux::Application", connectedTo=node, name="hello",
                     command="sleep 1.5; echo hello world", critical=False)
ec.register_resource("linux::Application", connectedTo=node, name="broken", command="sleep 3; exit 3",
                     critical=False)
lab = Lab([State("ping"), Reachable("ping", max_loss=0, points=2), RttBound("ping", max_ms=10),
           TraceContains("hello", text="world"), ExitStatus("broken"),
           TraceContains("hello", text="x", trace="nosuch", name="hello nosuch trace"),
           State("server")], title="Lab 0")
view = ChecksView(ec, lab)
view
"""

DEPLOY = """
ec.deploy()
"""

READ_JS = """() => {
    const view = document.querySelector('.nepi-checks');
    if (!view) return null;
    const total = view.querySelector('.nepi-checks-total');
    return {total: total && JSON.parse(total.dataset.total),
            rows: Array.from(view.querySelectorAll('tr[data-status]')).map(tr => ({
                check: tr.dataset.check, status: tr.dataset.status, title: tr.title,
                observed: tr.querySelector('.nepi-check-observed').textContent,
                color: getComputedStyle(tr.querySelector('.nepi-check-status')).backgroundColor}))};
}"""

FINAL = {"ping reaches FINISHED": "passed", "ping loses at most 0 % of packets": "passed",
         "ping mean RTT at most 10 ms": "passed", "hello stdout contains 'world'": "passed",
         "broken exits with status 0": "failed", "hello nosuch trace": "cannot-evaluate",
         "server reaches FINISHED": "pending"}


@pytest.fixture(scope="module")
def lab(tmp_path_factory, kernel_name):
    with served_notebooks(tmp_path_factory.mktemp("lab"), [], kernel=kernel_name) as lab:
        yield lab


def test_the_rows_turn_green_and_red_while_the_kernel_is_idle(lab, kernel_name, tmp_path):
    notebook = lab.open(write_notebook(lab, "checks-view.ipynb", kernel_name, SETUP, DEPLOY))
    notebook.clear_outputs()
    notebook.command("notebook:restart-run-all", wait=False)
    lab.accept_dialog()
    problems = notebook.watch_settled(cell_seconds=60)
    assert not problems and notebook.counts() == [1, 2], problems
    assert notebook.errors() == []

    page = lab.page
    samples = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        shown = page.evaluate(READ_JS)
        if shown:
            samples.append({r["check"]: r["status"] for r in shown["rows"]})
            if samples[-1]["broken exits with status 0"] != "pending":
                break
        page.wait_for_timeout(50)
    final = page.evaluate(READ_JS)
    statuses = {r["check"]: r["status"] for r in final["rows"]}
    assert statuses == FINAL, statuses
    # they changed one after the other, while no cell ran
    assert notebook.counts() == [1, 2]
    assert any(s["hello stdout contains 'world'"] == "pending" for s in samples)
    assert any(s["hello stdout contains 'world'"] == "passed" and s["broken exits with status 0"] == "pending"
               for s in samples), samples
    for row in final["rows"]:
        assert row["color"] == RGB[row["status"]], row
    rows = {r["check"]: r for r in final["rows"]}
    assert rows["broken exits with status 0"]["observed"] == "3"
    assert "(broken) exited with status 3" in rows["broken exits with status 0"]["title"]
    assert rows["ping loses at most 0 % of packets"]["observed"] == "0"
    assert final["total"] == {"points": 5, "max_points": 8, "percent": 62.5, "passed": 4, "failed": 1,
                              "cannot-evaluate": 1, "pending": 1}
    path = keep_screenshot(page.locator(".nepi-checks"), tmp_path, "checks-view.png")
    print(f"screenshot: {path}")
