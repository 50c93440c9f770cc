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
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
import subprocess
from collections.abc import Sequence
from typing import IO, Any

from ...core.controller import call_at_exit

log = logging.getLogger("nepi_lab")

#: Every process of this interpreter still running (not yet reaped).
_running: set[Process] = set()

#: Exit status reported when the process was reaped by someone else.
UNKNOWN_STATUS = -1

_devnull: int | None = None


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

    def __init__(self, popen: subprocess.Popen[bytes], command: str, loop: asyncio.AbstractEventLoop) -> None:
        self.command = command
        self.pid = popen.pid
        self._popen = popen
        self._loop = loop
        self._exit: asyncio.Future[int] = loop.create_future()
        self.returncode: int | None = None
        try:
            self._pidfd = os.pidfd_open(self.pid)
        except OSError as exc:
            self._signal_group(signal.SIGKILL)
            popen.wait()
            if exc.errno == errno.ENOSYS:
                raise OSError(exc.errno, "watching processes needs Linux >= 5.3 (pidfd_open)") from exc
            raise
        _running.add(self)
        loop.add_reader(self._pidfd, self._on_exit)

    @classmethod
    async def spawn(cls, argv: Sequence[str], *, command: str, cwd: str | None = None,
                    env: dict[str, str] | None = None, stdin: int | IO[Any] | None = None,
                    stdout: int | IO[Any] | None = None, stderr: int | IO[Any] | None = None,
                    ) -> Process:
        """Start ``argv`` in a new session; ``command`` is what error messages show.

        ``stdin``, ``stdout`` and ``stderr`` are as for :class:`subprocess.Popen`
        (``None`` means :data:`subprocess.DEVNULL` here, never the controller's own).
        """
        loop = asyncio.get_running_loop()
        devnull = _null()
        popen = subprocess.Popen(
            list(argv), cwd=cwd, env=env,
            stdin=devnull if stdin is None else stdin,
            stdout=devnull if stdout is None else stdout,
            stderr=devnull if stderr is None else stderr,
            start_new_session=True, close_fds=True,
        )
        return cls(popen, command, loop)

    def __repr__(self) -> str:
        status = "running" if self.returncode is None else f"exited {self.returncode}"
        return f"<Process pid={self.pid} {status}: {self.command!r}>"

    # -- exit ----------------------------------------------------------------------

    def _on_exit(self) -> None:
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
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
