"""Linux resource types: ``linux::Node``, ``linux::Application`` and tools.

========================  ==========================================================
``linux::Node``           a host: this machine, or another over SSH (:mod:`.node`)
``linux::Application``    a shell command with sources, build, traces (:mod:`.application`)
``linux::Ping``           ping (iputils)                            (:mod:`.tools`)
``linux::Iperf3Server``   iperf3 -s, STARTED once listening
``linux::Iperf3Client``   iperf3 -c
``linux::Tcpdump``        tcpdump into a pcap trace, STARTED once capturing
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
from .node import Node
from .tools import Iperf3Client, Iperf3Server, Ping, Tcpdump

__all__ = [
    "Application",
    "CommandResult",
    "CommandTimeoutError",
    "Executor",
    "Iperf3Client",
    "Iperf3Server",
    "LeftOnHostError",
    "LocalExecutor",
    "MissingCommandsError",
    "Node",
    "Ping",
    "ProcessHandle",
    "Tcpdump",
    "parse_env",
]
