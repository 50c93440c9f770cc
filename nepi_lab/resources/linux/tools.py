"""Measurement tools as typed applications: ping, iperf3 (server and client), tcpdump.

Each is a :class:`~nepi_lab.resources.linux.application.Application` whose command
line is built from typed attributes, every value quoted for the shell; ``command``
and ``depends`` are read-only (``ec.get(guid, "command")`` shows what runs).  Unset
attributes leave the tool's own default.

Example
-------
>>> with ExperimentController() as ec:                          # doctest: +SKIP
...     node = ec.register_resource("linux::Node")
...     server = ec.register_resource("linux::Iperf3Server", connectedTo=node, oneOff=True)
...     client = ec.register_resource("linux::Iperf3Client", connectedTo=node,
...                                   server="127.0.0.1", duration=1, json=True)
...     ec.register_condition(client, "START", server, "STARTED")
...     ec.deploy()
...     ec.wait_finished([server, client])
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from ...core.attributes import Alias, Attribute, Flags, Types
from ...core.errors import AttributeValueError, CommandError, InvalidInputError, UnsafeNameError
from ...core.traces import Trace, check_name
from ._packages import parse_depends
from ._readiness import until_listening
from .application import NOT_TRACES, Application


def _flags(rm: Application, spec: tuple[tuple[str, str], ...]) -> list[str]:
    """Command-line words for the attributes of ``spec`` (name, flag) that are set.

    A Bool adds its flag when true; any other value adds the flag and the value.
    """
    words: list[str] = []
    declarations = rm._attribute_table
    for name, flag in spec:
        value = rm.get(name)
        if value is None or value is False:
            continue
        if declarations[name].type is Types.Bool:
            words.append(flag)
        else:
            words += [flag, _number(value)]
    return words


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


#: The words a Bool attribute reads as True and as False.
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _flag(value: Any) -> bool | None:
    """``value`` as a boolean if it is one (or a word for one: true/false, yes/no, on/off,
    1/0), else None."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    return None


def _command(program: str, words: list[str]) -> str:
    return " ".join([program, *(shlex.quote(w) for w in words)])


class _Tool(Application):
    """An application whose command line is built from typed attributes."""

    _attributes = (
        Attribute("command", "built from the other attributes", flags=Flags.NoWrite),
        Attribute("depends", "the tool's command, checked on the host", flags=Flags.NoWrite),
    )
    _required: tuple[str, ...] = ()

    def _words(self) -> list[str]:
        raise NotImplementedError

    async def do_discover(self) -> None:
        missing = [name for name in self._required if self.get(name) in (None, "")]
        if missing:
            raise InvalidInputError(f"{self._rtype} {self.guid} needs {', '.join(missing)} to be set")
        self.set("command", self._compose(), internal=True)
        await super().do_discover()

    def _program(self) -> str:
        """The tool's command: ``depends``, or its command part where it says
        ``command=package`` (the Debian package, for ``installDepends``)."""
        return parse_depends(self.get("depends"))[0].command

    def _compose(self) -> str:
        return _command(self._program(), self._words())


#: The longest interval and reply timeout iputils ping takes: INT_MAX milliseconds.
_PING_SECONDS = 2147483


class Ping(_Tool):
    """``ping`` (iputils) from the node to ``target``."""

    _rtype = "linux::Ping"
    _help = "ping (iputils) towards a target; output in the stdout trace."
    _attributes = (
        Attribute("depends", "the tool's command, checked on the host (=its Debian package)",
                  default="ping=iputils-ping", flags=Flags.NoWrite),
        Attribute("target", "host name or address to ping"),
        # the ranges iputils ping accepts, so that a value it would refuse is refused at set
        Attribute("count", "stop after sending this many packets (-c)", type=Types.Integer,
                  range=(1, 2**63 - 1)),
        Attribute("interval", "seconds between packets (-i)", type=Types.Double, range=(0, _PING_SECONDS)),
        Attribute("deadline", "stop after this many seconds, whatever was sent (-w)", type=Types.Integer,
                  range=(1, 2**31 - 1)),
        Attribute("timeout", "seconds to wait for each reply (-W)", type=Types.Double,
                  range=(0, _PING_SECONDS)),
        Attribute("packetSize", "bytes of data per packet (-s)", type=Types.Integer, range=(0, 65507)),
        Attribute("ttl", "IP time to live (-t)", type=Types.Integer, range=(1, 255)),
        Attribute("interface", "source interface or address (-I)"),
        Attribute("printTimestamp", "print a UNIX timestamp before each line (-D)", type=Types.Bool,
                  default=False),
        Attribute("numeric", "print addresses, no name lookups (-n)", type=Types.Bool, default=False),
        Attribute("quiet", "print only the summary (-q)", type=Types.Bool, default=False),
        # the other iputils flags NEPI's linux::Ping had, under its names
        Attribute("mark", "tag outgoing packets with this firewall mark (-m; needs CAP_NET_ADMIN)",
                  type=Types.Integer, range=(0, 2**32 - 1)),
        Attribute("preload", "packets sent before waiting for replies (-l; above 3 needs root)",
                  type=Types.Integer, range=(1, 65536)),
        Attribute("pattern", "up to 16 pad bytes in hexadecimal, e.g. 'ff00' (-p)"),
        Attribute("tos", "quality of service bits, decimal or 0x hexadecimal (-Q)"),
        Attribute("recordRoute", "record the route in the packets (-R; IPv4)", type=Types.Bool,
                  default=False),
        Attribute("routeBypass", "bypass the routing tables: the target is on an attached network (-r)",
                  type=Types.Bool, default=False),
        Attribute("sendBuffer", "socket send buffer in bytes (-S)", type=Types.Integer, range=(1, 2**31 - 1)),
        Attribute("timestamp", "IP timestamp option (-T; IPv4): tsonly, tsandaddr, or 'tsprespec HOST...'"),
        Attribute("pmtuDiscovery", "path MTU discovery strategy (-M)", type=Types.Enumerate,
                  allowed=("do", "want", "dont", "probe")),
        Attribute("fullLatency", "round trip time from user to user, not only the network's (-U)",
                  type=Types.Bool, default=False),
        Attribute("verbose", "verbose output (-v)", type=Types.Bool, default=False),
        Attribute("flood", "flood ping (-f; below 0.002 s of interval needs root)", type=Types.Bool,
                  default=False),
    )
    # NEPI's names (NEPI's ``address`` is ping's -I, the source, not the target)
    _aliases = (
        Alias("address", "interface"),
        Alias("sendBuff", "sendBuffer"),
        Alias("hint", "pmtuDiscovery"),
    )
    _required = ("target",)

    def _words(self) -> list[str]:
        words = _flags(self, (
            ("count", "-c"), ("interval", "-i"), ("deadline", "-w"), ("timeout", "-W"),
            ("packetSize", "-s"), ("ttl", "-t"), ("interface", "-I"), ("printTimestamp", "-D"),
            ("numeric", "-n"), ("quiet", "-q"), ("mark", "-m"), ("preload", "-l"), ("pattern", "-p"),
            ("tos", "-Q"), ("recordRoute", "-R"), ("routeBypass", "-r"), ("sendBuffer", "-S"),
            ("pmtuDiscovery", "-M"), ("fullLatency", "-U"), ("verbose", "-v"), ("flood", "-f"),
        ))
        timestamp = self.get("timestamp")
        if timestamp:  # 'tsprespec HOST...' is one option with its hosts: each a word of its own
            words += ["-T", *timestamp.split()]
        return [*words, "--", self.get("target")]


_IPERF_COMMON = (
    Attribute("depends", "the tool's command, checked on the host", default="iperf3", flags=Flags.NoWrite),
    Attribute("port", "TCP port of the server (-p)", type=Types.Integer, default=5201, range=(1, 65535)),
    Attribute("json", "JSON output (-J)", type=Types.Bool, default=False),
    Attribute("interval", "seconds between periodic reports (-i; 0 disables them)", type=Types.Double,
              range=(0, None)),
    Attribute("forceFlush", "flush the output at every report, so the trace grows live (--forceflush)",
              type=Types.Bool, default=True),
)


class Iperf3Server(_Tool):
    """``iperf3 -s``: STARTED once it listens on ``port``, so a client may start then."""

    _rtype = "linux::Iperf3Server"
    _help = "iperf3 server; STARTED once listening. Stop it, or set oneOff to serve one test."
    _attributes = (
        *_IPERF_COMMON,
        Attribute("oneOff", "serve one test, then exit (-1)", type=Types.Bool, default=False),
        Attribute("bind", "address to listen on (-B)"),
    )
    _ready_timeout = 10.0

    def _words(self) -> list[str]:
        return ["-s", *_flags(self, (
            ("port", "-p"), ("oneOff", "-1"), ("bind", "-B"), ("json", "-J"), ("interval", "-i"),
            ("forceFlush", "--forceflush"),
        ))]

    async def _until_ready(self) -> None:
        await until_listening(self, self.get("port"))


class Iperf3Error(CommandError):
    """iperf3 reported an error in its JSON output (``-J``) though it exited with 0, as
    iperf3 3.12 and older do (e.g. ``unable to connect to server: Connection refused``)."""

    def __init__(self, command: str, error: str, where: str = "") -> None:
        super().__init__(command, 0, "", where)
        self.error = error
        self.args = (f"command {command!r}{f' on {where}' if where else ''} reported an error in its JSON "
                     f"output (iperf3 exits with 0 there): {error}",)


def _iperf3_json_error(path: str) -> str | None:
    """The ``error`` iperf3 wrote in its JSON output at ``path``, None if none (or no JSON)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            report = json.load(f)
    except (OSError, ValueError):
        return None
    error = report.get("error") if isinstance(report, dict) else None
    return str(error) if error else None


class Iperf3Client(_Tool):
    """``iperf3 -c``: one test against an iperf3 server.  With ``json`` the client FAILS
    when iperf3's report holds an ``error`` (iperf3 3.12 and older exit with 0 then)."""

    _rtype = "linux::Iperf3Client"
    _help = "iperf3 client: one throughput test against a server."
    _attributes = (
        *_IPERF_COMMON,
        Attribute("server", "address of the iperf3 server"),
        Attribute("duration", "seconds to transmit (-t; whole seconds)", type=Types.Integer, range=(1, None)),
        Attribute("omit", "seconds left out of the results at the start, TCP's slow start (-O)",
                  type=Types.Integer, range=(0, None)),
        Attribute("protocol", "transport protocol", type=Types.Enumerate, default="tcp",
                  allowed=("tcp", "udp")),
        Attribute("bandwidth", "target bitrate, e.g. 10M (-b; UDP default 1M)"),
        Attribute("parallel", "parallel streams (-P)", type=Types.Integer, range=(1, 128)),
        Attribute("reverse", "the server sends, the client receives (-R)", type=Types.Bool, default=False),
        Attribute("length", "buffer length, e.g. 128K (-l)"),
        Attribute("bind", "local address to send from (-B)"),
    )
    _required = ("server",)

    def _words(self) -> list[str]:
        words = ["-c", self.get("server"), *_flags(self, (
            ("port", "-p"), ("duration", "-t"), ("omit", "-O"), ("bandwidth", "-b"), ("parallel", "-P"),
            ("reverse", "-R"), ("length", "-l"), ("bind", "-B"), ("json", "-J"), ("interval", "-i"),
            ("forceFlush", "--forceflush"),
        ))]
        if self.get("protocol") == "udp":
            words.append("-u")
        return words

    async def do_run(self) -> None:
        await super().do_run()
        if self.get("json") and self.trace_enabled("stdout"):
            error = _iperf3_json_error(self._local_path("stdout"))  # collected: a small JSON file
            if error:
                raise Iperf3Error(self.get("command"), error, self.node.executor.where)


#: tcpdump's flags beyond the capture's own, as (attribute, NEPI's name, flag, type, help).
#: Those that only change how packets are printed matter when ``writePcap`` is False.
_TCPDUMP_FLAGS = (
    ("bufferSize", "B", "-B", Types.Integer, "capture buffer of the operating system, in KiB (-B)"),
    ("filterFile", "F", "-F", Types.String, "file on the host holding the filter expression (-F)"),
    ("monitorMode", "I", "-I", Types.Bool, "put a Wi-Fi interface in monitor mode (-I)"),
    ("timestampType", "j", "-j", Types.String, "time stamp type of the capture: pcap-tstamp-type(7) (-j)"),
    ("lineBuffered", "l", "-l", Types.Bool, "printed: line-buffered standard output (-l)"),
    ("ascii", "A", "-A", Types.Bool, "printed: each packet in ASCII (-A)"),
    ("asdot", "b", "-b", Types.Bool, "printed: AS numbers of BGP packets in ASDOT notation (-b)"),
    ("linkHeader", "e", "-e", Types.Bool, "printed: the link-level header on each line (-e)"),
    ("noChecksum", "K", "-K", Types.Bool, "printed: do not verify IP, TCP or UDP checksums (-K)"),
    ("noDomain", "N", "-N", Types.Bool, "printed: host names without their domain (-N)"),
    ("absoluteSequence", "S", "-S", Types.Bool, "printed: absolute TCP sequence numbers (-S)"),
    ("packetType", "T", "-T", Types.String, "printed: interpret the packets as this type, e.g. vxlan (-T)"),
    ("noTimestamp", "t", "-t", Types.Bool, "printed: no timestamp on each line (-t)"),
    ("epochTimestamp", "tt", "-tt", Types.Bool, "printed: seconds since the epoch on each line (-tt)"),
    ("deltaTimestamp", "ttt", "-ttt", Types.Bool, "printed: time since the previous line (-ttt)"),
    ("dateTimestamp", "tttt", "-tttt", Types.Bool, "printed: date and time on each line (-tttt)"),
    ("sinceFirstTimestamp", "ttttt", "-ttttt", Types.Bool, "printed: time since the first line (-ttttt)"),
    ("verbose", "v", "-v", Types.Bool, "printed: more detail (-v)"),
    ("moreVerbose", "vv", "-vv", Types.Bool, "printed: even more detail (-vv)"),
    ("mostVerbose", "vvv", "-vvv", Types.Bool, "printed: the most detail (-vvv)"),
)


def _check_pcap_file(rm: Application, old: Any, new: Any) -> Any:
    """``pcapFile`` is one file name in ``${RUN_HOME}``, not one of the other traces' or inputs'."""
    if new is None:
        return new
    try:
        check_name(new, "capture file name")
    except UnsafeNameError as exc:
        raise AttributeValueError(rm.guid, rm._rtype, "pcapFile", new, str(exc)) from None
    if new != "pcap" and (new in rm._trace_table or new in NOT_TRACES):
        raise AttributeValueError(rm.guid, rm._rtype, "pcapFile", new,
                                  f"{new!r} is already the name of another trace or input of the capture")
    return new


class Tcpdump(_Tool):
    """``tcpdump`` writing packets to the ``pcap`` trace; STARTED once it captures.

    Needs the capture privilege (root).  Stop it to end the capture: SIGTERM makes
    tcpdump flush the file and exit cleanly (STOPPED).  With ``writePcap`` False it
    prints the packets to the ``stdout`` trace instead, as NEPI's tcpdump did without
    ``-w``, line by line (``-l``, so nothing is lost if it has to be killed at stop);
    the ``pcap`` trace is then absent.  ``pcapFile`` names the capture file in
    ``${RUN_HOME}`` (default ``pcap``, the declared trace); any other name is read as
    the trace of that name (a trace by file name, collected with the others), and the
    ``pcap`` trace is then absent.

    NEPI's ``w`` is the capture file's name: ``ec.set(dump, "w", "custom_output")``
    sets ``pcapFile`` (and ``writePcap``, so the capture is written), then
    ``ec.trace(dump, "custom_output")`` reads it.  ``w`` given ``True`` or ``False`` (or
    the words true/false, yes/no, on/off, 1/0), as nepi_lab's scripts did, sets
    ``writePcap`` instead and leaves the name alone.  Read back, ``w`` is ``pcapFile``.

    NEPI's other one-letter names are aliases (``i``, ``s``, ``c``, ``n``, ``U``,
    ``expression`` and those of ``_TCPDUMP_FLAGS``).  NEPI's ``C`` and ``G`` (file
    rotation) are left out: they would split the one ``pcap`` trace into files;
    ``d``/``dd``/``ddd``/``D`` are too: they print and exit without capturing
    (run ``tcpdump -D`` with the node's ``run`` instead).
    """

    _rtype = "linux::Tcpdump"
    _help = "tcpdump capture into the pcap trace; STARTED once capturing. Needs root."
    _attributes = (
        Attribute("depends", "the tool's command, checked on the host", default="tcpdump",
                  flags=Flags.NoWrite),
        Attribute("interface", "interface to capture on (-i)", default="any"),
        Attribute("filter", "capture filter expression, e.g. 'icmp and host 10.0.0.1'"),
        Attribute("snapLength", "bytes kept per packet (-s; 0: all)", type=Types.Integer, range=(0, 262144)),
        Attribute("count", "exit after this many packets (-c)", type=Types.Integer, range=(1, None)),
        Attribute("packetBuffered", "write each packet to the file at once (-U)", type=Types.Bool,
                  default=True),
        Attribute("immediateMode", "deliver packets as they arrive, so stopping loses none "
                  "(--immediate-mode)", type=Types.Bool, default=True),
        Attribute("numeric", "no name lookups (-n)", type=Types.Bool, default=True),
        Attribute("writePcap", "write the packets to the capture file, pcapFile (-w); False: print "
                  "them to the stdout trace", type=Types.Bool, default=True),
        Attribute("pcapFile", "name of the capture file in ${RUN_HOME}, read as the trace of that name "
                  "(NEPI's w; the default is the pcap trace)", default="pcap", set_hook=_check_pcap_file),
        *(Attribute(name, text, type=kind, default=False if kind is Types.Bool else None)
          for name, _, _, kind, text in _TCPDUMP_FLAGS),
    )
    _aliases = (
        Alias("i", "interface"), Alias("s", "snapLength"), Alias("c", "count"), Alias("n", "numeric"),
        Alias("U", "packetBuffered"), Alias("expression", "filter"),
        Alias("w", "pcapFile", "NEPI's name; True/False set writePcap"),
        *(Alias(nepi, name) for name, nepi, _, _, _ in _TCPDUMP_FLAGS),
    )
    _traces = (Trace("pcap", "the captured packets (pcap format)", enabled=True),)
    _ready_timeout = 10.0

    def set(self, name: str, value: Any, *, internal: bool = False) -> Any:
        """Set an attribute; NEPI's ``w`` takes a file name (``pcapFile``, and
        ``writePcap`` becomes True) or a boolean (``writePcap``): see the class docstring."""
        if name == "w":
            flag = _flag(value)
            if flag is not None:
                return super().set("writePcap", flag, internal=internal)
            stored = super().set("pcapFile", value, internal=internal)
            if stored is not None:
                super().set("writePcap", True, internal=internal)
            return stored
        return super().set(name, value, internal=internal)

    def _words(self) -> list[str]:
        return _flags(self, (
            ("interface", "-i"), ("snapLength", "-s"), ("count", "-c"), ("packetBuffered", "-U"),
            ("immediateMode", "--immediate-mode"), ("numeric", "-n"),
            *((name, flag) for name, _, flag, _, _ in _TCPDUMP_FLAGS),
        ))

    def _compose(self) -> str:
        command = super()._compose()
        if self.get("writePcap"):
            # the folder is named through the shell variable, which the shell quotes itself; the
            # file name is a safe one (letters, digits, '_', '.', '+', '-': see _check_pcap_file)
            command += f' -w "${{APP_HOME}}/{self.get("pcapFile")}"'
        elif not self.get("lineBuffered"):
            # printed packets reach the trace line by line: tcpdump may be killed at the end of
            # the stop grace period, and its stdout buffer would be lost with it
            command += " -l"
        if self.get("filter"):
            command += " " + shlex.quote(self.get("filter"))
        return command

    async def _until_ready(self) -> None:
        # tcpdump says "listening on <interface>" once the capture is open
        executor = self.node.executor
        stderr = self.host_path("stderr")

        async def listening() -> bool:
            return "listening on" in await executor.tail(stderr, 4096)

        await self._probe(listening)
