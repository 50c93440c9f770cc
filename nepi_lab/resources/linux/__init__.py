"""Linux resource types: ``linux::Node``, ``linux::Application`` and tools.

========================  ==========================================================
``linux::Node``           a host: this machine, or another over SSH (:mod:`.node`)
``linux::Application``    a shell command with sources, build, traces (:mod:`.application`)
``linux::Ping``           ping (iputils)                            (:mod:`.tools`)
``linux::Iperf3Server``   iperf3 -s, STARTED once listening
``linux::Iperf3Client``   iperf3 -c
``linux::Tcpdump``        tcpdump into a pcap trace, STARTED once capturing
``linux::Traceroute``     traceroute, NEPI's attributes              (:mod:`.probes`)
``linux::Mtr``            mtr --report, NEPI's attributes
``linux::NPing``          nping (nmap), NEPI's attributes
``linux::UdpTest``        NEPI's UDP throughput test, with iperf3 -u  (:mod:`.udptest`)
``linux::Tap``            a tap device on a node                     (:mod:`.tunnels`)
``linux::Tun``            a tun device on a node
``linux::GRETunnel``      two taps (or tuns) joined by GRE
``linux::UdpTunnel``      two taps (or tuns) joined by UDP, a forwarder per end
``linux::Interface``      an existing device of a node, read back     (:mod:`.interface`)
``linux::Channel``        groups interfaces; configures nothing
========================  ==========================================================

Where a node's commands run is its :class:`~.executor.Executor`
(:class:`~._local.LocalExecutor` on this machine, :class:`~._ssh.SshExecutor` over SSH).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from . import _tracking

# Imported when a linux:: type is first looked up: a node will likely run commands soon,
# and the first one's move into the node's cgroup waits for the kernel (an RCU grace
# period, 6-25 ms); start that wait now, in the background (see _tracking.warm_up).
_tracking.warm_up()

if TYPE_CHECKING:
    from ._local import LocalExecutor
    from .application import Application, parse_env
    from .executor import (
        CommandResult,
        CommandTimeoutError,
        Executor,
        LeftOnHostError,
        MissingCommandsError,
        ProcessHandle,
    )
    from .interface import Channel, Interface
    from .node import Node
    from .probes import Mtr, NPing, Traceroute
    from .tools import Iperf3Client, Iperf3Server, Ping, Tcpdump
    from .tunnels import GRETunnel, GreUnavailableError, Tap, Tun, UdpTunnel
    from .udptest import UdpTest

#: The module defining each type, imported when the type is first looked up by name (see
#: :mod:`nepi_lab.core.registry`): a script using ``linux::Node`` and
#: ``linux::Application`` imports neither the tools nor the tunnels.
_TYPE_MODULES = {
    "linux::Node": "node", "linux::Application": "application",
    "linux::Ping": "tools", "linux::Iperf3Server": "tools", "linux::Iperf3Client": "tools",
    "linux::Tcpdump": "tools",
    "linux::Traceroute": "probes", "linux::Mtr": "probes", "linux::NPing": "probes",
    "linux::UdpTest": "udptest",
    "linux::Tap": "tunnels", "linux::Tun": "tunnels", "linux::GRETunnel": "tunnels",
    "linux::UdpTunnel": "tunnels",
    "linux::Interface": "interface", "linux::Channel": "interface",
}

#: The module defining each public name, imported on first use (PEP 562), likewise.
_NAMES = {
    "LocalExecutor": "_local", "Application": "application", "parse_env": "application",
    "CommandResult": "executor", "CommandTimeoutError": "executor", "Executor": "executor",
    "LeftOnHostError": "executor", "MissingCommandsError": "executor", "ProcessHandle": "executor",
    "Channel": "interface", "Interface": "interface", "Node": "node",
    "Mtr": "probes", "NPing": "probes", "Traceroute": "probes",
    "Iperf3Client": "tools", "Iperf3Server": "tools", "Ping": "tools", "Tcpdump": "tools",
    "GRETunnel": "tunnels", "GreUnavailableError": "tunnels", "Tap": "tunnels", "Tun": "tunnels",
    "UdpTunnel": "tunnels", "UdpTest": "udptest",
}


def __getattr__(name: str) -> object:
    module = _NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later look-ups do not come here again
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_NAMES))


__all__ = [
    "Application",
    "Channel",
    "CommandResult",
    "CommandTimeoutError",
    "Executor",
    "GRETunnel",
    "GreUnavailableError",
    "Interface",
    "Iperf3Client",
    "Iperf3Server",
    "LeftOnHostError",
    "LocalExecutor",
    "MissingCommandsError",
    "Mtr",
    "NPing",
    "Node",
    "Ping",
    "ProcessHandle",
    "Tap",
    "Tcpdump",
    "Traceroute",
    "Tun",
    "UdpTest",
    "UdpTunnel",
    "parse_env",
]
