# ruff: noqa: UP008, UP031  -- NEPI 6's style (super(Class, self), % formatting), kept on purpose
"""Resource types written the NEPI way, as a NEPI 6 user wrote them.

Only the imports differ from NEPI 6 (``nepi.execution.resource`` ->
``nepi_lab.compat``): the classes below are what a NEPI user would have written.
They block (``time.sleep``, ``threading.Event.wait``) as NEPI's did.
"""

import os
import threading
import time

from nepi_lab.compat import (
    Attribute,
    Flags,
    LinuxApplication,
    LinuxNode,
    ResourceManager,
    ResourceState,
    Trace,
    Types,
    clsinit_copy,
)

#: Released by the tests to let a blocked ``Gate.do_deploy`` go on.
gate = threading.Event()


@clsinit_copy
class Link(ResourceManager):
    _rtype = "dummy::Link"
    _help = "A link that takes a while to set up"
    _platform = "dummy"

    @classmethod
    def _register_attributes(cls):
        delay = Attribute("delay", "seconds do_deploy sleeps", type=Types.Double, default=0.2)
        label = Attribute("label", "a label", flags=Flags.Design)
        hops = Attribute("hops", "how many hops", type=Types.Integer, default="2",
                         set_hook=lambda old, new: new * 10)
        cls._register_attribute(delay)
        cls._register_attribute(label)
        cls._register_attribute(hops)

    @classmethod
    def _register_traces(cls):
        cls._register_trace(Trace("log", "what the link did", enabled=True))

    def __init__(self, ec, guid):
        super(Link, self).__init__(ec, guid)
        self.deploys = 0

    def do_deploy(self):
        self.deploys += 1
        time.sleep(self.get("delay"))
        super(Link, self).do_deploy()
        self.logger.debug("deployed after %.1f s", self.get("delay"))

    def do_start(self):
        super(Link, self).do_start()
        with open(self.trace_path("log"), "w") as f:
            f.write("started %s\n" % self.get("label"))

    def do_stop(self):
        with open(self.trace_path("log"), "a") as f:
            f.write("stopped\n")
        super(Link, self).do_stop()
        self.info("stopped")


class Interface(ResourceManager):
    _rtype = "dummy::Interface"

    def do_deploy(self):
        link = self.get_connected(Link.get_rtype())[0]
        if link.state < ResourceState.READY:
            self.ec.schedule(self.reschedule_delay, self.deploy)
            self.logger.debug("waiting for link %d", link.guid)
        else:
            super(Interface, self).do_deploy()


class Application(ResourceManager):
    _rtype = "dummy::Application"

    def do_deploy(self):
        time.sleep(0.05)
        super(Application, self).do_deploy()

    def do_start(self):
        super(Application, self).do_start()
        time.sleep(0.05)
        self.ec.schedule("0s", self.stop)


class ErrorApplication(ResourceManager):
    _rtype = "dummy::ErrorApplication"

    def do_deploy(self):
        time.sleep(0.05)
        raise RuntimeError("the dummy application refuses to deploy")


class FailingStart(ResourceManager):
    _rtype = "dummy::FailingStart"

    def do_start(self):
        self.fail()


class Picky(ResourceManager):
    _rtype = "dummy::Picky"

    def valid_connection(self, guid):
        return self.ec.get_resource(guid).get_rtype() != Link.get_rtype()


class Gate(ResourceManager):
    _rtype = "dummy::Gate"

    def do_deploy(self):
        if not gate.wait(30):
            raise RuntimeError("the test never opened the gate")
        super(Gate, self).do_deploy()


@clsinit_copy
class Uploader(LinuxApplication):
    """Prepares a script on its node with the node's blocking commands, runs it."""

    _rtype = "dummy::Uploader"

    @classmethod
    def _register_attributes(cls):
        cls._register_attribute(Attribute("greeting", "what the script prints", default="hello",
                                          flags=Flags.Design))
        cls._register_attribute(Attribute("localFile", "a local file to upload", flags=Flags.Design))

    def do_deploy(self):
        node = self.node
        if not node or node.state < ResourceState.READY:
            self.ec.schedule(self.reschedule_delay, self.deploy)
            return
        folder = os.path.join(node.home_dir, "uploader-%d" % self.guid)
        node.mkdir(folder, clean=True)
        node.upload("#!/bin/sh\necho %s from $0\n" % self.get("greeting"),
                    os.path.join(folder, "greet.sh"), text=True, executable=True)
        if self.get("localFile"):
            node.upload(self.get("localFile"), folder)
        (out, err), proc = node.execute("ls %s" % folder)
        self.listing = out.split()
        (out, err), proc = node.run_and_wait("sh greet.sh | tr a-z A-Z", folder, shfile="loud.sh")
        self.loud = out
        (out, err), proc = self.execute_command("echo $X ${RUN_HOME}", env="X=1")
        self.expanded = out
        self.set("command", os.path.join(folder, "greet.sh"))
        self.set("tearDown", "rm -rf %s" % folder)
        super(Uploader, self).do_deploy()


class Commands(ResourceManager):
    """Uses a node's command API from a plain NEPI-style type's hooks."""

    _rtype = "dummy::Commands"

    def do_deploy(self):
        node = self.get_connected(LinuxNode.get_rtype())[0]
        if node.state < ResourceState.READY:
            self.ec.schedule(self.reschedule_delay, self.deploy)
            return
        node.find_home()
        self.home = node.home_dir
        (out, err), proc = node.execute("echo $GREETING; exit 3", env={"GREETING": "hi there"})
        self.result = (out, err, proc.poll())
        (out, err), proc = node.execute("echo $A-$B", env="A=1 B='x y'")
        self.env_string = out
        try:
            node.run_and_wait("echo oops >&2; exit 4", os.path.join(self.home, "rw"))
        except RuntimeError as exc:
            self.failure = str(exc)
        (out, err), proc = node.run_and_wait("echo quiet >&2; exit 5", os.path.join(self.home, "rw"),
                                             raise_on_error=False)
        self.soft = (out, err, proc.returncode)
        rw = os.path.join(self.home, "rw")
        (out, err), proc = node.run("echo background; echo errors >&2", rw)
        pid, ppid = node.wait_pid(rw)
        node.wait_run(pid, ppid)
        self.background = (node.status(pid, ppid), proc.poll(), node.check_output(rw, "stdout")[0][0],
                           node.check_output(rw, "stderr")[0][0])
        (out, err), proc = node.run("exec sleep 60", rw, pidfile="sleeper.pid", stdout=None, stderr=None)
        pid, ppid = node.getpid(rw, "sleeper.pid")
        self.sleeping = node.status(pid, ppid)
        (out, err), proc = node.kill(pid, ppid)
        self.killed = (node.status(pid, ppid), proc.poll())
        super(Commands, self).do_deploy()

    def do_release(self):
        node = self.get_connected(LinuxNode.get_rtype())[0]
        node.rmdir(os.path.join(self.home, "rw"))
        super(Commands, self).do_release()


@clsinit_copy
class Installer(ResourceManager):
    _rtype = "dummy::Installer"

    @classmethod
    def _register_attributes(cls):
        cls._register_attribute(Attribute("packages", "what to install", default="iperf3"))
        cls._register_attribute(Attribute("remove", "remove them instead", type=Types.Bool, default=False))

    def do_deploy(self):
        node = self.get_connected(LinuxNode.get_rtype())[0]
        if node.state < ResourceState.READY:
            self.ec.schedule(self.reschedule_delay, self.deploy)
            return
        if self.get("remove"):
            node.remove_packages(self.get("packages"), node.home_dir)
        else:
            (self.out, self.err), self.proc = node.install_packages(self.get("packages"), node.home_dir)
        super(Installer, self).do_deploy()


# -- a rack deployed in dependency order: every type reschedules its own deploy ------------------


def not_yet(rm, others, state):
    """Whether one of ``others`` is still below ``state``; then ``rm``'s deploy is asked
    for again a little later (a NEPI-style resource waits for its neighbours so)."""
    if any(other.state < state for other in others):
        rm.ec.schedule("0.1s", rm.deploy)
        return True
    return False


class RackSwitch(ResourceManager):
    _rtype = "rack::Switch"

    def do_deploy(self):
        time.sleep(0.2)  # powering up
        super(RackSwitch, self).do_deploy()


class RackPort(ResourceManager):
    """Ready once its server is provisioned and its switch is ready."""

    _rtype = "rack::Port"

    def do_deploy(self):
        servers = self.get_connected(RackServer.get_rtype())
        switches = self.get_connected(RackSwitch.get_rtype())
        if not_yet(self, servers, ResourceState.PROVISIONED) or not_yet(self, switches, ResourceState.READY):
            return
        time.sleep(0.1)  # cabling
        super(RackPort, self).do_deploy()


class RackServer(ResourceManager):
    """Provisions itself at once, then is ready once all its ports are."""

    _rtype = "rack::Server"
    _long_lived = True

    def do_deploy(self):
        if self.state < ResourceState.PROVISIONED:
            self.do_discover()
            self.do_provision()
        if not_yet(self, self.get_connected(RackPort.get_rtype()), ResourceState.READY):
            return
        super(RackServer, self).do_deploy()


class RackService(ResourceManager):
    """Ready after its server; stops itself right after starting."""

    _rtype = "rack::Service"

    def do_deploy(self):
        if not not_yet(self, self.get_connected(RackServer.get_rtype()), ResourceState.READY):
            super(RackService, self).do_deploy()

    def do_start(self):
        super(RackService, self).do_start()
        self.ec.schedule("0s", self.stop)
