from __future__ import annotations

from ..guards import controller_fixture, thread_leak_guard
from . import types_for_tests  # noqa: F401  (registers the test:: types)

ec = controller_fixture("test")
no_thread_leak = thread_leak_guard(1.0)
