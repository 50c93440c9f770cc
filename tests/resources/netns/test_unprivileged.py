"""Without root or without pyroute2, netns resources fail at deploy saying what is missing.

These run anywhere: root is faked away, so nothing is ever made.
"""

from __future__ import annotations

import sys

import pytest

from nepi_lab import ExperimentController, ExperimentFailedError
from nepi_lab.cli import main
from nepi_lab.resources.netns import _namespace


@pytest.fixture
def needs_namespaces():
    """Overrides the conftest's: these tests need no namespace."""


@pytest.fixture
def nothing_left_behind():
    """Overrides the conftest's: nothing is made."""


@pytest.fixture
def ec(tmp_path):
    controller = ExperimentController(exp_id="unprivileged", local_dir=str(tmp_path))
    yield controller
    controller.shutdown()


def test_a_node_without_root_says_so(ec, monkeypatch):
    monkeypatch.setattr(_namespace.os, "geteuid", lambda: 1000)
    ec.register_resource("netns::Node")
    ec.deploy()
    with pytest.raises(ExperimentFailedError, match="needs root .* use a linux::Node on localhost instead"):
        ec.wait_deployed(timeout=10)


def test_a_switch_without_pyroute2_gives_the_pip_command(ec, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyroute2", None)  # import pyroute2 now fails
    ec.register_resource("netns::Switch")
    ec.deploy()
    with pytest.raises(ExperimentFailedError, match=r"needs pyroute2: pip install 'nepi_lab\[netns\]'"):
        ec.wait_deployed(timeout=10)


def test_cleanup_without_root_says_so(monkeypatch, capsys):
    monkeypatch.setattr(_namespace.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(_namespace, "list_namespaces", lambda: ["nlabcde-h1"])  # one of ours is there
    assert main(["cleanup"]) == 1
    assert "needs root" in capsys.readouterr().err


def test_cleanup_without_root_and_without_namespaces_of_ours_needs_no_root(monkeypatch, capsys):
    """A user of SSH nodes only cleans up their runs without root."""
    monkeypatch.setattr(_namespace.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(_namespace, "list_namespaces", lambda: ["someone-elses"])
    assert main(["cleanup"]) == 0
    assert capsys.readouterr().out == "nothing to clean up\n"
