"""``netns::Interface``: one end of a link on a ``netns::Node``, with its addresses.

An interface is connected to exactly one ``netns::Node`` (where it lives) and one
``netns::Link`` (which makes the veth pair it is an end of).  Its attributes say how
the end is configured:

==========  ===========================================================================
``ifname``  the device name; default ``nl<tag>-e<k>``, ``k`` counting the node's
            interfaces in guid order (at most 15 characters)
``ip``      an IPv4 address with its prefix length, ``10.0.0.1/30``
``ipv6``    an IPv6 address with its prefix length, ``fd00::1/64`` (no duplicate
            address detection: usable at once; on a fresh link the kernel may still
            take about a second to resolve the first neighbour, as with plain ``ip``)
``mtu``     bytes; default the kernel's (1500)
``up``      administrative state; may be changed while the experiment runs, e.g.
            ``ec.set_with_conditions("up", False, iface, app, "STARTED", "2s")``
            cuts the link two seconds after ``app`` started
==========  ===========================================================================

Deploy waits for its link to have made the veth pair, then adds the addresses and
brings the device up; routes on the node wait for its interfaces.  Release removes
the addresses (the link then deletes the device), unless the node is being released
too: its namespace goes with them.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from typing import TYPE_CHECKING, Any

from ...core.attributes import Attribute, Flags, Types
from ...core.errors import AttributeValueError, InvalidInputError
from ...core.resource import ResourceManager, TopologyRole
from ...core.states import ResourceState
from ._namespace import IFNAME_MAX, NAME_RULE, being_released, netlink, run_names
from .node import Node

if TYPE_CHECKING:
    from ...core.controller import ExperimentController
    from .link import Link

log = logging.getLogger("nepi_lab")
S = ResourceState

#: ``IFA_F_NODAD``: the address is usable at once (no duplicate address detection).
_IFA_F_NODAD = 0x02


def _address_hook(version: int, example: str) -> Any:
    def check(rm: ResourceManager, old: Any, new: Any) -> Any:
        if new is None:
            return None
        name = "ip" if version == 4 else "ipv6"
        try:
            value = ipaddress.ip_interface(new.strip())
        except ValueError as exc:
            raise AttributeValueError(rm.guid, rm._rtype, name, new, str(exc)) from None
        if value.version != version or "/" not in new:
            raise AttributeValueError(
                rm.guid, rm._rtype, name, new,
                f"expected an IPv{version} address and its prefix length, e.g. {example}")
        return value.with_prefixlen
    return check


def _check_ifname(rm: ResourceManager, old: Any, new: Any) -> Any:
    if new is not None and (not NAME_RULE.fullmatch(new) or len(new) > IFNAME_MAX or new == "lo"):
        raise AttributeValueError(rm.guid, rm._rtype, "ifname", new,
                                  f"an interface name: letters, digits, '_', '.', '-', at most {IFNAME_MAX}")
    return new


def _apply_up(rm: ResourceManager, old: Any, new: Any) -> Any:
    """Set hook of ``up``: once deployed, the device follows the attribute."""
    if isinstance(rm, Interface) and new is not None and new != old and rm._index:
        rm.ec._runner.call_soon(lambda: rm.ec._spawn(rm._set_link_state(bool(new))))
    return new


class Interface(ResourceManager):
    """An end of a ``netns::Link`` on a ``netns::Node`` (see the module docstring)."""

    _rtype = "netns::Interface"
    _connects_to = ("netns::Node", "netns::Link")  # one of each: valid_connection refuses a second
    _help = "One end of a netns::Link on a netns::Node: name, IPv4/IPv6 address, MTU, up/down."
    _platform = "netns"
    _topology_role = TopologyRole.INTERFACE
    _topology_labels = (("ip", "{}"), ("ipv6", "{}"))
    _attributes = (
        Attribute("ifname", "device name (default nl<tag>-e<k>; at most 15 characters)",
                  flags=Flags.Design, set_hook=_check_ifname),
        Attribute("ip", "IPv4 address and prefix length, e.g. 10.0.0.1/30", flags=Flags.Design,
                  set_hook=_address_hook(4, "10.0.0.1/30")),
        Attribute("ipv6", "IPv6 address and prefix length, e.g. fd00::1/64", flags=Flags.Design,
                  set_hook=_address_hook(6, "fd00::1/64")),
        Attribute("mtu", "MTU in bytes (default: the kernel's, 1500)", type=Types.Integer,
                  range=(68, 65535), flags=Flags.Design),
        Attribute("up", "whether the device is up; may change while the experiment runs",
                  type=Types.Bool, default=True, set_hook=_apply_up),
    )

    def __init__(self, ec: ExperimentController, guid: int) -> None:
        super().__init__(ec, guid)
        self._index = 0  # the device's index in the node's namespace, once configured
        self._added: list[tuple[str, int]] = []

    # -- connections -------------------------------------------------------------------

    def valid_connection(self, other: ResourceManager) -> bool | str:
        from .link import Link

        for kind in (Node, Link):  # the types were checked: one node and one link
            if isinstance(other, kind):
                taken = [rm for rm in self.get_connected(kind) if rm is not other]
                if taken:
                    return f"interface {self.guid} is already connected to {kind._rtype} {taken[0].guid}"
        return True

    @property
    def node(self) -> Node:
        """The node the interface lives on."""
        nodes = self.get_connected(Node)
        if not nodes:
            raise InvalidInputError(f"netns::Interface {self.guid} is not connected to a netns::Node: "
                                    f"connect one with ec.register_connection({self.guid}, node)")
        return nodes[0]  # type: ignore[return-value]

    @property
    def link(self) -> Link:
        """The link the interface is an end of."""
        from .link import Link

        links = self.get_connected(Link)
        if not links:
            raise InvalidInputError(f"netns::Interface {self.guid} is not connected to a netns::Link: "
                                    f"connect one with ec.register_connection({self.guid}, link)")
        return links[0]  # type: ignore[return-value]

    @property
    def ifname(self) -> str:
        """The device name: ``ifname``, or ``nl<tag>-e<k>``."""
        name = self.get("ifname")
        if name:
            return name
        node = self.node
        siblings = sorted(rm.guid for rm in node.get_connected(Interface))
        return run_names(self.ec).ifname(f"e{siblings.index(self.guid)}")

    @property
    def address(self) -> str | None:
        """The IPv4 address without its prefix length (None if unset)."""
        ip = self.get("ip")
        return ip.split("/")[0] if ip else None

    # -- lifecycle ---------------------------------------------------------------------

    async def do_discover(self) -> None:
        self.node, self.link  # noqa: B018 - both must be connected: say so now
        if not self.get("ifname"):
            self.set("ifname", self.ifname, internal=True)

    async def do_provision(self) -> None:
        node, link = self.node, self.link
        await self.wait_for(node, S.READY)
        await self.wait_for(link, S.PROVISIONED)
        ipr = node.namespace.ipr
        index = await node.namespace.index(self.ifname)
        for key, family in (("ip", socket.AF_INET), ("ipv6", socket.AF_INET6)):
            value = self.get(key)
            if value:
                address, prefix = value.split("/")
                flags = _IFA_F_NODAD if family == socket.AF_INET6 else 0
                await netlink(node.namespace, f"address add {value} dev {self.ifname}",
                              ipr.addr("add", index=index, address=address, prefixlen=int(prefix),
                                       family=family, flags=flags))
                self._added.append((address, int(prefix)))
        self._index = index
        if self.get("up"):
            await ipr.link("set", index=index, state="up")

    async def _set_link_state(self, up: bool) -> None:
        node = self.get_connected(Node)
        netns = node[0].netns if node else None  # type: ignore[attr-defined]
        if not self._index or netns is None or netns.ipr is None or self.state >= S.RELEASED:
            return
        state = "up" if up else "down"
        try:
            await netns.ipr.link("set", index=self._index, state=state)
        except Exception as exc:  # the device went away (released meanwhile)
            log.warning("netns::Interface %s: could not set it %s: %s", self.guid, state, exc)

    async def do_release(self) -> None:
        index, self._index = self._index, 0
        nodes = self.get_connected(Node)
        netns = nodes[0].netns if nodes else None  # type: ignore[attr-defined]
        if not index or netns is None or netns.ipr is None or being_released(nodes[0]):
            self._added.clear()
            return  # the namespace goes, with the addresses
        for address, prefix in self._added:
            try:
                request = netns.ipr.addr("del", index=index, address=address, prefixlen=prefix)
                await asyncio.wait_for(request, 5)
            except Exception as exc:  # the device is already gone: so is the address
                log.debug("netns::Interface %s: address %s not removed: %s", self.guid, address, exc)
        self._added.clear()
