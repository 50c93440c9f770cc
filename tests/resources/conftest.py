"""Shared by every back-end test (linux, netns): guards (nothing a test starts outlives
it), a temporary ``home`` and a controller writing into the test's temporary folder."""

from __future__ import annotations

import pytest

from nepi_lab import ExperimentController

from ..guards import home, no_cgroup_left, no_child_left, thread_leak_guard  # noqa: F401  (fixtures)


@pytest.fixture
def ec(request, tmp_path):
    """A controller writing its results into the test's temporary folder, always shut
    down; its experiment id is the back end's folder name (``linux``, ``netns``)."""
    controller = ExperimentController(exp_id=request.path.parent.name, local_dir=str(tmp_path / "results"))
    yield controller
    controller.shutdown()


no_thread_leak = thread_leak_guard(2.0)
