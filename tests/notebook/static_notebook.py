"""A notebook whose views are shown early and whose experiment ends later, and the checks
that its saved outputs and its HTML export show each view's *final* state.

Shared by the nbclient test (``test_static.py``) and the JupyterLab one
(``test_static_lab.py``): whoever executes and saves the notebook, the same checks apply.
The experiment is real (``linux::Application`` on localhost) and its commands are shell
text with ``$`` in them, for the MathJax checks.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import nbformat

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
HELLO = "echo $GREETING from $(hostname)"
HOME = "cd ${APP_HOME} && sleep 0.5"
#: Where the notebook writes the graph's first frame (in its working folder).
FIRST_FRAME = "first-frame.png"

CELLS = [
    # 0: the experiment, nothing deployed yet
    f"""from nepi_lab import ExperimentController
from nepi_lab.notebook import ExplainView, GraphView, ProgressView, ResourceTable

ec = ExperimentController(exp_id="static")
node = ec.register_resource("linux::Node")
hello = ec.register_resource("linux::Application", connectedTo=node, env="GREETING=hello",
                             command={HELLO!r})
home = ec.register_resource("linux::Application", connectedTo=node, command={HOME!r})
ec.register_condition(home, "START", hello, "FINISHED")
broken = ec.register_resource("linux::Application", connectedTo=node, critical=False,
                              command="echo 'no such $THING' >&2; exit 3")""",
    # 1-4: every view, shown before anything runs (the first frame: all NEW)
    # (the first frame goes to a file: printed, it would be in the page the test searches)
    f"graph = GraphView(ec)\nwith open({FIRST_FRAME!r}, 'wb') as f:\n    f.write(graph.png)\ngraph",
    "table = ResourceTable(ec)\ntable",
    "explain = ExplainView(ec)\nexplain",
    "bars = ProgressView(ec)\nbars",
    # 5-6: the experiment runs and ends in later cells
    "ec.deploy()",
    "await ec.wait_finished_async(timeout=60)",
    # 7-8: plain HTML reprs with shell text in them
    "ec",
    "ec.get_resource(broken)",
    # 9: a control for the MathJax checks: the same text without the opt-out class
    "from IPython.display import HTML\n"
    f"HTML('<div class=\"nepi-math-control\">{HELLO}</div>')",
    # 10: the end of the run; what each view shows now is what the saved notebook must show
    """import base64, json
await ec.shutdown_async()
for view in (graph, table, explain, bars):
    view.update()
print(json.dumps({"png": base64.b64encode(graph.png).decode(),
                  "states": graph.states, "table": table.value, "explain": explain.value,
                  "bars": bars.counts()}))""",
]
#: Index of each view's cell.
VIEW_CELLS = {"GraphView": 1, "ResourceTable": 2, "ExplainView": 3, "ProgressView": 4}


def views_notebook() -> nbformat.NotebookNode:
    return nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(source) for source in CELLS],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})


def final_state(nb: nbformat.NotebookNode, folder: Path) -> dict[str, Any]:
    """What the views showed at the end, as the last cell printed it, and the graph's
    first frame (``first_png``) from the file the notebook wrote in ``folder``."""
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.get("output_type") == "stream")
    final = json.loads(text.strip().splitlines()[-1])
    final["first_png"] = base64.b64encode((folder / FIRST_FRAME).read_bytes()).decode()
    return final


def check_saved_outputs(nb: nbformat.NotebookNode, folder: Path) -> dict[str, Any]:
    """Each view's saved output holds its widget and its final static picture; returns
    the final state (see :func:`final_state`)."""
    final = final_state(nb, folder)
    assert final["png"] != final["first_png"], "the experiment changed nothing in the graph"
    assert set(final["states"].values()) != {"NEW"}
    outputs = {name: nb.cells[index].outputs for name, index in VIEW_CELLS.items()}
    for name, outs in outputs.items():
        [out] = outs
        assert WIDGET_VIEW in out["data"], name
        text = out["data"]["text/plain"]
        assert text.startswith(f"<{name}") and "value=" not in text, text
    assert outputs["GraphView"][0]["data"]["image/png"] == final["png"]
    assert outputs["ResourceTable"][0]["data"]["text/html"] == final["table"]
    assert outputs["ExplainView"][0]["data"]["text/html"] == final["explain"]
    bars = outputs["ProgressView"][0]["data"]["text/html"]
    counts = json.loads(re.search(r'data-counts="([^"]*)"', bars).group(1).replace("&quot;", '"'))
    assert counts == final["bars"]
    return final


def export_html(nb: nbformat.NotebookNode) -> str:
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nb)
    return body


def _as_exported(fragment: str) -> str:
    """``fragment`` as nbconvert writes it (it parses and re-serialises its page)."""
    from bs4 import BeautifulSoup

    return str(BeautifulSoup(fragment, features="html.parser"))


def widget_state(page: str) -> dict[str, Any]:
    """The widget state embedded in an exported page (``{}`` if none)."""
    match = re.search(rf'<script type="{re.escape(WIDGET_STATE)}">(.*?)</script>', page, re.S)
    return json.loads(match.group(1))["state"] if match else {}


def check_export(page: str, final: dict[str, Any], *, with_state: bool) -> None:
    """The exported page shows each view's final state, never its first frame nor a raw repr."""
    assert "ExplainView(value=" not in page and "ResourceTable(value=" not in page
    assert "Box(children=" not in page
    first = final["first_png"]
    assert first not in page and first.replace("/", "\\/") not in page  # the all-NEW frame is gone
    state = widget_state(page)
    if not with_state:
        assert not state
        # no widget manager: the static fallbacks are what the page shows
        assert f'src="data:image/png;base64,{final["png"]}"' in page
        assert _as_exported(final["table"]) in page
        assert _as_exported(final["explain"]) in page
        assert 'data-bar="FINISHED"' in page
        return
    # a widget manager draws the widgets from the saved state: it must be the final one
    def models(name: str) -> list[dict[str, Any]]:
        return [value for value in state.values() if value["model_name"] == name]

    images = [base64.b64decode(b["data"]) for image in models("ImageModel") for b in image.get("buffers", [])]
    assert images == [base64.b64decode(final["png"])]
    html_values = [model["state"].get("value") for model in models("HTMLModel")]
    assert final["table"] in html_values
    assert final["explain"] in html_values
    finished = [model["state"]["value"] for model in models("IntProgressModel")
                if model["state"].get("description") == "FINISHED"]
    assert finished == [final["bars"]["FINISHED"]]
