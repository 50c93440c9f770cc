"""``depends`` and ``installDepends``: commands or packages, installed for real with apt-get.

The installing tests need root and apt-get (Debian, Ubuntu) and reach the Debian mirror
of ``/etc/apt/sources.list``: they are skipped, saying why, where the mirror cannot be
reached.  What they install they purge.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from nepi_lab import AttributeValueError, PackageInstallError, ResourceState
from nepi_lab.resources.linux._packages import Depend, parse_depends

from .conftest import run_on_loop
from .sshd import sshd  # noqa: F401 - the session fixture

S = ResourceState

#: A small package (GNU hello: one command, /usr/bin/hello) that the test installs and purges.
PACKAGE = "hello"

#: What apt says when the mirror cannot be reached.
OFFLINE = ("Could not resolve", "Temporary failure", "Failed to fetch", "Network is unreachable",
           "Connection timed out", "Could not connect")

needs_apt_as_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("apt-get") is None or shutil.which("dpkg") is None,
    reason="installs packages: needs root and apt-get",
)


def installed(package: str) -> bool:
    result = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
    return result.stdout.endswith(" installed")


def app(ec, node, **attributes):
    return ec.register_resource("linux::Application", connectedTo=node, **attributes)


def failure_of(ec, guid):
    (failure,) = [f for f in ec.failures if f.guid == guid]
    return failure


# -- what depends means ---------------------------------------------------------------------


def test_depends_items_are_commands_or_command_equals_package():
    assert parse_depends("make  ping=iputils-ping gcc=gcc-12") == [
        Depend("make", "make", False), Depend("ping", "iputils-ping", True), Depend("gcc", "gcc-12", True)]
    assert parse_depends(None) == parse_depends("  ") == []


@pytest.mark.parametrize("value", ["ping=", "-rf", "ping=-y", "a/b", "ip=iproute2;rm", "x==y"])
def test_depends_refuses_what_is_no_command_or_package_at_set(ec, node, value):
    a = app(ec, node, command="true")
    with pytest.raises(AttributeValueError, match="depends"):
        ec.set(a, "depends", value)


def test_an_installed_package_that_is_no_command_satisfies_depends(ec, node):
    if shutil.which("dpkg-query") is None and shutil.which("rpm") is None:
        pytest.skip("needs dpkg-query or rpm")
    # coreutils is a package (Debian's and Fedora's) and no command; ls exists, whatever its package
    a = app(ec, node, depends="sh coreutils ls=no-such-package", command="echo ran")
    b = app(ec, node, depends="no-such-command=coreutils", command="true", critical=False)
    ec.deploy()
    ec.wait_finished([a, b], timeout=10)
    assert ec.state(a) == S.FINISHED and ec.trace(a, "stdout") == "ran\n"
    assert ec.state(b) == S.FAILED  # command=package: only the command satisfies it
    failure = failure_of(ec, b)
    assert failure.error == "MissingCommandsError" and "no-such-command" in failure.message
    assert "installDepends" in failure.message  # says how to have it installed


# -- installing ----------------------------------------------------------------------------------


@needs_apt_as_root
def test_install_depends_installs_the_missing_package_and_the_command_runs(ec, node):
    if installed(PACKAGE):
        pytest.skip(f"{PACKAGE} is installed already: the test installs and purges it")
    a = app(ec, node, depends=f"sh {PACKAGE}", installDepends=True, command=f"{PACKAGE}", critical=False)
    try:
        ec.deploy()
        ec.wait_finished(a, timeout=600)
        if ec.state(a) == S.FAILED:
            message = failure_of(ec, a).message
            if any(text in message for text in OFFLINE):
                pytest.skip(f"the Debian mirror cannot be reached: {message[-300:]}")
            pytest.fail(message)
        assert installed(PACKAGE)
        assert ec.trace(a, "stdout") == "Hello, world!\n"
    finally:
        if installed(PACKAGE):
            subprocess.run(["apt-get", "purge", "-y", "-q", PACKAGE], capture_output=True,
                           env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}, timeout=300)
    assert not installed(PACKAGE)


@needs_apt_as_root
def test_a_package_that_does_not_exist_fails_with_apts_message(ec, node):
    missing = "nepi-lab-no-such-package"
    a = app(ec, node, depends=missing, installDepends=True, command="true", critical=False)
    ec.deploy()
    ec.wait_finished(a, timeout=600)
    assert ec.state(a) == S.FAILED
    failure = failure_of(ec, a)
    assert failure.error == "PackageInstallError"
    if any(text in failure.message for text in OFFLINE):  # apt-get update could not reach the mirror
        pytest.skip(f"the Debian mirror cannot be reached: {failure.message[-300:]}")
    assert f"cannot install {missing} on localhost" in failure.message
    assert f"Unable to locate package {missing}" in failure.message  # apt-get's own words


@needs_apt_as_root
def test_a_package_that_does_not_give_the_command_says_to_name_it(ec, node):
    # coreutils is installed: apt-get has nothing to do, offline too, and the command stays missing
    a = app(ec, node, depends="no-such-command=coreutils", installDepends=True, command="true",
            critical=False)
    ec.deploy()
    ec.wait_finished(a, timeout=300)
    failure = failure_of(ec, a)
    assert failure.error == "PackageInstallError"
    assert "no-such-command is still not a command" in failure.message
    assert "command=package" in failure.message


def test_without_root_nor_sudo_installing_fails_at_once_over_ssh(ec, sshd):  # noqa: F811
    node = ec.register_resource("linux::Node", **sshd.node_attributes())
    ec.deploy(node)
    ec.wait_deployed(node, timeout=30)
    rm = ec.get_resource(node)
    with pytest.raises(PackageInstallError) as caught:
        run_on_loop(ec, rm.install_packages([PACKAGE]), timeout=60)
    error = caught.value
    assert error.packages == [PACKAGE] and error.where.startswith(f"{sshd.user}@")
    # the host is this machine: .ci/run installs sudo, which the test user may not use
    if shutil.which("sudo"):
        assert "not root and may not use sudo without a password" in str(error)
    else:
        assert "not root and sudo is not installed" in str(error)


def test_install_packages_refuses_what_is_no_package_name(ec, node):
    ec.deploy(node)
    ec.wait_deployed(node, timeout=10)
    with pytest.raises(PackageInstallError, match="'-y' is not a package name"):
        run_on_loop(ec, ec.get_resource(node).install_packages(["-y"]))
