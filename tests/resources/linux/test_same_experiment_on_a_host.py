"""Two runs of the same experiment on one host, one releasing while the other makes its
folders: the release removes the experiment's folders (``<home>/.nepi_lab/<exp_id>``
and ``.nepi_lab``) once they are empty, and may do so between two ``mkdir`` of the
other run's ``makedirs``.  Two Dask workers making a sweep's runs, or two scripts, meet
that by chance (a sweep run on a cluster lost a run to it); here the removal is made
at that very moment, by the real code paths' ``mkdir`` (``os.mkdir``, SFTP's)."""

from __future__ import annotations

import os
import posixpath

import asyncssh
import pytest

from nepi_lab import ExperimentFailedError, ResourceState
from nepi_lab.resources.linux.executor import MAKEDIRS_ATTEMPTS

from ...faults import removed_once_made
from .conftest import run_on_loop
from .sshd import sshd  # noqa: F401 - the session fixture
from .test_ssh import executor_of

S = ResourceState


def test_a_run_whose_experiment_folder_is_removed_meanwhile_makes_it_again(ec, node, home, monkeypatch):
    exp_home = os.path.join(home, ".nepi_lab", ec.exp_id)
    removals = removed_once_made(monkeypatch, exp_home, times=3, levels=2)
    app = ec.register_resource("linux::Application", connectedTo=node, command="echo made")
    ec.deploy()
    ec.wait_finished(app, timeout=20)
    assert removals == [exp_home] * 3, "the removals were not made where the run makes its folders"
    assert ec.state(app) == S.FINISHED and ec.state(node) == S.STARTED
    assert ec.trace(app, "stdout") == "made\n"
    assert os.path.isdir(os.path.join(exp_home, ec.run_id))
    ec.release(timeout=10)
    assert os.listdir(home) == []  # the run's folders went, the experiment's too


def test_a_parent_that_never_stays_fails_the_node_after_a_bounded_number_of_attempts(ec, node, home,
                                                                                     monkeypatch):
    exp_home = os.path.join(home, ".nepi_lab", ec.exp_id)
    removals = removed_once_made(monkeypatch, exp_home, times=10 * MAKEDIRS_ATTEMPTS, levels=2)
    app = ec.register_resource("linux::Application", connectedTo=node, command="true")
    ec.deploy()
    with pytest.raises(ExperimentFailedError):
        ec.wait_finished(app, timeout=20)
    assert len(removals) == MAKEDIRS_ATTEMPTS  # each attempt made it once, then the node gave up
    failure = ec.description()["failures"][0]
    assert (failure["guid"], failure["step"], failure["error"]) == (node, "provision", "FileNotFoundError")
    assert os.path.join(exp_home, ec.run_id) in failure["message"]


class RacingSftp:
    """An SFTP client that removes ``folder`` and its parent right after making
    ``folder``, the first ``times`` times (the rest is the real client's)."""

    def __init__(self, sftp, folder: str, times: int) -> None:
        self._sftp = sftp
        self.folder = folder
        self.times = times
        self.removals: list[str] = []

    def __getattr__(self, name):
        return getattr(self._sftp, name)

    async def mkdir(self, path, *args, **kwargs):
        await self._sftp.mkdir(path, *args, **kwargs)
        if path == self.folder and len(self.removals) < self.times:
            self.removals.append(path)
            await self._sftp.rmdir(path)
            await self._sftp.rmdir(posixpath.dirname(path))


def test_over_sftp_a_folder_removed_meanwhile_is_made_again(ec, sshd, monkeypatch):  # noqa: F811
    node = ec.register_resource("linux::Node", **sshd.node_attributes())
    ec.deploy()
    ec.wait_deployed(node, timeout=20)
    executor = executor_of(ec, node)
    base = ec.get_resource(node).node_home
    folder = f"{base}/.nepi_lab/other"
    target = f"{folder}/20261202120335637991/1/bin"

    async def racing(times):
        sftp = RacingSftp(await executor._sftp(), folder, times)
        monkeypatch.setattr(executor, "_sftp", lambda: _answer(sftp))
        try:
            await executor.makedirs(target)
            return sftp.removals, await sftp.isdir(target)
        finally:
            monkeypatch.undo()

    assert run_on_loop(ec, racing(3)) == ([folder] * 3, True)
    run_on_loop(ec, executor.remove_tree(f"{base}/.nepi_lab"))
    with pytest.raises(asyncssh.SFTPNoSuchFile):
        run_on_loop(ec, racing(10 * MAKEDIRS_ATTEMPTS))
    ec.release(timeout=10)


async def _answer(value):
    return value
