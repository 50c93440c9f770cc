"""Every notebook survives "Restart Kernel and Run All Cells" in a real JupyterLab, twice.

nbclient runs cells one at a time, so no cell is ever queued behind a running one; in
JupyterLab, Run All sends every cell at once, and a synchronous call that re-entered
the kernel's event loop wedged the kernel there (issue 10: ``cannot enter context``,
later cells ``[*]`` forever) while the nbclient tests passed.  This test is what a
person does: open each tutorial (``notebooks/``) and each reproduction
(``tests/notebook/notebooks/``) in Chromium, restart and run all, twice — the second
time on a kernel that replaced a used one — and fail on a wedge, a cell over its time
bound, an error output, a ``Traceback`` on stderr or execution counts other than
1..N (see :mod:`tests.notebook.jupyterlab`).

Each run prints one line in the summary at the end of the pytest output.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ..kernels import missing_extra, notebook_needs
from .jupyterlab import missing, served_notebooks

if missing():
    pytest.skip(missing(), allow_module_level=True)

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent
TUTORIALS = sorted((HERE.parent.parent / "notebooks").glob("*.ipynb"))
NOTEBOOKS = TUTORIALS + sorted((HERE / "notebooks").glob("*.ipynb"))
RUNS = 2


@pytest.fixture(scope="module")
def lab(tmp_path_factory, kernel_name):
    """One JupyterLab (and one Chromium) serving copies of every notebook, on ``--kernel``."""
    with served_notebooks(tmp_path_factory.mktemp("lab"), NOTEBOOKS, kernel=kernel_name) as lab:
        yield lab


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 2 and (HERE / "notebooks" / "two-cell-wedge.ipynb") in NOTEBOOKS


@pytest.mark.parametrize("source", NOTEBOOKS, ids=lambda p: p.name)
def test_restart_and_run_all_twice(lab, source, kernel_name, summary_line):
    """Restart & Run All, twice in a row, ends with every cell run once, in order, without
    an error: a blocking call in a cell never wedges the kernel, whatever is queued."""
    for extra in notebook_needs(source):
        if missing_extra(kernel_name, extra):
            pytest.skip(missing_extra(kernel_name, extra))
    notebook = lab.open(source.name)
    results = []
    for attempt in range(1, RUNS + 1):
        result = notebook.restart_and_run_all()
        results.append(result)
        summary_line(f"[{kernel_name}] Restart & Run All {attempt}/{RUNS} {result.summary()}")
    failed = [f"run {i}/{RUNS}: " + "; ".join(r.problems) for i, r in enumerate(results, 1) if not r.passed]
    assert not failed, f"{source.name} on kernel {kernel_name}:\n" + "\n".join(failed)
