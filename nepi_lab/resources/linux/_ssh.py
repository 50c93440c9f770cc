"""The executor for hosts reached over SSH: :class:`SshExecutor` (extra ``ssh``: asyncssh).

A ``linux::Node`` whose ``hostname`` is not this machine runs its commands and moves
its files through an :class:`SshExecutor`, with the guarantees every
:class:`~.executor.Executor` gives.  How:

Connections
    One SSH connection per (host, port, user) serves every node of the controller on
    that account: a small per-controller pool (:func:`pool_for`), reference-counted,
    closed when the last node using it is released.  Nodes that name the same account
    with different security settings (identity file, known_hosts, host-key checking,
    gateway) get separate connections: a node never borrows a connection whose host
    key it would not have accepted.  A ``gateway`` ([user@]host[:port]) is itself a
    pooled connection, and the node's connection is tunnelled through it.
Channels
    OpenSSH refuses more than ``MaxSessions`` (default 10) sessions on one connection.
    Each connection keeps one SFTP session (files, traces) and one launcher session (see
    Processes), and queues every command of :meth:`SshExecutor.run` on an
    :class:`asyncio.Semaphore` of ``max_sessions - 2``: a command beyond the limit
    waits for a free channel, it never fails.  sshd frees a closed session one turn of
    its loop late, so a closed channel's slot is reused only once the server answered
    a request sent after the close (one request confirms every close before it, and is
    sent only when no slot is free).  Spawned processes hold no channel: a host runs as
    many at once as it can, whatever its ``MaxSessions``.
Packets
    The SSH packets written in one turn of the loop leave in one ``send`` (a corked
    transport under asyncssh: :class:`_Corked`, unless ``~/.ssh/config`` routes hosts
    with ``ProxyJump``, ``ProxyCommand``, ``BindAddress`` or ``AddressFamily``), and
    AES-GCM is offered before ChaCha20-Poly1305 unless ``~/.ssh/config`` names the ciphers.  When an
    application's command ends, its supervisor lists the folder (see Processes; when the
    listing is short: at most 900 characters), so its
    traces are collected without listing it again: an empty trace costs no request, a
    non-empty one a ``stat`` and a read.  Otherwise (at release, after a lost connection)
    one SFTP listing of its folder gives names and sizes (an empty trace then costs no
    further request) and a read per non-empty file follows; no shell runs for it.
Checks
    Host keys are verified by default, against ``serverKey`` (the key itself, NEPI's way),
    else ``knownHosts`` or ``~/.ssh/known_hosts``;
    only ``strictHostKeyChecking=False`` turns that off.  Every connection failure
    fails the node at once with its reason, and is never retried in a loop: an
    authentication refused (:class:`SshAuthenticationError`), a host key unknown or
    changed (:class:`SshHostKeyError`), a host unreachable, a port closed or a timeout
    (:class:`SshUnreachableError`).
Commands
    Every command line runs in ``sh -c``, as on this machine, whatever the user's login
    shell; environment values travel on the channel's standard input, never in a
    command line that other users of the host can read with ``ps``.
Processes
    One long-lived launcher per connection (``_LAUNCHER``, a POSIX shell reading
    requests on its standard input; bash wherever there is one, started with the
    connection: its first line names the login shell, so no session is spent asking)
    starts every spawned command: a request is a length, then a line of quoted
    arguments and the environment and working directory (:func:`_prelude`), never in a
    command line; bash reads it in one ``read -N``.  For
    each, the launcher forks a supervisor subshell that starts the command in a process
    group of its own (bash's job control, else ``setsid``), with its streams in files on
    the host; it writes the group id, its own pid and start time to
    ``.<stdout name>.<token>.pid`` beside the stdout file and prints the group id
    (``pid`` of the handle), or why it could not start it.  Signals go to the launcher,
    which sends them to the group unless the command ended.  The supervisor kills what
    the command left in its group once it ended, writes the exit status to
    ``.<stdout name>.<token>.exit``, then prints the status with the regular files of the
    stdout file's folder (each as empty or not; shell builtins only) in one line: the end
    is noticed without polling and without a channel per process.  The supervisors
    outlive the launcher: killed, the next spawn starts another one, and its supervisors
    still report through its channel (open as long as one of them runs); its connection
    lost, each running process is re-attached as below.  A supervisor killed from
    outside before it recorded the end is noticed by the launcher within about a second
    (bash only): the wait fails with :class:`SupervisorLostError`.  A spawn cancelled
    once its request was sent is killed as soon as it started (``close`` waits for it).
    :meth:`SshExecutor.kill_all` signals only the groups this executor started.  This
    module's own short commands (the sweep of the run's processes, removing folders)
    also run in subshells of the launcher, not in sessions of their own.
Dropped connections
    Commands run in their own process groups, so they survive a dropped connection.  When a
    connection drops, the pool reconnects, backing off from 0.1 s to 2 s between
    attempts, for the node's ``reconnectTimeout`` (default 30 s); meanwhile commands
    wait, the resources keep their state and ``ec.explain`` says what goes on (the
    executor's ``on_trouble`` callback).  A refused key or a changed host key ends the
    attempts at once.  Once reconnected, each process that was running is re-attached:
    a command on the new connection (one channel per process, queued as commands are)
    waits on the host for the supervisor to end
    (checking ten times a second: the one place that polls, and only after a drop),
    relays signals meanwhile, and prints the exit file, so no outcome is lost.  If the
    time runs out, every process running there fails with
    :class:`SshConnectionLostError` ("... not restored within 30 s ...; outcome
    unknown"), and so does every node using the connection, a moment after its
    applications.  Commands started by :meth:`SshExecutor.run` (short ones) fail the same
    way.  Release tries once more (:meth:`SshExecutor.reconnect`): reached, it stops what
    runs (by the run's marker, see :mod:`._tracking`) and collects the traces; not
    reached, the node records what stays on the host for ``nepi-lab cleanup``.
Markers
    Every command carries the run's marker (``NEPI_LAB_RUN``) in its environment;
    :meth:`SshExecutor.sweep` kills the processes that carry given markers with one
    ``grep -z`` over ``/proc/*/environ`` on the host (the user's own processes: the
    only ones it may signal anyway), which also finds what left its process group.

asyncssh is imported when the first connection opens, never by ``import nepi_lab``;
without it, deploying an SSH node fails with ``pip install 'nepi_lab[ssh]'``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import posixpath
import re
import secrets
import shlex
import stat
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ...core.errors import CommandError, NepiError
from ...core.traces import TraceAttr
from ._batches import Batches
from ._tracking import RUN_VARIABLE, SweepQueue, marker
from .executor import (
    MAKEDIRS_ATTEMPTS,
    STDERR_TAIL,
    CommandResult,
    CommandTimeoutError,
    Executor,
    ProcessHandle,
)

if TYPE_CHECKING:
    from .node import Node

log = logging.getLogger("nepi_lab")

#: What to install when asyncssh is missing.
INSTALL_HINT = "pip install 'nepi_lab[ssh]'"

#: OpenSSH's default ``MaxSessions``: channels one connection may have open at once.
DEFAULT_MAX_SESSIONS = 10

#: Sessions of every connection that are not for commands: the SFTP session and the
#: launcher's (the session that starts every spawned process, see :data:`_LAUNCHER`).
RESERVED_SESSIONS = 2

#: Seconds between keepalive requests, and how many may go unanswered before the
#: connection counts as lost (a host that vanished without closing the connection).
KEEPALIVE_INTERVAL = 10.0
KEEPALIVE_COUNT_MAX = 3

#: Files up to this size are downloaded in one read request; bigger ones in parallel blocks.
DOWNLOAD_IN_ONE = 1 << 18

#: Most folders removed by one ``rm -rf`` command.
REMOVE_BATCH = 200

#: Seconds :meth:`SshExecutor.close` waits for killed processes to report their end.
CLOSE_GRACE = 5.0

#: Seconds a lost connection is retried by default (the node's ``reconnectTimeout``).
DEFAULT_RECONNECT_TIMEOUT = 30.0

#: First and longest pause between two attempts to reconnect (doubling in between).
RECONNECT_FIRST_DELAY = 0.1
RECONNECT_MAX_DELAY = 2.0

#: After a connection was given up, release tries once more to reach the host; the
#: releases that come within this many seconds of a failed try do not try again.
REVIVE_INTERVAL = 5.0

#: Loop turns given to the applications of a node to record their own failure before
#: the node fails because its connection was lost.
_NODE_FAILURE_DELAY_TURNS = 10

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# -- errors ------------------------------------------------------------------------------


class SshError(NepiError, ConnectionError):
    """An SSH connection could not be made or was lost; ``where`` names the account.

    ::

        SshError (also ConnectionError)          .where
        ├── SshAuthenticationError               the host refused our key
        ├── SshHostKeyError                      the host's key is unknown or changed
        ├── SshUnreachableError                  refused, unreachable, timed out
        └── SshConnectionLostError               dropped after it was made; .command
    """

    def __init__(self, message: str, where: str) -> None:
        super().__init__(message)
        self.where = where


class SshAuthenticationError(SshError):
    """The host refused to authenticate us (a key not in its authorized_keys)."""


class SshHostKeyError(SshError):
    """The host's key could not be verified against the known_hosts file."""


class SshUnreachableError(SshError):
    """No SSH connection could be opened: connection refused, host unreachable, timeout."""


class SshConnectionLostError(SshError):
    """The connection dropped and could not be restored; ``command`` is what was running."""

    def __init__(self, message: str, where: str, command: str | None = None) -> None:
        super().__init__(message, where)
        self.command = command


class SupervisorLostError(NepiError):
    """The supervisor of a spawned command on an SSH host ended by a signal (killed from
    outside) before it recorded the command's end: the outcome is unknown, and the
    command's process group (``pgid``) may still run until the release stops it."""

    def __init__(self, message: str, where: str, command: str, pgid: int) -> None:
        super().__init__(message)
        self.where = where
        self.command = command
        self.pgid = pgid


def import_asyncssh(who: str = "SSH") -> Any:
    """Import asyncssh, or fail with the exact install hint."""
    try:
        import asyncssh
    except ModuleNotFoundError:
        raise ModuleNotFoundError(f"{who} needs asyncssh: {INSTALL_HINT}") from None
    return asyncssh


# -- where to connect ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SshTarget:
    """An SSH account and how to reach it safely.

    Example
    -------
    >>> t = SshTarget("example.org", 2222, "alice", gateway=SshTarget.parse_gateway("bob@jump"))
    >>> t.where, t.gateway.where
    ('alice@example.org:2222', 'bob@jump:22')
    """

    host: str
    port: int = 22
    username: str | None = None  #: None: asyncssh's default (~/.ssh/config, else the local user)
    identity_file: str | None = None  #: None: the default keys and the agent
    known_hosts: str | None = None  #: None: ~/.ssh/known_hosts
    #: The host's public key text ("ssh-ed25519 AAAA..."); when given, the only key accepted
    #: (NEPI's ``serverKey``) and known_hosts is not read
    server_key: str | None = None
    strict_host_key_checking: bool = True
    connect_timeout: float = 10.0
    gateway: SshTarget | None = None
    max_sessions: int = DEFAULT_MAX_SESSIONS
    reconnect_timeout: float = DEFAULT_RECONNECT_TIMEOUT  #: seconds a lost connection is retried

    @property
    def where(self) -> str:
        """How messages name it: ``user@host:port``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = f"{self.username}@" if self.username else ""
        return f"{user}{host}:{self.port}"

    @property
    def key(self) -> tuple[Any, ...]:
        """What the pool keys connections by: the account, and the settings that guard it."""
        return (self.host, self.port, self.username or "", self.identity_file, self.known_hosts_file,
                self.server_key, self.strict_host_key_checking, self.gateway.key if self.gateway else None)

    @property
    def known_hosts_file(self) -> str:
        return os.path.expanduser(self.known_hosts or "~/.ssh/known_hosts")

    def to_dict(self) -> dict[str, Any]:
        """How to reach the account again (for a run record): no secret, only paths and names."""
        data = dataclasses.asdict(self)
        data["gateway"] = self.gateway.to_dict() if self.gateway else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SshTarget:
        """The target :meth:`to_dict` described."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if values.get("gateway"):
            values["gateway"] = cls.from_dict(values["gateway"])
        return cls(**values)

    @classmethod
    def parse_gateway(cls, text: str, **options: Any) -> SshTarget:
        """A jump host from ``[user@]host[:port]`` (``[v6 address]:port`` for IPv6)."""
        user, _, hostport = text.rpartition("@")
        m = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?|([^:\[\]]+)(?::(\d+))?", hostport)
        if not m or not hostport:
            raise ValueError(f"gateway {text!r} is not [user@]host[:port]")
        host = m.group(1) or m.group(3)
        port = int(m.group(2) or m.group(4) or 22)
        return cls(host, port, user or None, **options)


# -- the pool ------------------------------------------------------------------------------


class _Connection:
    """One pooled SSH connection, shared by every executor with the same :attr:`SshTarget.key`."""

    def __init__(self, pool: SshPool, target: SshTarget) -> None:
        self.pool = pool
        self.target = target
        self.refs = 0
        self.conn: Any = None  # asyncssh.SSHClientConnection while open
        self.sessions = asyncio.Semaphore(max(1, target.max_sessions - RESERVED_SESSIONS))
        self.executors: weakref.WeakSet[SshExecutor] = weakref.WeakSet()
        self.gateway: _Connection | None = None
        self.closing = False
        self.dead: SshConnectionLostError | None = None  # lost, and reconnecting failed
        self.trouble: str | None = None  # while reconnecting: what happened and what is tried
        self._reviving: asyncio.Future[bool] | None = None
        self._revive_failed_at = -1e9
        self.posix_login = False  # whether the login shell runs POSIX scripts (see _script)
        #: the shell the launcher runs in; None: bash where there is one, else ``sh``
        self.launcher_shell: str | None = None
        self._opening: asyncio.Future[Any] | None = None
        self._recovery: asyncio.Task[None] | None = None
        self._sftp: Any = None
        self._sftp_lock = asyncio.Lock()
        self._closed_slots: list[asyncio.Semaphore] = []
        self._barrier: asyncio.Task[None] | None = None
        self._launcher: _Launcher | None = None
        self._launching: asyncio.Future[_Launcher] | None = None

    def __repr__(self) -> str:
        state = "dead" if self.dead else "open" if self.conn else "closed"
        return f"<ssh connection {self.target.where} {state} refs={self.refs}>"

    # -- opening ---------------------------------------------------------------------------

    async def connection(self) -> Any:
        """The open asyncssh connection; waits for a reconnection in progress."""
        conn = self.conn
        if conn is not None:
            if not conn.is_closed():
                return conn
            self._lost(conn, None)  # closed, and asyncssh has not said so yet
        if self._recovery is not None and not self._recovery.done():
            await asyncio.shield(self._recovery)
        if self.dead is not None:
            raise self.dead
        if self.closing:
            where = self.target.where
            raise SshConnectionLostError(f"SSH connection to {where} is closed", where)
        return await self.open()

    async def open(self) -> Any:
        """Open the connection (shared by concurrent callers); raises an :class:`SshError`."""
        if self.conn is not None:
            return self.conn
        if self._opening is None:
            self._opening = asyncio.ensure_future(self._open())
            self._opening.add_done_callback(self._opened)
        return await asyncio.shield(self._opening)

    def _opened(self, future: asyncio.Future[Any]) -> None:
        self._opening = None
        if not future.cancelled():
            future.exception()  # retrieved: every caller got it

    async def _open(self) -> Any:
        asyncssh = import_asyncssh(f"the SSH connection to {self.target.where}")
        target = self.target
        if target.identity_file is not None and not os.path.exists(os.path.expanduser(target.identity_file)):
            raise SshAuthenticationError(
                f"cannot log in to {target.where} over SSH: identity file {target.identity_file!r} does not "
                f"exist", target.where)
        known_hosts: Any = None
        if target.strict_host_key_checking and target.server_key:
            try:
                known_hosts = ([asyncssh.import_public_key(target.server_key)], [], [])
            except (asyncssh.KeyImportError, ValueError) as exc:
                raise SshHostKeyError(
                    f"cannot verify the SSH host key of {target.where}: serverKey is not an SSH public key "
                    f"({exc}); give the key as known_hosts holds it, e.g. 'ssh-ed25519 AAAA...'",
                    target.where) from None
        elif target.strict_host_key_checking:
            known_hosts = _known_hosts(target.known_hosts_file)
            if known_hosts is None:  # no such file, trust no key: the host is reached, then refused
                known_hosts = ([], [], [])
        # a direct TCP connection whose writes leave once a loop turn, unless ~/.ssh/config
        # routes hosts (asyncssh's own connection then follows it)
        tunnel: Any = () if _route_configured() else _Corked()
        if target.gateway is not None:
            if self.gateway is None:
                self.gateway = await self.pool.acquire(target.gateway)
            tunnel = await self.gateway.connection()
        options: dict[str, Any] = {
            "known_hosts": known_hosts,
            "connect_timeout": target.connect_timeout or None,
            "keepalive_interval": KEEPALIVE_INTERVAL,
            "keepalive_count_max": KEEPALIVE_COUNT_MAX,
            "client_factory": lambda: _client_factory(self),
        }
        if not _ciphers_configured():
            options["encryption_algs"] = _encryption_algs()
        if target.username:
            options["username"] = target.username
        if target.identity_file is not None:
            # that key only: no agent, no default keys, so a refusal is one attempt
            options["client_keys"] = [os.path.expanduser(target.identity_file)]
            options["agent_path"] = None
        try:
            conn = await asyncssh.connect(target.host, target.port, tunnel=tunnel, **options)
        except Exception as exc:
            raise explain_connect_error(exc, target) from exc
        # the SFTP session opens meanwhile: every node asks for its home folder next
        sftp = asyncio.ensure_future(conn.start_sftp_client())
        sftp.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved even if unused
        try:
            # the launcher starts at once: its first line names the login shell (no session
            # of its own to ask it)
            channel = await conn.create_process(_launch(self.launcher_shell), encoding=None)
            first = await channel.stdout.readline()  # as the probe was: no timeout but the keepalive's
            if first.startswith(b"S "):
                self.posix_login = posixpath.basename(_decode(first[2:]).strip()) in POSIX_SHELLS
                self._launcher = _Launcher(conn, channel)
            else:  # its login shell could not run it: asked for again at the first spawn
                channel.close()
                probe = await conn.run('echo "$SHELL"', check=False)  # csh and fish read it too
                self.posix_login = posixpath.basename(_decode(probe.stdout).strip()) in POSIX_SHELLS
                await self._server_turn(conn)  # these sessions are gone before others open
        except BaseException as exc:
            sftp.cancel()
            conn.close()
            if not isinstance(exc, Exception):
                raise
            raise explain_connect_error(exc, target) from exc
        try:
            self._sftp = await sftp
        except Exception:  # e.g. no SFTP there: the first file operation says so, as before
            self._sftp = None
        self.conn = conn
        self.dead = None
        return conn

    async def sftp(self) -> Any:
        """The connection's SFTP session (opened on first use; one reserved channel)."""
        if self._sftp is not None and self.conn is not None:
            return self._sftp
        async with self._sftp_lock:
            if self._sftp is None or self.conn is None:
                conn = await self.connection()
                with translate_errors(self.target.where):
                    self._sftp = await conn.start_sftp_client()
            return self._sftp

    async def launcher(self) -> _Launcher:
        """The launcher of the open connection (started on first use, and again after a
        reconnection or if it was lost; one reserved channel)."""
        conn = await self.connection()
        launcher = self._launcher
        if launcher is not None and not launcher.closed and launcher.conn is conn:
            return launcher
        if self._launching is None:
            self._launching = asyncio.ensure_future(self._start_launcher(conn, launcher))
            self._launching.add_done_callback(self._launched)
        return await asyncio.shield(self._launching)

    def _launched(self, future: asyncio.Future[_Launcher]) -> None:
        self._launching = None
        if not future.cancelled():
            future.exception()  # retrieved: every caller got it

    async def _start_launcher(self, conn: Any, previous: _Launcher | None) -> _Launcher:
        if previous is not None and previous.conn is conn:  # lost on this connection: its
            with contextlib.suppress(Exception):  # session is freed before another opens
                await self._server_turn(conn)
        with translate_errors(self.target.where):
            channel = await conn.create_process(_launch(self.launcher_shell), encoding=None)
        self._launcher = _Launcher(conn, channel)
        return self._launcher

    # -- channels --------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def session(self, slots: asyncio.Semaphore | None = None) -> Any:
        """Hold one channel of ``slots`` (default: the command channels) for the block."""
        slots = await self.acquire(slots)
        try:
            yield
        finally:
            self.give_back(slots)

    async def acquire(self, slots: asyncio.Semaphore | None = None) -> asyncio.Semaphore:
        """Take a channel slot of ``slots`` (default: the command channels), waiting for one."""
        slots = slots or self.sessions
        if slots.locked():  # every slot is taken or unconfirmed: confirm the closed ones
            self._confirm_closed()
        await slots.acquire()
        return slots

    def give_back(self, slots: asyncio.Semaphore) -> None:
        """A channel of ``slots`` closed: its slot is free once the server surely freed it too.

        sshd frees a session a moment after the channel's close arrives (on its next
        loop turn), so a channel opened at once in its place can be refused ("no more
        sessions").  A closed channel's slot is given back once the server answered a
        request sent after the close; one request confirms every channel closed before
        it, and it is sent only when a slot is needed (none is free), so commands run
        one after the other never wait for it.
        """
        self._closed_slots.append(slots)
        if slots.locked():
            self._confirm_closed()

    @staticmethod
    async def _server_turn(conn: Any) -> None:
        """Return once the server answered a request sent now (it processed what came before)."""
        # asyncssh has no public call for a global request with a reply; its own
        # keepalive uses this one
        await asyncio.wait_for(conn._make_global_request(b"keepalive@openssh.com"), KEEPALIVE_INTERVAL)

    def _confirm_closed(self) -> None:
        if self._closed_slots and self._barrier is None:
            self._barrier = asyncio.ensure_future(self._free_closed_slots())

    async def _free_closed_slots(self) -> None:
        try:
            while self._closed_slots:
                closed, self._closed_slots = self._closed_slots, []
                conn = self.conn
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):  # lost: the next connection starts afresh
                        await self._server_turn(conn)
                for slots in closed:
                    slots.release()
        finally:
            self._barrier = None

    # -- loss and recovery -------------------------------------------------------------------

    def _lost(self, conn: Any, exc: Exception | None) -> None:
        """asyncssh says ``conn`` is gone: reconnect (see :meth:`_recover`)."""
        if conn is not self.conn:
            return
        self.conn = None
        self._sftp = None
        if self.closing:
            return
        reason = str(exc) if exc else "closed by the host"
        log.warning("SSH connection to %s lost: %s; reconnecting for up to %g s (reconnectTimeout)",
                    self.target.where, reason, self.target.reconnect_timeout)
        self._recovery = asyncio.ensure_future(self._recover(reason))

    async def _recover(self, reason: str) -> None:
        """Reconnect, backing off from 0.1 s to 2 s between attempts, for at most
        ``reconnect_timeout`` seconds; meanwhile commands wait and resources keep their
        state.  A refused key or a changed host key ends it at once: that is no network
        hiccup.  If it fails, the connection is dead: its processes and nodes fail."""
        loop = asyncio.get_running_loop()
        target = self.target
        lost_at = time.time()
        deadline = loop.time() + target.reconnect_timeout
        delay = RECONNECT_FIRST_DELAY
        attempt = 0
        error: Exception | None = None
        while True:
            attempt += 1
            self._set_trouble(
                f"SSH connection to {target.where} lost at {_clock(lost_at)} ({reason}); reconnecting "
                f"(attempt {attempt}, until {_clock(lost_at + target.reconnect_timeout)}"
                f"{f'; last: {error}' if error else ''})")
            try:
                await self.open()
            except (SshAuthenticationError, SshHostKeyError) as exc:
                error = exc
                break
            except Exception as exc:
                error = exc
                if loop.time() + delay > deadline:
                    break
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_DELAY)
                continue
            log.warning("SSH connection to %s restored after %.1f s (attempt %s)", target.where,
                        time.time() - lost_at, attempt)
            self._set_trouble(None)
            return
        self.dead = SshConnectionLostError(
            f"SSH connection to {target.where} lost ({reason}) and not restored within "
            f"{target.reconnect_timeout:g} s (reconnectTimeout, {attempt} attempts): {error}", target.where)
        self._revive_failed_at = loop.time()
        self._set_trouble(None)
        for executor in list(self.executors):
            executor._connection_dead(self.dead)

    def _set_trouble(self, text: str | None) -> None:
        if text == self.trouble:
            return
        self.trouble = text
        for executor in list(self.executors):
            executor._connection_trouble(text)

    async def revive(self) -> bool:
        """After the connection was given up: try once more to open it (release uses this
        to stop what runs on the host and collect its traces).  Concurrent callers share
        one attempt; after a failed one, callers within :data:`REVIVE_INTERVAL` seconds
        are answered False at once."""
        if self.dead is None:
            return not self.closing
        if self.closing:
            return False
        if self._reviving is None:
            loop = asyncio.get_running_loop()
            if loop.time() - self._revive_failed_at < REVIVE_INTERVAL:
                return False
            self._reviving = asyncio.ensure_future(self._revive())
        return await asyncio.shield(self._reviving)

    async def _revive(self) -> bool:
        try:
            await self.open()
        except Exception as exc:
            log.info("SSH connection to %s still cannot be opened: %s", self.target.where, exc)
            self._revive_failed_at = asyncio.get_running_loop().time()
            return False
        finally:
            self._reviving = None
        log.warning("SSH connection to %s opened again after it was given up", self.target.where)
        return True

    # -- closing ---------------------------------------------------------------------------

    async def close(self) -> None:
        self.closing = True
        for task in (self._recovery, self._opening, self._reviving):
            if task is not None and not task.done():
                task.cancel()
        conn, self.conn, self._sftp = self.conn, None, None
        if conn is not None:
            conn.close()
            with contextlib.suppress(Exception):
                await conn.wait_closed()
        if self.gateway is not None:
            gateway, self.gateway = self.gateway, None
            await self.pool.release(gateway)


#: Ciphers tried first: AES-GCM costs a fifth of ChaCha20-Poly1305 (asyncssh's first
#: choice) per packet here, with AES instructions on both ends; the rest of asyncssh's
#: list follows, for hosts without them.  A ``Ciphers`` line in ``~/.ssh/config`` (which
#: asyncssh reads) wins: then asyncssh's choice stands.
PREFERRED_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")


def _encryption_algs() -> list[str]:
    """asyncssh's default ciphers, :data:`PREFERRED_CIPHERS` first."""
    from asyncssh.encryption import get_default_encryption_algs

    default = [alg.decode() for alg in get_default_encryption_algs()]
    return [alg for alg in PREFERRED_CIPHERS if alg in default] + [
        alg for alg in default if alg not in PREFERRED_CIPHERS]


#: known_hosts files parsed: path -> (the file's bytes, asyncssh's SSHKnownHosts of them).
_known_hosts_read: dict[str, tuple[bytes, Any]] = {}


def _known_hosts(path: str) -> Any:
    """The known_hosts file ``path`` as asyncssh's parsed ``SSHKnownHosts``, parsed again
    only when its bytes changed; None: it does not exist.

    Named by its path, asyncssh reads and parses the file, every key in it, at each
    connection: a fleet's 50 connections parsed 50 keys each, and a long-used
    ``~/.ssh/known_hosts`` holds hundreds.  Reading the file is cheap, parsing it is
    not.  A file that cannot be read or parsed is returned as its path: the connection
    then fails on it with asyncssh's own message, as before.
    """
    import asyncssh

    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    except OSError:
        return path
    known = _known_hosts_read.get(path)
    if known is not None and known[0] == data:
        return known[1]
    try:
        parsed = asyncssh.import_known_hosts(data.decode())
    except (ValueError, UnicodeDecodeError):
        return path
    if len(_known_hosts_read) >= 16:  # files of runs long gone (tests make many)
        _known_hosts_read.clear()
    _known_hosts_read[path] = (data, parsed)
    return parsed


def _ciphers_configured(path: str = "~/.ssh/config") -> bool:
    """Whether the user's SSH client configuration may choose the ciphers (a ``Ciphers``
    or an ``Include`` line), in which case nepi_lab leaves the choice to it."""
    return _configured(("ciphers",), path)


def _route_configured(path: str = "~/.ssh/config") -> bool:
    """Whether the user's SSH client configuration may say how to reach a host (a
    ``ProxyJump``, ``ProxyCommand``, ``BindAddress``, ``AddressFamily`` or ``Include``
    line): asyncssh honours those only without a ``tunnel``, so no :class:`_Corked` then."""
    return _configured(("proxyjump", "proxycommand", "bindaddress", "addressfamily"), path)


def _configured(keywords: tuple[str, ...], path: str) -> bool:
    """Whether the SSH client configuration at ``path`` has a line with one of
    ``keywords`` or an ``Include`` (which may hold any)."""
    try:
        with open(os.path.expanduser(path), encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return False
    names = "|".join((*keywords, "include"))
    return re.search(rf"^\s*({names})\b", text, re.IGNORECASE | re.MULTILINE) is not None


class _Corked:
    """An asyncssh ``tunnel`` that is a plain TCP connection whose writes made in one
    turn of the loop leave in one ``send``.

    asyncssh sends every SSH packet (and the empty ``MSG_IGNORE`` it puts before each
    one) with a write of its own, and the socket has ``TCP_NODELAY``: 100 applications
    starting together made thousands of ``send`` calls, each waking sshd.  Joined, the
    packets of one turn (channel opens, SFTP requests, closes) are one segment.
    """

    async def create_connection(self, session_factory: Callable[[], Any], host: str,
                                port: int) -> tuple[Any, Any]:
        sessions: list[Any] = []

        def protocol() -> _CorkedProtocol:
            sessions.append(session_factory())
            return _CorkedProtocol(sessions[-1])

        transport, _ = await asyncio.get_running_loop().create_connection(protocol, host, port)
        return transport, sessions[0]


class _CorkedProtocol(asyncio.Protocol):
    """Hands asyncssh's connection a :class:`_CorkedTransport`; passes everything else on."""

    def __init__(self, session: Any) -> None:
        self._session = session

    def connection_made(self, transport: Any) -> None:
        self._session.connection_made(_CorkedTransport(transport))

    def connection_lost(self, exc: Exception | None) -> None:
        self._session.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._session.data_received(data)

    def eof_received(self) -> bool | None:
        return self._session.eof_received()

    def pause_writing(self) -> None:
        self._session.pause_writing()

    def resume_writing(self) -> None:
        self._session.resume_writing()


class _CorkedTransport:
    """A transport whose writes of one loop turn are joined and written at the next
    (see :class:`_Corked`); closing writes what is pending first."""

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self._pending: list[bytes] = []
        self._loop = asyncio.get_running_loop()

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def _flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def _clock(when: float) -> str:
    """A wall-clock time, HH:MM:SS."""
    return time.strftime("%H:%M:%S", time.localtime(when))


def _client_factory(owner: _Connection) -> Any:
    """An asyncssh ``SSHClient`` that tells ``owner`` when its connection is lost."""
    import asyncssh

    class Client(asyncssh.SSHClient):
        _conn: Any = None

        def connection_made(self, conn: Any) -> None:
            self._conn = conn

        def connection_lost(self, exc: Exception | None) -> None:
            owner._lost(self._conn, exc)

    return Client()


class SshPool:
    """The SSH connections of one controller, by :attr:`SshTarget.key`, reference-counted."""

    def __init__(self) -> None:
        self._connections: dict[tuple[Any, ...], _Connection] = {}

    def __len__(self) -> int:
        return len(self._connections)

    def connections(self) -> list[_Connection]:
        """The connections open or opening (for tests and ``repr``)."""
        return list(self._connections.values())

    async def acquire(self, target: SshTarget) -> _Connection:
        """The open connection for ``target`` (made if needed), with one more reference."""
        entry = self._connections.get(target.key)
        if entry is None or entry.closing:
            entry = self._connections[target.key] = _Connection(self, target)
        entry.refs += 1
        try:
            await entry.connection()
        except BaseException:
            await self.release(entry)
            raise
        return entry

    async def release(self, entry: _Connection) -> None:
        """One reference less; the last one closes the connection."""
        entry.refs -= 1
        if entry.refs > 0:
            return
        if self._connections.get(entry.target.key) is entry:
            del self._connections[entry.target.key]
        await entry.close()


#: One pool per controller (or per any object an executor is made for).
_pools: weakref.WeakKeyDictionary[Any, SshPool] = weakref.WeakKeyDictionary()


def pool_for(owner: Any) -> SshPool:
    """The SSH connection pool of ``owner`` (an ExperimentController), made on first use."""
    pool = _pools.get(owner)
    if pool is None:
        pool = _pools[owner] = SshPool()
    return pool


def explain_connect_error(exc: BaseException, target: SshTarget) -> SshError:
    """An asyncssh or socket error turned into an :class:`SshError` that says what to do."""
    if isinstance(exc, SshError):
        return exc
    import asyncssh

    where = target.where
    if isinstance(exc, asyncssh.HostKeyNotVerifiable) and target.server_key:
        return SshHostKeyError(
            f"SSH host key of {where} not verified ({exc.reason}): the host did not present the key "
            f"given as serverKey; if it was reinstalled, give its new key (ssh-keyscan -p {target.port} "
            f"{target.host})", where)
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        known_hosts = target.known_hosts_file
        if not os.path.exists(known_hosts):
            return SshHostKeyError(
                f"cannot verify the SSH host key of {where}: known_hosts file {known_hosts!r} does not "
                f"exist; add the host's key to it (ssh-keyscan -p {target.port} {target.host} >> "
                f"{known_hosts}), name another file with knownHosts, or set strictHostKeyChecking=False "
                f"to skip the check", where)
        return SshHostKeyError(
            f"SSH host key of {where} not verified ({exc.reason}) against known_hosts file "
            f"{known_hosts!r}: the host is unknown there, or its key changed. If it was reinstalled, "
            f"replace its line (ssh-keygen -R '[{target.host}]:{target.port}' -f FILE, then "
            f"ssh-keyscan); to skip the check, set strictHostKeyChecking=False", where)
    if isinstance(exc, asyncssh.PermissionDenied):
        key = target.identity_file or "the default keys and the agent"
        return SshAuthenticationError(
            f"SSH authentication refused by {where} ({exc.reason}) with {key}: add the public key to "
            f"that user's ~/.ssh/authorized_keys, or set identityFile / username", where)
    if isinstance(exc, asyncssh.DisconnectError):
        return SshUnreachableError(f"{where} closed the SSH connection while it was opened: {exc.reason}",
                                   where)
    if isinstance(exc, asyncio.TimeoutError):  # the builtin on 3.11+, distinct on 3.10
        return SshUnreachableError(
            f"cannot reach {where} over SSH: no answer within {target.connect_timeout:g} s "
            f"(connectTimeout)", where)
    if isinstance(exc, ConnectionRefusedError):
        return SshUnreachableError(
            f"cannot reach {where} over SSH: connection refused (is sshd listening on port "
            f"{target.port}?)", where)
    if isinstance(exc, OSError):
        return SshUnreachableError(f"cannot reach {where} over SSH: {exc.strerror or exc}", where)
    if isinstance(exc, asyncssh.Error):
        return SshError(f"SSH connection to {where} failed: {exc.reason}", where)
    return SshError(f"SSH connection to {where} failed: {type(exc).__name__}: {exc}", where)


@contextlib.contextmanager
def translate_errors(where: str, command: str | None = None) -> Iterator[None]:
    """Turn asyncssh's connection errors inside the block into :class:`SshConnectionLostError`."""
    import asyncssh

    try:
        yield
    except (asyncssh.ConnectionLost, asyncssh.SFTPConnectionLost, asyncssh.DisconnectError) as exc:
        raise SshConnectionLostError(f"SSH connection to {where} lost: {exc.reason}", where, command) from exc
    except asyncssh.ChannelOpenError as exc:
        if "closed" in exc.reason:
            raise SshConnectionLostError(f"SSH connection to {where} lost: {exc.reason}", where,
                                         command) from exc
        raise SshError(
            f"{where} refused a new session ({exc.reason}): its sshd's MaxSessions may be below the "
            f"node's limit", where) from exc


# -- the supervisor run on the host for every spawned process --------------------------------

#: The launcher: one per connection, it starts every spawned command (one session for
#: all, rather than a session and a shell per command).  Its standard input holds
#: requests:
#:
#: * a header line ``length``, then ``length`` bytes: the line ``id ctl stdout stderr stdin
#:   command folder`` (each quoted by :func:`_quote`; stderr '' : same as stdout, stdin '' :
#:   none, folder '' : none to list) and the :func:`_prelude` line.  bash reads the two
#:   lines in one ``read -N`` (its ``read`` takes a pipe one byte per system call: 1.5 KB
#:   of paths and environment were 1,500 calls per command); other shells read them as
#:   lines.  A supervisor subshell starts the command in a process group of its own
#:   (bash's job control, else ``setsid``), with its streams in files on the host, writes
#:   ``<group> <its pid> <its start time>`` to ``$ctl.pid`` and prints ``P id group``; if it
#:   cannot, it prints ``F id status``, its error being in ``$ctl.pid``.  Once the command
#:   ended, it kills what is left in its group, writes the status to ``$ctl.exit``, then
#:   prints ``E id status``, followed (when short enough to make one atomic pipe write) by
#:   `` /`` and the folder's regular files (not links), each as ``+name`` (not empty) or
#:   ``0name`` (empty) ended by ``/`` (a newline in a name as ``/n``), then ``.``: see
#:   :func:`_parse_launched`.  Builtins only, after the command.
#: * ``K signal group ctl``: signals the group, unless its exit file exists (it ended).
#: * a header line ``C length``, then ``length`` bytes: the line ``id script args...``
#:   (quoted): a subshell runs ``script`` with ``args`` as ``$1``..., its input and errors
#:   on ``/dev/null``, and prints ``R id status line``, ``line`` being the first line of its
#:   output.  This module's own short commands (a sweep, removing folders) run so, rather
#:   than each in a session and a login shell of its own.
#:
#: Under bash the launcher also looks after its supervisors, at most once a second (at a
#: request, or after a second without one while some run): one that ended by a signal (it
#: was killed, e.g. ``kill -9`` from outside) before printing its ``E`` line is reported as
#: ``D id status``, so the command's wait ends at once instead of with the channel.
#:
#: The supervisors write to the launcher's channel only before the command runs and after
#: its exit file is written: a channel lost meanwhile (SIGPIPE) cannot lose an outcome,
#: and they outlive the launcher (killed, or its connection lost).
_LAUNCHER = r"""nl='
'
exec 2>/dev/null
sups= tick=
if [ -n "$BASH_VERSION" ]; then
  check() {  # supervisors killed before their E line: D id status
    tick=$SECONDS
    local keep= e
    for e in $sups; do
      if kill -0 "${e%%:*}"; then keep="$keep $e"; continue; fi
      wait "${e%%:*}"
      st=$?
      [ "$st" -le 128 ] || echo "D ${e#*:} $st"
    done
    sups=$keep
  }
  next() {  # a timed-out read keeps what it read: the header goes on where it stopped
    hdr=
    while :; do
      [ "$SECONDS" = "$tick" ] || check
      if [ -n "$sups" ]; then IFS= read -r -t 1 part; else IFS= read -r part; fi
      st=$?
      hdr=$hdr$part
      [ "$st" -gt 128 ] || return "$st"
    done
  }
  body() { LC_ALL=C IFS= read -r -N "$hdr" body; }
else
  next() { IFS= read -r hdr; }
  body() { IFS= read -r body && IFS= read -r line && body=$body$nl$line; }
fi
while next; do
  case $hdr in
  K\ *) eval "set -- ${hdr#K }"; [ -e "$3.exit" ] || kill -s "$1" -- "-$2"; continue ;;
  C\ *)
    hdr=${hdr#C }
    if [ -n "$BASH_VERSION" ]; then body; else IFS= read -r body; fi || exit 0
    eval "set -- $body"
    (
      id=$1 script=$2
      shift 2
      exec 7>&1 </dev/null >/dev/null
      out=$(eval "$script")
      st=$?
      printf 'R %s %s %s\n' "$id" "$st" "${out%%"$nl"*}" >&7
    ) &
    [ -n "$BASH_VERSION" ] || jobs >/dev/null
    continue ;;
  esac
  body || exit 0
  prelude=${body#*"$nl"}
  eval "set -- ${body%%"$nl"*}"
  (
    id=$1 ctl=$2 out=$3 err=$4 in=${5:-/dev/null} cmd=$6 dir=$7
    if [ -n "$BASH_VERSION" ]; then  # job control: each job leads its own group, no extra exec
      set -m; lead=
      trap - INT; trap - QUIT  # ignored in the launcher's children, not in its commands
    else
      lead=setsid
    fi
    trap 'echo "F $id $?"' EXIT
    exec 2>"$ctl.pid" || exit 125
    [ -z "$lead" ] || command -v setsid >/dev/null 2>&1 ||
      { echo "setsid not found on this host (util-linux)" >&2; exit 125; }
    exec 4>>"$out" || exit 125
    if [ -n "$err" ]; then exec 5>>"$err" || exit 125; else exec 5>&4; fi
    exec 6<"$in" || exit 125
    eval "$prelude"
    $lead sh -c "$cmd" <&6 >&4 2>&5 4>&- 5>&- 6<&- &
    pg=$!
    exec 4>&- 5>&- 6<&- 2>/dev/null
    read -r sup _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ start _ </proc/self/stat
    echo "$pg $sup $start" >"$ctl.pid"
    trap - EXIT
    echo "P $id $pg"
    exec 7>&1 >/dev/null
    wait "$pg"
    st=$?
    kill -s KILL -- "-$pg"
    echo "$st" >"$ctl.exit"
    lst=
    if [ -n "$dir" ]; then
      lst=' /'
      if [ -n "$BASH_VERSION" ]; then  # one pass over the folder, not three
        shopt -u failglob; shopt -s dotglob; set -- "$dir"/*
      else
        set -- "$dir"/* "$dir"/.[!.]* "$dir"/..?*
      fi
      for f; do
        [ -f "$f" ] && [ ! -L "$f" ] || continue
        n=${f##*/} e=
        while :; do
          case $n in *"$nl"*) e="$e${n%%"$nl"*}/n"; n=${n#*"$nl"} ;; *) break ;; esac
        done
        if [ -s "$f" ]; then lst="$lst+$e$n/"; else lst="${lst}0$e$n/"; fi
      done
      lst="$lst."
      [ "${#lst}" -le 900 ] || lst=
    fi
    printf 'E %s %s%s\n' "$id" "$st" "$lst" >&7
  ) </dev/null &
  # bash forgets ended jobs by itself; "jobs" would print every running one each time
  if [ -n "$BASH_VERSION" ]; then sups="$sups $!:$1"; else jobs >/dev/null; fi
done
"""

def _launch(shell: str | None = None) -> str:
    r"""The command line that starts the launcher, whatever the login shell (csh and fish
    run ``exec sh -c`` too): it prints ``S $SHELL`` (the login shell, see
    :data:`POSIX_SHELLS`), then runs :data:`_LAUNCHER` in ``shell``; None: in bash where
    there is one (job control, ``read -N``), else in ``sh``.

    Example
    -------
    >>> print(_launch("sh").split("'")[1])
    printf "S %s\n" "$SHELL"; exec sh -c "$1" sh
    """
    boot = 'printf "S %s\\n" "$SHELL"; '
    if shell is None:
        boot += 'command -v bash >/dev/null 2>&1 && exec bash -c "$1" sh; exec sh -c "$1" sh'
    else:
        boot += f'exec {shlex.quote(shell)} -c "$1" sh'
    return " ".join(["exec sh -c", shlex.quote(boot), "nepi-lab", shlex.quote(_LAUNCHER)])

#: Defines ``alive``: whether the supervisor of control prefix ``$ctl`` still runs (its
#: pid and start time are in ``$ctl.pid``: a recycled pid is told apart by its start time).
_SUPERVISED = r"""ctl=$1
read -r pg sup start <"$ctl.pid" 2>/dev/null
alive() {
  [ -n "$start" ] || return 1
  read -r _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ s _ <"/proc/$sup/stat" 2>/dev/null && [ "$s" = "$start" ]
}
"""

#: Argument: control-file prefix.  Relays signal names from standard input to the group,
#: as the supervisor did, and prints the exit status once the supervisor ended.  Runs
#: only after a dropped connection, so a check ten times a second on the host will do.
_REATTACH = _SUPERVISED + r"""exec 3<&0 </dev/null
(while read -r sig; do alive && kill -s "$sig" -- "-$pg"; done) <&3 >/dev/null 2>&1 &
relay=$!
exec 3<&-
while alive; do sleep 0.1; done
kill "$relay" 2>/dev/null
cat "$ctl.exit" 2>/dev/null
"""


#: Kills the processes whose marker matches.  ``$1`` is ``exact`` (``$2``: the
#: ``NAME=value`` lines to match, one per line) or ``prefix`` (``$2``: a basic regular
#: expression anchored at the start of a variable); run by the launcher (``C``).  Looks again until nothing is
#: found (a process may fork meanwhile), at most ten times; prints how many it killed.
_SWEEP = r"""mode=$1 pattern=$2
if [ "$mode" = exact ]; then lines=$pattern; [ -n "$lines" ] || { echo 0; exit 0; }; fi
killed=' ' total=0 round=0
while [ "$round" -lt 10 ]; do
  round=$((round + 1))
  if [ "$mode" = exact ]; then
    files=$(printf '%s
' "$lines" | grep -slzxF -f - /proc/[0-9]*/environ)
  else
    files=$(grep -slz -e "$pattern" /proc/[0-9]*/environ)
  fi
  pids=
  for f in $files; do
    p=${f#/proc/}; p=${p%/environ}
    case "$killed" in *" $p "*) continue ;; esac
    [ "$p" = "$$" ] || pids="$pids $p"
  done
  [ -n "$pids" ] || break
  kill -s KILL $pids 2>/dev/null
  for p in $pids; do killed="$killed$p "; total=$((total + 1)); done
done
echo "$total"
"""


def _bre_escape(text: str) -> str:
    r"""``text`` as a POSIX basic regular expression that matches it literally.

    Example
    -------
    >>> _bre_escape("NEPI_LAB_RUN=a.b+c/1/")
    'NEPI_LAB_RUN=a\\.b+c/1/'
    """
    return re.sub(r"([\\.\[\]*^$])", r"\\\1", text)


def _parse_launched(listing: bytes) -> dict[str, int | None] | None:
    r"""The files a supervisor listed on its ``E`` line (see :data:`_LAUNCHER`), the part
    after the status (``/+name/0name/.``): name -> 0 (empty) or None (not empty, size
    unknown); None unless the listing is whole (ends with ``.``).

    Example
    -------
    >>> _parse_launched(b"/+stdout/0new/nline/.")
    {'stdout': None, 'new\nline': 0}
    >>> _parse_launched(b"/+stdout/") is None
    True
    """
    pieces = listing.split(b"/")
    if len(pieces) < 2 or pieces[0] != b"" or pieces[-1] != b".":
        return None
    names: list[bytes] = []
    for piece in pieces[1:-1]:
        if piece[:1] in (b"+", b"0"):
            names.append(piece)
        elif piece[:1] == b"n" and names:  # a newline in the name
            names[-1] += b"\n" + piece[1:]
        else:
            return None
    if any(len(name) < 2 for name in names):
        return None
    return {_decode(name[1:]): None if name[:1] == b"+" else 0 for name in names}


def _status_from_shell(code: int) -> int:
    """A shell's 128+N (killed by signal N) as Python reports it: -N."""
    return -(code - 128) if 128 < code <= 128 + 64 else code


def _decode(data: bytes | str | None) -> str:
    if data is None:
        return ""
    if isinstance(data, str):
        return data
    return data.decode("utf-8", errors="replace")


def _quote(value: str) -> str:
    """``value`` quoted for ``sh`` on one line: newlines become ``"$nl"`` (set by the scripts)."""
    if "\n" not in value:
        return shlex.quote(value)
    return '"$nl"'.join(shlex.quote(part) for part in value.split("\n"))


def _prelude(cwd: str | None, env: dict[str, str] | None, path: Sequence[str] = ()) -> str:
    """One line of shell that sets the environment and the working directory (values quoted).

    It travels on the command's standard input, read by ``IFS= read -r``: environment
    values stay out of command lines, which every user of the host can read (``ps``).
    """
    parts = []
    if path:
        parts.append(f'PATH={_quote(":".join(path))}:"$PATH"; export PATH')
    for name, value in (env or {}).items():
        if not _ENV_NAME.fullmatch(name):
            raise ValueError(f"environment variable name {name!r} is not NAME")
        parts.append(f"{name}={_quote(str(value))}; export {name}")
    if cwd:
        parts.append(f"cd -- {_quote(cwd)} || exit 125")
    return "; ".join(parts) + "\n"


#: Runs the command ``$1`` after the prelude line read from standard input.
_WITH_PRELUDE = """nl='
'
IFS= read -r prelude || exit 125
eval "$prelude"
exec sh -c "$1"
"""


def _write_local(path: str, data: bytes) -> None:
    """Write a downloaded trace into the run directory (an empty one: two system calls)."""
    if not data:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666))
        return
    with open(path, "wb") as out:
        out.write(data)


# -- the launcher ----------------------------------------------------------------------------


@dataclasses.dataclass
class _Completed:
    """How a launched command ended, as :class:`SshProcess` reads a finished channel:
    no ``exit_status`` when the launcher's channel closed first (the connection or the
    launcher was lost: the process is re-attached through its control files)."""

    exit_status: int | None = None
    files: dict[str, int | None] | None = None  #: the supervisor's listing (:func:`_parse_launched`)
    #: the supervisor's own status when it ended by a signal before recording the
    #: command's end (the launcher's ``D`` line): no outcome will come
    supervisor_lost: int | None = None


class _StartFailed(Exception):
    """The launcher's supervisor could not start the command (``status``; its error is in
    the ``.pid`` control file)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


_Asked = TypeVar("_Asked")  # what a request to the launcher gives (see SshExecutor._ask_launcher)


class _NotSent(ConnectionError):
    """A request could not be written to the launcher (it ended): nothing was started."""


class _Launched:
    """A command started by the launcher, seen by :class:`SshProcess` as its channel:
    ``stdin.write`` takes signal names, ``wait()`` returns a :class:`_Completed`.  It
    holds no channel of the connection."""

    holds_slot = False

    def __init__(self, launcher: _Launcher, pgid: int, control: str) -> None:
        self.stdin = self
        self._launcher = launcher
        self._pgid = pgid
        self._control = control
        self._done: asyncio.Future[_Completed] = asyncio.get_running_loop().create_future()

    def write(self, data: bytes) -> None:
        """Signal names, one a line: each is relayed to the command's group by the launcher."""
        quoted = _quote(self._control)
        self._launcher.send(b"".join(f"K {sig} {self._pgid} {quoted}\n".encode()
                                     for sig in data.decode().split()))

    def end(self, completed: _Completed) -> None:
        if not self._done.done():
            self._done.set_result(completed)

    async def wait(self) -> _Completed:
        return await asyncio.shield(self._done)


class _Launcher:
    """The launcher session of one connection (see :data:`_LAUNCHER`) and the commands it
    started: its output lines are routed to each command's :class:`_Launched`."""

    def __init__(self, conn: Any, channel: Any) -> None:
        self.conn = conn
        self.closed = False
        self._channel = channel
        self._next = 0
        self._starting: dict[int, tuple[asyncio.Future[_Launched], str]] = {}
        self._commands: dict[int, asyncio.Future[tuple[int, str]]] = {}  # C requests: (status, line)
        self._running: dict[int, _Launched] = {}
        self._reader = asyncio.ensure_future(self._read())
        # the launcher shell ended (killed): sshd says so at once, while its channel stays
        # open as long as a supervisor holds its output (their ends still come that way)
        exit_status_received = channel.exit_status_received
        exit_signal_received = channel.exit_signal_received

        def on_status(*args: Any) -> None:
            exit_status_received(*args)
            self._ended()

        def on_signal(*args: Any) -> None:
            exit_signal_received(*args)
            self._ended()

        channel.exit_status_received = on_status
        channel.exit_signal_received = on_signal

    def _ended(self) -> None:
        """The launcher shell is gone: no request is read any more (the next spawn starts
        another launcher); the requests not answered yet fail."""
        self.closed = True
        for future, _ in self._starting.values():
            if not future.done():
                future.set_exception(ConnectionError("the launcher ended"))
        self._starting.clear()

    def send(self, data: bytes) -> None:
        if self.closed:
            raise _NotSent("the launcher ended")
        try:
            self._channel.stdin.write(data)
        except Exception as exc:  # its input closed: it ended, sshd's word on it is on the way
            self._ended()
            raise _NotSent(str(exc)) from exc

    def request(self, args: Sequence[str], prelude: str, control: str) -> asyncio.Future[_Launched]:
        """Ask for a supervised command (``args`` are the request's after its id); the
        future is the started command, or the reason it did not start.  Once sent, the
        command starts whatever happens to the caller: the future is answered anyway."""
        self._next += 1
        ident = self._next
        future: asyncio.Future[_Launched] = asyncio.get_running_loop().create_future()
        body = " ".join([str(ident), *(_quote(a) for a in args)]).encode() + b"\n" + prelude.encode()
        self.send(b"%d\n%s" % (len(body), body))  # the length: bash reads the body in one call
        self._starting[ident] = (future, control)
        return future

    def command(self, script: str, *args: str) -> asyncio.Future[tuple[int, str]]:
        """Run ``script`` with ``args`` in a subshell of the launcher (a ``C`` request); the
        future is its status and the first line of its output."""
        self._next += 1
        ident = self._next
        future: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()
        body = " ".join([str(ident), _quote(script), *(_quote(a) for a in args)]).encode() + b"\n"
        self.send(b"C %d\n%s" % (len(body), body))
        self._commands[ident] = future
        return future

    async def _read(self) -> None:
        stdout = self._channel.stdout
        try:
            while True:
                line = await stdout.readline()
                if not line.endswith(b"\n"):
                    break
                kind, _, rest = line[:-1].partition(b" ")
                if kind == b"E":
                    ident, _, rest = rest.partition(b" ")
                    status, _, listing = rest.partition(b" ")
                    launched = self._running.pop(int(ident), None)
                    if launched is not None:
                        launched.end(_Completed(int(status), _parse_launched(listing) if listing else None))
                elif kind == b"P":
                    ident, _, group = rest.partition(b" ")
                    future, control = self._starting.pop(int(ident), (None, ""))
                    if future is not None and not future.done():
                        launched = _Launched(self, int(group), control)
                        self._running[int(ident)] = launched
                        future.set_result(launched)
                elif kind == b"F":
                    ident, _, status = rest.partition(b" ")
                    future, _ = self._starting.pop(int(ident), (None, ""))
                    if future is not None and not future.done():
                        future.set_exception(_StartFailed(int(status or 125)))
                elif kind == b"R":
                    ident, _, rest = rest.partition(b" ")
                    status, _, text = rest.partition(b" ")
                    done = self._commands.pop(int(ident), None)
                    if done is not None and not done.done():
                        done.set_result((int(status), _decode(text)))
                elif kind == b"D":  # its supervisor was killed before it reported the end
                    ident, _, status = rest.partition(b" ")
                    launched = self._running.pop(int(ident), None)
                    if launched is not None:
                        launched.end(_Completed(supervisor_lost=int(status)))
                    future, _ = self._starting.pop(int(ident), (None, ""))
                    if future is not None and not future.done():
                        future.set_exception(ConnectionError("its supervisor was killed"))
        except Exception as exc:  # the channel broke: the same as closed
            log.debug("SSH launcher channel ended: %s", exc)
        finally:
            self._ended()
            for launched in self._running.values():
                launched.end(_Completed())  # no status: re-attached through the control files
            self._running.clear()
            for done in self._commands.values():
                if not done.done():
                    done.set_exception(ConnectionError("the launcher's channel closed"))
            self._commands.clear()
            with contextlib.suppress(Exception):
                self._channel.close()


# -- processes -------------------------------------------------------------------------------


class SshProcess(ProcessHandle):
    """A command started by :meth:`SshExecutor.spawn`; ``pid`` is its process group id on the host."""

    def __init__(self, executor: SshExecutor, channel: Any, pgid: int, control: str, command: str,
                 owner: int | None = None, listed: str = "") -> None:
        self.pid = pgid
        self.command = command
        self.owner = owner  #: the guid it was started for
        self.outcome_unknown = False  #: its end was not seen (the connection was lost): it may still run
        self.returncode: int | None = None
        self.control = control  #: prefix of its control files on the host (.pid, .exit)
        self.where = executor.where
        self._executor = executor
        # its launcher's pseudo-channel (:class:`_Launched`), then (after a dropped connection
        # or a lost launcher) the re-attached waiter's; either relays the signal names written to it
        self._channel: Any = channel
        self._requested: list[str] = []  # signals asked for, in order
        self._killed = False
        self._listed = posixpath.normpath(listed) if listed else ""  # the folder its supervisor lists
        self._files: dict[str, int | None] | None = None  # what it listed there: name -> 0 or None
        self._exit: asyncio.Task[int] = asyncio.ensure_future(self._watch())
        self._exit.add_done_callback(self._ended)

    def __repr__(self) -> str:
        status = "running" if self.returncode is None else f"exited {self.returncode}"
        return f"<SshProcess {self._executor.where} pgid={self.pid} {status}: {self.command!r}>"

    async def _watch(self) -> int:
        entry = self._executor.connection
        channel, attached = self._channel, False
        while True:
            try:
                completed = await channel.wait()
            finally:
                self._channel = None
                if getattr(channel, "holds_slot", True):  # the launcher's commands hold none
                    entry.give_back(entry.sessions)
            if attached:  # the re-attached waiter prints the status the supervisor kept
                text = _decode(completed.stdout).strip()
                if text.lstrip("-").isdigit():
                    log.info("re-attached to %r on %s after a lost connection", self.command, self.where)
                    return _status_from_shell(int(text))
                if completed.exit_status is not None:
                    raise SshConnectionLostError(
                        f"SSH connection to {self.where} was lost while {self.command!r} ran and the host "
                        f"kept no exit status for it ({self.control}.exit); outcome unknown", self.where,
                        self.command)
            elif completed.exit_status is not None:  # the launcher's word
                if self._listed:
                    self._files = completed.files
                return _status_from_shell(completed.exit_status)
            elif completed.supervisor_lost is not None:
                status = _status_from_shell(completed.supervisor_lost)
                how = f"killed by signal {-status}" if status < 0 else f"status {status}"
                raise SupervisorLostError(
                    f"the supervisor of {self.command!r} on {self.where} ended ({how}: killed from outside?) "
                    f"before it recorded the command's end ({self.control}.exit is absent); outcome unknown, "
                    f"its process group {self.pid} may still run until the release stops it", self.where,
                    self.command, self.pid)
            # no status: the connection or the launcher was lost; the supervisor and its exit
            # file live on
            channel, attached = await self._reattach(), True

    async def _reattach(self) -> Any:
        """A channel that waits on the host for the supervisor's end, then prints its status."""
        executor = self._executor
        entry = executor._entry
        if entry is None or entry.closing:
            raise SshConnectionLostError(
                f"SSH connection to {self.where} closed (node released) while {self.command!r} ran; "
                f"outcome unknown", self.where, self.command)
        try:
            await entry.connection()  # waits for the reconnection; raises if it failed
            await entry.acquire()
            try:
                conn = await entry.connection()
                with translate_errors(self.where, self.command):
                    channel = await conn.create_process(
                        _script(_REATTACH, self.control, posix_login=entry.posix_login), encoding=None)
            except BaseException:
                entry.give_back(entry.sessions)
                raise
        except SshError as exc:
            raise SshConnectionLostError(
                f"SSH connection to {self.where} lost while {self.command!r} ran; outcome unknown: {exc}",
                self.where, self.command) from exc
        self._channel = channel
        for sig in dict.fromkeys(self._requested):  # a signal in flight when the connection dropped
            channel.stdin.write(f"{sig}\n".encode())
        return channel

    def _ended(self, task: asyncio.Task[int]) -> None:
        self._executor._handles.discard(self)
        if not task.cancelled() and task.exception() is None:
            self.returncode = task.result()
        else:
            self.outcome_unknown = True
            if self.returncode is None:
                self.returncode = _UNKNOWN

    async def wait(self) -> int:
        return await asyncio.shield(self._exit)

    def files_at_end(self, folder: str) -> list[str] | None:
        """The regular files (not links) of host folder ``folder`` when the command ended,
        sorted, as its supervisor listed them (the folder of its stdout); None when that is
        not known (another folder, still running, re-attached after a lost connection).

        As after :meth:`SshExecutor.list_files`, the executor's :meth:`~SshExecutor.download_many`
        in the same task then skips the empty files: no SFTP request lists the folder."""
        files = self._files
        if files is None or not self._exit.done() or posixpath.normpath(folder) != self._listed:
            return None
        self._executor._listing = (asyncio.current_task(), self._listed, dict(files))
        return sorted(files)

    def send_signal(self, sig: str) -> None:
        """Send signal ``sig`` (a name: TERM, KILL, INT ...) to the process group on the host."""
        if self._exit.done():
            return
        self._requested.append(sig)
        channel = self._channel
        if channel is not None:  # else re-attaching: the new channel gets it
            with contextlib.suppress(Exception):  # closing: the watcher re-attaches and re-sends
                channel.stdin.write(f"{sig}\n".encode())

    def kill(self) -> None:
        self._killed = True
        self.send_signal("KILL")

    async def terminate(self, grace: float) -> int:
        if not self._exit.done():
            self.send_signal("TERM")
            try:
                await asyncio.wait_for(asyncio.shield(self._exit), grace)
            except asyncio.TimeoutError:
                self.kill()
        return await self.wait()


#: ``returncode`` of a process whose outcome is unknown (its connection was lost).
_UNKNOWN = -1


def _sh(script: str, *args: str) -> str:
    """A command line that runs ``script`` with ``sh`` whatever the user's login shell is."""
    return " ".join(["exec sh -c", shlex.quote(script), "nepi-lab", *(shlex.quote(a) for a in args)])


#: Login shells that run this module's (POSIX) scripts as they are, without an ``sh``
#: in between; anything else (csh, fish ...) gets ``exec sh -c``.
POSIX_SHELLS = frozenset({"sh", "bash", "dash", "ash", "ksh", "mksh"})


def _script(script: str, *args: str, posix_login: bool = False) -> str:
    """A command line that runs ``script`` with ``args`` as ``$1``..., in the login shell
    when it is a POSIX shell (one ``exec`` fewer per command), else in ``sh``."""
    if not posix_login:
        return _sh(script, *args)
    return " ".join(["set --", *(shlex.quote(a) for a in args)]) + "\n" + script


# -- the executor ------------------------------------------------------------------------------


class SshExecutor(Executor):
    """Runs commands and moves files on a host over one pooled asyncssh connection.

    Parameters
    ----------
    target : SshTarget
        The account and how to reach it.
    pool : SshPool
        Where connections are shared (one per controller: :func:`pool_for`).
    on_lost : callable, optional
        Called with the :class:`SshConnectionLostError` once the connection dropped and
        could not be restored (the node uses it to fail itself).

    Example
    -------
    >>> ex = SshExecutor(SshTarget("192.0.2.7", username="alice"), SshPool())
    >>> ex.where
    'alice@192.0.2.7:22'
    """

    def __init__(self, target: SshTarget, pool: SshPool,
                 on_lost: Callable[[SshConnectionLostError], None] | None = None,
                 on_trouble: Callable[[str | None], None] | None = None) -> None:
        if target.max_sessions <= RESERVED_SESSIONS:
            raise ValueError(f"max_sessions must be more than {RESERVED_SESSIONS} (SFTP and the launcher "
                             f"keep one each), "
                             f"not {target.max_sessions}")
        self.target = target
        self.where = target.where
        self._pool = pool
        self._on_lost = on_lost
        self._on_trouble = on_trouble
        self._owners: set[int] = set()  # owners that started processes here, not swept since
        self._sweeps = SweepQueue(self._sweep)
        self._entry: _Connection | None = None
        self._handles: set[SshProcess] = set()
        self._adopting: set[asyncio.Task[None]] = set()  # cancelled spawns being killed (_adopt)
        self._home: str | None = None
        self._started: list[SshProcess] = []  # processes started, until their owner was swept
        # trees removed together go in one ``rm``: 100 applications released at once
        # cost a few commands, not 100
        self._removals: Batches[str, None] = Batches(self._remove_trees, limit=REMOVE_BATCH)
        #: the last :meth:`list_files`: its task, the folder, and each file's size
        self._listing: tuple[asyncio.Task[Any] | None, str, dict[str, int]] | None = None

    @classmethod
    def for_node(cls, node: Node) -> SshExecutor:
        """The executor of a ``linux::Node`` whose ``hostname`` is another machine."""
        import_asyncssh(f"linux::Node {node.guid} with hostname {node.get('hostname')!r}")
        declared = node.get_attribute_declarations()
        options = {
            "identity_file": node.get("identityFile"),
            "known_hosts": node.get("knownHosts"),
            "strict_host_key_checking": node.get("strictHostKeyChecking"),
            "connect_timeout": node.get("connectTimeout"),
        }
        if "maxSessions" in declared:
            options["max_sessions"] = node.get("maxSessions")
        if "reconnectTimeout" in declared:
            options["reconnect_timeout"] = node.get("reconnectTimeout")
        gateway = node.get("gateway")
        jump = SshTarget.parse_gateway(gateway, **options) if gateway else None
        if jump is not None and jump.username is None and "gatewayUser" in declared:
            jump = dataclasses.replace(jump, username=node.get("gatewayUser"))
        server_key = node.get("serverKey") if "serverKey" in declared else None
        # the key is the node's, not the gateway's: the gateway keeps its known_hosts lookup
        target = SshTarget(node.get("hostname"), node.get("port"), node.get("username"), gateway=jump,
                           server_key=server_key, **options)
        return cls(target, pool_for(node.ec), on_lost=lambda exc: _fail_node_soon(node, exc),
                   on_trouble=node._connection_trouble)

    def __repr__(self) -> str:
        return f"<SshExecutor {self.where}>"

    @property
    def connection(self) -> _Connection:
        if self._entry is None:
            raise RuntimeError(f"{self!r} is not connected: call connect() first")
        return self._entry

    # -- connection ------------------------------------------------------------------------

    async def connect(self) -> None:
        if self._entry is not None:
            return
        entry = await self._pool.acquire(self.target)
        self._entry = entry
        entry.executors.add(self)

    async def close(self) -> None:
        entry = self._entry
        if entry is None:
            return
        # killed processes report their end before the connection closes, so the
        # signal surely reached the host
        if self._adopting:  # cancelled spawns: their commands start, then are killed
            await asyncio.wait(set(self._adopting), timeout=CLOSE_GRACE)
        killed = [h._exit for h in self._handles if h._killed and not h._exit.done()]
        if killed:
            await asyncio.wait(killed, timeout=CLOSE_GRACE)
        self._entry = None
        entry.executors.discard(self)
        await self._pool.release(entry)

    def _connection_dead(self, error: SshConnectionLostError) -> None:
        if self._on_lost is not None:
            self._on_lost(error)

    def _connection_trouble(self, text: str | None) -> None:
        if self._on_trouble is not None:
            self._on_trouble(text)

    async def reconnect(self) -> bool:
        entry = self._entry
        if entry is None:
            return False
        if entry._recovery is not None and not entry._recovery.done():
            await asyncio.wait({entry._recovery})  # within reconnectTimeout: wait for it (never raises)
        return await entry.revive()

    @property
    def trouble(self) -> str | None:
        """While the connection is being restored, what happened and what is tried."""
        return self._entry.trouble if self._entry is not None else None

    def _marked(self, env: dict[str, str] | None, owner: int | None) -> dict[str, str] | None:
        """``env`` with the marker of ``owner``'s processes (see :mod:`._tracking`)."""
        if self.tracked_run is None or owner is None:
            return env
        self._owners.add(owner)
        return {**(env or {}), RUN_VARIABLE: marker(self.tracked_run, owner)}

    # -- commands --------------------------------------------------------------------------

    async def run(self, command: str, *, check: bool = True, timeout: float | None = None,
                  input: str | bytes | None = None, cwd: str | None = None,
                  env: dict[str, str] | None = None) -> CommandResult:
        return await self._run(command, check=check, timeout=timeout, input=input, cwd=cwd,
                               env=self._marked(env, self.owner))

    async def _run(self, command: str, *, check: bool = True, timeout: float | None = None,
                   input: str | bytes | None = None, cwd: str | None = None,
                   env: dict[str, str] | None = None) -> CommandResult:
        """:meth:`run` without the marker: for this module's own commands (removals, sweeps)."""
        entry = self.connection
        head = b""
        if env:  # values travel on standard input, not in a command line
            remote = _script(_WITH_PRELUDE, command, posix_login=entry.posix_login)
            head = _prelude(cwd, env).encode()
        elif cwd:
            remote = _script(f"cd -- {shlex.quote(cwd)} || exit 125\nexec sh -c \"$1\"", command,
                             posix_login=entry.posix_login)
        else:  # the command itself always runs in sh, as it does on this machine
            remote = _sh(command)
        async with entry.session():
            conn = await entry.connection()
            with translate_errors(self.where, command):
                process = await conn.create_process(remote, encoding=None)
            try:
                if head:
                    process.stdin.write(head)
                if input is not None:
                    process.stdin.write(input.encode() if isinstance(input, str) else input)
                process.stdin.write_eof()
                completed = await asyncio.wait_for(process.wait(), timeout)
            except asyncio.TimeoutError:
                _kill_session(process)
                raise CommandTimeoutError(command, timeout or 0.0, "", self.where) from None
            except BaseException:  # cancelled: leave nothing running
                _kill_session(process)
                raise
        if completed.exit_status is None and completed.exit_signal is None:
            raise SshConnectionLostError(
                f"SSH connection to {self.where} lost while {command!r} ran; outcome unknown",
                self.where, command)
        result = CommandResult(completed.returncode, _decode(completed.stdout), _decode(completed.stderr),
                               command)
        if check:
            result.check_returncode(self.where)
        return result

    async def spawn(self, command: str, *, stdout: str, stderr: str, stdin: str | None = None,
                    cwd: str | None = None, env: dict[str, str] | None = None,
                    path: Sequence[str] = (), owner: int | None = None) -> SshProcess:
        owner = self.owner if owner is None else owner
        env = self._marked(env, owner)
        folder, name = posixpath.split(stdout)
        # the folder of its stdout is listed when it ends (an application's traces)
        listed = folder if posixpath.isabs(stdout) and folder != "/dev" else ""
        if not folder or folder == "/dev":  # /dev/null and friends: keep the control files elsewhere
            folder = "/tmp"
        control = posixpath.join(folder, f".{name}.{secrets.token_hex(4)}")
        args = (control, stdout, "" if stderr == stdout else stderr, stdin or "", command, listed)
        prelude = _prelude(cwd, env, path)
        try:
            started = await self._ask_launcher(command,
                                               lambda launcher: launcher.request(args, prelude, control))
            try:
                channel = await asyncio.shield(started)
            except asyncio.CancelledError:  # it starts anyway: kill it once it did
                self._adopt(started, control, command, owner, listed)
                raise
        except _StartFailed as exc:
            raise CommandError(command, exc.status, await self._start_error(control),
                               f"{self.where} (cannot start it)") from None
        except SshError:  # no connection (its reason), or the launcher could not open
            raise
        except ConnectionError:  # the launcher's channel closed before it answered
            raise SshConnectionLostError(
                f"SSH connection to {self.where} lost while {command!r} was being started; it may "
                f"run on the host, unsupervised", self.where, command) from None
        handle = SshProcess(self, channel, channel._pgid, control, command, owner, listed)
        self._handles.add(handle)
        self._started.append(handle)
        return handle

    def _adopt(self, started: asyncio.Future[_Launched], control: str, command: str, owner: int | None,
               listed: str) -> None:
        """A spawn cancelled once its request was sent: the command starts anyway, with
        nobody to wait for it; it is killed as soon as it started (and :meth:`close`
        waits for that), so it never runs unowned."""

        async def adopt() -> None:
            try:
                channel = await started
            except Exception:  # not started, or the launcher was lost (the marker sweep finds it)
                return
            handle = SshProcess(self, channel, channel._pgid, control, command, owner, listed)
            self._handles.add(handle)
            self._started.append(handle)
            handle.kill()

        task = asyncio.ensure_future(adopt())
        self._adopting.add(task)
        task.add_done_callback(self._adopting.discard)

    async def _start_error(self, control: str) -> str:
        """What the launcher's supervisor wrote when it could not start a command (its
        standard error went to the ``.pid`` control file); the file is removed."""
        try:
            sftp = await self._sftp()
            async with sftp.open(control + ".pid", "rb") as f:
                text = _decode(await f.read())
            await sftp.remove(control + ".pid")
        except Exception as exc:  # e.g. its folder does not exist
            return f"cannot write {control}.pid: {exc}"
        return text[-STDERR_TAIL:]

    def kill_all(self) -> int:
        alive = [h for h in self._handles if not h._exit.done()]
        for handle in alive:
            handle.kill()
        return len(alive)

    async def stop_owner(self, owner: int) -> int:
        if self.tracked_run is None or owner not in self._owners:
            return 0  # it started nothing here
        killed = await self._sweeps.stop([marker(self.tracked_run, owner)])
        self._owners.discard(owner)
        self._started = [h for h in self._started if h.owner != owner]
        return killed

    async def stop_tracked(self) -> int:
        if self.tracked_run is None or not self._owners:
            return 0
        owners = sorted(self._owners)
        killed = await self._sweeps.stop([marker(self.tracked_run, owner) for owner in owners])
        self._owners.difference_update(owners)
        self._started = []
        return killed

    async def _sweep(self, values: set[str]) -> int:
        lines = "".join(f"{RUN_VARIABLE}={value}\n" for value in sorted(values))
        return await self.sweep(lines)

    async def sweep(self, exact: str = "", prefix: str | None = None) -> int:
        """Kill the processes of the host whose marker is one of the ``NAME=value`` lines
        of ``exact``, or starts with run ``prefix`` (``<exp_id>/<run_id>/``); one command.

        Reads ``/proc/*/environ`` with ``grep -z`` (GNU or BusyBox), so it sees only the
        user's own processes, which are the only ones it may signal anyway.
        """
        if prefix is not None:
            pattern = "^" + _bre_escape(f"{RUN_VARIABLE}={prefix}")
            status, text = await self._internal(_SWEEP, "prefix", pattern)
        else:
            status, text = await self._internal(_SWEEP, "exact", exact)
        text = text.strip()
        if status != 0 or not text.isdigit():
            raise CommandError("(sweep of the run's processes)", status, text[-STDERR_TAIL:], self.where)
        return int(text)

    async def _ask_launcher(self, what: str, ask: Callable[[_Launcher], _Asked]) -> _Asked:
        """``ask(launcher)`` with the connection's launcher, then once more with a new one if
        that one was found ended when written to (:class:`_NotSent`: nothing was sent)."""
        for attempt in (1, 2):
            with translate_errors(self.where, what):
                launcher = await self.connection.launcher()
            try:
                return ask(launcher)
            except _NotSent:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _internal(self, script: str, *args: str) -> tuple[int, str]:
        """Run one of this module's short scripts in a subshell of the launcher (no session
        and no login shell of its own); its status and the first line of its output."""
        what = "(nepi_lab's own command)"
        try:
            done = await self._ask_launcher(what, lambda launcher: launcher.command(script, *args))
        except _NotSent:
            raise SshConnectionLostError(f"SSH connection to {self.where} lost: the launcher ended",
                                         self.where, what) from None
        try:
            return await asyncio.shield(done)
        except ConnectionError:
            raise SshConnectionLostError(
                f"SSH connection to {self.where} lost while {what} ran; outcome unknown", self.where,
                what) from None

    def left_on_host(self, owner: int | None = None) -> list[dict[str, Any]]:
        """The processes started here whose end was not seen (a lost connection): what may
        still run on the host, for a run record."""
        return [{"owner": h.owner, "process_group": h.pid, "command": h.command, "control": h.control}
                for h in self._started if (owner is None or h.owner == owner)
                and (h.returncode is None or h.outcome_unknown)]

    # -- files (SFTP on the same connection) --------------------------------------------------

    async def _sftp(self) -> Any:
        return await self.connection.sftp()

    async def home_dir(self) -> str:
        if self._home is None:
            sftp = await self._sftp()
            with translate_errors(self.where):
                self._home = await sftp.realpath(".")  # an SFTP session starts in the home folder
        return self._home  # type: ignore[return-value]

    async def makedirs(self, path: str) -> None:
        sftp = await self._sftp()
        with translate_errors(self.where):
            await _makedirs(sftp, posixpath.normpath(path))

    async def write_file(self, path: str, data: str | bytes, mode: int = 0o644) -> None:
        import asyncssh

        sftp = await self._sftp()
        data = data.encode() if isinstance(data, str) else data
        with translate_errors(self.where):
            try:  # a new file gets its mode when created: three requests, not four
                f = await sftp.open(path, "xb", asyncssh.SFTPAttrs(permissions=mode))
                created = True
            except asyncssh.SFTPError:  # it exists (or cannot be made: the next open says why)
                f = await sftp.open(path, "wb")
                created = False
            async with f:
                await f.write(data)
            if not created or mode & 0o022:  # an old file keeps its mode; the umask may clear w bits
                await sftp.chmod(path, mode)

    async def upload(self, local: str, remote: str) -> None:
        sftp = await self._sftp()
        with translate_errors(self.where):
            if os.path.isdir(local):  # its content into ``remote``, as copytree does
                await sftp.makedirs(remote, exist_ok=True)
                entries = [os.path.join(local, e) for e in sorted(os.listdir(local))]
                if entries:
                    await sftp.put(entries, remote, recurse=True, preserve=True)
            else:
                await sftp.put(local, remote, preserve=True)

    async def download(self, remote: str, local: str) -> bool:
        return await self._download(remote, local)

    async def download_many(self, pairs: Sequence[tuple[str, str]]) -> list[bool]:
        """:meth:`download` each pair, concurrently.  Right after :meth:`list_files` in the
        same task (an application collecting its traces: it lists its folder, then
        downloads), the listing's sizes stand for the ``stat`` of each file listed: an
        empty trace then costs no request at all."""
        listing, self._listing = self._listing, None
        sizes: dict[str, int] = {}
        if listing is not None and listing[0] is asyncio.current_task():
            sizes = {posixpath.join(listing[1], name): size for name, size in listing[2].items()}
        done: list[bool] = []
        fetched: list[tuple[int, str, str, int | None]] = []
        for remote, local in pairs:
            size = sizes.get(posixpath.normpath(remote))
            if size == 0:  # empty there (most traces of most commands): made here, no task
                _write_local(local, b"")
            else:
                fetched.append((len(done), remote, local, size))
            done.append(True)
        if fetched:
            outcomes = await asyncio.gather(*(self._download(remote, local, size)
                                              for _, remote, local, size in fetched))
            for (index, *_), outcome in zip(fetched, outcomes, strict=True):
                done[index] = outcome
        return done

    async def _download(self, remote: str, local: str, size: int | None = None) -> bool:
        import asyncssh

        data = b""
        if size != 0:
            sftp = await self._sftp()
            with translate_errors(self.where):
                # traces are many and mostly small or empty: a missing or empty file costs
                # one request, a small one four, a big one is streamed in parallel blocks
                if size is None:
                    try:
                        size = (await sftp.stat(remote)).size or 0
                    except asyncssh.SFTPNoSuchFile:
                        return False
                if size > DOWNLOAD_IN_ONE:
                    await sftp.get(remote, local)
                    return True
                if size:
                    try:
                        async with sftp.open(remote, "rb") as f:
                            data = await f.read(size)
                    except asyncssh.SFTPNoSuchFile:
                        return False
        _write_local(local, data)
        return True

    async def read_file(self, path: str, attr: TraceAttr = TraceAttr.ALL, block: int = 512,
                        offset: int = 0) -> str | bytes | int:
        import asyncssh

        attr = TraceAttr(attr)
        if attr is TraceAttr.PATH:
            return path  # on the host
        if attr is TraceAttr.STREAM and (block <= 0 or offset < 0):
            raise ValueError("block must be > 0 and offset >= 0")
        sftp = await self._sftp()
        with translate_errors(self.where):
            try:
                if attr is TraceAttr.SIZE:
                    return (await sftp.stat(path)).size or 0
                async with sftp.open(path, "rb") as f:
                    if attr is TraceAttr.STREAM:
                        await f.seek(block * offset)
                        data = await f.read(block)
                    else:
                        data = await f.read()
            except asyncssh.SFTPNoSuchFile:
                if attr is TraceAttr.SIZE:
                    return 0
                data = b""
        try:
            return data.decode()
        except UnicodeDecodeError:
            return data

    async def list_files(self, folder: str) -> list[str]:
        """Names of the regular files directly in ``folder`` (not links), sorted; empty if it
        is missing: one SFTP listing, no command on the host."""
        import asyncssh

        self._listing = None
        sftp = await self._sftp()
        with translate_errors(self.where):
            try:  # bytes: a name that is not UTF-8 reads as the shell's listing decoded it
                entries = await sftp.readdir(folder.encode())
            except asyncssh.SFTPError:  # missing, not a folder, not readable
                return []
        # OpenSSH's sftp-server lstat()s the entries: a link is no regular file here
        files = {_decode(e.filename): e.attrs.size or 0 for e in entries
                 if e.filename not in (b".", b"..") and stat.S_ISREG(e.attrs.permissions or 0)}
        self._listing = (asyncio.current_task(), posixpath.normpath(folder), files)  # see download_many
        return sorted(files)

    async def tail(self, path: str, size: int = STDERR_TAIL) -> str:
        import asyncssh

        sftp = await self._sftp()
        with translate_errors(self.where):
            try:
                async with sftp.open(path, "rb") as f:
                    length = (await f.stat()).size or 0
                    await f.seek(max(0, length - size))
                    return _decode(await f.read())
            except asyncssh.SFTPNoSuchFile:
                return ""

    async def remove_tree(self, path: str) -> None:
        await self._removals.submit([path])

    async def _remove_trees(self, paths: list[str]) -> None:
        await self._internal('rm -rf -- "$@"', *paths)

    async def remove_empty_dirs(self, paths: Sequence[str]) -> None:
        import asyncssh

        sftp = await self._sftp()
        with translate_errors(self.where):
            for path in paths:
                try:
                    await sftp.rmdir(path)
                except asyncssh.SFTPError:
                    return


async def _makedirs(sftp: Any, path: str) -> None:
    """``mkdir -p`` over SFTP: one request when the parent exists (asyncssh's makedirs
    checks every component from the root).  A parent removed meanwhile is made again
    (see :meth:`Executor.makedirs`)."""
    import asyncssh

    for attempt in range(1, MAKEDIRS_ATTEMPTS + 1):
        try:
            await _makedirs_once(sftp, path)
            return
        except asyncssh.SFTPNoSuchFile:
            if attempt == MAKEDIRS_ATTEMPTS:
                raise


async def _makedirs_once(sftp: Any, path: str) -> None:
    import asyncssh

    try:
        await sftp.mkdir(path)
    except asyncssh.SFTPNoSuchFile:  # a parent is missing
        parent = posixpath.dirname(path)
        if parent == path:
            raise
        await _makedirs_once(sftp, parent)
        try:
            await sftp.mkdir(path)
        except asyncssh.SFTPError:
            if not await sftp.isdir(path):
                raise
    except asyncssh.SFTPError:  # OpenSSH says only "failure" when it exists
        if not await sftp.isdir(path):
            raise


def _kill_session(process: Any) -> None:
    """SIGKILL the process group of a ``run`` command (sshd signals its session's group)."""
    with contextlib.suppress(Exception):
        process.send_signal("KILL")
    with contextlib.suppress(Exception):
        process.close()


def _fail_node_soon(node: Node, error: SshConnectionLostError) -> None:
    """Fail ``node`` because its connection is gone, once its applications failed first.

    The applications that were running learn of the loss in the same loop turn; giving
    them a few turns lets their failure ("outcome unknown") be recorded as theirs
    rather than turned into a STOPPED by the node's failure policy.
    """
    from ...core.states import ResourceState

    async def fail() -> None:
        for _ in range(_NODE_FAILURE_DELAY_TURNS):
            await asyncio.sleep(0)
        if node.state in (ResourceState.READY, ResourceState.STARTED):
            # the core has no public "fail this resource" call yet: reported upstream
            node.fail(error, "run")

    task = asyncio.ensure_future(fail())
    _background.add(task)
    task.add_done_callback(_background.discard)


_background: set[asyncio.Task[Any]] = set()
