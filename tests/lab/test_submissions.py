"""The example submissions shipped with ``notebooks/09-lab-checks.ipynb``, graded by the
notebook's own lab (its cell tagged ``lab-definition``): each fails the way
``tests/lab/make_submissions.py`` says, and grading them writes nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "09-lab-checks.ipynb"
SUBMISSIONS = ROOT / "notebooks" / "lab-submissions"

ROUTE = "h1 has a route to default via 10.0.0.2"
TTL = "the replies crossed one router (TTL 63)"
LOSS = "ping loses at most 0 % of packets"
RATE = "iperf3 client carries at least 15 Mbit/s"


@pytest.fixture(scope="module")
def lab():
    """The lab the notebook defines, from its cell."""
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    [cell] = [c for c in cells if "lab-definition" in c["metadata"].get("tags", ())]
    namespace: dict = {}
    exec("".join(cell["source"]), namespace)  # noqa: S102 - the repository's own notebook
    return namespace["lab"]


def snapshot(folder: Path) -> dict[str, tuple[int, float]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime) for p in folder.rglob("*")}


def test_each_submission_fails_its_own_way(lab):
    before = snapshot(SUBMISSIONS)
    grades = lab.grade(str(SUBMISSIONS / "*"))
    assert snapshot(SUBMISSIONS) == before  # grading only reads
    totals = grades.totals.set_index("student")
    assert list(totals.index) == ["alice", "bob", "carol", "dave", "erin"]
    assert totals["points"].to_dict() == {"alice": 10, "bob": 7, "carol": 8, "dave": 7, "erin": 5}
    frame = grades.frame
    failed = {student: {row.name: row for row in rows.itertuples() if not row.passed}
              for student, rows in frame.groupby("student")}
    assert failed["alice"] == {}
    # bob: unreachable, every packet lost, so no reply with TTL 63 either
    assert set(failed["bob"]) == {LOSS, TTL}
    assert failed["bob"][LOSS].observed == 100.0
    # carol: slow, a 2 Mbit/s bottleneck
    assert set(failed["carol"]) == {RATE}
    assert 1.5 < failed["carol"][RATE].observed < 2.5
    # dave: his routes application failed, so nothing recorded h1's routes
    assert set(failed["dave"]) == {"routes reaches FINISHED", ROUTE}
    assert "ended FAILED" in failed["dave"]["routes reaches FINISHED"].message
    assert not failed["dave"][ROUTE].evaluated
    assert "no application on 1 (h1) recorded its routes" in failed["dave"][ROUTE].message
    # erin: the traces of her ping and her iperf3 client are missing
    assert set(failed["erin"]) == {LOSS, TTL, RATE}
    assert all(not r.evaluated and "has no trace 'stdout'" in r.message for r in failed["erin"].values())


def test_the_submissions_are_small_and_plain():
    files = [p for p in SUBMISSIONS.rglob("*") if p.is_file()]
    assert files
    for student in ("alice", "bob", "carol", "dave", "erin"):
        [run] = list((SUBMISSIONS / student / "lab-line").iterdir())
        size = sum(p.stat().st_size for p in run.rglob("*") if p.is_file())
        assert size < 64 * 1024, (student, size)
    assert not [p for p in files if p.suffix in (".pcap", ".pcapng")]
    assert all(os.access(p, os.R_OK) for p in files)
