"""Static fallbacks: every view's output carries a plain picture of its *last* state.

nbconvert's HTML, nbviewer and GitHub draw no widget; they show the other formats of
the same output.  The views refresh those after each cell (``_static.py``), so a
notebook executed by nbclient and exported shows where the experiment ended, not the
all-NEW first frame of a view shown before ``deploy()``.
"""

from __future__ import annotations

import base64

import pytest

from nepi_lab.notebook import ExplainView, GraphView, ProgressView, ResourceTable

from .helpers import wait_until

nbformat = pytest.importorskip("nbformat", reason="the test extra installs nbformat")
nbclient = pytest.importorskip("nbclient", reason="the test extra installs nbclient")
pytest.importorskip("nbconvert", reason="the test extra installs nbconvert")

from . import static_notebook  # noqa: E402  (needs nbformat)

WIDGET_VIEW = static_notebook.WIDGET_VIEW
#: Each view and the format of its static picture.
VIEWS = {GraphView: "image/png", ResourceTable: "text/html", ExplainView: "text/html",
         ProgressView: "text/html"}


@pytest.fixture
def views(ec):
    made = []

    def make(cls):
        view = cls(ec)
        made.append(view)
        return view

    yield make
    for view in made:
        view.close()


@pytest.mark.parametrize("cls", VIEWS, ids=lambda c: c.__name__)
def test_the_display_bundle_has_the_widget_a_static_picture_and_plain_text(ec, views, cls):
    ec.register_resource("nbtest::Task", note="echo $GREETING")
    view = views(cls)
    bundle = view._repr_mimebundle_()
    assert WIDGET_VIEW in bundle
    assert bundle[VIEWS[cls]]  # what a page without widgets shows
    text = bundle["text/plain"]
    assert text.startswith(f"<{cls.__name__} ") and "value=" not in text and "children=" not in text


@pytest.mark.parametrize("cls", VIEWS, ids=lambda c: c.__name__)
def test_the_static_picture_follows_the_view(ec, views, cls):
    task = ec.register_resource("nbtest::Task")
    view = views(cls)
    before = view._static_bundle()
    ec.deploy()
    ec.wait_finished(timeout=10)
    assert wait_until(lambda: ec.state(task).name == "FINISHED")
    view.update()
    after = view._static_bundle()
    assert after[VIEWS[cls]] != before[VIEWS[cls]]
    if cls is GraphView:
        assert base64.b64decode(after["image/png"]) == view.png
    elif cls is ProgressView:
        assert 'data-bar="FINISHED"' in after["text/html"] and "1/1" in after["text/html"]
    else:
        assert after["text/html"] == view.value


def test_a_closed_view_shows_only_its_last_picture(ec, views):
    ec.register_resource("nbtest::Task")
    view = views(ResourceTable)
    html = view.value
    view.close()
    bundle = view._display_bundle()
    assert WIDGET_VIEW not in bundle and bundle["text/html"] == html


@pytest.fixture
def shell(tmp_path, monkeypatch):
    """An IPython shell (no kernel) whose displays are recorded; yields (shell, outputs)."""
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    from IPython.core.displaypub import CapturingDisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False  # no history database
    ip = InteractiveShell.instance(config=config)
    ip.display_pub = publisher = CapturingDisplayPublisher()
    try:
        yield ip, publisher.outputs
    finally:
        InteractiveShell.clear_instance()


def test_after_each_cell_only_the_displays_whose_picture_changed_are_updated(ec, views, shell):
    ip, outputs = shell
    task = ec.register_resource("nbtest::Task")
    ip.user_ns["table"] = views(ResourceTable)
    ip.run_cell("table")  # the last line of a cell: displayed with a display id
    [shown] = outputs
    first_id = shown["transient"]["display_id"]
    assert not shown["update"] and WIDGET_VIEW in shown["data"]
    assert 'data-state="NEW"' in shown["data"]["text/html"]
    ip.run_cell("x = 1")
    assert len(outputs) == 1  # nothing changed: nothing sent

    ec.deploy()
    ec.wait_finished(timeout=10)
    ip.run_cell("x = 2")  # the view is brought up to date at the cell's end, and its output
    [update] = outputs[1:]
    assert update["update"] and update["transient"]["display_id"] == first_id
    assert f'data-guid="{task}" data-state="FINISHED"' in update["data"]["text/html"]
    assert update["data"][WIDGET_VIEW] == shown["data"][WIDGET_VIEW]  # the same live widget
    ip.run_cell("x = 3")
    assert len(outputs) == 2

    ip.run_cell("table")  # shown again: a display of its own, up to date already
    second_id = outputs[2]["transient"]["display_id"]
    assert second_id != first_id and outputs[2]["data"] == update["data"]
    ip.run_cell("x = 4")
    assert len(outputs) == 3

    ip.user_ns["table"].close()  # closed: its outputs are left as they are
    ip.run_cell("x = 5")
    assert len(outputs) == 3
    ip.run_cell("table")  # and a closed view shows its last picture, without a widget
    assert WIDGET_VIEW not in outputs[3]["data"]
    assert outputs[3]["data"]["text/html"] == update["data"]["text/html"]


def test_an_executed_notebook_and_its_html_export_show_the_final_state(tmp_path, monkeypatch):
    """Views shown before deploy(); the experiment ends cells later; nbclient saves, nbconvert exports."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))  # the kernel's linux::Node keeps its folders under ~
    monkeypatch.setenv("NEPI_LAB_RESULTS", str(tmp_path / "results"))
    nb = static_notebook.views_notebook()
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError on any error; stores the widget state

    final = static_notebook.check_saved_outputs(nb, tmp_path)
    assert nb.metadata.get("widgets"), "nbclient stored no widget state"
    static_notebook.check_export(static_notebook.export_html(nb), final, with_state=True)
    del nb.metadata["widgets"]
    static_notebook.check_export(static_notebook.export_html(nb), final, with_state=False)
