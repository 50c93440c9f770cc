"""Two users of one machine: the README's first command works for the second one too.

Before, the default results folder was ``<temp dir>/nepi_lab-results``, made by whoever
ran first: after root ran ``nepi-lab demo``, another user's first ``nepi-lab demo``
failed (a folder it could not write in, a traceback).  Now each user's results are in
their own data folder (``~/.local/share/nepi_lab/results``).

These tests make a real user (``useradd``), run the demo as root and then as that user
with ``runuser``, both with the same temporary directory, and remove the user and
everything made for it at the end.  They need root.
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import subprocess
import sys
import sysconfig
import tempfile

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="making a user (useradd) and running as it needs root"),
    pytest.mark.skipif(not all(map(shutil.which, ("useradd", "userdel", "runuser", "setpriv"))),
                       reason="useradd, userdel, runuser or setpriv is missing"),
]

_VERSION = "import sys; print(sys.version_info[:2])"

#: What would choose the results folder or the index of runs instead of the defaults.
_CHOOSERS = ("NEPI_LAB_RESULTS", "NEPI_LAB_STATE", "XDG_DATA_HOME", "XDG_STATE_HOME")


class Machine:
    """A world-readable folder with a shared temporary directory (mode 1777, as /tmp),
    root's home, a second user with a home of its own, and a Python both can run."""

    def __init__(self, folder: str, user: str, python: str) -> None:
        self.folder, self.user, self.python = folder, user, python
        self.tmp = os.path.join(folder, "tmp")
        self.root_home = os.path.join(folder, "root-home")
        self.user_home = os.path.join(folder, "home")

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _CHOOSERS and not k.startswith("PYTHON")}
        return {**env, "TMPDIR": self.tmp, **extra}

    def as_root(self, *args: str, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([self.python, *args], cwd=self.folder, capture_output=True, text=True,
                              env=self.env(HOME=self.root_home, **extra), timeout=120)

    def as_user(self, *args: str, **extra: str) -> subprocess.CompletedProcess:
        # runuser sets HOME (and USER, LOGNAME, SHELL) from the user's passwd entry
        return subprocess.run(["runuser", "-u", self.user, "--", self.python, *args], cwd=self.folder,
                              env=self.env(**extra), capture_output=True, text=True, timeout=120)


def _python_for_everyone(where: str, user: str) -> str | None:
    """A virtual environment in ``where`` that ``user`` can run, seeing this test
    environment's packages (nepi_lab from this checkout, its dependencies).

    The test environment's own interpreter may sit where only root can read it (pyenv
    in /root), so the environment is made from the first interpreter of the same
    version that the user can run."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [os.path.realpath(sys.executable),
                  *(os.path.join(folder, version) for folder in ("/usr/bin", "/usr/local/bin"))]
    for base in dict.fromkeys(candidates):  # (in order, once each)
        if not os.path.isfile(base):
            continue
        probe = subprocess.run(["runuser", "-u", user, "--", base, "-c", _VERSION],
                               cwd=where, capture_output=True, text=True)
        if probe.returncode == 0 and probe.stdout.strip() == str(tuple(sys.version_info[:2])):
            venv = os.path.join(where, "venv")
            subprocess.run([base, "-m", "venv", "--without-pip", venv], check=True)
            site = subprocess.run([os.path.join(venv, "bin", "python"), "-c",
                                   "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                  check=True, capture_output=True, text=True).stdout.strip()
            with open(os.path.join(site, "nepi_lab-tests.pth"), "w") as f:
                f.write(f"import site; site.addsitedir({sysconfig.get_path('purelib')!r})\n")
            return os.path.join(venv, "bin", "python")
    return None


@pytest.fixture(scope="module")
def machine():
    folder = tempfile.mkdtemp(prefix="nepi_lab-two-users-")  # not pytest's tmp_path: only root can enter it
    os.chmod(folder, 0o755)
    user = f"nepitest{secrets.token_hex(4)}"
    made_user = False
    try:
        os.mkdir(os.path.join(folder, "tmp"))
        os.chmod(os.path.join(folder, "tmp"), 0o1777)
        os.mkdir(os.path.join(folder, "root-home"), 0o700)
        subprocess.run(["useradd", "--create-home", "--home-dir", os.path.join(folder, "home"),
                        "--shell", "/bin/sh", "--user-group", user], check=True, capture_output=True)
        made_user = True
        python = _python_for_everyone(folder, user)
        if python is None:
            pytest.skip(f"no Python {sys.version_info.major}.{sys.version_info.minor} that user {user} may "
                        f"run (the test environment's is {os.path.realpath(sys.executable)})")
        yield Machine(folder, user, python)
    finally:
        if made_user:  # fails, and so fails the test, if a process of the user still runs
            subprocess.run(["userdel", "--remove", user], check=True, capture_output=True)
        shutil.rmtree(folder)


def _has_entry(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


def _run_directory(out: str) -> str:
    return re.search(r"^run directory: (.+)$", out, re.M).group(1)


def test_a_second_user_runs_the_demo_after_root(machine):
    # `nepi-lab demo`: the script's entry point is nepi_lab.cli:main
    first = machine.as_root("-m", "nepi_lab.cli", "demo")
    assert first.returncode == 0, first.stdout + first.stderr
    root_run = _run_directory(first.stdout)
    root_results = os.path.join(machine.root_home, ".local", "share", "nepi_lab", "results")
    assert root_run.startswith(os.path.join(root_results, "demo") + "/")

    second = machine.as_user("-m", "nepi_lab.cli", "demo")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "Traceback" not in second.stderr, second.stderr
    user_results = os.path.join(machine.user_home, ".local", "share", "nepi_lab", "results")
    user_run = _run_directory(second.stdout)
    assert user_run.startswith(os.path.join(user_results, "demo") + "/")
    assert os.stat(user_run).st_uid == pwd.getpwnam(machine.user).pw_uid
    assert os.stat(user_results).st_mode & 0o777 == 0o700  # private: nobody else reads its traces
    assert "FINISHED" in second.stdout and os.path.isfile(os.path.join(user_run, "experiment.json"))
    # nothing was left in the temporary directory both used (the demo's scratch home is removed)
    assert os.listdir(machine.tmp) == []


def test_a_folder_the_user_cannot_write_in_is_a_typed_error(machine):
    """``local_dir`` (or ``$NEPI_LAB_RESULTS``) naming root's folder: a ResultsDirectoryError
    that says "Permission denied", made at construction, and nothing left behind."""
    theirs = os.path.join(machine.folder, "roots-results")
    os.mkdir(theirs, 0o755)
    code = ("import sys, threading\n"
            "from nepi_lab import ExperimentController, ResultsDirectoryError\n"
            "try:\n"
            "    ExperimentController(exp_id='mine', local_dir=sys.argv[1])\n"
            "except ResultsDirectoryError as exc:\n"
            "    print('refused:', exc, '| threads:', threading.active_count())\n")
    given = machine.as_user("-c", code, theirs)
    assert given.returncode == 0, given.stderr
    assert f"refused: cannot keep results in local_dir '{theirs}'" in given.stdout, given.stdout
    assert "Permission denied" in given.stdout and "| threads: 1" in given.stdout, given.stdout
    from_env = machine.as_user("-c", code.replace("local_dir=sys.argv[1]", ""), NEPI_LAB_RESULTS=theirs)
    assert "Permission denied" in from_env.stdout and "it is $NEPI_LAB_RESULTS" in from_env.stdout, from_env
    assert os.listdir(theirs) == []


def test_no_home_at_all_is_a_typed_error(machine):
    """A uid with no passwd entry and no $HOME (a container started with --user 12345):
    no folder can be named, so the error says to choose one."""
    code = ("from nepi_lab import ExperimentController, ResultsDirectoryError\n"
            "try:\n"
            "    ExperimentController(exp_id='mine')\n"
            "except ResultsDirectoryError as exc:\n"
            "    print('refused:', exc)\n")
    env = {k: v for k, v in machine.env().items() if k != "HOME"}
    uid = next(uid for uid in range(54321, 64000) if not _has_entry(uid))
    proc = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                           machine.python, "-c", code],
                          cwd=machine.folder, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == (
        "refused: cannot keep results: no home folder is known for this user to keep results in; "
        "set $NEPI_LAB_RESULTS or pass local_dir="), proc.stdout
