"""The first move into a node's cgroup waits less: its lock is taken early, off the loop.

Moving a process into a cgroup takes a kernel lock whose first writer after a quiet
spell waits for an RCU grace period.  A linux::Node's registration (and a local node's
deploy) has a worker thread write its own thread id into ``cgroup.threads`` of the
cgroup the interpreter is in, so that wait overlaps the controller's work; and a local
node's cgroup is made by that thread, at deploy (see :mod:`nepi_lab.resources.linux._tracking`).
What must hold: the write never moves the controller or anything else, never fails
a run, leaves no thread, and starts nothing where there is no cgroup.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import threading
import time

import pytest

from nepi_lab import ResourceState
from nepi_lab.resources.linux import _tracking

S = ResourceState


def needs_cgroups() -> str:
    base = _tracking.cgroup_base()
    if base is None:
        pytest.skip("no writable cgroup v2 here (needs root and a cgroup2 mount)")
    return base


def cgroups_of_threads() -> dict[str, str]:
    """Every thread of this process and the cgroup it is in (``0::`` line)."""
    found = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/cgroup") as f:
                found[tid] = next(line for line in f if line.startswith("0::"))
        except (FileNotFoundError, StopIteration):  # a thread that just ended
            continue
    return found


def wait_for_worker() -> None:
    """Until the worker thread has run its jobs and ended."""
    for _ in range(500):
        if _tracking._worker is None:
            return
        threading.Event().wait(0.01)
    raise AssertionError("the cgroup worker thread did not end")


def test_warming_the_lock_moves_nothing_and_does_not_fail(monkeypatch, caplog):
    needs_cgroups()
    wait_for_worker()
    before = cgroups_of_threads()
    caplog.set_level(logging.DEBUG, logger="nepi_lab")
    monkeypatch.setattr(_tracking, "_last_warm", float("-inf"))  # not skipped as "just done"
    _tracking.warm_up()
    wait_for_worker()
    assert [r.getMessage() for r in caplog.records if "warming" in r.getMessage()] == []  # it was written
    after = cgroups_of_threads()
    assert all(after[tid] == before[tid] for tid in before if tid in after)
    assert set(after.values()) <= set(before.values())  # no thread in another cgroup


def test_the_warm_spell_writes_again_until_it_ends_and_jobs_do_not_wait_for_it(monkeypatch):
    """After warm_up the worker writes again every WARM_EVERY (the lock would go cold one
    grace period after a single write), a job that comes meanwhile runs at once, and the
    worker ends with the spell."""
    needs_cgroups()
    wait_for_worker()
    writes = []
    real_warm = _tracking._warm

    def counted() -> None:
        writes.append(threading.get_native_id())
        real_warm()

    monkeypatch.setattr(_tracking, "_warm", counted)
    monkeypatch.setattr(_tracking, "_last_warm", float("-inf"))
    monkeypatch.setattr(_tracking, "WARM_SPELL", 30.0)  # far longer than anything below takes
    _tracking.warm_up()
    spell_end = _tracking._warm_until
    for _ in range(500):
        if len(writes) >= 3:
            break
        threading.Event().wait(0.01)
    assert len(writes) >= 3 and len(set(writes)) == 1  # again and again, by one thread
    ran = threading.Event()
    assert _tracking._submit(ran.set)
    assert ran.wait(10) and time.monotonic() < spell_end  # not after the spell
    worker = _tracking._worker
    assert worker is not None and worker.is_alive()  # the spell goes on
    with _tracking._lock:
        _tracking._warm_until = time.monotonic()  # end it now
    wait_for_worker()
    assert not worker.is_alive()
    count = len(writes)
    threading.Event().wait(3 * _tracking.WARM_EVERY)
    assert len(writes) == count  # no write after the spell


def test_a_second_warm_up_extends_the_spell_without_a_second_thread(monkeypatch):
    needs_cgroups()
    wait_for_worker()
    monkeypatch.setattr(_tracking, "WARM_SPELL", 30.0)
    _tracking.warm_up()
    first, worker = _tracking._warm_until, _tracking._worker
    threading.Event().wait(0.01)
    _tracking.warm_up()
    try:
        assert _tracking._warm_until > first and _tracking._worker is worker
        assert [t.name for t in threading.enumerate()].count("nepi_lab-cgroup") == 1
    finally:
        with _tracking._lock:
            _tracking._warm_until = time.monotonic()
        wait_for_worker()


def test_warming_where_the_controller_is_not_moves_nothing(monkeypatch, caplog):
    """Had the controller been moved out of the cgroup it started in, the write (into the
    old one) fails instead of moving anything back: a thread cannot leave its process's
    domain cgroup."""
    base = needs_cgroups()
    wait_for_worker()
    scratch = os.path.join(base, f"nepi_lab-test-warm.{os.getpid()}")
    os.mkdir(scratch)
    try:
        before = cgroups_of_threads()
        monkeypatch.setattr(_tracking, "_base", scratch)
        monkeypatch.setattr(_tracking, "_last_warm", float("-inf"))
        caplog.set_level(logging.DEBUG, logger="nepi_lab")
        _tracking.warm_up()
        wait_for_worker()
        with open(os.path.join(scratch, "cgroup.procs")) as f:
            assert f.read() == ""  # nothing moved in
        with open(os.path.join(scratch, "cgroup.threads")) as f:
            assert f.read() == ""
        assert set(cgroups_of_threads().values()) <= set(before.values())
        failed = [r for r in caplog.records if "warming the cgroup lock" in r.getMessage()]
        # one message: the spell ended at the failed write instead of failing again and again
        assert len(failed) == 1 and failed[0].levelno == logging.DEBUG, [r.getMessage() for r in failed]
    finally:
        fd = _tracking._warm_files.pop(scratch, None)
        if fd is not None:
            os.close(fd)
        os.rmdir(scratch)


def test_nothing_is_started_where_cgroups_are_not_used(monkeypatch, ec, home):
    monkeypatch.setattr(_tracking, "_base", None)  # as with NEPI_LAB_CGROUPS=0, or without root
    wait_for_worker()
    submitted = []
    real_submit = _tracking._submit
    monkeypatch.setattr(_tracking, "_submit", lambda *job: (submitted.append(job), real_submit(*job))[1])
    _tracking.warm_up()
    node = ec.register_resource("linux::Node", hostname="localhost", home=home)
    app = ec.register_resource("linux::Application", connectedTo=node, command="echo hi")
    ec.deploy()
    ec.wait_finished(app, timeout=20)
    assert ec.trace(app, "stdout") == "hi\n"
    assert submitted == [] and _tracking._worker is None  # no job, no thread


def test_no_thread_is_started_with_cgroups_turned_off(tmp_path):
    """``NEPI_LAB_CGROUPS=0``: importing the linux resources and running a node's command
    start no worker thread (checked in a fresh interpreter, before anything was cached)."""
    code = (
        "import os, sys, threading\n"
        "started = []\n"
        "real_start = threading.Thread.start\n"
        "def start(self):\n"
        "    started.append(self.name)\n"
        "    real_start(self)\n"
        "threading.Thread.start = start\n"
        "from nepi_lab import ExperimentController\n"
        "ec = ExperimentController(exp_id='t', local_dir=os.path.join(sys.argv[1], 'results'))\n"
        "node = ec.register_resource('linux::Node', home=os.path.join(sys.argv[1], 'home'))\n"
        "app = ec.register_resource('linux::Application', connectedTo=node, command='true')\n"
        "ec.deploy(); ec.wait_finished(app, timeout=20); ec.shutdown()\n"
        "print(' '.join(started))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                         timeout=60, env={**os.environ, _tracking.CGROUPS_ENV: "0"})
    assert out.returncode == 0, out.stderr
    assert "nepi_lab-cgroup" not in out.stdout.split()
    assert "nepi_lab-loop" in out.stdout.split()  # the spy saw the threads that were started


def test_prepare_makes_the_cgroup_and_resolves(tmp_path):
    base = needs_cgroups()
    wait_for_worker()
    cgroups = _tracking.RunCgroups(os.path.join(base, f"nepi_lab.test-prepare.{os.getpid()}"))

    async def main() -> None:
        made = _tracking.prepare(cgroups, 7)
        assert made is not None
        await asyncio.wait_for(made, 10)
        assert cgroups.owners() == [7]
        assert os.path.isdir(os.path.join(cgroups.folder, "7"))
        assert await cgroups.stop(7) == 0

    try:
        asyncio.run(main())
        assert not os.path.exists(cgroups.folder)
    finally:
        wait_for_worker()
        _tracking.kill_cgroup_tree(cgroups.folder)


def test_prepare_without_a_loop_leaves_it_to_the_first_command():
    cgroups = _tracking.RunCgroups("/nonexistent/nepi_lab.test")
    assert _tracking.prepare(cgroups, 7) is None
    assert cgroups.owners() == []


def test_a_node_without_commands_leaves_no_cgroup(ec, home):
    """The node's cgroup is made at deploy now, before any command: release removes it."""
    base = needs_cgroups()
    node = ec.register_resource("linux::Node", hostname="localhost", home=home)
    ec.deploy()
    ec.wait_deployed(node, timeout=20)
    folder = os.path.join(base, f"nepi_lab.{ec.exp_id}.{ec.run_id}")
    wait_for_worker()
    assert os.path.isdir(os.path.join(folder, str(node)))
    ec.shutdown()
    assert not os.path.exists(folder)


def run_an_app_in_its_node_cgroup(ec, home) -> None:
    """A node and an application printing its cgroup: it ran in the node's."""
    node = ec.register_resource("linux::Node", hostname="localhost", home=home)
    app = ec.register_resource("linux::Application", connectedTo=node, command="cat /proc/self/cgroup")
    ec.deploy()
    ec.wait_finished(app, timeout=20)
    assert ec.state(app) == S.FINISHED
    assert f"/nepi_lab.{ec.exp_id}.{ec.run_id}/{node}\n" in ec.trace(app, "stdout")


def test_an_application_runs_in_its_node_cgroup_made_at_deploy(ec, home):
    base = needs_cgroups()
    run_an_app_in_its_node_cgroup(ec, home)
    ec.shutdown()
    assert not os.path.exists(os.path.join(base, f"nepi_lab.{ec.exp_id}.{ec.run_id}"))


def test_a_forked_child_starts_its_own_worker():
    """A fork while the worker runs (a sweep's processes, a Dask worker): the child's queue
    is empty and its next job gets a thread of its own, instead of waiting forever."""
    wait_for_worker()
    release = threading.Event()
    assert _tracking._submit(release.wait)  # the parent's worker is busy while we fork
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, then leave without running pytest's clean-up
        try:
            ran = threading.Event()
            state = (_tracking._worker is None, list(_tracking._jobs) == [])
            _tracking._submit(ran.set)
            os.write(write_end, repr((*state, ran.wait(10))).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        with os.fdopen(read_end, "rb") as pipe:
            report = pipe.read().decode()
        assert report == "(True, True, True)"
    finally:
        release.set()
        os.waitpid(pid, 0)
        wait_for_worker()


def test_without_a_thread_the_node_still_runs_its_commands(monkeypatch, ec, home):
    """No thread to be had for the worker (interpreter exit, the system's thread limit):
    registering and deploying do not fail, and the node's cgroup is made on first use."""
    base = needs_cgroups()
    wait_for_worker()
    real_start = threading.Thread.start

    def start(thread: threading.Thread) -> None:
        if thread.name == "nepi_lab-cgroup":
            raise RuntimeError("can't start new thread")
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    monkeypatch.setattr(_tracking, "_last_warm", float("-inf"))
    run_an_app_in_its_node_cgroup(ec, home)
    assert _tracking._worker is None and _tracking._jobs == []
    ec.shutdown()
    assert not os.path.exists(os.path.join(base, f"nepi_lab.{ec.exp_id}.{ec.run_id}"))


def test_a_node_on_another_host_ends_the_warm_spell(monkeypatch, ec):
    """Registering a ``linux::Node`` warms the lock for its first command; once its
    ``hostname`` names another host (as a keyword, or set later as NEPI scripts do), the
    spell ends and the worker thread with it, before the SSH connections take threads of
    their own.  A local node warms it again."""
    needs_cgroups()
    wait_for_worker()
    monkeypatch.setattr(_tracking, "WARM_SPELL", 30.0)
    for register in (lambda: ec.register_resource("linux::Node", hostname="192.0.2.7"),
                     lambda: ec.set(ec.register_resource("linux::Node"), "hostname", "host.example")):
        _tracking.warm_up()
        assert _tracking._worker is not None and _tracking._warm_until > time.monotonic() + 20
        register()
        assert _tracking._warm_until < time.monotonic()
        wait_for_worker()  # long before the 30 s spell would have ended
    try:
        ec.register_resource("linux::Node", hostname="localhost")
        assert _tracking._worker is not None and _tracking._warm_until > time.monotonic() + 20
    finally:
        _tracking.cool_down()
        wait_for_worker()


def test_an_ssh_node_connects_once_the_last_warming_is_over(monkeypatch):
    """``cooled()``, awaited by an SSH node before it connects: at once without a worker
    or while the worker has work; else until the worker's last (here slow) warming is
    over and the thread has ended, or until it takes more work, without waiting for that."""
    needs_cgroups()
    wait_for_worker()
    warm = _tracking._warm
    monkeypatch.setattr(_tracking, "_warm", lambda: (time.sleep(0.3), warm()))

    async def timed() -> float:
        start = time.monotonic()
        await _tracking.cooled()
        return time.monotonic() - start

    assert asyncio.run(timed()) < 0.05  # no worker
    monkeypatch.setattr(_tracking, "WARM_SPELL", 30.0)
    _tracking.warm_up()
    worker = _tracking._worker
    assert asyncio.run(timed()) < 0.05  # a spell: it has work
    _tracking.cool_down()
    assert 0.1 < asyncio.run(timed()) < 0.9  # its last warming: waited for
    assert not worker.is_alive() and _tracking._worker is None

    async def meanwhile() -> float:
        start = time.monotonic()
        waiting = asyncio.ensure_future(_tracking.cooled())
        await asyncio.sleep(0.05)
        _tracking.warm_up()  # a local node registered: the worker goes on
        await waiting
        return time.monotonic() - start

    _tracking.warm_up()
    _tracking.cool_down()
    try:
        assert asyncio.run(meanwhile()) < 0.9
        assert _tracking._worker is not None  # it went on with the new spell
    finally:
        _tracking.cool_down()
        wait_for_worker()


def test_a_cancelled_wait_for_the_last_warming_leaves_the_worker_to_end(monkeypatch):
    """An SSH node cancelled while it waits for the worker's last warming (Ctrl-C, a
    release during deploy): the cancellation comes through at once, and the worker, which
    later tells a waiter whose loop is closed, ends as it would have."""
    needs_cgroups()
    wait_for_worker()
    warm = _tracking._warm
    monkeypatch.setattr(_tracking, "_warm", lambda: (time.sleep(0.3), warm()))
    monkeypatch.setattr(_tracking, "WARM_SPELL", 30.0)
    _tracking.warm_up()
    worker = _tracking._worker
    _tracking.cool_down()

    async def cancelled() -> float:
        waiting = asyncio.ensure_future(_tracking.cooled())
        await asyncio.sleep(0.02)
        start = time.monotonic()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        return time.monotonic() - start

    assert asyncio.run(cancelled()) < 0.05  # the loop is closed once this returns
    wait_for_worker()
    worker.join(1)  # past its last statement once it let go of the module's state
    assert not worker.is_alive() and _tracking._on_end == []
