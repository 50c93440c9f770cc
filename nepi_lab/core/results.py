"""The run directory: ``<local_dir>/<exp_id>/<run_id>/``.

Layout (format version :data:`RUN_FORMAT`)::

    <run_id>/
        experiment.json      the description: format, version, events_format, ids,
                             controller state, types (declared attributes with
                             defaults, traces, base type names), resources
                             (set attribute values, connections, enabled traces),
                             conditions, failures; rewritten atomically at creation,
                             each deploy, release and shutdown
        events.jsonl         one JSON object per state change, appended as it happens:
                             {"time", "guid", "type", "from", "to", "detail"}
        <guid>-<type>/       one folder per resource that produced traces
                             ("3-linux.Application"), one file per trace

Nothing else is needed to read a run back later, on another machine.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import tempfile
from typing import Any

#: Version of the run-directory format.
RUN_FORMAT = 1
DESCRIPTION = "experiment.json"
EVENTS = "events.jsonl"
RESULTS_ENV = "NEPI_LAB_RESULTS"


def default_local_dir() -> str:
    """``$NEPI_LAB_RESULTS`` if set, else ``<system temp dir>/nepi_lab-results``.

    (Not ``<temp>/nepi_lab``: a folder named like the package in the directory Python
    starts in would shadow the package itself.)
    """
    return os.environ.get(RESULTS_ENV) or os.path.join(tempfile.gettempdir(), "nepi_lab-results")


def new_run_id() -> str:
    """NEPI's run id: the creation time as 20 digits, ``YYYYmmddHHMMSSffffff``."""
    return _dt.datetime.now().strftime("%Y%m%d%H%M%S%f")


def make_run_dir(local_dir: str, exp_id: str) -> tuple[str, str]:
    """Create a fresh run directory; returns ``(run_id, path)``.

    Two controllers created in the same microsecond still get distinct runs.
    """
    exp_dir = os.path.join(local_dir, exp_id)
    os.makedirs(exp_dir, exist_ok=True)
    while True:
        run_id = new_run_id()
        path = os.path.join(exp_dir, run_id)
        try:
            os.mkdir(path)
            return run_id, path
        except FileExistsError:
            continue


def write_json_atomic(path: str, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` so that a reader never sees half a file."""
    tmp = f"{path}.tmp"
    text = json.dumps(data, separators=(",", ":"), default=str)  # one C-encoder pass
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:  # a full disk: the old file stays whole, and no half-written copy is left
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
