"""Fault injection shared by the tests: a small file system that fills up, and a folder
another process removes between two ``mkdir``.

The small file system is a tmpfs of a few hundred KiB mounted on a folder of the test
(root only: the tests that use it skip with that reason otherwise) and unmounted
afterwards.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def small_disk(path: Path, size: str = "1m") -> Iterator[Path]:
    """Mount a tmpfs of ``size`` on ``path`` (made if needed); unmount it at the end."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs (a disk that fills up) needs root")
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path: Path, leave: int = 0) -> Path:
    """Fill the file system of ``path`` with one file, leaving about ``leave`` bytes free."""
    filler = path / "filler"
    stat = os.statvfs(path)
    free = stat.f_bavail * stat.f_frsize
    with open(filler, "wb") as f:
        f.write(b"\0" * max(free - leave, 0))
    return filler


def removed_once_made(monkeypatch: pytest.MonkeyPatch, folder: str, times: int,
                      levels: int = 1) -> list[str]:
    """Make ``os.mkdir`` remove ``folder`` right after making it, with the ``levels - 1``
    folders above it, the first ``times`` times: another process removing the folders it
    emptied (a run of the same experiment releasing, a failed load) between two ``mkdir``
    of a ``makedirs``.  The list it returns grows by ``folder`` each time."""
    removals: list[str] = []
    mkdir = os.mkdir

    def racing(path, mode=0o777, *, dir_fd=None):
        mkdir(path, mode, dir_fd=dir_fd)
        if os.fspath(path) == folder and len(removals) < times:
            removals.append(folder)
            removed = folder
            for _ in range(levels):
                os.rmdir(removed)
                removed = os.path.dirname(removed)

    monkeypatch.setattr(os, "mkdir", racing)
    return removals
