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


# -- the loop's default executor, made on first use -------------------------------------


def test_the_default_executor_is_the_controllers_pool_made_on_first_use(tmp_path):
    """``run_in_executor(None, ...)`` and ``asyncio.to_thread`` on the controller's loop run in
    its pool of EXECUTOR_THREADS named threads, made when first asked for; shutdown ends them."""
    from nepi_lab.core.loop import EXECUTOR_THREADS

    ec = ExperimentController(local_dir=str(tmp_path))
    runner = ec._runner
    try:
        assert runner._executor is None  # nothing asked for it yet

        async def names() -> list[str]:
            loop = asyncio.get_running_loop()
            barrier = threading.Barrier(EXECUTOR_THREADS, timeout=5)

            def name() -> str:
                barrier.wait()  # so that every thread of the pool is in use at once
                return threading.current_thread().name

            jobs = [loop.run_in_executor(None, name) for _ in range(EXECUTOR_THREADS - 1)]
            jobs.append(asyncio.to_thread(name))
            return list(await asyncio.gather(*jobs))

        seen = runner.run(names(), "names")
        assert len(set(seen)) == EXECUTOR_THREADS
        assert all(n.startswith("nepi_lab-blocking") for n in seen), seen
        assert runner._executor is not None and runner._executor._max_workers == EXECUTOR_THREADS
    finally:
        ec.shutdown()
    assert not [t for t in threading.enumerate() if t.name.startswith("nepi_lab-blocking")]
    assert "run_in_executor" not in vars(runner.loop)  # the wrapper is gone with the loop


def test_a_run_that_needs_no_pool_imports_no_thread_pool(tmp_path):
    """In a fresh interpreter: a controller that ran an experiment without blocking work
    never imported concurrent.futures.thread (its pool is made on first use)."""
    import json
    import subprocess
    import sys

    code = (
        "import json, sys\n"
        "from nepi_lab import ExperimentController\n"
        f"ec = ExperimentController(local_dir={str(tmp_path)!r})\n"
        "app = ec.register_resource('test::Application')\n"
        "ec.deploy(); ec.wait_finished(app, timeout=10); ec.shutdown()\n"
        "print(json.dumps([ec.trace(app, 'log'), 'concurrent.futures.thread' in sys.modules]))\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    setup = "import tests.core.types_for_tests\n"  # registers test::Application
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, "-c", setup + code], capture_output=True, text=True, timeout=60,
                         env=env, cwd=root)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == ["ran 1\n", False]
