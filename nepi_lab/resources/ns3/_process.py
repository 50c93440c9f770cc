"""The controller's side of a simulation's worker process (see :mod:`._worker`).

A :class:`WorkerProcess` lives on the controller's event loop: an asyncio subprocess,
its JSON lines read as they come, its standard error drained into a bounded tail (an
ns-3 abort prints a backtrace of thousands of lines), nothing that blocks the loop.
Every worker started by this interpreter is tracked until it is reaped, and killed
at interpreter exit if an orderly release did not; the worker also dies with the
thread that started it (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import importlib.util
import json
import os
import re
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from ...core.controller import call_at_exit
from ...core.errors import NepiError

#: What a missing ns-3 asks the user to do.
INSTALL_HINT = "pip install 'nepi_lab[ns3]'"

#: ns-3's NS_FATAL_ERROR / NS_ASSERT line: ``msg="...", file=...``.
_FATAL = re.compile(r'msg="(?P<msg>.*?)"(?:, +file=|\s*$)')
_NOISE = ("[runStaticInitializersOnce]",)


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


_live: dict[int, asyncio.subprocess.Process] = {}
_live_lock = threading.Lock()


def live_pids() -> list[int]:
    """Process ids of the worker processes this interpreter started and did not reap."""
    with _live_lock:
        return list(_live)


@call_at_exit
def _kill_live_at_exit() -> None:
    for pid in live_pids():
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


class WorkerProcess:
    """One simulation's worker process: start it, build, run, kill.

    ``on_event(message)`` is called on the loop for every JSON line after ``ready``.
    """

    def __init__(self, on_event: Callable[[dict[str, Any]], None]) -> None:
        self.on_event = on_event
        self.process: asyncio.subprocess.Process | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=200)
        self._fatal: str | None = None
        self._events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._readers: list[asyncio.Task[Any]] = []

    @property
    def pid(self) -> int | None:
        """The worker's process id (None before it started)."""
        return None if self.process is None else self.process.pid

    async def start(self, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Start the worker, send it ``spec`` and return its ``ready`` message.

        Raises :class:`SimulationError` with ns-3's message when the build fails or
        the process dies, and after ``timeout`` seconds without an answer.
        """
        env = dict(os.environ)
        # the parent's sys.path (a source checkout on PYTHONPATH, a notebook's path)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "nepi_lab.resources.ns3._worker",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=env, start_new_session=True, limit=1 << 20,
        )
        with _live_lock:
            _live[self.process.pid] = self.process
        self._readers = [asyncio.ensure_future(self._read_stdout()),
                         asyncio.ensure_future(self._read_stderr())]
        self._send(spec)
        try:
            message = await asyncio.wait_for(self._next(), timeout)
        except SimulationError:
            await self.kill()
            raise
        except asyncio.TimeoutError:
            await self.kill()
            raise SimulationError(f"the ns-3 worker did not build the simulation within {timeout:g} s",
                                  self.stderr_tail()) from None
        return message

    def _send(self, message: dict[str, Any]) -> None:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write((json.dumps(message) + "\n").encode())

    async def _next(self) -> dict[str, Any]:
        message = await self._events.get()
        if message is None:  # the process ended without a word
            raise SimulationError(await self._death(), self.stderr_tail())
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

    async def _read_stdout(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        try:
            async for line in self.process.stdout:
                try:
                    self._events.put_nowait(json.loads(line))
                except ValueError:
                    self._tail.append(line.decode(errors="replace").rstrip())
        finally:
            self._events.put_nowait(None)

    async def _read_stderr(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        async for raw in self.process.stderr:
            line = raw.decode(errors="replace").rstrip()
            if not line or line.startswith(_NOISE):
                continue
            match = _FATAL.search(line)
            if match and self._fatal is None:
                self._fatal = match["msg"]
            self._tail.append(line)

    def stderr_tail(self, lines: int = 20) -> str:
        """The last lines of the worker's standard error (ns-3's noise left out)."""
        return "\n".join(list(self._tail)[-lines:])

    async def _death(self) -> str:
        """Why the worker ended: ns-3's fatal message, else its exit status."""
        assert self.process is not None
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.process.wait(), 5)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.gather(*self._readers, return_exceptions=True), 5)
        code = self.process.returncode
        how = f"exit status {code}"
        if code is not None and code < 0:
            with contextlib.suppress(ValueError):
                how = f"killed by {signal.Signals(-code).name}"
        if self._fatal is not None:
            return f"ns-3 aborted: {self._fatal}"
        last = next((line for line in reversed(self._tail) if not line.startswith("#")), None)
        return f"the ns-3 worker process ended ({how})" + (f": {last}" if last else "")

    async def kill(self) -> None:
        """End the worker (ends its simulation) and reap it; safe to call twice."""
        process = self.process
        if process is None:
            return
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            await process.wait()
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)
        with _live_lock:
            _live.pop(process.pid, None)

    async def quit(self, timeout: float = 5.0) -> None:
        """Ask the worker to end (it closes its traces), then kill it if it does not."""
        process = self.process
        if process is not None and process.returncode is None and process.stdin is not None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                self._send({"do": "quit"})
                process.stdin.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(process.wait(), timeout)
        await self.kill()
