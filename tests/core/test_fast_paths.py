"""The controller's fast paths (issue 17) behave as the general ones: a ``do_run`` that
never awaits runs without a task, event times are exact integers of nanoseconds, and the
event log takes rows from several threads without a lock."""

from __future__ import annotations

import asyncio
import json
import os
import threading

import pytest

from nepi_lab import (
    ECState,
    ExperimentController,
    ExperimentFailedError,
    InvalidInputError,
    ResourceManager,
    ResourceState,
    UnknownGuidError,
    WaitTimeoutError,
)
from nepi_lab.core.events import EventLog, seconds, seconds_text
from nepi_lab.core.registry import get_resource_type

from ..guards import wait_until

S = ResourceState


def test_only_a_do_run_without_await_is_run_in_place():
    assert get_resource_type("test::Instant")._run_cannot_suspend
    assert get_resource_type("test::InstantFailing")._run_cannot_suspend
    assert not get_resource_type("test::Application")._run_cannot_suspend  # awaits (when it sleeps)
    assert not get_resource_type("test::Node")._run_cannot_suspend  # no do_run: long-lived

    class Blocking(ResourceManager):  # a legacy synchronous hook runs in the pool: a task
        def do_run(self) -> None:
            return None

    class Looping(ResourceManager):
        async def do_run(self) -> None:
            async for _ in self.ticks():
                pass

        async def ticks(self):
            yield 1

    assert not Blocking._run_cannot_suspend
    assert not Looping._run_cannot_suspend


def test_a_do_run_in_place_finishes_or_fails_as_with_a_task(ec):
    ok = [ec.register_resource("test::Instant") for _ in range(5)]
    bad = ec.register_resource("test::InstantFailing", critical=False)
    ec.deploy()
    ec.wait_finished(timeout=10)
    assert {ec.state(g) for g in ok} == {S.FINISHED}
    assert ec.state(bad) == S.FAILED
    (failure,) = ec.failures
    assert (failure.guid, failure.step, failure.state) == (bad, "run", S.STARTED)
    assert "in state STARTED" in failure.message  # it ran once STARTED, as a task's would
    for g in [*ok, bad]:
        assert [e.new for e in ec.events.for_guid(g)] == [
            S.NEW, S.DISCOVERED, S.PROVISIONED, S.READY, S.STARTED, S.FAILED if g == bad else S.FINISHED]
    assert ec.get_start_time(bad) <= ec.get_failed_time(bad)


def test_a_critical_failure_in_place_fails_the_experiment(tmp_path):
    with ExperimentController(exp_id="in-place", local_dir=str(tmp_path)) as ec:
        ec.register_resource("test::Instant")
        ec.register_resource("test::InstantFailing")
        ec.deploy()
        try:
            ec.wait_finished(timeout=10)
        except Exception as exc:  # noqa: BLE001 - the type is checked below
            assert type(exc).__name__ == "ExperimentFailedError"
        else:
            raise AssertionError("a critical failure in do_run did not fail the experiment")
        assert ec.ecstate.name == "FAILED"


class SeesItsStart(ResourceManager):
    """Records, as its do_run (no await) runs, its state and its last event so far."""

    _rtype = "test::SeesItsStart"
    seen: dict[int, tuple[ResourceState, ResourceState]] = {}

    async def do_run(self) -> None:
        SeesItsStart.seen[self.guid] = (self.state, self.ec.events.for_guid(self.guid)[-1].new)


class CancelledInPlace(ResourceManager):
    """A do_run (no await) that raises CancelledError: the resource stays STARTED."""

    _rtype = "test::CancelledInPlace"

    async def do_run(self) -> None:
        raise asyncio.CancelledError


def _deploy_while_waiting(ec, guids, wait: str) -> None:
    """Deploy ``guids`` once ``ec.<wait>_async(guids)`` waits on them (from the loop, so that
    the wait holds watchers on the NEW resources before anything runs); return when it does."""

    async def scenario() -> None:
        waiting = asyncio.ensure_future(getattr(ec, f"{wait}_async")(guids, timeout=10))
        for _ in range(100):  # a few loop steps: the wait's own tasks start
            if all(ec.get_resource(g)._watchers for g in guids):
                break
            await asyncio.sleep(0)
        assert all(ec.get_resource(g)._watchers for g in guids)  # it now watches the NEW resources
        ec.deploy(guids)
        await waiting

    asyncio.run_coroutine_threadsafe(scenario(), ec.loop).result(timeout=20)


def test_a_do_run_in_place_sees_its_start_recorded(ec):
    # without subscribers (the quiet start: watchers told after the run) and with one
    for subscribed, wait in ((False, "wait_started"), (False, "wait_finished"), (True, "wait_started")):
        published = []
        unsubscribe = ec.events.subscribe(published.append) if subscribed else None
        guids = [ec.register_resource("test::SeesItsStart") for _ in range(3)]
        _deploy_while_waiting(ec, guids, wait)
        ec.wait_finished(guids, timeout=10)
        for g in guids:
            assert SeesItsStart.seen[g] == (S.STARTED, S.STARTED)
            events = ec.events.for_guid(g)
            assert [e.new for e in events][-2:] == [S.STARTED, S.FINISHED]
            assert events[-2].time <= events[-1].time
            assert ec.get_start_time(g) == events[-2].datetime
            assert ec.get_finish_time(g) == events[-1].datetime
        if subscribed:
            assert [(e.guid, e.new) for e in published if e.new in (S.STARTED, S.FINISHED)] == [
                (g, s) for g in guids for s in (S.STARTED, S.FINISHED)]
            unsubscribe()


def test_a_do_run_in_place_that_is_cancelled_stays_started_and_is_waited_for(ec):
    app = ec.register_resource("test::CancelledInPlace")
    _deploy_while_waiting(ec, [app], "wait_started")  # told, though no state change came after STARTED
    assert ec.state(app) == S.STARTED
    assert ec.failures == []


def test_event_times_read_back_exactly(ec):
    apps = [ec.register_resource("test::Instant") for _ in range(20)]
    ec.deploy()
    ec.wait_finished(timeout=10)
    ec.events.flush()
    with open(os.path.join(ec.run_dir, "events.jsonl"), encoding="utf-8") as f:
        written = [json.loads(line) for line in f]
    assert [r["time"] for r in written] == [e.time for e in ec.events]  # the same floats
    for g in apps:  # a resource's state times are its events' times
        events = ec.events.for_guid(g)
        assert ec.get_start_time(g) == next(e.datetime for e in events if e.new == S.STARTED)
        assert ec.get_register_time(g) == events[0].datetime


def test_seconds_text_is_exact_for_any_time():
    for ns in (0, 1, 999_999_999, 1_000_000_000, 1_764_600_000_123_456_789, -1, -1_500_000_000,
               9_200_000_000_000_000_000, 2**63 - 1, -(2**63)):
        text = seconds_text(ns)
        assert json.loads(f'{{"time": {text}}}')["time"] == float(text) == seconds(ns) == ns / 10**9
        assert int(text.removesuffix("e-9")) == ns  # nothing lost


def test_a_time_given_in_seconds_reads_back_as_given(tmp_path):
    log = EventLog()
    log.attach_file(str(tmp_path / "events.jsonl"), lambda: None)
    given = [1764600000.1234567, 1764600000.0, 0.1, -12.25, 1.0e-9, 9.2e9, 1796142759.4735637]
    for i, t in enumerate(given):
        log.append(t, i, "test::Plain", -1, 0)
    log.close()
    assert [e.time for e in log] == given
    with open(tmp_path / "events.jsonl", encoding="utf-8") as f:
        assert [json.loads(line)["time"] for line in f] == given


def test_rows_from_two_threads_keep_their_details(tmp_path):
    log = EventLog()
    path = str(tmp_path / "events.jsonl")
    log.attach_file(path, lambda: None)
    start = threading.Barrier(2)

    def plain() -> None:
        start.wait()
        for i in range(20_000):
            log.append_ns(1_764_600_000_000_000_000 + i, 1_000_000 + i, "test::Plain", -1, 0)

    def detailed() -> None:
        start.wait()
        for i in range(3_000):
            log.append_ns(1_764_600_000_000_000_000 + i, i, "test::Detailed", 0, int(S.FAILED),
                       detail=f"detail of {i}", sim_time=i / 4 if i % 3 == 0 else None)
            if i % 500 == 0:
                log.flush()  # flushes while the other thread appends

    threads = [threading.Thread(target=plain), threading.Thread(target=detailed)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    events = list(log)
    assert len(events) == 23_000
    detailed_events = [e for e in events if e.rtype == "test::Detailed"]
    assert [e.guid for e in detailed_events] == list(range(3_000))  # in order
    for e in detailed_events:
        assert e.detail == f"detail of {e.guid}"
        assert e.sim_time == (e.guid / 4 if e.guid % 3 == 0 else None)
    assert all(e.detail is None and e.sim_time is None for e in events if e.rtype == "test::Plain")
    with open(path, encoding="utf-8") as f:
        written = [json.loads(line) for line in f]
    assert [(r["guid"], r["detail"], r.get("sim_time")) for r in written] == [
        (e.guid, e.detail, e.sim_time) for e in events]
    assert [r["time"] for r in written] == [e.time for e in events]


def _on_disk_soon(path: str, check) -> dict:
    """experiment.json once ``check(description)`` holds, or after 5 s."""

    def read() -> dict:
        with open(path) as f:
            return json.load(f)

    wait_until(lambda: check(read()), timeout=5)
    return read()


def test_deploys_and_releases_one_by_one_share_the_description_writes(tmp_path, monkeypatch):
    """A loop of ``deploy(guid)`` or ``release(guid)`` calls does not write the whole
    description at each (that made n calls cost O(n²)): the first deploy is on disk when
    ``deploy()`` returns, the later calls share writes and are on disk soon after the
    last, without any other call."""
    from nepi_lab.core import controller

    writes = []
    write = controller.write_text_atomic
    monkeypatch.setattr(controller, "write_text_atomic", lambda *a: writes.append(1) or write(*a))
    n = 400
    with ExperimentController(exp_id="one-by-one", local_dir=str(tmp_path)) as ec:
        path = os.path.join(ec.run_dir, "experiment.json")
        guids = [ec.register_resource("test::Node") for _ in range(n)]
        ec.set(guids[0], "name", "first")
        ec.deploy(guids[0])
        with open(path) as f:  # written in deploy()'s thread, before it returned
            assert json.load(f)["resources"][0] == {"guid": guids[0], "type": "test::Node",
                                                    "attributes": {"name": "first"}}
        for guid in guids[1:-1]:
            ec.deploy(guid)
        ec.set(guids[-1], "name", "last")
        ec.deploy(guids[-1])
        assert len(writes) <= n // 4, len(writes)
        last = _on_disk_soon(path, lambda d: d["resources"][-1].get("attributes") == {"name": "last"})
        assert last["resources"][-1] == {"guid": guids[-1], "type": "test::Node",
                                         "attributes": {"name": "last"}}
        ec.wait_started(guids)
        writes.clear()
        middle = guids[n // 2]
        for guid in guids[n // 2 + 1:] + guids[n // 2 - 1::-1]:  # from the middle out, either way
            ec.release(guid)
        assert ec.ecstate == ECState.RUNNING  # one is not released yet
        ec.release(middle)
        assert ec.ecstate == ECState.RELEASED
        assert len(writes) <= n // 4, len(writes)
        assert _on_disk_soon(path, lambda d: d["ecstate"] == "RELEASED")["ecstate"] == "RELEASED"
    assert ec.state(guids[-1]) == S.RELEASED


def test_a_wait_with_nothing_to_wait_for_stays_in_the_callers_thread(tmp_path, monkeypatch):
    """A synchronous wait whose resources already reached its state, or the read of a
    trace of a resource that no longer runs, returns without going to the loop thread; a
    wait that must wait, or must raise, still goes there."""
    with ExperimentController(exp_id="reached", local_dir=str(tmp_path)) as ec:
        node = ec.register_resource("test::Node")
        app = ec.register_resource("test::Application", duration=1.5)
        ec.register_connection(app, node)
        ec.deploy()
        ec.wait_started(app)
        hops = []
        run = ec._runner.run
        monkeypatch.setattr(ec._runner, "run", lambda *a: hops.append(a[1]) or run(*a))
        ec.wait_deployed([node, app])
        ec.wait_started([node, app])
        ec.wait(app, "STARTED")
        ec.wait_finished(node)  # long-lived: its work is over once STARTED
        assert hops == []
        ec.wait_finished(app, timeout=10)  # runs for 1.5 s: waited for on the loop
        assert hops == ["wait_finished"] and ec.state(app) == S.FINISHED
        ec.wait_finished([node, app])
        ec.wait(app, "STOPPED")
        # its trace, written and over: read here too
        assert ec.trace(app, "log") == f"ran {app}\n"
        assert ec.trace(app, "log", "stream", block=3, offset=1) == f"ran {app}\n"[3:6]
        assert hops == ["wait_finished"]
        with pytest.raises(InvalidInputError):  # refused, though nothing is to be waited for
            ec.wait_finished(app, timeout=-1)
        with pytest.raises(UnknownGuidError):
            ec.wait_finished([app, 99])
        with pytest.raises(WaitTimeoutError):  # not reached: the loop waits, and says why not
            ec.wait(app, "FAILED", timeout=0.05)
        assert hops[1:] == ["wait_finished", "wait"]
    with ExperimentController(exp_id="aborted", local_dir=str(tmp_path)) as ec:
        done = ec.register_resource("test::Instant")
        ec.register_resource("test::InstantFailing")
        ec.deploy()
        with pytest.raises(ExperimentFailedError):
            ec.wait_finished(timeout=10)
        with pytest.raises(ExperimentFailedError):  # reached, but the experiment failed: said again
            ec.wait_finished(done)
