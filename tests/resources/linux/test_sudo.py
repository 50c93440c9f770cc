"""``sudo`` as a user would use it: an SSH node logging in as a user who is not root.

The module makes its own user (``useradd``, through :class:`~.sshd.Sshd`) with a
NOPASSWD drop-in in ``/etc/sudoers.d``, and removes both, and the user's home, at the
end.  The processes the commands start as root carry the test's marker in their
environment (``env`` is passed through sudo), so the test sees whether any survives.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time

import psutil
import pytest

from nepi_lab import ResourceState

from .conftest import all_gone, processes_with
from .sshd import Sshd, SshdUnavailable, sshd  # noqa: F401 - the session fixture (no sudo rights)
from .test_packages import OFFLINE, PACKAGE, installed

S = ResourceState

pytestmark = pytest.mark.skipif(shutil.which("sudo") is None or shutil.which("visudo") is None,
                                reason="needs sudo (apt-get install sudo)")


@pytest.fixture(scope="module")
def sudoer():
    """An sshd whose user may run anything as root with ``sudo -n`` (NOPASSWD)."""
    try:
        server = Sshd()
        server.__enter__()
    except SshdUnavailable as exc:
        pytest.skip(f"no sshd for the sudo tests: {exc}")
    drop_in = f"/etc/sudoers.d/nepi-lab-test-{server.user}"
    try:
        with open(drop_in, "w") as f:
            f.write(f"{server.user} ALL=(ALL) NOPASSWD: ALL\n")
        os.chmod(drop_in, 0o440)
        subprocess.run(["visudo", "-cf", drop_in], check=True, capture_output=True)
        yield server
    finally:
        if os.path.exists(drop_in):
            os.unlink(drop_in)
        server.__exit__(None, None, None)
    assert not os.path.exists(drop_in) and not os.path.exists(server.home)


@pytest.fixture
def marked(marker):
    """The test's marker; whatever still carries it at the end is killed (a failed test
    leaves nothing running as root)."""
    yield marker
    left = processes_with(marker)
    for p in left:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(left, timeout=5)


def root_processes(marker: str) -> list[psutil.Process]:
    """The live processes carrying ``marker`` that run as root."""
    found = []
    for p in processes_with(marker):
        try:
            if p.uids().real == 0:
                found.append(p)
        except psutil.NoSuchProcess:
            continue
    return found


def wait_for_root(marker: str, names: set[str], timeout: float = 10.0) -> list[psutil.Process]:
    """The root processes carrying ``marker`` once those named ``names`` are all there."""
    deadline = time.monotonic() + timeout
    while True:
        found = root_processes(marker)
        if names <= {p.name() for p in found} or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


def test_sudo_runs_the_command_as_root_with_the_placeholders(ec, sudoer):
    node = ec.register_resource("linux::Node", **sudoer.node_attributes())
    app = ec.register_resource("linux::Application", connectedTo=node, sudo=True,
                               env="GREETING='hello root'",
                               command='id -u; echo "$GREETING"; echo "$SUDO_USER"; echo "$RUN_HOME"')
    ec.deploy()
    ec.wait_finished(app, timeout=30)
    assert ec.state(app) == S.FINISHED
    run_home = ec.get_resource(app).app_home
    assert ec.trace(app, "stdout") == f"0\nhello root\n{sudoer.user}\n{run_home}\n"


@pytest.mark.parametrize("how", ["stop", "release"])
def test_a_sudo_command_stopped_or_released_leaves_no_root_process(ec, sudoer, marked, how):
    marker = marked
    node = ec.register_resource("linux::Node", **sudoer.node_attributes())
    # the shell runs sleep as a child (not exec'd); both ignore TERM: KILL must reach them as root
    app = ec.register_resource("linux::Application", connectedTo=node, sudo=True, stopGracePeriod=1.0,
                               env=f"MARK={marker}", command="trap '' TERM; sleep 3600; echo never")
    ec.deploy()
    ec.wait_started(app, timeout=30)
    assert {"sh", "sleep"} <= {p.name() for p in wait_for_root(marker, {"sh", "sleep"})}
    if how == "stop":
        ec.stop(app, timeout=30)
        assert ec.state(app) == S.STOPPED
        assert all_gone(marker, timeout=5), [p.cmdline() for p in processes_with(marker)]
    ec.release(timeout=30)
    assert all_gone(marker, timeout=5), [p.cmdline() for p in processes_with(marker)]


def test_a_sudo_command_gets_its_stop_grace_period(ec, sudoer, marked):
    marker = marked
    node = ec.register_resource("linux::Node", **sudoer.node_attributes())
    # as root, a TERM handler that takes its time: the stop waits for it (up to the grace period)
    app = ec.register_resource(
        "linux::Application", connectedTo=node, sudo=True, stopGracePeriod=20.0, env=f"MARK={marker}",
        command="trap 'sleep 0.5; echo stopped gracefully as $(id -u); exit 0' TERM; sleep 3600 & wait")
    ec.deploy()
    ec.wait_started(app, timeout=30)
    assert {"sh", "sleep"} <= {p.name() for p in wait_for_root(marker, {"sh", "sleep"})}
    ec.stop(app, timeout=30)
    assert ec.state(app) == S.STOPPED
    assert ec.trace(app, "stdout") == "stopped gracefully as 0\n"
    assert all_gone(marker, timeout=5), [p.cmdline() for p in processes_with(marker)]
    ec.release(timeout=30)


def test_what_a_sudo_command_leaves_in_its_group_is_killed_what_left_it_runs_until_release(
        ec, sudoer, marked):
    marker = marked
    node = ec.register_resource("linux::Node", **sudoer.node_attributes())
    app = ec.register_resource("linux::Application", connectedTo=node, sudo=True, env=f"MARK={marker}",
                               command="sleep 3600 & setsid sleep 3601 & echo started")
    ec.deploy()
    ec.wait_finished(app, timeout=30)
    assert ec.state(app) == S.FINISHED and ec.trace(app, "stdout") == "started\n"

    def sleeps():
        return sorted(p.cmdline()[-1] for p in root_processes(marker) if p.name() == "sleep")

    deadline = time.monotonic() + 5
    while sleeps() != ["3601"] and time.monotonic() < deadline:  # a KILL is delivered asynchronously
        time.sleep(0.02)
    assert sleeps() == ["3601"]  # as without sudo: the group is killed, a daemon runs until release
    ec.release(timeout=30)
    assert all_gone(marker, timeout=5), [p.cmdline() for p in processes_with(marker)]


def test_sudo_without_the_right_fails_at_once_with_sudos_message(ec, sshd, marked):  # noqa: F811
    marker = marked
    node = ec.register_resource("linux::Node", **sshd.node_attributes())
    app = ec.register_resource("linux::Application", connectedTo=node, sudo=True, critical=False,
                               env=f"MARK={marker}", command="id -u")
    started = time.monotonic()
    ec.deploy()
    ec.wait_finished(app, timeout=30)
    assert time.monotonic() - started < 20  # never waiting for a password
    assert ec.state(app) == S.FAILED
    (failure,) = ec.failures
    assert "a password is required" in failure.message  # sudo's own words, through sudo -n
    assert all_gone(marker)


@pytest.mark.skipif(shutil.which("apt-get") is None or shutil.which("dpkg") is None, reason="needs apt-get")
def test_install_depends_over_ssh_through_sudo(ec, sudoer):
    if installed(PACKAGE):
        pytest.skip(f"{PACKAGE} is installed already: the test installs and purges it")
    node = ec.register_resource("linux::Node", **sudoer.node_attributes())
    app = ec.register_resource("linux::Application", connectedTo=node, depends=PACKAGE, installDepends=True,
                               command=PACKAGE, critical=False)
    try:
        ec.deploy()
        ec.wait_finished(app, timeout=600)
        if ec.state(app) == S.FAILED:
            (failure,) = ec.failures
            if any(text in failure.message for text in OFFLINE):
                pytest.skip(f"the Debian mirror cannot be reached: {failure.message[-300:]}")
            pytest.fail(failure.message)
        assert installed(PACKAGE)  # by the SSH user, who is not root: through sudo -n
        assert ec.trace(app, "stdout") == "Hello, world!\n"
    finally:
        if installed(PACKAGE):
            subprocess.run(["apt-get", "purge", "-y", "-q", PACKAGE], capture_output=True,
                           env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}, timeout=300)
    assert not installed(PACKAGE)
