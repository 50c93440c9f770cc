"""NEPI-style hooks run in a pool of their own, sized as NEPI's (20, or ``NEPI_NTHREADS``),
bounded whatever the number of resources; native plain-def hooks keep the pool of 2."""

from __future__ import annotations

import threading
import time

import pytest

from nepi_lab import ResourceManager as NativeResourceManager
from nepi_lab.compat import ResourceManager, clsinit_copy
from nepi_lab.compat.resource import NEPI_THREADS, nepi_threads
from nepi_lab.core.loop import EXECUTOR_THREADS


class Record:
    """What the hooks of one test saw: their intervals, the peak of hooks running at once
    and the peak thread count of the interpreter."""

    def __init__(self, sleep: float) -> None:
        self.sleep = sleep
        self.lock = threading.Lock()
        self.intervals: list[tuple[float, float]] = []
        self.running = 0
        self.peak_running = 0
        self.peak_threads = 0

    def hook(self) -> None:
        with self.lock:
            self.running += 1
            self.peak_running = max(self.peak_running, self.running)
            self.peak_threads = max(self.peak_threads, threading.active_count())
        start = time.monotonic()
        time.sleep(self.sleep)
        end = time.monotonic()
        with self.lock:
            self.running -= 1
            self.intervals.append((start, end))


record: Record | None = None  # set by each test before it deploys


@clsinit_copy
class Sleepy(ResourceManager):
    """A NEPI-style type whose ``do_deploy`` blocks, as NEPI's execution test's apps did."""

    _rtype = "dummy::SleepyDeploy"

    def do_deploy(self):
        record.hook()
        super().do_deploy()


class NativeSleepy(NativeResourceManager):
    """A native type with a plain-def (blocking) hook: it stays in the pool of 2."""

    _rtype = "test::NativeSleepyDeploy"

    def do_provision(self):  # noqa: D102 - a plain def on purpose
        record.hook()


def deploy(ec, rtype: str, count: int, sleep: float) -> Record:
    global record
    record = Record(sleep)
    guids = [ec.register_resource(rtype) for _ in range(count)]
    ec.deploy()
    ec.wait_deployed(guids, timeout=120)
    assert len(record.intervals) == count
    return record


def test_twenty_nepi_style_hooks_run_at_once(ec, monkeypatch):
    monkeypatch.delenv("NEPI_NTHREADS", raising=False)
    seen = deploy(ec, "dummy::SleepyDeploy", NEPI_THREADS, 0.5)
    starts = [start for start, _ in seen.intervals]
    ends = [end for _, end in seen.intervals]
    # every hook started before any ended: all 20 intervals overlap
    assert max(starts) < min(ends), sorted(seen.intervals)
    assert seen.peak_running == NEPI_THREADS


def test_the_pool_stays_bounded_with_200_nepi_style_resources(ec, monkeypatch):
    monkeypatch.delenv("NEPI_NTHREADS", raising=False)
    before = threading.active_count()
    seen = deploy(ec, "dummy::SleepyDeploy", 200, 0.05)
    assert seen.peak_running <= NEPI_THREADS
    # the controller's loop, its 2 blocking workers, the 20 NEPI hook threads (and a
    # hook thread whose place was freed but which is still returning): never per resource
    assert seen.peak_threads <= before + 1 + EXECUTOR_THREADS + 2 * NEPI_THREADS, seen.peak_threads
    assert ec._runner.hook_pool("nepi", 1).limit == NEPI_THREADS  # made once, its size kept


def test_nepi_nthreads_sizes_the_pool(ec, monkeypatch):
    monkeypatch.setenv("NEPI_NTHREADS", "3")
    assert nepi_threads() == 3
    seen = deploy(ec, "dummy::SleepyDeploy", 12, 0.1)
    assert seen.peak_running == 3


@pytest.mark.parametrize("value", ["0", "many", "-4"])
def test_a_wrong_nepi_nthreads_is_ignored_with_a_warning(monkeypatch, caplog, value):
    monkeypatch.setenv("NEPI_NTHREADS", value)
    assert nepi_threads() == NEPI_THREADS
    assert "NEPI_NTHREADS" in caplog.text


def test_native_plain_def_hooks_keep_the_pool_of_two(ec):
    seen = deploy(ec, "test::NativeSleepyDeploy", 8, 0.1)
    assert seen.peak_running == EXECUTOR_THREADS
    assert "nepi" not in ec._runner._pools  # no NEPI-style hook ran: no such pool made


def test_a_closed_pool_refuses_new_hooks(ec):
    ec.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        ec._runner.hook_pool("nepi", 4)
