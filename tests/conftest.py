"""Options shared by the whole suite: which Jupyter kernel the notebook tests run on.

``--kernel NAME`` (or ``$NEPI_LAB_TEST_KERNEL``) names the kernelspec that the notebook
tests start: nbclient's (``tests/test_notebooks.py``, ``tests/notebook/test_kernel.py``)
and JupyterLab's (``tests/notebook/test_jupyterlab*.py``).  The default, ``python3``, is
the test environment's own ipykernel; ``.ci/run`` also runs those tests on a kernel from
a second virtual environment with ipykernel 6 (see there).  The header of every run
says which kernel and which ipykernel it is.

Tests that want a line in the final summary (the Run-All results per notebook) append
it with the ``summary_line`` fixture.

Every test keeps the index of runs (``nepi-lab cleanup``'s) and, unless it says
otherwise, its run directories in its temporary folder, never the user's:
:func:`run_records`; nepi_lab's cache is the session's (``NEPI_LAB_CACHE``), not
``~/.cache/nepi_lab``.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

from nepi_lab.core.registry import CACHE_ENV
from nepi_lab.core.results import RESULTS_ENV
from nepi_lab.resources.linux._records import STATE_ENV

from .kernels import describe

_SUMMARY = pytest.StashKey[list]()
_RESULTS = pytest.StashKey[str]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--kernel", default=os.environ.get("NEPI_LAB_TEST_KERNEL", "python3"), metavar="NAME",
        help="kernelspec the notebook tests run on (default: $NEPI_LAB_TEST_KERNEL, else python3)")


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_SUMMARY] = []
    # outside any test too (a module's fixture, a helper at import): never the user's folder
    config.stash[_RESULTS] = tempfile.mkdtemp(prefix="nepi_lab-test-results-")
    os.environ.setdefault(RESULTS_ENV, config.stash[_RESULTS])
    os.environ.setdefault(CACHE_ENV, os.path.join(config.stash[_RESULTS], "cache"))  # not ~/.cache


def pytest_unconfigure(config: pytest.Config) -> None:
    if _RESULTS in config.stash:
        shutil.rmtree(config.stash[_RESULTS], ignore_errors=True)


def pytest_report_header(config: pytest.Config) -> str:
    return "notebook kernel: " + describe(config.getoption("--kernel"))


@pytest.fixture(scope="session")
def kernel_name(request: pytest.FixtureRequest) -> str:
    """The kernelspec the notebook tests start (``--kernel``)."""
    return request.config.getoption("--kernel")


@pytest.fixture(scope="session")
def summary_line(request: pytest.FixtureRequest):
    """``summary_line(text)`` adds ``text`` to the summary printed at the end of the run."""
    return request.config.stash[_SUMMARY].append


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    lines = config.stash[_SUMMARY]
    if lines:
        terminalreporter.section("notebook runs in JupyterLab")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(autouse=True)
def run_records(request, tmp_path, monkeypatch):
    """The index of runs (for ``nepi-lab cleanup``) in the test's temporary folder, also
    for the scripts, kernels and commands it starts, never the user's.  A back-end test
    leaves it empty: what it started is stopped, or cleaned up by the test itself.
    A controller without ``local_dir`` writes its run directory there too."""
    state = tmp_path / "state"
    monkeypatch.setenv(STATE_ENV, str(state))
    monkeypatch.setenv(RESULTS_ENV, str(tmp_path / "results"))
    yield state
    if "resources" in request.path.parts:
        left = sorted(os.listdir(state / "runs")) if (state / "runs").exists() else []
        assert left == [], "runs left indexed (something may still run on their hosts)"
