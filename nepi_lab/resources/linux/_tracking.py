"""Finding everything a run started, also what left its process group.

Every command runs in a process group of its own, and ending it kills that group.  A
descendant that calls ``setsid`` (``setsid -f``, a daemon, a double fork behind
``nohup``) leads a session and a group of its own, and killing the command's group
misses it.  Two nets catch what escapes, and release (at the latest) stops it:

The marker, everywhere
    Every process started for a run carries ``NEPI_LAB_RUN=<exp_id>/<run_id>/<guid>``
    in its environment (:data:`RUN_VARIABLE`; ``guid`` is the application's, or the
    node's for commands of the node itself), and its descendants inherit it.  Release
    finds them by reading ``/proc/*/environ``: here in Python (:func:`kill_marked`),
    on an SSH host with one ``grep`` command.  A ``kill -9``-ed run is found the same
    way later by ``nepi-lab cleanup``, with the ``<exp_id>/<run_id>/`` prefix.
A cgroup per node, on this machine where cgroup v2 is writable (root)
    Each node's commands run in ``<our cgroup>/nepi_lab.<exp_id>.<run_id>/<node guid>``:
    the command's shell moves itself there before it runs anything (``echo $$ >
    cgroup.procs``), so whatever it starts is born inside, and leaving needs write
    access to another cgroup.  An application's release looks for its marker among
    the cgroup's processes only (not all of ``/proc``); the node's release writes
    ``cgroup.kill`` (one write kills every process inside, wherever it moved in the
    process tree, also one that rewrote its environment) and removes the cgroup.

What the cgroup costs.  Moving a process (``cgroup.procs``) takes the kernel's
``cgroup_threadgroup_rwsem`` for writing, and the first writer after the lock sat idle
waits for an RCU grace period: 6-25 ms on this project's VMs, against 0.1 ms for a move
that follows another within a grace period (ten or a thousand commands started together
pay about one wait).  So the first command of a process, and a command started after a
quiet spell, wait that long before they run; nothing else in the spawn path comes close.
``clone3(CLONE_INTO_CGROUP)`` makes a child in the cgroup without that wait (about 1 ms
to fork, exec and reap ``true``, measured from C), but Python 3.11 cannot call it
without a helper program: ``subprocess`` and ``os.posix_spawn`` do not offer it, and a
raw ``clone3`` through ctypes in a threaded interpreter is a ``fork()`` without the
interpreter's and libc's fork handlers.  A long-lived spawner in the node's cgroup would
have to be moved there itself, so the first command would wait as long; it would spare
only the commands that come after a quiet spell.  (A cgroup2 mount with
``favordynmods`` removes the wait for the whole machine: the administrator's choice.)

So the wait is overlapped instead (:func:`warm_up`, :func:`prepare`).  A writer that
comes while another already waits for the grace period waits only for what is left
of it, and one that comes within a grace period after the last writer left does not
wait at all.  When :mod:`nepi_lab.resources.linux` is imported (the first lookup of a
``linux::`` type, as a script registers its first node), when a ``linux::Node`` is
registered, and when a local node deploys, a short-lived worker thread (one at a time,
never awaited) writes its own thread id into ``cgroup.threads`` of the cgroup the
interpreter is in, and again every 4 ms for the next 0.1 s (the *warm spell*): the lock
goes cold one grace period after its last writer left, often before the first command
comes, and that command's shell then waited a grace period of its own.  A node given
another host's name ends the spell at once (:func:`cool_down`), and such a node connects
once the worker's last write is over (:func:`cooled`): an experiment on SSH hosts keeps
no thread for it beside those that open its connections.  The kernel
takes the lock before it looks at the move (a pid that does not exist is refused before
it, on Linux 6.18), and the move is a no-op: a thread into the cgroup it is in; had
someone moved the process elsewhere meanwhile, a thread cannot leave its process's
domain cgroup and the write fails (and the spell ends).  So it never moves the
controller and never fails a run (an error is only logged at debug level).  Nothing is
started with ``NEPI_LAB_CGROUPS=0``, once no cgroup was found, or, as long as none was
looked for, without root.  The same worker makes the node's cgroup at deploy, off the
loop: ``mkdir`` there takes the kernel's ``cgroup_mutex``, which a writer holds while
it waits, and the loop must not block on it; the node's first command awaits it (a job
runs at once, also during a spell).  The first application of a process then pays what
is left of the grace period after its first ``linux::`` lookup, not all of it: the grace
period lasts 10-30 ms here under load, longer than the controller's own work before the
first spawn, so part of it remains.  Measured in 25 alternated fresh processes, the first
app's ``deploy()`` to FINISHED took a median 4.8 ms with the spell, 6.1 ms with a single
write, 3.7 ms without the cgroup; a first grace period of 20-30 ms still shows whole.

What still escapes: on a host without cgroups, a process that starts with a cleared
or rewritten environment (``env -i``, some daemons' sanitising); anywhere, work
handed to another service, which is not our descendant (``systemd-run``, ``at``, a
container runtime, ``ssh localhost``), and processes of another user (``sudo -u``),
which we may neither read nor signal.  (An application's ``sudo`` is the exception it
can afford: its root processes get the marker through sudo's ``env``, and are signalled
as root through ``sudo -n``; see :mod:`.application`.)

Signals go through pidfds opened *before* the environment is checked again, so a
recycled pid never gets a signal meant for a process that just ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import Any

from ...core.controller import call_at_exit
from ._batches import Batches

log = logging.getLogger("nepi_lab")

#: The environment variable that marks a run's processes.
RUN_VARIABLE = "NEPI_LAB_RUN"

#: Turns the cgroups off when set to ``0`` (the marker alone then).
CGROUPS_ENV = "NEPI_LAB_CGROUPS"

#: Rounds of :func:`kill_marked`: a process may fork between one look and the kill.
SWEEP_ROUNDS = 10

def run_key(exp_id: str, run_id: str) -> str:
    """What names a run in markers and records: ``<exp_id>/<run_id>``."""
    return f"{exp_id}/{run_id}"


def marker(run: str, owner: int) -> str:
    """The value of :data:`RUN_VARIABLE` for ``owner``'s processes (a guid)."""
    return f"{run}/{owner}"


# -- the marker, on this machine -------------------------------------------------------

_NEEDLE = f"\0{RUN_VARIABLE}=".encode()


def _marker_of(pid: int) -> str | None:
    """The marker in process ``pid``'s environment, None if none (or unreadable)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            data = b"\0" + f.read()
    except OSError:  # gone, or another user's
        return None
    start = data.find(_NEEDLE)
    if start < 0:
        return None
    start += len(_NEEDLE)
    end = data.find(b"\0", start)
    return data[start:end if end >= 0 else None].decode("utf-8", "replace")


def _matches(value: str | None, values: Collection[str], prefix: str | None) -> bool:
    return value is not None and (value in values or (prefix is not None and value.startswith(prefix)))


def _all_pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def find_marked(values: Collection[str] = (), prefix: str | None = None,
                among: Callable[[], Iterable[int]] = _all_pids) -> list[int]:
    """Pids of the processes (``among()``: every process by default) whose marker is one
    of ``values`` or starts with ``prefix``."""
    me = os.getpid()
    return [pid for pid in among() if pid != me and _matches(_marker_of(pid), values, prefix)]


def kill_marked(values: Collection[str] = (), prefix: str | None = None,
                among: Callable[[], Iterable[int]] = _all_pids) -> int:
    """SIGKILL every process (``among()``: every process by default) whose marker is one
    of ``values`` or starts with ``prefix``; return how many.  Looks again until none is
    left (a process may fork meanwhile)."""
    if not values and prefix is None:
        return 0
    killed: set[int] = set()
    for _ in range(SWEEP_ROUNDS):
        pids = [pid for pid in find_marked(values, prefix, among) if pid not in killed]
        if not pids:
            break
        for pid in pids:
            try:
                pidfd = os.pidfd_open(pid)
            except OSError:  # gone already
                continue
            try:  # the pidfd pins the process: check it is still the marked one, then kill
                if _matches(_marker_of(pid), values, prefix):
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                    killed.add(pid)
            except OSError:
                pass
            finally:
                os.close(pidfd)
    return len(killed)


class SweepQueue:
    """Sweeps asked for while one runs are served together by the next one.

    ``sweep(values)`` kills the processes carrying those markers (on this machine, or
    with one command on a host); 100 applications released at once cost a sweep or two,
    not 100.
    """

    def __init__(self, sweep: Callable[[set[str]], Awaitable[int]]) -> None:
        self._batches: Batches[str, int] = Batches(lambda values: sweep(set(values)))

    async def stop(self, values: Collection[str]) -> int:
        """Kill what carries one of ``values``; the number killed by the sweep that served it."""
        if not values:
            return 0
        return max(await self._batches.submit(list(values)))


# -- cgroups ------------------------------------------------------------------------------

_UNKNOWN = object()
_base: object | str | None = _UNKNOWN
_lock = threading.Lock()
#: The cgroup folders of the runs of this interpreter: run key -> folder.
_runs: dict[str, RunCgroups] = {}


def _unescape(field: str) -> str:
    """A path from /proc/self/mountinfo (spaces and such are octal escapes)."""
    if "\\" not in field:  # the usual case; the codec's import costs the first node 0.35 ms
        return field
    return field.encode().decode("unicode_escape").encode("latin-1").decode("utf-8", "replace")


def own_cgroup() -> str | None:
    """The folder of this process's cgroup in a mounted cgroup v2 hierarchy, None if none."""
    try:
        with open("/proc/self/cgroup") as f:
            own = next((line[3:].rstrip("\n") for line in f if line.startswith("0::")), None)
        with open("/proc/self/mountinfo") as f:
            mounts = f.read().splitlines()
    except OSError:
        return None
    if own is None or own.endswith(" (deleted)"):
        return None
    for line in mounts:
        fields = line.split()
        try:
            separator = fields.index("-")
        except ValueError:
            continue
        if fields[separator + 1] != "cgroup2":
            continue
        root, mount_point = _unescape(fields[3]), _unescape(fields[4])
        if own == root or own.startswith(root.rstrip("/") + "/"):
            return os.path.join(mount_point, own[len(root):].lstrip("/"))
    return None


def cgroup_base() -> str | None:
    """Where this interpreter makes its runs' cgroups: its own cgroup, if it may write
    there (root, or a delegated subtree) and ``$NEPI_LAB_CGROUPS`` is not ``0``."""
    global _base
    with _lock:
        if _base is _UNKNOWN:
            _base = None
            base = None if os.environ.get(CGROUPS_ENV) == "0" else own_cgroup()
            if base is not None and os.access(base, os.W_OK) and os.access(
                    os.path.join(base, "cgroup.procs"), os.W_OK):
                _base = base
        return _base  # type: ignore[return-value]


def run_cgroups(run: str) -> RunCgroups | None:
    """The cgroups of run ``run`` in this interpreter; None where cgroups cannot be used."""
    base = cgroup_base()
    if base is None:
        return None
    with _lock:
        cgroups = _runs.get(run)
        if cgroups is None:
            cgroups = _runs[run] = RunCgroups(os.path.join(base, "nepi_lab." + run.replace("/", ".")))
        return cgroups


class RunCgroups:
    """The cgroups of one run: ``<folder>/<guid>``, one per node, made on first use."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.usable = True
        self._made: set[int] = set()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<RunCgroups {self.folder} {sorted(self._made)}>"

    def procs_file(self, owner: int) -> str | None:
        """``cgroup.procs`` of ``owner``'s cgroup, made if needed; None if cgroups fail here."""
        path = os.path.join(self.folder, str(owner))
        with self._lock:
            if owner in self._made:
                return os.path.join(path, "cgroup.procs")
            if not self.usable:
                return None
            try:
                try:
                    os.mkdir(path)
                except FileNotFoundError:  # the run's folder first
                    os.mkdir(self.folder)
                    if not os.path.exists(os.path.join(self.folder, "cgroup.kill")):  # Linux < 5.14
                        os.rmdir(self.folder)
                        raise OSError(errno.ENOTSUP, "cgroup.kill is missing (Linux < 5.14)") from None
                    os.mkdir(path)
            except FileExistsError:
                pass
            except OSError as exc:
                self.usable = False
                log.info("cannot make cgroups in %s (%s): processes are tracked by their environment only",
                         self.folder, exc)
                return None
            self._made.add(owner)
        return os.path.join(path, "cgroup.procs")

    def pids(self, owner: int) -> list[int]:
        """The processes in ``owner``'s cgroup now."""
        try:
            with open(os.path.join(self.folder, str(owner), "cgroup.procs")) as f:
                return [int(pid) for pid in f.read().split()]
        except FileNotFoundError:
            return []

    def owners(self) -> list[int]:
        with self._lock:
            return sorted(self._made)

    def kill(self, owner: int) -> int:
        """SIGKILL every process in ``owner``'s cgroup; return how many there were."""
        path = os.path.join(self.folder, str(owner))
        try:
            with open(os.path.join(path, "cgroup.procs")) as f:
                count = len(f.read().split())
        except FileNotFoundError:
            return 0
        if count:
            with contextlib.suppress(FileNotFoundError), open(os.path.join(path, "cgroup.kill"), "w") as f:
                f.write("1")
        return count

    def remove(self, owner: int) -> bool:
        """Remove ``owner``'s cgroup if it is empty (then also the run's, if empty)."""
        path = os.path.join(self.folder, str(owner))
        try:
            os.rmdir(path)
        except FileNotFoundError:
            pass
        except OSError:  # EBUSY: processes are still inside
            return False
        with self._lock:
            self._made.discard(owner)
            last = not self._made
        if last:
            with contextlib.suppress(OSError):
                os.rmdir(self.folder)
        return True

    async def stop(self, owner: int, wait: float = 5.0) -> int:
        """Kill what runs in ``owner``'s cgroup and remove it; return how many processes.

        The usual case is one system call: the cgroup is empty, it is removed.  Else
        ``cgroup.kill``, then the cgroup is removed once the kernel emptied it (a
        killed process leaves it as it exits, before it is reaped).
        """
        if self.remove(owner):
            return 0
        killed = self.kill(owner)
        delay = 0.001
        deadline = asyncio.get_running_loop().time() + wait
        while not self.remove(owner):
            if asyncio.get_running_loop().time() > deadline:
                log.warning("cgroup %s/%s still holds processes %.0f s after cgroup.kill", self.folder, owner,
                            wait)
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
        return killed

    def stop_now(self) -> int:
        """Kill and remove every cgroup of the run at once (at interpreter exit)."""
        killed = 0
        for owner in self.owners():
            killed += self.kill(owner)
        for owner in self.owners():
            for _ in range(100):  # the kernel empties them within milliseconds
                if self.remove(owner):
                    break
                threading.Event().wait(0.005)
        return killed


# -- overlapping the first move's wait (see "What the cgroup costs") ----------------------

#: Jobs for the worker thread, run in order: ``(job, abandon)``, ``abandon`` (or None)
#: called instead of ``job`` if no thread can be started.
_jobs: list[tuple[Callable[[], None], Callable[[], None] | None]] = []
#: Called by the worker at its next turn with whether it ends then (see :func:`cooled`).
_on_end: list[Callable[[bool], None]] = []
_worker: threading.Thread | None = None
_woken = threading.Event()  #: set when a job comes: the worker stops waiting between warmings
_warm_until = float("-inf")  #: the warm spell's end (``time.monotonic()``), see :func:`warm_up`
_last_warm = float("-inf")  #: when the last warming write ended (``time.monotonic()``)
#: Within this long after a write, the lock needs no grace period yet (well below one).
WARM_FOR = 0.002
#: How long the lock is kept warm after :func:`warm_up`: long enough for a script's node
#: to deploy and start its first command, short enough to cost nothing (a write of 0.03 ms
#: every :data:`WARM_EVERY`).
WARM_SPELL = 0.1
#: The interval of the warm spell's writes.  The kernel lets the lock go cold about one
#: grace period after its last writer left (a write 12 ms after another did not wait on
#: this project's VMs, one 16 ms after did; grace periods only grow under load).
WARM_EVERY = 0.004


def _submit(job: Callable[[], None], abandon: Callable[[], None] | None = None) -> bool:
    """Run ``job`` in the worker thread, started if none runs (one at a time); False if
    no thread could be started (then every job waiting is abandoned)."""
    global _worker
    with _lock:
        _jobs.append((job, abandon))
        _woken.set()
        if _worker is not None:
            return True
        worker = _worker = threading.Thread(target=_work, name="nepi_lab-cgroup", daemon=True)
    try:
        worker.start()
    except RuntimeError as exc:  # no thread to be had: interpreter exit, the system's limit
        log.debug("no thread for the cgroup worker (%s): cgroups are made on first use", exc)
        with _lock:
            stranded = list(_jobs)
            _jobs.clear()
            _worker = None
        for _, give_up in stranded:
            if give_up is not None:
                give_up()
        return False
    return True


def _work() -> None:
    """The worker's loop: the jobs in order; between them, while the warm spell lasts, a
    warming write every :data:`WARM_EVERY` (a job that comes meanwhile runs at once)."""
    global _worker
    while True:
        with _lock:
            _woken.clear()
            ending = False
            if _jobs:
                job: Callable[[], None] | None = _jobs.pop(0)[0]
            elif time.monotonic() < _warm_until:
                job = None
            else:
                _worker = None
                ending = True
            waiting = list(_on_end)  # told what comes next (see cooled)
            _on_end.clear()
        for tell in waiting:
            tell(ending)
        if ending:
            return
        if job is None:
            _warm()
            _woken.wait(WARM_EVERY)
            continue
        try:
            job()
        except Exception:  # a job reports its own errors; this thread must go on
            log.debug("cgroup worker job %r failed", job, exc_info=True)


def _warm() -> None:
    """Take and drop the kernel's ``cgroup_threadgroup_rwsem`` for writing: write this
    thread's id into ``cgroup.threads`` of the cgroup it is in (a no-op move)."""
    global _last_warm, _warm_until
    base = _base
    fd = _warm_files.get(base) if isinstance(base, str) else None  # opened by warm_up
    if fd is None or time.monotonic() - _last_warm < WARM_FOR:
        return
    try:
        os.write(fd, str(threading.get_native_id()).encode())
    except OSError as exc:
        log.debug("warming the cgroup lock in %s failed (%s): the first command may wait for it", base, exc)
        with _lock:
            _warm_until = float("-inf")  # the next writes would fail alike: the spell ends
    _last_warm = time.monotonic()


#: ``cgroup.threads`` of the interpreter's cgroup (by folder), opened for writing by
#: :func:`warm_up` and kept open: each warming writes to it again.  One opened for another
#: folder is never closed (the worker may be writing to it): the folder only changes if
#: the interpreter's own cgroup does, which nepi_lab does not follow anyway.
_warm_files: dict[str, int] = {}


def warm_up() -> None:
    """Take the cgroup lock's grace period off the next command's path: for the next
    :data:`WARM_SPELL` seconds the worker thread writes every :data:`WARM_EVERY` (see "What
    the cgroup costs" above), not awaited.  The first write waits for the grace period;
    the next ones keep the lock from going cold again before the command comes.  Nothing
    happens with ``NEPI_LAB_CGROUPS=0``, where no cgroup was found, or without root
    before one was looked for; a spell already running is extended.

    The cgroup is looked up and its file opened here, in the caller's thread: a worker
    that did it would start its grace period only once the caller let it have the GIL
    again (5 ms at a time while the caller imports modules)."""
    global _warm_until
    if _base is None or os.environ.get(CGROUPS_ENV) == "0":
        return
    if _base is _UNKNOWN and os.geteuid() != 0:
        # only a delegated subtree could be writable: not worth a thread before a node
        # found one (its deploy asks, then later nodes warm it)
        return
    base = cgroup_base()
    if base is None:
        return
    with _lock:
        if base not in _warm_files:
            try:
                _warm_files[base] = os.open(os.path.join(base, "cgroup.threads"), os.O_WRONLY | os.O_CLOEXEC)
            except OSError as exc:
                log.debug("warming the cgroup lock in %s failed (%s): the first command may wait for it",
                          base, exc)
                return
        _warm_until = time.monotonic() + WARM_SPELL
        if _worker is not None:  # it looks at the spell before it ends
            return
    _submit(_warm)


def cool_down() -> None:
    """End the warm spell (:func:`warm_up`) now: a node turned out to be another host's
    (its ``hostname`` set), whose commands never move into a cgroup here.  The worker
    ends once its jobs are done, rather than keep a thread beside the ones that open the
    SSH connections; a local node's deploy warms the lock again (:func:`prepare`)."""
    global _warm_until
    with _lock:
        _warm_until = float("-inf")
        _woken.set()  # a worker waiting between two warmings looks again at once


async def cooled(limit: float = 1.0) -> None:
    """Until a worker that is only finishing its warm spell has ended (its last write waits
    a grace period: 6-30 ms), at most ``limit`` seconds: an SSH node's connection, which
    takes the blocking pool's threads, then starts beside no thread of this module.  At
    once when no worker runs or when it still has work (a local node's cgroup, a spell),
    and as soon as it takes more (a local node registered meanwhile needs it)."""
    with _lock:
        worker = _worker
        if worker is None or _jobs or time.monotonic() < _warm_until:
            return
        answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        _on_end.append(lambda ending: _settle(answer, ending))  # in the worker, at its next turn
    done, _ = await asyncio.wait({answer}, timeout=limit)
    if done and answer.result():
        worker.join(0.01)  # past its last statement: gone within microseconds


def prepare(cgroups: RunCgroups, owner: int) -> asyncio.Future[None] | None:
    """Make ``owner``'s cgroup in the worker thread, then warm the lock (:func:`warm_up`);
    a future of the running loop, done once the cgroup is made (or failed), or None
    without a running loop (the cgroup is then made on first use)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    made: asyncio.Future[None] = loop.create_future()

    def resolve() -> None:
        _settle(made, None)

    def job() -> None:
        try:
            cgroups.procs_file(owner)
        finally:
            resolve()

    if not _submit(job, abandon=resolve):
        return None  # no worker: the cgroup is made on first use, as without one
    warm_up()
    return made


def _settle(future: asyncio.Future[Any], value: Any) -> None:
    """Give ``future`` ``value`` from another thread (the worker), on its loop, unless it
    is done already or its loop is closed (then nobody waits for it)."""
    with contextlib.suppress(RuntimeError):
        future.get_loop().call_soon_threadsafe(lambda: future.done() or future.set_result(value))


def _forget_worker_in_child() -> None:
    """After ``fork()``: the child has no worker thread, so its queue starts empty (a job
    left there would never run, and a first command would wait for its cgroup forever),
    and the module's lock afresh (another thread may have held it at the fork)."""
    global _lock, _worker, _woken, _warm_until
    _lock = threading.Lock()
    _woken = threading.Event()
    _jobs.clear()
    _on_end.clear()
    _worker = None
    _warm_until = float("-inf")


os.register_at_fork(after_in_child=_forget_worker_in_child)


def kill_cgroup_tree(folder: str) -> int:
    """Kill every process under cgroup ``folder`` and remove it with its children (a dead
    run's, for ``nepi-lab cleanup``); return how many processes there were."""
    killed = 0
    try:
        children = [e.path for e in os.scandir(folder) if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return 0
    for child in children:
        killed += kill_cgroup_tree(child)
    with contextlib.suppress(OSError), open(os.path.join(folder, "cgroup.procs")) as f:
        count = len(f.read().split())
        if count:
            with open(os.path.join(folder, "cgroup.kill"), "w") as kill:
                kill.write("1")
            killed += count
    for _ in range(200):
        try:
            os.rmdir(folder)
            break
        except FileNotFoundError:
            break
        except OSError:
            threading.Event().wait(0.005)
    return killed


# -- at interpreter exit ---------------------------------------------------------------------

#: Markers of processes started here whose release did not sweep them yet.
_unswept: set[str] = set()


def note_started(value: str) -> None:
    """Processes carrying marker ``value`` were started on this machine."""
    if value not in _unswept:
        with _lock:
            _unswept.add(value)


def note_swept(values: Collection[str]) -> None:
    """Release swept the processes of ``values``."""
    with _lock:
        _unswept.difference_update(values)


@call_at_exit
def _stop_tracked_at_exit() -> None:
    """Kill what the orderly release did not: every cgroup this interpreter made, then
    every process carrying a marker it handed out and never swept."""
    with _lock:
        runs = list(_runs.values())
        values = set(_unswept)
        _unswept.clear()
    for cgroups in runs:
        with contextlib.suppress(OSError):
            cgroups.stop_now()
    if values:
        with contextlib.suppress(OSError):
            kill_marked(values)
