"""ProgressView, ExplainView, ResourceTable; progress() and auto_progress() stay silent outside notebooks."""

from __future__ import annotations

from nepi_lab import ResourceState
from nepi_lab.notebook import ExplainView, ProgressView, ResourceTable, auto_progress, show_progress

from .helpers import wait_until


def test_progress_counts_each_state_reached(ec):
    host = ec.register_resource("nbtest::Host")
    ec.register_resource("nbtest::Task", connectedTo=host)
    ec.register_resource("nbtest::Task", fail=True, critical=False)
    view = ProgressView(ec)
    try:
        assert view.counts()["total"] == 3 and view.counts()["READY"] == 0
        ec.deploy()
        ec.wait_finished(timeout=10)
        expected = {"DISCOVERED": 3, "PROVISIONED": 3, "READY": 3, "STARTED": 3, "FINISHED": 1, "FAILED": 1}
        assert wait_until(lambda: all(view.counts()[k] == v for k, v in expected.items()))
        ready = view._bars[ResourceState.READY]
        assert wait_until(lambda: ready.value == 3) and ready.max == 3
        assert "1 failed" in view._summary.value
        assert "FAILED 1/3" in repr(view)
    finally:
        view.close()


def test_progress_of_some_resources_only(ec):
    a = ec.register_resource("nbtest::Task")
    ec.register_resource("nbtest::Task")
    view = ProgressView(ec, guids=[a])
    try:
        ec.deploy()
        ec.wait_finished(timeout=10)
        view.update()
        assert view.counts()["total"] == 1 and view.counts()["FINISHED"] == 1
    finally:
        view.close()


def test_silent_outside_notebooks(ec, capsys):
    assert auto_progress(ec) is None
    with show_progress(ec) as view:
        ec.register_resource("nbtest::Task")
        ec.deploy()
        ec.wait_finished(timeout=10)
    assert view is None
    assert capsys.readouterr() == ("", "")


def test_explain_lists_what_each_unstarted_resource_waits_for(ec):
    first = ec.register_resource("nbtest::Task", seconds=0.3)
    second = ec.register_resource("nbtest::Task")
    ec.register_condition(second, "START", first, "FINISHED")
    view = ExplainView(ec)
    try:
        assert set(view.lines()) == {first, second}
        assert "not deployed yet" in view.value
        ec.deploy()
        assert wait_until(lambda: set(view.lines()) == {second})
        assert wait_until(lambda: "condition: START 2 once resource 1 reached FINISHED" in view.value)
        ec.wait_finished(timeout=10)
        assert wait_until(lambda: "every resource has started" in view.value)
    finally:
        view.close()


def test_resource_table_follows_states(ec):
    task = ec.register_resource("nbtest::Task")
    table = ResourceTable(ec)
    try:
        assert f'data-guid="{task}" data-state="NEW"' in table.value
        ec.deploy()
        ec.wait_finished(timeout=10)
        assert wait_until(lambda: f'data-guid="{task}" data-state="FINISHED"' in table.value)
    finally:
        table.close()


def test_explain_keeps_outcomes_and_failures_after_release(ec):
    done = ec.register_resource("nbtest::Task", name="done")
    bad = ec.register_resource("nbtest::Task", name="bad one", fail=True, critical=False)
    never = ec.register_resource("nbtest::Task", name="never")
    ec.register_condition(never, "START", done, "FINISHED", "1h")  # will not start before the release
    view = ExplainView(ec)
    try:
        ec.deploy()
        ec.wait_finished([done, bad], timeout=10)
        ec.shutdown()
        view.update()  # in a script the controller's loop, which ran the view's timer, is gone now
        assert set(view.lines()) == {never} and set(view.failures()) == {bad}
        html = view.value
        # the resource that never started: its outcome (READY) with the released mark beside it
        item = html[html.index(f'<li data-guid="{never}">'):]
        item = item[: item.index("</li>")]
        assert item.index('data-state="READY"') < item.index('data-released="true"')
        assert "resource 3 &#x27;never&#x27;" in item  # explain names it (escaped)
        failed = html[html.index(f'<li data-guid="{bad}">'):]
        assert failed.index('data-state="FAILED"') < failed.index('data-released="true"')
        assert "failed on purpose" in failed and "&#x27;bad one&#x27;" in failed
        assert 'data-state="RELEASED"' not in html  # released is a mark, never the colour
    finally:
        view.close()


def test_explain_summarises_outcomes_once_everything_started(ec):
    ec.register_resource("nbtest::Task")
    view = ExplainView(ec)
    try:
        ec.deploy()
        ec.wait_finished(timeout=10)
        ec.shutdown()
        view.update()
        assert "every resource has started (or ended)" in view.value
        assert "FINISHED 1" in view.value and "released 1" in view.value
    finally:
        view.close()
