"""Checks and fixtures shared by the test packages' conftests: leak guards and a
controller per test."""

from __future__ import annotations

import os
import threading
import time

import psutil
import pytest

from nepi_lab import ExperimentController


def assert_threads_back_to(before: int, seconds: float) -> None:
    """Wait up to ``seconds`` for the thread count to fall back to ``before``; fail naming
    the threads still alive otherwise."""
    for _ in range(int(seconds / 0.01)):
        if threading.active_count() <= before:
            return
        threading.Event().wait(0.01)
    assert threading.active_count() <= before, [t.name for t in threading.enumerate()]


class OwnThreads:
    """The threads of this process but those that other libraries left in it before
    (Dask's callback thread, after the sweep tests): made at a test's start, it names the
    threads a controller's bound is about (the main thread, nepi_lab's threads, any new
    one), whatever ran before the test."""

    def __init__(self) -> None:
        self.foreign = {t.ident for t in threading.enumerate()
                        if t is not threading.main_thread() and not t.name.startswith("nepi_lab")}

    def names(self) -> list[str]:
        return [t.name for t in threading.enumerate() if t.ident not in self.foreign]

    def count(self) -> int:
        return len(self.names())


def thread_leak_guard(seconds: float):
    """An autouse fixture: every test leaves the thread count as it found it, within
    ``seconds`` (a refused load or a shut-down controller leaves no thread)."""

    @pytest.fixture(autouse=True)
    def no_thread_leak():
        before = threading.active_count()
        yield
        assert_threads_back_to(before, seconds)

    return no_thread_leak


def controller_fixture(exp_id: str, folder: str = ""):
    """An ``ec`` fixture: a controller writing into the test's temporary directory (or
    its ``folder``), always shut down."""

    @pytest.fixture
    def ec(tmp_path):
        controller = ExperimentController(exp_id=exp_id, local_dir=str(tmp_path / folder))
        yield controller
        controller.shutdown()

    return ec


@pytest.fixture(autouse=True)
def no_child_left():
    """No test leaves a child process of this interpreter running (zombies aside)."""
    yield
    me = psutil.Process(os.getpid())
    left = [c for c in me.children(recursive=True) if c.status() != psutil.STATUS_ZOMBIE]
    assert left == [], [c.cmdline() for c in left]


def _run_cgroups() -> dict[str, str]:
    """The run cgroups (``nepi_lab.<exp_id>.<run_id>``) under this interpreter's cgroup,
    by name, each with its folder; none where cgroups are not used."""
    from nepi_lab.resources.linux import _tracking

    base = _tracking.own_cgroup()  # where cgroup_base() looks, whatever a test patched there
    try:
        names = os.listdir(base) if base is not None else []
    except OSError:
        return {}
    return {name: os.path.join(base, name) for name in names if name.startswith("nepi_lab.")}


def _holds_processes(folder: str) -> bool:
    for parent, _, _ in os.walk(folder):
        try:
            with open(os.path.join(parent, "cgroup.procs")) as f:
                if f.read().strip():
                    return True
        except OSError:
            continue
    return False


@pytest.fixture(autouse=True)
def no_cgroup_left():
    """No test leaves a run's cgroup folder behind on this machine: its release, the exit
    handlers of a script's interpreter or ``nepi-lab cleanup`` (after a kill -9) remove it.
    Not counted: a folder that still holds processes (another live run's: a benchmark
    beside the tests), and the runs of this interpreter, whose folders its own exit
    handler removes (``_tracking``'s ``stop_now``): a node released with
    ``cleanProcesses=False`` keeps its cgroup for the processes it leaves."""
    from nepi_lab.resources.linux import _tracking

    before = set(_run_cgroups())
    yield
    ours = {os.path.basename(cgroups.folder) for cgroups in list(_tracking._runs.values())}
    left = [name for name, folder in _run_cgroups().items()
            if name not in before and name not in ours and not _holds_processes(folder)]
    assert left == [], f"run cgroups left behind: {left}"


@pytest.fixture
def home(tmp_path):
    """The nodes' ``home``: never the real $HOME."""
    path = tmp_path / "home"
    path.mkdir()
    return str(path)


def terminal_output(command: list[str], seconds: float = 60) -> str:
    """Run ``command`` with its stdout on a new pseudo-terminal; return what it wrote there
    (``\r\n`` as ``\n``) once it ended with status 0 (stderr, a pipe, is in the failure)."""
    import select
    import subprocess

    leader, follower = os.openpty()
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=follower, stderr=subprocess.PIPE,
                            close_fds=True)
    os.close(follower)
    output = b""
    try:
        while True:
            ready, _, _ = select.select([leader], [], [], seconds)
            assert ready, f"no output for {seconds} s"
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the process closed the terminal
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(leader)
        assert proc.wait(timeout=seconds) == 0, proc.stderr.read()
        proc.stderr.close()
    return output.decode().replace("\r\n", "\n")


def wait_until(predicate, timeout: float = 5.0) -> bool:
    """Whether ``predicate()`` became true within ``timeout`` seconds (asked every 10 ms)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def sleepers(home: str) -> list[int]:
    """The ``sleep 30`` processes of applications on nodes with this ``home`` (they run in
    a folder under it): what a test's long application left running, or not."""
    found = []
    for process in psutil.process_iter(["cmdline", "cwd"]):
        if process.info["cmdline"] == ["sleep", "30"] and (process.info["cwd"] or "").startswith(home):
            found.append(process.pid)
    return found


def interrupt(process, timeout: float = 30) -> str:
    """Press Ctrl-C in ``process`` (SIGINT) and wait for it to end; its stderr.  Killed if
    it does not end (the test then fails on what it finds)."""
    import signal

    try:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return stderr
