"""``netns::Route``: a static route on a ``netns::Node``.

Connected to one ``netns::Node``.  ``destination`` is a network (``10.0.2.0/24``,
``fd00:0:0:2::/64``) or ``default`` (IPv4, or IPv6 when the gateway is IPv6);
``gateway`` the next hop's address; ``device`` the interface to leave by (needed only
without a gateway); ``metric`` the route's priority.

NEPI's ``netns::IPv4Route`` (and ``linux::Route``) named the route by ``network``,
``prefix`` and ``nexthop``: ``nexthop`` is an alias of ``gateway``; ``network`` and
``prefix`` are attributes of their own, read together as the destination
``network/prefix`` (``prefix`` defaults to the whole address: a host route) when
``destination`` is not given.

Deploy waits for the node and all its interfaces (so the gateway is reachable),
then adds the route; release deletes it (unless the node is being released too).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from typing import TYPE_CHECKING, Any

from ...core.attributes import Alias, Attribute, Flags, Types
from ...core.errors import AttributeValueError, InvalidInputError
from ...core.resource import ResourceManager, TopologyRole
from ...core.states import ResourceState
from ._namespace import being_released, netlink
from .interface import Interface
from .node import Node

if TYPE_CHECKING:
    from ...core.controller import ExperimentController

log = logging.getLogger("nepi_lab")
S = ResourceState


def _check_destination(rm: ResourceManager, old: Any, new: Any) -> Any:
    if new is None or new.strip() == "default":
        return None if new is None else "default"
    try:
        return ipaddress.ip_network(new.strip()).with_prefixlen
    except ValueError as exc:
        raise AttributeValueError(rm.guid, rm._rtype, "destination", new,
                                  f"{exc}; expected a network such as 10.0.2.0/24, or 'default'") from None


def _check_network(rm: ResourceManager, old: Any, new: Any) -> Any:
    if new is None:
        return None
    try:
        return str(ipaddress.ip_address(new.strip()))
    except ValueError as exc:
        raise AttributeValueError(rm.guid, rm._rtype, "network", new,
                                  f"{exc}; expected the network's address, e.g. 10.0.2.0") from None


def _check_gateway(rm: ResourceManager, old: Any, new: Any) -> Any:
    if new is None:
        return None
    try:
        return str(ipaddress.ip_address(new.strip()))
    except ValueError as exc:
        raise AttributeValueError(rm.guid, rm._rtype, "gateway", new, str(exc)) from None


class Route(ResourceManager):
    """A static route on a ``netns::Node`` (see the module docstring)."""

    _rtype = "netns::Route"
    _connects_to = ("netns::Node",)  # one: valid_connection refuses a second
    _help = "A static route (destination, gateway) on a netns::Node."
    _platform = "netns"
    _topology_role = TopologyRole.ROUTE
    _attributes = (
        Attribute("destination", "network, e.g. 10.0.2.0/24 or fd00:0:0:2::/64, or 'default'",
                  flags=Flags.Design, set_hook=_check_destination),
        Attribute("gateway", "address of the next hop", flags=Flags.Design, set_hook=_check_gateway),
        Attribute("device", "interface to leave by (needed only without a gateway)", flags=Flags.Design),
        Attribute("metric", "route priority (lower wins)", type=Types.Integer, range=(0, 2**32 - 1),
                  flags=Flags.Design),
        Attribute("network", "NEPI's way: the destination network's address, e.g. 10.0.2.0 (with prefix)",
                  flags=Flags.Design, set_hook=_check_network),
        Attribute("prefix", "NEPI's way: the destination's prefix length (default: the whole address)",
                  type=Types.Integer, range=(0, 128), flags=Flags.Design),
    )
    _aliases = (Alias("nexthop", "gateway"),)

    def __init__(self, ec: ExperimentController, guid: int) -> None:
        super().__init__(ec, guid)
        self._request: dict[str, Any] | None = None

    def valid_connection(self, other: ResourceManager) -> bool | str:
        if not isinstance(other, Node):
            return True  # refused by the types (_connects_to)
        nodes = [n for n in self.get_connected(Node) if n is not other]
        if nodes:
            return f"route {self.guid} is already on node {nodes[0].guid}"
        return True

    @property
    def node(self) -> Node:
        nodes = self.get_connected(Node)
        if not nodes:
            raise InvalidInputError(f"netns::Route {self.guid} is not connected to a netns::Node: "
                                    f"connect one with ec.register_connection({self.guid}, node)")
        return nodes[0]  # type: ignore[return-value]

    def _destination(self) -> str | None:
        """``destination``, or NEPI's ``network``/``prefix`` read as one."""
        destination, network = self.get("destination"), self.get("network")
        if network is None:
            if self.get("prefix") is not None:
                raise InvalidInputError(f"netns::Route {self.guid}: prefix needs network (or give "
                                        f"destination, e.g. 10.0.2.0/24)")
            return destination
        if destination is not None:
            raise InvalidInputError(f"netns::Route {self.guid}: give destination or network and prefix, "
                                    f"not both")
        prefix = self.get("prefix")
        text = network if prefix is None else f"{network}/{prefix}"
        try:
            return ipaddress.ip_network(text).with_prefixlen
        except ValueError as exc:
            raise InvalidInputError(f"netns::Route {self.guid}: network {network} with prefix {prefix} is "
                                    f"not a network: {exc}") from None

    def _family(self) -> int:
        destination, gateway = self._destination(), self.get("gateway")
        if destination not in (None, "default"):
            version = ipaddress.ip_network(destination).version
        elif gateway is not None:
            version = ipaddress.ip_address(gateway).version
        else:
            version = 4
        if gateway is not None and ipaddress.ip_address(gateway).version != version:
            raise InvalidInputError(f"netns::Route {self.guid}: gateway {gateway} and destination "
                                    f"{destination} are not of the same IP version")
        return socket.AF_INET6 if version == 6 else socket.AF_INET

    async def do_discover(self) -> None:
        if self._destination() is None:
            raise InvalidInputError(f"netns::Route {self.guid} needs a destination (a network, or 'default'; "
                                    f"or NEPI's network and prefix)")
        if self.get("gateway") is None and self.get("device") is None:
            raise InvalidInputError(f"netns::Route {self.guid} needs a gateway or a device")
        self._family()
        self.node  # noqa: B018 - say now if it is missing

    async def do_provision(self) -> None:
        node = self.node
        await self.wait_for(node, S.READY)
        for interface in node.get_connected(Interface):
            await self.wait_for(interface, S.READY)
        family = self._family()
        destination = self._destination()
        if destination == "default":
            destination = "::/0" if family == socket.AF_INET6 else "0.0.0.0/0"
        request: dict[str, Any] = {"dst": destination, "family": family}
        if self.get("gateway") is not None:
            request["gateway"] = self.get("gateway")
        if self.get("device") is not None:
            request["oif"] = await node.namespace.index(self.get("device"))
        if self.get("metric") is not None:
            request["priority"] = self.get("metric")
        shown = " ".join(f"{k} {v}" for k, v in request.items() if k != "family")
        await netlink(node.namespace, f"route add {shown}", node.namespace.ipr.route("add", **request))
        self._request = request

    async def do_release(self) -> None:
        request, self._request = self._request, None
        nodes = self.get_connected(Node)
        netns = nodes[0].netns if nodes else None  # type: ignore[attr-defined]
        if request is None or netns is None or netns.ipr is None or being_released(nodes[0]):
            return  # the node's namespace goes, with its routes
        try:
            await asyncio.wait_for(netns.ipr.route("del", **request), 5)
        except Exception as exc:  # its device went first: so did the route
            log.debug("netns::Route %s not deleted: %s", self.guid, exc)
