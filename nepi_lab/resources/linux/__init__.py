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
