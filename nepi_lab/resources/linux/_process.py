"""Local child processes watched through pidfds: no thread, no polling, no orphan.

Why not ``asyncio.create_subprocess_*``: on Python 3.11 its default child watcher
(``ThreadedChildWatcher``) starts one thread per child, so 1,000 applications would
mean 1,000 threads.  Here a process costs one file descriptor and no thread:

- it is spawned with :class:`subprocess.Popen` and ``start_new_session=True``, so it
  leads its own session and process group, and one ``killpg`` reaches everything it
  started (unless a descendant calls ``setsid`` itself, as daemons do);
- ``os.pidfd_open(pid)`` gives a descriptor that becomes readable when the process
  exits, and ``loop.add_reader`` turns that into a callback (Linux >= 5.3);
- on exit the leader stays a zombie until it is reaped, so its pid, hence its process
  group id, cannot be reused yet.  The callback first kills what is left in the group,
  then reaps the leader with ``os.waitpid``.  A signal sent through this module can
  therefore never reach a stranger that inherited a recycled pid, and when a
  process ends nothing it left in its group survives it.

Every process still running is listed in :data:`_running`; at interpreter exit, once
the controllers are shut down, whatever is left is killed.

Open files.  A running process costs this interpreter one descriptor (its pidfd), and
a command run to completion a few more (its pipes), so the common soft limit of 1,024
open files would cap an experiment at about a thousand processes at once.  When the
first local executor is made, :func:`raise_open_file_limit` raises the soft
``RLIMIT_NOFILE`` to the hard one (the commands get the original soft limit back:
programs that use ``select()`` expect it).  Beyond that, :data:`descriptors` hands out
the descriptors the limit leaves: a command that would exceed it waits for another
process to end instead of failing with "Too many open files".
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import resource
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Sequence
from typing import IO, Any

from ...core.controller import call_at_exit

log = logging.getLogger("nepi_lab")

#: Every process of this interpreter still running (not yet reaped).
_running: set[Process] = set()

#: Exit status reported when the process was reaped by someone else.
UNKNOWN_STATUS = -1

_devnull: int | None = None


# -- the open-file limit -------------------------------------------------------------

_limit_lock = threading.Lock()
_limit_raised = False
#: The soft open-file limit the interpreter had before :func:`raise_open_file_limit`
#: raised it (None: not raised); commands are started with it again.
original_open_file_limit: int | None = None


def raise_open_file_limit() -> None:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit, once per interpreter.

    The original soft limit is kept in :data:`original_open_file_limit`, for the
    commands: the executors start them with it again, so a program there sees the
    limit it would have seen without nepi_lab.
    """
    global _limit_raised, original_open_file_limit
    with _limit_lock:
        if _limit_raised:
            return
        _limit_raised = True
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        target = hard
        if hard == resource.RLIM_INFINITY:  # the kernel's own ceiling then
            try:
                with open("/proc/sys/fs/nr_open") as f:
                    target = int(f.read())
            except (OSError, ValueError):
                return
        if soft != resource.RLIM_INFINITY and soft < target:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            except (ValueError, OSError) as exc:  # pragma: no cover - a sandbox may refuse
                log.debug("could not raise the open-file limit from %s to %s: %s", soft, target, exc)
                return
            original_open_file_limit = soft
            log.debug("raised the soft open-file limit from %s to %s", soft, target)


class Descriptors:
    """The file descriptors local processes may hold at once, shared by every loop.

    A running :class:`Process` holds one (its pidfd), a command run to completion a
    few more (its pipes).  The capacity is what the soft ``RLIMIT_NOFILE`` leaves once
    the descriptors already open and a reserve for everything else (trace files,
    sockets, the event log) are counted.  A request beyond it waits, first come
    first served, until processes end; each controller has its own loop thread, so
    waiters are woken through their own loop.  If the system still refuses a
    descriptor (other code holds more than the reserve), :meth:`refused` lowers the
    capacity to what is held, and the spawn waits too.
    """

    #: Descriptors kept free for everything but processes, at least.
    RESERVE = 64

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held = 0
        self._capacity: int | None = None
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None], int]] = deque()
        self._told = False

    def __repr__(self) -> str:
        return f"<Descriptors held={self._held} capacity={self.capacity} waiting={len(self._waiters)}>"

    @property
    def held(self) -> int:
        return self._held

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    @property
    def full(self) -> bool:
        """Whether a new process would wait now."""
        return bool(self._waiters) or self._held + 1 > self.capacity

    @property
    def capacity(self) -> int:
        if self._capacity is None:
            soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
            if soft == resource.RLIM_INFINITY:
                soft = 1 << 20
            try:
                open_now = len(os.listdir("/proc/self/fd"))
            except OSError:  # pragma: no cover - no /proc
                open_now = 64
            self._capacity = max(8, soft - open_now - max(self.RESERVE, soft // 16))
        return self._capacity

    async def acquire(self, count: int) -> None:
        """Take ``count`` descriptors, waiting until the limit leaves them."""
        with self._lock:
            count = min(count, self.capacity)
            if not self._waiters and self._held + count <= self.capacity:
                self._held += count
                return
            loop = asyncio.get_running_loop()
            future: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, future, count))
            if not self._told:
                self._told = True
                log.info("%s processes hold the descriptors the open-file limit leaves (%s); further "
                         "commands wait for one to end", self._held, self.capacity)
        try:
            await future
        except BaseException:
            with self._lock:
                try:
                    self._waiters.remove((loop, future, count))
                    granted = False
                except ValueError:  # granted meanwhile: give it back
                    granted = True
            if granted:
                self.release(count)
            raise

    def release(self, count: int) -> None:
        """Give back ``count`` descriptors; wake whoever now fits (from any thread)."""
        with self._lock:
            self._held -= min(count, self.capacity)
            self._grant()

    def refused(self) -> bool:
        """The system refused a descriptor below our capacity: wait for our own processes
        instead.  False if we hold none (waiting would be forever: the caller raises)."""
        with self._lock:
            if self._held <= 0:
                return False
            self._capacity = max(1, self._held)
            log.warning("the system refused a file descriptor with %s held by processes; at most that "
                        "many run at once from now on", self._held)
            return True

    def _grant(self) -> None:
        while self._waiters:
            loop, future, count = self._waiters[0]
            if self._held + count > self.capacity and self._held > 0:
                return
            self._waiters.popleft()
            self._held += count
            try:
                loop.call_soon_threadsafe(_grant_future, future)
            except RuntimeError:  # that loop is closed: nobody waits any more
                self._held -= count


def _grant_future(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
    else:  # cancelled after it was granted: Descriptors.acquire gave it back
        pass


#: The descriptors of this interpreter's local processes.
descriptors = Descriptors()


def _too_many_open_files(exc: OSError) -> bool:
    return exc.errno in (errno.EMFILE, errno.ENFILE)


def _null() -> int:
    """One descriptor on ``/dev/null`` for every child (Popen would open one per child)."""
    global _devnull
    if _devnull is None:
        _devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    return _devnull


class Process:
    """One child process, leader of its own process group, watched through a pidfd.

    Create it with :meth:`spawn` from a coroutine running on the event loop that
    will watch it.  Every method must be called from that loop's thread, except
    :meth:`kill`, which is safe from anywhere as long as the loop no longer runs.
    """

    def __init__(self, popen: subprocess.Popen[bytes], command: str, loop: asyncio.AbstractEventLoop,
                 pidfd: int, descriptors: int = 1) -> None:
        self.command = command
        self.pid = popen.pid
        self._popen = popen
        self._loop = loop
        self._exit: asyncio.Future[int] = loop.create_future()
        self.returncode: int | None = None
        self._pidfd = pidfd
        self._descriptors = descriptors  # held in :data:`descriptors` until reaped
        _running.add(self)
        loop.add_reader(self._pidfd, self._on_exit)

    @classmethod
    async def spawn(cls, argv: Sequence[str], *, command: str, cwd: str | None = None,
                    env: dict[str, str] | None = None, stdin: int | IO[Any] | None = None,
                    stdout: int | IO[Any] | None = None, stderr: int | IO[Any] | None = None,
                    reserved: int = 0) -> Process:
        """Start ``argv`` in a new session; ``command`` is what error messages show.

        ``stdin``, ``stdout`` and ``stderr`` are as for :class:`subprocess.Popen`
        (``None`` means :data:`subprocess.DEVNULL` here, never the controller's own).
        ``reserved`` descriptors were taken from :data:`descriptors` by the caller (for
        its pipes); the process gives them back when it ends.  Without any, it takes
        one for its pidfd, waiting for it if the open-file limit is reached.
        """
        loop = asyncio.get_running_loop()
        held = reserved
        if not held:
            await descriptors.acquire(1)
            held = 1
        try:
            devnull = _null()
            while True:
                try:  # nothing has started if this fails
                    popen = subprocess.Popen(
                        list(argv), cwd=cwd, env=env,
                        stdin=devnull if stdin is None else stdin,
                        stdout=devnull if stdout is None else stdout,
                        stderr=devnull if stderr is None else stderr,
                        start_new_session=True, close_fds=True,
                    )
                    break
                except OSError as exc:
                    if not _too_many_open_files(exc) or not descriptors.refused():
                        raise
                # other code holds the descriptors: wait for one of ours to end
                descriptors.release(held)
                await descriptors.acquire(held)
            pidfd = cls._watch(popen)
        except BaseException:
            descriptors.release(held)
            raise
        return cls(popen, command, loop, pidfd, held)

    @staticmethod
    def _watch(popen: subprocess.Popen[bytes]) -> int:
        """A pidfd on the new process; if none can be had, the process is killed."""
        try:
            return os.pidfd_open(popen.pid)
        except OSError as exc:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(popen.pid, signal.SIGKILL)
            popen.wait()
            if exc.errno == errno.ENOSYS:
                raise OSError(exc.errno, "watching processes needs Linux >= 5.3 (pidfd_open)") from exc
            raise

    def __repr__(self) -> str:
        status = "running" if self.returncode is None else f"exited {self.returncode}"
        return f"<Process pid={self.pid} {status}: {self.command!r}>"

    # -- exit ----------------------------------------------------------------------

    def _on_exit(self) -> None:
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        descriptors.release(self._descriptors)
        # The leader is a zombie: its group id is still ours.  Kill what it left.
        self._signal_group(signal.SIGKILL)
        try:
            _, status = os.waitpid(self.pid, 0)
            code = os.waitstatus_to_exitcode(status)
        except ChildProcessError:  # reaped by someone else: the status is lost
            log.warning("process %s (%s) was reaped by another part of the program", self.pid, self.command)
            code = UNKNOWN_STATUS
        self.returncode = code
        self._popen.returncode = code  # so Popen does not warn that it still runs
        _running.discard(self)
        if not self._exit.done():
            self._exit.set_result(code)

    async def wait(self) -> int:
        """Return the exit status once the process has exited (negative: killed by that signal).

        Cancelling the wait leaves the process alone.
        """
        return await asyncio.shield(self._exit)

    # -- signals ---------------------------------------------------------------------

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:  # a member runs as another user (sudo): the rest got it
            log.debug("no permission to signal every process of group %s", self.pid)

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the whole process group, if the process still runs."""
        if self.returncode is None:
            self._signal_group(sig)

    def kill(self) -> None:
        """SIGKILL the whole process group at once."""
        self.send_signal(signal.SIGKILL)

    async def terminate(self, grace: float) -> int:
        """SIGTERM the group, SIGKILL it after ``grace`` seconds; return the exit status."""
        if self.returncode is None:
            self.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(self._exit), grace)
            except asyncio.TimeoutError:  # not the builtin before Python 3.11
                self.kill()
        return await self.wait()


# -- reading and writing pipes without threads --------------------------------------


async def read_pipe(fd: int) -> bytes:
    """Read ``fd`` until end of file from the event loop; closes it."""
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    chunks: list[bytes] = []
    done: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        try:
            data = os.read(fd, 1 << 16)
        except BlockingIOError:
            return
        except OSError as exc:
            if not done.done():
                done.set_exception(exc)
            return
        if data:
            chunks.append(data)
        elif not done.done():
            done.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await done
    finally:
        loop.remove_reader(fd)
        os.close(fd)
    return b"".join(chunks)


async def write_pipe(fd: int, data: bytes) -> None:
    """Write ``data`` to ``fd`` from the event loop, then close it.

    A reader that goes away early (a command that ignores its input) is not an error.
    """
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    view = memoryview(data)
    done: asyncio.Future[None] = loop.create_future()

    def writable() -> None:
        nonlocal view
        try:
            while view:
                view = view[os.write(fd, view):]
        except BlockingIOError:
            return
        except BrokenPipeError:
            pass
        except OSError as exc:
            if not done.done():
                done.set_exception(exc)
            return
        if not done.done():
            done.set_result(None)

    loop.add_writer(fd, writable)
    try:
        await done
    finally:
        loop.remove_writer(fd)
        os.close(fd)


# -- at interpreter exit ------------------------------------------------------------


@call_at_exit
def _kill_leftovers_at_exit() -> None:
    """Kill whatever the shutdown of the controllers left running (the core calls
    this after it released every controller, so an orderly release comes first)."""
    for process in list(_running):
        process.kill()
