"""``linux::Application``: a shell command run on a ``linux::Node``, with its traces.

Lifecycle
---------
deploy
    waits for its node to be READY (fails at once, naming the node, if the node
    failed); checks ``depends``; uploads ``sources`` to ``${SRC}``, ``code`` to
    ``${CODE}`` and ``stdin``; runs ``build`` then ``install`` in ``${APP_HOME}``,
    their output (standard output and error together) in the ``build`` and
    ``install`` traces.  A failing step fails the application with its exit status
    and the end of its log.
start
    starts ``command`` in ``workingDirectory`` (default ``${APP_HOME}``), standard
    output and error in files on the host, standard input from ``stdin`` (or empty).
    The process leads its own process group; STARTED as soon as it is spawned.
run
    its end is noticed from the process itself (a pidfd), never by polling.  Exit
    status 0 gives FINISHED; anything else FAILED, with the status and the end of
    standard error in the failure record.  When the main process ends, whatever it
    left running in its process group is killed: a command that starts helpers in
    the background must wait for them.  What left the group (a daemon) runs on
    until release.
stop
    SIGTERM to the process group, SIGKILL after ``stopGracePeriod`` seconds: STOPPED.
release
    kills whatever still runs, also what left the process group (``setsid``,
    daemons: found in the application's cgroup or by the run's marker in its
    environment, see :mod:`._tracking`); collects the traces if that was not done;
    with the node's ``cleanExperiment`` removes ``${APP_HOME}`` from the host.  If
    the host cannot be reached (an SSH connection lost for good), release says so and
    the run's ``hosts.json`` lists what stays there, for ``nepi-lab cleanup``.

Traces (stdout, stderr, build, install) are files on the host, never held in
memory; they are collected into the run directory (hard-linked when possible) when
the application finishes, fails, is stopped or released.  ``exitcode`` is written
straight into the run directory by the controller, which learns the status from the
process itself: negative when killed by that signal, as :mod:`subprocess` reports it.

Placeholders
------------
``command``, ``build`` and ``install`` are shell command lines (``/bin/sh -c``), run
with these variables set, so NEPI's placeholders expand in them (and in ``code``
scripts) as ordinary shell variables, quoted or not:

==============  ===============================================================
``${HOME}``     the node's ``home`` (the user's home unless set)
``${EXP_HOME}`` ``${HOME}/.nepi_lab/<exp_id>``
``${RUN_HOME}`` ``${EXP_HOME}/<run_id>``: this run, shared by its applications
``${NODE_HOME}`` ``${RUN_HOME}/<node guid>``
``${BIN}``      ``${NODE_HOME}/bin``, first on PATH (``install`` puts tools there)
``${APP_HOME}`` ``${RUN_HOME}/<guid>``: the application's folder and traces
``${SRC}``      ``${APP_HOME}/src``: where ``sources`` are uploaded
``${CODE}``     ``${APP_HOME}/code``: the ``code`` script, executable
==============  ===============================================================

In ``workingDirectory`` and in ``env`` values the same placeholders are replaced by
nepi_lab itself, and nothing else is expanded: values are literal.

Example
-------
>>> from nepi_lab import ExperimentController
>>> with ExperimentController() as ec:                          # doctest: +SKIP
...     node = ec.register_resource("linux::Node")
...     app = ec.register_resource("linux::Application", connectedTo=node,
...                                command="echo $GREETING from ${APP_HOME}",
...                                env="GREETING='hello world'")
...     ec.deploy()
...     ec.wait_finished(app)
...     print(ec.trace(app, "stdout"))
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import posixpath
import re
import shlex
import time
from typing import TYPE_CHECKING, Any

from ...core.attributes import Attribute, Types
from ...core.errors import AttributeValueError, CommandError, InvalidInputError, ResultsWriteError
from ...core.resource import ResourceManager, TopologyRole
from ...core.states import ResourceState
from ...core.traces import Trace, TraceAttr, read_trace_file
from . import _readiness
from .executor import MissingCommandsError, ProcessHandle
from .node import Node

if TYPE_CHECKING:
    from ...core.controller import ExperimentController

S = ResourceState
log = logging.getLogger("nepi_lab")

#: The placeholders, in the order they are documented.
PLACEHOLDERS = ("HOME", "EXP_HOME", "RUN_HOME", "NODE_HOME", "BIN", "APP_HOME", "SRC", "CODE")
_PLACEHOLDER = re.compile(r"\$\{(" + "|".join(PLACEHOLDERS) + r")\}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_env(text: str | None) -> dict[str, str]:
    """Read NEPI's ``env``: space-separated ``NAME=value``, values quoted as in a shell.

    Example
    -------
    >>> parse_env("A=1 B='hello world'")
    {'A': '1', 'B': 'hello world'}
    """
    env: dict[str, str] = {}
    if not text:
        return env
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise ValueError(f"cannot read env {text!r}: {exc}") from None
    for word in words:
        name, eq, value = word.partition("=")
        if not eq or not _ENV_NAME.fullmatch(name):
            raise ValueError(f"env entry {word!r} is not NAME=value")
        env[name] = value
    return env


def _check_env(rm: ResourceManager, old: Any, new: Any) -> Any:
    try:
        parse_env(new)
    except ValueError as exc:
        raise AttributeValueError(rm.guid, rm._rtype, "env", new, str(exc)) from None
    return new


def _check_depends(rm: ResourceManager, old: Any, new: Any) -> Any:
    for name in (new or "").split():
        if "/" in name or not re.fullmatch(r"[A-Za-z0-9_.+-]+", name):
            raise AttributeValueError(rm.guid, rm._rtype, "depends", new,
                                      f"{name!r} is not a command name")
    return new


class Application(ResourceManager):
    """A command run on the ``linux::Node`` it is connected to (see the module docstring)."""

    _rtype = "linux::Application"
    _help = "A shell command run on a linux::Node, with sources, build, install and traces."
    _platform = "linux"
    _connects_to = ("linux::Node",)  # one: valid_connection refuses a second
    _topology_role = TopologyRole.APPLICATION
    _attributes = (
        Attribute("command", "shell command line to run (may use ${APP_HOME} ...); "
                  "default: ${CODE} if code is set, else nothing to run"),
        Attribute("sources", "local files or folders uploaded to ${SRC}, separated by ';'"),
        Attribute("code", "text uploaded to ${CODE} as an executable script"),
        Attribute("build", "shell command line run in ${APP_HOME} at deploy, before install"),
        Attribute("install", "shell command line run in ${APP_HOME} at deploy, after build"),
        Attribute("depends", "space-separated commands that must exist on the host",
                  set_hook=_check_depends),
        Attribute("env", "space-separated NAME=value variables; values quoted as in a shell, "
                  "never expanded (except the placeholders)", set_hook=_check_env),
        Attribute("stdin", "text fed to the command's standard input"),
        Attribute("workingDirectory", "folder the command runs in (default ${APP_HOME}; "
                  "relative to it if relative)"),
        Attribute("stopGracePeriod", "seconds between SIGTERM and SIGKILL when stopping",
                  type=Types.Double, default=3.0, range=(0, None)),
        *_readiness.ATTRIBUTES,
    )
    _traces = (
        Trace("stdout", "standard output of the command", enabled=True),
        Trace("stderr", "standard error of the command", enabled=True),
        Trace("exitcode", "exit status of the command (negative: killed by that signal)", enabled=True),
        Trace("build", "output of the build step", enabled=True),
        Trace("install", "output of the install step", enabled=True),
    )

    #: Traces the controller writes itself, straight into the run directory.
    _local_traces = frozenset({"exitcode"})

    #: Seconds a type with :meth:`_until_ready` waits for it; None: STARTED once spawned.
    _ready_timeout: float | None = None

    def __init__(self, ec: ExperimentController, guid: int) -> None:
        super().__init__(ec, guid)
        self._node: Node | None = None
        self.app_home = ""  #: ``${APP_HOME}`` on the host, once deployed
        self._workdir = ""  # where the command runs, once started
        self._env: dict[str, str] = {}
        self._process: ProcessHandle | None = None
        self._ended: asyncio.Future[int] | None = None
        self._collected = False
        self._collect_lock: asyncio.Lock | None = None
        #: True once a trace could not be written into the run directory: the host's
        #: copy is then kept at release (see ``cleanExperiment``)
        self.keeps_files_on_host = False
        self._path_map: dict[str, str] | None = None  #: the placeholders, once app_home is known

    # -- connections -------------------------------------------------------------------

    def valid_connection(self, other: ResourceManager) -> bool | str:
        if isinstance(other, Node):
            nodes = [n for n in self.get_connected(Node) if n is not other]
            if nodes:
                return f"application {self.guid} already runs on node {nodes[0].guid}"
        return True

    @property
    def node(self) -> Node:
        """The node the application runs on (known from DISCOVERED on)."""
        if self._node is None:
            raise RuntimeError(f"application {self.guid} is {self.state.name}: its node is not known yet")
        return self._node

    # -- helpers -----------------------------------------------------------------------

    def _command_line(self) -> str | None:
        """The shell command line to start; tools build theirs from typed attributes."""
        command = self.get("command")
        if not command and self.get("code"):
            command = '"${CODE}"'
        return command or None

    def _paths(self) -> dict[str, str]:
        if self._path_map is None or self._path_map["APP_HOME"] != self.app_home:
            node = self.node
            self._path_map = {
                "HOME": node.home, "EXP_HOME": node.exp_home, "RUN_HOME": node.run_home,
                "NODE_HOME": node.node_home, "BIN": node.bin_dir, "APP_HOME": self.app_home,
                "SRC": posixpath.join(self.app_home, "src"), "CODE": posixpath.join(self.app_home, "code"),
            }
        return self._path_map

    def expand(self, text: str) -> str:
        """``text`` with NEPI's placeholders replaced by this application's paths."""
        paths = self._paths()
        return _PLACEHOLDER.sub(lambda m: paths[m.group(1)], text)

    def _local_path(self, trace: str) -> str:
        return os.path.join(self.results_dir, trace)

    def host_path(self, trace: str) -> str:
        """Where trace ``trace`` is written on the host."""
        self._check_trace(trace)
        return posixpath.join(self.app_home, trace)

    async def _wait_or_kill(self, process: ProcessHandle) -> int:
        try:
            return await process.wait()
        except BaseException:  # cancelled (released, aborted): leave nothing running
            process.kill()
            raise

    async def _run_step(self, step: str) -> None:
        """Run the ``build`` or ``install`` command, its output in the trace of that name."""
        command = self.get(step)
        log_path = self.host_path(step)
        process = await self.node.spawn(command, stdout=log_path, stderr=log_path, cwd=self.app_home,
                                        env=self._env, path=[self.node.bin_dir], owner=self.guid)
        status = await self._wait_or_kill(process)
        if status != 0:
            tail = await self.node.executor.tail(log_path)
            raise CommandError(command, status, tail, f"{self.node.executor.where} ({step} step)")

    async def _collect(self) -> None:
        """Copy (or hard-link) the enabled traces from the host into the run directory."""
        node = self._node
        if node is None or not self.app_home or node._executor is None:
            return
        if self._collect_lock is None:
            self._collect_lock = asyncio.Lock()
        async with self._collect_lock:
            names = [name for name in self._trace_table
                     if name in self._enabled_traces and name not in self._local_traces
                     and not (name in ("build", "install") and not self.get(name))]  # no such step
            pairs = [(self.host_path(n), self._local_path(n)) for n in names]
            try:
                await node.executor.download_many(pairs)
            except OSError:  # one by one, to keep what can be kept and say what could not
                for remote, local in pairs:
                    try:
                        await node.executor.download(remote, local)
                    except OSError as exc:
                        self._results_not_written(local, exc, remote)
            self._collected = not self.keeps_files_on_host

    def _results_not_written(self, local: str, exc: OSError, remote: str | None = None) -> None:
        """A trace that did not reach the run directory (a full disk): record it, keep the
        host's copy (never removed at release then), drop the partial local copy."""
        with contextlib.suppress(OSError):
            os.unlink(local)
        kept = None
        if remote is not None:
            self.keeps_files_on_host = True
            kept = f"{self.node.executor.where}:{remote}"
        self.record_problem(ResultsWriteError(self.guid, local, exc, kept), "collect")

    async def _after_exit(self, process: ProcessHandle) -> int:
        status = await process.wait()
        try:
            with open(self._local_path("exitcode"), "w") as f:
                f.write(f"{status}\n")
        except OSError as exc:  # the status itself is known: the outcome does not depend on it
            self._results_not_written(self._local_path("exitcode"), exc)
        await self._collect()
        return status

    async def _until_ready(self) -> None:
        """Return once the started command is ready for others: its readiness attributes
        hold (see :mod:`._readiness`; types with their own readiness override it)."""
        await _readiness.until_ready(self, self._workdir)

    def _readiness_timeout(self) -> float | None:
        """Seconds :meth:`_until_ready` may take; None: STARTED once spawned."""
        if self._ready_timeout is not None:
            return self._ready_timeout
        return self.get("readyTimeout") if _readiness.wanted(self) else None

    async def _probe(self, check: Any) -> None:
        """Await ``check()`` until true, backing off 2 ms to 50 ms (a readiness probe).

        Used only where the OS gives no event (a socket starting to listen); bounded
        by :attr:`_ready_timeout` in :meth:`do_start`.
        """
        delay = 0.002
        while not await check():
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    # -- lifecycle ---------------------------------------------------------------------

    async def do_discover(self) -> None:
        nodes = self.get_connected(Node)
        if not nodes:
            raise InvalidInputError(
                f"{self._rtype} {self.guid} is not connected to a linux::Node: "
                f"connect one with ec.register_connection({self.guid}, node)"
            )
        self._node = nodes[0]

    async def do_provision(self) -> None:
        node = self.node
        await self.wait_for(node, S.READY)
        self.app_home = posixpath.join(node.run_home, str(self.guid))
        try:
            await self._provision(node)
        except Exception:
            await self._collect()
            raise

    def _environment(self) -> dict[str, str]:
        """The placeholders, then the ``env`` attribute (read anew at each step)."""
        return {**self._paths(), **{k: self.expand(v) for k, v in parse_env(self.get("env")).items()}}

    async def _provision(self, node: Node) -> None:
        paths = self._paths()
        self._env = self._environment()
        await node.makedirs(self.app_home)
        depends = (self.get("depends") or "").split()
        if depends:
            missing = await node.executor.missing_commands(depends, [node.bin_dir])
            if missing:
                raise MissingCommandsError(missing, node.executor.where, self.guid)
        sources = [s.strip() for s in (self.get("sources") or "").split(";") if s.strip()]
        if sources:
            await node.makedirs(paths["SRC"])
        for source in sources:
            if re.match(r"[a-z][a-z0-9+.-]*://", source):
                raise InvalidInputError(f"application {self.guid}: source {source!r} is a URL; "
                                        f"download it and give the local path")
            local = os.path.abspath(os.path.expanduser(source))
            if not os.path.exists(local):
                raise InvalidInputError(f"application {self.guid}: source {source!r} does not exist here")
            await node.upload(local, posixpath.join(paths["SRC"], os.path.basename(local.rstrip("/"))))
        if self.get("code") is not None:
            await node.write_file(paths["CODE"], self.get("code"), 0o755)
        if self.get("stdin") is not None:
            await node.write_file(posixpath.join(self.app_home, "stdin"), self.get("stdin"))
        for step in ("build", "install"):
            if self.get(step):
                await self._run_step(step)

    async def do_start(self) -> None:
        command = self._command_line()
        self._collected = False
        if command is None:  # nothing to run: deploying was the whole job
            self._process = None
            self._ended = None
            return
        node = self.node
        self._env = self._environment()
        workdir = self.expand(self.get("workingDirectory") or self.app_home)
        workdir = posixpath.join(self.app_home, workdir)  # absolute stays absolute
        stdin = posixpath.join(self.app_home, "stdin") if self.get("stdin") is not None else None
        queue = node.executor.spawn_queue
        note = None
        if queue() is not None and self._waiting is None:  # explain() says why it is not STARTED yet
            note = self._waiting = lambda: queue() or "starting its command"
        try:
            process = await node.spawn(command, stdout=self.host_path("stdout"),
                                       stderr=self.host_path("stderr"), stdin=stdin, cwd=workdir,
                                       env=self._env, path=[node.bin_dir], owner=self.guid)
        finally:
            if note is not None and self._waiting is note:
                self._waiting = None
        self._process = process
        self._ended = asyncio.ensure_future(self._after_exit(process))
        self._workdir = workdir
        if self._readiness_timeout() is not None:
            await self._await_ready(process, self._ended)

    async def _await_ready(self, process: ProcessHandle, ended: asyncio.Future[int]) -> None:
        ready = asyncio.ensure_future(self._until_ready())
        started = time.monotonic()
        try:
            done, _ = await asyncio.wait({ready, ended}, timeout=self._readiness_timeout(),
                                         return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            process.kill()
            raise
        finally:
            if not ready.done():
                ready.cancel()
        if ready in done and ready.exception() is None:
            return
        if ended in done:
            status = ended.result()
            if status == 0:
                return  # over before anyone could look: do_run reports FINISHED
            tail = await self.node.executor.tail(self.host_path("stderr"))
            raise CommandError(process.command, status, tail, self.node.executor.where)
        process.kill()
        if ready in done:
            ready.result()  # the probe itself failed: raise its error
        waited = f" ({_readiness.describe(self)})" if self._ready_timeout is None else ""
        raise TimeoutError(
            f"{self._rtype} {self.guid} was not ready{waited} {time.monotonic() - started:.1f} s after "
            f"it started"
        )

    async def do_run(self) -> None:
        ended = self._ended
        if ended is None:
            return
        status = await asyncio.shield(ended)
        if status != 0:
            tail = await self.node.executor.tail(self.host_path("stderr"))
            raise CommandError(self._process.command, status, tail, self.node.executor.where)  # type: ignore[union-attr]

    async def do_stop(self) -> None:
        process = self._process
        if process is not None and process.returncode is None:
            await process.terminate(self.get("stopGracePeriod"))
        if self._ended is not None:
            await asyncio.shield(self._ended)

    async def do_release(self) -> None:
        process = self._process
        if process is not None and process.returncode is None:
            process.kill()
        # collected when the process ended, unless it never ran or its end was not seen
        collect = self._ended is None
        if self._ended is not None:
            try:
                await asyncio.shield(self._ended)
            except Exception as exc:  # e.g. the connection was lost: its run already failed on it
                log.debug("application %s: outcome unavailable at release: %s", self.guid, exc)
                collect = True
        node = self._node
        if node is None or node._executor is None:
            return
        executor = node.executor
        if not await executor.reconnect():  # the host stays unreachable: its node records what is left
            raise node._note_left(self, self.app_home)
        # what the command started and left running, also outside its process group
        try:
            stopped = await executor.stop_owner(self.guid)
        except ConnectionError:
            raise
        except Exception as exc:  # e.g. no grep -z on the host: the traces are still collected
            log.warning("application %s: could not look for processes it left running on %s: %s",
                        self.guid, executor.where, exc)
            stopped = 0
        if stopped:
            log.info("application %s: stopped %s processes it left running on %s", self.guid, stopped,
                     executor.where)
        if collect and not self._collected:
            await self._collect()
        if self.app_home and node.get("cleanExperiment"):
            if self.keeps_files_on_host:
                log.warning("application %s: its traces stay in %s on %s (they could not all be "
                            "written into the run directory)", self.guid, self.app_home, executor.where)
            else:
                await executor.remove_tree(self.app_home)

    # -- traces --------------------------------------------------------------------------

    async def read_trace(self, name: str, attr: TraceAttr = TraceAttr.ALL,
                         block: int = 512, offset: int = 0) -> str | bytes | int:
        """Read a trace: from the host while it is written, from the run directory once collected."""
        local = self.trace_path(name)
        node = self._node
        on_host = (node is not None and node._executor is not None and bool(self.app_home)
                   and self.state != S.RELEASED and name not in self._local_traces
                   and not (self._collected and os.path.exists(local)))
        if on_host:
            return await node.read_file(self.host_path(name), attr, block, offset)  # type: ignore[union-attr]
        return read_trace_file(local, attr, block, offset)
