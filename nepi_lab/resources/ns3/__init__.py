"""ns-3 simulations: the same kind of topologies and tools, simulated, without root.

==========================  ==============================================================
``ns3::Simulation``         one ns-3 simulation in a worker process of its own: stop
                            time, seed and run number, checksums, global routing
                            (:mod:`.simulation`)
``ns3::Node``               a simulated host with the internet stack (:mod:`.network`)
``ns3::PointToPointLink``   a link between two nodes: data rate, delay, queue size, loss;
                            IPv4 addresses for both ends; pcap per end (:mod:`.network`)
``ns3::CsmaLink``           a shared Ethernet segment (bus) joining two or more nodes:
                            data rate, delay, queue size, loss; addresses; a pcap of
                            the whole bus (:mod:`.network`)
``ns3::Route``              a static route on a node (:mod:`.network`)
``ns3::Ping``               ICMP echo; stdout in Linux ping's format (:mod:`.applications`)
``ns3::UdpEchoServer``      ns-3's UDP echo server                    (:mod:`.applications`)
``ns3::UdpEchoClient``      ns-3's UDP echo client; stdout one ping-like line per echo
==========================  ==============================================================

Importing this package does not import ns-3: only the processes that run simulations
do, away from the controller and the notebook kernel (:mod:`._process`).  One shared
process per interpreter imports ns-3 once (8-20 s, 640 MB) and forks a process per
simulation; ``isolated=True`` gives a simulation a fresh one instead;
:func:`stop_shared_process` gives the memory back.  Without the ``ns3`` package a
simulation fails at deploy with ``pip install 'nepi_lab[ns3]'``.
"""

from __future__ import annotations

from ._process import INSTALL_HINT, SimulationError, live_pids, stop_shared_process
from .applications import Application, Ping, UdpEchoClient, UdpEchoServer
from .network import CsmaLink, Node, PointToPointLink, Route
from .simulation import Simulation

__all__ = [
    "INSTALL_HINT",
    "Application",
    "CsmaLink",
    "Node",
    "Ping",
    "PointToPointLink",
    "Route",
    "Simulation",
    "SimulationError",
    "UdpEchoClient",
    "UdpEchoServer",
    "live_pids",
    "stop_shared_process",
]
