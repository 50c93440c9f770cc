"""What a run placed on its hosts, written down for ``nepi-lab cleanup``.

A run that ends in order stops its processes and collects its traces itself.  One
that cannot (its controlling script was ``kill -9``-ed, a host stayed unreachable at
release) leaves them to ``nepi-lab cleanup``, which finds them through two files:

``<run_dir>/hosts.json``
    The run's hosts, one entry per node: how to reach it (host, port, user, the paths
    of the identity and known_hosts files, never a secret), its folders (``home``,
    ``run_home``, ``node_home``), the run's cgroup folder on this machine, whether its
    folders are removed after collection (``clean_experiment``), and its ``state``:

    ``in use``       the run holds it (set when the node deploys);
    ``released``     released in order: nothing of the run is left there;
    ``unreachable``  release could not reach it: ``left`` lists what may still run and
                     lie there (process groups with their commands and applications,
                     folders), ``error`` says why;
    ``cleaned``      ``nepi-lab cleanup`` stopped what was left and collected the traces.

    Rewritten atomically after each change (changes made together, in one write),
    before the change's node goes on.  Format ``nepi_lab.hosts`` version 1.
``<state dir>/runs/<exp_id>.<run_id>.json``
    An index entry: the run's ids, its run directory and its *owner* (the controlling
    process's pid and start time, see :mod:`nepi_lab.core.owner`).  It exists while
    some host may hold something of the run; ``nepi-lab cleanup`` reads every entry.
    The state dir is ``$NEPI_LAB_STATE``, else ``$XDG_STATE_HOME/nepi_lab``, else
    ``~/.local/state/nepi_lab``: it survives a reboot, as remote processes do.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

from ...core.owner import this_process
from ...core.results import write_json_atomic

if TYPE_CHECKING:
    from ...core.controller import ExperimentController
    from .node import Node

log = logging.getLogger("nepi_lab")

#: Overrides where the index of runs is kept.
STATE_ENV = "NEPI_LAB_STATE"
#: The file in the run directory.
HOSTS_FILE = "hosts.json"
HOSTS_FORMAT = "nepi_lab.hosts"
HOSTS_VERSION = 1

IN_USE, RELEASED, UNREACHABLE, CLEANED = "in use", "released", "unreachable", "cleaned"
#: States of a host entry that may still hold something of the run.
PENDING = frozenset({IN_USE, UNREACHABLE})


def state_dir() -> str:
    """Where the index of runs lives (see the module docstring)."""
    explicit = os.environ.get(STATE_ENV)
    if explicit:
        return explicit
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "nepi_lab")


def index_dir() -> str:
    return os.path.join(state_dir(), "runs")


def index_path(exp_id: str, run_id: str) -> str:
    return os.path.join(index_dir(), f"{exp_id}.{run_id}.json")


def read_json(path: str) -> dict[str, Any] | None:
    """The JSON object in ``path``; None if missing or unreadable (a damaged file is
    logged, never raised: cleanup goes on with the other runs)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("cannot read %s: %s", path, exc)
        return None
    return data if isinstance(data, dict) else None


def read_index() -> list[tuple[str, dict[str, Any]]]:
    """Every index entry: ``(path, entry)``, oldest run first."""
    try:
        names = sorted(os.listdir(index_dir()))
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        if name.endswith(".json"):
            path = os.path.join(index_dir(), name)
            entry = read_json(path)
            if entry is not None:
                found.append((path, entry))
    return found


def write_hosts(run_dir: str, hosts: dict[str, Any]) -> None:
    write_json_atomic(os.path.join(run_dir, HOSTS_FILE), hosts)


def read_hosts(run_dir: str) -> dict[str, Any] | None:
    return read_json(os.path.join(run_dir, HOSTS_FILE))


class RunRecord:
    """The two files of one controller's run; its methods are called by the nodes."""

    def __init__(self, ec: ExperimentController) -> None:
        self.exp_id = ec.exp_id
        self.run_id = ec.run_id
        self.run_dir = ec.run_dir
        self.index = index_path(self.exp_id, self.run_id)
        self.hosts: dict[str, dict[str, Any]] = {}
        self._indexed = False
        self._lock = threading.Lock()
        self._waiting: asyncio.Future[None] | None = None  # the write the changes so far wait for

    def __repr__(self) -> str:
        return f"<RunRecord {self.exp_id}/{self.run_id} {len(self.hosts)} hosts>"

    # -- what the nodes say --------------------------------------------------------------

    async def in_use(self, node: Node, description: dict[str, Any]) -> None:
        """Node ``node`` deployed: record its host before anything runs there (returns once
        ``hosts.json`` says so)."""
        with self._lock:
            self.hosts[str(node.guid)] = {**description, "state": IN_USE, "since": time.time()}
        await self._saved()

    async def released(self, node: Node) -> None:
        """Node ``node`` was released in order: nothing of the run is left there."""
        with self._lock:
            entry = self.hosts.get(str(node.guid))
            if entry is None:
                return
            entry.update(state=RELEASED, since=time.time())
            entry.pop("left", None)
            entry.pop("error", None)
        await self._saved()

    async def unreachable(self, node: Node, left: dict[str, Any], error: str) -> None:
        """Release could not reach node ``node``'s host: ``left`` is what may remain there."""
        with self._lock:
            entry = self.hosts.get(str(node.guid))
            if entry is None:
                return
            entry.update(state=UNREACHABLE, since=time.time(), left=left, error=error)
        await self._saved()

    @property
    def path(self) -> str:
        """The ``hosts.json`` of the run."""
        return os.path.join(self.run_dir, HOSTS_FILE)

    # -- the files -----------------------------------------------------------------------

    async def _saved(self) -> None:
        """Return once the files say what :attr:`hosts` says now.

        Nodes that change their entries in the same turn of the loop (a deploy or a
        release of many nodes at once) share one write, made once their turn is over:
        rewriting the whole file for each of them costs O(nodes²) (8.9 s for 1,000
        nodes).  A caller cancelled meanwhile does not cancel the write.
        """
        loop = asyncio.get_running_loop()
        waiting = self._waiting
        if waiting is None or waiting.get_loop() is not loop:  # (one of a loop stopped for good)
            waiting = self._waiting = loop.create_future()
            loop.call_soon(self._write_waiting, waiting)
        await asyncio.shield(waiting)

    def _write_waiting(self, waiting: asyncio.Future[None]) -> None:
        # a change from now on needs a write of its own: this one may have missed it
        if self._waiting is waiting:
            self._waiting = None
        try:
            with self._lock:
                self._save()
        finally:
            if not waiting.done():
                waiting.set_result(None)

    def _save(self) -> None:
        pending = any(entry["state"] in PENDING for entry in self.hosts.values())
        try:
            write_hosts(self.run_dir, {"format": HOSTS_FORMAT, "version": HOSTS_VERSION,
                                       "exp_id": self.exp_id, "run_id": self.run_id, "hosts": self.hosts})
        except OSError as exc:
            log.warning("cannot record the hosts of run %s/%s in %s: %s", self.exp_id, self.run_id,
                        self.run_dir, exc)
        if pending and not self._indexed:
            try:
                os.makedirs(index_dir(), exist_ok=True)
                write_json_atomic(self.index, {
                    "exp_id": self.exp_id, "run_id": self.run_id, "run_dir": self.run_dir,
                    "owner": this_process(), "created": time.time()})
                self._indexed = True
            except OSError as exc:
                log.warning("cannot index run %s/%s in %s (nepi-lab cleanup will not find it): %s",
                            self.exp_id, self.run_id, index_dir(), exc)
        elif not pending and self._indexed:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.index)
            self._indexed = False


_records: weakref.WeakKeyDictionary[ExperimentController, RunRecord] = weakref.WeakKeyDictionary()
_records_lock = threading.Lock()


def run_record(ec: ExperimentController) -> RunRecord:
    """The record of ``ec``'s run (made on first use)."""
    with _records_lock:
        record = _records.get(ec)
        if record is None:
            record = _records[ec] = RunRecord(ec)
        return record
