"""Guards for the runner's tests: no thread and no process outlives a test."""

from __future__ import annotations

import os

import psutil
import pytest

from ..guards import thread_leak_guard

no_thread_leak = thread_leak_guard(2.0)


@pytest.fixture(autouse=True)
def no_child_left():
    """No test leaves a child process of this interpreter running."""
    yield
    me = psutil.Process(os.getpid())
    left = [c for c in me.children(recursive=True) if c.status() != psutil.STATUS_ZOMBIE]
    assert left == [], [c.cmdline() for c in left]
