"""Link properties as kernel configuration: rate (tc tbf or htb), delay (tc netem), loss (nftables).

Each end of a ``netns::Link`` shapes what it *sends* (its egress qdisc) and drops
what it *receives* (an nftables ``netdev`` ingress chain bound to the device), so
every property holds in both directions, as netem on both ends would:

rate
    ``tbf`` (default): ``qdisc replace dev X root handle 1: tbf rate R burst B latency 50ms``.
    ``htb``: a root ``htb`` whose one class ``1:1`` has ``rate R ceil R``.
delay
    ``netem delay D`` at the root, with the ``tbf`` as its child, or, with ``htb``,
    as the leaf of class ``1:1``.  Kernels built without netem (this project's CI
    machines) refuse it: the link then fails at deploy with
    :class:`NetemUnavailableError`, never silently unshaped.
loss
    ``numgen random mod 1000000 < p * 10000 drop`` on IPv4 and IPv6 packets arriving on
    the device, in table ``netdev nepi_lab_<link guid>``.  Neighbour discovery (ARP,
    IPv6 neighbour solicitations and advertisements) passes, so that losses are those
    of the traffic, not of address resolution.  A
    ping crossing a link with ``loss=p`` both ways is lost with probability
    ``1 - (1 - p/100)**2``.

tc runs as ``tc -n <namespace> -batch -`` and nft as ``ip netns exec <namespace> nft -f -``:
one process per end and tool, only for links that set these properties.
"""

from __future__ import annotations

import re

from ...core.errors import CommandError

#: tc's rate units (bits per second); ``bps`` units are bytes per second, as in tc.
_RATE_UNITS = {
    "bit": 1, "kbit": 10**3, "mbit": 10**6, "gbit": 10**9, "tbit": 10**12,
    "bps": 8, "kbps": 8 * 10**3, "mbps": 8 * 10**6, "gbps": 8 * 10**9, "tbps": 8 * 10**12,
}
_RATE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]*)\s*")

#: tbf's queue: packets wait at most this long before being dropped.
TBF_LATENCY = "50ms"
#: Smallest token bucket: one 64 KiB GSO segment must fit, or tbf splits it.
MIN_BURST = 32 * 1024
#: Loss probabilities are applied in millionths.
LOSS_SCALE = 1_000_000


def parse_rate(value: object) -> int:
    """Bits per second of a rate: ``"20mbit"``, ``"1.5gbit"``, ``"500kbit"``, or a number (bit/s).

    Units are tc's: ``kbit mbit gbit tbit`` are bits, ``kbps mbps ...`` bytes per second.

    Example
    -------
    >>> parse_rate("20mbit"), parse_rate("1.5gbit"), parse_rate(64000)
    (20000000, 1500000000, 64000)
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        bits = float(value)
    elif isinstance(value, str) and (match := _RATE.fullmatch(value)):
        unit = match.group(2).lower() or "bit"
        if unit not in _RATE_UNITS:
            raise ValueError(f"unknown rate unit {match.group(2)!r}; use one of {', '.join(_RATE_UNITS)}")
        bits = float(match.group(1)) * _RATE_UNITS[unit]
    else:
        raise ValueError("a rate is a number and a unit, e.g. '20mbit', '1gbit', '500kbit'")
    if not 8 <= bits < 2**63:
        raise ValueError("a rate must be at least 8 bit/s")
    return int(bits)


def burst_for(rate: int) -> int:
    """A token bucket big enough to reach ``rate``: 10 ms worth of it, at least :data:`MIN_BURST`."""
    return max(MIN_BURST, rate // 8 // 100)


def qdisc_batch(ifname: str, rate: int | None, shaper: str, burst: int | None,
                delay: float | None) -> list[str]:
    """``tc -batch`` lines that give ``ifname`` its rate and delay."""
    if rate is None and not delay:
        return []
    dev = f"dev {ifname}"
    netem = f"netem delay {delay * 1e6:.0f}us" if delay else ""
    if rate is None:
        return [f"qdisc replace {dev} root handle 1: {netem}"]
    burst = burst or burst_for(rate)
    if shaper == "htb":
        quantum = min(200_000, max(1514, rate // 8 // 10))
        lines = [f"qdisc replace {dev} root handle 1: htb default 1",
                 f"class replace {dev} parent 1: classid 1:1 htb rate {rate}bit ceil {rate}bit "
                 f"burst {burst} cburst {burst} quantum {quantum}"]
        if netem:
            lines.append(f"qdisc replace {dev} parent 1:1 handle 10: {netem}")
        return lines
    tbf = f"tbf rate {rate}bit burst {burst} latency {TBF_LATENCY}"
    if netem:
        return [f"qdisc replace {dev} root handle 1: {netem}",
                f"qdisc replace {dev} parent 1:1 handle 10: {tbf}"]
    return [f"qdisc replace {dev} root handle 1: {tbf}"]


def loss_table(guid: int) -> str:
    """The nftables table that holds one link's loss rules (in each end's namespace)."""
    return f"nepi_lab_{guid}"


def loss_ruleset(guid: int, ifname: str, loss: float) -> str:
    """``nft -f`` input dropping ``loss`` percent of the IP packets arriving on ``ifname``."""
    threshold = round(loss / 100 * LOSS_SCALE)
    table = loss_table(guid)
    return (
        f"table netdev {table} {{\n"
        f"  chain loss {{\n"
        f"    type filter hook ingress device \"{ifname}\" priority -500; policy accept;\n"
        f"    icmpv6 type {{ nd-neighbor-solicit, nd-neighbor-advert }} accept\n"
        f"    meta protocol {{ ip, ip6 }} numgen random mod {LOSS_SCALE} < {threshold} counter drop\n"
        f"  }}\n"
        f"}}\n"
    )


class NetemUnavailableError(CommandError):
    """A link asks for ``delay`` and this kernel has no netem qdisc.

    Carries the tc command, its status and stderr as any :class:`CommandError`, and
    ``guid``: the link.
    """

    def __init__(self, guid: int, delay: str, command: str, returncode: int | None, stderr_tail: str,
                 where: str) -> None:
        super().__init__(command, returncode, stderr_tail, where)
        self.guid = guid
        self.args = (
            f"netns::Link {guid}: delay {delay!r} needs the netem qdisc, which this kernel does not have "
            f"(tc said: {(stderr_tail.strip().splitlines() or ['nothing'])[0][:200]}). Remove 'delay' from "
            f"the link, or run "
            f"on a kernel built with CONFIG_NET_SCH_NETEM; rate and loss work without it.",
        )
