"""The controller's side of a simulation's process (see :mod:`._worker`).

Importing ns-3 costs 8-20 s and 640 MB in every process, so by default one *shared*
process per interpreter imports it once and forks a process per simulation (about
0.1-0.7 s each, measured: the fork inherits the parsed headers; a simulation's
process never shares ns-3's global state with another).  The shared process is
started on the first simulation, listens on a Unix socket in a private temporary
folder, ends when this interpreter does (its standard input closes) and can be ended
earlier with :func:`stop_shared_process`.  ``ns3::Simulation``'s ``isolated``
attribute runs a fresh Python instead (one import of ns-3 per simulation).

A :class:`WorkerProcess` lives on the controller's event loop: the JSON lines are
read as they come and nothing blocks the loop.  The simulation's process writes its
standard output and error (ns-3's messages, an abort's backtrace) to a log file; on
its death, ns-3's ``msg="..."`` line is the failure's message.  Every simulation
process is tracked by a pidfd until it is killed, and killed at interpreter exit if an
orderly release did not; each also dies with its parent (``PR_SET_PDEATHSIG``).

What a controller killed by SIGKILL leaves: its simulation processes die with the shared
process (``PR_SET_PDEATHSIG``) or with it (isolated ones); the shared process ends as
soon as it reads the end of its standard input, which it does once it imported ns-3 (a
shared process killed mid-import lives on until then, 8-20 s); its private folder
``$TMPDIR/nepi_lab-ns3-<pid>-<start>-*`` stays.  The folder's name and every ns-3
process's environment (``NEPI_LAB_NS3_OWNER=<pid>:<start>``) name the controller's
process, so :func:`cleanup_leftovers` (``nepi-lab cleanup``) removes the folders and
kills the processes of dead controllers only.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from typing import Any

from ...core.controller import call_at_exit
from ...core.errors import NepiError
from ...core.owner import is_alive, this_process

log = logging.getLogger("nepi_lab")

#: What a missing ns-3 asks the user to do.
INSTALL_HINT = "pip install 'nepi_lab[ns3]'"

#: ns-3's NS_FATAL_ERROR / NS_ASSERT line: ``msg="...", +0.000000000s -1 file=..., line=...``.
_FATAL = re.compile(r'^msg="(?P<msg>.*?)"(?:,|$)')
_NOISE = ("[runStaticInitializersOnce]",)

#: The environment variable naming the controller's process (``<pid>:<start>``) in
#: every ns-3 process it starts; the prefix of the shared process's private folder.
OWNER_VARIABLE = "NEPI_LAB_NS3_OWNER"
FOLDER_PREFIX = "nepi_lab-ns3-"
_FOLDER = re.compile(re.escape(FOLDER_PREFIX) + r"(?P<pid>\d+)-(?P<start>\d+)-[^/]+$")


class SimulationError(NepiError):
    """An ns-3 simulation could not be built or run.

    ``message`` is ns-3's own (an ``NS_FATAL_ERROR`` message, a refused attribute) or
    the reason the worker process ended; ``stderr_tail`` the end of its standard error;
    ``guid`` the resource whose description ns-3 refused, when there is one.
    """

    def __init__(self, message: str, stderr_tail: str | None = None, guid: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.stderr_tail = stderr_tail
        self.guid = guid  #: the resource at fault, when the build named one


def check_installed() -> None:
    """Raise :class:`SimulationError` with the install hint when ns-3 is missing (cheap:
    it looks for the package, it does not import it)."""
    if importlib.util.find_spec("ns") is None:
        raise SimulationError(f"ns-3 simulations need the ns3 package: {INSTALL_HINT}")


#: The longest path a Unix socket can be bound to (sun_path's 108 bytes, its NUL included).
_UNIX_PATH_MAX = 107


class _Zygote:
    """The shared ns-3 process: imports ns-3 once, forks a process per simulation."""

    def __init__(self) -> None:
        owner = this_process()  # in the name: nepi-lab cleanup removes it once this process is gone
        self.folder = tempfile.mkdtemp(prefix=f"{FOLDER_PREFIX}{owner['pid']}-{owner['start']}-")
        self.path = os.path.join(self.folder, "zygote.sock")
        self._folder_fd: int | None = None
        if len(os.fsencode(self.path)) > _UNIX_PATH_MAX:  # a long TMPDIR: bind() would refuse it
            # reached through a descriptor of its folder: /proc/self/fd/<n>/zygote.sock is short
            self._folder_fd = os.open(self.folder, os.O_PATH | os.O_DIRECTORY)
            self.path = f"/proc/self/fd/{self._folder_fd}/zygote.sock"
        self.log = os.path.join(self.folder, "zygote.log")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.path)
        listener.listen(64)
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "nepi_lab.resources.ns3._worker", "--zygote", str(listener.fileno())],
                stdin=subprocess.PIPE, stdout=log, stderr=log, pass_fds=(listener.fileno(),),
                env=_child_environment(), start_new_session=True,
            )
        listener.close()  # the zygote holds it; connections wait in its backlog while it imports ns-3

    def alive(self) -> bool:
        return self.process.poll() is None

    def why_dead(self) -> str:
        try:
            with open(self.log, "rb") as f:
                lines = [line for line in f.read().decode(errors="replace").splitlines()
                         if line.strip() and not line.startswith(_NOISE)]
        except OSError:
            lines = []
        return f"the shared ns-3 process ended (exit status {self.process.poll()})" + (
            f": {lines[-1]}" if lines else "")

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()  # type: ignore[union-attr]
            with contextlib.suppress(OSError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        if self._folder_fd is not None:
            os.close(self._folder_fd)
            self._folder_fd = None
        shutil.rmtree(self.folder, ignore_errors=True)


_zygote: _Zygote | None = None
_zygote_lock = threading.Lock()


def _get_zygote() -> _Zygote:
    global _zygote
    with _zygote_lock:
        if _zygote is None or not _zygote.alive():
            if _zygote is not None:
                _zygote.stop()
            _zygote = _Zygote()
        return _zygote


def start_shared_process() -> int:
    """Start the shared ns-3 process now, in the background, if it does not run: it
    imports ns-3 (8-20 s) while the caller goes on, so that the first simulation does
    not wait for all of it (call it at the top of a notebook).  Returns its process id;
    raises :class:`SimulationError` with the install hint without the ns3 package."""
    check_installed()
    return _get_zygote().process.pid


def stop_shared_process() -> bool:
    """End the shared ns-3 process (it holds about 640 MB between simulations); the
    next simulation starts it again.  Running simulations are not affected.  Returns
    whether there was one."""
    global _zygote
    with _zygote_lock:
        zygote, _zygote = _zygote, None
    if zygote is None:
        return False
    zygote.stop()
    return True


def _child_environment() -> dict[str, str]:
    env = dict(os.environ)
    # the parent's import path (a source checkout on PYTHONPATH, a notebook's folder)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    owner = this_process()
    env[OWNER_VARIABLE] = f"{owner['pid']}:{owner['start']}"
    return env


_live: dict[int, int] = {}  # pid -> pidfd of every simulation process not known to be dead
_live_lock = threading.Lock()


def live_pids() -> list[int]:
    """Process ids of the simulation processes this interpreter started that may still live."""
    with _live_lock:
        return [pid for pid in _live if _alive(pid)]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except OSError:
        return False


def _signal(pidfd: int) -> None:
    with contextlib.suppress(OSError):
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)


@call_at_exit
def _kill_live_at_exit() -> None:
    with _live_lock:
        fds = list(_live.values())
        _live.clear()
    for fd in fds:
        _signal(fd)
        with contextlib.suppress(OSError):
            os.close(fd)
    stop_shared_process()


class WorkerProcess:
    """One simulation's process: start it, build, run, kill.

    ``shared=True`` forks it from the shared ns-3 process (milliseconds once that one
    imported ns-3); ``shared=False`` starts a fresh Python that imports ns-3 itself.
    ``on_event(message)`` is called on the loop for every JSON line after ``ready``;
    ``log`` is the file that gets the process's standard output and error.
    """

    def __init__(self, on_event: Callable[[dict[str, Any]], None], log: str, shared: bool = True) -> None:
        self.on_event = on_event
        self.log = log
        self.shared = shared
        self.pid: int | None = None
        self._pidfd: int | None = None
        self._exit: asyncio.Future[None] | None = None  # its end, one future for every waiter
        self._quitting: asyncio.Future[None] | None = None
        self._popen: subprocess.Popen[bytes] | None = None  # the fresh process (isolated)
        self._zygote: _Zygote | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: Any = None
        self.ended = False
        self.ready = False  #: it built the simulation and reads commands

    async def start(self, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Start the process, send it ``spec`` and return its ``ready`` message.

        Raises :class:`SimulationError` with ns-3's message when the build fails or
        the process dies, and after ``timeout`` seconds without an answer.
        """
        spec = {**spec, "log": self.log}
        try:
            return await asyncio.wait_for(self._start(spec), timeout)
        except SimulationError:
            await self.kill()
            raise
        except asyncio.TimeoutError:
            await self.kill()
            raise SimulationError(f"the ns-3 process did not build the simulation within {timeout:g} s",
                                  self.stderr_tail()) from None

    async def _start(self, spec: dict[str, Any]) -> dict[str, Any]:
        if self.shared:
            self._zygote = _get_zygote()  # a fork and exec: milliseconds
            self._reader, self._writer = await asyncio.open_unix_connection(self._zygote.path, limit=1 << 20)
        else:  # a socket for its standard input and output; a pidfd, no watcher thread
            ours, theirs = socket.socketpair()
            with theirs, open(self.log, "ab") as log:
                self._popen = subprocess.Popen(
                    [sys.executable, "-m", "nepi_lab.resources.ns3._worker"],
                    stdin=theirs, stdout=theirs, stderr=log, env=_child_environment(), start_new_session=True,
                )
            self._track(self._popen.pid)
            self._reader, self._writer = await asyncio.open_unix_connection(sock=ours, limit=1 << 20)
        hello = await self._next()
        self.pid = int(hello["pid"])
        if self._pidfd is None:
            self._track(self.pid)
        self._send(spec)
        ready = await self._next()
        self.ready = True
        return ready

    def _track(self, pid: int) -> None:
        try:
            self._pidfd = os.pidfd_open(pid)
        except OSError:  # already dead: the next read says why
            self._pidfd = None
        else:
            with _live_lock:
                _live[pid] = self._pidfd

    def _send(self, message: dict[str, Any]) -> None:
        self._writer.write((json.dumps(message) + "\n").encode())

    async def _next(self) -> dict[str, Any]:
        assert self._reader is not None
        try:
            line = await self._reader.readline()
        except (ConnectionError, ValueError) as exc:
            line = b""
            log.debug("ns-3 process %s: %s", self.pid, exc)
        if not line:  # the process ended without a word
            self.ended = True
            raise SimulationError(await self._death(), self.stderr_tail())
        message = json.loads(line)
        if message.get("event") == "error":
            raise SimulationError(str(message.get("message")), self.stderr_tail(), message.get("guid"))
        return message

    async def run(self) -> float:
        """Run the simulation to its end, passing every event to ``on_event``; returns
        the simulated end time.  Raises :class:`SimulationError` if it dies."""
        self._send({"do": "run"})
        while True:
            message = await self._next()
            self.on_event(message)
            if message.get("event") == "finished":
                return float(message["sim_time"])

    def stderr_tail(self, lines: int = 20) -> str:
        """The last lines of the process's output (ns-3's noise left out)."""
        return "\n".join(_log_lines(self.log)[-lines:])

    async def _death(self) -> str:
        """Why the process ended: ns-3's fatal message, else its exit status and last line."""
        how = ""
        if self._popen is not None:
            await self._exited(5.0)
            code = self._popen.poll()
            how = f" (exit status {code})"
            if code is not None and code < 0:
                with contextlib.suppress(ValueError):
                    how = f" (killed by {signal.Signals(-code).name})"
        elif self._zygote is not None and self.pid is None and not self._zygote.alive():
            return self._zygote.why_dead()
        text = _log_lines(self.log)
        fatal = next((m["msg"] for m in map(_FATAL.search, text) if m), None)
        if fatal is not None:
            return f"ns-3 aborted: {fatal}"
        crash = next((line.split("*** Break ***", 1)[1].strip() for line in text if "*** Break ***" in line),
                     None)
        if crash:  # cppyy's report of a signal: " *** Break *** segmentation violation"
            return f"ns-3 crashed: {crash}{how}"
        last = next((line for line in reversed(text) if not line.startswith("#")), None)
        return f"the ns-3 process ended{how}" + (f": {last}" if last else "") + _full_disk(self.log)

    async def kill(self) -> None:
        """End the process (ends its simulation) and reap it; safe to call twice."""
        popen = self._popen
        if popen is not None and popen.returncode is None:
            with contextlib.suppress(OSError):  # its group: not reaped yet, so the id is still its own
                os.killpg(popen.pid, signal.SIGKILL)
        if self._pidfd is not None:
            _signal(self._pidfd)
            await self._exited(10.0)
            self._forget()
        if popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(timeout=1)  # it exited (the pidfd said so): this only reaps it
        if self._writer is not None:
            with contextlib.suppress(OSError, RuntimeError):
                self._writer.close()
        self.ended = True

    async def _exited(self, timeout: float) -> None:
        """Return once the process has exited (its pidfd is readable), or after
        ``timeout`` seconds; never polls.  Every waiter shares one future: the end of a
        run and a release may wait at once, and a second reader of the same pidfd would
        replace the first one's (which then waited its whole timeout)."""
        pidfd = self._pidfd
        if pidfd is None:
            return
        if self._exit is None:
            loop = asyncio.get_running_loop()
            done: asyncio.Future[None] = loop.create_future()

            def readable() -> None:
                loop.remove_reader(pidfd)
                if not done.done():
                    done.set_result(None)

            loop.add_reader(pidfd, readable)
            self._exit = done
        try:
            await asyncio.wait_for(asyncio.shield(self._exit), timeout)
        except asyncio.TimeoutError:
            log.warning("an ns-3 simulation process did not end within %g s of SIGKILL", timeout)

    def _forget(self) -> None:
        """Close the pidfd (the process ended, or would not): no reader is left on it."""
        pidfd, self._pidfd = self._pidfd, None
        if pidfd is None:
            return
        if self._exit is not None and not self._exit.done():
            asyncio.get_running_loop().remove_reader(pidfd)
            self._exit.set_result(None)  # a waiter still there stops waiting
        with _live_lock:
            for pid, fd in list(_live.items()):
                if fd == pidfd:
                    del _live[pid]
        with contextlib.suppress(OSError):
            os.close(pidfd)

    async def quit(self, timeout: float = 5.0) -> None:
        """Ask the process to end (it closes its traces), then kill it if it does not;
        one that is still importing ns-3 or building is killed at once.  A second call
        (the end of the run and a release at once) waits for the first one."""
        if self._quitting is None:
            self._quitting = asyncio.ensure_future(self._quit(timeout))
        await asyncio.shield(self._quitting)

    async def _quit(self, timeout: float) -> None:
        if self.ready and not self.ended and self._writer is not None:
            with contextlib.suppress(ConnectionError, RuntimeError, OSError):
                self._send({"do": "quit"})
                await self._writer.drain()
            with contextlib.suppress(asyncio.TimeoutError, SimulationError):
                await asyncio.wait_for(self._next(), timeout)  # EOF once it ended
        await self.kill()




def _full_disk(log: str, least: int = 1 << 16) -> str:
    """What to add to the story of an ended ns-3 process when the file system of its log
    (the run directory, where its traces go too) is full: ns-3 aborts, or dies, when a
    trace cannot be written, and its log cannot say so then."""
    try:
        stat = os.statvfs(os.path.dirname(log) or ".")
    except OSError:
        return ""
    free = stat.f_bavail * stat.f_frsize
    if free >= least:
        return ""
    return (f"; the run directory's file system is full ({free} bytes free under {os.path.dirname(log)}): "
            "ns-3 could not write its traces (free space, or enable fewer of them: pcap grows fastest)")


def _log_lines(path: str, limit: int = 1 << 20) -> list[str]:
    """The lines of the end of a process's log, ns-3's noise left out."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            text = f.read().decode(errors="replace")
    except OSError:
        return []
    return [line.rstrip() for line in text.splitlines() if line.strip() and not line.startswith(_NOISE)]


def describe_type(type_name: str, timeout: float = 300.0) -> list[dict[str, str]]:
    """The attributes of ns-3 type ``type_name`` in the installed ns-3, its parents' included.

    Each is a dict: ``name``, ``help``, ``type`` (its value type: ``DataRateValue``,
    ``UintegerValue`` ...), ``default`` (as text, what ``ns3Attributes`` takes),
    ``declared_by`` (the type that declares it) and ``access`` (``get,set,construct``).
    ns-3 answers in a fork of the shared ns-3 process (which this starts if needed:
    8-20 s once); this interpreter never imports it.  Raises :class:`SimulationError`
    for an unknown type (with the closest names) or when ns-3 cannot be reached within
    ``timeout`` seconds.

    Example
    -------
    >>> [a["name"] for a in describe_type("ns3::OnOffApplication")][:3]   # doctest: +SKIP
    ['DataRate', 'PacketSize', 'OnTime']
    """
    check_installed()
    zygote = _get_zygote()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(timeout)
        try:
            connection.connect(zygote.path)
            stream = connection.makefile("rw", encoding="utf-8")
            hello = stream.readline()
            if not hello:
                raise SimulationError(zygote.why_dead())
            pidfd = os.pidfd_open(int(json.loads(hello)["pid"]))
            try:
                stream.write(json.dumps({"describe": str(type_name)}) + "\n")
                stream.flush()
                line = stream.readline()
                stream.read()  # its end: the process is exiting
                select.select([pidfd], [], [], timeout)  # and gone: nothing is left behind
            finally:
                os.close(pidfd)
        except (OSError, TimeoutError) as exc:
            raise SimulationError(f"the shared ns-3 process did not answer within {timeout:g} s: {exc}") \
                from None
    if not line:
        raise SimulationError(zygote.why_dead() if not zygote.alive()
                              else "the ns-3 process ended without an answer")
    answer = json.loads(line)
    if answer.get("event") != "described":
        raise SimulationError(str(answer.get("message")))
    return list(answer["attributes"])


# -- nepi-lab cleanup --------------------------------------------------------------------


class CleanupReport:
    """What :func:`cleanup_leftovers` found and did."""

    def __init__(self) -> None:
        self.folders: list[str] = []  #: private folders of dead controllers, removed
        self.killed: list[int] = []  #: ns-3 processes of dead controllers, killed
        self.live: dict[int, list[str]] = {}  #: live controller's pid -> its folders, kept


def cleanup_leftovers(dry_run: bool = False) -> CleanupReport:
    """Kill the ns-3 processes (shared, simulation) whose controller's process is gone and
    remove the shared processes' private folders it left in the temporary folder; leave a
    live controller's alone.  With ``dry_run`` only report.  Only what the caller may see:
    a user other than root finds its own processes and folders."""
    report = CleanupReport()
    for pid in _orphan_processes():
        if dry_run:
            report.killed.append(pid)
            continue
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            continue  # ended meanwhile
        try:
            if _owner_of(pid) is not None:  # still the same process (not a reused pid)
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                report.killed.append(pid)
        except OSError:
            pass
        finally:
            os.close(pidfd)
    root = tempfile.gettempdir()
    try:
        names = sorted(os.listdir(root))
    except OSError:
        names = []
    for name in names:
        match = _FOLDER.match(name)
        path = os.path.join(root, name)
        if match is None or not os.path.isdir(path) or os.path.islink(path):
            continue
        if os.geteuid() != 0 and os.stat(path).st_uid != os.geteuid():
            continue  # another user's
        pid = int(match["pid"])
        if is_alive({"pid": pid, "start": int(match["start"])}):
            report.live.setdefault(pid, []).append(path)
            continue
        if not dry_run:
            shutil.rmtree(path, ignore_errors=True)
            if os.path.exists(path):
                continue
        report.folders.append(path)
    return report


def _owner_of(pid: int) -> dict[str, int] | None:
    """The owner record in the environment of ns-3 process ``pid``, None if ``pid`` is no
    ns-3 process of nepi_lab (or not ours to read)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if b"nepi_lab.resources.ns3._worker" not in f.read():
                return None
        with open(f"/proc/{pid}/environ", "rb") as f:
            environ = f.read().split(b"\0")
    except OSError:
        return None
    marker = OWNER_VARIABLE.encode() + b"="
    for item in environ:
        if item.startswith(marker):
            owner_pid, _, start = item[len(marker):].decode(errors="replace").partition(":")
            if owner_pid.isdigit() and start.isdigit():
                return {"pid": int(owner_pid), "start": int(start)}
    return None


def _orphan_processes() -> list[int]:
    """The ns-3 processes whose controller's process is gone."""
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        owner = _owner_of(int(entry))
        if owner is not None and not is_alive(owner) and _alive(int(entry)):
            found.append(int(entry))
    return found
