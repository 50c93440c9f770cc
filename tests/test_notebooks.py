"""Every tutorial notebook runs start to finish in a real Jupyter kernel (``--kernel``).

A notebook that needs an extra (``nepi_lab_test.needs`` in its metadata: ``["ns3"]``) is
marked slow, and skipped, saying so, on a kernel without it."""

from __future__ import annotations

import glob
import os
import shutil

import pytest

from .kernels import missing_extra, notebook_needs

nbformat = pytest.importorskip("nbformat", reason="the test extra installs nbformat")
nbclient = pytest.importorskip("nbclient", reason="the test extra installs nbclient")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb")))


def _notebook(path: str):
    """``path`` as a parameter: slow if it needs an extra (ns-3's import alone is 10-20 s)."""
    return pytest.param(path, id=os.path.basename(path),
                        marks=[pytest.mark.slow] if notebook_needs(path) else [])


def test_there_are_notebooks():
    assert NOTEBOOKS


@pytest.mark.parametrize("path", [_notebook(path) for path in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch, kernel_name):
    for extra in notebook_needs(path):
        if missing_extra(kernel_name, extra):
            pytest.skip(missing_extra(kernel_name, extra))
    monkeypatch.setenv("NEPI_LAB_RESULTS", str(tmp_path))
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs, f"{os.path.basename(path)}: outputs must be stripped in the repository"
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name=kernel_name,
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError on any error
    assert os.listdir(tmp_path), "the notebook's run left no run directory"


@pytest.mark.parametrize("path_taken", ["namespaces", "localhost"])
def test_the_namespaces_notebook_says_what_its_path_shows(path_taken, tmp_path, monkeypatch, kernel_name):
    """06 runs on network namespaces as root, on localhost otherwise (or with
    ``NEPI_LAB_NAMESPACES=0``, how the localhost path is tested as root): the text it
    shows must be that path's, TTL 63 and just under 20 Mbit/s only where they are true."""
    if path_taken == "namespaces":
        missing = [tool for tool in ("ip", "tc", "nft", "iperf3") if shutil.which(tool) is None]
        if os.geteuid() != 0 or missing:
            pytest.skip(f"the namespaces path needs root and {', '.join(missing) or 'its tools'}")
        monkeypatch.delenv("NEPI_LAB_NAMESPACES", raising=False)
    else:
        if shutil.which("iperf3") is None:
            pytest.skip("the notebook's measurements need iperf3")
        monkeypatch.setenv("NEPI_LAB_NAMESPACES", "0")
    monkeypatch.setenv("NEPI_LAB_RESULTS", str(tmp_path))
    nb = nbformat.read(os.path.join(ROOT, "notebooks", "06-namespaces.ipynb"), as_version=4)
    nbclient.NotebookClient(nb, timeout=120, kernel_name=kernel_name,
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    shown = "".join(output.get("text", "") + output.get("data", {}).get("text/markdown", "")
                    for cell in nb.cells if cell.cell_type == "code" for output in cell.outputs)
    if path_taken == "namespaces":
        assert "network namespaces: yes" in shown, shown
        assert "**Namespaces path**: the replies came back with TTL 63, one hop less" in shown, shown
        assert "Localhost path" not in shown
    else:
        assert "network namespaces: not used (NEPI_LAB_NAMESPACES=0): using the localhost" in shown, shown
        assert "**Localhost path**: the replies came back with TTL 64, as sent" in shown, shown
        assert "Namespaces path" not in shown and "ttl=63" not in shown
