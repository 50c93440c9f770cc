"""The README's Python blocks run, in order, as a reader would paste them into one session.

Each block imports what it uses (a reader may paste any one of them); it may use the
variables of the blocks before it (``ec`` of the ping example in the analysis one).
The line before a block's fence may say how it runs, in an HTML comment that GitHub
does not show: ``<!-- readme-test: a notebook cell -->`` (it runs as one cell in a real
Jupyter kernel, ``--kernel``, with every expression displayed as if each had its own
cell), ``<!-- readme-test: needs root -->`` (it runs as root only), ``<!-- readme-test:
needs ns3 -->`` (it runs where the ns3 package is installed), or, for a block that cannot
run at all, ``<!-- readme-test: not run (reason) -->``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import textwrap

import pytest

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")
_BLOCK = re.compile(r"(?:^<!-- readme-test: (?P<marker>[^>]*?) -->\n)?^```python\n(?P<code>.*?)^```",
                    re.M | re.S)


def python_blocks(text: str) -> list[tuple[int, str, str]]:
    """``(line, marker, code)`` of every Python block of ``text``."""
    return [(text.count("\n", 0, m.start("code")) + 1, m.group("marker") or "", m.group("code"))
            for m in _BLOCK.finditer(text)]


def test_markers_are_known():
    with open(README) as f:
        blocks = python_blocks(f.read())
    assert len(blocks) >= 5
    for line, marker, _ in blocks:
        known = marker in ("", "needs root", "needs ns3", "a notebook cell") or marker.startswith("not run (")
        assert known, (line, marker)


def test_the_readme_blocks_run(tmp_path):
    with open(README) as f:
        blocks = python_blocks(f.read())
    root = os.geteuid() == 0
    ns3 = importlib.util.find_spec("ns") is not None
    chosen = [(line, code) for line, marker, code in blocks
              if marker == "" or (root and marker == "needs root") or (ns3 and marker == "needs ns3")]
    script = [_SESSION]
    for line, code in chosen:
        script.append(f"print('README block at line {line}', flush=True)")
        script.append(f"run_block({code!r}, 'README.md:{line}')")
    home = tmp_path / "home"
    home.mkdir()
    env = dict(os.environ, NEPI_LAB_RESULTS=str(tmp_path / "results"), HOME=str(home), MPLBACKEND="Agg")
    proc = subprocess.run([sys.executable, "-c", "\n".join(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    ran = re.findall(r"^README block at line (\d+)$", proc.stdout, re.M)
    assert proc.returncode == 0, (f"README block at line {ran[-1] if ran else '?'} failed:\n"
                                  + textwrap.indent(proc.stderr[-3000:], "    "))
    assert len(ran) == len(chosen)
    assert "waits to START until resource 1" in proc.stdout or "s more (condition: START" in proc.stdout
    assert re.search(r"^packets sent on lo: \d+$", proc.stdout, re.M), proc.stdout  # the type of your own
    assert (tmp_path / "timeline.png").stat().st_size > 1000


#: The reader's session: blocks share their variables, but not their imports.
_SESSION = """\
import ast
namespace = {'__name__': '__main__'}
imported = set()

def run_block(code, where):
    own = {name: value for name, value in namespace.items() if name not in imported}
    exec(compile(code, where, 'exec'), own)
    namespace.update(own)
    for node in ast.parse(code).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            imported.update((alias.asname or alias.name).split('.')[0] for alias in node.names)
"""


def test_a_block_that_relies_on_an_earlier_blocks_import_fails(tmp_path):
    """Control for the session above: names imported by an earlier block are not there."""
    script = _SESSION + "run_block('import os\\nx = 1', 'a')\nrun_block('print(x); os.getcwd()', 'b')\n"
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and proc.stdout == "1\n", proc.stdout + proc.stderr
    assert "NameError: name 'os' is not defined" in proc.stderr, proc.stderr


def test_the_readme_notebook_cells_run_in_a_kernel(tmp_path, monkeypatch, kernel_name):
    nbformat = pytest.importorskip("nbformat", reason="the test extra installs nbformat")
    nbclient = pytest.importorskip("nbclient", reason="the test extra installs nbclient")
    with open(README) as f:
        blocks = python_blocks(f.read())
    cells = [(line, code) for line, marker, code in blocks if marker == "a notebook cell"]
    assert cells
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # the kernel's environment: the results
    monkeypatch.setenv("NEPI_LAB_RESULTS", str(tmp_path / "results"))  # go to this test's folder
    for line, code in cells:
        nb = nbformat.v4.new_notebook(cells=[
            nbformat.v4.new_code_cell("get_ipython().ast_node_interactivity = 'all'"),
            nbformat.v4.new_code_cell(code)])
        client = nbclient.NotebookClient(nb, timeout=120, kernel_name=kernel_name,
                                         resources={"metadata": {"path": str(tmp_path)}})
        client.execute()  # raises CellExecutionError on any error
        outputs = nb.cells[1].outputs
        kinds = [kind for output in outputs for kind in output.get("data", {})]
        assert not [o for o in outputs if o.output_type == "error"], (line, outputs)
        assert kinds.count("application/vnd.jupyter.widget-view+json") >= 4, (line, kinds)  # the views
        assert "image/png" in kinds, (line, kinds)  # draw(ec), draw_topology(ec)
        html = "".join(o["data"].get("text/html", "") for o in outputs if "data" in o)
        assert "FINISHED" in html, (line, html[:2000])  # the views' last frames: the run ended
    assert os.listdir(tmp_path / "results" / "demo")


def test_a_failing_block_is_reported_with_its_line(tmp_path):
    """Control: the block parser finds blocks and their lines, markers included."""
    text = "x\n```python\nprint(1)\n```\n<!-- readme-test: not run (why) -->\n```python\n1/0\n```\n"
    assert python_blocks(text) == [(3, "", "print(1)\n"), (7, "not run (why)", "1/0\n")]
    pytest.raises(ZeroDivisionError, exec, python_blocks(text)[1][2])


def test_the_binder_link_opens_a_tutorial_that_binder_can_build():
    with open(README) as f:
        text = f.read()
    links = re.findall(r"\]\((https://mybinder\.org/v2/gh/[^)\s]+)\)", text)
    assert links, "no Binder launch link"
    root = os.path.dirname(README)
    for link in links:
        opened = re.fullmatch(r"https://mybinder\.org/v2/gh/[\w.-]+/[\w.-]+/HEAD\?urlpath=lab/tree/(\S+)",
                              link)
        assert opened, link
        assert os.path.isfile(os.path.join(root, opened.group(1))), link
    # what repo2docker reads: only binder/ when it exists, so it must install the package,
    # with the ns-3 extra (simulations run without root), and pin nothing of that extra
    with open(os.path.join(root, "binder", "postBuild")) as f:
        assert "pip install --no-cache-dir '.[ns3]'" in f.read()
    with open(os.path.join(root, "binder", "requirements.txt")) as f:
        pinned = {re.split(r"[=<>~!\[ ;]", line.strip(), maxsplit=1)[0].lower().replace("_", "-")
                  for line in f if line.strip() and not line.startswith("#")}
    assert pinned and not pinned & {"ns3", "cppyy", "cppyy-cling", "cppyy-backend", "cpycppyy"}, pinned
