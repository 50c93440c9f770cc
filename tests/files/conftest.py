from __future__ import annotations

import threading

import pytest

from nepi_lab import ExperimentController

from ..guards import assert_threads_back_to
from . import types_for_files  # noqa: F401  (registers the files:: types)


@pytest.fixture
def ec(tmp_path):
    """A controller writing into the test's temporary directory, always shut down."""
    controller = ExperimentController(exp_id="files", local_dir=str(tmp_path / "results"))
    yield controller
    controller.shutdown()


@pytest.fixture(autouse=True)
def no_thread_leak():
    """Every test leaves the thread count as it found it (a refused load leaves no controller)."""
    before = threading.active_count()
    yield
    assert_threads_back_to(before, 2.0)
