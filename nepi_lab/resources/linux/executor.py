"""Where a node's commands run and its files live: the :class:`Executor` seam.

A :class:`~nepi_lab.resources.linux.node.Node` never runs anything itself: it holds
one executor and every command, upload and trace read goes through it.  Swapping the
executor changes *where* things happen and nothing else:

- :class:`~nepi_lab.resources.linux._local.LocalExecutor` runs on this machine
  (``hostname="localhost"``); with an argv prefix such as
  ``["ip", "netns", "exec", "h1"]`` it runs inside a network namespace;
- :class:`~nepi_lab.resources.linux._ssh.SshExecutor` runs on an SSH host (any other
  ``hostname``; extra ``ssh``) over one pooled asyncssh connection per account, with the same methods
  and the same guarantees.

Guarantees every executor gives:

- commands are shell command lines, run as ``sh -c`` does; values the caller puts in
  ``env`` never pass through a shell unquoted;
- every process leads its own process group, its end is noticed without polling and
  without a thread per process, and ending it (or its end) kills its whole group;
- once :meth:`Executor.track` named the run, every process carries the run's marker
  (see :mod:`._tracking`), so what leaves its group is still found:
  :meth:`Executor.stop_owner` and :meth:`Executor.stop_tracked` stop it;
- :meth:`Executor.kill_all` kills only what this executor started, never by name.
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
import shlex
from collections.abc import Sequence
from typing import Any

from ...core.errors import CommandError, NepiError
from ...core.errors import CommandTimeoutError as CommandTimeoutError  # re-exported here
from ...core.errors import MissingCommandsError as MissingCommandsError  # re-exported here
from ...core.traces import TraceAttr

#: Bytes of standard error kept in a failure record.
STDERR_TAIL = 2000

#: How many times :meth:`Executor.makedirs` makes a path again whose parent, made or
#: found on the way, was removed meanwhile (by another run of the same experiment on the
#: host, releasing: it removes ``<home>/.nepi_lab/<exp_id>`` and ``.nepi_lab`` once they
#: are empty).  Each time means another removal in the microseconds between two
#: ``mkdir``: past this many, the path's parent is missing for another reason.
MAKEDIRS_ATTEMPTS = 10


class LeftOnHostError(NepiError, ConnectionError):
    """Release could not reach a host: what ``left`` lists may still run and lie there.

    ``left`` holds ``processes`` (each with its ``process_group`` and ``command``) and
    ``folders``; the run's ``hosts.json`` records it, and ``nepi-lab cleanup`` stops and
    collects it once the host answers again.
    """

    def __init__(self, message: str, where: str, left: dict[str, Any]) -> None:
        super().__init__(message)
        self.where = where
        self.left = left


@dataclasses.dataclass(frozen=True)
class CommandResult:
    """What a finished command gave back, as :class:`subprocess.CompletedProcess` does.

    Example
    -------
    >>> r = CommandResult(0, "hello\\n", "")
    >>> r.returncode, r.stdout
    (0, 'hello\\n')
    """

    returncode: int  #: exit status; negative: killed by that signal
    stdout: str  #: standard output, decoded as UTF-8 (bad bytes replaced)
    stderr: str  #: standard error, likewise
    command: str = ""  #: the command line that ran

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict."""
        return dataclasses.asdict(self)

    def check_returncode(self, where: str = "") -> None:
        """Raise :class:`~nepi_lab.CommandError` if the command failed."""
        if self.returncode != 0:
            raise CommandError(self.command, self.returncode, self.stderr[-STDERR_TAIL:], where)


class ProcessHandle(abc.ABC):
    """A running command started by :meth:`Executor.spawn`."""

    pid: int
    command: str
    returncode: int | None  #: None while it runs

    @abc.abstractmethod
    async def wait(self) -> int:
        """Return its exit status once it ended; cancelling the wait leaves it running."""

    @abc.abstractmethod
    def kill(self) -> None:
        """SIGKILL its whole process group now."""

    @abc.abstractmethod
    async def terminate(self, grace: float) -> int:
        """SIGTERM its group, SIGKILL after ``grace`` seconds; return the exit status."""


class Executor(abc.ABC):
    """Runs commands and moves files for one host.  Paths are POSIX paths on that host."""

    #: How messages name the host ("localhost", "alice@server:22").
    where: str = "?"
    #: ``<exp_id>/<run_id>`` of the run whose processes this executor marks (None: unmarked).
    tracked_run: str | None = None
    #: The guid that owns the commands started without an ``owner`` (the node's).
    owner: int | None = None
    #: Whether a spawn may wait for a limit of this machine (:meth:`spawn_queue` says why).
    queues_spawns: bool = False

    def track(self, run: str, owner: int) -> None:
        """Mark every process started from now on as run ``run``'s; commands without an
        ``owner`` belong to ``owner`` (the node).  See :mod:`._tracking`."""
        self.tracked_run = run
        self.owner = owner

    async def connect(self) -> None:  # noqa: B027 - optional hook
        """Open what the executor needs (a connection); called once at discover."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Close it; called at the node's release."""

    # -- commands --------------------------------------------------------------------

    @abc.abstractmethod
    async def run(self, command: str, *, check: bool = True, timeout: float | None = None,
                  input: str | bytes | None = None, cwd: str | None = None,
                  env: dict[str, str] | None = None) -> CommandResult:
        """Run ``command``, wait for it, return its output (see ``Node.run``)."""

    @abc.abstractmethod
    async def spawn(self, command: str, *, stdout: str, stderr: str, stdin: str | None = None,
                    cwd: str | None = None, env: dict[str, str] | None = None,
                    path: Sequence[str] = (), owner: int | None = None) -> ProcessHandle:
        """Start ``command`` with its streams in files on the host; return at once.

        ``stderr`` equal to ``stdout`` sends both to that file.  Files are appended
        to.  ``stdin`` is a file on the host (None: empty input).  ``env`` adds
        variables to the host's environment; ``path`` lists folders put first on PATH.
        ``owner`` is the guid of the application the command is for (default: the
        node's): :meth:`stop_owner` stops whatever it leaves running.
        """

    @abc.abstractmethod
    def kill_all(self) -> int:
        """Kill every process group this executor started that still runs; return how many."""

    async def stop_owner(self, owner: int) -> int:
        """Stop every process started for ``owner`` that still runs, also those that left
        their process group; return how many were stopped."""
        return 0

    async def stop_tracked(self) -> int:
        """:meth:`stop_owner` for every owner this executor started processes for."""
        return 0

    async def reconnect(self) -> bool:
        """Whether the host can be reached now, trying once more if it was lost."""
        return True

    def spawn_queue(self) -> str | None:
        """Why a command started now would wait before it runs (None: it would not)."""
        return None

    def left_on_host(self, owner: int | None = None) -> list[dict[str, Any]]:
        """Processes of ``owner`` (None: every owner) whose end this executor did not see,
        each ``{"owner", "process_group", "command", ...}``: what may still run on an
        unreachable host."""
        return []

    async def missing_commands(self, names: Sequence[str], path: Sequence[str] = ()) -> list[str]:
        """The ``names`` that are not commands on the host (``path`` searched first).

        The default asks the host's shell, with one command for all names.
        """
        if not names:
            return []
        script = "; ".join(
            f"command -v {shlex.quote(n)} >/dev/null 2>&1 || printf '%s\\n' {shlex.quote(n)}" for n in names
        )
        if path:
            script = f"PATH={shlex.quote(':'.join(path))}:\"$PATH\"; {script}"
        result = await self.run(script, check=False)
        return [line for line in result.stdout.splitlines() if line]

    async def listening_tcp_ports(self) -> set[int]:
        """TCP ports with a socket in LISTEN state on the host (its network namespace)."""
        result = await self.run("cat /proc/net/tcp /proc/net/tcp6 2>/dev/null", check=False)
        return parse_proc_net_tcp(result.stdout)

    # -- files -----------------------------------------------------------------------

    @abc.abstractmethod
    async def home_dir(self) -> str:
        """The user's home folder on the host."""

    @abc.abstractmethod
    async def makedirs(self, path: str) -> None:
        """Create folder ``path`` and its parents (existing is fine).

        A parent removed between two of its ``mkdir`` (a run of the same experiment on
        the host, releasing, removes the experiment's folder once it is empty) is made
        again, up to :data:`MAKEDIRS_ATTEMPTS` times."""

    @abc.abstractmethod
    async def write_file(self, path: str, data: str | bytes, mode: int = 0o644) -> None:
        """Write ``data`` to file ``path`` on the host."""

    @abc.abstractmethod
    async def upload(self, local: str, remote: str) -> None:
        """Copy local file or folder ``local`` to ``remote`` on the host."""

    @abc.abstractmethod
    async def download(self, remote: str, local: str) -> bool:
        """Copy file ``remote`` to local ``local``; False if ``remote`` does not exist."""

    async def download_many(self, pairs: Sequence[tuple[str, str]]) -> list[bool]:
        """:meth:`download` each ``(remote, local)`` pair, concurrently where that helps."""
        return list(await asyncio.gather(*(self.download(remote, local) for remote, local in pairs)))

    @abc.abstractmethod
    async def read_file(self, path: str, attr: TraceAttr = TraceAttr.ALL, block: int = 512,
                        offset: int = 0) -> str | bytes | int:
        """Read file ``path`` in one of the trace modes (a missing file reads as empty)."""

    async def list_files(self, folder: str) -> list[str]:
        """Names of the regular files directly in ``folder`` (no links, no folders; sorted;
        empty if ``folder`` is missing).  Names holding a newline are not listed reliably."""
        script = ('cd "$1" 2>/dev/null || exit 0; for f in * .[!.]* ..?*; do '
                  '[ -f "$f" ] && [ ! -L "$f" ] && printf "%s\\n" "$f"; done; exit 0')
        result = await self.run(f"sh -c {shlex.quote(script)} list {shlex.quote(folder)}")
        return sorted(result.stdout.splitlines())

    @abc.abstractmethod
    async def tail(self, path: str, size: int = STDERR_TAIL) -> str:
        """The last ``size`` bytes of file ``path``, decoded ('' if missing)."""

    @abc.abstractmethod
    async def remove_tree(self, path: str) -> None:
        """Remove folder ``path`` and everything in it (missing is fine)."""

    @abc.abstractmethod
    async def remove_empty_dirs(self, paths: Sequence[str]) -> None:
        """Remove each folder of ``paths``, in order, if it is empty."""


def parse_proc_net_tcp(text: str) -> set[int]:
    """Local ports in LISTEN state (``0A``) in the text of ``/proc/net/tcp{,6}``.

    Example
    -------
    >>> parse_proc_net_tcp("  0: 0100007F:1451 00000000:0000 0A 0:0 ...")
    {5201}
    """
    ports = set()
    for line in text.splitlines():
        fields = line.split()
        if len(fields) > 3 and fields[3] == "0A" and ":" in fields[1]:
            try:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
            except ValueError:
                continue
    return ports
