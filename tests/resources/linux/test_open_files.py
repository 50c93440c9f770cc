"""The open-file limit (issue 11, item 8): each running local process holds a descriptor
(its pidfd), so the common soft limit of 1,024 used to fail every application beyond
about a thousand with "Too many open files".

The soft limit is raised towards the hard one when the first local executor is made,
and the commands get the original back; beyond the limit, spawns wait for processes
to end.  Each test runs in a child interpreter whose limits it sets itself.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time

import pytest

from nepi_lab import ResourceState

pytestmark = pytest.mark.faults

PRELUDE = textwrap.dedent("""
    import json, resource, sys, time
    resource.setrlimit(resource.RLIMIT_NOFILE, ({soft}, {hard}))
    from nepi_lab import ExperimentController, ResourceState
""")


def run_script(body: str, soft: int, hard: int, timeout: float) -> dict:
    code = PRELUDE.format(soft=soft, hard=hard) + textwrap.dedent(body)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_2000_concurrent_applications_under_a_hard_limit_of_1024_all_finish(tmp_path):
    """The hard limit is 1,024 too, so raising the soft one cannot help: spawns queue."""
    report = run_script(f"""
        with ExperimentController(exp_id="fds", local_dir={str(tmp_path / "results")!r}) as ec:
            node = ec.register_resource("linux::Node", home={str(tmp_path)!r})
            apps = [ec.register_resource("linux::Application", connectedTo=node, command="sleep 1; echo ok")
                    for _ in range(2000)]
            ec.deploy()
            ec.wait_finished(apps, timeout=600)
            states = {{}}
            for a in apps:
                states[ec.state(a, hr=True)] = states.get(ec.state(a, hr=True), 0) + 1
            failures = sorted({{f.message[:200] for f in ec.failures}})[:3]
            outputs = sum(ec.trace(a, "stdout") == "ok\\n" for a in apps)
        print(json.dumps({{"states": states, "failures": failures, "outputs": outputs}}))
    """, soft=1024, hard=1024, timeout=900)
    assert report["failures"] == []
    assert report["states"] == {"FINISHED": 2000}
    assert report["outputs"] == 2000


def test_the_soft_limit_is_raised_and_commands_get_the_original_back(tmp_path):
    report = run_script(f"""
        before = resource.getrlimit(resource.RLIMIT_NOFILE)
        with ExperimentController(exp_id="fds", local_dir={str(tmp_path / "results")!r}) as ec:
            node = ec.register_resource("linux::Node", home={str(tmp_path)!r})
            app = ec.register_resource("linux::Application", connectedTo=node, command="ulimit -S -n")
            ec.deploy()
            ec.wait_finished(app, timeout=30)
            after = resource.getrlimit(resource.RLIMIT_NOFILE)
            seen = ec.trace(app, "stdout").strip()
        print(json.dumps({{"before": before, "after": after, "seen": seen}}))
    """, soft=1024, hard=4096, timeout=60)
    assert report["before"] == [1024, 4096]
    assert report["after"] == [4096, 4096]
    assert report["seen"] == "1024"


def test_explain_says_a_queued_application_waits_for_a_process_to_end(ec, node, monkeypatch):
    from nepi_lab.resources.linux import _process

    monkeypatch.setattr(_process.descriptors, "_capacity", _process.descriptors.held + 2)
    apps = [ec.register_resource("linux::Application", connectedTo=node, command="sleep 1")
            for _ in range(3)]
    ec.deploy()
    ec.wait_started(apps[:2], timeout=20)
    third = ec.explain(apps[2])
    assert ec.state(apps[2]) == ResourceState.READY
    assert "waits for a running process to end: the open-file limit" in third, third
    ec.wait_finished(apps, timeout=30)
    assert [ec.state(a, hr=True) for a in apps] == ["FINISHED"] * 3


def test_explain_names_the_queue_also_when_the_start_looked_before_it_filled(ec, node, monkeypatch):
    """The application's start looks at the queue, then spawns; the others may take the
    last descriptors in between.  Its explain() must still say why it waits."""
    from nepi_lab.resources.linux import _local, _process

    before = _process.descriptors.held
    monkeypatch.setattr(_process.descriptors, "_capacity", before + 10)  # room: no queue
    apps = [ec.register_resource("linux::Application", connectedTo=node, command="sleep 1")
            for _ in range(3)]
    real_spawn = _local.LocalExecutor.spawn

    async def spawn(self, command, **kwargs):  # noqa: ANN001, ANN202 - the executor's own signature
        if kwargs.get("owner") == apps[2]:  # looked at the queue already: it was not full
            for _ in range(2000):
                if _process.descriptors.held >= before + 2:  # the other two run
                    break
                await asyncio.sleep(0.005)
            _process.descriptors._capacity = _process.descriptors.held  # now it is
        return await real_spawn(self, command, **kwargs)

    monkeypatch.setattr(_local.LocalExecutor, "spawn", spawn)
    ec.deploy()
    ec.wait_started(apps[:2], timeout=20)
    for _ in range(2000):
        if _process.descriptors.waiting:
            break
        time.sleep(0.005)
    assert _process.descriptors.waiting == 1
    third = ec.explain(apps[2])
    assert "waits for a running process to end: the open-file limit" in third, third
    ec.wait_finished(apps, timeout=30)
    assert [ec.state(a, hr=True) for a in apps] == ["FINISHED"] * 3
