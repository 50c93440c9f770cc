"""Shared by every back-end test (linux, netns): guards (nothing a test starts outlives
it), a temporary ``home`` and a controller writing into the test's temporary folder."""

from __future__ import annotations

import os

import psutil
import pytest

from nepi_lab import ExperimentController

from ..guards import thread_leak_guard


@pytest.fixture
def home(tmp_path):
    """The nodes' ``home``: never the real $HOME."""
    path = tmp_path / "home"
    path.mkdir()
    return str(path)


@pytest.fixture
def ec(request, tmp_path):
    """A controller writing its results into the test's temporary folder, always shut
    down; its experiment id is the back end's folder name (``linux``, ``netns``)."""
    controller = ExperimentController(exp_id=request.path.parent.name, local_dir=str(tmp_path / "results"))
    yield controller
    controller.shutdown()


no_thread_leak = thread_leak_guard(2.0)


@pytest.fixture(autouse=True)
def no_child_left():
    """No test leaves a child process of this interpreter running."""
    yield
    me = psutil.Process(os.getpid())
    left = [c for c in me.children(recursive=True) if c.status() != psutil.STATUS_ZOMBIE]
    assert left == [], [c.cmdline() for c in left]
