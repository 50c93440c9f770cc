"""Parsers of the ns-3 back end's own traces, and :func:`flows_frame`.

``packet_sink``
    ``ns3::PacketSink``'s ``rx`` trace: one line per packet received, ``<simulated
    seconds> <bytes> <source address> <source port>`` -> columns ``time_s``,
    ``bytes``, ``source``, ``source_port``.
``ns3_flows``
    ``ns3::Simulation``'s ``flows`` trace: FlowMonitor's statistics per flow, CSV with
    times in integer nanoseconds -> the columns of :func:`flows_frame`.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from ._common import as_bytes, finish, text_dtype

if TYPE_CHECKING:
    import pandas as pd

#: IP protocol numbers FlowMonitor's Ipv4FlowClassifier sees, by name.
_PROTOCOLS = {6: "tcp", 17: "udp"}

#: The columns of a flows frame, after the run's identity, in order.
FLOW_COLUMNS = (
    "flow_id", "protocol", "source", "source_port", "destination", "destination_port",
    "tx_packets", "tx_bytes", "rx_packets", "rx_bytes", "lost_packets", "dropped_packets",
    "loss_ratio", "delay_sum_s", "delay_mean_ms", "jitter_sum_s", "jitter_mean_ms", "max_delay_ms",
    "first_tx_s", "last_tx_s", "first_rx_s", "last_rx_s", "throughput_bps",
)


def _read_csv(data: str | bytes, parser: str, names: list[str] | None, expected: tuple[str, ...],
              **options: Any) -> tuple[pd.DataFrame | None, int, list[str]]:
    """``pandas.read_csv`` with bad lines counted; None when nothing could be read."""
    import warnings

    import pandas as pd

    raw = as_bytes(data)
    if not raw.strip():
        return None, 0, []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", pd.errors.ParserWarning)
        try:
            frame = pd.read_csv(io.BytesIO(raw), names=names, on_bad_lines="warn",
                                encoding_errors="replace", **options)
        except (pd.errors.ParserError, ValueError) as exc:
            return None, raw.count(b"\n") or 1, [f"line ?: {exc}"]
    bad = len(caught)
    if any(c not in frame.columns for c in expected):
        return None, raw.count(b"\n") or 1, [f"line 1: not a {parser} trace (columns {list(frame.columns)})"]
    return frame, bad, [f"line ?: {w.message}" for w in caught[:5]]


def parse_packet_sink(data: str | bytes) -> pd.DataFrame:
    """``ns3::PacketSink``'s ``rx`` trace: ``time_s``, ``bytes``, ``source``, ``source_port``
    (one row per packet received; ``attrs["total_bytes"]`` their sum)."""
    import pandas as pd

    columns = ["time_s", "bytes", "source", "source_port"]
    frame, bad, examples = _read_csv(data, "packet_sink", columns, tuple(columns), sep=" ",
                                     dtype={"source": str})
    if frame is None:
        frame = pd.DataFrame({"time_s": pd.Series(dtype="float64"), "bytes": pd.Series(dtype="int64"),
                              "source": pd.Series(dtype=text_dtype()),
                              "source_port": pd.Series(dtype="int64")})
    else:
        numbers = {c: pd.to_numeric(frame[c], errors="coerce") for c in ("time_s", "bytes", "source_port")}
        good = numbers["time_s"].notna() & numbers["bytes"].notna() & numbers["source_port"].notna()
        bad += int((~good).sum())
        frame = pd.DataFrame({"time_s": numbers["time_s"][good].astype("float64"),
                              "bytes": numbers["bytes"][good].astype("int64"),
                              "source": frame["source"][good].astype(text_dtype()),
                              "source_port": numbers["source_port"][good].astype("int64")})
        frame = frame.reset_index(drop=True)
    return finish(frame, "packet_sink", bad, examples, total_bytes=int(frame["bytes"].sum()))


def parse_ns3_flows(data: str | bytes) -> pd.DataFrame:
    """``ns3::Simulation``'s ``flows`` trace (FlowMonitor per flow) -> :data:`FLOW_COLUMNS`.

    Times become seconds (``*_s``) or milliseconds (``*_ms``); ``delay_mean_ms`` is
    the delay sum over the packets received, ``jitter_mean_ms`` the jitter sum over
    the packets received but the first (FlowMonitor's definitions), ``loss_ratio``
    lost packets over packets sent, ``throughput_bps`` the IP bytes received, in bits,
    over the time from the first packet sent to the last received.  A flow that
    received nothing has NaN means and throughput.
    """
    import numpy as np
    import pandas as pd

    needed = ("flow_id", "protocol", "source", "destination", "tx_packets", "rx_packets", "rx_bytes",
              "delay_sum_ns", "jitter_sum_ns", "first_tx_ns", "last_rx_ns")
    raw, bad, examples = _read_csv(data, "ns3_flows", None, needed,
                                   dtype={"source": str, "destination": str})
    if raw is None:
        empty = pd.DataFrame({c: pd.Series(dtype="float64") for c in FLOW_COLUMNS})
        return finish(empty, "ns3_flows", bad, examples)
    numeric = [c for c in raw.columns if c not in ("source", "destination")]
    for column in numeric:
        raw[column] = pd.to_numeric(raw[column], errors="coerce")
    good = raw[numeric].notna().all(axis=1) & raw["source"].notna() & raw["destination"].notna()
    bad += int((~good).sum())
    raw = raw[good].reset_index(drop=True)
    ns = 1e-9
    rx = raw["rx_packets"].astype("float64")
    frame = pd.DataFrame({
        "flow_id": raw["flow_id"].astype("int64"),
        "protocol": raw["protocol"].map(lambda p: _PROTOCOLS.get(int(p), str(p))).astype(text_dtype()),
        "source": raw["source"].astype(text_dtype()),
        "source_port": raw["source_port"].astype("int64"),
        "destination": raw["destination"].astype(text_dtype()),
        "destination_port": raw["destination_port"].astype("int64"),
        "tx_packets": raw["tx_packets"].astype("int64"),
        "tx_bytes": raw["tx_bytes"].astype("int64"),
        "rx_packets": raw["rx_packets"].astype("int64"),
        "rx_bytes": raw["rx_bytes"].astype("int64"),
        "lost_packets": raw["lost_packets"].astype("int64"),
        "dropped_packets": raw["dropped_packets"].astype("int64"),
        "loss_ratio": raw["lost_packets"] / raw["tx_packets"].where(raw["tx_packets"] > 0),
        "delay_sum_s": raw["delay_sum_ns"] * ns,
        "delay_mean_ms": (raw["delay_sum_ns"] * 1e-6 / rx.where(rx > 0)),
        "jitter_sum_s": raw["jitter_sum_ns"] * ns,
        "jitter_mean_ms": (raw["jitter_sum_ns"] * 1e-6 / (rx - 1).where(rx > 1)),
        "max_delay_ms": raw["max_delay_ns"] * 1e-6,
        "first_tx_s": raw["first_tx_ns"] * ns,
        "last_tx_s": raw["last_tx_ns"] * ns,
        "first_rx_s": (raw["first_rx_ns"] * ns).where(rx > 0),
        "last_rx_s": (raw["last_rx_ns"] * ns).where(rx > 0),
    })
    span = (frame["last_rx_s"] - frame["first_tx_s"]).where(lambda d: d > 0)
    frame["throughput_bps"] = (frame["rx_bytes"] * 8 / span).astype("float64")
    frame = frame.replace([np.inf, -np.inf], np.nan)
    return finish(frame, "ns3_flows", bad, examples)


def flows_frame(source: Any, sim: int | None = None) -> pd.DataFrame:
    """FlowMonitor's statistics, one row per flow of an ns-3 simulation.

    Parameters
    ----------
    source
        An ExperimentController, a run directory path, a :class:`Run` or a
        :class:`RunSet` (then every run's flows, concatenated).
    sim : int, optional
        The ``ns3::Simulation`` (its guid); None: every simulation of the run that
        collected its ``flows`` trace (``flowMonitor=True``).

    Returns
    -------
    pandas.DataFrame
        ``run_id``, ``simulation`` (its guid), then ``flow_id``, ``protocol`` (``udp``,
        ``tcp``), ``source``, ``source_port``, ``destination``, ``destination_port``,
        ``tx_packets``, ``tx_bytes``, ``rx_packets``, ``rx_bytes`` (IP bytes: headers
        included), ``lost_packets`` (FlowMonitor's: not received within its
        MaxPerHopDelay, 10 s by default, or dropped), ``dropped_packets``,
        ``loss_ratio``, ``delay_sum_s``, ``delay_mean_ms``, ``jitter_sum_s``,
        ``jitter_mean_ms``, ``max_delay_ms``, ``first_tx_s``, ``last_tx_s``,
        ``first_rx_s``, ``last_rx_s``, ``throughput_bps``.  A TCP connection is two
        flows, one per direction.  ICMP (ns3::Ping) is not a flow: ns-3's
        Ipv4FlowClassifier classifies UDP and TCP only.

    Raises
    ------
    TraceNotFoundError
        ``sim`` did not collect flows (set its ``flowMonitor``), or no simulation
        of the run did.

    Example
    -------
    >>> flows_frame(ec)[["protocol", "rx_bytes", "lost_packets", "delay_mean_ms"]]  # doctest: +SKIP
    """
    import pandas as pd

    from .errors import TraceNotFoundError
    from .run import as_runs, trace_frame

    frames = []
    for run in as_runs(source):
        if sim is not None:
            sims = [sim]
        else:
            sims = [g for g in run.guids if run.resource_type(g) == "ns3::Simulation"]
        missing: TraceNotFoundError | None = None
        found = 0
        for guid in sims:
            try:
                frame = trace_frame(run, guid, "flows", parser="ns3_flows")
            except TraceNotFoundError as exc:
                if sim is not None:
                    raise
                missing = missing or exc
                continue
            found += 1
            frames.append(frame.drop(columns=["type", "trace"]).rename(columns={"guid": "simulation"}))
        if not found:
            if missing is not None:
                raise missing
            raise TraceNotFoundError(-1, "ns3::Simulation", "flows",
                                     f"run {run.run_id} has no ns3::Simulation", ["flows"], [])
    if len(frames) == 1:
        return frames[0]
    combined = pd.concat(frames, ignore_index=True)
    examples = [e for f in frames for e in f.attrs.get("malformed_examples", ())][:5]
    combined.attrs = {"parser": "ns3_flows", "malformed": sum(f.attrs.get("malformed", 0) for f in frames),
                      "malformed_examples": examples}
    return combined
