"""HTML reprs: static (no script, inline styles), complete, escaped, never raising."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from html.parser import HTMLParser

from nepi_lab.notebook import STATE_COLORS, controller_html, resource_html, state_color


def test_empty_controller(ec):
    text = ec._repr_html_()
    assert "ExperimentController" in text and ec.exp_id in text
    assert "no resources yet" in text


def test_table_has_counts_types_states_attributes_and_failure(ec):
    host = ec.register_resource("nbtest::Host")
    good = ec.register_resource("nbtest::Task", count=7, note="<script>alert(1)</script>", password="hunter2",
                                connectedTo=host)
    bad = ec.register_resource("nbtest::Task", fail=True, critical=False)
    ec.deploy()
    ec.wait_finished(timeout=10)
    text = ec._repr_html_()
    rows = dict(re.findall(r'<tr data-guid="(\d+)" data-state="(\w+)"', text))
    assert rows == {str(host): "STARTED", str(good): "FINISHED", str(bad): "FAILED"}
    assert "STARTED 1" in text and "FINISHED 1" in text and "FAILED 1" in text  # counts by state
    assert "nbtest::Task" in text
    assert "<code>count</code>=7" in text  # a key attribute: differs from its default
    assert "<code>seconds</code>" not in text  # defaults are not repeated
    assert "hunter2" not in text and "••••" in text  # secrets masked
    assert "failed on purpose &lt;b&gt;bold&lt;/b&gt;" in text  # the failure reason, escaped
    assert "<script" not in text and "<style" not in text  # static: no script, inline styles only
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert STATE_COLORS[ec.state(bad)] in text  # the same colours as the graph


def test_rows_are_capped_but_counts_cover_everything(ec):
    for _ in range(12):
        ec.register_resource("nbtest::Host")
    text = controller_html(ec, max_rows=5)
    assert text.count("<tr data-guid") == 5
    assert "and 7 more resources" in text and "NEW 12" in text


def test_resource_html(ec):
    host = ec.register_resource("nbtest::Host")
    task = ec.register_resource("nbtest::Task", seconds=0.01, connectedTo=host, password="s3cret")
    ec.register_condition(task, "START", host, "STARTED", "10ms")
    text = ec.get_resource(task)._repr_html_()
    assert 'data-guid="2"' in text and "nbtest::Task" in text
    assert "not deployed yet" in text  # what ec.explain says
    assert "connected to 1" in text and "START 2 once resource 1 reached STARTED" in text
    assert "traces: log" in text
    assert "s3cret" not in text
    assert 'title="how long it runs"' in text  # help of each attribute


def test_a_broken_display_falls_back_to_repr():
    class Broken:
        exp_id = "x"

        @property
        def resources(self):
            raise RuntimeError("boom")

    # None tells IPython to use the plain repr instead: a display never raises
    assert controller_html(Broken()) is None
    assert resource_html(object()) is None


def test_state_color_accepts_names_numbers_and_members():
    assert state_color("finished") == state_color(7) == STATE_COLORS[7]
    assert len(set(STATE_COLORS.values())) == len(STATE_COLORS)  # every state its own colour


def test_html_module_loads_no_widgets_nor_matplotlib(tmp_path):
    """``ec._repr_html_`` runs in plain IPython too: it must stay light."""
    code = (
        "import json, sys\n"
        "from nepi_lab import ExperimentController\n"
        f"ec = ExperimentController(local_dir={str(tmp_path)!r})\n"
        "ec.register_resource('linux::Node')\n"
        "assert 'linux::Node' in ec._repr_html_()\n"
        "ec.shutdown()\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('ipywidgets', 'matplotlib', 'pandas'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


class _Elements(HTMLParser):
    """Collects (depth, tag, attributes) of every element of an HTML fragment."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.elements: list[tuple[int, str, dict[str, str]]] = []

    def handle_starttag(self, tag, attrs):
        self.elements.append((self.depth, tag, dict(attrs)))
        if tag not in ("br", "img", "hr"):
            self.depth += 1

    def handle_endtag(self, tag):
        self.depth -= 1


def _elements(text: str) -> list[tuple[int, str, dict[str, str]]]:
    parser = _Elements()
    parser.feed(text)
    parser.close()
    return parser.elements


def _shell_text_experiment(ec):
    host = ec.register_resource("nbtest::Host")
    task = ec.register_resource("nbtest::Task", note="echo $GREETING from $(hostname) in ${APP_HOME}",
                                fail=True, critical=False, connectedTo=host)
    ec.deploy()
    ec.wait_finished(timeout=10)
    return task


def test_shell_text_is_never_typeset_as_maths(ec):
    """JupyterLab (MathJax 3) and nbconvert's pages (MathJax 2) typeset $...$ in HTML
    outputs unless a container has mathjax_ignore / tex2jax_ignore."""
    task = _shell_text_experiment(ec)
    for text in (ec._repr_html_(), ec.get_resource(task)._repr_html_()):
        assert "$GREETING from $(hostname) in ${APP_HOME}" in text
        roots = [e for e in _elements(text) if e[0] == 0]
        assert len(roots) == 1, roots  # one container holds every "$"
        classes = roots[0][2]["class"].split()
        assert {"mathjax_ignore", "tex2jax_ignore"} <= set(classes)


def test_colours_follow_jupyterlab_themes_with_light_fallbacks(ec):
    """Every colour but the state badges' is a JupyterLab theme variable with a fallback,
    so the tables read in the dark theme and still look right where no variable exists."""
    task = _shell_text_experiment(ec)
    ec.get_resource(task).failure  # noqa: B018 - the failure row and stderr box are drawn
    for text in (ec._repr_html_(), ec.get_resource(task)._repr_html_()):
        checked = 0
        for _, _, attrs in _elements(text):
            if "data-state" in attrs or "style" not in attrs:
                continue  # a state badge: its own background and a text colour for contrast
            for declaration in attrs["style"].split(";"):
                name, _, value = declaration.partition(":")
                name = name.strip()
                if name in ("color", "background", "background-color") or (
                        name.startswith("border") and name not in ("border-collapse", "border-radius")):
                    checked += 1
                    assert re.fullmatch(r".*var\(--jp-[a-z0-9-]+, #[0-9a-f]{3,6}\).*", value.strip()), \
                        declaration
        assert checked >= 3


def test_outcomes_survive_release_in_the_tables(ec):
    host = ec.register_resource("nbtest::Host", name="server")
    good = ec.register_resource("nbtest::Task", connectedTo=host, name="client <1>")
    bad = ec.register_resource("nbtest::Task", fail=True, critical=False)
    ec.deploy()
    ec.wait_finished(timeout=10)
    ec.shutdown()
    text = controller_html(ec)
    rows = re.findall(r'<tr data-guid="(\d+)" data-state="(\w+)" data-outcome="(\w+)"', text)
    assert rows == [(str(host), "RELEASED", "STOPPED"), (str(good), "RELEASED", "FINISHED"),
                    (str(bad), "RELEASED", "FAILED")]
    # each row: the outcome's badge, then the released mark beside it (never instead)
    row = text[text.index(f'<tr data-guid="{bad}"'):]
    row = row[: row.index("</tr>")]
    assert row.index('data-state="FAILED"') < row.index('data-released="true"')
    assert STATE_COLORS[ec.get_resource(bad).outcome] in row
    head = text[: text.index("<table")]  # the counts are by outcome: no RELEASED among them
    assert 'data-state="RELEASED"' not in head
    assert "FINISHED 1" in text and "FAILED 1" in text and "STOPPED 1" in text and "released 3" in text
    # names have a column of their own, escaped
    assert "<td style" in text and ">server</td>" in text and "client &lt;1&gt;" in text
    assert "<code>name</code>" not in text
    page = resource_html(ec.get_resource(bad))
    assert 'data-outcome="FAILED"' in page and 'data-released="true"' in page
    assert page.index('data-state="FAILED"') < page.index('data-released="true"')
    assert "<b>server</b>" in resource_html(ec.get_resource(host))


def test_a_running_resource_has_no_released_mark(ec):
    task = ec.register_resource("nbtest::Task", seconds=5)
    ec.deploy()
    ec.wait_started(task, timeout=10)
    text = controller_html(ec)
    assert f'<tr data-guid="{task}" data-state="STARTED" data-outcome="STARTED"' in text
    assert "data-released" not in text
