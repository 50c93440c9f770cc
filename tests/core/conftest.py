from __future__ import annotations

import threading

import pytest

from nepi_lab import ExperimentController

from ..guards import assert_threads_back_to
from . import types_for_tests  # noqa: F401  (registers the test:: types)


@pytest.fixture
def ec(tmp_path):
    """A controller writing into the test's temporary directory, always shut down."""
    controller = ExperimentController(exp_id="test", local_dir=str(tmp_path))
    yield controller
    controller.shutdown()


@pytest.fixture(autouse=True)
def no_thread_leak():
    """Every test leaves the thread count as it found it."""
    before = threading.active_count()
    yield
    assert_threads_back_to(before, 1.0)
