"""Guards shared by every back-end test (linux, netns): nothing a test starts outlives it."""

from __future__ import annotations

import os
import threading

import psutil
import pytest


@pytest.fixture(autouse=True)
def no_thread_leak():
    """Every test leaves the thread count as it found it."""
    before = threading.active_count()
    yield
    for _ in range(200):
        if threading.active_count() <= before:
            break
        threading.Event().wait(0.01)
    assert threading.active_count() <= before, [t.name for t in threading.enumerate()]


@pytest.fixture(autouse=True)
def no_child_left():
    """No test leaves a child process of this interpreter running."""
    yield
    me = psutil.Process(os.getpid())
    left = [c for c in me.children(recursive=True) if c.status() != psutil.STATUS_ZOMBIE]
    assert left == [], [c.cmdline() for c in left]
