"""``netns::Node``: a network namespace acting as a host.

A ``netns::Node`` is a :class:`~nepi_lab.resources.linux.node.Node` whose network is
its own namespace, ``nl<tag>-<name>`` (see :mod:`._namespace`): applications
connected to it (``linux::Application``, ``linux::Ping``, ``linux::Iperf3Server`` ...)
run inside the namespace, with the same folders, traces and lifecycle as on a
``linux::Node``.  Its executor is a :class:`~nepi_lab.resources.linux.LocalExecutor`
whose commands are prefixed with ``ip netns exec <namespace>``, which also gives them
the namespace's view of ``/sys``.  Files stay this machine's.

Deploy makes the namespace, brings ``lo`` up and, with ``forwarding``, turns on IPv4
and IPv6 forwarding.  Release (after its applications, interfaces and links) kills
whatever still runs inside the namespace and removes it, with every interface,
address, route and netfilter rule it held.

Example
-------
>>> with ExperimentController() as ec:                      # doctest: +SKIP
...     h1 = ec.register_resource("netns::Node", name="h1")
...     app = ec.register_resource("linux::Application", connectedTo=h1, command="ip -br addr")
...     ec.deploy()
...     ec.wait_finished(app)
...     print(ec.trace(app, "stdout"))                        # lo only: a fresh namespace
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...core.attributes import Attribute, Flags, Types
from ...core.errors import AttributeValueError
from ...core.resource import ResourceManager
from ..linux import LocalExecutor
from ..linux.node import Node as LinuxNode
from ._namespace import NAME_RULE, InNamespace, Namespace, write_sysctl

if TYPE_CHECKING:
    from ...core.controller import ExperimentController

#: Longest node or switch name (namespace names stay short enough to read).
NAME_MAX = 40


def check_name(rm: ResourceManager, old: Any, new: Any) -> Any:
    """Set hook of ``name``: letters, digits, ``_ . -``, at most :data:`NAME_MAX` characters."""
    if new is not None and (not NAME_RULE.fullmatch(new) or len(new) > NAME_MAX):
        raise AttributeValueError(rm.guid, rm._rtype, "name", new,
                                  f"use letters, digits, '_', '.', '-' (not first), at most {NAME_MAX}")
    return new


def _only_localhost(rm: ResourceManager, old: Any, new: Any) -> Any:
    if new not in (None, "localhost"):
        raise AttributeValueError(rm.guid, rm._rtype, "hostname", new,
                                  "a netns::Node is a namespace of this machine: hostname is localhost")
    return new


class Node(InNamespace, LinuxNode):
    """A network namespace of this machine acting as a host (see the module docstring)."""

    _rtype = "netns::Node"
    _help = "A network namespace acting as a host; applications connected to it run inside it."
    _platform = "netns"
    # besides linux::Application (inherited from linux::Node)
    _connects_to = ("netns::Interface", "netns::Route")
    _attributes = (
        Attribute("hostname", "always localhost: the namespace is on this machine", default="localhost",
                  flags=Flags.Design, set_hook=_only_localhost),
        Attribute("name", "short name; the namespace is nl<tag>-<name> (default: n<guid>)",
                  flags=Flags.Design, set_hook=check_name),
        Attribute("forwarding", "forward IPv4 and IPv6 packets between interfaces (a router)",
                  type=Types.Bool, default=False, flags=Flags.Design),
        Attribute("namespace", "the network namespace's name, once deployed", flags=Flags.NoWrite),
    )

    def __init__(self, ec: ExperimentController, guid: int) -> None:
        super().__init__(ec, guid)
        self.netns: Namespace | None = None  #: the namespace, from DISCOVERED until released

    @property
    def name(self) -> str:
        """The ``name`` attribute, or ``n<guid>``."""
        return self.get("name") or f"n{self.guid}"

    async def do_discover(self) -> None:
        name = self._create_namespace().name
        await self.netns.ipr.link("set", index=1, state="up")
        for scope in ("all", "default"):  # addresses usable at once: no duplicate detection
            write_sysctl(name, f"net.ipv6.conf.{scope}.accept_dad", "0")
        if self.get("forwarding"):
            write_sysctl(name, "net.ipv4.ip_forward", "1")
            write_sysctl(name, "net.ipv6.conf.all.forwarding", "1")
        await super().do_discover()  # folders on this machine, as for a localhost linux::Node

    def _new_executor(self) -> LocalExecutor:
        # its commands run in the namespace, never in a cgroup of the node's on this machine
        # (a plain local executor made first used to make one at discover, for nothing)
        assert self.netns is not None, "the namespace is made first"
        name = self.netns.name
        return LocalExecutor(prefix=["ip", "netns", "exec", name], where=f"netns {name}")

    async def do_release(self) -> None:
        try:
            await super().do_release()
        finally:
            if self.netns is not None:
                self.netns.remove()
