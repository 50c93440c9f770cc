"""The event log and the run description on a disk that fills up (issue 11, item 2)."""

from __future__ import annotations

import json
import logging
import os

import pytest

from nepi_lab import ExperimentController, ResourceState
from nepi_lab.analysis import events_frame

from ..faults import fill, small_disk

pytestmark = pytest.mark.faults

S = ResourceState


def read_events(run_dir: str) -> list[dict]:
    with open(os.path.join(run_dir, "events.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f]  # a cut line would raise here


def test_the_event_log_survives_a_full_disk(tmp_path, caplog):
    # 2,100 events of ~120 bytes, and the description (written beside its old copy)
    with small_disk(tmp_path / "disk", "320k") as disk:
        ec = ExperimentController(exp_id="full", local_dir=str(disk))
        filler = fill(disk, leave=8192)  # room for ~80 events, then the disk is full
        caplog.set_level(logging.WARNING, logger="nepi_lab")
        guids = [ec.register_resource("test::Instant") for _ in range(300)]
        ec.deploy()
        ec.wait_finished(timeout=10)
        ec.events.flush()
        assert ec.events.write_error is not None  # the disk refused some
        full = [r for r in caplog.records if "cannot be written" in r.getMessage()]
        assert len(full) == 1  # said once, not once per flush
        os.unlink(filler)  # room again: the rest is written, from where it stopped
        ec.shutdown()  # never raises
        assert ec.events.write_error is None
        events = read_events(ec.run_dir)
        assert len(events) == len(ec.events)  # no event twice, none missing, no cut line
        assert [(e["guid"], e["to"]) for e in events] == [(e.guid, e.new.name) for e in ec.events]
        assert len(events_frame(ec.run_dir)) == len(ec.events)  # the run loads (strict), whole
        assert {ec.state(g) for g in guids} == {S.RELEASED}
        assert not os.path.exists(os.path.join(ec.run_dir, "experiment.json.tmp"))


def test_shutdown_on_a_disk_that_stays_full_does_not_raise(tmp_path):
    with small_disk(tmp_path / "disk", "256k") as disk:
        ec = ExperimentController(exp_id="stays-full", local_dir=str(disk))
        fill(disk)
        for _ in range(200):
            ec.register_resource("test::Instant")
        ec.deploy()
        ec.wait_finished(timeout=10)
        ec.shutdown()  # neither OSError nor a half-written experiment.json
        assert ec.events._fd is None  # its file is closed
        assert not os.path.exists(os.path.join(ec.run_dir, "experiment.json.tmp"))
        with open(os.path.join(ec.run_dir, "experiment.json")) as f:
            json.load(f)  # the last complete description is intact
        events = read_events(ec.run_dir)  # whole lines only
        assert [(e["guid"], e["to"]) for e in events] == [
            (e.guid, e.new.name) for e in list(ec.events)[: len(events)]]


def test_a_controller_that_cannot_write_its_run_directory_leaves_nothing(tmp_path):
    import threading

    import pytest

    from nepi_lab import ResultsWriteError

    with small_disk(tmp_path / "disk", "64k") as disk:
        (disk / "full").mkdir()
        fill(disk)
        threads = threading.active_count()
        with pytest.raises(ResultsWriteError, match="No space left on device"):
            ExperimentController(exp_id="full", local_dir=str(disk))
        assert threading.active_count() == threads  # no loop thread was left running
        assert os.listdir(disk / "full") == []  # no half-made run directory
