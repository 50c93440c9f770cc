"""``nepi-lab cleanup`` for what runs left on their hosts (see :mod:`._records`).

Two kinds of runs need it:

- a *dead* run: its controlling process is gone (``kill -9``, a crash, a lost
  machine) while hosts were still ``in use``;
- a run whose release could not reach a host (``unreachable``), whether its process
  still lives or not.

For each such host, :func:`cleanup_runs` reaches it (this machine, or SSH with the
recorded settings), kills every process carrying the run's marker
(``NEPI_LAB_RUN=<exp_id>/<run_id>/...``; on this machine also everything in the run's
cgroups), copies the traces the host still holds into the run directory
(``<guid>-<type>/<trace>``, as release would have), removes the run's folders there if
the node had ``cleanExperiment``, and marks the host ``cleaned`` in ``hosts.json``.  A
dead run whose ``experiment.json`` recorded no end gets ``"end": "killed"`` and a
``"cleanup"`` entry saying when and what.  A host that still cannot be reached stays
recorded for the next cleanup.  A live run's hosts ``in use`` are never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import posixpath
import re
import time
from typing import Any

from ...core.owner import is_alive
from ...core.results import DESCRIPTION, write_json_atomic
from ...core.traces import check_name
from . import _tracking
from ._records import (
    CLEANED,
    IN_USE,
    PENDING,
    UNREACHABLE,
    index_path,
    read_hosts,
    read_index,
    read_json,
    write_hosts,
)
from .application import written_files
from .node import NEPI_DIR

log = logging.getLogger("nepi_lab")

#: ``end`` written into a dead run's experiment.json.
KILLED = "killed"

_TYPE_NAME = re.compile(r"[A-Za-z0-9_]+::[A-Za-z0-9_]+")


@dataclasses.dataclass
class HostCleanup:
    """What cleanup did on one host of a run."""

    where: str
    node: int
    stopped: int = 0  #: processes killed
    collected: list[str] = dataclasses.field(default_factory=list)  #: traces copied, ``<guid>/<name>``
    error: str | None = None  #: why the host could not be cleaned (it stays recorded)


@dataclasses.dataclass
class RunCleanup:
    """What cleanup found and did for one recorded run."""

    exp_id: str
    run_id: str
    run_dir: str
    owner: int | None
    alive: bool  #: its controlling process still runs
    hosts: list[HostCleanup] = dataclasses.field(default_factory=list)
    marked: bool = False  #: experiment.json got ``"end": "killed"``
    done: bool = False  #: nothing of the run is left to clean: its index entry is removed

    @property
    def name(self) -> str:
        return f"{self.exp_id}/{self.run_id}"


def cleanup_runs(dry_run: bool = False) -> list[RunCleanup]:
    """Clean what dead runs and unreachable hosts left (see the module docstring).

    With ``dry_run`` only say what would be cleaned: nothing is reached or changed.
    """
    return [asyncio.run(_clean_run(path, entry, dry_run)) for path, entry in read_index()]


def cleanup_run(exp_id: str, run_id: str) -> RunCleanup | None:
    """:func:`cleanup_runs` for the one run ``exp_id/run_id`` (a sweep's run whose process
    was killed, before the sweep makes it again); None when nothing of it is recorded.

    Runs an event loop of its own: call it from a thread that runs none.
    """
    path = index_path(exp_id, run_id)
    entry = read_json(path)
    if entry is None:
        return None
    return asyncio.run(_clean_run(path, entry, False))


def _pending(hosts: dict[str, Any], alive: bool) -> dict[str, dict[str, Any]]:
    return {guid: host for guid, host in hosts.items()
            if isinstance(host, dict) and (host.get("state") == UNREACHABLE
                                           or (not alive and host.get("state") == IN_USE))}


async def _clean_run(path: str, entry: dict[str, Any], dry_run: bool) -> RunCleanup:
    owner = entry.get("owner") if isinstance(entry.get("owner"), dict) else {}
    alive = is_alive(owner)
    run = RunCleanup(str(entry.get("exp_id")), str(entry.get("run_id")), str(entry.get("run_dir") or ""),
                     owner.get("pid"), alive)
    try:  # they become paths and patterns: a damaged entry is skipped, never followed
        check_name(run.exp_id, "exp_id")
        if not run.run_id.isdigit():
            raise ValueError(run.run_id)
    except Exception:  # noqa: BLE001
        log.warning("skipping the damaged run record %s", path)
        return run
    record = read_hosts(run.run_dir) if run.run_dir else None
    hosts = record.get("hosts") if record and isinstance(record.get("hosts"), dict) else {}
    todo = _pending(hosts, alive)
    if alive and not todo:
        return run  # a live run's hosts are its own business
    description = read_json(os.path.join(run.run_dir, DESCRIPTION)) if run.run_dir else None
    swept_here = False
    # SSH hosts first: on a host that is also this machine, the remote sweep is theirs
    for guid, host in sorted(todo.items(), key=lambda item: bool(item[1].get("local"))):
        where = str(host.get("where", "?"))
        if dry_run:
            run.hosts.append(HostCleanup(where, _int(guid)))
            continue
        done = await _clean_host(run, _int(guid), host, description, sweep_here=not swept_here)
        swept_here = swept_here or bool(host.get("local"))
        run.hosts.append(done)
        if done.error is None:
            host.update(state=CLEANED, since=time.time(),
                        cleanup={"stopped": done.stopped, "collected": len(done.collected)})
    if not dry_run and not todo and not alive and not record:
        # the run directory is gone: its processes here can still be found by their marker
        stopped = _tracking.kill_marked(prefix=f"{_tracking.run_key(run.exp_id, run.run_id)}/")
        run.hosts.append(HostCleanup("localhost", 0, stopped=stopped))
    if dry_run:
        return run
    if record:
        try:
            write_hosts(run.run_dir, record)
        except OSError as exc:
            log.warning("cannot update %s/hosts.json: %s", run.run_dir, exc)
    if not alive and description is not None and description.get("end") is None:
        run.marked = _mark_killed(run, description)
    if not any(isinstance(h, dict) and h.get("state") in PENDING for h in hosts.values()):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        run.done = True
    return run


def _int(text: Any) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        return 0


def _mark_killed(run: RunCleanup, description: dict[str, Any]) -> bool:
    """Record in experiment.json that the run's process died without recording its end."""
    description["end"] = KILLED
    description["cleanup"] = {
        "time": time.time(), "by": "nepi-lab cleanup", "owner_pid": run.owner,
        "stopped": sum(h.stopped for h in run.hosts),
        "collected": sum(len(h.collected) for h in run.hosts),
        "unreachable": [h.where for h in run.hosts if h.error is not None],
    }
    try:
        write_json_atomic(os.path.join(run.run_dir, DESCRIPTION), description)
    except OSError as exc:
        log.warning("cannot mark run %s as killed in %s: %s", run.name, run.run_dir, exc)
        return False
    return True


async def _clean_host(run: RunCleanup, node: int, host: dict[str, Any], description: dict[str, Any] | None,
                      sweep_here: bool) -> HostCleanup:
    from ._local import LocalExecutor

    where = str(host.get("where", "?"))
    done = HostCleanup(where, node)
    prefix = f"{_tracking.run_key(run.exp_id, run.run_id)}/"
    executor: Any
    if host.get("local"):
        executor = LocalExecutor(where=where)
        if sweep_here:  # every local node of the run at once
            done.stopped = _tracking.kill_marked(prefix=prefix)
        folder = host.get("cgroup")
        if isinstance(folder, str) and _is_our_cgroup(folder, run):
            done.stopped += _tracking.kill_cgroup_tree(folder)
    else:
        try:
            from ._ssh import SshExecutor, SshPool, SshTarget

            executor = SshExecutor(SshTarget.from_dict(host["ssh"]), SshPool())
            await executor.connect()
        except Exception as exc:  # unreachable, no asyncssh, a damaged record: try again later
            done.error = f"{type(exc).__name__}: {exc}"
            return done
    try:
        if not host.get("local"):
            done.stopped = await executor.sweep(prefix=prefix)
        run_home = _checked_run_home(host, run)
        if run_home is None:
            done.error = f"hosts.json names an unexpected folder {host.get('run_home')!r}: nothing collected"
            return done
        apps = _applications_on(node, description)
        for guid, rtype, traces in apps:
            folder = os.path.join(run.run_dir, f"{guid}-{rtype.replace('::', '.')}")
            os.makedirs(folder, exist_ok=True)
            # and the traces by file name, as the application's release would have
            written = await written_files(executor, posixpath.join(run_home, str(guid)), traces)
            for name in [*traces, *written]:
                remote = posixpath.join(run_home, str(guid), name)
                if await executor.download(remote, os.path.join(folder, name)):
                    done.collected.append(f"{guid}/{name}")
        if host.get("clean_experiment"):
            for guid, _, _ in apps:
                await executor.remove_tree(posixpath.join(run_home, str(guid)))
            await executor.remove_tree(posixpath.join(run_home, str(node)))
            exp_home = posixpath.dirname(run_home)
            await executor.remove_empty_dirs([run_home, exp_home, posixpath.dirname(exp_home)])
    except Exception as exc:
        done.error = f"{type(exc).__name__}: {exc}"
    finally:
        await executor.close()
    return done


def _is_our_cgroup(folder: str, run: RunCleanup) -> bool:
    expected = "nepi_lab." + _tracking.run_key(run.exp_id, run.run_id).replace("/", ".")
    return os.path.basename(folder) == expected


def _checked_run_home(host: dict[str, Any], run: RunCleanup) -> str | None:
    """The host's run folder, if it is where a run puts it (never remove anything else)."""
    home, run_home = host.get("home"), host.get("run_home")
    if not isinstance(home, str) or not isinstance(run_home, str):
        return None
    expected = posixpath.join(posixpath.normpath(home), NEPI_DIR, run.exp_id, run.run_id)
    return expected if posixpath.normpath(run_home) == expected and posixpath.isabs(expected) else None


def _applications_on(node: int, description: dict[str, Any] | None) -> list[tuple[int, str, list[str]]]:
    """``(guid, type, enabled trace names)`` of every resource connected to ``node`` that
    has traces, from experiment.json (names checked: they become file names here)."""
    if not description:
        return []
    types = description.get("types") if isinstance(description.get("types"), dict) else {}
    found = []
    for resource in description.get("resources") or []:
        if not isinstance(resource, dict):
            continue
        guid, rtype = resource.get("guid"), resource.get("type")
        connections = resource.get("connections") or []
        if not isinstance(guid, int) or not isinstance(rtype, str) or not _TYPE_NAME.fullmatch(rtype):
            continue
        if node not in connections or guid == node:
            continue
        declared = (types.get(rtype) or {}).get("traces") or {}
        if not isinstance(declared, dict) or not declared:
            continue
        names = resource.get("traces")
        if not isinstance(names, list):
            names = [n for n, t in declared.items() if isinstance(t, dict) and t.get("enabled")]
        safe = []
        for name in names:
            try:
                safe.append(check_name(name, "trace name"))
            except Exception:  # noqa: BLE001 - a damaged record: skip the name
                continue
        found.append((guid, rtype, safe))
    return found


__all__ = ["KILLED", "HostCleanup", "PENDING", "RunCleanup", "cleanup_runs"]
