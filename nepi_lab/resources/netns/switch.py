"""``netns::Switch``: a Linux bridge in a namespace of its own.

The bridge, ``nl<tag>-br``, lives in namespace ``nl<tag>-<name>``, so nothing is added
to the root namespace.  Each ``netns::Link`` connected to the switch makes one port
there (``nl<tag>-p<k>``) and enslaves it to the bridge.  Spanning tree is off, so
ports forward at once; switches joined into a loop would flood each other (the
topology builder refuses such graphs).

Example
-------
>>> with ExperimentController() as ec:                      # doctest: +SKIP
...     s = ec.register_resource("netns::Switch", name="s1")
...     hosts, links = [], []
...     for i in (1, 2):
...         h = ec.register_resource("netns::Node", name=f"h{i}")
...         nic = ec.register_resource("netns::Interface", connectedTo=h, ip=f"10.0.0.{i}/24")
...         links.append(ec.register_resource("netns::Link", connectedTo=nic))
...         ec.register_connection(links[-1], s)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...core.attributes import Attribute, Flags
from ...core.resource import ResourceManager, TopologyRole
from ._namespace import InNamespace, Namespace
from .node import check_name

if TYPE_CHECKING:
    from ...core.controller import ExperimentController


class Switch(InNamespace, ResourceManager):
    """A Linux bridge in its own network namespace (see the module docstring)."""

    _rtype = "netns::Switch"
    _connects_to = ("netns::Link",)
    _help = "A Linux bridge, in a network namespace of its own; netns::Links plug into it."
    _platform = "netns"
    _topology_role = TopologyRole.SWITCH
    _attributes = (
        Attribute("name", "short name; the namespace is nl<tag>-<name> (default: s<guid>)",
                  flags=Flags.Design, set_hook=check_name),
        Attribute("namespace", "the network namespace's name, once deployed", flags=Flags.NoWrite),
        Attribute("bridge", "the bridge's interface name, once deployed", flags=Flags.NoWrite),
    )

    def __init__(self, ec: ExperimentController, guid: int) -> None:
        super().__init__(ec, guid)
        self.netns: Namespace | None = None  #: the namespace, from DISCOVERED until released
        self.bridge_index = 0  #: the bridge's interface index in :attr:`netns`

    @property
    def name(self) -> str:
        """The ``name`` attribute, or ``s<guid>``."""
        return self.get("name") or f"s{self.guid}"

    async def do_discover(self) -> None:
        bridge = self._create_namespace().names.ifname("br")
        ipr = self.netns.ipr
        await ipr.link("set", index=1, state="up")
        await ipr.link("add", ifname=bridge, kind="bridge", br_stp_state=0)
        self.bridge_index = await self.netns.index(bridge)
        await ipr.link("set", index=self.bridge_index, state="up")
        self.set("bridge", bridge, internal=True)

    async def do_release(self) -> None:
        if self.netns is not None:
            self.netns.remove()
