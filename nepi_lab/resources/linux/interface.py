"""``linux::Interface`` and ``linux::Channel``: a node's existing network device, and the
channel its interfaces share.

``linux::Interface``
    Connected to one ``linux::Node`` (a ``netns::Node`` included) and at most one
    ``linux::Channel``.  Deploy waits for the devices the experiment makes on the node
    (its ``netns::Interface``, ``linux::Tap`` and ``linux::Tun``), then finds an
    existing device of the node, as NEPI's did with ``ifconfig``, now with
    ``ip -json addr``:

    - by ``deviceName`` when set;
    - else by an address already on a device (``ip4`` or ``ip6``);
    - else the first device that is up, is not the loopback and has an IPv4 address
      (NEPI's ``eth0``), else the first that is up but the loopback.

    It then reads the device back into its attributes: ``deviceName``, ``mac``,
    ``ip4`` with ``mask4`` (dotted, as NEPI's ``ifconfig`` printed it), ``ip6`` with
    ``mask6`` (a prefix length), ``mtu`` and ``up``.  Given with ``deviceName``, an
    ``ip4`` (with ``mask4``: ``255.255.255.0`` or ``24``; default ``/32``) or ``ip6``
    (``mask6``, default ``/128``) not on the device is added, and ``mtu`` is set;
    ``up`` and ``mtu`` may change while the experiment runs.  Release runs
    ``tearDown``, removes the addresses it added and gives back the MTU and the up
    state the device had: the device stays, as it was found.

``linux::Channel``
    What joins interfaces: in NEPI a label for a wireless channel that nothing
    configured.  Here too it only groups the interfaces connected to it
    (:attr:`Channel.interfaces`); its interfaces wait for it to be READY, as NEPI's did.
    Nothing on Linux makes a channel of existing devices: join namespaces with a
    ``netns::Link`` or a ``netns::Switch``, and hosts with a ``linux::UdpTunnel``.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import shlex
from typing import TYPE_CHECKING, Any

from ...core.attributes import Attribute, Flags, Types
from ...core.errors import AttributeValueError, InvalidInputError
from ...core.resource import ResourceManager
from ...core.states import ResourceState
from .node import Node
from .tunnels import being_released, node_of, one_of_each

if TYPE_CHECKING:
    from ...core.controller import ExperimentController

log = logging.getLogger("nepi_lab")
S = ResourceState


def _check_ip(version: int, name: str) -> Any:
    def check(rm: ResourceManager, old: Any, new: Any) -> Any:
        if new is None:
            return None
        try:
            value = ipaddress.ip_address(new.strip())
        except ValueError as exc:
            raise AttributeValueError(rm.guid, rm._rtype, name, new, str(exc)) from None
        if value.version != version:
            raise AttributeValueError(rm.guid, rm._rtype, name, new, f"expected an IPv{version} address")
        return str(value)
    return check


def _check_mask4(rm: ResourceManager, old: Any, new: Any) -> Any:
    if new is None:
        return None
    try:
        return str(ipaddress.ip_network(f"0.0.0.0/{new.strip()}").netmask)
    except ValueError:
        raise AttributeValueError(rm.guid, rm._rtype, "mask4", new, "expected a netmask such as "
                                  "255.255.255.0, or a prefix length such as 24") from None


def _live(attribute: str) -> Any:
    def hook(rm: ResourceManager, old: Any, new: Any) -> Any:
        if isinstance(rm, Interface) and new is not None and new != old and rm._found and not rm._reading:
            rm.ec._runner.call_soon(lambda: rm.ec._spawn(rm._apply(attribute, new)))
        return new
    return hook


class Channel(ResourceManager):
    """The channel interfaces share: a grouping (see the module docstring)."""

    _rtype = "linux::Channel"
    _help = "Groups linux::Interface resources (NEPI's channel of Linux hosts); configures nothing."
    _platform = "linux"
    _connects_to = ("linux::Interface",)

    @property
    def interfaces(self) -> list[ResourceManager]:
        """The interfaces connected to the channel."""
        return self.get_connected(Interface)


class Interface(ResourceManager):
    """An existing network device of a ``linux::Node`` (see the module docstring)."""

    _rtype = "linux::Interface"
    _help = "An existing network device of a linux::Node: found at deploy, read back, addresses added."
    _platform = "linux"
    _connects_to = ("linux::Node", "linux::Channel")
    _attributes = (
        Attribute("deviceName", "the device (default: found by ip4/ip6, else the first up one but lo, "
                  "one with an IPv4 address first)",
                  flags=Flags.Design),
        Attribute("ip4", "IPv4 address: found on a device, or added to deviceName", flags=Flags.Design,
                  set_hook=_check_ip(4, "ip4")),
        Attribute("mask4", "IPv4 netmask of ip4 (255.255.255.0, or 24)", flags=Flags.Design,
                  set_hook=_check_mask4),
        Attribute("ip6", "IPv6 address: found on a device, or added to deviceName", flags=Flags.Design,
                  set_hook=_check_ip(6, "ip6")),
        Attribute("mask6", "prefix length of ip6", type=Types.Integer, range=(0, 128), flags=Flags.Design),
        Attribute("mac", "MAC address, read back", flags=Flags.NoWrite),
        Attribute("mtu", "MTU in bytes; set at deploy, may change while running", type=Types.Integer,
                  range=(68, 65535), set_hook=_live("mtu")),
        Attribute("up", "whether the device is up; may change while running", type=Types.Bool,
                  set_hook=_live("up")),
        Attribute("tearDown", "shell command run on the node at release", flags=Flags.Design),
    )

    def __init__(self, ec: ExperimentController, guid: int) -> None:
        super().__init__(ec, guid)
        self._found = ""
        self._reading = False
        self._added: list[str] = []
        self._restore: list[str] = []

    def valid_connection(self, other: ResourceManager) -> bool | str:
        return one_of_each(self, other, (Node, Channel))

    @property
    def node(self) -> Node:
        """The node the device is on."""
        return node_of(self)

    @property
    def channel(self) -> Channel | None:
        """The channel it is on, if any."""
        channels = self.get_connected(Channel)
        return channels[0] if channels else None  # type: ignore[return-value]

    async def do_discover(self) -> None:
        self.node  # noqa: B018 - say now if it is missing

    async def _devices(self) -> list[dict[str, Any]]:
        result = await self.node.run("ip -json addr show", timeout=30)
        return json.loads(result.stdout or "[]")

    def _choose(self, devices: list[dict[str, Any]]) -> dict[str, Any]:
        name, ip4, ip6 = self.get("deviceName"), self.get("ip4"), self.get("ip6")
        where = self.node.executor.where
        if name:
            for device in devices:
                if device["ifname"] == name:
                    return device
            names = ", ".join(d["ifname"] for d in devices)
            raise InvalidInputError(f"linux::Interface {self.guid}: {where} has no device {name!r} (it has "
                                    f"{names}); a linux::Tap or linux::Tun makes a new one")
        if ip4 or ip6:
            for device in devices:
                if any(a.get("local") in (ip4, ip6) for a in device.get("addr_info", [])):
                    return device
            raise InvalidInputError(f"linux::Interface {self.guid}: no device of {where} has address "
                                    f"{ip4 or ip6}; set deviceName too, to add it to that device")
        up = [d for d in devices if "UP" in d.get("flags", []) and "LOOPBACK" not in d.get("flags", [])]
        with_ipv4 = [d for d in up if any(a.get("family") == "inet" for a in d.get("addr_info", []))]
        if up:
            return (with_ipv4 or up)[0]  # the host's interface: one with an address first
        raise InvalidInputError(f"linux::Interface {self.guid}: {where} has no device up but lo; "
                                f"set deviceName")

    async def do_provision(self) -> None:
        node = self.node
        await self.wait_for(node, S.READY)
        channel = self.channel
        if channel is not None:
            await self.wait_for(channel, S.READY)
        for other in node.get_connected():  # the devices the experiment makes on the node
            if other._rtype in ("netns::Interface", "linux::Tap", "linux::Tun"):
                await self.wait_for(other, S.READY)
        device = self._choose(await self._devices())
        name = device["ifname"]
        dev = shlex.quote(name)
        on_device = {a.get("local") for a in device.get("addr_info", [])}
        commands = []
        for key, mask, family in (("ip4", "mask4", 4), ("ip6", "mask6", 6)):
            address = self.get(key)
            if address and address not in on_device:
                length = self.get(mask)
                if length is None:
                    length = 32 if family == 4 else 128
                elif family == 4:
                    length = ipaddress.ip_network(f"0.0.0.0/{length}").prefixlen
                added = f"{address}/{length}"
                nodad = " nodad" if family == 6 else ""
                commands.append(f"ip -{family} addr add {added} dev {dev}{nodad}")
                self._added.append(f"ip -{family} addr del {added} dev {dev}")
        mtu = self.get("mtu")
        if mtu is not None and mtu != device.get("mtu"):
            commands.append(f"ip link set dev {dev} mtu {mtu}")
        up = self.get("up")
        was_up = "UP" in device.get("flags", [])
        if up is not None and up != was_up:
            commands.append(f"ip link set dev {dev} {'up' if up else 'down'}")
        # given back at release, whatever changed them meanwhile (deploy, or a set while running)
        self._restore = [f"ip link set dev {dev} mtu {device.get('mtu')}",
                         f"ip link set dev {dev} {'up' if was_up else 'down'}"]
        self._found = name
        if commands:
            await node.run(" && ".join(commands), timeout=30)
            device = next(d for d in await self._devices() if d["ifname"] == name)
        self._read_back(device)

    def _read_back(self, device: dict[str, Any]) -> None:
        """Set the attributes from what ``ip -json addr`` says of ``device``."""
        self._reading = True
        try:
            self.set("deviceName", device["ifname"], internal=True)
            self.set("mac", device.get("address"), internal=True)
            self.set("mtu", device.get("mtu"), internal=True)
            self.set("up", "UP" in device.get("flags", []), internal=True)
            for family, key, mask in (("inet", "ip4", "mask4"), ("inet6", "ip6", "mask6")):
                addresses = [a for a in device.get("addr_info", []) if a.get("family") == family]
                wanted = self.get(key)
                chosen = next((a for a in addresses if a.get("local") == wanted), None)
                if chosen is None and addresses and not wanted:
                    chosen = next((a for a in addresses if a.get("scope") != "link"), addresses[0])
                if chosen is not None:
                    self.set(key, chosen["local"], internal=True)
                    length = chosen["prefixlen"]
                    self.set(mask, str(length) if family == "inet" else length, internal=True)
        finally:
            self._reading = False

    async def _apply(self, attribute: str, value: Any) -> None:
        if not self._found or self.state >= S.RELEASED:
            return
        dev = shlex.quote(self._found)
        command = (f"ip link set dev {dev} {'up' if value else 'down'}" if attribute == "up"
                   else f"ip link set dev {dev} mtu {int(value)}")
        try:
            await self.node.run(command, timeout=30)
        except Exception as exc:  # the device went away
            log.warning("linux::Interface %s: %s failed: %s", self.guid, command, exc)

    async def do_release(self) -> None:
        if not self._found:
            return
        self._found = ""
        node = self.node
        undo, self._added, self._restore = [*self._added, *self._restore], [], []
        tear_down = self.get("tearDown")
        try:
            if tear_down:
                await node.run(tear_down, timeout=60)
        finally:
            if undo and not (getattr(node, "netns", None) is not None and being_released(node)):
                await node.run("; ".join(undo), timeout=30, check=False)
