"""``notebooks/09-lab-checks.ipynb`` on both of its paths: namespaces as root, localhost
otherwise (``NEPI_LAB_NAMESPACES=0`` is how the localhost path is tested as root).

The notebook asserts its own grade on each path; here, what it shows must be that
path's, the checks table must be in the saved output as plain HTML (the static copy
beside the widget), and the grading of the shipped submissions must be there too.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="the test extra installs nbformat")
nbclient = pytest.importorskip("nbclient", reason="the test extra installs nbclient")

pytestmark = pytest.mark.slow

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "09-lab-checks.ipynb"


@pytest.mark.parametrize("path_taken", ["namespaces", "localhost"])
def test_the_lab_notebook_grades_its_own_run_and_the_class(path_taken, tmp_path, monkeypatch, kernel_name):
    if path_taken == "namespaces":
        missing = [tool for tool in ("ip", "tc", "nft", "iperf3") if shutil.which(tool) is None]
        if os.geteuid() != 0 or missing:
            pytest.skip(f"the namespaces path needs root and {', '.join(missing) or 'its tools'}")
        monkeypatch.delenv("NEPI_LAB_NAMESPACES", raising=False)
    else:
        if shutil.which("iperf3") is None:
            pytest.skip("the notebook's measurements need iperf3")
        monkeypatch.setenv("NEPI_LAB_NAMESPACES", "0")
    monkeypatch.setenv("NEPI_LAB_RESULTS", str(tmp_path / "results"))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=120, kernel_name=kernel_name,
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    text = "".join(o.get("text", "") + o.get("data", {}).get("text/markdown", "") for o in outputs)
    views = [o["data"]["text/html"] for o in outputs
             if "ChecksView" in o.get("data", {}).get("text/plain", "")]
    assert len(views) == 2  # the live run's, and dave's run directory
    live, dave = views
    if path_taken == "namespaces":
        assert "**Namespaces path**: 10 / 10 points, every check passed." in text
        assert live.count('data-status="passed"') == 7 and "grade <b>10 / 10</b>" in live
    else:
        assert "**Localhost path**: 7 / 10 points" in text and "Namespaces path" not in text
        assert live.count('data-status="passed"') == 5 and live.count('data-status="failed"') == 2
    assert 'data-check="routes reaches FINISHED" data-status="failed"' in dave
    assert 'data-status="cannot-evaluate"' in dave and "grade <b>7 / 10</b>" in dave
    grades = next(o["data"]["text/html"] for o in outputs
                  if "<th>percent</th>" in o.get("data", {}).get("text/html", ""))
    for student in ("alice", "bob", "carol", "dave", "erin"):
        assert f"<td>{student}</td>" in grades
    assert os.listdir(tmp_path / "results") == ["lab-line"]  # the run went where the tests said
