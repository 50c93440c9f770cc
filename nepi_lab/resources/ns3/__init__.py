"""ns-3 simulations: the same kind of topologies and tools, simulated, without root.

==========================  ==============================================================
``ns3::Simulation``         one ns-3 simulation in a worker process of its own: stop
                            time, seed and run number, checksums, global routing
                            (:mod:`.simulation`)
``ns3::Node``               a simulated host with the internet stack (:mod:`.network`)
``ns3::PointToPointLink``   a link between two nodes: data rate, delay, queue size, loss;
                            IPv4 addresses for both ends; pcap per end (:mod:`.network`)
``ns3::CsmaLink``           a shared Ethernet segment (bus) joining any number of nodes:
                            data rate, delay, queue size, loss; addresses; a pcap of
                            the whole bus (:mod:`.network`)
``ns3::Route``              a static route on a node (:mod:`.network`)
``ns3::Ping``               ICMP echo; stdout in Linux ping's format (:mod:`.applications`)
``ns3::UdpEchoServer``      ns-3's UDP echo server                    (:mod:`.applications`)
``ns3::UdpEchoClient``      ns-3's UDP echo client; stdout one ping-like line per echo
``ns3::PacketSink``         receives UDP or TCP on a port; trace ``rx``, ``totalRx``
``ns3::OnOff``              ns-3's OnOffApplication: constant rate in on/off periods
``ns3::BulkSend``           ns-3's BulkSendApplication: TCP as fast as it goes; ``tcpVariant``
``ns3::App``                any ns-3 application by TypeId, its attributes raw
==========================  ==============================================================

Every resource but the simulation takes ``ns3Attributes``: ns-3 attributes by ns-3's
names, checked against the installed ns-3's TypeIds when the simulation is built;
the simulation takes ``defaults`` (``Config::SetDefault``) and ``config``
(``Config::Set`` by path).  :func:`describe_type` lists a type's attributes.

Importing this package does not import ns-3: only the processes that run simulations
do, away from the controller and the notebook kernel (:mod:`._process`).  One shared
process per interpreter imports ns-3 once (8-20 s, 640 MB) and forks a process per
simulation; ``isolated=True`` gives a simulation a fresh one instead;
:func:`start_shared_process` starts it ahead of the first simulation (its import then
overlaps with the caller's work), :func:`stop_shared_process` gives the memory back.
Without the ``ns3`` package a simulation fails at deploy with ``pip install 'nepi_lab[ns3]'``.
"""

from __future__ import annotations

from ._process import (
    INSTALL_HINT,
    SimulationError,
    describe_type,
    live_pids,
    start_shared_process,
    stop_shared_process,
)
from .applications import App, Application, BulkSend, OnOff, PacketSink, Ping, UdpEchoClient, UdpEchoServer
from .network import CsmaLink, Node, PointToPointLink, Route
from .simulation import Simulation

__all__ = [
    "INSTALL_HINT",
    "App",
    "Application",
    "BulkSend",
    "CsmaLink",
    "Node",
    "OnOff",
    "PacketSink",
    "Ping",
    "PointToPointLink",
    "Route",
    "Simulation",
    "SimulationError",
    "UdpEchoClient",
    "UdpEchoServer",
    "describe_type",
    "live_pids",
    "start_shared_process",
    "stop_shared_process",
]
