"""ChecksView: a lab's checks following a real controller with real localhost applications.

Rows turn from pending to passed or failed as the resources each check reads end;
only checks whose resources changed are evaluated again, a trace is read only once its
resource ended, evaluation runs in a short-lived thread of its own (no thread polls),
the results stay after the release, and a run directory is rendered once.  The
kernel test at the end does the same in a real Jupyter kernel, while it is idle.
"""

from __future__ import annotations

import json
import re
import threading
import time

import pytest

from nepi_lab import ExperimentController
from nepi_lab.lab import ExitStatus, Lab, NotFailed, Order, Reachable, State, TraceContains
from nepi_lab.notebook import ChecksView
from nepi_lab.notebook.checks_view import checks_html

from ..guards import wait_until

WIDGET = "application/vnd.jupyter.widget-view+json"


def build(ec: ExperimentController) -> dict[str, int]:
    """A ping that answers, an application that says hello after a while, and one that
    fails (exit status 3) without failing the experiment."""
    node = ec.register_resource("linux::Node", hostname="localhost", name="host")
    return {
        "ping": ec.register_resource("linux::Ping", connectedTo=node, target="127.0.0.1", count=2,
                                     interval=0.2, name="ping"),
        "hello": ec.register_resource("linux::Application", connectedTo=node, name="hello",
                                      command="sleep 1.5; echo hello world"),
        "broken": ec.register_resource("linux::Application", connectedTo=node, name="broken",
                                       command="sleep 0.5; exit 3", critical=False),
    }


LAB = Lab([State("ping"), Reachable("ping", max_loss=0), TraceContains("hello", text="world"),
           ExitStatus("broken"), NotFailed("broken"), Order("ping", "hello", "STARTED", "FINISHED"),
           State("nobody")], points={"ping loses at most 0 % of packets": 3}, title="Lab 0")

FINAL = {"ping reaches FINISHED": "passed", "ping loses at most 0 % of packets": "passed",
         "hello stdout contains 'world'": "passed", "broken exits with status 0": "failed",
         "broken does not fail": "failed", "hello FINISHED after ping STARTED": "passed",
         "nobody reaches FINISHED": "cannot-evaluate"}


def rows(view_html: str) -> dict[str, str]:
    """``{check name: status}`` as the HTML says."""
    return {m.group(1).replace("&#x27;", "'"): m.group(2)
            for m in re.finditer(r'data-check="([^"]*)" data-status="([^"]*)"', view_html)}


def test_rows_turn_green_and_red_as_the_run_gets_there(ec):
    guids = build(ec)
    before = {t.ident for t in threading.enumerate()}
    view = ChecksView(ec, LAB, interval=0.05)
    assert set(view.statuses.values()) == {"pending"}  # nothing ran
    assert set(rows(view.value).values()) == {"pending"}
    seen = []
    ec.deploy()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        seen.append(rows(view.value))  # what the widget shows, as events come
        if "pending" not in list(seen[-1].values())[:-1]:  # all but "nobody", pending until the end
            break
        time.sleep(0.02)
    ec.wait_finished([guids["ping"], guids["hello"], guids["broken"]], timeout=30)
    wait_until(lambda: "pending" not in list(rows(view.value).values())[:-1], timeout=10)
    shown = rows(view.value)
    assert shown == {**FINAL, "nobody reaches FINISHED": "pending"}  # it may still be registered
    # one after the other: the broken application failed (0.5 s) before hello finished (1.5 s)
    broken_done = next(i for i, s in enumerate(seen) if s["broken exits with status 0"] != "pending")
    hello_done = next(i for i, s in enumerate(seen) if s["hello stdout contains 'world'"] != "pending")
    assert broken_done < hello_done
    assert seen[broken_done]["hello stdout contains 'world'"] == "pending"
    # each trace was read once, after its resource ended; no check is evaluated again once decided
    evaluations = view.evaluations
    assert evaluations["ping loses at most 0 % of packets"] == 1
    assert evaluations["hello stdout contains 'world'"] == 1
    assert evaluations["broken exits with status 0"] == 1
    # the others at most once per state change of the resources they read (never by time)
    events = {name: sum(1 for e in ec.events if e.guid == guid) for name, guid in guids.items()}
    for check in LAB.checks:
        reads = [r for r in check.depends_on().resources if r in events]
        assert evaluations[check.title] <= 1 + sum(events[r] for r in reads), (check.title, evaluations)
    assert evaluations["nobody reaches FINISHED"] == 1  # nothing it reads ever changed
    # no thread polls: the evaluation threads have ended, and so has the update that shows
    # what the last one found (it comes an interval after it); nothing was left running
    coalescer = view._subscription.coalescer

    def quiet() -> bool:
        with coalescer.lock:  # held while an update runs
            return not coalescer._pending and not [
                t for t in threading.enumerate() if t.name == "nepi_lab-checks"]

    assert wait_until(quiet, timeout=5)
    left = [t.name for t in threading.enumerate() if t.ident not in before
            and "-blocking" not in t.name]  # the controller's own pool for blocking work, not the view's
    assert left == [], left
    with coalescer.lock:
        renders, evaluated = view.renders, dict(view.evaluations)
    time.sleep(0.5)  # nothing changes: nothing is evaluated, nothing is drawn
    assert view.renders == renders and view.evaluations == evaluated

    # the release ends the run: the last check is decided, the others keep what they found
    ec.shutdown()
    view.update()
    assert view.statuses == FINAL and rows(view.value) == FINAL
    assert view.done
    total = view.total
    assert (total["points"], total["max_points"], total["passed"], total["failed"]) == (6, 9, 4, 2)
    head = json.loads(re.search(r'data-total="([^"]*)"', view.value).group(1).replace("&quot;", '"'))
    assert head["points"] == 6 and head["pending"] == 0
    assert "grade <b>6 / 9</b> points" in view.value
    assert "the run has no resource named &#x27;nobody&#x27;" in view.value
    view.close()


def test_pending_rows_show_what_is_observed_so_far(ec):
    node = ec.register_resource("linux::Node", hostname="localhost")
    ec.register_resource("linux::Application", connectedTo=node, name="slow", command="sleep 30")
    view = ChecksView(ec, [NotFailed("slow"), State("slow", "STARTED")], interval=0.05)
    ec.deploy()
    # the table shows it (rendered at the update after the evaluation)
    wait_until(lambda: rows(view.value).get("slow reaches STARTED") == "passed", timeout=20)
    # not failed so far, but it may still fail: pending, with its outcome so far in grey
    assert view.statuses["slow does not fail"] == "pending"
    row = re.search(r'<tr class="nepi-check" data-check="slow does not fail".*?</tr>', view.value).group(0)
    assert 'title="so far: slow ended STARTED"' in row and ">STARTED</span>" in row
    assert "so far" in view.value and "1 passed · 1 pending" in view.value
    ec.shutdown()  # stopped by the release: now it is decided
    view.update()
    assert view.statuses == {"slow does not fail": "passed", "slow reaches STARTED": "passed"}
    view.close()


def test_a_run_directory_is_rendered_once(ec, tmp_path):
    build(ec)
    ec.deploy()
    ec.wait_finished(timeout=30)
    ec.shutdown()
    view = ChecksView(ec.run_dir, LAB)
    assert view.frozen and view.done and view.statuses == FINAL
    assert view.evaluations == dict.fromkeys(FINAL, 1)
    view.update()  # nothing to follow
    assert view.evaluations == dict.fromkeys(FINAL, 1)
    # the static fallback: the same table as plain HTML beside the widget, and as text
    bundle = view._repr_mimebundle_()
    assert WIDGET in bundle and rows(bundle["text/html"]) == FINAL
    assert bundle["text/plain"] == "<ChecksView: 6/9 points; 4 passed, 2 failed, 1 cannot-evaluate>"
    # a spec file names the lab as well, and a closed controller is a finished run
    LAB.save(tmp_path / "lab.json")
    again = ChecksView(ec, str(tmp_path / "lab.json"))
    assert again.statuses == FINAL and again.frozen
    view.close()
    again.close()
    closed = view._static_bundle()  # a closed view still shows its table
    assert WIDGET not in closed and rows(closed["text/html"]) == FINAL


def test_the_html_escapes_names_and_values():
    lab = Lab([TraceContains("app <b>", text="$x & <i>")])
    text = checks_html(lab, {lab.checks[0].title: None}, {lab.checks[0].title: "pending"})
    assert "<b>" not in text.replace("<b>total</b>", "").replace("<b>0 / 1</b>", "") and "&lt;i&gt;" in text
    assert "mathjax_ignore" in text


# == in a real kernel ===========================================================================

nbformat = pytest.importorskip("nbformat", reason="the test extra installs nbformat")
nbclient = pytest.importorskip("nbclient", reason="the test extra installs nbclient")

KERNEL_SETUP = """
import json, threading, time
from IPython.display import display
from nepi_lab import ExperimentController
from nepi_lab.lab import Lab, State, Reachable, TraceContains, ExitStatus
from nepi_lab.notebook import ChecksView

ec = ExperimentController(exp_id="checks")
node = ec.register_resource("linux::Node", hostname="localhost")
ping = ec.register_resource("linux::Ping", connectedTo=node, target="127.0.0.1", count=2, interval=0.2,
                            name="ping")
app = ec.register_resource("linux::Application", connectedTo=node, name="hello",
                           command="sleep 1; echo hello world; exit 2", critical=False)
lab = Lab([State("ping"), Reachable("ping"), TraceContains("hello", text="world"), ExitStatus("hello")])
threads_before = {t.ident for t in threading.enumerate()}
view = ChecksView(ec, lab)
display(view)
ec.deploy()
assert set(view.statuses.values()) == {"pending"}  # nothing ran during this cell
"""

KERNEL_READ = """
import json
print(json.dumps({"statuses": view.statuses, "evaluations": view.evaluations,
                  "new_threads": [t.name for t in threading.enumerate()
                                  if t.ident not in threads_before and "-blocking" not in t.name]}))
"""


def test_the_rows_change_while_the_kernel_is_idle(tmp_path, kernel_name, monkeypatch):
    nb = nbformat.v4.new_notebook()
    client = nbclient.NotebookClient(nb, timeout=60, kernel_name=kernel_name,
                                     resources={"metadata": {"path": str(tmp_path)}})
    monkeypatch.setenv("NEPI_LAB_RESULTS", str(tmp_path / "results"))

    def run(source: str) -> list:
        cell = nbformat.v4.new_code_cell(source)
        nb.cells.append(cell)
        client.execute_cell(cell, len(nb.cells) - 1)
        return cell.outputs

    with client.setup_kernel():
        first = run(KERNEL_SETUP)
        [shown] = [o for o in first if o.get("output_type") == "display_data"]
        at_first = rows(shown["data"]["text/html"])  # as the cell's end left it
        assert WIDGET in shown["data"] and at_first["hello stdout contains 'world'"] == "pending"
        time.sleep(3)  # the kernel is idle: only its loop (and the controller's) run
        outputs = run(KERNEL_READ)
        seen = json.loads("".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream"))
        assert seen["statuses"] == {"ping reaches FINISHED": "passed",
                                    "ping loses at most 0 % of packets": "passed",
                                    "hello stdout contains 'world'": "passed",
                                    "hello exits with status 0": "failed"}, seen
        assert seen["evaluations"]["hello stdout contains 'world'"] == 1
        assert seen["new_threads"] == [], seen  # the evaluation threads ended; none polls
        # the static copy beside the widget (nbclient rewrote it at the cell's end: its display id)
        assert rows(shown["data"]["text/html"]) == seen["statuses"]
        run("ec.shutdown()")


def test_what_cannot_be_shown_is_refused_before_any_widget(ec):
    from ipywidgets.widgets.widget import _instances  # every open widget (Widget.widgets is deprecated)

    from nepi_lab.core.errors import InvalidInputError

    before = len(_instances)
    with pytest.raises(InvalidInputError, match="a lab holds checks"):
        ChecksView(ec, ["not a check"])
    with pytest.raises(InvalidInputError, match="cannot check 42"):
        ChecksView(42, LAB)
    assert len(_instances) == before
