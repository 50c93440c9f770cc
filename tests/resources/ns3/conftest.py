"""Fixtures for the ns-3 resources: real simulations, in real ns-3 processes.

ns-3 costs 8-20 s and 640 MB per import, so the whole session shares one ns-3
process (the back end's own shared process, which forks a process per simulation):
the first simulation of the session pays the import, the others about a second.
Every test is checked to leave no simulation process behind; the shared process
itself is ended after the last test of this folder (the tests elsewhere check that no
child process of the interpreter is left).
"""

from __future__ import annotations

import importlib.util
import os

import psutil
import pytest

from nepi_lab.resources.ns3 import _process

#: seconds a test waits for its first simulation: the session's first imports ns-3 (8-20 s,
#: more under load); the shared ``ec`` fixture is tests/resources/conftest.py's
BUILD = 300


def ns3_missing() -> str | None:
    """Why ns-3 cannot be tested here (None: it can)."""
    if importlib.util.find_spec("ns") is None:
        return "the ns3 package is not installed: pip install 'nepi_lab[ns3]'"
    return None


needs_ns3 = pytest.mark.skipif(ns3_missing() is not None, reason=str(ns3_missing()))


@pytest.fixture(scope="package", autouse=True)
def shared_ns3_process():
    """End the shared ns-3 process (if a test started it) after this folder's tests."""
    yield
    _process.stop_shared_process()


@pytest.fixture(autouse=True)
def no_child_left():
    """No test leaves a process running: no simulation process (a child of the shared
    process, or of this interpreter), nothing else but the shared process itself."""
    yield
    shared = _process._zygote.process.pid if _process._zygote is not None else None
    me = psutil.Process(os.getpid())
    left = [c for c in me.children(recursive=True)
            if c.pid != shared and c.status() != psutil.STATUS_ZOMBIE]
    assert left == [], [c.cmdline() for c in left]
    assert _process.live_pids() == []
