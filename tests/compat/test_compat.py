"""NEPI-style resource types (``nepi_types``, written as NEPI's tests wrote theirs)
run with only their imports changed, against real local ``linux::Node`` resources."""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import threading

import pytest

from nepi_lab import InvalidConnectionError, ReadOnlyAttributeError, ResourceAction, ResourceState
from nepi_lab.compat import LinuxNode, ProcStatus, ResourceFactory, ResourceManager, nepi_view

from ..test_public_api import layer_offences
from . import nepi_types
from .nepi_types import Interface, Link

S = ResourceState


def test_a_nepi_style_type_registers_with_its_attributes_and_traces():
    assert ResourceFactory.get_resource_type("dummy::Link") is Link
    assert Link.get_rtype() == "dummy::Link" and Link.get_platform() == "dummy"
    names = [a.name for a in Link.get_attributes()]
    assert names[-3:] == ["delay", "label", "hops"] and {"critical", "hardRelease"} <= set(names)
    assert Link.get_attribute("hops").default == 2  # NEPI's "2" for an Integer, normalised
    assert [t.name for t in Link.get_traces()] == ["log"]
    assert len(Interface._attribute_table) == len(ResourceManager._attribute_table)  # undecorated: inherits
    assert ResourceFactory.get_resource_type("dummy::NoSuchType") is None
    assert {"dummy::Link", "dummy::Application", "linux::Node"} <= set(ResourceFactory.resource_types())


def test_valid_connection_gets_a_guid_as_in_nepi(ec):
    picky, link, app = (ec.register_resource(t)
                        for t in ("dummy::Picky", "dummy::Link", "dummy::Application"))
    with pytest.raises(InvalidConnectionError, match="dummy::Picky does not accept a dummy::Link"):
        ec.register_connection(picky, link)
    ec.register_connection(picky, app)
    assert ec.get_resource(picky).connections == {app}


def test_deploy_start_stop_release_with_blocking_hooks(ec):
    link = ec.register_resource("dummy::Link", label="eth")
    iface = ec.register_resource("dummy::Interface")
    ec.register_connection(iface, link)
    app = ResourceFactory.create("dummy::Application", ec)
    ec.set(link, "hops", "3")
    assert ec.get(link, "hops") == 30  # NEPI's set_hook(old, new)
    ec.deploy()
    ec.wait_finished(app.guid, timeout=30)
    assert app.state == S.STOPPED  # its do_start scheduled self.stop, as NEPI's tests did
    ec.wait_started([link, iface], timeout=30)
    rm_link, rm_iface = ec.get_resource(link), ec.get_resource(iface)
    with pytest.raises(ReadOnlyAttributeError):
        ec.set(link, "label", "late")  # Flags.Design binds users after deploy
    # the interface asked for self.deploy until the link was READY
    assert rm_iface.ready_time > rm_link.ready_time
    assert rm_link.deploys == 1
    for rm in (rm_link, rm_iface, app):
        assert isinstance(rm.ready_time, datetime.datetime)
        assert rm.discover_time <= rm.provision_time <= rm.ready_time <= rm.start_time
    assert app.start_time <= app.stop_time and app.failed_time is None and app.release_time is None
    ec.stop(link)
    assert rm_link.state == S.STOPPED and rm_link.stop_time >= rm_link.start_time
    assert ec.trace(link, "log") == "started eth\nstopped\n"
    first_start = rm_link.start_time
    ec.start(link)  # started again: do_start once more
    assert rm_link.state == S.STARTED and rm_link.start_time >= rm_link.stop_time >= first_start
    ec.release()
    assert all(ec.state(g) == S.RELEASED for g in (link, iface, app.guid))
    assert rm_link.release_time >= rm_link.stop_time


def test_a_rack_deploys_in_dependency_order(ec):
    """NEPI-style types that wait for each other by rescheduling their own deploy: a
    service waits for its server, a server for its ports, a port for its server's
    PROVISIONED and for the switch."""
    switch = ec.register_resource("rack::Switch")
    racks = []
    for _ in range(2):
        server = ec.register_resource("rack::Server")
        port = ec.register_resource("rack::Port", connectedTo=server)
        ec.register_connection(port, switch)
        service = ec.register_resource("rack::Service", connectedTo=server)
        racks.append((server, port, service))
    ec.deploy()
    services = [service for _, _, service in racks]
    ec.wait_finished(services, timeout=60)
    rm = ec.get_resource
    assert [ec.state(s) for s in services] == [S.STOPPED, S.STOPPED]  # stopped themselves
    for server, port, service in racks:
        assert ec.state(server) == S.STARTED  # long-lived, as NEPI's nodes
        assert rm(server).provision_time < rm(port).ready_time < rm(server).ready_time
        assert rm(server).ready_time < rm(service).ready_time
        assert rm(switch).ready_time < rm(port).ready_time
    ec.shutdown()
    assert all(ec.get_resource(g).state == S.RELEASED for g in ec.resources)


def test_a_start_condition_between_nepi_style_resources(ec):
    first = ec.register_resource("dummy::Link", delay=0.0)
    second = ec.register_resource("dummy::Link", delay=0.0)
    ec.register_condition(second, ResourceAction.START, first, ResourceState.STARTED, time="1s")
    ec.deploy()
    ec.wait_started([first, second], timeout=30)
    gap = ec.get_resource(second).start_time - ec.get_resource(first).start_time
    assert gap >= datetime.timedelta(seconds=1)


def test_a_hook_that_raises_fails_the_resource_with_its_message(ec):
    ok = ec.register_resource("dummy::Application")
    bad = ec.register_resource("dummy::ErrorApplication", critical=False)
    ec.deploy()
    ec.wait_finished([ok, bad], timeout=30)
    rm = ec.get_resource(bad)
    assert rm.state == S.FAILED and rm.failed_time is not None
    assert (rm.failure.step, rm.failure.error) == ("deploy", "RuntimeError")
    assert rm.failure.message == "the dummy application refuses to deploy"
    assert ec.state(ok) == S.STOPPED


def test_self_fail_in_a_hook_fails_the_resource(ec):
    guid = ec.register_resource("dummy::FailingStart", critical=False)
    ec.deploy()
    ec.wait_finished(guid, timeout=30)
    failure = ec.get_resource(guid).failure
    assert ec.state(guid) == S.FAILED and failure.step == "start"
    assert "called self.fail()" in failure.message


def test_the_loop_answers_while_a_hook_blocks(ec):
    nepi_types.gate.clear()
    gate = ec.register_resource("dummy::Gate")
    link = ec.register_resource("dummy::Link", delay=0.0)
    try:
        ec.deploy(gate, wait_all_ready=False)
        ec.deploy(link, wait_all_ready=False)
        ec.wait_started(link, timeout=30)  # while Gate.do_deploy blocks in its thread
        assert ec.state(gate) == S.NEW and "deploy" in ec.explain(gate)
        assert ec._runner.run(asyncio.sleep(0, "answered"), "probe") == "answered"
    finally:
        nepi_types.gate.set()
    ec.wait_started(gate, timeout=30)


def test_the_logger_names_the_type_and_the_guid(ec, caplog):
    guid = ec.register_resource("dummy::Link", delay=0.0)
    with caplog.at_level(logging.DEBUG, logger="nepi_lab.dummy::Link"):
        ec.deploy()
        ec.wait_started(guid, timeout=30)
        ec.stop(guid)
    messages = [(r.name, r.getMessage()) for r in caplog.records if r.name == "nepi_lab.dummy::Link"]
    assert ("nepi_lab.dummy::Link", f"guid {guid} - deployed after 0.0 s") in messages
    assert any(m.strip() == f"dummy::Link guid {guid} - stopped" for _, m in messages)


def test_a_linux_application_prepared_with_the_nodes_blocking_commands(ec, home, tmp_path):
    local = tmp_path / "payload.txt"
    local.write_text("payload\n")
    node = ec.register_resource("linux::Node", hostname="localhost", home=home)
    app = ec.register_resource("dummy::Uploader", greeting="bonjour", localFile=str(local))
    ec.register_connection(app, node)
    ec.deploy()
    ec.wait_finished(app, timeout=60)
    rm = ec.get_resource(app)
    assert rm.state == S.FINISHED, rm.failure
    folder = os.path.join(home, f"uploader-{app}")
    assert sorted(rm.listing) == ["greet.sh", "payload.txt"]
    assert rm.loud == "BONJOUR FROM GREET.SH\n"
    assert rm.expanded == f"1 {rm.app_home}\n" and rm.app_home == rm.trace_filepath("x")[:-2]
    assert rm.app_home == os.path.join(ec.get_resource(node).run_home, str(app))
    assert ec.trace(app, "stdout") == f"bonjour from {folder}/greet.sh\n"
    assert rm.start_time <= rm.stop_time  # FINISHED ends its work, as NEPI's STOPPED did
    ec.release()
    assert not os.path.exists(folder)  # its tearDown


def test_a_plain_type_uses_a_connected_nodes_commands(ec, home):
    node = ec.register_resource("linux::Node", hostname="localhost", home=home)
    commands = ec.register_resource("dummy::Commands")
    ec.register_connection(commands, node)
    ec.deploy()
    ec.wait_started(commands, timeout=60)
    rm = ec.get_resource(commands)
    assert rm.home == home
    assert rm.result == ("hi there\n", "", 3)
    assert rm.env_string == "1-x y\n"
    assert "exit status 4" in rm.failure and "oops" in rm.failure
    assert rm.soft == ("", "quiet\n", 5)
    assert rm.background == (ProcStatus.FINISHED, 0, "background\n", "errors\n")
    assert rm.sleeping == ProcStatus.RUNNING and rm.killed == (ProcStatus.FINISHED, -9)
    assert os.path.isdir(os.path.join(home, "rw"))
    ec.release()
    assert not os.path.exists(os.path.join(home, "rw"))


def test_install_packages_goes_through_the_nodes_own(ec, home):
    # iperf3 is installed (the tests use it): the package manager runs and says so, as root
    node = ec.register_resource("linux::Node", hostname="localhost", home=home)
    installer = ec.register_resource("dummy::Installer", packages="iperf3")
    ec.register_connection(installer, node)
    ec.deploy()
    ec.wait_deployed(installer, timeout=300)
    rm = ec.get_resource(installer)
    assert rm.proc.poll() == 0
    assert "iperf3" in rm.out + rm.err  # apt-get: "iperf3 is already the newest version"


def test_remove_packages_says_what_to_do_without_the_nodes_own(ec, home):
    node = ec.register_resource("linux::Node", hostname="localhost", home=home)
    installer = ec.register_resource("dummy::Installer", packages="iperf3", remove=True, critical=False)
    ec.register_connection(installer, node)
    ec.deploy()
    ec.wait_finished(installer, timeout=60)
    failure = ec.get_resource(installer).failure
    assert failure.error == "NotImplementedError"
    assert "cannot remove packages (iperf3)" in failure.message and "beforehand" in failure.message


def test_the_blocking_commands_refuse_the_loop_thread(ec, home):
    guid = ec.register_resource("linux::Node", hostname="localhost", home=home)
    ec.deploy()
    ec.wait_started(guid, timeout=30)
    view = nepi_view(ec.get_resource(guid))
    assert isinstance(view, LinuxNode) and view == ec.get_resource(guid) and view.guid == guid

    async def on_the_loop():
        return view.execute("true")

    with pytest.raises(RuntimeError, match="cannot run on the controller's loop thread"):
        ec._runner.run(on_the_loop(), "probe")
    (out, _), proc = view.execute("echo from the main thread")  # any other thread may block
    assert (out, proc.poll()) == ("from the main thread\n", 0)
    assert threading.current_thread() is threading.main_thread()


def test_nothing_below_the_compatibility_layer_imports_it():
    for package in ("nepi_lab.core", "nepi_lab.resources", "nepi_lab.resources.linux",
                    "nepi_lab.resources.netns", "nepi_lab.runner"):
        assert layer_offences(package, ("nepi_lab.compat",)) == {}, package
    above = ("nepi_lab.notebook", "nepi_lab.analysis", "nepi_lab.cli", "nepi_lab.demo", "nepi_lab.runner",
             "pandas", "matplotlib", "ipywidgets", "IPython")
    assert layer_offences("nepi_lab.compat", above) == {}


def test_nepis_class_names_of_the_shared_types_are_ours():
    import nepi_lab.compat as compat
    from nepi_lab import get_resource_type

    shared = ("Ping", "Tcpdump", "Traceroute", "Mtr", "NPing", "UdpTest", "Tap", "Tun", "GRETunnel",
              "UdpTunnel", "Interface", "Channel")
    names = {f"Linux{t}": f"linux::{t}" for t in shared}
    names["Collector"] = "Collector"
    for name, rtype in names.items():
        cls = getattr(compat, name)
        assert cls.get_rtype() == rtype
        ResourceFactory.register_type(cls)  # as NEPI scripts did: changes nothing
        assert get_resource_type(rtype) is cls and ResourceFactory.get_resource_type(rtype) is cls


def test_registering_nepis_linux_node_class_keeps_our_type(ec, home):
    from nepi_lab.resources.linux.node import Node

    ResourceFactory.register_type(LinuxNode)  # NEPI scripts did: LinuxNode is our command API here
    assert ResourceFactory.get_resource_type("linux::Node") is Node
    guid = ec.register_resource("linux::Node", hostname="localhost", home=home)
    ec.deploy()
    ec.wait_started(guid, timeout=30)
    with pytest.raises(TypeError, match="not a resource type"):
        ResourceFactory.register_type(object)
