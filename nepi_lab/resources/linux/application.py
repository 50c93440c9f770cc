"""``linux::Application``: a shell command run on a ``linux::Node``, with its traces.

Lifecycle
---------
deploy
    waits for its node to be READY (fails at once, naming the node, if the node
    failed); checks ``depends`` (commands, packages, or ``command=package``: see
    :mod:`._packages`), first installing the missing ones' packages with the host's
    package manager if ``installDepends`` is set (as root, or through ``sudo -n``;
    :meth:`Node.install_packages <nepi_lab.resources.linux.node.Node.install_packages>`);
    puts ``sources`` in ``${SRC}``, ``files`` in
    ``${SHARE}``, ``libs`` in ``${LIB}`` and ``bins`` in ``${BIN}`` (local paths are
    uploaded, ``http://`` and ``https://`` URLs downloaded on the host with curl, wget
    or python3, whichever it has: a failed download fails the application with a
    :class:`~nepi_lab.DownloadError` naming the URL); writes ``code`` to ``${CODE}``
    and ``stdin``; runs ``build`` then ``install`` in ``${RUN_HOME}``, their output
    (standard output and error together) in the ``build`` and ``install`` traces.  A
    failing step fails the application with its exit status and the end of its log.
    NEPI's deploy traces are written too when there is such a step (an entry to put
    on the host, ``build`` or ``install``), as NEPI wrote them:
    ``deploy_stdout`` (the path of each entry put on the host, one a line, then the
    build and install output), ``deploy_exitcode`` (``0``, the failed step's status,
    or ``1`` for another failure such as a download; a number then a newline) and
    ``deploy_stderr`` (why the deploy failed; empty when it succeeded).
start
    starts ``command`` in ``workingDirectory`` (default ``${RUN_HOME}``), standard
    output and error in files on the host (one file, the ``stdout`` trace, with
    ``splitStderr`` false), standard input from ``stdin`` (or empty); with ``sudo``,
    as root (through ``sudo -n`` unless the node's user is root already).  The
    process leads its own process group; STARTED as soon as it is spawned.
run
    its end is noticed from the process itself (a pidfd), never by polling.  Exit
    status 0 gives FINISHED; anything else FAILED, with the status and the end of
    standard error in the failure record.  When the main process ends, whatever it
    left running in its process group is killed: a command that starts helpers in
    the background must wait for them.  What left the group (a daemon) runs on
    until release.
stop
    SIGTERM to the process group, SIGKILL after ``stopGracePeriod`` seconds: STOPPED.
    A command started through ``sudo -n`` runs as root, out of the node's user's
    reach: its processes carry the run's marker (passed through sudo), and those in
    its process group get the SIGTERM, and the SIGKILL after the grace period, as
    root through ``sudo -n`` (``sudo`` itself leads the process group, passes the
    SIGTERM on and waits for the command, so the grace period holds); so does what
    it leaves in its group when it ends.
release
    kills whatever still runs (as root too, for a command started through sudo),
    also what left the process group (``setsid``,
    daemons: found in the application's cgroup or by the run's marker in its
    environment, see :mod:`._tracking`); runs ``tearDown`` (in ``${RUN_HOME}``; a
    failure is recorded, not fatal); collects the traces if that was not done;
    with the node's ``cleanExperiment`` removes ``${RUN_HOME}`` from the host.  If
    the host cannot be reached (an SSH connection lost for good), release says so and
    the run's ``hosts.json`` lists what stays there, for ``nepi-lab cleanup``.

Traces (stdout, stderr, build, install) are files on the host, never held in
memory; they are collected into the run directory (hard-linked when possible) when
the application finishes, fails, is stopped or released.  ``exitcode`` is written
straight into the run directory by the controller, which learns the status from the
process itself: negative when killed by that signal, as :mod:`subprocess` reports it.

Traces by file name: as in NEPI, ``ec.trace(app, "bw.txt")`` reads a file the
application wrote in ``${RUN_HOME}`` (a name, never a path: no ``/``, no ``..``).
Every regular file directly in ``${RUN_HOME}`` (except ``stdin`` and ``code``) is
collected with the declared traces, so it stays readable after release; a name that
is neither declared nor written raises :class:`~nepi_lab.MissingTraceError`.  A
deliberate difference from NEPI: ``TraceAttr.PATH`` gives the path on the host only
until the trace is collected, then the local copy in the run directory.

The application's folder on the host is ``ec.get_resource(app).run_home`` (NEPI's
name; ``app_home`` is the same folder, as ``${APP_HOME}`` is), known once the
application is provisioned: before, reading it raises :class:`RuntimeError`.

Placeholders
------------
``command``, ``build``, ``install`` and ``tearDown`` are shell command lines
(``/bin/sh -c``), run with these variables set, so NEPI's placeholders expand in them
(and in ``code`` scripts) as ordinary shell variables, quoted or not.  The names mean
what they mean in NEPI; where the folder differs, the reason is given:

=================  ============================================================
``${HOME}``        the node's ``home`` (the user's home unless set)
``${EXP}``         ``${HOME}/.nepi_lab``: every experiment's folders on the host
``${EXP_HOME}``    ``${EXP}/<exp_id>``: every run of this experiment
``${NODE_HOME}``   ``${EXP_HOME}/<run_id>/<node guid>``: the node's folder for
                   this run (NEPI: ``${EXP_HOME}/node-<guid>``, kept across runs)
``${BIN}``         ``${NODE_HOME}/bin``, first on PATH; ``bins`` go there
                   (NEPI: ``${USR}/bin``, kept; here removed with the run, so a
                   tool a run installs cannot leak into the next one)
``${USR}``         ``${EXP}/.usr``: kept on the host, shared by every experiment
                   (a dot name, which no ``exp_id`` can be)
``${LIB}``         ``${USR}/lib``: ``libs`` go there; kept
``${SHARE}``       ``${USR}/share``: ``files`` go there; kept
``${RUN_HOME}``    ``${EXP_HOME}/<run_id>/<guid>``: the application's own folder
                   for this run: its traces, where ``build``, ``install``,
                   ``command`` and ``tearDown`` run, and where what they write
                   lands (``build "gcc hello.c -o hello"`` then
                   ``command "${RUN_HOME}/hello"``)
``${APP_HOME}``    the same folder as ``${RUN_HOME}``: in NEPI it is the
                   application's folder across runs, the parent of
                   ``${RUN_HOME}``; here every run starts from clean folders, so
                   the two coincide and scripts using either keep working
``${SRC}``         ``${RUN_HOME}/src``: where ``sources`` go (NEPI: ``${USR}/src``)
``${CODE}``        ``${RUN_HOME}/code``: the ``code`` script, executable
=================  ============================================================

Earlier versions of nepi_lab used ``${RUN_HOME}`` for the run's folder shared by
all its applications (``${EXP_HOME}/<run_id>``); applications of one node
share a folder through ``${NODE_HOME}``, of one run on one host through its parent
(``"$(dirname "$NODE_HOME")"``).

In ``workingDirectory`` and in ``env`` values the same placeholders are replaced by
nepi_lab itself, and nothing else is expanded: values are literal.

Example
-------
>>> from nepi_lab import ExperimentController                   # doctest: +SKIP
>>> with ExperimentController() as ec:                          # doctest: +SKIP
...     node = ec.register_resource("linux::Node")
...     app = ec.register_resource("linux::Application", connectedTo=node,
...                                command="echo $GREETING from ${RUN_HOME}",
...                                env="GREETING='hello world'")
...     ec.deploy()
...     ec.wait_finished(app)
...     print(ec.trace(app, "stdout"))
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import posixpath
import re
import shlex
import stat
import time
import urllib.parse
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from ...core.attributes import Attribute, Types
from ...core.errors import (
    AttributeValueError,
    CommandError,
    DownloadError,
    InvalidInputError,
    MissingTraceError,
    PackageInstallError,
    ResultsWriteError,
    UnknownTraceError,
    UnsafeNameError,
)
from ...core.resource import ResourceManager, TopologyRole
from ...core.states import ResourceState
from ...core.traces import Trace, TraceAttr, check_name, read_trace_file
from . import _readiness
from ._packages import parse_depends
from ._tracking import RUN_VARIABLE, marker
from .executor import Executor, MissingCommandsError, ProcessHandle
from .node import NEPI_DIR, Node

if TYPE_CHECKING:
    from ...core.controller import ExperimentController

S = ResourceState
log = logging.getLogger("nepi_lab")

#: The placeholders, in the order they are documented.
PLACEHOLDERS = ("HOME", "EXP", "EXP_HOME", "NODE_HOME", "BIN", "USR", "LIB", "SHARE", "RUN_HOME",
                "APP_HOME", "SRC", "CODE")


# The patterns are compiled on first use, not at import (0.5-1 ms together): a command
# without a placeholder, an application without env or sources never needs them.
@functools.cache
def _placeholder() -> re.Pattern[str]:
    return re.compile(r"\$\{(" + "|".join(PLACEHOLDERS) + r")\}")


@functools.cache
def _env_name() -> re.Pattern[str]:
    return re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@functools.cache
def _url() -> re.Pattern[str]:
    return re.compile(r"[a-z][a-z0-9+.-]*://", re.IGNORECASE)


#: ``${USR}``'s name under ``${EXP}``: a dot name, which ``check_name`` refuses as an exp_id.
USR_DIR = ".usr"

#: Attributes whose entries are put in a folder at deploy, and that folder's placeholder.
_PLACED = (("sources", "SRC"), ("files", "SHARE"), ("libs", "LIB"), ("bins", "BIN"))

#: Signals ($1: TERM, KILL ...) every process whose environment holds the NAME=value
#: line $2 (the run's marker), but itself; with $3, only those in process group $3.  For
#: KILL, looks again until none is left (a process may fork meanwhile), at most ten
#: times.  Run as root (through sudo -n) to reach the processes a command started
#: through sudo.
_SIGNAL_MARKED = r"""sig=$1 line=$2 group=${3:-} round=0
while [ "$round" -lt 10 ]; do
  round=$((round + 1))
  pids=
  for f in $(grep -lzxF -e "$line" /proc/[0-9]*/environ 2>/dev/null); do
    p=${f#/proc/}; p=${p%/environ}
    [ "$p" = "$$" ] && continue
    if [ -n "$group" ]; then  # the fifth field of /proc/<pid>/stat, after "(command)"
      stat=$(cat "/proc/$p/stat" 2>/dev/null) || continue
      set -- ${stat##*) }
      [ "$3" = "$group" ] || continue
    fi
    pids="$pids $p"
  done
  [ -n "$pids" ] || break
  kill -s "$sig" $pids 2>/dev/null
  [ "$sig" = KILL ] || break
done
exit 0
"""

#: Seconds the signalling of a sudo'd command's root processes may take.
_SIGNAL_TIMEOUT = 30.0

#: NEPI's traces of the deploy step (sources, files, libs, bins, build, install).
DEPLOY_TRACES = ("deploy_stdout", "deploy_stderr", "deploy_exitcode")

#: Files of ``${RUN_HOME}`` that are inputs, not traces.
NOT_TRACES = frozenset({"stdin", "code"})

#: Downloads URL $1 to file $2 on the host with whichever of curl, wget or python3 it has;
#: written to a temporary name first, so a failed download leaves no partial file.
_DOWNLOAD = """\
tmp="$2.part.$$"
if command -v curl >/dev/null 2>&1; then curl -fsSL -o "$tmp" "$1"
elif command -v wget >/dev/null 2>&1; then wget -nv -O "$tmp" "$1"
elif command -v python3 >/dev/null 2>&1; then python3 -c 'import shutil, sys, urllib.request
with urllib.request.urlopen(sys.argv[1]) as r, open(sys.argv[2], "wb") as f:
    shutil.copyfileobj(r, f)' "$1" "$tmp"
else echo "none of curl, wget or python3 is installed" >&2; false
fi && mv -f "$tmp" "$2" || { status=$?; rm -f "$tmp"; exit $status; }
"""


def _safe_name(name: str) -> bool:
    try:
        check_name(name, "trace name")
    except UnsafeNameError:
        return False
    return True


async def written_files(executor: Executor, folder: str, declared: Collection[str],
                        ended: ProcessHandle | None = None) -> list[str]:
    """The files an application wrote in its folder ``folder`` on the host that are not
    ``declared`` traces: its traces by file name (safe names only, never ``stdin`` or
    ``code``), collected with the declared ones at release, and by ``nepi-lab cleanup``.

    ``ended`` is its process, just ended: a handle that listed the folder when it ended
    (``files_at_end``, over SSH) spares the executor a listing."""
    at_end = getattr(ended, "files_at_end", None)
    names = at_end(folder) if at_end is not None else None
    if names is None:
        names = await executor.list_files(folder)
    return [name for name in names if name not in declared and name not in NOT_TRACES and _safe_name(name)]


def _entries(text: str | None) -> list[str]:
    """The ``;``-separated entries of ``sources``, ``files``, ``libs`` or ``bins``."""
    return [entry.strip() for entry in (text or "").split(";") if entry.strip()]


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
        if not eq or not _env_name().fullmatch(name):
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
    try:
        parse_depends(new)
    except ValueError as exc:
        raise AttributeValueError(rm.guid, rm._rtype, "depends", new, str(exc)) from None
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
        Attribute("sources", "local files or folders uploaded to ${SRC}, or http(s) URLs downloaded "
                  "there on the host, separated by ';'"),
        Attribute("files", "local files or http(s) URLs put in ${SHARE} (kept on the host, shared "
                  "by every experiment), separated by ';'"),
        Attribute("libs", "local files or http(s) URLs put in ${LIB} (kept on the host, shared by "
                  "every experiment), separated by ';'"),
        Attribute("bins", "local files or http(s) URLs put in ${BIN} (on PATH, made executable), "
                  "separated by ';'"),
        Attribute("code", "text uploaded to ${CODE} as an executable script"),
        Attribute("build", "shell command line run in ${RUN_HOME} at deploy, before install"),
        Attribute("install", "shell command line run in ${RUN_HOME} at deploy, after build"),
        Attribute("tearDown", "shell command line run in ${RUN_HOME} when the application is "
                  "released (a failure is recorded, not fatal)"),
        Attribute("depends", "space-separated commands (or packages) needed on the host; "
                  "command=package names the package of a command", set_hook=_check_depends),
        Attribute("installDepends", "at deploy, install the missing depends with the host's package "
                  "manager (apt-get, dnf, yum), as root or through sudo -n", type=Types.Bool,
                  default=False),
        Attribute("env", "space-separated NAME=value variables; values quoted as in a shell, "
                  "never expanded (except the placeholders)", set_hook=_check_env),
        Attribute("stdin", "text fed to the command's standard input"),
        Attribute("workingDirectory", "folder the command runs in (default ${RUN_HOME}; "
                  "relative to it if relative)"),
        Attribute("splitStderr", "standard error in its own trace, stderr; false: merged into "
                  "stdout (NEPI's default is false, nepi_lab's true)", type=Types.Bool, default=True),
        Attribute("sudo", "run the command as root: through sudo -n unless the node's user is root",
                  type=Types.Bool, default=False),
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
        Trace("deploy_stdout", "NEPI's deploy step output: where each sources/files/libs/bins entry was "
              "put, then the build and install output (written only if there is such a step)", enabled=True),
        Trace("deploy_stderr", "why the deploy step failed (empty when it succeeded)", enabled=True),
        Trace("deploy_exitcode", "exit status of the deploy step: 0, the failed build or install step's "
              "status, or 1 for another failure (a download, a missing local file)", enabled=True),
    )

    #: Traces the controller writes itself, straight into the run directory.
    _local_traces = frozenset({"exitcode"})

    #: Seconds a type with :meth:`_until_ready` waits for it; None: STARTED once spawned.
    _ready_timeout: float | None = None

    def __init__(self, ec: ExperimentController, guid: int) -> None:
        super().__init__(ec, guid)
        self._node: Node | None = None
        self._app_home = ""  # ``${RUN_HOME}`` = ``${APP_HOME}`` on the host, once provisioning began
        self._workdir = ""  # where the command runs, once started
        self._env: dict[str, str] = {}
        self._process: ProcessHandle | None = None
        self._ended: asyncio.Future[int] | None = None
        self._collected = False
        self._collections = 0  #: collections ended so far (see _read_trace_here)
        self._collect_lock: asyncio.Lock | None = None
        #: True once a trace could not be written into the run directory: the host's
        #: copy is then kept at release (see ``cleanExperiment``)
        self.keeps_files_on_host = False
        self._path_map: dict[str, str] | None = None  #: the placeholders, once app_home is known
        #: the run's marker of the command started through ``sudo -n`` (the node's user is not
        #: root): its root processes are signalled as root, by this marker (see _signal_as_root)
        self._root_marker: str | None = None

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

    @property
    def run_home(self) -> str:
        """``${RUN_HOME}``: the path of the application's own folder on the host (NEPI's
        ``run_home``), where its command runs and its traces are written.  Known once
        the application is provisioned (``ec.wait_deployed(app)``); the folder is
        removed at release with the node's ``cleanExperiment``, the path stays.

        Example: ``node.run(f"ls {ec.get_resource(app).run_home}")``.

        Raises
        ------
        RuntimeError
            The application is not provisioned yet: its folder does not exist.
        """
        if not self._app_home:
            raise RuntimeError(
                f"{self._rtype} {self.guid} is {self.state.name}: its folder on the host is known once it "
                f"is provisioned (call ec.deploy(), then ec.wait_deployed({self.guid}))"
            )
        return self._app_home

    @property
    def app_home(self) -> str:
        """``${APP_HOME}``: the same folder as :attr:`run_home` (in NEPI, the parent of
        ``run_home``, kept across runs; here every run starts from clean folders, so
        the two coincide, as the placeholders do).  Raises as :attr:`run_home`."""
        return self.run_home

    # -- helpers -----------------------------------------------------------------------

    def _command_line(self) -> str | None:
        """The shell command line to start; tools build theirs from typed attributes."""
        command = self.get("command")
        if not command and self.get("code"):
            command = '"${CODE}"'
        return command or None

    def _paths(self) -> dict[str, str]:
        if self._path_map is None or self._path_map["APP_HOME"] != self._app_home:
            node = self.node
            exp = posixpath.join(node.home, NEPI_DIR)
            usr = posixpath.join(exp, USR_DIR)
            self._path_map = {
                "HOME": node.home, "EXP": exp, "EXP_HOME": node.exp_home, "NODE_HOME": node.node_home,
                "BIN": node.bin_dir, "USR": usr, "LIB": posixpath.join(usr, "lib"),
                "SHARE": posixpath.join(usr, "share"), "RUN_HOME": self._app_home, "APP_HOME": self._app_home,
                "SRC": posixpath.join(self._app_home, "src"), "CODE": posixpath.join(self._app_home, "code"),
            }
        return self._path_map

    def expand(self, text: str) -> str:
        """``text`` with NEPI's placeholders replaced by this application's paths."""
        if "${" not in text:  # nothing to replace (most commands): no pattern needed
            return text
        paths = self._paths()
        return _placeholder().sub(lambda m: paths[m.group(1)], text)

    def _local_path(self, trace: str) -> str:
        return os.path.join(self.results_dir, trace)

    def host_path(self, trace: str) -> str:
        """Where trace ``trace`` is written on the host."""
        self._check_trace(trace)
        return posixpath.join(self._app_home, trace)

    def _check_trace(self, name: str) -> Trace:
        """A declared trace, or any other safe name: a file the command writes in ``${RUN_HOME}``."""
        try:
            return super()._check_trace(name)
        except UnknownTraceError:
            return Trace(name, "a file the application wrote in ${RUN_HOME}")

    def _stderr_path(self) -> str:
        """The file standard error goes to: the stdout trace's unless ``splitStderr``."""
        return self.host_path("stderr" if self.get("splitStderr") else "stdout")

    async def _written_files(self, node: Node, ended: ProcessHandle | None = None) -> list[str]:
        """The files the application wrote in ``${RUN_HOME}``, not declared traces: the
        traces by file name that are collected with the declared ones (``ended``: its
        process, which just ended, see :func:`written_files`)."""
        return await written_files(node.executor, self._app_home, self._trace_table, ended)

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
        process = await self.node.spawn(command, stdout=log_path, stderr=log_path, cwd=self._app_home,
                                        env=self._env, path=[self.node.bin_dir], owner=self.guid)
        status = await self._wait_or_kill(process)
        if status != 0:
            tail = await self.node.executor.tail(log_path)
            raise CommandError(command, status, tail, f"{self.node.executor.where} ({step} step)")

    async def _collect(self, ended: ProcessHandle | None = None) -> None:
        """Copy (or hard-link) the enabled traces from the host into the run directory
        (``ended``: the process that just ended, nothing having run since)."""
        node = self._node
        if node is None or not self._app_home or node._executor is None:
            return
        if self._collect_lock is None:
            self._collect_lock = asyncio.Lock()
        async with self._collect_lock:
            skipped = {step for step in ("build", "install") if not self.get(step)}  # no such step
            skipped.update(self._local_traces)
            if not self._deploys():
                skipped.update(DEPLOY_TRACES)
            names = [name for name in self._trace_table
                     if name in self._enabled_traces and name not in skipped]
            try:
                names += await self._written_files(node, ended)
            except (OSError, CommandError) as exc:  # the declared traces are still collected
                log.warning("application %s: could not list the files in %s on %s: %s", self.guid,
                            self._app_home, node.executor.where, exc)
            pairs = [(self.host_path(n), self._local_path(n)) for n in names]
            try:
                await node.executor.download_many(pairs)
            except OSError:  # one by one, to keep what can be kept and say what could not
                for remote, local in pairs:
                    try:
                        await node.executor.download(remote, local)
                    except OSError as exc:
                        self._results_not_written(local, exc, remote)
            self._collections += 1  # before the flag: see _read_trace_here
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
        ended: ProcessHandle | None = process
        if self._root_marker is not None:  # what it left in its group as root, as for any command
            await self._signal_as_root("KILL", process.pid)
            ended = None  # they may have written files since: list the folder now
        try:
            with open(self._local_path("exitcode"), "w") as f:
                f.write(f"{status}\n")
        except OSError as exc:  # the status itself is known: the outcome does not depend on it
            self._results_not_written(self._local_path("exitcode"), exc)
        await self._collect(ended)
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
        self._app_home = posixpath.join(node.run_home, str(self.guid))
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
        await node.makedirs(self._app_home)
        await self._check_depends(node)
        placed_all: list[str] = []
        steps: list[str] = []
        try:
            for attribute, placeholder in _PLACED:
                entries = _entries(self.get(attribute))
                if entries:
                    await node.makedirs(paths[placeholder])
                placed: list[str] = []
                for entry in entries:
                    placed.append(await self._place(attribute, entry, paths[placeholder]))
                    placed_all.append(placed[-1])
                if attribute == "bins" and placed:
                    await node.run("chmod +x -- " + " ".join(shlex.quote(path) for path in placed))
            if self.get("code") is not None:
                await node.write_file(paths["CODE"], self.get("code"), 0o755)
            if self.get("stdin") is not None:
                await node.write_file(posixpath.join(self._app_home, "stdin"), self.get("stdin"))
            for step in ("build", "install"):
                if self.get(step):
                    steps.append(step)
                    await self._run_step(step)
        except Exception as exc:
            if self._deploys():
                try:
                    await self._write_deploy_traces(placed_all, steps, exc)
                except Exception as again:  # e.g. the host is gone: the deploy's own error matters
                    log.debug("application %s: could not write its deploy traces: %s", self.guid, again)
            raise
        if self._deploys():
            await self._write_deploy_traces(placed_all, steps, None)

    def _deploys(self) -> bool:
        """Whether the application has a deploy step, as NEPI called it: entries of
        ``sources``, ``files``, ``libs`` or ``bins`` to put on the host, ``build`` or
        ``install``.  Only then are the ``deploy_*`` traces written (NEPI's too)."""
        steps = self.get("build") or self.get("install")
        return bool(steps) or any(_entries(self.get(attribute)) for attribute, _ in _PLACED)

    async def _write_deploy_traces(self, placed: list[str], steps: list[str],
                                   error: Exception | None) -> None:
        """Write NEPI's deploy traces into ``${RUN_HOME}`` with one command on the host:
        ``deploy_stdout`` (where each entry was put, one path a line, as NEPI's download
        command listed them, then the output of the ``steps`` that ran), ``deploy_exitcode``
        (``0``, the failed step's status, or ``1`` for any other ``error``; a number and a
        newline, as NEPI wrote it) and ``deploy_stderr`` (``error``'s message, or empty)."""
        status = 0
        if error is not None:
            status = error.returncode if isinstance(error, CommandError) and error.returncode else 1
        listed = "printf '%s\\n' " + " ".join(shlex.quote(path) for path in placed) + "; " if placed else ""
        outputs = "cat -- " + " ".join(steps) + "; " if steps else ""
        message = shlex.quote(f"{error}\n" if error is not None else "")
        command = (f"cd -- {shlex.quote(self._app_home)} && {{ {listed}{outputs}:; }} > deploy_stdout && "
                   f"printf '%s\\n' {status} > deploy_exitcode && printf '%s' {message} > deploy_stderr")
        await self.node.run(command)

    async def _check_depends(self, node: Node) -> None:
        """Fail unless every ``depends`` item is satisfied on the host; with
        ``installDepends``, first install the packages of those that are not."""
        items = parse_depends(self.get("depends"))
        missing = await node.missing_depends(items) if items else []
        if missing and self.get("installDepends"):
            packages = list(dict.fromkeys(item.package for item in missing))
            log.info("application %s: installing %s on %s", self.guid, " ".join(packages),
                     node.executor.where)
            await node.install_packages(packages, owner=self.guid)
            missing = await node.missing_depends(missing)
            if missing:
                raise PackageInstallError(
                    [item.package for item in missing], node.executor.where,
                    f"installed, but {', '.join(item.command for item in missing)} is still not a command "
                    f"there: name the package that provides it in depends, as command=package", self.guid)
        if missing:
            raise MissingCommandsError([item.command for item in missing], node.executor.where, self.guid)

    async def _place(self, attribute: str, entry: str, folder: str) -> str:
        """Put one entry of ``attribute`` (``sources``, ``files``...) in ``folder`` on the
        host: upload a local path, download an http(s) URL there; return where it went."""
        node = self.node
        if _url().match(entry):
            if not re.match(r"https?://", entry, re.IGNORECASE):
                raise InvalidInputError(f"application {self.guid}: {attribute} entry {entry!r}: only "
                                        f"http:// and https:// URLs are downloaded; give a local path")
            return await self._download(entry, folder)
        local = os.path.abspath(os.path.expanduser(entry))
        if not os.path.exists(local):
            raise InvalidInputError(f"application {self.guid}: {attribute} entry {entry!r} "
                                    f"does not exist here")
        remote = posixpath.join(folder, os.path.basename(local.rstrip("/")))
        await node.upload(local, remote)
        return remote

    async def _download(self, url: str, folder: str) -> str:
        """Download ``url`` into ``folder`` on the host (as NEPI does: the host fetches it)."""
        node = self.node
        name = posixpath.basename(urllib.parse.urlsplit(url).path)
        if not _safe_name(name):
            raise DownloadError(url, node.executor.where, f"its path does not end with a usable file name "
                                f"({name!r})", self.guid)
        remote = posixpath.join(folder, name)
        command = f"sh -c {shlex.quote(_DOWNLOAD)} download {shlex.quote(url)} {shlex.quote(remote)}"
        result = await node.run(command, check=False)
        if result.returncode != 0:
            raise DownloadError(url, node.executor.where, result.stderr
                                or f"exit status {result.returncode}", self.guid)
        return remote

    async def _as_root(self, command: str) -> str:
        """``command`` run as root: itself if the node's user is root, else through ``sudo -n``
        (never prompting), with the placeholders and ``env`` passed on, PATH kept, and the
        run's marker too, so that its root processes can be found and stopped as root."""
        node = self.node
        if (await node.run("id -u")).stdout.strip() == "0":
            return command
        variables = " ".join(shlex.quote(f"{k}={v}") for k, v in self._env.items())
        run = node.executor.tracked_run
        if run is not None:
            self._root_marker = marker(run, self.guid)
            variables += f' {RUN_VARIABLE}="${RUN_VARIABLE}"'
        # exec: sudo leads the process group, so a TERM to the group reaches sudo, which passes
        # it on to the command and waits for it: the stop grace period holds for the command
        return f'exec sudo -n -- env {variables} PATH="$PATH" /bin/sh -c {shlex.quote(command)}'

    async def _signal_as_root(self, sig: str, group: int | None = None) -> bool:
        """Send signal ``sig`` (TERM, KILL) as root, through ``sudo -n``, to the processes of
        the command started through sudo: those carrying its marker (with ``group``,
        only those still in that process group, the command's).  The node's user may
        not signal root's processes, so the process group's own signals reach only
        ``sudo`` (which passes TERM on to its child alone, and dies of KILL, leaving its
        children running).  KILL looks again until none is left.  False (recorded) if
        sudo refused or the host could not be reached."""
        if self._root_marker is None:
            return True
        if self._node is None or self._node._executor is None:  # a released node: no way to the host
            return False
        line = f"{RUN_VARIABLE}={self._root_marker}"
        command = f"sudo -n -- sh -c {shlex.quote(_SIGNAL_MARKED)} signal {sig} {shlex.quote(line)}"
        if group is not None:
            command += f" {group}"
        try:
            result = await self.node.run(command, check=False, timeout=_SIGNAL_TIMEOUT)
        except (OSError, CommandError) as exc:
            self.record_problem(exc, f"stopping its root processes ({sig})")
            return False
        if result.returncode != 0:
            if "a password is required" in result.stderr:  # so the command never ran as root either
                log.debug("application %s: sudo -n refused: no root process to signal", self.guid)
                return False
            error = CommandError(command, result.returncode, result.stderr, self.node.executor.where)
            self.record_problem(error, f"stopping its root processes ({sig})")
            return False
        return True

    async def do_start(self) -> None:
        command = self._command_line()
        self._collected = False
        if command is None:  # nothing to run: deploying was the whole job
            self._process = None
            self._ended = None
            return
        node = self.node
        self._env = self._environment()
        self._root_marker = None
        if self.get("sudo"):
            command = await self._as_root(command)
        workdir = self.expand(self.get("workingDirectory") or self._app_home)
        workdir = posixpath.join(self._app_home, workdir)  # absolute stays absolute
        stdin = posixpath.join(self._app_home, "stdin") if self.get("stdin") is not None else None
        if not self.get("splitStderr"):  # merged: the stderr trace exists, empty
            await node.write_file(self.host_path("stderr"), "")
        queue = node.executor.spawn_queue
        note = None
        if self._waiting is None and node.executor.queues_spawns:
            # explain() says why it is not STARTED yet: asked now, as the spawn may come to
            # the queue only after others took the last place (an SSH node's notes are its own)
            note = self._waiting = lambda: queue() or "starting its command"
        try:
            process = await node.spawn(command, stdout=self.host_path("stdout"),
                                       stderr=self._stderr_path(), stdin=stdin, cwd=workdir,
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
            tail = await self.node.executor.tail(self._stderr_path())
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
            tail = await self.node.executor.tail(self._stderr_path())
            raise CommandError(self._process.command, status, tail, self.node.executor.where)  # type: ignore[union-attr]

    async def do_stop(self) -> None:
        process = self._process
        if process is not None and process.returncode is None:
            sudoed = self._root_marker is not None
            if sudoed:  # TERM to its root processes too, which the process group's would miss
                await self._signal_as_root("TERM", process.pid)
            await process.terminate(self.get("stopGracePeriod"))
            if sudoed:  # and KILL to those that outlived the grace period
                await self._signal_as_root("KILL", process.pid)
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
            raise node._note_left(self, self._app_home)
        if self._root_marker is not None:
            # what a command started through sudo runs as root, also what it left when it ended
            await self._signal_as_root("KILL")
            self._root_marker = None
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
        teardown = self.get("tearDown")
        if teardown and self._app_home:
            await self._tear_down(teardown)
            collect, self._collected = True, False  # what it wrote is collected too
        if collect and not self._collected:
            await self._collect()
        if self._app_home and node.get("cleanExperiment"):
            if self.keeps_files_on_host:
                log.warning("application %s: its traces stay in %s on %s (they could not all be "
                            "written into the run directory)", self.guid, self._app_home, executor.where)
            else:
                await executor.remove_tree(self._app_home)

    async def _tear_down(self, command: str) -> None:
        """Run ``tearDown`` in ``${RUN_HOME}``; a failure is recorded, the release goes on."""
        node = self.node
        env = self._env or self._environment()
        line = f"PATH={shlex.quote(node.bin_dir)}:\"$PATH\"; export PATH; {command}"
        try:
            result = await node.run(line, check=False, cwd=self._app_home, env=env)
        except (OSError, CommandError) as exc:
            self.record_problem(exc, "tearDown")
            return
        if result.returncode != 0:
            self.record_problem(CommandError(command, result.returncode, result.stderr or result.stdout,
                                             f"{node.executor.where} (tearDown)"), "tearDown")

    # -- traces --------------------------------------------------------------------------

    async def read_trace(self, name: str, attr: TraceAttr = TraceAttr.ALL,
                         block: int = 512, offset: int = 0) -> str | bytes | int:
        """Read a trace: from the host while it is written, from the run directory once collected."""
        local = self.trace_path(name)
        node = self._node
        on_host = (node is not None and node._executor is not None and bool(self._app_home)
                   and self.state != S.RELEASED and name not in self._local_traces
                   and not (self._collected and os.path.exists(local)))
        declared = name in self._trace_table
        if on_host:
            if not declared and name not in await node.executor.list_files(self._app_home):  # type: ignore[union-attr]
                raise MissingTraceError(self.guid, self._rtype, name, self._trace_table,  # type: ignore[union-attr]
                                        f"{node.executor.where}:{self._app_home}")
            return await node.read_file(self.host_path(name), attr, block, offset)  # type: ignore[union-attr]
        if not declared and not os.path.isfile(local):
            raise MissingTraceError(self.guid, self._rtype, name, self._trace_table, self.results_dir)
        return read_trace_file(local, attr, block, offset)

    def _read_trace_here(self, name: str, attr: TraceAttr, block: int = 512,
                         offset: int = 0) -> str | bytes | int | None:
        """A collected trace, read on the calling thread (see the base class).

        Only once the traces are collected, i.e. the run directory's file is the one the
        loop's :meth:`read_trace` would read.  The loop thread touches those files only
        while ``_collected`` is False: a restart (``do_start``) or a ``tearDown``
        clears it before anything writes, and :meth:`_collect` counts one more
        collection, then sets it, once every file is in place.  Read as a seqlock: the
        count, the flag, the file, the flag and the count again; if the flag was set
        both times and the count did not move, no collection overlapped the read
        and the answer is whole.  Otherwise (or a name that is no file of the run
        directory: the loop reads it on the host, or raises the error) the loop answers.
        """
        if type(self).read_trace is not Application.read_trace:
            return None  # a type reading its traces its own way
        count = self._collections
        if not self._collected:
            return None
        local = self._local_path(name)
        try:
            info = os.stat(local)
        except OSError:  # not collected (a step that did not run): read on the host
            return None
        if not stat.S_ISREG(info.st_mode):
            return None
        if attr is TraceAttr.SIZE:
            answer: str | bytes | int = info.st_size
        elif attr is TraceAttr.PATH:
            answer = local
        else:
            answer = read_trace_file(local, attr, block, offset)
        if not self._collected or self._collections != count:
            return None
        return answer
