"""NEPI's virtual devices and tunnels: ``linux::Tap``, ``linux::Tun``, ``linux::GRETunnel``,
``linux::UdpTunnel``.

``linux::Tap`` / ``linux::Tun``
    A tap (Ethernet frames) or tun (IP packets) device on the ``linux::Node`` it is
    connected to, a ``netns::Node`` included (the device is then in its namespace).
    Deploy makes it with ``ip tuntap add`` and configures it (READY: the device
    exists, with its address, and is up); release runs ``tearDown`` and deletes it.
    NEPI's attributes: ``ip`` (NEPI's older ``ip4``) with ``prefix`` (``prefix4``),
    ``pointopoint`` (the peer's address: a point-to-point address), ``mac``, ``mtu``
    and ``up`` (both changeable while running), ``txqueuelen``, ``pi`` (frames carry
    the 4-byte packet information header), ``greKey``, ``greRemote``, ``tearDown``;
    ``deviceName`` is read back (default ``tap<guid>`` / ``tun<guid>``, as NEPI's).
    Alone, a tap or tun has no carrier: it carries traffic once a tunnel (or your
    own program) attaches to it.

``linux::GRETunnel``
    Joins two taps (or two tuns), each on its node, with GRE: the kernel's ``gretap``
    (taps) or ``gre`` (tuns) device, keyed with the ends' ``greKey``, from each node's
    address to the other's.  Where the kernel has no GRE (``CONFIG_NET_IPGRE``; this
    package's CI kernel has none), ``implementation="auto"`` (the default) carries
    the same GRE packets (IP protocol 47, same header and key) with a forwarder process
    per end, as for ``linux::UdpTunnel``; ``implementation="kernel"`` fails instead,
    with :class:`GreUnavailableError`.  ``mechanism`` reads back which one runs.

``linux::UdpTunnel``
    Joins two taps (or tuns) as NEPI's did: a forwarder process per end (see
    :mod:`._forwarder`) reads the device and sends each frame in a UDP datagram to the
    other end, and writes what it receives to the device.  Ports are picked by the
    kernel and exchanged at deploy.  NEPI's ``bwLimit`` (bytes per second sent by each
    end) and ``txQueueLen`` (set on both devices) are kept; ``cipher`` only as
    ``PLAIN`` (no encryption: nepi_lab adds no crypto dependency).  Release stops the
    forwarders (and whatever they left) and removes their folder.  A forwarder that
    cannot start fails the deploy with its reason; one that ends before the release
    fails the tunnel (NEPI polled for it).

What a ``kill -9`` of the controller leaves: on a ``netns::Node``, nothing once
``nepi-lab cleanup`` removed the namespace (devices and forwarders go with it); on
another node, ``nepi-lab cleanup`` stops the forwarders (they carry the run's marker)
but a tap or tun device stays until ``ip link del`` (``ip tuntap`` devices are
persistent).

A node's address for a tunnel (the *underlay*) is its ``ip`` attribute; on a node
whose ``ip`` is a loopback address (any ``netns::Node``, a ``localhost`` node), the
address of its first ``netns::Interface`` that has one.  A tap's ``greRemote``, when
set, names the other end's address instead.

Example
-------
NEPI's GRE test, between two namespaces joined by a link::

    h1 = ec.register_resource("netns::Node", name="h1")
    ...                                       # a netns::Link 10.0.0.1/30 - 10.0.0.2/30
    tap1 = ec.register_resource("linux::Tap", connectedTo=h1, ip="192.168.1.1", prefix=24)
    tap2 = ec.register_resource("linux::Tap", connectedTo=h2, ip="192.168.1.2", prefix=24)
    gre = ec.register_resource("linux::GRETunnel", connectedTo=tap1)
    ec.register_connection(gre, tap2)
    ping = ec.register_resource("linux::Ping", connectedTo=h1, target="192.168.1.2", count=3)
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import posixpath
import re
import shlex
import sys
import time
from typing import TYPE_CHECKING, Any

from ...core.attributes import Alias, Attribute, Flags, Types
from ...core.errors import AttributeValueError, CommandError, InvalidInputError, NepiError
from ...core.resource import ResourceManager
from ...core.states import ResourceState
from .node import Node

if TYPE_CHECKING:
    from ...core.controller import ExperimentController
    from .executor import ProcessHandle

log = logging.getLogger("nepi_lab")
S = ResourceState

#: The kernel's limit on interface names (IFNAMSIZ - 1).
IFNAME_MAX = 15
_IFNAME = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]*")
#: Seconds a forwarder may take to start (print its port, or ``ready``).
FORWARDER_TIMEOUT = 15.0


class GreUnavailableError(NepiError):
    """The node's kernel has no GRE (``CONFIG_NET_IPGRE``), and the tunnel asked for the
    kernel's (``implementation="kernel"``); ``"auto"`` carries GRE in a process instead."""

    def __init__(self, guid: int, where: str, stderr: str) -> None:
        self.guid, self.where = guid, where
        super().__init__(f"linux::GRETunnel {guid}: the kernel of {where} has no GRE ({stderr.strip()}); "
                         f"set implementation='auto' (or 'userspace') to carry GRE in a forwarder process")


def _check_address(name: str, with_prefix: bool) -> Any:
    def check(rm: ResourceManager, old: Any, new: Any) -> Any:
        if new is None:
            return None
        text = new.strip()
        try:
            value = ipaddress.ip_interface(text) if with_prefix else ipaddress.ip_address(text)
        except ValueError as exc:
            example = "192.168.1.1 (with prefix 24), or 192.168.1.1/24" if with_prefix else "192.168.1.2"
            raise AttributeValueError(rm.guid, rm._rtype, name, new, f"{exc}; e.g. {example}") from None
        return text if "/" in text else str(value).split("/")[0]
    return check


def _check_ifname(rm: ResourceManager, old: Any, new: Any) -> Any:
    if new is not None and (not _IFNAME.fullmatch(new) or len(new) > IFNAME_MAX or new == "lo"):
        raise AttributeValueError(rm.guid, rm._rtype, "deviceName", new,
                                  f"an interface name: letters, digits, '_', '.', '-', at most {IFNAME_MAX}")
    return new


def _check_mac(rm: ResourceManager, old: Any, new: Any) -> Any:
    if new is not None and not re.fullmatch(r"([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}", new.strip()):
        raise AttributeValueError(rm.guid, rm._rtype, "mac", new,
                                  "expected six hex bytes, e.g. 02:00:00:00:00:01")
    return None if new is None else new.strip().lower()


def _live(attribute: str) -> Any:
    """Set hook of ``up`` and ``mtu``: once the device exists, it follows the attribute."""
    def hook(rm: ResourceManager, old: Any, new: Any) -> Any:
        if isinstance(rm, Tap) and new is not None and new != old and rm._created:
            rm.ec._runner.call_soon(lambda: rm.ec._spawn(rm._apply(attribute, new)))
        return new
    return hook


def being_released(rm: Any) -> bool:
    """Whether ``rm`` is being released too (it waits for its dependents)."""
    task = getattr(rm, "_release_task", None)
    return task is not None and not task.done()


def one_of_each(rm: ResourceManager, other: ResourceManager,
                kinds: tuple[type[ResourceManager], ...]) -> bool | str:
    """``valid_connection`` of a resource that takes at most one of each of ``kinds``."""
    for kind in kinds:
        if isinstance(other, kind):
            taken = [r for r in rm.get_connected(kind) if r is not other]
            if taken:
                return f"{rm._rtype} {rm.guid} is already connected to {taken[0]._rtype} {taken[0].guid}"
    return True


def node_of(rm: ResourceManager) -> Node:
    """The ``linux::Node`` ``rm`` is connected to; says what to do when there is none."""
    nodes = rm.get_connected(Node)
    if not nodes:
        raise InvalidInputError(f"{rm._rtype} {rm.guid} is not connected to a linux::Node: connect "
                                f"one with ec.register_connection({rm.guid}, node)")
    return nodes[0]  # type: ignore[return-value]


class Tap(ResourceManager):
    """A tap device on a ``linux::Node`` (see the module docstring)."""

    _rtype = "linux::Tap"
    _help = "A tap device (Ethernet frames) on a linux::Node, made at deploy and deleted at release."
    _platform = "linux"
    _connects_to = ("linux::Node", "linux::GRETunnel", "linux::UdpTunnel")
    _attributes = (
        Attribute("ip", "IPv4 or IPv6 address of the device (its prefix length in prefix, or here: "
                  "192.168.1.1/24)", flags=Flags.Design, set_hook=_check_address("ip", True)),
        Attribute("prefix", "prefix length of ip (default: the whole address, as ip addr add)",
                  type=Types.Integer, range=(0, 128), flags=Flags.Design),
        Attribute("pointopoint", "the peer's address: ip becomes a point-to-point address",
                  flags=Flags.Design, set_hook=_check_address("pointopoint", False)),
        Attribute("mac", "MAC address (tap only; default: the kernel's random one)", flags=Flags.Design,
                  set_hook=_check_mac),
        Attribute("mtu", "MTU in bytes (default the kernel's, 1500); may change while running",
                  type=Types.Integer, range=(68, 65535), set_hook=_live("mtu")),
        Attribute("up", "whether the device is up; may change while running", type=Types.Bool,
                  default=True, set_hook=_live("up")),
        Attribute("txqueuelen", "length of the transmit queue, in packets", type=Types.Integer,
                  range=(0, 2**32 - 1), flags=Flags.Design),
        Attribute("deviceName", "device name (default tap<guid> / tun<guid>; at most 15 characters)",
                  flags=Flags.Design, set_hook=_check_ifname),
        Attribute("pi", "frames carry the 4-byte packet information header (IFF_NO_PI unset)",
                  type=Types.Bool, default=False, flags=Flags.Design),
        Attribute("greKey", "GRE key of a linux::GRETunnel (both ends must use the same)",
                  type=Types.Integer, default=1, range=(0, 2**32 - 1), flags=Flags.Design),
        Attribute("greRemote", "the other end's address for a tunnel (default: its node's address)",
                  flags=Flags.Design, set_hook=_check_address("greRemote", False)),
        Attribute("tearDown", "shell command run on the node at release, before the device is deleted",
                  flags=Flags.Design),
    )
    _aliases = (Alias("ip4", "ip", "NEPI's older name"), Alias("prefix4", "prefix", "NEPI's older name"))
    _mode = "tap"

    def __init__(self, ec: ExperimentController, guid: int) -> None:
        super().__init__(ec, guid)
        self._created = False

    # -- connections -------------------------------------------------------------------

    def valid_connection(self, other: ResourceManager) -> bool | str:
        return one_of_each(self, other, (Node, _Tunnel))

    @property
    def node(self) -> Node:
        """The node the device is on."""
        return node_of(self)

    @property
    def device(self) -> str:
        """The device name: ``deviceName``, or ``tap<guid>`` / ``tun<guid>``."""
        return self.get("deviceName") or f"{self._mode}{self.guid}"

    @property
    def address(self) -> str | None:
        """``ip`` without its prefix length (None if unset)."""
        ip = self.get("ip")
        return ip.split("/")[0] if ip else None

    def _address_with_prefix(self) -> str | None:
        ip, prefix = self.get("ip"), self.get("prefix")
        if not ip:
            if prefix is not None:
                raise InvalidInputError(f"{self._rtype} {self.guid}: prefix needs ip")
            return None
        if "/" in ip:
            if prefix is not None and int(ip.split("/")[1]) != prefix:
                raise InvalidInputError(f"{self._rtype} {self.guid}: ip {ip} and prefix {prefix} disagree; "
                                        f"give the prefix length once")
            text = ip
        else:
            text = ip if prefix is None else f"{ip}/{prefix}"
        try:
            return ipaddress.ip_interface(text).with_prefixlen
        except ValueError as exc:
            raise InvalidInputError(f"{self._rtype} {self.guid}: {exc}") from None

    # -- lifecycle ---------------------------------------------------------------------

    async def do_discover(self) -> None:
        self.node  # noqa: B018 - say now if it is missing
        self._address_with_prefix()
        if self.get("mac") and self._mode == "tun":
            raise InvalidInputError(f"linux::Tun {self.guid}: a tun device has no MAC address; unset mac")
        if not self.get("deviceName"):
            self.set("deviceName", self.device, internal=True)

    async def do_provision(self) -> None:
        node = self.node
        await self.wait_for(node, S.READY)
        pi = " pi" if self.get("pi") else ""
        await self._run(f"ip tuntap add dev {shlex.quote(self.device)} mode {self._mode}{pi}")
        self._created = True
        await self.configure()

    async def _run(self, command: str) -> None:
        await self.node.run(command, timeout=30)

    async def configure(self) -> None:
        """Give the device (made by this resource, or by a tunnel in its place) its
        attributes: MAC, MTU, queue length, address, up."""
        dev = shlex.quote(self.device)
        words = []
        for attribute, word in (("mac", "address"), ("mtu", "mtu"), ("txqueuelen", "txqueuelen")):
            if self.get(attribute) is not None:
                words += [word, shlex.quote(str(self.get(attribute)))]
        commands = [f"ip link set dev {dev} {' '.join(words)}"] if words else []
        address = self._address_with_prefix()
        if address:
            peer = self.get("pointopoint")
            length = address.split("/")[1]
            peer_words = f" peer {shlex.quote(peer)}/{length}" if peer else ""  # NEPI's peer/prefix
            family = "-6 " if ":" in address else ""
            nodad = " nodad" if family else ""
            commands.append(f"ip {family}addr add {shlex.quote(address)}{peer_words} dev {dev}{nodad}")
        if self.get("up"):
            commands.append(f"ip link set dev {dev} up")
        if commands:
            await self._run(" && ".join(commands))

    async def point_to(self, peer: str | None) -> None:
        """Make ``peer`` (the other end's ``ip``) reachable through the device, as NEPI's
        tunnels did: when ``pointopoint`` is unset and ``peer`` lies outside ``ip``'s
        network (NEPI's tests give both ends a /32), it becomes the point-to-point peer."""
        address = self._address_with_prefix()
        if not peer or not address or self.get("pointopoint"):
            return
        network = ipaddress.ip_interface(address).network
        peer_address = ipaddress.ip_address(peer)
        if peer_address.version != network.version or peer_address in network:
            return
        self.set("pointopoint", peer, internal=True)
        if self._created:
            dev = shlex.quote(self.device)
            length = address.split("/")[1]
            await self._run(f"ip addr del {shlex.quote(address)} dev {dev} && ip addr add "
                            f"{shlex.quote(address)} peer {shlex.quote(peer)}/{length} dev {dev}")

    async def _apply(self, attribute: str, value: Any) -> None:
        if not self._created or self.state >= S.RELEASED:
            return
        dev = shlex.quote(self.device)
        command = (f"ip link set dev {dev} {'up' if value else 'down'}" if attribute == "up"
                   else f"ip link set dev {dev} mtu {int(value)}")
        try:
            await self._run(command)
        except Exception as exc:  # the device went away (released meanwhile)
            log.warning("%s %s: %s failed: %s", self._rtype, self.guid, command, exc)

    async def do_release(self) -> None:
        if not self._created:
            return
        self._created = False
        node = self.node
        tear_down = self.get("tearDown")
        try:
            if tear_down:
                await node.run(tear_down, timeout=60)
        finally:
            # unless the node's namespace goes, with the device
            if getattr(node, "netns", None) is None or not being_released(node):
                await node.run(f"ip link del dev {shlex.quote(self.device)}", timeout=30, check=False)


class Tun(Tap):
    """A tun device on a ``linux::Node`` (see the module docstring)."""

    _rtype = "linux::Tun"
    _help = "A tun device (IP packets) on a linux::Node, made at deploy and deleted at release."
    _mode = "tun"


# -- tunnels -------------------------------------------------------------------------------------


def underlay(tap: Tap) -> str:
    """The address of ``tap``'s node that a tunnel sends from (see the module docstring)."""
    node = tap.node
    address = node.get("ip")
    if address is None or ipaddress.ip_address(address).is_loopback:
        for interface in node.get_connected("netns::Interface"):
            found = getattr(interface, "address", None)
            if found:
                return found
    if address is None:
        raise InvalidInputError(f"{node._rtype} {node.guid} has no address for the tunnel of {tap._rtype} "
                                f"{tap.guid}: set its ip")
    return address


class _Tunnel(ResourceManager):
    """Two ``linux::Tap`` (or ``linux::Tun``) ends joined by forwarder processes or the kernel."""

    _platform = "linux"
    _connects_to = ("linux::Tap",)

    def __init__(self, ec: ExperimentController, guid: int) -> None:
        super().__init__(ec, guid)
        self._handles: list[tuple[Node, ProcessHandle]] = []
        self._folders: list[tuple[Node, str]] = []

    def valid_connection(self, other: ResourceManager) -> bool | str:
        if isinstance(other, Tap):
            ends = [rm for rm in self.get_connected(Tap) if rm is not other]
            if len(ends) >= 2:
                return f"{self._rtype} {self.guid} already joins {ends[0].guid} and {ends[1].guid}"
        return True

    @property
    def endpoints(self) -> tuple[Tap, Tap]:
        """The two ends, in guid order (NEPI's ``endpoint1``, ``endpoint2``)."""
        ends = self.get_connected(Tap)
        if len(ends) != 2:
            raise InvalidInputError(f"{self._rtype} {self.guid} joins two linux::Tap or two linux::Tun, "
                                    f"connected with ec.register_connection({self.guid}, tap); it has "
                                    f"{len(ends)}")
        a, b = ends
        if a._mode != b._mode:
            raise InvalidInputError(f"{self._rtype} {self.guid} joins a tap and a tun: both ends must be "
                                    f"linux::Tap, or both linux::Tun")
        return a, b  # type: ignore[return-value]

    @property
    def endpoint1(self) -> Tap:
        return self.endpoints[0]

    @property
    def endpoint2(self) -> Tap:
        return self.endpoints[1]

    async def do_discover(self) -> None:
        for end in self.endpoints:
            end.node  # noqa: B018 - say now if it is missing

    async def do_provision(self) -> None:
        ends = self.endpoints
        for end in ends:
            await self.wait_for(end, S.READY)
        await ends[0].point_to(ends[1].address)
        await ends[1].point_to(ends[0].address)
        addresses = [underlay(end) for end in ends]
        remotes = [ends[0].get("greRemote") or addresses[1], ends[1].get("greRemote") or addresses[0]]
        await self._join(ends, addresses, remotes)

    async def _join(self, ends: tuple[Tap, Tap], local: list[str], remote: list[str]) -> None:
        raise NotImplementedError

    # -- forwarder processes --------------------------------------------------------------

    async def _start_forwarder(self, end: Tap, arguments: list[str]) -> tuple[Node, str, ProcessHandle]:
        node = end.node
        folder = posixpath.join(node.run_home, str(self.guid), str(end.guid))
        await node.makedirs(folder)
        self._folders.append((node, posixpath.join(node.run_home, str(self.guid))))
        script = posixpath.join(folder, "forwarder.py")
        import importlib.resources  # here: importing it costs a few ms, needed by UDP tunnels only

        source = importlib.resources.files(__package__).joinpath("_forwarder.py").read_text()
        await node.write_file(script, source)
        python = sys.executable if node.is_local else "python3"
        words = [python, script, "--device", end.device, "--mode", end._mode, *arguments]
        if end.get("pi"):
            words.append("--pi")
        handle = await node.spawn(" ".join(shlex.quote(w) for w in words),
                                  stdout=posixpath.join(folder, "stdout"),
                                  stderr=posixpath.join(folder, "stderr"), cwd=folder, owner=self.guid)
        self._handles.append((node, handle))
        self.ec._spawn(self._watch_forwarder(node, folder, handle))
        return node, folder, handle

    async def _watch_forwarder(self, node: Node, folder: str, handle: ProcessHandle) -> None:
        """Fail the tunnel when a forwarder ends before its release (NEPI polled for it)."""
        status = await handle.wait()
        if not any(h is handle for _, h in self._handles) or not S.READY <= self.state < S.STOPPED:
            return  # stopped by the release; before READY, deploy reports it (_printed, do_configure)
        try:
            stderr = str(await node.read_file(posixpath.join(folder, "stderr")))
        except (OSError, CommandError):
            stderr = ""
        why = f"the tunnel's forwarder ended: {stderr.strip()[-2000:]}"
        self.fail(CommandError(handle.command, status, why, node.executor.where))

    async def _printed(self, node: Node, folder: str, handle: ProcessHandle, word: str) -> str:
        """The first line of the forwarder's output that starts with ``word``."""
        deadline = time.monotonic() + FORWARDER_TIMEOUT
        stdout = posixpath.join(folder, "stdout")
        delay = 0.01
        while True:
            try:
                text = await node.read_file(stdout)
            except (OSError, CommandError):
                text = ""
            for line in str(text).splitlines():
                if line.startswith(word):
                    return line
            if handle.returncode is not None or time.monotonic() > deadline:
                try:
                    stderr = str(await node.read_file(posixpath.join(folder, "stderr")))
                except (OSError, CommandError):
                    stderr = ""
                why = (f"exited with status {handle.returncode}" if handle.returncode is not None
                       else f"did not start within {FORWARDER_TIMEOUT:g} s")
                raise CommandError(handle.command, handle.returncode if handle.returncode is not None else -1,
                                   f"the tunnel's forwarder {why}: {stderr.strip()[-2000:]}",
                                   node.executor.where)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)

    async def do_configure(self) -> None:
        for node, handle in self._handles:  # one that ended after it started: say so before READY
            if handle.returncode is not None:
                raise CommandError(handle.command, handle.returncode,
                                   "the tunnel's forwarder ended at deploy", node.executor.where)

    async def do_release(self) -> None:
        handles, self._handles = self._handles, []
        folders, self._folders = self._folders, []
        for _node, handle in handles:
            handle.kill()
            try:
                await asyncio.wait_for(handle.wait(), 5)
            except Exception as exc:  # noqa: BLE001 - stop_owner below finds what is left
                log.debug("%s %s: forwarder %s: %s", self._rtype, self.guid, handle.pid, exc)
        for node in {id(n): n for n, _ in handles}.values():
            await node.executor.stop_owner(self.guid)
        for node, folder in {(id(n), f): (n, f) for n, f in folders}.values():
            try:
                await node.executor.remove_tree(folder)
            except Exception as exc:  # noqa: BLE001 - the node's release removes the run's folder
                log.debug("%s %s: %s not removed: %s", self._rtype, self.guid, folder, exc)


class GRETunnel(_Tunnel):
    """Two taps (or tuns) joined by GRE (see the module docstring)."""

    _rtype = "linux::GRETunnel"
    _help = "Joins two linux::Tap (or linux::Tun) with GRE: the kernel's gretap/gre, or GRE in a process."
    _attributes = (
        Attribute("implementation", "kernel: the kernel's gretap/gre devices; userspace: GRE carried by a "
                  "forwarder process per end; auto: the kernel's where it has GRE", type=Types.Enumerate,
                  allowed=("auto", "kernel", "userspace"), default="auto", flags=Flags.Design),
        Attribute("mechanism", "which one runs, once deployed: kernel or userspace", flags=Flags.NoWrite),
    )

    async def _join(self, ends: tuple[Tap, Tap], local: list[str], remote: list[str]) -> None:
        keys = {end.get("greKey") for end in ends}
        if len(keys) != 1:
            raise InvalidInputError(f"linux::GRETunnel {self.guid}: its ends have different greKey values "
                                    f"{sorted(keys)}; set the same on both")
        key = keys.pop()
        implementation = self.get("implementation")
        if implementation != "userspace" and await self._kernel(ends, local, remote, key,
                                                                implementation == "kernel"):
            self.set("mechanism", "kernel", internal=True)
            return
        self.set("mechanism", "userspace", internal=True)
        for i, end in enumerate(ends):
            node, folder, handle = await self._start_forwarder(
                end, ["--encap", "gre", "--local", local[i], "--peer", remote[i], "--key", str(key)])
            await self._printed(node, folder, handle, "ready")

    async def _kernel(self, ends: tuple[Tap, Tap], local: list[str], remote: list[str], key: int,
                      required: bool) -> bool:
        """Replace both ends' tap/tun devices by gretap/gre ones; False where the kernel has no GRE."""
        for i, end in enumerate(ends):
            kind = "gretap" if end._mode == "tap" else "gre"
            if ":" in local[i]:
                kind = "ip6gretap" if end._mode == "tap" else "ip6gre"
            spare = f"nlg{self.guid}e{end.guid}"[:IFNAME_MAX]
            result = await end.node.run(
                f"ip link add {shlex.quote(spare)} type {kind} local {shlex.quote(local[i])} "
                f"remote {shlex.quote(remote[i])} key {key} ttl 255", check=False, timeout=30)
            if result.returncode != 0:
                stderr = result.stderr
                if "Unknown device type" in stderr or "not supported" in stderr.lower():
                    if i == 1:  # the first end's kernel had it: take it back
                        await ends[0].node.run(f"ip link del dev {shlex.quote(ends[0].device)}", check=False)
                        await self._replace(ends[0])
                    if required:
                        raise GreUnavailableError(self.guid, end.node.executor.where, stderr)
                    return False
                raise CommandError(result.command, result.returncode, stderr, end.node.executor.where)
            dev = shlex.quote(end.device)
            await end.node.run(f"ip link del dev {dev} && ip link set dev {shlex.quote(spare)} name {dev}",
                               timeout=30)
            await end.configure()
        return True

    async def _replace(self, end: Tap) -> None:
        """Give ``end`` back a tap or tun device (its kernel GRE one was deleted)."""
        pi = " pi" if end.get("pi") else ""
        await end.node.run(f"ip tuntap add dev {shlex.quote(end.device)} mode {end._mode}{pi}", timeout=30)
        await end.configure()


class UdpTunnel(_Tunnel):
    """Two taps (or tuns) joined by UDP datagrams, one forwarder process per end (see the
    module docstring)."""

    _rtype = "linux::UdpTunnel"
    _help = "Joins two linux::Tap (or linux::Tun) by UDP: a forwarder process per end, as NEPI's."
    _attributes = (
        Attribute("cipher", "NEPI's encryption: only PLAIN (none) is supported", type=Types.Enumerate,
                  allowed=("PLAIN", "AES", "Blowfish", "DES", "DES3"), flags=Flags.Design),
        Attribute("cipherKey", "NEPI's encryption key: not supported (leave unset)", flags=Flags.Design),
        Attribute("txQueueLen", "transmit queue length set on both devices, in packets", type=Types.Integer,
                  range=(0, 2**32 - 1), flags=Flags.Design),
        Attribute("bwLimit", "bytes per second each end sends at most (default: no limit)",
                  type=Types.Integer, range=(1, None), flags=Flags.Design),
    )

    async def do_discover(self) -> None:
        await super().do_discover()
        if self.get("cipher") not in (None, "PLAIN") or self.get("cipherKey"):
            raise InvalidInputError(f"linux::UdpTunnel {self.guid}: encryption ({self.get('cipher')}) is not "
                                    f"supported; leave cipher unset or PLAIN, and cipherKey unset")

    async def _join(self, ends: tuple[Tap, Tap], local: list[str], remote: list[str]) -> None:
        queue = self.get("txQueueLen")
        if queue is not None:
            for end in ends:
                await end.node.run(f"ip link set dev {shlex.quote(end.device)} txqueuelen {queue}",
                                   timeout=30)
        started = []
        for i, end in enumerate(ends):
            arguments = ["--encap", "udp", "--local", local[i], "--peer-file", "peer"]
            if self.get("bwLimit"):
                arguments += ["--bwlimit", str(self.get("bwLimit"))]
            started.append(await self._start_forwarder(end, arguments))
        ports = [int((await self._printed(*s, "port")).split()[1]) for s in started]
        for i, (node, folder, _) in enumerate(started):
            await node.write_file(posixpath.join(folder, "peer"), f"{remote[i]} {ports[1 - i]}\n")
        for s in started:
            await self._printed(*s, "ready")
