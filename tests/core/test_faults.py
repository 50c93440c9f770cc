"""Faults in the engine itself: timeouts that expire, hooks that raise SystemExit or block
for ever, bad timeouts.  Nothing hangs, nothing is left half done (issue 11, items 6, 10-12).
"""

from __future__ import annotations

import asyncio
import math
import threading
import time

import pytest

from nepi_lab import (
    ExperimentController,
    ExperimentFailedError,
    InvalidInputError,
    ResourceManager,
    ResourceState,
    TaskStatus,
    WaitTimeoutError,
)

pytestmark = pytest.mark.faults

S = ResourceState
#: Lets the blocked hooks of a test go at its end (their threads must not outlive it).
unblock = threading.Event()


@pytest.fixture(autouse=True)
def release_blocked_hooks():
    unblock.clear()
    yield
    unblock.set()
    time.sleep(0.05)  # the hook threads see it and end


class SlowStop(ResourceManager):
    """Runs until stopped; stopping takes half a second."""

    _rtype = "faults::SlowStop"

    async def do_run(self) -> None:
        await asyncio.sleep(60)

    async def do_stop(self) -> None:
        await asyncio.sleep(0.5)


class Exits(ResourceManager):
    """Its run hook raises SystemExit(3)."""

    _rtype = "faults::Exits"

    async def do_run(self) -> None:
        raise SystemExit(3)


class ExitsInProvision(ResourceManager):
    _rtype = "faults::ExitsInProvision"

    async def do_provision(self) -> None:
        raise SystemExit(4)


class Stuck(ResourceManager):
    """A legacy synchronous hook that does not return (until the test ends)."""

    _rtype = "faults::Stuck"

    def do_provision(self) -> None:
        unblock.wait(120)


class UsesFiles(ResourceManager):
    """Needs the controller's own thread pool (as a file copy does)."""

    _rtype = "faults::UsesFiles"

    async def do_provision(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, time.sleep, 0.01)


# -- item 6: a timeout bounds the wait, not the action ----------------------------------------


def test_release_with_a_tiny_timeout_then_shutdown_releases_everything(ec):
    node = ec.register_resource("test::Node")
    apps = [ec.register_resource("faults::SlowStop", connectedTo=node) for _ in range(3)]
    ec.deploy()
    ec.wait_started(timeout=5)
    with pytest.raises(WaitTimeoutError):
        ec.release(timeout=0.001)
    ec.shutdown()  # completes what the release began; never a CancelledError
    assert {ec.state(g) for g in [node, *apps]} == {S.RELEASED}


def test_stop_with_a_short_timeout_still_stops(ec):
    slow = ec.register_resource("faults::SlowStop")
    ec.deploy()
    ec.wait_started(slow, timeout=5)
    with pytest.raises(WaitTimeoutError):
        ec.stop(slow, timeout=0.1)
    ec.wait(slow, S.STOPPED, timeout=5)  # the stop went on after the wait ended
    assert ec.state(slow) == S.STOPPED


def test_an_interrupted_release_goes_on(ec):
    apps = [ec.register_resource("faults::SlowStop") for _ in range(2)]
    ec.deploy()
    ec.wait_started(timeout=5)

    async def interrupted():
        task = asyncio.ensure_future(ec.release_async(timeout=10))
        await asyncio.sleep(0.1)
        task.cancel()  # what Ctrl-C does to the caller's wait
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(interrupted())
    ec.wait_released(apps, timeout=5)
    assert {ec.state(g) for g in apps} == {S.RELEASED}


# -- item 10: SystemExit (any BaseException) in a hook fails the resource; the loop lives --------


@pytest.mark.parametrize("rtype", ["faults::Exits", "faults::ExitsInProvision"])
def test_system_exit_in_a_hook_fails_the_resource_and_the_loop_lives(ec, rtype):
    bad = ec.register_resource(rtype)
    ec.deploy()
    with pytest.raises(ExperimentFailedError) as info:
        ec.wait_finished(timeout=5)
    assert ec.state(bad) in (S.FAILED, S.RELEASED)
    assert info.value.failures[0].error == "SystemExit"
    assert ec.loop.is_running()
    late = ec.register_resource("test::Instant")  # the controller still answers
    ec.release(late, timeout=5)


def test_system_exit_in_a_non_critical_hook_lets_the_rest_go_on(ec):
    bad = ec.register_resource("faults::Exits", critical=False)
    good = ec.register_resource("test::Application", duration=0.1)
    ec.deploy()
    ec.wait_finished(timeout=5)
    assert (ec.state(bad), ec.state(good)) == (S.FAILED, S.FINISHED)
    assert "SystemExit" in ec.explain(bad)


def test_system_exit_in_a_scheduled_callback_is_recorded(ec):
    def leave() -> None:
        raise SystemExit(5)

    tid = ec.schedule("0s", leave, track=True)
    deadline = time.monotonic() + 5
    while ec.get_task(tid).status == TaskStatus.NEW and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ec.get_task(tid).status == TaskStatus.ERROR
    assert isinstance(ec.get_task(tid).result, SystemExit)
    app = ec.register_resource("test::Application")
    ec.deploy()
    ec.wait_finished(app, timeout=5)  # the loop is alive


# -- item 11: a blocking synchronous hook never holds up timeouts, shutdown or file work ---------


def test_a_stuck_legacy_hook_is_abandoned_at_shutdown(tmp_path):
    ec = ExperimentController(local_dir=str(tmp_path))
    stuck = ec.register_resource("faults::Stuck")
    ec.deploy()
    time.sleep(0.2)
    assert "running its provision step" in ec.explain(stuck)
    began = time.monotonic()
    ec.shutdown(timeout=5)
    assert time.monotonic() - began < 2
    assert ec.state(stuck) == S.RELEASED


def test_stuck_legacy_hooks_do_not_starve_the_controllers_own_work(ec):
    stuck = [ec.register_resource("faults::Stuck", critical=False) for _ in range(3)]
    files = ec.register_resource("faults::UsesFiles")
    ec.deploy(wait_all_ready=False)
    ec.wait_deployed(files, timeout=5)  # not behind the hooks
    with pytest.raises(WaitTimeoutError):
        ec.wait_deployed(stuck, timeout=0.2)
    ec.release(timeout=5)
    assert {ec.state(g) for g in stuck} == {S.RELEASED}


# -- item 12: timeouts are checked ----------------------------------------------------------------

BAD_TIMEOUTS = [math.nan, math.inf, -math.inf, -1, "5s", True, 10**400]


@pytest.mark.parametrize("timeout", BAD_TIMEOUTS, ids=repr)
@pytest.mark.parametrize("call", ["wait_finished", "wait_deployed", "release", "stop", "start", "trace",
                                  "shutdown"])
def test_bad_timeouts_are_refused_and_change_nothing(ec, call, timeout):
    app = ec.register_resource("test::Application", duration=30)
    ec.deploy()
    ec.wait_started(app, timeout=5)
    args = {"wait_finished": (app,), "wait_deployed": (app,), "release": (app,), "stop": (app,),
            "start": (app,), "trace": (app, "log"), "shutdown": ()}[call]
    with pytest.raises(InvalidInputError, match="timeout must be None or a finite number"):
        getattr(ec, call)(*args, timeout=timeout)
    assert ec.state(app) == S.STARTED  # nothing released, stopped or closed
    ec.stop(app, timeout=5)


def test_bad_timeouts_are_refused_by_the_async_twins(ec):
    app = ec.register_resource("test::Application")

    async def cell():
        with pytest.raises(InvalidInputError):
            await ec.wait_finished_async(app, timeout=math.nan)
        with pytest.raises(InvalidInputError):
            await ec.release_async(app, math.nan)  # positional too

    asyncio.run(cell())
    assert ec.state(app) == S.NEW
