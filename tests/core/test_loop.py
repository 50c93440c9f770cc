"""The controller's loop thread and the Inbox that brings calls back into a caller's thread.

A thread that runs an event loop (a Jupyter kernel's) gets the calls posted to its
inbox from other threads: by its loop while idle, and by the synchronous controller
call it is blocked in, which never re-enters that loop.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

import pytest

from nepi_lab import ExperimentController, ResourceState
from nepi_lab.core.loop import inbox

S = ResourceState


def test_no_inbox_without_a_running_loop():
    assert inbox() is None


def test_posted_calls_run_on_the_threads_loop_in_time_order():
    async def main():
        box = inbox()
        assert box is inbox()  # one per thread and loop
        ran = []
        done = asyncio.Event()
        loop = asyncio.get_running_loop()

        def post():  # from another thread, out of order
            box.call_later(0.10, lambda: ran.append(("late", threading.get_ident())))
            box.call_later(0.02, lambda: ran.append(("early", threading.get_ident())))
            box.call_later(0.15, lambda: loop.call_soon(done.set))

        threading.Thread(target=post).start()
        await asyncio.wait_for(done.wait(), 5)
        return ran

    ran = asyncio.run(main())
    assert ran == [("early", threading.get_ident()), ("late", threading.get_ident())]


def test_a_blocking_call_runs_posted_calls_without_reentering_the_loop(ec):
    app = ec.register_resource("test::Application", duration=0.5)

    async def cell():
        box = inbox()
        loop = asyncio.get_running_loop()
        queued = []
        loop.call_soon(queued.append, "next cell")  # must wait until the cell ends
        ran = []
        ec.events.subscribe(lambda e: e.new == S.STARTED and box.call_soon(
            lambda: ran.append((threading.get_ident(), ec.state(app), list(queued)))))
        ec.deploy()
        ec.wait_finished(app, timeout=5)  # blocks this thread; runs the posted call meanwhile
        return ran, queued

    ran, queued = asyncio.run(cell())
    assert ran == [(threading.get_ident(), S.STARTED, [])]  # during the wait, before the loop ran
    assert queued == ["next cell"]


def test_interrupt_ends_the_wait_not_the_experiment(ec):
    """Ctrl-C / Kernel -> Interrupt during a blocking call in a kernel-like thread."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach the main thread only")
    app = ec.register_resource("test::Application", duration=1.0)

    async def cell():
        inbox()  # this thread has views
        ec.deploy()
        ec.wait_started(app, timeout=5)
        timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        began = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            ec.wait_finished(app, timeout=30)
        return time.monotonic() - began

    loop = asyncio.new_event_loop()  # as a kernel's: asyncio.run() would turn SIGINT into a cancel
    try:
        waited = loop.run_until_complete(cell())
    finally:
        loop.close()
    assert waited < 0.2 + 0.5
    assert ec.state(app) == S.STARTED  # it goes on
    ec.wait_finished(app, timeout=5)
    assert ec.state(app) == S.FINISHED


def test_a_posted_call_interrupted_runs_again_later():
    calls = []

    async def main():
        box = inbox()
        first = True

        def interrupted():
            nonlocal first
            calls.append("tried")
            if first:
                first = False
                raise KeyboardInterrupt

        box.call_soon(interrupted)
        with pytest.raises(KeyboardInterrupt):
            box._run_due()
        box._run_due()

    asyncio.run(main())
    assert calls == ["tried", "tried"]


def test_shutdown_async_from_another_loop_stops_the_thread(tmp_path):
    before = threading.active_count()

    async def main():
        async with ExperimentController(local_dir=str(tmp_path)) as ec:
            app = ec.register_resource("test::Application")
            ec.deploy()
            await ec.wait_finished_async(app, timeout=5)
        return ec

    ec = asyncio.run(main())
    assert threading.active_count() == before
    assert ec.trace(1, "log") == "ran 1\n"  # collected traces stay readable


def test_trace_after_shutdown_inside_a_running_loop(tmp_path):
    with ExperimentController(local_dir=str(tmp_path)) as ec:
        app = ec.register_resource("test::Application")
        ec.deploy()
        ec.wait_finished(app, timeout=5)

    async def cell():  # asyncio.run() would refuse to run here
        return ec.trace(app, "log"), await ec.trace_async(app, "log")

    assert asyncio.run(cell()) == (f"ran {app}\n", f"ran {app}\n")
