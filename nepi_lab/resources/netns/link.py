"""``netns::Link``: a veth pair between two interfaces, or an interface and a switch.

A link is connected to exactly two *ends*, each a ``netns::Interface`` (on a
``netns::Node``) or a ``netns::Switch``; for a switch the link makes the port itself
(``nl<tag>-p<k>``, enslaved to the bridge, MTU of the other end).  The veth pair is
created with each end placed straight into its namespace, so it never appears in the
root namespace.

Properties, the same in both directions (see :mod:`._shaping` for the kernel side):

=========  ==========================================================================
``rate``   bandwidth, tc units: ``"20mbit"``, ``"1gbit"``, ``"500kbit"``
``shaper`` ``tbf`` (default) or ``htb``: the qdisc that enforces ``rate``
``burst``  token bucket size in bytes (default: 10 ms at ``rate``, at least 32 KiB)
``loss``   percent of IP packets dropped at random by each receiving end (nftables)
``delay``  one-way delay added by each sending end, e.g. ``"10ms"``: needs netem; on a
           kernel without it the link fails at deploy with
           :class:`~._shaping.NetemUnavailableError`, never silently
=========  ==========================================================================

Release deletes the loss rules and the veth pair (both ends go together), unless an
end's node or switch is being released too: removing its namespace removes them, in
one batch.

Example
-------
>>> with ExperimentController() as ec:                      # doctest: +SKIP
...     h1, h2 = (ec.register_resource("netns::Node", name=n) for n in ("h1", "h2"))
...     i1 = ec.register_resource("netns::Interface", connectedTo=h1, ip="10.0.0.1/30")
...     i2 = ec.register_resource("netns::Interface", connectedTo=h2, ip="10.0.0.2/30")
...     link = ec.register_resource("netns::Link", connectedTo=i1, rate="20mbit", loss=1.0)
...     ec.register_connection(link, i2)
...     ping = ec.register_resource("linux::Ping", connectedTo=h1, target="10.0.0.2", count=3)
...     ec.deploy()
...     ec.wait_finished(ping)
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from ...core.attributes import Attribute, Flags, Types
from ...core.errors import AttributeValueError, CommandError, InvalidInputError
from ...core.resource import ResourceManager, TopologyRole
from ...core.states import ResourceState
from ...core.times import parse_delay
from ...core.traces import Trace
from ..linux import LocalExecutor
from ._namespace import Namespace, being_released, netlink, run_names
from ._shaping import NetemUnavailableError, loss_ruleset, loss_table, parse_rate, qdisc_batch
from .interface import Interface
from .switch import Switch

if TYPE_CHECKING:
    from ...core.controller import ExperimentController

log = logging.getLogger("nepi_lab")
S = ResourceState


def _check_rate(rm: ResourceManager, old: Any, new: Any) -> Any:
    if new is None:
        return None
    try:
        parse_rate(new)
    except ValueError as exc:
        raise AttributeValueError(rm.guid, rm._rtype, "rate", new, str(exc)) from None
    return new.strip()


def _check_delay(rm: ResourceManager, old: Any, new: Any) -> Any:
    if new is None:
        return None
    parse_delay(new)  # raises TimeFormatError, which says what is expected
    return new.strip()


class _End:
    """One end of the veth pair, as the link sees it."""

    def __init__(self, owner: ResourceManager, ifname: str, mtu: int | None) -> None:
        self.owner = owner  # a netns::Interface or a netns::Switch
        self.ifname = ifname
        self.mtu = mtu

    @property
    def host(self) -> Any:
        """What holds the namespace: the interface's node, or the switch."""
        return self.owner.node if isinstance(self.owner, Interface) else self.owner

    @property
    def netns(self) -> Namespace | None:
        return self.host.netns


class Link(ResourceManager):
    """A veth pair between two ends, with rate, loss and delay (see the module docstring)."""

    _rtype = "netns::Link"
    _connects_to = ("netns::Interface", "netns::Switch")  # two ends: valid_connection refuses a third
    _help = ("A veth pair between two netns::Interfaces (or an interface and a netns::Switch); "
             "rate, loss, delay.")
    _platform = "netns"
    _topology_role = TopologyRole.LINK
    _topology_labels = (("rate", "{}"), ("delay", "{} delay"), ("loss", "{}% loss"))
    _attributes = (
        Attribute("rate", "bandwidth each way, tc units: 20mbit, 1gbit, 500kbit", flags=Flags.Design,
                  set_hook=_check_rate),
        Attribute("shaper", "qdisc that enforces the rate", type=Types.Enumerate, allowed=("tbf", "htb"),
                  default="tbf", flags=Flags.Design),
        Attribute("burst", "token bucket size in bytes (default: 10 ms at the rate, at least 32 KiB)",
                  type=Types.Integer, range=(1514, None), flags=Flags.Design),
        Attribute("loss", "percent of IP packets each receiving end drops at random (nftables)",
                  type=Types.Double, range=(0, 100), flags=Flags.Design),
        Attribute("delay", "one-way delay added by each sending end, e.g. 10ms (needs netem)",
                  flags=Flags.Design, set_hook=_check_delay),
    )
    _traces = (
        Trace("shaping", "tc and nftables statistics of both ends (qdiscs, drops), taken at release",
              enabled=True),
    )

    def __init__(self, ec: ExperimentController, guid: int) -> None:
        super().__init__(ec, guid)
        self._ends: list[_End] = []
        self._created = False
        self._lossy = False
        self._shaped = False
        self._executor: LocalExecutor | None = None

    # -- connections -------------------------------------------------------------------

    def valid_connection(self, other: ResourceManager) -> bool | str:
        from .node import Node

        if isinstance(other, Node):  # refused by the types; this is the hint
            return f"connect a netns::Interface to node {other.guid} and connect the link to that interface"
        if not isinstance(other, (Interface, Switch)):
            return True  # refused by the types (_connects_to)
        ends = [rm for rm in self._end_owners() if rm is not other]
        if len(ends) >= 2:
            return f"link {self.guid} already has two ends ({ends[0].guid} and {ends[1].guid})"
        return True

    def _end_owners(self) -> list[ResourceManager]:
        return [rm for rm in self.get_connected() if isinstance(rm, (Interface, Switch))]

    def _make_ends(self) -> list[_End]:
        owners = self._end_owners()
        if len(owners) != 2:
            raise InvalidInputError(
                f"netns::Link {self.guid} needs two ends (netns::Interface or netns::Switch), "
                f"it has {len(owners)}: connect them with ec.register_connection")
        if all(isinstance(o, Switch) for o in owners) and owners[0] is owners[1]:
            raise InvalidInputError(f"netns::Link {self.guid} joins switch {owners[0].guid} to itself")
        names = run_names(self.ec)
        ends = []
        for owner in owners:
            if isinstance(owner, Interface):
                ends.append(_End(owner, owner.ifname, owner.get("mtu")))
            else:
                links = sorted(rm.guid for rm in owner.get_connected(Link))
                ends.append(_End(owner, names.ifname(f"p{links.index(self.guid)}"), None))
        mtu = next((e.mtu for e in ends if e.mtu), None)
        for end in ends:  # a switch port takes the MTU of the other end
            if end.mtu is None:
                end.mtu = mtu
        return ends

    # -- lifecycle ---------------------------------------------------------------------

    async def do_discover(self) -> None:
        self._ends = self._make_ends()

    async def do_provision(self) -> None:
        ends = self._ends
        for end in ends:
            if isinstance(end.owner, Interface):
                end.owner.node  # noqa: B018 - raises, in words, if the interface has no node
            await self.wait_for(end.host, S.READY)
        a, b = ends
        peer: dict[str, Any] = {"ifname": b.ifname, "net_ns_fd": b.netns.path}  # type: ignore[union-attr]
        if b.mtu:
            peer["mtu"] = b.mtu
        options: dict[str, Any] = {"mtu": a.mtu} if a.mtu else {}
        await netlink(a.netns, f"link add {a.ifname} type veth peer {b.ifname} netns {b.netns.name}",  # type: ignore
                      a.netns.ipr.link("add", ifname=a.ifname, kind="veth", peer=peer, **options))  # type: ignore
        self._created = True
        for end in ends:
            if isinstance(end.owner, Switch):
                ipr = end.netns.ipr  # type: ignore[union-attr]
                index = await end.netns.index(end.ifname)  # type: ignore[union-attr]
                await ipr.link("set", index=index, master=end.owner.bridge_index, state="up")
        await self._shape(ends)

    async def _shape(self, ends: list[_End]) -> None:
        rate = self.get("rate")
        delay = self.get("delay")
        seconds = parse_delay(delay) if delay else None
        loss = self.get("loss")
        if rate is None and not seconds and not loss:
            return  # "0ms" and 0 % ask for nothing: no netem needed
        self._executor = LocalExecutor(where=f"netns::Link {self.guid}")
        bits = parse_rate(rate) if rate is not None else None
        for end in ends:
            batch = qdisc_batch(end.ifname, bits, self.get("shaper"), self.get("burst"), seconds)
            if batch:
                self._shaped = True
                command = f"tc -n {end.netns.name} -batch -"  # type: ignore[union-attr]
                result = await self._executor.run(command, input="\n".join(batch) + "\n", check=False)
                if result.returncode != 0:
                    where = f"netns {end.netns.name}"  # type: ignore[union-attr]
                    stderr = result.stderr.strip()
                    if seconds and "qdisc kind is unknown" in stderr:
                        raise NetemUnavailableError(self.guid, delay, command, result.returncode, stderr,
                                                    where)
                    raise CommandError(command + "  # " + "; ".join(batch), result.returncode, stderr, where)
            if loss:
                self._lossy = True
                command = f"ip netns exec {end.netns.name} nft -f -"  # type: ignore[union-attr]
                await self._executor.run(command, input=loss_ruleset(self.guid, end.ifname, loss))

    async def _statistics(self) -> str:
        """``tc -s qdisc`` and the loss counters of both ends."""
        parts = []
        for end in self._ends:
            netns = end.netns
            if netns is None or netns.removed or self._executor is None:
                continue
            text = [f"== {netns.name} {end.ifname}"]
            if self._shaped:
                r = await self._executor.run(f"tc -n {netns.name} -s qdisc show dev {end.ifname}",
                                             check=False)
                text.append(r.stdout.rstrip())
            if self._lossy:
                r = await self._executor.run(
                    f"ip netns exec {netns.name} nft list table netdev {loss_table(self.guid)}", check=False)
                text.append(r.stdout.rstrip())
            parts.append("\n".join(text))
        return "\n".join(parts) + "\n" if parts else ""

    async def do_release(self) -> None:
        try:
            if (self._shaped or self._lossy) and self.trace_enabled("shaping"):
                try:
                    stats = await asyncio.wait_for(self._statistics(), 10)
                    with open(self.trace_path("shaping"), "w") as f:
                        f.write(stats)
                except Exception as exc:  # statistics are a courtesy; removal is not
                    log.warning("netns::Link %s: no shaping statistics: %s", self.guid, exc)
            if self._lossy and self._executor is not None:
                for end in self._ends:
                    netns = end.netns
                    if netns is not None and not netns.removed and not being_released(end.host):
                        await self._executor.run(
                            f"ip netns exec {netns.name} nft delete table netdev {loss_table(self.guid)}",
                            check=False, timeout=10)
            if self._created and not any(being_released(end.host) for end in self._ends):
                a = self._ends[0]  # deleting one end deletes the pair
                netns = a.netns
                if netns is not None and not netns.removed and netns.ipr is not None:
                    try:
                        index = await netns.index(a.ifname)
                        await asyncio.wait_for(netns.ipr.link("del", index=index), 5)
                    except Exception as exc:  # gone with its namespace already
                        log.debug("netns::Link %s: veth not deleted: %s", self.guid, exc)
                self._created = False
        finally:
            if self._executor is not None:
                self._executor.kill_all()
