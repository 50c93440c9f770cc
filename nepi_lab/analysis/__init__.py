"""Analysis: traces, events and whole runs as pandas DataFrames; plots.

The layer above the resources: it reads a live :class:`~nepi_lab.ExperimentController`
or a run directory alone (no controller, no hosts, no resource classes), and gives
tidy frames that concatenate across resources and runs.

=======================  ===========================================================
:func:`trace_frame`      one trace, parsed (``ping``, ``iperf3``, ``tcpdump``, ...)
:func:`events_frame`     every state change
:func:`resources_frame`  one row per resource: state, failure, state times, attributes
:func:`flows_frame`      one row per flow of an ns-3 simulation (FlowMonitor)
:func:`sweep_frame`      one row per run of a sweep: parameters, state, failure, metrics
:func:`sweep_summary`    one row per point of a sweep: mean, std, count, 95 % CI
:func:`load_run`         a run directory as a :class:`Run`
:func:`load_runs`        every run of an experiment, as a :class:`RunSet`
:func:`register_parser`  add a parser; :func:`parser_names` lists them
:func:`plot_timeline`    the run's resources over time, coloured by state
:func:`plot_rtt`         ping round-trip times over time
:func:`plot_throughput`  iperf3 throughput over time, per stream
:func:`plot_sweep`       a sweep's metric against a parameter, 95 % CI error bars
=======================  ===========================================================

pandas is imported by the functions that build frames and matplotlib by those that
draw, never at import: ``import nepi_lab.analysis`` stays light.

Example
-------
>>> from nepi_lab.analysis import load_run, trace_frame, plot_rtt   # doctest: +SKIP
>>> run = load_run(ec.run_dir)                                      # doctest: +SKIP
>>> trace_frame(run, ping, "stdout").rtt_ms.mean()                  # doctest: +SKIP
>>> plot_rtt(run).figure.savefig("rtt.png")                         # doctest: +SKIP
"""

from __future__ import annotations

from ._iperf3 import parse_iperf3
from ._ns3 import flows_frame, parse_ns3_flows, parse_packet_sink
from ._ping import parse_ping
from ._tcpdump import parse_tcpdump
from .errors import RunDirectoryError, RunFormatError, TraceNotFoundError, UnknownParserError
from .parsers import (
    default_parser,
    default_parsers,
    get_parser,
    parse_csv,
    parse_lines,
    parser_names,
    register_parser,
    set_default_parser,
    unregister_parser,
)
from .plots import STATE_COLOURS, plot_rtt, plot_sweep, plot_throughput, plot_timeline
from .run import (
    SUPPORTED_VERSIONS,
    Run,
    RunSet,
    events_frame,
    load_run,
    load_runs,
    resources_frame,
    trace_frame,
)
from .sweep import sweep_frame, sweep_summary

__all__ = [
    "Run",
    "RunDirectoryError",
    "RunFormatError",
    "RunSet",
    "STATE_COLOURS",
    "SUPPORTED_VERSIONS",
    "TraceNotFoundError",
    "UnknownParserError",
    "default_parser",
    "default_parsers",
    "events_frame",
    "flows_frame",
    "get_parser",
    "load_run",
    "load_runs",
    "parse_csv",
    "parse_iperf3",
    "parse_lines",
    "parse_ns3_flows",
    "parse_packet_sink",
    "parse_ping",
    "parse_tcpdump",
    "parser_names",
    "plot_rtt",
    "plot_sweep",
    "plot_throughput",
    "plot_timeline",
    "register_parser",
    "resources_frame",
    "set_default_parser",
    "sweep_frame",
    "sweep_summary",
    "trace_frame",
    "unregister_parser",
]
