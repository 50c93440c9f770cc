"""Checks shared by the test packages' leak guards."""

from __future__ import annotations

import threading


def assert_threads_back_to(before: int, seconds: float) -> None:
    """Wait up to ``seconds`` for the thread count to fall back to ``before``; fail naming
    the threads still alive otherwise."""
    for _ in range(int(seconds / 0.01)):
        if threading.active_count() <= before:
            return
        threading.Event().wait(0.01)
    assert threading.active_count() <= before, [t.name for t in threading.enumerate()]
