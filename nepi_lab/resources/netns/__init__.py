"""Network-namespace topologies: hosts, switches, links, addresses and routes on this machine.

=====================  ===================================================================
``netns::Node``        a network namespace acting as a host; a ``linux::Node``, so
                       ``linux::Application`` and the tools run inside it (:mod:`.node`)
``netns::Switch``      a Linux bridge in a namespace of its own            (:mod:`.switch`)
``netns::Interface``   one end of a link on a node: name, IPv4/IPv6, MTU, up (:mod:`.interface`)
``netns::Link``        a veth pair between two interfaces, or an interface and a switch;
                       rate (tbf/htb), loss (nftables), delay (netem)      (:mod:`.link`)
``netns::Route``       a static route on a node                            (:mod:`.route`)
=====================  ===================================================================

Everything a run makes is named ``nl<tag>-...`` with a tag of its own (see
:func:`run_prefix`), made without touching the root namespace, and removed on
release, on a critical failure, on Ctrl-C and at interpreter exit; ``nepi-lab
cleanup`` removes what a killed run left (:func:`cleanup_leftovers`).
:mod:`nepi_lab.topology` builds all of it from a networkx graph.

Needs root and pyroute2 (``pip install 'nepi_lab[netns]'``); both are checked at
deploy, so these types can be registered and described anywhere.
"""

from __future__ import annotations

from ._namespace import CleanupReport, NetlinkError, cleanup_leftovers, run_prefix
from ._shaping import NetemUnavailableError, parse_rate
from .interface import Interface
from .link import Link
from .node import Node
from .route import Route
from .switch import Switch

__all__ = [
    "CleanupReport",
    "Interface",
    "Link",
    "NetemUnavailableError",
    "NetlinkError",
    "Node",
    "Route",
    "Switch",
    "cleanup_leftovers",
    "parse_rate",
    "run_prefix",
]
