"""An application's traces on a results disk that fills up (issue 11, item 1).

The outcome is the application's own; what could not be written is a separate,
typed record; the host keeps the complete copy and the message says where.
"""

from __future__ import annotations

import json
import os

import pytest

from nepi_lab import ExperimentController, ResourceState, ResultsWriteError

from ...faults import fill, small_disk
from .sshd import sshd  # noqa: F401 - the session fixture

pytestmark = pytest.mark.faults

S = ResourceState
THREE_MB = "head -c 3000000 /dev/zero | tr '\\\\0' x"


def test_a_full_results_disk_keeps_the_outcome_and_the_host_copy(tmp_path, home):
    with small_disk(tmp_path / "results", "1m") as results:
        ec = ExperimentController(exp_id="full", local_dir=str(results))
        try:
            node = ec.register_resource("linux::Node", home=home)  # the host copy: on another disk
            big = ec.register_resource("linux::Application", connectedTo=node, command=THREE_MB)
            small = ec.register_resource("linux::Application", connectedTo=node, command="echo fine")
            ec.deploy()
            ec.wait_finished(timeout=30)
            assert (ec.state(big), ec.state(small)) == (S.FINISHED, S.FINISHED)  # exit 0: FINISHED
            [problem] = [f for f in ec.failures if f.guid == big]
            assert problem.error == "ResultsWriteError" and problem.step == "collect" and not problem.critical
            host_copy = os.path.join(ec.get_resource(big).app_home, "stdout")
            assert f"localhost:{host_copy}" in problem.message
            assert ec.trace(small, "stdout") == "fine\n"
        finally:
            ec.shutdown()
        assert os.path.getsize(host_copy) == 3_000_000  # kept at release (cleanExperiment is on)
        assert not os.path.exists(os.path.join(ec.run_dir, f"{big}-linux.Application", "stdout"))
        with open(os.path.join(ec.run_dir, "experiment.json")) as f:
            recorded = json.load(f)["failures"]
        assert [(f["guid"], f["error"]) for f in recorded] == [(big, "ResultsWriteError")]
        assert not os.path.exists(os.path.join(ec.run_dir, "experiment.json.tmp"))
        # the small application's folder went as usual; the big one's stays for the user
        assert not os.path.exists(ec.get_resource(small).app_home)


def test_results_write_error_is_an_os_error_with_its_data():
    error = ResultsWriteError(3, "/r/3/stdout", OSError(28, "No space left on device"), "host:/h/3/stdout")
    assert isinstance(error, OSError) and error.errno == 28
    assert (error.guid, error.path, error.kept) == (3, "/r/3/stdout", "host:/h/3/stdout")
    assert "No space left on device" in str(error) and "kept at host:/h/3/stdout" in str(error)


def test_a_full_results_disk_over_ssh_keeps_the_outcome_and_the_host_copy(tmp_path, sshd):  # noqa: F811
    """The same over SSH: the big trace's download fails on the full disk, the empty ones
    (made here without a download) and the small application's are kept."""
    with small_disk(tmp_path / "results", "1m") as results:
        ec = ExperimentController(exp_id="full-ssh", local_dir=str(results))
        try:
            node = ec.register_resource("linux::Node", **sshd.node_attributes())
            big = ec.register_resource("linux::Application", connectedTo=node, command=THREE_MB)
            small = ec.register_resource("linux::Application", connectedTo=node, command="echo fine")
            ec.deploy()
            ec.wait_finished(timeout=30)
            assert (ec.state(big), ec.state(small)) == (S.FINISHED, S.FINISHED)
            [problem] = [f for f in ec.failures if f.guid == big]
            assert problem.error == "ResultsWriteError" and problem.step == "collect" and not problem.critical
            host_copy = ec.get_resource(big).app_home + "/stdout"
            assert host_copy in problem.message
            assert ec.trace(small, "stdout") == "fine\n"
        finally:
            ec.shutdown()
        assert os.path.getsize(host_copy) == 3_000_000  # kept on the host at release
        folder = os.path.join(ec.run_dir, f"{big}-linux.Application")
        assert not os.path.exists(os.path.join(folder, "stdout"))
        assert os.path.getsize(os.path.join(folder, "stderr")) == 0  # empty there: made here, no download
        assert not os.path.exists(ec.get_resource(small).app_home)


def test_a_small_trace_copied_onto_a_full_disk_keeps_the_outcome_and_the_host_copy(tmp_path, home):
    """A small trace is copied in the loop (no worker thread): a disk with no room left
    fails that copy as it fails a large one, a typed record, the host's copy kept."""
    with small_disk(tmp_path / "results", "1m") as results:
        ec = ExperimentController(exp_id="full", local_dir=str(results))
        try:
            node = ec.register_resource("linux::Node", home=home)  # the host copy: on another disk
            app = ec.register_resource("linux::Application", connectedTo=node, command="echo fine")
            ec.deploy(node)
            ec.wait_started(node, timeout=30)
            fill(results)
            ec.deploy(app)
            ec.wait_finished(app, timeout=30)
            assert ec.state(app) == S.FINISHED
            collect = [f for f in ec.failures if f.guid == app and f.step == "collect"]
            assert collect and all(f.error == "ResultsWriteError" and not f.critical for f in collect)
            host_copy = os.path.join(ec.get_resource(app).app_home, "stdout")
            assert any(f"localhost:{host_copy}" in f.message for f in collect)
            assert ec._runner._executor is None  # copied in the loop, as small traces are
        finally:
            ec.shutdown()
        with open(host_copy) as f:
            assert f.read() == "fine\n"  # kept at release for the user
