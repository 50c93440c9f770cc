"""Path probes NEPI had: ``linux::Traceroute``, ``linux::Mtr`` and ``linux::NPing``.

Typed applications as those of :mod:`.tools`, with NEPI's attribute names, so that a
NEPI script's ``ec.register_resource("linux::Mtr", ...)`` ports unchanged:

``continuous``
    Run the probe again and again until the application is stopped (NEPI's ``while
    true`` loop; two seconds apart for traceroute, as NEPI did, and back to back for mtr
    and nping, whose rounds take their own time).  Without it the application
    finishes when the probe does.
``printTimestamp``
    Print the time (``YYYYmmddHHMMSS``, NEPI's format) before each round.

Differences from NEPI, deliberate: no ``sudo -S`` in front of mtr and nping (the
command runs as the node's user; they need root or the capabilities their packages
give them, as on Debian); packages are installed only with ``installDepends``
(``depends`` names the command, checked on the host, and installed as the package of
that name); ``useIP`` resolves the name *on the host* (``getent ahosts``) rather than on
the controller (numeric output is the ``numeric`` attribute); NEPI's ``earlyStart`` is
not kept (conditions say when to start).

Example
-------
>>> with ExperimentController() as ec:                              # doctest: +SKIP
...     node = ec.register_resource("linux::Node")
...     mtr = ec.register_resource("linux::Mtr", connectedTo=node, target="127.0.0.1",
...                                reportCycles=3, noDns=True)
...     ec.deploy()
...     ec.wait_finished(mtr)
...     print(ec.trace(mtr, "stdout"))
"""

from __future__ import annotations

import shlex

from ...core.attributes import Attribute, Flags, Types
from .tools import _command, _flags, _Tool

#: NEPI's format of ``printTimestamp`` (``date +%Y%m%d%H%M%S``).
_STAMP = "date +%Y%m%d%H%M%S"

_ROUNDS = (
    Attribute("continuous", "run the probe again and again until the application is stopped",
              type=Types.Bool, default=False),
    Attribute("printTimestamp", "print the time (YYYYmmddHHMMSS) before each round", type=Types.Bool,
              default=False),
    Attribute("target", "host name or address to probe"),
)


class _Probe(_Tool):
    """A probe run once, or in rounds (``continuous``), each maybe after a timestamp."""

    _attributes = _ROUNDS
    _required = ("target",)
    #: Seconds between two rounds of ``continuous``.
    _pause = 0.0

    def _target(self) -> str:
        """The target as a shell word."""
        return shlex.quote(self.get("target"))

    def _compose(self) -> str:
        once = f"{_command(self._program(), self._words())} {self._target()}"
        if self.get("printTimestamp"):
            once = f"{_STAMP}; {once}"
        if not self.get("continuous"):
            return once
        pause = f"; sleep {self._pause:g}" if self._pause else ""
        return f"while true; do {once}{pause}; done"


class Traceroute(_Probe):
    """``traceroute`` from the node to ``target``."""

    _rtype = "linux::Traceroute"
    _help = "traceroute towards a target (NEPI's attributes); output in the stdout trace."
    _pause = 2.0
    _attributes = (
        Attribute("depends", "the tool's command, checked on the host", default="traceroute",
                  flags=Flags.NoWrite),
        Attribute("useIP", "probe the target's address, resolved on the host, not its name",
                  type=Types.Bool, default=False),
        Attribute("numeric", "print addresses, no name lookups (-n)", type=Types.Bool, default=False),
        Attribute("queries", "probes per hop (-q)", type=Types.Integer, range=(1, 10)),
        Attribute("maxHops", "the largest time to live (-m)", type=Types.Integer, range=(1, 255)),
        Attribute("wait", "seconds to wait for each reply (-w)", type=Types.Double, range=(0, None)),
    )

    def _words(self) -> list[str]:
        spec = (("numeric", "-n"), ("queries", "-q"), ("maxHops", "-m"), ("wait", "-w"))
        return [*_flags(self, spec), "--"]

    def _target(self) -> str:
        if not self.get("useIP"):
            return super()._target()
        # the first address the host resolves the name to (getent: files, DNS ...)
        return f'"$(getent ahosts {super()._target()} | head -n 1 | cut -d " " -f 1)"'



class Mtr(_Probe):
    """``mtr --report`` from the node to ``target``: one report per round."""

    _rtype = "linux::Mtr"
    _help = "mtr in report mode towards a target (NEPI's attributes); output in the stdout trace."
    _attributes = (
        Attribute("depends", "the tool's command, checked on the host", default="mtr", flags=Flags.NoWrite),
        Attribute("reportCycles", "pings per hop in each report (-c)", type=Types.Integer, range=(1, None)),
        Attribute("noDns", "print addresses, no name lookups (-n)", type=Types.Bool, default=False),
        Attribute("address", "source address of the probes (-a)"),
        Attribute("interval", "seconds between pings (-i)", type=Types.Double, range=(0, None)),
        Attribute("graceTime", "seconds to wait for the last replies before reporting (-G; mtr's "
                  "default is 5)", type=Types.Double, range=(0, None)),
    )

    def _words(self) -> list[str]:
        return ["--report", *_flags(self, (("reportCycles", "-c"), ("noDns", "-n"), ("address", "-a"),
                                          ("interval", "-i"), ("graceTime", "-G"))), "--"]


class NPing(_Probe):
    """``nping`` (nmap's packet generator) from the node to ``target``."""

    _rtype = "linux::NPing"
    _help = "nping (from nmap) towards a target (NEPI's attributes); output in the stdout trace."
    _attributes = (
        Attribute("depends", "the tool's command, checked on the host (=its Debian package)",
                  default="nping=nmap", flags=Flags.NoWrite),
        Attribute("c", "rounds of probes to send (-c)", type=Types.Integer, range=(1, None)),
        Attribute("e", "network interface to send from (-e)"),
        Attribute("delay", "time between probes, e.g. 0.5 or 200ms (--delay)"),
        Attribute("rate", "probes per second (--rate)", type=Types.Double, range=(0, None)),
        Attribute("ttl", "IP time to live (--ttl)", type=Types.Integer, range=(0, 255)),
        Attribute("p", "target ports, e.g. 80 or 22,80,1000-1010 (-p)"),
        Attribute("tcp", "TCP probes (--tcp)", type=Types.Bool, default=False),
        Attribute("udp", "UDP probes (--udp)", type=Types.Bool, default=False),
        Attribute("icmp", "ICMP probes (--icmp)", type=Types.Bool, default=False),
        Attribute("arp", "ARP probes (--arp)", type=Types.Bool, default=False),
        Attribute("traceroute", "traceroute mode (--traceroute)", type=Types.Bool, default=False),
    )

    def _words(self) -> list[str]:
        return _flags(self, (("c", "-c"), ("e", "-e"), ("delay", "--delay"), ("rate", "--rate"),
                             ("ttl", "--ttl"), ("p", "-p"), ("tcp", "--tcp"), ("udp", "--udp"),
                             ("icmp", "--icmp"), ("arp", "--arp"), ("traceroute", "--traceroute")))
