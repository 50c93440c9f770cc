"""Fixtures for the compatibility layer's tests: the back ends' guards (nothing a test
starts outlives it), a temporary ``home`` and a controller in the test's folder."""

from __future__ import annotations

from ..guards import controller_fixture, home, no_cgroup_left, no_child_left, thread_leak_guard  # noqa: F401  (fixtures)

ec = controller_fixture("compat", "results")
no_thread_leak = thread_leak_guard(2.0)
