"""Guards for the runs layer's tests: every test leaves the thread count and the child
processes as it found them."""

from __future__ import annotations

from ..guards import home, no_cgroup_left, no_child_left, thread_leak_guard  # noqa: F401  (fixtures)

no_thread_leak = thread_leak_guard(2.0)
