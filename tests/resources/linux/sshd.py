"""A real OpenSSH server on loopback, for the SSH tests and the SSH benchmark.

:class:`Sshd` is a plain context manager (the benchmark uses it as is); the pytest
fixtures at the bottom wrap it.  Import them into a test module with
``from .sshd import sshd, ssh_node  # noqa: F401`` (no shared conftest needed).

What it sets up (the recipe of RECIPES.md section 5):

- a temporary folder holding a fresh ed25519 host key, client keys and the config;
- a dedicated test user made with ``useradd`` (home in the temporary folder, shell
  ``/bin/bash``, unlocked with ``usermod -p '*'``): logging in as root would run
  root's ``.bashrc`` at every command and cost about 90 ms each;
- ``authorized_keys`` holding one client key (a second key is left out, to test a
  refused key), and ``known_hosts`` files with the right and a wrong host key;
- ``sshd -f cfg -E log`` on a free port of ``127.0.0.2``, with ``MaxSessions 10``
  (OpenSSH's default, written out) and ``StrictModes no``, ``UsePAM no``.

Why 127.0.0.2: ``linux::Node`` treats ``localhost``, ``127.0.0.1`` and ``::1`` as
this machine and never uses SSH for them; any other loopback address reaches this
machine through SSH.  The address is numeric, so connecting needs no resolver thread.

It needs root (useradd, sshd) and ``/usr/sbin/sshd`` (``apt-get install -y
openssh-server``, which it tries once); otherwise :class:`SshdUnavailable` says why.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

SSHD = "/usr/sbin/sshd"
HOST = "127.0.0.2"


class SshdUnavailable(RuntimeError):
    """sshd cannot be installed or started here; the message says why."""


def _run(*argv: str) -> str:
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        raise SshdUnavailable(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


def ensure_sshd() -> None:
    """Install openssh-server if it is missing (root, apt-get); raise SshdUnavailable if not possible."""
    if os.path.exists(SSHD):
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise SshdUnavailable("sshd is not installed and cannot be installed here (needs root and apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "openssh-server"]):
        if subprocess.run(argv, capture_output=True, env=env).returncode != 0:
            raise SshdUnavailable(f"could not install openssh-server: {' '.join(argv)} failed")
    if not os.path.exists(SSHD):
        raise SshdUnavailable("openssh-server installed but /usr/sbin/sshd is missing")


def free_port(host: str = HOST) -> int:
    """A TCP port nobody listens on right now (bound to port 0, then released)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _keygen(path: str) -> str:
    _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "nepi-lab-test", "-f", path)
    with open(path + ".pub") as f:
        return f.read().strip()


class _Started:
    """A context manager that starts on entering (stopping what it made if starting
    fails) and stops on leaving: ``start()`` and ``stop()`` are the subclass's."""

    def __enter__(self):  # the subclass (Sshd, SshdFleet)
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


def _scratch_dir(prefix: str, what: str) -> str:
    """A folder for a test sshd's files, readable by its test user; sshd installed, root
    checked (``what`` names the caller in the error)."""
    ensure_sshd()
    if os.geteuid() != 0:
        raise SshdUnavailable(f"{what} creates a test user and starts sshd: it needs root")
    folder = tempfile.mkdtemp(prefix=prefix)
    os.chmod(folder, 0o755)  # the test user reads authorized_keys and lives under it
    return folder


def _make_user(server: Sshd | SshdFleet, client_pub: str) -> str:
    """``server.user`` with home ``server.home`` and ``client_pub`` authorized (in
    ``<server.dir>/authorized_keys``, returned); ``server._user_made`` set once made."""
    authorized = os.path.join(server.dir, "authorized_keys")
    with open(authorized, "w") as f:
        f.write(client_pub + "\n")
    os.chmod(authorized, 0o644)  # sshd reads it as the test user
    _run("useradd", "-M", "-d", server.home, "-s", "/bin/bash", server.user)
    server._user_made = True
    _run("usermod", "-p", "*", server.user)  # useradd leaves it locked; UsePAM no refuses locked users
    os.mkdir(server.home)
    entry = pwd.getpwnam(server.user)
    os.chown(server.home, entry.pw_uid, entry.pw_gid)
    return authorized


class Sshd(_Started):
    """A throw-away sshd on ``127.0.0.2:<free port>`` (or ``host``, another loopback
    address) with a throw-away user.

    Attributes, once entered: ``host``, ``port``, ``user``, ``home`` (the user's home),
    ``client_key`` (authorised), ``other_key`` (not authorised), ``known_hosts`` (the
    right host key), ``wrong_known_hosts`` (another key for the same host),
    ``log`` (sshd's log file) and ``pid`` (the listening daemon).

    Example
    -------
    >>> with Sshd() as server:                                   # doctest: +SKIP
    ...     print(server.user, server.port)
    """

    def __init__(self, max_sessions: int = 10, name: str = "", host: str = HOST) -> None:
        self.max_sessions = max_sessions
        self.host = host
        self.port = 0
        self.user = name or f"nepissh{secrets.token_hex(4)}"
        self.dir = ""
        self.pid = 0
        self._user_made = False

    # -- setup -----------------------------------------------------------------------

    def start(self) -> None:
        self.dir = d = _scratch_dir("nepi-sshd-", "the SSH tests")
        self.home = os.path.join(d, "home")
        self.log = os.path.join(d, "sshd.log")
        self.client_key = os.path.join(d, "client_key")
        self.other_key = os.path.join(d, "other_key")
        self.known_hosts = os.path.join(d, "known_hosts")
        self.wrong_known_hosts = os.path.join(d, "wrong_known_hosts")
        host_key = _keygen(os.path.join(d, "host_key"))
        wrong_host_key = _keygen(os.path.join(d, "wrong_host_key"))
        client_pub = _keygen(self.client_key)
        _keygen(self.other_key)
        # the port is known only now: known_hosts names "[host]:port"
        self.port = free_port(self.host)
        for path, key in ((self.known_hosts, host_key), (self.wrong_known_hosts, wrong_host_key)):
            with open(path, "w") as f:
                f.write(f"[{self.host}]:{self.port} {' '.join(key.split()[:2])}\n")
        authorized = _make_user(self, client_pub)

        config = os.path.join(d, "sshd_config")
        with open(config, "w") as f:
            f.write(self.config(os.path.join(d, "host_key"), authorized))
        os.makedirs("/run/sshd", exist_ok=True)  # privilege separation directory
        _run(SSHD, "-t", "-f", config)
        self._launch(config)

    def config(self, host_key: str, authorized: str) -> str:
        return "\n".join([
            f"Port {self.port}",
            f"ListenAddress {self.host}",
            f"HostKey {host_key}",
            f"PidFile {os.path.join(self.dir, 'sshd.pid')}",
            f"AuthorizedKeysFile {authorized}",
            f"AllowUsers {self.user}",
            "StrictModes no",  # the temporary folder is not root-owned all the way down
            "UsePAM no",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin no",
            "Subsystem sftp internal-sftp",
            "MaxStartups 200:30:300",
            f"MaxSessions {self.max_sessions}",  # OpenSSH's default is 10: written out on purpose
            "LogLevel INFO",
            "",
        ])

    def _launch(self, config: str) -> None:
        pidfile = os.path.join(self.dir, "sshd.pid")
        with contextlib.suppress(FileNotFoundError):  # a killed daemon's: its pid is not the new one's
            os.unlink(pidfile)
        _run(SSHD, "-f", config, "-E", self.log)  # daemonizes once listening
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with open(pidfile) as f:
                    self.pid = int(f.read())
                with socket.create_connection((self.host, self.port), timeout=1):
                    return
            except (OSError, ValueError):
                time.sleep(0.02)
        raise SshdUnavailable(f"sshd did not start listening on {self.host}:{self.port}: {self.log_text()}")

    # -- use -----------------------------------------------------------------------

    def node_attributes(self, **extra: object) -> dict[str, object]:
        """Attributes of a ``linux::Node`` that reaches this server."""
        return {"hostname": self.host, "port": self.port, "username": self.user,
                "identityFile": self.client_key, "knownHosts": self.known_hosts, **extra}

    def log_text(self) -> str:
        """The daemon's log so far ("" before it has one)."""
        try:
            with open(self.log) as f:
                return f.read()
        except OSError:
            return ""

    def processes(self) -> list:
        """The daemon and every process under it (its connections' sshd processes)."""
        import psutil

        try:
            daemon = psutil.Process(self.pid)
            return [daemon, *daemon.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def drop_connections(self) -> None:
        """SIGKILL the sshd processes of the open connections, not the daemon: every
        client's connection drops, and reconnecting works."""
        import psutil

        daemon = self.pid
        procs = []
        for p in self.processes():
            with contextlib.suppress(psutil.NoSuchProcess):
                if p.pid != daemon and p.name() == "sshd":
                    procs.append(p)
                    p.send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(_alive(p) for p in procs):
            time.sleep(0.01)

    def kill(self) -> None:
        """SIGKILL the daemon and its connections' sshd processes: the server dies at once.

        The commands started through it run in their own sessions and survive, as on
        a host whose sshd crashed.
        """
        import psutil

        procs = []
        for p in self.processes():
            with contextlib.suppress(psutil.NoSuchProcess):
                if p.name() == "sshd":  # this daemon's tree only; its users' commands stay
                    procs.append(p)
                    p.send_signal(signal.SIGKILL)
        self.pid = 0
        # gone or zombies (a container's init may reap late): either way they no longer serve
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(_alive(p) for p in procs):
            time.sleep(0.01)

    def restart(self) -> None:
        """Start the daemon again after :meth:`kill`, with the same port, keys and user."""
        self._launch(os.path.join(self.dir, "sshd_config"))

    def user_processes(self) -> list:
        """Live processes owned by the test user."""
        import psutil

        found = []
        for p in psutil.process_iter(["username", "status"]):
            if p.info["username"] == self.user and p.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(p)
        return found

    # -- teardown -------------------------------------------------------------------

    def stop(self) -> None:
        if self.pid:
            with contextlib.suppress(ImportError):
                self.kill()
        if self.dir:  # a daemon whose pid was not read (an interrupted start): found by its config
            with contextlib.suppress(ImportError):
                import psutil

                config = os.path.join(self.dir, "sshd_config")
                for p in psutil.process_iter(["cmdline"]):
                    if config in (p.info["cmdline"] or ()):
                        self.pid = p.pid
                        self.kill()
        if self._user_made:
            with contextlib.suppress(ImportError):
                import psutil

                left = self.user_processes()  # only the dedicated user's: never by name
                for p in left:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        p.kill()
                psutil.wait_procs(left, timeout=5)
            subprocess.run(["userdel", self.user], capture_output=True)
            self._user_made = False
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = ""


class SshdFleet(_Started):
    """``count`` throw-away sshds, one per loopback address (``127.0.1.1`` ...), sharing
    one throw-away user, one host key and one client key: many SSH hosts for one
    controller (the fleet figure of ``benchmarks/bench_ssh.py``).

    The daemons run in the foreground (``sshd -D``), started together; leaving the
    block (also on an error or Ctrl-C) kills them, their connections and the user's
    processes, deletes the user and removes the folder.  Attributes, once entered:
    ``servers`` (one :class:`FleetMember` each: ``host``, ``port``, ``log``,
    ``node_attributes()``), ``user``, ``client_key``, ``known_hosts`` (every member's
    host key line) and ``max_sessions``.

    Example
    -------
    >>> with SshdFleet(3) as fleet:                               # doctest: +SKIP
    ...     print([s.host for s in fleet.servers])
    ['127.0.1.1', '127.0.1.2', '127.0.1.3']
    """

    def __init__(self, count: int, max_sessions: int = 10, network: str = "127.0.1.") -> None:
        if not 0 < count < 255:
            raise ValueError(f"count must be 1 to 254, not {count}")
        self.count = count
        self.max_sessions = max_sessions
        self.hosts = [f"{network}{i}" for i in range(1, count + 1)]
        self.user = f"nepifleet{secrets.token_hex(4)}"
        self.dir = ""
        self.servers: list[FleetMember] = []
        self._daemons: list[subprocess.Popen] = []
        self._user_made = False

    def start(self) -> None:
        self.dir = d = _scratch_dir("nepi-sshd-fleet-", "the SSH fleet")
        self.home = os.path.join(d, "home")
        self.client_key = os.path.join(d, "client_key")
        self.known_hosts = os.path.join(d, "known_hosts")
        host_key_path = os.path.join(d, "host_key")
        host_key = _keygen(host_key_path)
        client_pub = _keygen(self.client_key)
        authorized = _make_user(self, client_pub)
        os.makedirs("/run/sshd", exist_ok=True)
        key_line = " ".join(host_key.split()[:2])
        lines = []
        for host in self.hosts:
            member = FleetMember(self, host, free_port(host))
            config = Sshd(self.max_sessions, self.user, host)
            config.port, config.dir = member.port, d
            text = config.config(host_key_path, authorized).replace(
                os.path.join(d, "sshd.pid"), os.path.join(d, f"sshd.{host}.pid"))
            with open(member.config, "w") as f:
                f.write(text)
            self.servers.append(member)
            lines.append(f"[{host}]:{member.port} {key_line}\n")
        with open(self.known_hosts, "w") as f:
            f.writelines(lines)
        _run(SSHD, "-t", "-f", self.servers[0].config)
        for member in self.servers:  # all at once: each loads its key while the next starts
            self._daemons.append(subprocess.Popen(
                [SSHD, "-D", "-f", member.config, "-E", member.log], stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        deadline = time.monotonic() + 30
        waiting = list(zip(self.servers, self._daemons, strict=True))
        while waiting:
            member, daemon = waiting[0]
            if daemon.poll() is not None:
                raise SshdUnavailable(f"sshd on {member.host}:{member.port} exited: {member.log_text()}")
            try:
                with socket.create_connection((member.host, member.port), timeout=1):
                    waiting.pop(0)
            except OSError:
                if time.monotonic() > deadline:
                    raise SshdUnavailable(f"sshd did not start listening on {member.host}:{member.port}: "
                                          f"{member.log_text()}") from None
                time.sleep(0.02)

    def log_text(self) -> str:
        """Every member's log, one after the other."""
        return "".join(member.log_text() for member in self.servers)

    def stop(self) -> None:
        with contextlib.suppress(ImportError):
            import psutil

            procs = []
            for daemon in self._daemons:  # the daemons and their connections' sshd processes
                with contextlib.suppress(psutil.NoSuchProcess):
                    parent = psutil.Process(daemon.pid)
                    procs += [*parent.children(recursive=True), parent]
            if self._user_made:
                procs += [p for p in psutil.process_iter(["username"]) if p.info["username"] == self.user]
            for p in procs:
                with contextlib.suppress(psutil.NoSuchProcess):
                    p.kill()
            psutil.wait_procs(procs, timeout=5)
        for daemon in self._daemons:
            with contextlib.suppress(ProcessLookupError):
                daemon.kill()
            daemon.wait()
        self._daemons = []
        if self._user_made:
            subprocess.run(["userdel", self.user], capture_output=True)
            self._user_made = False
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = ""


class FleetMember:
    """One sshd of a :class:`SshdFleet`."""

    log_text = Sshd.log_text

    def __init__(self, fleet: SshdFleet, host: str, port: int) -> None:
        self.fleet = fleet
        self.host = host
        self.port = port
        self.config = os.path.join(fleet.dir, f"sshd_config.{host}")
        self.log = os.path.join(fleet.dir, f"sshd.{host}.log")

    def node_attributes(self, **extra: object) -> dict[str, object]:
        """Attributes of a ``linux::Node`` that reaches this server."""
        fleet = self.fleet
        return {"hostname": self.host, "port": self.port, "username": fleet.user,
                "identityFile": fleet.client_key, "knownHosts": fleet.known_hosts, **extra}


def _alive(process) -> bool:
    import psutil

    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# -- pytest fixtures ------------------------------------------------------------------


def sshd_or_skip():
    """A fixture's body: an sshd (and test user) of its own, stopped at the end; the test
    is skipped, saying why, where none can run."""
    try:
        server = Sshd()
        server.__enter__()
    except SshdUnavailable as exc:
        pytest.skip(f"no sshd for the SSH tests: {exc}")
    try:
        yield server
    finally:
        server.__exit__(None, None, None)


@pytest.fixture(scope="session")
def sshd():
    """One sshd and test user for the whole session."""
    yield from sshd_or_skip()
