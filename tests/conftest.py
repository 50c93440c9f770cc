"""Options shared by the whole suite: which Jupyter kernel the notebook tests run on.

``--kernel NAME`` (or ``$NEPI_LAB_TEST_KERNEL``) names the kernelspec that the notebook
tests start: nbclient's (``tests/test_notebooks.py``, ``tests/notebook/test_kernel.py``)
and JupyterLab's (``tests/notebook/test_jupyterlab*.py``).  The default, ``python3``, is
the test environment's own ipykernel; ``.ci/run`` also runs those tests on a kernel from
a second virtual environment with ipykernel 6 (see there).  The header of every run
says which kernel and which ipykernel it is.

Tests that want a line in the final summary (the Run-All results per notebook) append
it with the ``summary_line`` fixture.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

_SUMMARY = pytest.StashKey[list]()
_IPYKERNEL_VERSION = "from importlib.metadata import version; print(version('ipykernel'))"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--kernel", default=os.environ.get("NEPI_LAB_TEST_KERNEL", "python3"), metavar="NAME",
        help="kernelspec the notebook tests run on (default: $NEPI_LAB_TEST_KERNEL, else python3)")


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_SUMMARY] = []


def kernel_description(name: str) -> str:
    """``NAME: <python> (ipykernel X.Y.Z)``, read from the kernelspec and its interpreter."""
    try:
        from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    except ImportError:
        return f"{name}: jupyter_client is not installed"
    try:
        argv = KernelSpecManager().get_kernel_spec(name).argv
    except NoSuchKernel:
        return f"{name}: no such kernelspec"
    python = argv[0]
    # as jupyter_client does when it launches the kernel
    if python in {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])}:
        python = sys.executable
    try:
        version = subprocess.run([python, "-c", _IPYKERNEL_VERSION],
                                 capture_output=True, text=True, timeout=60).stdout.strip()
    except OSError as exc:
        version = f"cannot run: {exc}"
    return f"{name}: {python} (ipykernel {version or '?'})"


def pytest_report_header(config: pytest.Config) -> str:
    return "notebook kernel: " + kernel_description(config.getoption("--kernel"))


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
