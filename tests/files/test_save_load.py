"""ec.save() and ExperimentController.load(): round trips, run directories, secrets."""

from __future__ import annotations

import json
import logging
import os

from nepi_lab import ExperimentController, ResourceAction, ResourceState, Types
from nepi_lab.core.files import EXPERIMENT_FORMAT

S = ResourceState
A = ResourceAction

#: Keys of a description that say how one run went, not what the experiment is.
RUN_KEYS = ("run_id", "ecstate", "end", "saved", "failures")


def build(ec: ExperimentController) -> dict[str, int]:
    """An experiment with every attribute type, odd values, guids out of order, names,
    connections, conditions with delays (one on two resources) and an extra trace."""
    host = ec.register_resource("files::Host", address="10.0.0.1", name="the host", password="hunter2")
    a = ec.register_resource("files::Task", guid=7, seconds=0.02, count=-(2**63), fast=True, mode="ç",
                             note='quotes " \' \\ newline\n tab\t unicode é 中 \x1b[0m', name="a")
    b = ec.register_resource("files::Task", count=2**63 - 1, seconds=1e-300, fast=False, mode="a",
                             **{"from": 3, "max-rate": -2.5e10})
    ec.set(b, "guid", "g")  # an attribute register_resource cannot take as a keyword
    c = ec.register_resource("files::Task", guid=3, seconds=0.0, note="")
    for task in (a, b, c):
        ec.register_connection(host, task)
    ec.register_condition(b, A.START, a, S.STARTED, "1.5s")
    ec.register_condition([c], A.START, [a, b], S.FINISHED, 0.1234567891234)
    ec.register_condition(c, A.STOP, host, S.STARTED, "1h")
    ec.register_condition(a, A.DEPLOY, host, S.READY)
    ec.enable_trace(b, "extra")
    ec.enable_trace(c, "log")  # on by default: enabling it changes nothing
    return {"host": host, "a": a, "b": b, "c": c}


def test_every_attribute_type_is_covered():
    from .types_for_files import Task

    kinds = {a.type for a in Task.get_attribute_declarations().values()}
    assert kinds == set(Types)


def test_save_load_save_gives_the_same_bytes(ec, tmp_path):
    guids = build(ec)
    first = ec.save(tmp_path / "exp.json")
    assert first == str(tmp_path / "exp.json")
    loaded = ExperimentController.load(first, local_dir=str(tmp_path / "again"))
    try:
        second = loaded.save(tmp_path / "again.json")
        with open(first, "rb") as f1, open(second, "rb") as f2:
            assert f1.read() == f2.read()
        # it is a new experiment, NEW, with the same guids, values (of the same types) and conditions
        assert loaded.run_id != ec.run_id and loaded.exp_id == "files"
        assert loaded.resources == ec.resources == [1, 7, 8, 3]
        assert {loaded.state(g) for g in loaded.resources} == {S.NEW}
        for guid in ec.resources:
            before, after = ec.get_resource(guid), loaded.get_resource(guid)
            for name, value in before.get_attribute_values().items():
                if name != "password":
                    assert type(after.get(name)) is type(value) and after.get(name) == value, (guid, name)
        assert loaded.get(guids["a"], "count") == -(2**63) and loaded.get(guids["b"], "seconds") == 1e-300
        assert loaded.get_resource(guids["c"]).connections == {guids["host"]}
        conditions = lambda c: sorted(cond for rm in c.resources  # noqa: E731
                                      for group in c.get_resource(rm).conditions.values() for cond in group)
        assert conditions(loaded) == conditions(ec)
        assert 0.1234567891234 in [c.delay for c in conditions(loaded)]  # NEPI lost delays
        assert loaded.trace_enabled(guids["b"], "extra") and not loaded.trace_enabled(guids["a"], "extra")
    finally:
        loaded.shutdown()


def test_the_saved_file_is_the_description_without_the_run(ec, tmp_path):
    build(ec)
    with open(ec.save(tmp_path)) as f:  # a folder: <exp_id>.json in it
        saved = json.load(f)
    assert os.path.exists(tmp_path / "files.json")
    description = ec.description()
    assert saved["format"] == EXPERIMENT_FORMAT and saved["version"] == description["version"] == 1
    assert not set(RUN_KEYS) & set(saved)
    assert saved["types"] == json.loads(json.dumps(description["types"]))
    assert saved["conditions"] == description["conditions"]
    assert [e["guid"] for e in saved["resources"]] == [1, 7, 8, 3]
    origin = saved["types"]["files::Task"]["origin"]
    assert origin == {"module": "tests.files.types_for_files", "distribution": None, "version": None}
    assert saved["types"]["files::Host"]["origin"]["module"] == origin["module"]
    b = saved["resources"][2]
    assert list(b["attributes"]) == sorted(b["attributes"])  # sorted: one file per experiment
    assert b["traces"] == ["extra", "log"]
    assert "traces" not in saved["resources"][3]  # enabling a trace on by default changes nothing


def test_the_default_place_is_the_run_directory_as_in_nepi(ec):
    build(ec)
    path = ec.save()
    assert path == os.path.join(ec.run_dir, "files.json")
    loaded = ExperimentController.load(path)
    try:
        assert loaded.resources == ec.resources
    finally:
        loaded.shutdown()


def test_secrets_are_never_written_in_clear(ec, tmp_path, caplog):
    guids = build(ec)
    ec.set(guids["host"], "token", "s3cret-token")
    path = ec.save(tmp_path / "exp.json")
    with open(path) as f:
        text = f.read()
    assert "hunter2" not in text and "s3cret-token" not in text
    assert json.loads(text)["resources"][0]["secrets"] == ["password", "token"]
    with open(os.path.join(ec.run_dir, "experiment.json")) as f:  # nor in the run directory
        assert "hunter2" not in f.read()
    ec._save_description()
    with open(os.path.join(ec.run_dir, "experiment.json")) as f:
        run = f.read()
    assert "s3cret-token" not in run and '"secrets":["password","token"]' in run

    with caplog.at_level(logging.WARNING, logger="nepi_lab"):
        loaded = ExperimentController.load(path)
    try:
        assert f"resource {guids['host']}: password, token" in caplog.text
        assert "set them before deploy()" in caplog.text
        assert loaded.get(guids["host"], "password") is None
        with open(loaded.save(tmp_path / "again.json")) as f:  # still named: the same file
            assert f.read() == text
        loaded.set(guids["host"], "password", "other")
        with open(loaded.save(tmp_path / "again.json")) as f:
            assert f.read() == text
    finally:
        loaded.shutdown()


def test_a_loaded_experiment_runs(ec, tmp_path):
    guids = build(ec)
    ec.set(guids["c"], "seconds", 0.01)
    path = ec.save(tmp_path / "exp.json")
    with ExperimentController.load(path, exp_id="rerun", local_dir=str(tmp_path / "runs")) as loaded:
        assert loaded.exp_id == "rerun" and loaded.run_dir.startswith(str(tmp_path / "runs" / "rerun"))
        loaded.deploy()
        loaded.wait_finished([guids["a"], guids["b"]], timeout=10)
        assert loaded.state(guids["b"]) == S.FINISHED
        assert loaded.get_start_time(guids["b"]) >= loaded.get_start_time(guids["a"])
        assert loaded.get(guids["host"], "discovered") == f"host-{guids['host']}"
    # the run directory gives the same experiment again: without what the run set itself
    with open(os.path.join(loaded.run_dir, "experiment.json")) as f:
        assert json.load(f)["resources"][0]["attributes"]["discovered"] == "host-1"
    with ExperimentController.load(loaded.run_dir, exp_id="files") as third:
        assert third.get(guids["host"], "discovered") is None
        with open(path) as f1, open(third.save(tmp_path / "third.json")) as f2:
            assert f1.read() == f2.read()
    with open(loaded.save(tmp_path / "after.json")) as f1, open(path) as f2:  # after shutdown too
        assert json.load(f1)["resources"] == json.load(f2)["resources"]


def comparable(description: dict) -> dict:
    """A run's description without what belongs to the run."""
    return {k: v for k, v in description.items() if k not in RUN_KEYS}


def test_a_run_directory_is_loaded_as_a_new_run_of_its_experiment(tmp_path):
    """Real processes: a node on this machine, two applications, a condition with a delay."""
    home = tmp_path / "home"
    home.mkdir()
    with ExperimentController(exp_id="rundir", local_dir=str(tmp_path / "results")) as ec:
        node = ec.register_resource("linux::Node", hostname="localhost", home=str(home), name="here")
        first = ec.register_resource("linux::Application", command="echo one", connectedTo=node)
        second = ec.register_resource("linux::Application", command="echo two >&2", connectedTo=node,
                                      name="second")
        ec.register_condition(second, A.START, first, S.FINISHED, "200ms")
        ec.deploy()
        ec.wait_finished([first, second], timeout=30)
    original = comparable(ec.description())
    for source in (ec.run_dir, os.path.join(ec.run_dir, "experiment.json")):
        with ExperimentController.load(source) as again:
            assert again.exp_id == "rundir" and again.run_dir != ec.run_dir
            assert [again.state(g) for g in again.resources] == [S.NEW] * 3
            again.deploy()
            again.wait_finished([first, second], timeout=30)
            assert again.trace(second, "stderr").strip() == "two"
            started = again.get_start_time(second) - again.get_finish_time(first)
            assert started.total_seconds() >= 0.2
        assert comparable(again.description()) == original
        assert again.description()["ecstate"] == "TERMINATED"
