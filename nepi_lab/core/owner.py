"""Which process owns a run, and whether it still lives.

Whatever a run leaves on this machine or on its hosts (network namespaces, processes,
folders) is recorded with its *owner*: the process that runs the controller, named by
its pid and its start time.  A pid alone is not enough, since the kernel reuses pids;
the pair names one process for as long as the machine runs.  ``nepi-lab cleanup``
leaves alone what a live owner holds and takes care of what a dead one left.

This is the one place that notion lives: every back end that records leftovers asks
:func:`is_alive`.

Example
-------
>>> record = this_process()
>>> is_alive(record)
True
>>> is_alive({"pid": record["pid"], "start": -1})   # same pid, another process
False
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any


def process_start(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot), None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    try:  # the command name, in parentheses, may itself hold spaces and parentheses
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (IndexError, ValueError):
        return None


def this_process() -> dict[str, Any]:
    """The owner record of the calling process: ``{"pid": ..., "start": ...}``."""
    pid = os.getpid()
    return {"pid": pid, "start": process_start(pid)}


def is_alive(record: Mapping[str, Any]) -> bool:
    """Whether the process an owner record names (``pid`` and ``start``) still runs."""
    pid = record.get("pid")
    start = record.get("start")
    return isinstance(pid, int) and pid > 0 and start is not None and process_start(pid) == start
