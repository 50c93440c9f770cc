"""The default results root: per user, kept, private; ``$NEPI_LAB_RESULTS`` overrides it.

A second user on the same machine is in ``tests/test_two_users.py`` (as root).
"""

from __future__ import annotations

import os
import stat
import threading

import pytest

from nepi_lab import ExperimentController, ResultsDirectoryError
from nepi_lab.core.results import RESULTS_ENV, default_local_dir


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A home of our own, and no variable that would choose the folder instead."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv(RESULTS_ENV, raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    return home


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_the_default_is_in_the_users_own_data_folder(home):
    assert default_local_dir() == str(home / ".local" / "share" / "nepi_lab" / "results")
    with ExperimentController(exp_id="first") as ec:
        assert ec.local_dir == default_local_dir()
        assert os.path.dirname(ec.run_dir) == os.path.join(default_local_dir(), "first")
    # the folders XDG's default needed were made private (XDG: "with permission 0700")
    for folder in (".local", ".local/share", ".local/share/nepi_lab", ".local/share/nepi_lab/results"):
        assert _mode(home / folder) == 0o700, folder
    # and the run outlives the controller, to be analysed later
    assert os.path.isfile(os.path.join(ec.run_dir, "experiment.json"))


def test_existing_folders_keep_their_mode(home):
    (home / ".local" / "share").mkdir(parents=True, mode=0o755)
    (home / ".local" / "share").chmod(0o755)
    with ExperimentController(exp_id="first"):
        pass
    assert _mode(home / ".local" / "share") == 0o755
    assert _mode(home / ".local" / "share" / "nepi_lab") == 0o700


def test_xdg_data_home_is_honoured_when_absolute(home, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_local_dir() == str(tmp_path / "data" / "nepi_lab" / "results")
    with ExperimentController(exp_id="first") as ec:
        assert ec.run_dir.startswith(str(tmp_path / "data" / "nepi_lab" / "results" / "first") + os.sep)
    assert _mode(tmp_path / "data") == 0o700
    monkeypatch.setenv("XDG_DATA_HOME", "relative/data")  # invalid for XDG: ignored
    assert default_local_dir() == str(home / ".local" / "share" / "nepi_lab" / "results")


def test_nepi_lab_results_overrides_and_local_dir_overrides_both(home, tmp_path, monkeypatch):
    monkeypatch.setenv(RESULTS_ENV, str(tmp_path / "chosen"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_local_dir() == str(tmp_path / "chosen")
    with ExperimentController(exp_id="first") as ec:
        assert ec.local_dir == str(tmp_path / "chosen")
    assert _mode(tmp_path / "chosen") == 0o777 & ~_umask()  # a folder one chose: as any other
    with ExperimentController(exp_id="first", local_dir=tmp_path / "given") as ec:
        assert ec.local_dir == str(tmp_path / "given")
    assert not (tmp_path / "data").exists() and not (home / ".local").exists()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_an_unusable_default_is_a_typed_error_that_says_what_to_do(home):
    (home / ".local").write_text("a file where the data folder would be")
    threads = threading.active_count()
    with pytest.raises(ResultsDirectoryError) as info:
        ExperimentController(exp_id="first")
    message = str(info.value)
    assert info.value.path == str(home / ".local" / "share" / "nepi_lab" / "results")
    assert "a file is in the way" in message, message
    assert f"default results folder: set ${RESULTS_ENV} or pass local_dir=" in message, message
    assert sorted(os.listdir(home)) == [".local"]  # nothing made, no thread started
    assert threading.active_count() == threads


def test_an_unusable_nepi_lab_results_names_the_variable(home, tmp_path, monkeypatch):
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv(RESULTS_ENV, str(tmp_path / "file"))
    with pytest.raises(ResultsDirectoryError) as info:
        ExperimentController(exp_id="first")
    assert str(info.value).endswith(f"; it is ${RESULTS_ENV}"), str(info.value)
    # an explicit local_dir is the caller's own: no hint about the defaults
    with pytest.raises(ResultsDirectoryError) as info:
        ExperimentController(exp_id="first", local_dir=tmp_path / "file")
    assert "$" not in str(info.value), str(info.value)
