from __future__ import annotations

from ..guards import controller_fixture, thread_leak_guard
from . import types_for_files  # noqa: F401  (registers the files:: types)

ec = controller_fixture("files", "results")
no_thread_leak = thread_leak_guard(2.0)
