"""In a real Jupyter kernel: the views follow the experiment while the kernel is idle.

The cells run one at a time and the test sleeps between them, so nothing runs in the
kernel but its own event loop: state changes still arrive, and the GraphView
recolours itself, with no call from any cell.
"""

from __future__ import annotations

import json
import time

import pytest

from ..kernels import ipykernel_version, kernel_python

nbformat = pytest.importorskip("nbformat", reason="the test extra installs nbformat")
nbclient = pytest.importorskip("nbclient", reason="the test extra installs nbclient")

WIDGET = "application/vnd.jupyter.widget-view+json"

SETUP = """
import asyncio, threading, time
from nepi_lab import ExperimentController, ResourceManager, Attribute, Types
from nepi_lab.notebook import GraphView, auto_progress, show_progress

class Sleeper(ResourceManager):
    _rtype = "kernel::Sleeper"
    _attributes = (Attribute("seconds", "how long", type=Types.Double, default=0.2),)
    async def do_run(self):
        await asyncio.sleep(self.get("seconds"))
"""


@pytest.fixture(scope="module")
def kernel(tmp_path_factory, kernel_name):
    """One kernel (``--kernel``) for this module; ``run(source) -> outputs`` runs one cell in it."""
    results = tmp_path_factory.mktemp("kernel")
    nb = nbformat.v4.new_notebook()
    client = nbclient.NotebookClient(nb, timeout=60, kernel_name=kernel_name,
                                     resources={"metadata": {"path": str(results)}})
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEPI_LAB_RESULTS", str(results))
        with client.setup_kernel():
            def run(source: str) -> list:
                cell = nbformat.v4.new_code_cell(source)
                nb.cells.append(cell)
                client.execute_cell(cell, len(nb.cells) - 1)  # raises CellExecutionError on error
                return cell.outputs

            run(SETUP)
            yield run


def text_of(outputs: list) -> str:
    return "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")


def test_graph_view_recolours_while_the_kernel_is_idle(kernel):
    kernel("""
ec = ExperimentController(exp_id="idle")
first = ec.register_resource("kernel::Sleeper", seconds=0.2)
second = ec.register_resource("kernel::Sleeper", seconds=0.2)
ec.register_condition(second, "START", first, "FINISHED")
view = GraphView(ec)
before = dict(view.colors)
ec.deploy()
assert set(view.states.values()) == {"NEW"}  # nothing ran during this cell
cell_ended = time.time()
""")
    time.sleep(1.5)  # the kernel is idle: only its event loop runs
    outputs = kernel("""
finished_at = max(e.time for e in ec.events if e.new.name == "FINISHED")
assert finished_at < time.time() and finished_at > cell_ended  # it happened between the cells
print(json.dumps({"before": before, "after": view.colors, "states": view.states,
                  "full_draws": view.full_draws, "recolors": view.recolors, "renders": view.renders}))
""".replace("print(json", "import json\nprint(json"))
    seen = json.loads(text_of(outputs))
    assert set(seen["before"].values()) == {"#e0e0e0"}
    assert seen["after"] != seen["before"]
    assert seen["states"] == {"1": "FINISHED", "2": "FINISHED"}
    assert seen["after"] == {"1": "#43a047", "2": "#43a047"}
    assert seen["full_draws"] == 1 and seen["recolors"] >= 2  # recoloured, never redrawn
    assert seen["renders"] <= 1 + 10  # well under one per event (about 10 events)


def test_thread_mode_controller_is_marshalled_to_the_kernel_thread(kernel):
    kernel("""
holder = []
maker = threading.Thread(target=lambda: holder.append(ExperimentController(exp_id="threaded")))
maker.start(); maker.join()
tec = holder[0]
assert tec.loop_mode == "thread"
app = tec.register_resource("kernel::Sleeper", seconds=0.1)
tview = GraphView(tec)
threads = set()
inner = tview._subscription.coalescer._callback
tview._subscription.coalescer._callback = lambda: (threads.add(threading.get_ident()), inner())
tec.deploy()
""")
    time.sleep(1.0)
    outputs = kernel("""
import json
print(json.dumps({"states": tview.states, "only_kernel_thread": threads == {threading.get_ident()}}))
tec.shutdown()
""")
    seen = json.loads(text_of(outputs))
    assert seen == {"states": {"1": "FINISHED"}, "only_kernel_thread": True}


def test_progress_bars_appear_in_the_cells_that_wait(kernel):
    kernel("""
pec = ExperimentController(exp_id="progress")
auto = auto_progress(pec)
assert auto is not None
for _ in range(3):
    pec.register_resource("kernel::Sleeper", seconds=0.5)
""")
    quiet = kernel("x = 1")  # nothing happens in this cell: no bars
    assert not [o for o in quiet if WIDGET in o.get("data", {})]
    deploying = kernel("pec.deploy()")  # returns at once: nothing runs during this cell
    assert not [o for o in deploying if WIDGET in o.get("data", {})]
    # the controller's tasks carry the deploying cell's context; the bars must
    # still appear in the cell that waits
    waiting = kernel("""
await pec.wait_finished_async(timeout=10)
""")
    assert [o for o in waiting if WIDGET in o.get("data", {})], waiting
    blocking = kernel("""
pec.register_resource("kernel::Sleeper", seconds=0.1)
pec.deploy()
pec.wait_finished(timeout=10)
auto.view.update()
print(auto.view.counts()["FINISHED"])
""")
    assert [o for o in blocking if WIDGET in o.get("data", {})], blocking
    assert text_of(blocking).strip() == "4"
    explicit = kernel("""
with show_progress(pec) as bars:
    await pec.release_async()
print(bars.counts()["RELEASED"])
""")
    assert [o for o in explicit if WIDGET in o.get("data", {})]
    assert text_of(explicit).strip() == "4"
    # bars belong to the cell that waited: frozen when it ended, never rewritten later
    frozen = kernel("""
import json
print(json.dumps([[v.frozen, v.counts()["FINISHED"], v.counts()["RELEASED"]] for v in auto.views]))
""")
    assert json.loads(text_of(frozen)) == [[True, 3, 0], [True, 4, 0], [True, 4, 4]]


def test_the_controller_shows_as_an_html_table(kernel):
    outputs = kernel("""
hec = ExperimentController(exp_id="table")
hec.register_resource("kernel::Sleeper", seconds=0.5)
hec
""")
    [result] = [o for o in outputs if o.get("output_type") == "execute_result"]
    assert 'data-state="NEW"' in result["data"]["text/html"]
    assert "ExperimentController table" in result["data"]["text/plain"]


def test_the_kernel_is_the_one_asked_for(kernel, kernel_name):
    """The cells run in the interpreter and the ipykernel that ``--kernel`` names (how
    ``.ci/run`` proves its second pass ran on ipykernel 6)."""
    outputs = kernel("""
import sys
from importlib.metadata import version
print(sys.executable, version("ipykernel"))
""")
    python, version = text_of(outputs).split()
    assert (python, version) == (kernel_python(kernel_name), ipykernel_version(kernel_python(kernel_name)))
