"""``linux::UdpTest``: NEPI's UDP throughput test between a server and a client, with iperf3.

NEPI's ``linux::UdpTest`` downloaded hpcbench's ``udptest`` from SourceForge and built
it with gcc and make at every deploy.  hpcbench is not packaged by Debian or Fedora,
and a download from the Internet at deploy is what an experiment should not depend on;
``iperf3 -u`` measures the same thing, the UDP throughput (with loss and jitter)
between a server and a client, and is packaged everywhere.  So ``linux::UdpTest`` is
an :class:`~nepi_lab.resources.linux.tools.Iperf3Client` in UDP mode, which is also a
server with NEPI's ``s``, under NEPI's attribute names:

=================  ==================================================================
NEPI               here
=================  ==================================================================
``s``              server mode: ``iperf3 -s``, STARTED once it listens (NEPI's
                   ``udpserver``), until stopped; the other attributes are the
                   client's, as in NEPI
``p``              port (``-p``), hpcbench's default 5678 (alias of ``port``)
``target``         the server's address (``-c``; alias of ``server``); needed by a client
``t``              seconds of test (``-t``; alias of ``duration``), hpcbench's default 5
``l``              datagram size in bytes (``-l``; alias of ``length``), default 1460
``T``              throughput to send, Mbit/s (``-b <T>M``); unset: unlimited
                   (``-b 0``), as hpcbench, where iperf3 alone would send 1 Mbit/s
``b``              socket buffer in bytes (``-w``, which iperf3 applies on the server
                   too; alias of ``bufferSize``)
``i``              bidirectional test (``--bidir``; alias of ``bidirectional``)
``q``              IP type of service 1-6, hpcbench's classes (``-S``): 1 low delay
                   0x10, 2 throughput 0x08, 3 AF11 0x28, 4 AF13 0x38, 5 AF41 0x88,
                   6 AF43 0x98 (alias of ``qos``)
``r``              tests run one after the other (alias of ``repeat``); default one,
                   where hpcbench ran ten
``o``              file name in ``${RUN_HOME}`` the report is written to instead of
                   the stdout trace (``--logfile``; read it with ``ec.trace(app,
                   name)``; alias of ``output``)
``continuous``     run the test again and again until stopped (NEPI's ``while true``;
                   a failing test ends the rounds, and fails the application)
``printTimestamp`` print the time (``YYYYmmddHHMMSS``) before each test
=================  ==================================================================

Not accepted, because iperf3 has no equivalent (an unknown attribute says so at
``set``): ``a`` and ``A`` (UDP round trip time: use ``linux::Ping``, or ``linux::NPing``
with ``udp``), ``B`` (a server buffer other than the client's: ``b`` sets both),
``c`` (CPU log: iperf3's report gives the CPU use of both ends, ``-J``'s
``cpu_utilization_percent``), ``d`` (the size of each write: one write is one
datagram, ``l``), ``e`` (exponential datagram sizes: sweep ``l`` over runs),
``g`` (sending without a server: iperf3 always needs one, a ``UdpTest`` with ``s``),
``m`` (total bytes: hpcbench ended a test when both ``m`` bytes were sent and ``t``
seconds passed, iperf3 ends it on one of them; ``t`` it is) and ``P`` (gnuplot file:
parse the trace with ``nepi_lab.analysis``, ``iperf3`` parser, the default for this
type's ``stdout``).  The report is iperf3's, not hpcbench's: its numbers are the
same quantities (throughput, datagrams lost, jitter) in iperf3's format.

Example
-------
>>> with ExperimentController() as ec:                              # doctest: +SKIP
...     node = ec.register_resource("linux::Node")
...     server = ec.register_resource("linux::UdpTest", connectedTo=node, s=True)
...     client = ec.register_resource("linux::UdpTest", connectedTo=node, target="127.0.0.1",
...                                   t=2, T=100)
...     ec.register_condition(client, "START", server, "STARTED")
...     ec.deploy()
...     ec.wait_finished(client)
...     print(ec.trace(client, "stdout"))
"""

from __future__ import annotations

import shlex
from typing import Any

from ...core.attributes import Alias, Attribute, Flags, Types
from ...core.errors import AttributeValueError, InvalidInputError, UnsafeNameError
from ...core.resource import ResourceManager
from ...core.traces import check_name
from ._readiness import until_listening
from .tools import Iperf3Client, _command, _flags, _number

#: NEPI's ``printTimestamp`` format (``date +%Y%m%d%H%M%S``).
_STAMP = "date +%Y%m%d%H%M%S"

#: hpcbench's ``-q`` classes as the IP TOS byte iperf3's ``-S`` takes.
TOS = {"1": "0x10", "2": "0x08", "3": "0x28", "4": "0x38", "5": "0x88", "6": "0x98"}


def _check_output(rm: ResourceManager, old: Any, new: Any) -> Any:
    if new not in (None, ""):
        try:
            check_name(new, "output file name")
        except UnsafeNameError as exc:
            raise AttributeValueError(rm.guid, rm._rtype, "output", new,
                                      f"a file name in ${{RUN_HOME}}, read as a trace: {exc}") from None
    return new


class UdpTest(Iperf3Client):
    """NEPI's ``linux::UdpTest`` with iperf3 in UDP mode: a server (``s``) or a client
    (see the module docstring for NEPI's attributes)."""

    _rtype = "linux::UdpTest"
    _help = "UDP throughput test (NEPI's UdpTest, with iperf3 -u): server with s, else client of target."
    _attributes = (
        Attribute("s", "server mode: iperf3 -s, STARTED once listening, until stopped", type=Types.Bool,
                  default=False, flags=Flags.Design),
        Attribute("port", "port of the server (-p; hpcbench's default)", type=Types.Integer, default=5678,
                  range=(1, 65535)),
        Attribute("server", "client: address of the server (NEPI's target)"),
        Attribute("duration", "client: seconds of test (-t; hpcbench's default)", type=Types.Integer,
                  default=5, range=(1, None)),
        Attribute("length", "client: datagram size in bytes (-l)", type=Types.Integer, default=1460,
                  range=(1, 65507)),
        Attribute("protocol", "transport protocol: UDP", type=Types.Enumerate, default="udp",
                  allowed=("udp",), flags=Flags.NoWrite),
        Attribute("T", "client: throughput to send in Mbit/s (-b <T>M); unset: unlimited, as hpcbench",
                  type=Types.Double, range=(0, None)),
        Attribute("bufferSize", "client: socket buffer in bytes (-w; iperf3 sets the server's too)",
                  type=Types.Integer, range=(1, None)),
        Attribute("bidirectional", "client: both ends send at once (--bidir)", type=Types.Bool,
                  default=False),
        Attribute("qos", "client: IP type of service, hpcbench's class 1-6 (-S)", type=Types.Enumerate,
                  allowed=tuple(TOS)),
        Attribute("repeat", "client: tests run one after the other", type=Types.Integer, range=(1, None)),
        Attribute("output", "file name in ${RUN_HOME} the report goes to instead of stdout (--logfile)",
                  set_hook=_check_output),
        Attribute("continuous", "run the test again and again until the application is stopped",
                  type=Types.Bool, default=False),
        Attribute("printTimestamp", "print the time (YYYYmmddHHMMSS) before each test", type=Types.Bool,
                  default=False),
    )
    _aliases = (
        Alias("p", "port"), Alias("target", "server"), Alias("t", "duration"), Alias("l", "length"),
        Alias("b", "bufferSize"), Alias("i", "bidirectional"), Alias("q", "qos"), Alias("r", "repeat"),
        Alias("o", "output"),
    )
    _required = ()

    async def do_discover(self) -> None:
        if not self.get("s"):
            if self.get("server") in (None, ""):
                raise InvalidInputError(f"{self._rtype} {self.guid} is a client: set target (the server's "
                                        f"address), or s=True for a server")
            if self.get("T") is not None and self.get("bandwidth"):
                raise InvalidInputError(f"{self._rtype} {self.guid}: set T (Mbit/s) or bandwidth, not both")
        # a server is STARTED once it listens, as linux::Iperf3Server
        self._ready_timeout = 10.0 if self.get("s") else None
        await super().do_discover()

    def _words(self) -> list[str]:
        common = (("port", "-p"), ("bind", "-B"), ("json", "-J"), ("interval", "-i"),
                  ("forceFlush", "--forceflush"))
        if self.get("s"):
            return ["-s", *_flags(self, common)]
        words = ["-c", self.get("server"), "-u", *_flags(self, (
            ("duration", "-t"), ("length", "-l"), ("bufferSize", "-w"), ("omit", "-O"), ("parallel", "-P"),
            ("reverse", "-R"), ("bidirectional", "--bidir"), *common,
        ))]
        rate = self.get("T")
        words += ["-b", f"{_number(rate)}M" if rate is not None else (self.get("bandwidth") or "0")]
        if self.get("qos"):
            words += ["-S", TOS[self.get("qos")]]
        return words

    def _compose(self) -> str:
        once = _command(self._program(), self._words())
        if self.get("output"):
            once += ' --logfile "${RUN_HOME}"/' + shlex.quote(self.get("output"))
        if self.get("printTimestamp"):
            once = f"{_STAMP}; {once}"
        # the rounds stop at the first failing test, which fails the application with its status
        if self.get("continuous"):
            return f"while true; do {once} || exit; done"
        repeat = self.get("repeat")
        if repeat and repeat > 1 and not self.get("s"):
            return f'n=0; while [ "$n" -lt {repeat} ]; do {once} || exit; n=$((n + 1)); done'
        return once

    async def _until_ready(self) -> None:
        if self.get("s"):
            await until_listening(self, self.get("port"))
        else:
            await super()._until_ready()
