"""A finished run in words, from its run directory alone: what ``nepi-lab demo``,
``nepi-lab run`` and ``nepi-lab show`` print.

Everything here reads the directory through :mod:`nepi_lab.core.run_directory` (no
controller, no pandas), so the table printed at the end of a run is the one
``nepi-lab show`` prints later, on any machine.

Example
-------
>>> from nepi_lab._summary import read_summary, print_table           # doctest: +SKIP
>>> summary = read_summary(ec.run_dir)                                # doctest: +SKIP
>>> print_table(summary)                                              # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections import Counter
from typing import Any, TextIO

from .core.errors import RunDirectoryError
from .core.run_directory import (
    plain_files,
    read_description,
    read_events,
    read_inside,
    resource_folder,
)

#: States that end a resource's run, in the order they are looked for.
END_STATES = ("FINISHED", "FAILED", "STOPPED")
#: How much of a trace is read for its first line.
_HEAD = 4096
#: Width of the "first line of output" column.
OUTPUT_WIDTH = 50


@dataclasses.dataclass(frozen=True)
class ResourceSummary:
    """One resource of a run, as it ended."""

    guid: int
    rtype: str
    name: str  #: the ``name`` attribute, "" if unset
    outcome: str  #: the last state before RELEASED (what it finished as)
    released: bool
    times: dict[str, float]  #: state name -> when it was last entered (epoch seconds)
    ran_for: float | None  #: seconds from STARTED to its end, None if it never ran or still runs
    exit: str  #: the ``exitcode`` trace, else the failure's exit status, else ""
    output: str  #: the first line of ``stdout``, else of ``stderr``
    traces: dict[str, int]  #: trace file collected -> size in bytes
    failure: dict[str, Any] | None  #: the failure record, if it failed


@dataclasses.dataclass(frozen=True)
class RunSummary:
    """A run directory read back: identity, how it ended, one entry per resource."""

    path: str
    exp_id: str
    run_id: str
    ecstate: str
    end: str | None  #: how the run ended: shutdown, exit, signal, interrupted, killed (None: running)
    first_time: float | None
    last_time: float | None
    resources: list[ResourceSummary]
    failures: list[dict[str, Any]]
    damaged_lines: list[str]  #: damaged events.jsonl lines left out

    def outcomes(self) -> Counter[str]:
        """Resources per outcome."""
        return Counter(r.outcome for r in self.resources)


def read_summary(path: str) -> RunSummary:
    """Read a run directory (see :mod:`nepi_lab.core.results`) into a :class:`RunSummary`.

    Damaged ``events.jsonl`` lines are left out and listed (a run whose process died
    while writing stays readable); a damaged ``experiment.json`` is refused.

    Raises
    ------
    RunDirectoryError
        Not a run directory, or a damaged one: the message names the file and place.
    """
    path = os.path.abspath(path)
    description = read_description(path)
    events, damaged = read_events(path, strict=False)
    entries = {r["guid"]: r for r in description["resources"]}
    times: dict[int, dict[str, float]] = {}
    last: dict[int, dict[str, Any]] = {}
    for event in events:
        guid = event["guid"]
        times.setdefault(guid, {})[event["to"]] = event["time"]
        last[guid] = event
        entries.setdefault(guid, {"guid": guid, "type": event["type"]})  # hardRelease: left the description
    failures = {}
    for failure in description["failures"]:
        failures.setdefault(failure.get("guid"), failure)
    resources = []
    for guid in sorted(entries):
        entry = entries[guid]
        final = last.get(guid)
        released = final is not None and final["to"] == "RELEASED"
        if final is None:
            outcome = "NEW"
        elif released:  # the state it was released from: what it ended as
            outcome = final["from"] or "RELEASED"
        else:
            outcome = final["to"]
        stamps = times.get(guid, {})
        folder = resource_folder(guid, entry["type"])
        files = _trace_sizes(path, folder)
        failure = failures.get(guid)
        exit_code = _head(path, folder, "exitcode", files).strip()
        if not exit_code and failure is not None and failure.get("returncode") is not None:
            exit_code = str(failure["returncode"])
        output = (_first_line(_head(path, folder, "stdout", files))
                  or _first_line(_head(path, folder, "stderr", files)))
        name = (entry.get("attributes") or {}).get("name")
        resources.append(ResourceSummary(
            guid=guid, rtype=entry["type"], name=name if isinstance(name, str) else "",
            outcome=outcome, released=released, times=stamps, ran_for=_ran_for(stamps),
            exit=exit_code, output=output, traces=files, failure=failure))
    all_times = [e["time"] for e in events]
    return RunSummary(
        path=path, exp_id=str(description.get("exp_id")), run_id=str(description.get("run_id")),
        ecstate=str(description.get("ecstate")),
        end=description.get("end") if isinstance(description.get("end"), str) else None,
        first_time=min(all_times) if all_times else None, last_time=max(all_times) if all_times else None,
        resources=resources, failures=list(description["failures"]), damaged_lines=damaged)


def _ran_for(stamps: dict[str, float]) -> float | None:
    started = stamps.get("STARTED")
    if started is None:
        return None
    ends = [stamps[s] for s in END_STATES if s in stamps and stamps[s] >= started]
    return min(ends) - started if ends else None


def _trace_sizes(path: str, folder: str) -> dict[str, int]:
    sizes = {}
    for name in plain_files(os.path.join(path, folder)):
        try:
            sizes[name] = os.lstat(os.path.join(path, folder, name)).st_size
        except OSError:
            continue
    return sizes


def _head(path: str, folder: str, trace: str, present: dict[str, int]) -> str:
    """The start of a collected trace, as text ("" if absent or unreadable)."""
    if trace not in present:
        return ""
    try:
        return read_inside(path, folder, trace, limit=_HEAD).decode("utf-8", "replace")
    except (RunDirectoryError, OSError):
        return ""


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def format_seconds(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds:.3f} s"


def print_table(summary: RunSummary, out: TextIO = sys.stdout) -> None:
    """The summary table: guid, name, type, how it ended, how long it ran, exit status,
    first line of output."""
    rows = [(str(r.guid), r.name, r.rtype, r.outcome, format_seconds(r.ran_for), r.exit,
             r.output[:OUTPUT_WIDTH]) for r in summary.resources]
    print_rows(("guid", "name", "type", "ended", "ran for", "exit", "first line of output"), rows, out)


def print_rows(header: tuple[str, ...], rows: list[tuple[str, ...]], out: TextIO = sys.stdout) -> None:
    """Columns aligned on the widest cell, a rule under the header; trailing spaces cut."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print(line.format(*header).rstrip(), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for row in rows:
        print(line.format(*row).rstrip(), file=out)


def print_failures(summary: RunSummary, out: TextIO = sys.stdout) -> None:
    """One paragraph per failure: which resource, in which step, why."""
    names = {r.guid: r.name for r in summary.resources}
    for failure in summary.failures:
        guid = failure.get("guid")
        who = f"{guid} {names.get(guid) or ''}".rstrip()
        critical = "" if failure.get("critical", True) else " (non-critical)"
        print(f"  {who} ({failure.get('rtype')}) failed in {failure.get('step')}{critical}: "
              f"{failure.get('error')}: {failure.get('message')}", file=out)
