"""NEPI's Linux API for resource authors: ``LinuxNode``'s blocking commands, ``LinuxApplication``.

NEPI-style code runs in hook threads and blocks; our ``linux::Node`` runs commands
with coroutines on the controller's loop.  :class:`LinuxNode` is NEPI's view of one of
our nodes: its blocking methods (``execute``, ``run_and_wait``, ``upload``,
``download``, ``mkdir``, ``find_home``, ``install_packages``...) submit the node's
coroutines to the controller's loop and wait for them; everything else (``state``,
``get``, ``home``, ``run_home``...) is the node's own.  NEPI-style hooks get it from
``self.node`` (in a :class:`LinuxApplication`) and ``self.get_connected(...)``; code on
the loop gets our node, unchanged.  Called on the loop's own thread, a blocking method
raises :class:`RuntimeError` instead of blocking the loop for ever.

``LinuxNode(ec, guid)`` with anything but one of our controllers as ``ec`` (NEPI's
tests passed a bare object with an ``exp_id``) is a *standalone* node, NEPI's
command helper used without an experiment: it owns a private controller, deploys
itself on its first command and is released by :meth:`LinuxNode.release`, when it
is garbage-collected, or at interpreter exit (see :class:`LinuxNode`).
"""

from __future__ import annotations

import os
import posixpath
import re
import shlex
import shutil
import tempfile
import threading
import weakref
from typing import TYPE_CHECKING, Any

from ..core.registry import register_type
from ..core.resource import ResourceManager as _NativeResourceManager
from ..core.states import ResourceState
from ..core.traces import check_name
from ..resources.linux.application import USR_DIR, parse_env
from ..resources.linux.application import Application as _NativeApplication
from ..resources.linux.node import LOCAL_HOSTNAMES, NEPI_DIR
from ..resources.linux.node import Node as _NativeNode
from .resource import ResourceManager, _here, call_on_loop

if TYPE_CHECKING:
    from ..resources.linux.executor import CommandResult, ProcessHandle

S = ResourceState


class ExitCode:
    """NEPI's special values of :meth:`LinuxNode.exitcode`."""

    FILENOTFOUND = -1
    CORRUPTFILE = -2
    ERROR = -3
    OK = 0


class ProcStatus:
    """NEPI's process states, as :meth:`LinuxNode.status` gives them."""

    RUNNING = 1
    FINISHED = 2


class Completed:
    """What NEPI's node methods return as ``proc``: the command's exit status.

    ``poll()`` and ``wait()`` give it (0 for success), as a finished
    :class:`subprocess.Popen` does.
    """

    def __init__(self, returncode: int | None, handle: ProcessHandle | None = None) -> None:
        self._returncode = returncode
        self._handle = handle

    @property
    def returncode(self) -> int | None:
        """The exit status; None while a background command runs."""
        if self._handle is not None:
            return self._handle.returncode
        return self._returncode

    def poll(self) -> int | None:
        """The exit status, or None while it runs."""
        return self.returncode

    def wait(self) -> int | None:
        """The exit status (a background command's: None while it runs)."""
        return self.returncode

    def __repr__(self) -> str:
        return f"<Completed returncode={self.returncode}>"


_views: weakref.WeakKeyDictionary[_NativeNode, LinuxNode] = weakref.WeakKeyDictionary()


def nepi_view(rm: Any) -> Any:
    """``rm`` as NEPI-style code sees it: a ``linux::Node`` as a :class:`LinuxNode`."""
    if not isinstance(rm, _NativeNode):
        return rm
    view = _views.get(rm)
    if view is None:
        view = _views[rm] = LinuxNode(rm)
    return view


#: Seconds a standalone :class:`LinuxNode` waits for its node to deploy (its first command).
DEPLOY_TIMEOUT = 120.0
#: Seconds a standalone :class:`LinuxNode`'s release may take.
RELEASE_TIMEOUT = 60.0


def _exp_id_of(ec: Any) -> str:
    """The exp_id a standalone node's private controller takes from NEPI's ``ec``: its
    ``exp_id`` when it has a usable one (unsafe characters become ``-``)."""
    exp_id = getattr(ec, "exp_id", None)
    if not exp_id:
        return "nepi-standalone"
    text = re.sub(r"[^A-Za-z0-9_.+-]", "-", str(exp_id)).lstrip(".-").replace("..", "-")[:128]
    try:
        return check_name(text, "exp_id")
    except Exception:  # noqa: BLE001 - nothing usable left: our own name
        return "nepi-standalone"


class _Standalone:
    """What a standalone :class:`LinuxNode` owns: a private controller (results in a
    temporary folder) holding one ``linux::Node``.  Its :meth:`release` must not refer
    to the view (it runs as the view's finalizer)."""

    def __init__(self, nepi_ec: Any) -> None:
        from ..core.controller import ExperimentController  # here: the controller imports the registry

        self.local_dir = tempfile.mkdtemp(prefix="nepi_lab-linuxnode-")
        try:
            self.ec = ExperimentController(exp_id=_exp_id_of(nepi_ec), local_dir=self.local_dir)
        except BaseException:
            shutil.rmtree(self.local_dir, ignore_errors=True)
            raise
        self.guid = self.ec.register_resource("linux::Node")
        self.node: _NativeNode = self.ec.get_resource(self.guid)
        self.lock = threading.Lock()
        self.released = False

    def ensure_deployed(self, timeout: float) -> None:
        """Deploy the node on first use and wait until it is READY (a clear error if not)."""
        node = self.node
        if node.state == S.READY or node.state == S.STARTED:
            return
        if self.released:
            raise RuntimeError(f"linux::Node {self.guid}: this standalone LinuxNode was released: make a "
                               f"new one")
        with self.lock:
            if node.state == S.NEW:
                self.ec.deploy(self.guid)
            where = node.get("hostname") or "(no hostname set)"
            try:
                self.ec.wait_deployed(self.guid, timeout=timeout)
            except TimeoutError:
                raise TimeoutError(
                    f"linux::Node {self.guid} ({where}): not deployed after {timeout} s (state "
                    f"{node.state.name}); the host may be unreachable: check hostname, username and "
                    f"identity, or raise LinuxNode.deploy_timeout") from None
            except Exception as exc:  # noqa: BLE001 - said once, with what to do
                raise RuntimeError(
                    f"linux::Node {self.guid} ({where}): deploy failed: {exc} - check the attributes "
                    f"set on it (hostname, username, identity, home); make a new LinuxNode to try "
                    f"again") from exc

    def release(self) -> None:
        """Shut the private controller down (kills what the node started, removes this
        run's folders on the host) and remove its results folder.  Idempotent; from
        the controller's own loop thread (a garbage collection there) it is done in
        another thread."""
        if self.released:
            return
        self.released = True
        if self.ec._runner.in_loop_thread():
            threading.Thread(target=self._shutdown, name="nepi_lab-linuxnode-release", daemon=True).start()
        else:
            self._shutdown()

    def _shutdown(self) -> None:
        try:
            self.ec.shutdown(timeout=RELEASE_TIMEOUT)
        finally:
            shutil.rmtree(self.local_dir, ignore_errors=True)


def _is_our_controller(ec: Any) -> bool:
    from ..core.controller import ExperimentController

    return isinstance(ec, ExperimentController)


class LinuxNode:
    """NEPI's ``LinuxNode`` API over one of our ``linux::Node`` resources.

    Made by :func:`nepi_view` (one per node); NEPI-style hooks get it from
    ``self.node`` and ``self.get_connected("linux::Node")``.  Attributes not defined
    here are the node's (``guid``, ``state``, ``get``, ``home``, ``run_home``...).
    Every method blocks until done and runs nowhere but in a thread other than the
    controller's loop (a NEPI-style hook's).  The SSH options of NEPI's signatures
    (``tty``, ``retry``, ``connect_timeout``, ``strict_host_checking``, ``persistent``,
    ``with_lock``) are accepted and ignored: the node's attributes say how to connect.

    Standalone, as NEPI's tests and users' scripts used it::

        node = LinuxNode(ec, 1)            # ec: anything but our controller (NEPI's DummyEC)
        node.set("hostname", "localhost")  # attributes before the first command
        (out, err), proc = node.execute("uname -r")   # deploys the node first (blocks)
        node.release()                     # or when it is garbage-collected, or at exit

    The node then owns a private controller (its ``exp_id`` is ``ec.exp_id`` when
    ``ec`` has one; its results go to a temporary folder, removed at release) that
    holds one ``linux::Node``.  The first command deploys it and waits up to
    :attr:`deploy_timeout` seconds; a node that fails to deploy raises
    :class:`RuntimeError` saying why.  Releasing it does what releasing any node does:
    the processes it started (``run``, ``run_and_wait(wait_run=False)``) are killed
    (``cleanProcesses``) and this run's folders on the host, ``exp_home`` among them,
    are removed (``cleanExperiment``).  Given one of our controllers, ``LinuxNode(ec,
    guid)`` is the view of its ``linux::Node`` ``guid``.
    """

    _rtype = "linux::Node"

    #: Seconds a standalone node's first command waits for the node to deploy.
    deploy_timeout: float = DEPLOY_TIMEOUT

    def __init__(self, node: Any, guid: int | None = None) -> None:
        self._own: _Standalone | None = None
        if guid is None:
            if not isinstance(node, _NativeNode):
                raise TypeError(f"LinuxNode(node) takes a linux::Node, not {type(node).__name__}; "
                                f"NEPI's LinuxNode(ec, guid) makes a standalone node")
        elif _is_our_controller(node):
            rm = node.get_resource(guid)
            if not isinstance(rm, _NativeNode):
                raise TypeError(f"resource {guid} is a {rm.get_rtype()}, not a linux::Node")
            node = rm
        else:
            self._own = _Standalone(node)
            self._finalizer = weakref.finalize(self, self._own.release)
            node = self._own.node
        self._node: _NativeNode = node
        self._home_dir = ""
        self._root: bool | None = None
        self._started: dict[int, ProcessHandle] = {}  # what run() started, by pid

    @classmethod
    def get_rtype(cls) -> str:
        """``"linux::Node"``: NEPI code writes ``self.get_connected(LinuxNode.get_rtype())``."""
        return cls._rtype

    def __getattr__(self, name: str) -> Any:
        if name in ("_node", "_own"):  # not made yet (a copy being built): no recursion
            raise AttributeError(name)
        return getattr(self._node, name)

    def __eq__(self, other: object) -> bool:
        return other is self or other is self._node or (
            isinstance(other, LinuxNode) and other._node is self._node)

    def __hash__(self) -> int:
        return hash(self._node)

    def __repr__(self) -> str:
        return f"<LinuxNode (NEPI's API) of {self._node!r}>"

    @property
    def native(self) -> _NativeNode:
        """Our ``linux::Node`` itself."""
        return self._node

    def _wait(self, coro: Any, what: str, timeout: float | None = None) -> Any:
        if self._own is not None:
            try:
                self._own.ensure_deployed(self.deploy_timeout)
            except BaseException:
                coro.close()
                raise
        return call_on_loop(self._node.ec, coro, f"linux::Node {self._node.guid}: {what}", timeout)

    # -- a standalone node's own life ------------------------------------------------------------

    @property
    def standalone(self) -> bool:
        """Whether the node owns its private controller (made as ``LinuxNode(ec, guid)``
        with anything but one of our controllers)."""
        return self._own is not None

    def set(self, name: str, value: Any, **kwargs: Any) -> Any:
        """Set attribute ``name`` of the node (a standalone node: through its controller,
        as ``ec.set``; ``Flags.Design`` ones only before its first command)."""
        if self._own is not None:
            return self._own.ec.set(self._own.guid, name, value)
        return self._node.set(name, value, **kwargs)

    def get(self, name: str) -> Any:
        """The value of attribute ``name`` of the node."""
        if self._own is not None:
            return self._own.ec.get(self._own.guid, name)
        return self._node.get(name)

    def deploy(self) -> None:
        """Deploy a standalone node now, and wait until it is READY (its first command
        does it otherwise).  A node in an experiment is deployed by its controller."""
        if self._own is None:
            raise RuntimeError(f"linux::Node {self._node.guid} belongs to an experiment: its controller "
                               f"deploys it (ec.deploy)")
        self._own.ensure_deployed(self.deploy_timeout)

    def release(self) -> None:
        """Release a standalone node: kill the processes it started, remove this run's
        folders from the host, shut its private controller down (also done when the
        node is garbage-collected and at interpreter exit).  Idempotent; the node takes
        no command afterwards.  A node in an experiment is released by its controller."""
        if self._own is None:
            raise RuntimeError(f"linux::Node {self._node.guid} belongs to an experiment: its controller "
                               f"releases it (ec.release or ec.shutdown)")
        self._finalizer()

    def _check_standalone(self, what: str, instead: str) -> None:
        if self._own is None:
            raise RuntimeError(f"linux::Node {self._node.guid}: {what} acts only on a standalone LinuxNode "
                               f"(it would remove what the rest of the experiment uses); here {instead}")

    # -- folders ---------------------------------------------------------------------------

    @property
    def localhost(self) -> bool:
        """Whether the node is this machine."""
        return self._node.is_local

    @property
    def home_dir(self) -> str:
        """The node's ``home`` folder on the host (``home``, else the user's home)."""
        if self._node.home:
            return self._node.home
        if not self._home_dir:
            self.find_home()
        home = self._node.get("home") or ""
        return home if home.startswith("/") else posixpath.join(self._home_dir, home)

    @property
    def nepi_home(self) -> str:
        """``<home>/.nepi_lab``: every experiment's folders (NEPI: ``~/.nepi``)."""
        return posixpath.join(self.home_dir, NEPI_DIR)

    @property
    def exp_dir(self) -> str:
        """The folder of every experiment: ``nepi_home`` (NEPI: ``~/.nepi/nepi-exp``)."""
        return self.nepi_home

    @property
    def usr_dir(self) -> str:
        """``<nepi_home>/.usr``, kept across experiments (NEPI: ``nepi-usr``)."""
        return posixpath.join(self.nepi_home, USR_DIR)

    @property
    def lib_dir(self) -> str:
        """``<usr_dir>/lib``."""
        return posixpath.join(self.usr_dir, "lib")

    @property
    def share_dir(self) -> str:
        """``<usr_dir>/share``."""
        return posixpath.join(self.usr_dir, "share")

    @property
    def src_dir(self) -> str:
        """``<usr_dir>/src``."""
        return posixpath.join(self.usr_dir, "src")

    def _deployed_path(self, name: str) -> str:
        if self._own is not None:
            self._own.ensure_deployed(self.deploy_timeout)
        return getattr(self._node, name)

    @property
    def exp_home(self) -> str:
        """NEPI's experiment folder on the host.  Standalone: the private run's folder
        (``<home>/.nepi_lab/<exp_id>/<run_id>``), removed at release, so that what NEPI
        code makes under it goes too; in an experiment: the node's ``exp_home``
        (``<home>/.nepi_lab/<exp_id>``)."""
        return self._deployed_path("run_home" if self._own is not None else "exp_home")

    @property
    def node_home(self) -> str:
        """The node's own folder, ``<run_home>/<guid>`` (removed at release)."""
        return self._deployed_path("node_home")

    @property
    def run_home(self) -> str:
        """This run's folder on the host, ``<exp_home>/<run_id>`` (removed at release)."""
        return self._deployed_path("run_home")

    def find_home(self) -> None:
        """Learn the user's home folder on the host (``echo ${HOME}``), as NEPI did."""
        (out, err), proc = self.execute("echo ${HOME}")
        if proc.returncode != 0 or not out.strip():
            raise RuntimeError(f"linux::Node {self._node.guid}: impossible to retrieve the HOME directory: "
                               f"{err.strip() or 'empty answer'}")
        self._home_dir = out.strip()

    # -- commands -------------------------------------------------------------------------

    def _as_root(self, command: str) -> str:
        if self._root is None:
            (out, _), _ = self.execute("id -u")
            self._root = out.strip() == "0"
        return command if self._root else f"sudo -n -- /bin/sh -c {shlex.quote(command)}"

    def execute(self, command: str, sudo: bool = False, env: dict[str, Any] | str | None = None,
                tty: bool = False, forward_x11: bool = False, retry: int = 3, connect_timeout: float = 30,
                strict_host_checking: bool = False, persistent: bool = True, blocking: bool = True,
                with_lock: bool = False, timeout: float | None = None) -> tuple[tuple[str, str], Completed]:
        """Run shell command line ``command`` on the host and wait: ``((out, err), proc)``.

        ``env`` (a dict, or NEPI's ``"A=1 B='x y'"``) adds variables; ``sudo`` runs it as
        root (``sudo -n``, never prompting, unless the node's user is root).  A non-zero status is not an
        error here (as in NEPI): ``proc.poll()`` gives it.  ``timeout`` (ours) kills
        the command after that many seconds (:class:`~nepi_lab.CommandTimeoutError`).
        """
        if not blocking:
            raise NotImplementedError(
                "execute(blocking=False) is not supported: use run_and_wait(..., wait_run=False) "
                "for a command that goes on in the background")
        if sudo:
            command = self._as_root(command)
        if isinstance(env, str):
            env = parse_env(env)
        variables = {str(k): str(v) for k, v in (env or {}).items()} or None
        result: CommandResult = self._wait(
            self._node.run(command, check=False, env=variables, timeout=timeout), f"execute {command!r}")
        return (result.stdout, result.stderr), Completed(result.returncode)

    def check_output(self, home: str, filename: str) -> tuple[tuple[str, str], Completed]:
        """The content of file ``filename`` in folder ``home`` (``cat``)."""
        return self.execute(f"cat {shlex.quote(posixpath.join(home, filename))}")

    def exitcode(self, home: str, ecodefile: str = "exitcode") -> int:
        """The exit status written in ``ecodefile`` by :meth:`run_and_wait`, or an
        :class:`ExitCode` value."""
        (out, _), proc = self.check_output(home, ecodefile)
        if proc.returncode == 0:
            try:
                return int(out.strip())
            except ValueError:
                return ExitCode.CORRUPTFILE
        return ExitCode.FILENOTFOUND if proc.returncode == 1 else ExitCode.ERROR

    def check_errors(self, home: str, ecodefile: str = "exitcode",
                     stderr: str = "stderr") -> tuple[tuple[str, str], Completed]:
        """``(("", err), proc)``: ``err`` is the standard error file ``stderr`` in ``home``
        when the status in ``ecodefile`` is not 0 or not written yet (a missing standard
        error file then counts as none), a message when the status file cannot be read,
        else ``""``.  ``proc.poll()`` is 0 when ``err`` is empty."""
        status = self.exitcode(home, ecodefile)
        if status in (ExitCode.CORRUPTFILE, ExitCode.ERROR):
            return ("", f"could not read the exit status in {posixpath.join(home, ecodefile)}"), Completed(1)
        if status == ExitCode.OK:
            return ("", ""), Completed(0)
        (err, _), proc = self.check_output(home, stderr)
        if proc.returncode != 0:  # no standard error file
            err = ""
        return ("", err), Completed(1 if err else 0)

    def is_alive(self) -> bool:
        """Whether the host answers a command."""
        try:
            (out, _), _ = self.execute("echo 'ALIVE'")
        except Exception:  # noqa: BLE001 - NEPI's answer: not alive
            return False
        return "ALIVE" in out

    def get_os(self) -> str:
        """The host's ``/etc/issue`` (NEPI read the distribution there)."""
        (out, _), _ = self.execute("cat /etc/issue")
        return out

    @staticmethod
    def format_environment(env: str | None, inline: bool = False) -> str:
        """NEPI's ``env`` string (``"A=1 B=2"``) as ``export`` lines (``;``-joined if ``inline``)."""
        if not env:
            return ""
        sep = ";" if inline else "\n"
        return sep.join(f" export {e}" for e in re.sub(r"\s+", " ", env.strip()).split(" ")) + sep

    def upload_command(self, command: str, shfile: str = "cmd.sh", ecodefile: str = "exitcode",
                       overwrite: bool = True, env: str | None = None) -> tuple[tuple[str, str], Completed]:
        """Write ``command`` as a bash script ``shfile`` that also writes its exit status
        to ``ecodefile`` (in the folder it runs in)."""
        if not (command.strip().endswith(";") or command.strip().endswith("&")):
            command += ";"
        script = f"{self.format_environment(env)} {{ {command} }} ; echo $? > {ecodefile} ;\n"
        return self.upload(script, shfile, text=True, overwrite=overwrite)

    def run_and_wait(self, command: str, home: str, shfile: str = "cmd.sh", env: str | None = None,
                     overwrite: bool = True, wait_run: bool = True, pidfile: str = "pidfile",
                     ecodefile: str = "exitcode", stdin: str | None = None, stdout: str = "stdout",
                     stderr: str = "stderr", sudo: bool = False, tty: bool = False,
                     raise_on_error: bool = True) -> tuple[tuple[str, str], Completed]:
        """Run ``command`` as a script in folder ``home`` (made if missing), its output in
        files ``stdout`` and ``stderr`` there; with ``wait_run``, wait and return
        ``((out, err), proc)``: ``err`` is the standard error when the status is not 0.

        A failure raises :class:`RuntimeError` (with the status and the standard
        error) when ``raise_on_error``.  ``wait_run=False`` starts the script and
        returns at once; the node stops it at release if it still runs.  ``pidfile``
        is not written (our nodes track their processes themselves).
        """
        node = self._node
        shfile = shfile if shfile.startswith("/") else posixpath.join(home, shfile)
        self._wait(node.makedirs(home), f"mkdir {home}")
        self.upload_command(command, shfile=shfile, ecodefile=ecodefile, overwrite=overwrite, env=env)
        line = f"bash {shlex.quote(shfile)}"
        if sudo:
            line = self._as_root(line)
        out_path, err_path = posixpath.join(home, stdout), posixpath.join(home, stderr)
        in_path = posixpath.join(home, stdin) if stdin else None
        if not wait_run:
            handle = self._wait(node.spawn(line, stdout=out_path, stderr=err_path, stdin=in_path, cwd=home),
                                f"run {command!r}")
            return ("", ""), Completed(None, handle)
        redirect = f" > {shlex.quote(out_path)} 2> {shlex.quote(err_path)} < " + (
            shlex.quote(in_path) if in_path else "/dev/null")
        result: CommandResult = self._wait(node.run(line + redirect, check=False, cwd=home),
                                           f"run {command!r}")
        status = self.exitcode(home, ecodefile)
        if status == ExitCode.FILENOTFOUND:
            status = result.returncode
        err = ""
        if status != 0:
            (err, _), _ = self.check_output(home, stderr)
            err = err or result.stderr
            if raise_on_error:
                raise RuntimeError(f"linux::Node {node.guid}: failed to run command {command!r} in {home}: "
                                   f"exit status {status}: {err.strip()[-2000:]}")
        (out, _), _ = self.check_output(home, stdout)
        return (out, err), Completed(status)

    # -- background processes (NEPI's run, getpid, status, kill) -----------------------------

    def run(self, command: str, home: str, create_home: bool = False, pidfile: str = "pidfile",
            stdin: str | None = None, stdout: str | None = "stdout", stderr: str | None = "stderr",
            sudo: bool = False, tty: bool = False,
            strict_host_checking: bool = False) -> tuple[tuple[str, str], Completed]:
        """Start ``command`` in the background in folder ``home``, its output in files
        ``stdout`` and ``stderr`` there (None: discarded), and return at once; its pid
        is written to ``pidfile`` in ``home`` (``"<pid> 1"``, as NEPI wrote it).

        The process leads its own process group and belongs to the node, which stops
        it at release if it still runs.  ``proc.poll()`` is its exit status once it ended.
        """
        node = self._node
        if create_home:
            self._wait(node.makedirs(home), f"mkdir {home}")
        if sudo:
            command = self._as_root(command)

        def where(name: str | None) -> str:
            if not name:
                return "/dev/null"
            path = posixpath.join(home, name)
            self._wait(node.write_file(path, ""), f"empty {path}")  # overwritten, as NEPI's `>` did
            return path

        handle: ProcessHandle = self._wait(
            node.spawn(command, stdout=where(stdout), stderr=where(stderr),
                       stdin=posixpath.join(home, stdin) if stdin else None, cwd=home), f"run {command!r}")
        self._started[handle.pid] = handle
        self._wait(node.write_file(posixpath.join(home, pidfile), f"{handle.pid} 1\n"), f"write {pidfile}")
        return ("", ""), Completed(None, handle)

    def getpid(self, home: str, pidfile: str = "pidfile") -> tuple[int, int] | None:
        """``(pid, ppid)`` read from ``pidfile`` in ``home``, or None."""
        (out, _), proc = self.check_output(home, pidfile)
        try:
            pid, ppid = (int(word) for word in out.split()[:2])
        except ValueError:
            return None
        return (pid, ppid) if proc.returncode == 0 else None

    def wait_pid(self, home: str, pidfile: str = "pidfile", raise_on_error: bool = False) -> tuple[Any, Any]:
        """``(pid, ppid)`` from ``pidfile`` (written before :meth:`run` returned), or
        ``(None, None)`` (a :class:`RuntimeError` with ``raise_on_error``)."""
        found = self.getpid(home, pidfile)
        if found is None:
            if raise_on_error:
                raise RuntimeError(f"linux::Node {self._node.guid}: failed to get the pid from "
                                   f"{posixpath.join(home, pidfile)}")
            return None, None
        return found

    def status(self, pid: int, ppid: int | None = None) -> int:
        """:attr:`ProcStatus.RUNNING` or :attr:`ProcStatus.FINISHED`."""
        handle = self._started.get(int(pid))
        if handle is not None:
            return ProcStatus.RUNNING if handle.returncode is None else ProcStatus.FINISHED
        (_, _), proc = self.execute(f"kill -0 {int(pid)}")
        return ProcStatus.RUNNING if proc.returncode == 0 else ProcStatus.FINISHED

    def wait_run(self, pid: int, ppid: int | None = None, trial: int = 0) -> None:
        """Wait until process ``pid`` (one :meth:`run` started) has ended."""
        handle = self._started.get(int(pid))
        if handle is None:
            raise RuntimeError(f"linux::Node {self._node.guid}: process {pid} was not started by run(): its "
                               f"end cannot be awaited")
        self._wait(handle.wait(), f"wait for process {pid}")

    def kill(self, pid: int, ppid: int | None = None,
             sudo: bool = False) -> tuple[tuple[str, str], Completed]:
        """Kill process ``pid`` (one :meth:`run` started) with its process group."""
        handle = self._started.get(int(pid))
        if handle is None:
            raise RuntimeError(f"linux::Node {self._node.guid}: process {pid} was not started by run(): "
                               f"only those are killed (never by number or by name)")
        async def kill_and_wait() -> int:
            if handle.returncode is None:
                handle.kill()
            return await handle.wait()

        return ("", ""), Completed(self._wait(kill_and_wait(), f"kill process {pid}"))

    # -- files ------------------------------------------------------------------------------

    def _fail(self, message: str, raise_on_error: bool) -> tuple[tuple[str, str], Completed]:
        if raise_on_error:
            raise RuntimeError(message)
        return ("", message), Completed(1)

    def _exists(self, path: str, test: str = "-e") -> bool:
        (_, _), proc = self.execute(f"test {test} {shlex.quote(path)}")
        return proc.returncode == 0

    def upload(self, src: str | list[str], dst: str, text: bool = False, overwrite: bool = True,
               raise_on_error: bool = True, executable: bool = False) -> tuple[tuple[str, str], Completed]:
        """Copy to path ``dst`` on the host: the text ``src`` itself with ``text=True``
        (unless it names a local file; executable with ``executable``), else the local
        file or folder ``src``, or several (a ``;``-separated string or a list), which
        then go into folder ``dst``.  A single one goes into ``dst`` if that is a folder
        on the host.  ``overwrite=False`` leaves what exists there.
        """
        node = self._node
        if text and not (isinstance(src, str) and os.path.isfile(src)):
            if not overwrite and self._exists(dst):
                return ("", ""), Completed(0)
            data = src if isinstance(src, (str, bytes)) else str(src)
            self._wait(node.write_file(dst, data, 0o755 if executable else 0o644), f"upload text to {dst}")
            return ("", ""), Completed(0)
        sources = [s.strip() for s in src.split(";") if s.strip()] if isinstance(src, str) else list(src)
        if not sources:
            return self._fail(f"linux::Node {node.guid}: nothing to upload to {dst}", raise_on_error)
        into = len(sources) > 1 or self._exists(dst, "-d")
        if len(sources) > 1:
            self._wait(node.makedirs(dst), f"mkdir {dst}")
        for source in sources:
            local = os.path.expanduser(source)
            remote = posixpath.join(dst, os.path.basename(local.rstrip("/"))) if into else dst
            if not os.path.exists(local):
                return self._fail(f"linux::Node {node.guid}: failed to upload {source!r} to {remote}: "
                                  f"no such local file", raise_on_error)
            if not overwrite and self._exists(remote):
                continue
            try:
                self._wait(node.upload(local, remote), f"upload {local} to {remote}")
            except OSError as exc:
                return self._fail(f"linux::Node {node.guid}: failed to upload {source!r} to {remote}: {exc}",
                                  raise_on_error)
        return ("", ""), Completed(0)

    def download(self, src: str, dst: str, raise_on_error: bool = True) -> tuple[tuple[str, str], Completed]:
        """Copy host file ``src`` to local path ``dst`` (into it if it is a folder)."""
        local = os.path.join(dst, posixpath.basename(src)) if os.path.isdir(dst) else dst
        try:
            found = self._wait(self._node.download(src, local), f"download {src} to {local}")
        except OSError as exc:
            return self._fail(f"linux::Node {self._node.guid}: failed to download {src}: {exc}",
                              raise_on_error)
        if not found:
            return self._fail(f"linux::Node {self._node.guid}: failed to download {src}: no such file on "
                              f"the host", raise_on_error)
        return ("", ""), Completed(0)

    def mkdir(self, paths: str | list[str], clean: bool = False) -> tuple[tuple[str, str], Completed]:
        """Create folder(s) ``paths`` on the host, with their parents; with ``clean``,
        remove them first.  Paths are taken literally (quoted, never expanded)."""
        if clean:
            self.rmdir(paths)
        paths = [paths] if isinstance(paths, str) else list(paths)
        return self.execute("mkdir -p -- " + " ".join(shlex.quote(p) for p in paths))

    def rmdir(self, paths: str | list[str]) -> tuple[tuple[str, str], Completed]:
        """Remove folder(s) ``paths`` from the host, with what they hold."""
        paths = [paths] if isinstance(paths, str) else list(paths)
        return self.execute("rm -rf -- " + " ".join(shlex.quote(p) for p in paths))

    def _command_dir(self) -> str:
        """The folder commands start in on the host (NEPI's relative paths are relative to it)."""
        if not getattr(self, "_cwd", ""):
            (out, _), proc = self.execute("pwd")
            if proc.returncode != 0 or not out.strip():
                raise RuntimeError(f"linux::Node {self._node.guid}: could not learn the folder commands "
                                   f"start in (pwd)")
            self._cwd = out.strip()
        return self._cwd

    def copy(self, src: str | list[str], dst: str) -> tuple[tuple[str, str], Completed]:
        """NEPI's ``copy(src, dst)`` with ``dst`` on this node: copy local file(s) or
        folder(s) ``src`` (a list, or a ``;``-separated string) to ``[user@]host:path``
        (NEPI's scp form; the host must be this node's, the user part is ignored) or to
        a plain path on the node.  A relative path is relative to the folder the node's
        commands start in (the user's home over SSH), as in scp.  Into ``path`` when it is
        a folder on the host; several sources need one.  Copies to another host, or from
        a host (``host:path`` as ``src``) are refused: use :meth:`download`.
        """
        sources = [s.strip() for s in src.split(";") if s.strip()] if isinstance(src, str) else list(src)
        for source in sources:
            if re.match(r"^[^/]*:", source) and not os.path.exists(source):
                raise ValueError(f"linux::Node {self._node.guid}: copy from a host ({source!r}) is not "
                                 f"supported: use download(src, dst)")
        match = re.match(r"^(?:([^@/:]+)@)?([^/:]+|\[[^\]]+\]):(.*)$", dst)
        path = dst
        if match:
            host = match.group(2).strip("[]")
            mine = self.get("hostname") or ""
            same = host == mine or (host in LOCAL_HOSTNAMES and self._node.is_local)
            if not same:
                raise ValueError(f"linux::Node {self._node.guid}: copy to {host!r} from the node of "
                                 f"{mine!r}: only copies to this node's own host are supported (make "
                                 f"a LinuxNode for {host!r})")
            path = match.group(3) or "."
        if not path.startswith("/"):
            path = posixpath.normpath(posixpath.join(self._command_dir(), path))
        many = len(sources) > 1 or any(os.path.isdir(os.path.expanduser(s)) for s in sources)
        if many and not self._exists(path, "-d"):
            self._wait(self._node.makedirs(path), f"mkdir {path}")
        return self.upload(sources, path)

    def clean_processes(self) -> tuple[tuple[str, str], Completed]:
        """Kill every process this standalone node started (``run``,
        ``run_and_wait(wait_run=False)``) that still runs, with its process group.

        NEPI killed every process of the user (``killall -u``, or ``kill -9`` of all
        but the shell as root): never here, only what the node itself started and
        tracks; the same is done at release.  In an experiment, set ``cleanProcesses``
        on the node instead (done at release).
        """
        self._check_standalone("clean_processes", "set cleanProcesses (at release)")
        node = self._node

        async def stop_all() -> int:
            executor = node.executor
            count = executor.kill_all()
            await executor.stop_tracked()
            return count

        count = self._wait(stop_all(), "kill the processes it started")
        for handle in self._started.values():
            if handle.returncode is None:
                self._wait(handle.wait(), f"wait for process {handle.pid}")
        return (f"{count}\n", ""), Completed(0)

    def clean_experiment(self) -> tuple[tuple[str, str], Completed]:
        """Remove ``exp_home`` (the private run's folder, with ``node_home`` and what was
        made under them) from the host: NEPI's ``clean_experiment``.  Standalone nodes
        only (in an experiment, ``cleanExperiment`` does it at release); commands that
        write there make their folders again."""
        self._check_standalone("clean_experiment", "cleanExperiment does it at release")
        return self.rmdir(self.exp_home)

    def clean_home(self) -> tuple[tuple[str, str], Completed]:
        """Remove every folder under ``<home>/.nepi_lab`` but this run's (other
        experiments' folders and the shared ``.usr``: ``lib_dir``, ``share_dir``,
        ``src_dir``): NEPI's ``clean_home`` (which removed ``~/.nepi``), our
        ``cleanHome``.  Standalone nodes only; use it on a host (and ``home``) of your
        own: other experiments' files there go."""
        self._check_standalone("clean_home", "set cleanHome (at deploy)")
        self._wait(self._node._clean_home(), "clean home")
        return ("", ""), Completed(0)

    # -- packages -------------------------------------------------------------------------------

    def _packages(self, method: str, packages: str | list[str],
                  raise_on_error: bool) -> tuple[tuple[str, str], Completed]:
        names = packages.split() if isinstance(packages, str) else list(packages)
        native = getattr(self._node, method, None)
        if native is None:
            raise NotImplementedError(
                f"linux::Node {self._node.guid}: this nepi_lab's linux::Node cannot "
                f"{method.replace('_', ' ')} ({' '.join(names)}): install them on the host beforehand "
                f"(apt-get install / dnf install), or give the application `depends` so that a missing "
                f"command fails its deploy clearly")
        try:
            result = self._wait(native(names), f"{method} {' '.join(names)}")
        except Exception as exc:  # noqa: BLE001 - NEPI's raise_on_error=False reports it instead
            if raise_on_error:
                raise
            return ("", f"{type(exc).__name__}: {exc}"), Completed(1)
        out, err = getattr(result, "stdout", "") or "", getattr(result, "stderr", "") or ""
        status = getattr(result, "returncode", 0)
        if status and raise_on_error:
            raise RuntimeError(f"linux::Node {self._node.guid}: {method} {' '.join(names)} failed: "
                               f"exit status {status}: {err.strip()[-2000:]}")
        return (out, err), Completed(status)

    def install_packages(self, packages: str | list[str], home: str | None = None,
                         run_home: str | None = None,
                         raise_on_error: bool = True) -> tuple[tuple[str, str], Completed]:
        """Install ``packages`` (space-separated or a list) on the host with its package
        manager, through the node's own ``install_packages``; ``home`` and
        ``run_home`` (where NEPI wrote its script) are not needed.  A failure raises
        unless ``raise_on_error`` is false (then ``err`` says it and the status is 1).

        Raises
        ------
        NotImplementedError
            The node has no ``install_packages`` of its own (raised whatever
            ``raise_on_error``: the porting must install the packages another way).
        """
        return self._packages("install_packages", packages, raise_on_error)

    def remove_packages(self, packages: str | list[str], home: str | None = None,
                        run_home: str | None = None,
                        raise_on_error: bool = True) -> tuple[tuple[str, str], Completed]:
        """Remove ``packages`` from the host, through the node's own ``remove_packages``."""
        return self._packages("remove_packages", packages, raise_on_error)


class LinuxApplication(ResourceManager, _NativeApplication):
    """NEPI's ``LinuxApplication``: base of NEPI-style application types.

    It is our ``linux::Application`` (attributes, placeholders, traces, the process
    and its end) with NEPI's lifecycle methods on top: ``do_deploy`` waits for the
    node to be READY (by asking for ``self.deploy`` again, as NEPI did), then runs
    ``do_discover`` and ``do_provision`` (sources, build, install) and marks READY;
    ``do_start`` starts ``command``, ``do_stop`` stops it.  A subclass sets
    ``command`` (or others) in its ``do_deploy`` before ``super().do_deploy()``, and
    may use ``self.node``'s blocking commands there.  The command's end gives
    FINISHED (or FAILED), as for our applications (NEPI's state was STOPPED).
    """

    _rtype = "linux::Application"  # NEPI's get_rtype(); the registry keeps ours (below)

    @property
    def node(self) -> Any:
        """The node: in a NEPI-style hook a :class:`LinuxNode` (None if none is connected),
        elsewhere our ``linux::Node``."""
        if getattr(_here, "rm", None) is None:
            return _NativeApplication.node.fget(self)  # type: ignore[attr-defined]
        nodes = ResourceManager.get_connected(self, _NativeNode)
        return nodes[0] if nodes else None

    @property
    def run_home(self) -> str:
        """``${RUN_HOME}``: the application's folder on the host (NEPI's ``run_home``; here
        also ``app_home``), known once its node is DISCOVERED."""
        if not self._app_home:
            nodes = _NativeResourceManager.get_connected(self, _NativeNode)
            if not nodes or not nodes[0].run_home:
                raise RuntimeError(f"{self._rtype} {self.guid}: its folder is known once its linux::Node is "
                                   f"DISCOVERED (connect one, and wait for it as do_deploy does)")
            self._app_home = posixpath.join(nodes[0].run_home, str(self.guid))  # as our do_provision sets it
        return self._app_home

    def trace_filepath(self, filename: str) -> str:
        """Where file ``filename`` of the application is on the host."""
        return posixpath.join(self.run_home, filename)

    def replace_paths(self, command: str, node: Any = None, app_home: str | None = None,
                      run_home: str | None = None) -> str:
        """``command`` with NEPI's placeholders (``${RUN_HOME}``, ``${BIN}``...) replaced by
        the paths on the host (see "Folders and placeholders" in the README)."""
        self.run_home  # noqa: B018 - makes app_home known
        return self.expand(command)

    def execute_command(self, command: str, env: str | None = None, sudo: bool = False,
                        tty: bool = False, forward_x11: bool = False,
                        blocking: bool = False) -> tuple[tuple[str, str], Completed]:
        """NEPI's ``execute_command``: ``command`` with NEPI's ``env`` string exported and the
        placeholders replaced, run on the node and waited for (``blocking`` is ignored)."""
        environ = self.node.format_environment(env, inline=True) if env else ""
        return self.node.execute(self.replace_paths(environ + command), sudo=sudo)

    def _native(self, coro: Any, what: str) -> None:
        call_on_loop(self.ec, coro, f"{self._rtype} {self.guid}: {what}")

    def do_discover(self) -> None:
        """Find the node (our ``do_discover``), then mark DISCOVERED."""
        self._native(_NativeApplication.do_discover(self), "discover")
        self.set_discovered()

    def do_provision(self) -> None:
        """Make its folder, put sources and files in place, run build and install (our
        ``do_provision``), then mark PROVISIONED."""
        self._native(_NativeApplication.do_provision(self), "provision")
        self.set_provisioned()

    def do_deploy(self) -> None:
        """Once the node is READY: discover, provision, READY (NEPI's order)."""
        node = self.node
        if node is not None and node.state < S.READY and node.state != S.FAILED:
            self.ec.schedule(self.reschedule_delay, self.deploy)
            return
        if self.state < S.DISCOVERED:
            self.do_discover()
        if self.state < S.PROVISIONED:
            self.do_provision()
        super().do_deploy()

    def do_start(self) -> None:
        """Start ``command`` (our ``do_start``), then mark STARTED."""
        self._native(_NativeApplication.do_start(self), "start")
        self.set_started()

    def do_stop(self) -> None:
        """Stop the command (our ``do_stop``), then mark STOPPED."""
        self._native(_NativeApplication.do_stop(self), "stop")
        self.set_stopped()

    def do_release(self) -> None:
        """Stop what still runs, collect the traces, remove its folder (our ``do_release``)."""
        self._native(_NativeApplication.do_release(self), "release")
        self.set_released()


# Defining the class registered it under "linux::Application": the name stays our type's.
register_type(_NativeApplication)
