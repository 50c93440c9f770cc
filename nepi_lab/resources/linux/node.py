"""``linux::Node``: a Linux host that runs commands and keeps the experiment's files.

Folders on the host, made at deploy (``home`` defaults to the user's home)::

    <home>/.nepi_lab/                       EXP        every experiment's folders
    <home>/.nepi_lab/<exp_id>/              EXP_HOME   every run of the scenario
    <EXP_HOME>/<run_id>/                    (run_home) this run, shared by its resources
    <run_home>/<node guid>/                 NODE_HOME  the node's own folder
    <NODE_HOME>/bin/                        BIN        first on every application's PATH
    <run_home>/<app guid>/                  RUN_HOME = APP_HOME: an application's files and traces
    <home>/.nepi_lab/.usr/{lib,share}/      LIB, SHARE kept, shared by every experiment

The upper-case names are the placeholders of ``linux::Application`` (see there); the
attribute ``run_home`` is this run's folder, which no placeholder names (NEPI's
``${RUN_HOME}`` is the application's own folder).

Where commands run is the node's :class:`~nepi_lab.resources.linux.executor.Executor`:
this machine for ``hostname`` ``localhost``, ``127.0.0.1`` or ``::1``
(:class:`~nepi_lab.resources.linux._local.LocalExecutor`); any other host over SSH with
asyncssh (:class:`~nepi_lab.resources.linux._ssh.SshExecutor`, ``pip install
'nepi_lab[ssh]'``), one connection per host and user shared by every resource on it.

Example
-------
In a notebook (cells can ``await``; the work runs on the controller's loop)::

    ec = ExperimentController()
    node = ec.register_resource("linux::Node", hostname="localhost")
    ec.deploy(node)
    await ec.wait_deployed_async(node)
    result = await ec.get_resource(node).run("uname -r")
    result.returncode, result.stdout        # (0, '6.1.0\n')

From a script without a loop, ``asyncio.run(rm.run("uname -r"))`` does the same.
"""

from __future__ import annotations

import asyncio
import importlib.util
import ipaddress
import os
import posixpath
import shlex
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ...core.attributes import Alias, Attribute, Flags, Types
from ...core.errors import AttributeValueError, CommandError, CommandTimeoutError, PackageInstallError
from ...core.resource import ResourceManager, TopologyRole, on_controller_loop
from ...core.states import ResourceState
from ...core.traces import TraceAttr
from . import _packages
from ._local import LocalExecutor
from ._records import run_record
from ._tracking import cool_down, cooled, run_key, warm_up
from .executor import CommandResult, Executor, LeftOnHostError, ProcessHandle

if TYPE_CHECKING:
    from ...core.controller import ExperimentController

#: Host names that mean this machine.
LOCAL_HOSTNAMES = frozenset({"localhost", "127.0.0.1", "::1"})

#: Name of the folder made under ``home``.
NEPI_DIR = ".nepi_lab"

#: Seconds a package manager run of :meth:`Node.install_packages` may take by default.
PACKAGE_TIMEOUT = 600.0


def _check_hostname(rm: ResourceManager, old: object, new: object) -> object:
    """Refuse at ``set`` a host name that could only fail at deploy: empty, with spaces or
    control characters, or starting with ``-`` (never a host; an option to ssh tools).
    Another host's name also ends the cgroup lock's warm spell that registering the node
    started (:func:`~._tracking.cool_down`): its commands run there."""
    if new is None:
        return new
    text = str(new)
    if not text.strip():
        reason = "a host name or address is needed (localhost for this machine)"
    elif any(c.isspace() or not c.isprintable() for c in text):
        reason = "a host name or address has no spaces or control characters"
    elif text.startswith("-"):
        reason = "a host name or address does not start with '-'"
    else:
        if text not in LOCAL_HOSTNAMES:
            cool_down()
        return new
    raise AttributeValueError(rm.guid, rm._rtype, "hostname", new, reason)


def make_executor(node: Node) -> Executor:
    """The executor for ``node``'s ``hostname``: the one place that chooses a transport."""
    hostname = node.get("hostname")
    if hostname in LOCAL_HOSTNAMES:
        return LocalExecutor(where=hostname)
    if importlib.util.find_spec("asyncssh") is None:
        raise ModuleNotFoundError(
            f"linux::Node {node.guid} with hostname {hostname!r} needs SSH: pip install 'nepi_lab[ssh]'"
        )
    from ._ssh import SshExecutor

    return SshExecutor.for_node(node)


class Node(ResourceManager):
    """A Linux host: this machine, or one reached over SSH.

    Long-lived: it stays STARTED until released.  Applications connected to it
    wait for it to be READY.  From a coroutine on the controller's loop, its methods
    run commands and move files on the host: :meth:`run`, :meth:`spawn`,
    :meth:`upload`, :meth:`download`, :meth:`write_file`.
    """

    _rtype = "linux::Node"
    _help = "A Linux host that runs applications: this machine (localhost), or any other over SSH."
    _platform = "linux"
    _connects_to = ("linux::Application",)  # and every tool, which are applications
    _topology_role = TopologyRole.HOST
    _attributes = (
        Attribute("hostname", "host name or address; localhost, 127.0.0.1 or ::1 mean this machine",
                  default="localhost", flags=Flags.Design, set_hook=_check_hostname),
        Attribute("username", "SSH user name (default: the local user)", flags=Flags.Design),
        Attribute("port", "SSH port", type=Types.Integer, default=22, range=(1, 65535), flags=Flags.Design),
        Attribute("identityFile", "SSH private key file", flags=Flags.Design),
        Attribute("serverKey", "the host's SSH public key, as in known_hosts ('ssh-ed25519 AAAA...'): "
                  "the host must present it (instead of a knownHosts lookup)", flags=Flags.Design),
        Attribute("knownHosts", "known_hosts file that verifies the host's key (default: ~/.ssh/known_hosts)",
                  flags=Flags.Design),
        Attribute("strictHostKeyChecking", "refuse a host whose key is unknown or changed",
                  type=Types.Bool, default=True, flags=Flags.Design),
        Attribute("connectTimeout", "seconds allowed to open the SSH connection", type=Types.Double,
                  default=10.0, range=(0, None), flags=Flags.Design),
        Attribute("gateway", "jump host, [user@]host[:port], through which the node is reached",
                  flags=Flags.Design),
        Attribute("gatewayUser", "user name on the gateway when gateway names none (default: username)",
                  flags=Flags.Design),
        Attribute("ip", "the host's address: resolved from hostname at deploy when not set",
                  flags=Flags.Design),
        Attribute("maxSessions", "SSH channels open at once on the connection (the server's MaxSessions, "
                  "OpenSSH's default 10; file transfers and the process launcher keep one each, "
                  "running processes none); commands beyond it queue", type=Types.Integer, default=10,
                  range=(3, None), flags=Flags.Design),
        Attribute("home", "folder that holds .nepi_lab/: absolute, or relative to the user's home "
                  "(default: the user's home)", flags=Flags.Design),
        Attribute("cleanHome", "at deploy, first remove what earlier experiments left in <home>/.nepi_lab "
                  "(every folder there but this run's: use it only on a host of your own)",
                  type=Types.Bool, default=False, flags=Flags.Design),
        Attribute("tearDown", "shell command run on the host at release, in the node's folder, before "
                  "its processes are killed and its folders removed", flags=Flags.Design),
        Attribute("cleanExperiment", "on release, remove this run's folders from the host "
                  "(traces are collected into the run directory first)", type=Types.Bool, default=True),
        Attribute("cleanProcesses", "on release, kill every process group this experiment started on "
                  "the host that still runs (tracked ones only, never by name)",
                  type=Types.Bool, default=True),
        Attribute("reconnectTimeout", "seconds a lost SSH connection is retried (backing off from 0.1 s to "
                  "2 s) before the node and what runs on it fail; meanwhile they keep their state",
                  type=Types.Double, default=30.0, range=(0, None), flags=Flags.Design),
    )
    # NEPI's names of the same attributes (NEPI-REFERENCE section 3); see the README's
    # "Porting a NEPI script" for the names whose meaning differs
    _aliases = (
        Alias("identity", "identityFile"),
        Alias("cleanProcessesAfter", "cleanProcesses"),
    )

    def __init__(self, ec: ExperimentController, guid: int) -> None:
        super().__init__(ec, guid)
        # the first command's move into the node's cgroup waits for the kernel; start that
        # wait now, in the background (see nepi_lab.resources.linux._tracking)
        warm_up()
        self._executor: Executor | None = None
        self._files_done = False  # its release is past deciding who removes the run's folder
        self._keeps_run_folder = False  # an application's files stay on the host (see do_release)
        self.home = ""  #: the ``home`` folder on the host, once discovered
        self.exp_home = ""  #: ``<home>/.nepi_lab/<exp_id>``
        self.run_home = ""  #: ``<exp_home>/<run_id>``
        self.node_home = ""  #: ``<run_home>/<guid>``
        self.bin_dir = ""  #: ``<node_home>/bin``, first on the applications' PATH
        self._trouble: str | None = None  # while the SSH connection is being restored
        self._users_note = lambda: (f"its node {self.guid} is reconnecting: {self._trouble}; the command "
                                    f"keeps running on the host")
        self._left: dict[int, dict[str, Any]] = {}  # applications released while the host was unreachable
        self._installing: asyncio.Lock | None = None  # one package manager run at a time

    # -- where ------------------------------------------------------------------------

    @property
    def executor(self) -> Executor:
        """Where commands run; exists from DISCOVERED on."""
        if self._executor is None:
            raise RuntimeError(
                f"linux::Node {self.guid} is {self.state.name}: deploy it before running commands on it"
            )
        return self._executor

    @property
    def hostname(self) -> str:
        """The ``hostname`` attribute."""
        return self.get("hostname")

    @property
    def is_local(self) -> bool:
        """Whether the node is this machine."""
        return self.hostname in LOCAL_HOSTNAMES

    def _same_host(self, other: Node) -> bool:
        return other.home == self.home and other.hostname == self.hostname and other.get("port") == self.get(
            "port")

    # -- lifecycle ---------------------------------------------------------------------

    def _track(self, executor: Executor) -> Executor:
        """Make ``executor`` mark every process it starts as this run's (see :mod:`._tracking`)."""
        executor.track(run_key(self.ec.exp_id, self.ec.run_id), self.guid)
        return executor

    def _new_executor(self) -> Executor:
        """The executor of this node's commands, made at discover (a subclass may run them
        elsewhere: a ``netns::Node`` in its namespace)."""
        return make_executor(self)

    async def do_discover(self) -> None:
        executor = self._track(self._new_executor())
        if not self.is_local:
            await cooled()  # the cgroup worker's last warming (see _tracking.cool_down)
        await executor.connect()
        self._executor = executor
        user_home = await executor.home_dir()
        home = self.get("home")
        if not home:
            home = user_home
        elif home == "~" or home.startswith("~/"):
            home = posixpath.join(user_home, home[2:])
        elif not posixpath.isabs(home):
            home = posixpath.join(user_home, home)
        self.home = posixpath.normpath(home)
        self.exp_home = posixpath.join(self.home, NEPI_DIR, self.ec.exp_id)
        self.run_home = posixpath.join(self.exp_home, self.ec.run_id)
        self.node_home = posixpath.join(self.run_home, str(self.guid))
        self.bin_dir = posixpath.join(self.node_home, "bin")

    async def do_provision(self) -> None:
        # recorded before anything runs there: nepi-lab cleanup finds it after a kill -9
        await run_record(self.ec).in_use(self, self._describe_host())
        if self.get("cleanHome"):
            await self._clean_home()
        await self.executor.makedirs(self.bin_dir)
        if not self.get("ip"):
            ip = await _address_of(self.hostname)
            if ip is not None:
                self.set("ip", ip, internal=True)

    async def _clean_home(self) -> None:
        """NEPI's ``cleanHome``: remove every folder under ``<home>/.nepi_lab`` but this run's
        (other nodes of this run on the same host may already have made theirs)."""
        nepi_dir = shlex.quote(posixpath.dirname(self.exp_home))
        exp_home = shlex.quote(self.exp_home)
        keep_exp = shlex.quote(self.ec.exp_id)
        keep_run = shlex.quote(self.ec.run_id)
        await self.run(
            f"if [ -d {nepi_dir} ]; then find {nepi_dir} -mindepth 1 -maxdepth 1 ! -name {keep_exp} "
            f"-exec rm -rf -- {{}} +; fi; if [ -d {exp_home} ]; then find {exp_home} -mindepth 1 "
            f"-maxdepth 1 ! -name {keep_run} -exec rm -rf -- {{}} +; fi", timeout=TEAR_DOWN_TIMEOUT)

    def _describe_host(self) -> dict[str, Any]:
        """This node's entry in the run's ``hosts.json`` (see :mod:`._records`)."""
        executor = self.executor
        entry: dict[str, Any] = {
            "node": self.guid, "type": self._rtype, "where": executor.where, "local": self.is_local,
            "home": self.home, "run_home": self.run_home, "node_home": self.node_home,
            "clean_experiment": bool(self.get("cleanExperiment")),
        }
        cgroups = getattr(executor, "_cgroups", None)
        if cgroups is not None:
            entry["cgroup"] = cgroups.folder
        target = getattr(executor, "target", None)
        if target is not None:
            entry["ssh"] = target.to_dict()
        return entry

    async def do_release(self) -> None:
        executor = self._executor
        if executor is None:
            return
        tear_down_error: CommandError | None = None
        try:
            if not await executor.reconnect():
                raise await self._left_on_host(executor)
            tear_down = self.get("tearDown")
            if tear_down and self.node_home:
                # run before the cleanup, so it may still use what the experiment left; a
                # failure is reported once the cleanup is done
                try:
                    await executor.run(tear_down, cwd=self.node_home, timeout=TEAR_DOWN_TIMEOUT)
                except CommandError as exc:  # a non-zero status, or the timeout
                    tear_down_error = exc
            if self.get("cleanProcesses"):
                executor.kill_all()
                await executor.stop_tracked()
            keep = any(getattr(rm, "keeps_files_on_host", False) for rm in self.get_connected())
            if self.get("cleanExperiment") and self.node_home:
                # decided without an await in between: of nodes released together, exactly the
                # last to get here finds every other one released or done with its files
                self._files_done = True
                self._keeps_run_folder = keep
                if not keep and not self._others_on_this_host():
                    # the last node of the run on this host removes the run's folder too; asked
                    # together, the two are one command on an SSH host
                    await asyncio.gather(executor.remove_tree(self.node_home),
                                         executor.remove_tree(self.run_home))
                    await executor.remove_empty_dirs([self.exp_home, posixpath.dirname(self.exp_home)])
                else:
                    await executor.remove_tree(self.node_home)
            if self.run_home:
                await run_record(self.ec).released(self)
        finally:
            await executor.close()
        if tear_down_error is not None:
            raise tear_down_error

    def _note_left(self, application: ResourceManager, folder: str) -> LeftOnHostError:
        """Application ``application`` could not be released on the unreachable host:
        remember its folder for the run record; the error its release reports."""
        executor = self.executor
        processes = executor.left_on_host(application.guid)
        self._left[application.guid] = {"folder": folder, "processes": processes}
        return LeftOnHostError(
            f"cannot reach {executor.where} to stop application {application.guid} and collect its traces: "
            f"{_describe_left(processes, [folder])} stay there; recorded in {run_record(self.ec).path} for "
            f"`nepi-lab cleanup`", executor.where, {"processes": processes, "folders": [folder]})

    async def _left_on_host(self, executor: Executor) -> LeftOnHostError:
        """Record what may remain on the unreachable host; the error release reports."""
        processes = executor.left_on_host()
        folders = sorted({entry["folder"] for entry in self._left.values()} | {self.node_home})
        left = {"processes": processes, "folders": folders, "applications": sorted(self._left)}
        record = run_record(self.ec)
        await record.unreachable(self, left, f"{executor.where} could not be reached at release")
        return LeftOnHostError(
            f"cannot reach {executor.where} at release: {_describe_left(processes, folders)} stay there; "
            f"recorded in {record.path}; run `nepi-lab cleanup` once the host is back to stop them and "
            f"collect the traces", executor.where, left)

    # -- a lost SSH connection ------------------------------------------------------------

    def _connection_trouble(self, text: str | None) -> None:
        """The SSH connection is being restored (``text`` says how), or it is over (None):
        ``ec.explain`` says so for the node and each application on it."""
        self._trouble = text
        note = self._trouble_note
        for rm in [self, *self._users()]:
            mine = note if rm is self else self._users_note
            if text is not None and rm._waiting is None:
                rm._waiting = mine
            elif text is None and rm._waiting == mine:
                rm._waiting = None

    def _trouble_note(self) -> str:
        return f"{self._trouble}; what runs on the host keeps running"

    def _users(self) -> list[ResourceManager]:
        return [rm for rm in self.get_connected() if getattr(rm, "_node", None) is self]

    def _others_on_this_host(self) -> bool:
        """Whether another node of the run on this host still needs the run's folder: it is
        not released nor done with its files, or its applications' files stay there."""
        for rm in list(self.ec._resources.values()):
            if (rm is not self and isinstance(rm, Node) and rm._executor is not None
                    and (rm._keeps_run_folder or (rm.state != ResourceState.RELEASED and not rm._files_done))
                    and self._same_host(rm)):
                return True
        return False

    # -- commands and files (coroutines on the controller's loop; await them from any loop) --

    @on_controller_loop
    async def run(self, command: str, *, check: bool = True, timeout: float | None = None,
                  input: str | bytes | None = None, cwd: str | None = None,
                  env: dict[str, str] | None = None) -> CommandResult:
        """Run shell command line ``command`` on the host and wait for it.

        Mirrors :func:`subprocess.run`: ``input`` is fed to its standard input;
        ``cwd`` defaults to the executor's (the controller's folder, locally);
        ``env`` adds variables.  The command leads its own process group; a timeout
        or a cancellation kills the whole group.

        Returns
        -------
        CommandResult
            ``returncode``, ``stdout``, ``stderr`` (decoded text), ``command``.

        Raises
        ------
        CommandError
            ``check`` is true and the status is not 0 (carries the stderr tail).
        CommandTimeoutError
            ``timeout`` seconds passed (also a ``TimeoutError``).
        """
        return await self.executor.run(command, check=check, timeout=timeout, input=input, cwd=cwd, env=env)

    async def spawn(self, command: str, *, stdout: str, stderr: str, stdin: str | None = None,
                    cwd: str | None = None, env: dict[str, str] | None = None,
                    path: Sequence[str] = (), owner: int | None = None) -> ProcessHandle:
        """Start ``command`` with its streams in host files; return a handle at once.

        ``owner`` is the guid of the application it is for (default: this node):
        ``executor.stop_owner(owner)`` stops whatever it leaves running.
        """
        return await self.executor.spawn(command, stdout=stdout, stderr=stderr, stdin=stdin, cwd=cwd,
                                         env=env, path=path, owner=owner)

    @on_controller_loop
    async def upload(self, local: str, remote: str) -> None:
        """Copy local file or folder ``local`` to path ``remote`` on the host."""
        if not os.path.exists(local):
            raise FileNotFoundError(f"cannot upload {local!r} to node {self.guid}: no such local file")
        await self.executor.upload(local, remote)

    @on_controller_loop
    async def download(self, remote: str, local: str) -> bool:
        """Copy host file ``remote`` to ``local``; False if it does not exist."""
        return await self.executor.download(remote, local)

    @on_controller_loop
    async def write_file(self, path: str, data: str | bytes, mode: int = 0o644) -> None:
        """Write ``data`` to file ``path`` on the host."""
        await self.executor.write_file(path, data, mode)

    @on_controller_loop
    async def read_file(self, path: str, attr: TraceAttr = TraceAttr.ALL, block: int = 512,
                        offset: int = 0) -> str | bytes | int:
        """Read host file ``path`` in a trace mode (ALL, STREAM, PATH, SIZE)."""
        return await self.executor.read_file(path, attr, block, offset)

    @on_controller_loop
    async def makedirs(self, path: str) -> None:
        """Create folder ``path`` on the host, with its parents."""
        await self.executor.makedirs(path)


    # -- packages (see :mod:`._packages`) ----------------------------------------------------

    @on_controller_loop
    async def missing_depends(self, depends: str | Sequence[_packages.Depend]) -> list[_packages.Depend]:
        """The items of ``depends`` (an application's ``depends`` text, or parsed items)
        that the host does not satisfy: the command is not found (``bin_dir`` searched
        first) and, for an item without ``=``, no package of that name is installed.
        One command on the host for all of them."""
        items = _packages.parse_depends(depends) if isinstance(depends, str) else list(depends)
        if not items:
            return []
        words = [word for item in items for word in (item.command, item.package, str(int(item.explicit)))]
        script = " ".join(["sh -c", shlex.quote(_packages.MISSING), "missing", shlex.quote(self.bin_dir),
                           *(shlex.quote(word) for word in words)])
        result = await self.run(script, check=False)
        if result.returncode != 0:
            result.check_returncode(self.executor.where)
        missing = set(result.stdout.split())
        return [item for item in items if item.command in missing]

    @on_controller_loop
    async def install_packages(self, packages: list[str], *, timeout: float = PACKAGE_TIMEOUT,
                               owner: int | None = None) -> CommandResult:
        """Install ``packages`` on the host with its package manager, as root.

        ``apt-get`` on Debian and Ubuntu (``DEBIAN_FRONTEND=noninteractive``; one
        ``apt-get update`` first if a package is unknown to its lists, or if the install
        fails without one), ``dnf`` or else ``yum`` on Fedora and RHEL; detected on the
        host, over SSH too.  As root if the node's user is root, else through ``sudo -n``,
        which never asks for a password.  Packages already installed are left as they
        are (the package manager says so).  One install at a time per node.

        NEPI's ``LinuxNode.install_packages(packages, home)`` did the same with
        ``sudo -S`` and wrote a script under ``home``; here nothing is written on the
        host.

        Parameters
        ----------
        packages : list of str
            Package names (``hello``, ``iputils-ping``).
        timeout : float
            Seconds the package manager may take (downloads included); then it is
            killed and :class:`~nepi_lab.PackageInstallError` says so.
        owner : int, optional
            The guid of the application it is for, named in the error.

        Returns
        -------
        CommandResult
            The package manager's output (``stdout``, ``stderr``).

        Raises
        ------
        PackageInstallError
            No package manager, no root and no ``sudo -n``, the package manager failed
            (the message ends with its own), or ``timeout`` passed.
        """
        names = list(packages)
        for name in names:
            if not _packages.package_pattern().fullmatch(name):
                raise PackageInstallError(names, self.executor.where, f"{name!r} is not a package name",
                                          owner)
        script = " ".join(["sh -c", shlex.quote(_packages.INSTALL), "install",
                           *(shlex.quote(name) for name in names)])
        if not names:
            return CommandResult(0, "", "", script)
        if self._installing is None:
            self._installing = asyncio.Lock()
        async with self._installing:
            try:
                result = await self.run(script, check=False, timeout=timeout)
            except CommandTimeoutError as exc:
                raise PackageInstallError(
                    names, self.executor.where, f"the package manager did not finish within {timeout:g} s: "
                    f"as root it was killed (an interrupted dpkg may need `dpkg --configure -a`), through "
                    f"sudo it may still run, as root; {exc.stderr_tail}", owner) from None
        if result.returncode != 0:
            reason = (result.stderr.strip() or result.stdout.strip()
                      or f"the package manager exited with status {result.returncode}")
            raise PackageInstallError(names, self.executor.where, reason, owner)
        return result

#: Seconds ``tearDown`` and ``cleanHome`` may take.
TEAR_DOWN_TIMEOUT = 60.0


async def _address_of(hostname: str) -> str | None:
    """NEPI's ``ip``: the address ``hostname`` resolves to here (IPv4 first), or None."""
    if hostname == "localhost":  # no lookup (a pool thread) for every local node
        return "127.0.0.1"
    try:
        return str(ipaddress.ip_address(hostname))
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(hostname, None, type=socket.SOCK_STREAM)
    except OSError:  # not resolvable from here (a host behind a gateway): left unset, as in NEPI
        return None
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    return str(infos[0][4][0]) if infos else None


def _describe_left(processes: list[dict[str, Any]], folders: list[str]) -> str:
    """In words: ``processes`` (entries of ``left_on_host``) and ``folders``."""
    parts = []
    if processes:
        groups = ", ".join(f"{p['process_group']} ({p['command']!r})" for p in processes[:5])
        more = f" and {len(processes) - 5} more" if len(processes) > 5 else ""
        parts.append(f"process groups {groups}{more}")
    if folders:
        parts.append(f"folders {', '.join(folders[:5])}{' ...' if len(folders) > 5 else ''}")
    return " and ".join(parts) or "its folders"
