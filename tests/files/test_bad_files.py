"""Files load() refuses: each with its typed error and a message that says what to do,
and nothing left behind (no controller thread, no run directory)."""

from __future__ import annotations

import json
import os

import pytest

from nepi_lab import (
    AttributeValueError,
    ConditionCycleError,
    ExperimentAttributeError,
    ExperimentController,
    ExperimentFileError,
    ExperimentTypeError,
    ExperimentVersionError,
    InvalidConnectionError,
    InvalidInputError,
    ResourceAction,
    ResourceState,
    RunDirectoryError,
    UnsafeNameError,
)
from nepi_lab.core import run_directory


@pytest.fixture
def saved(ec, tmp_path):
    """A saved experiment (a host, two tasks, a condition), as a dict to damage."""
    host = ec.register_resource("files::Host")
    a = ec.register_resource("files::Task", connectedTo=host, count=2)
    b = ec.register_resource("files::Task", connectedTo=host)
    ec.register_condition(b, ResourceAction.START, a, ResourceState.FINISHED, "1s")
    with open(ec.save(tmp_path / "good.json")) as f:
        return json.load(f)


@pytest.fixture
def results(tmp_path, monkeypatch):
    """Where a load would make its run directory: it must stay empty."""
    folder = tmp_path / "load-results"
    monkeypatch.setenv("NEPI_LAB_RESULTS", str(folder))
    yield folder
    assert not folder.exists() or os.listdir(folder) == [], "a refused load left a run directory"


def write(tmp_path, data, name="bad.json") -> str:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def refused(path, error=ExperimentFileError) -> ExperimentFileError:
    with pytest.raises(error) as info:
        ExperimentController.load(path)
    assert isinstance(info.value, InvalidInputError)
    return info.value


def test_the_fixture_file_loads(saved, tmp_path):
    """Control for every test below: the undamaged file is accepted."""
    with ExperimentController.load(write(tmp_path, saved), local_dir=str(tmp_path / "ok")) as ec:
        assert ec.resources == [1, 2, 3]


def test_unknown_type_from_a_package_says_what_to_install(saved, tmp_path, results):
    saved["resources"][1]["type"] = "lab::Capture"
    saved["types"]["lab::Capture"] = {"origin": {"module": "labtools.resources", "distribution": "labtools",
                                                 "version": "2.1"}}
    error = refused(write(tmp_path, saved), ExperimentTypeError)
    assert error.rtype == "lab::Capture" and error.guid == 2 and error.module == "labtools.resources"
    assert str(error) == (
        f"cannot load experiment {tmp_path / 'bad.json'}: resource 2 has type 'lab::Capture', which is not "
        f"registered here; it comes from module 'labtools.resources' of labtools 2.1: install it "
        f"(pip install labtools) and import labtools.resources")


def test_unknown_type_from_a_notebook_or_module(saved, tmp_path, results):
    saved["resources"][0]["type"] = "files::Hots"
    saved["types"]["files::Hots"] = {"origin": {"module": "__main__", "distribution": None, "version": None}}
    error = refused(write(tmp_path, saved), ExperimentTypeError)
    assert "resource 1 has type 'files::Hots', which is not registered here" in str(error)
    assert "defined in a script or a notebook: run the code that defines it, then load" in str(error)
    assert "; or did you mean 'files::Host'" in str(error) and error.suggestions[0] == "files::Host"

    saved["types"]["files::Hots"]["origin"]["module"] = "mylab.types"
    error = refused(write(tmp_path, saved), ExperimentTypeError)
    assert "it comes from module 'mylab.types': make it importable and import mylab.types" in str(error)

    del saved["types"]["files::Hots"]  # a hand-written file that does not say
    error = refused(write(tmp_path, saved), ExperimentTypeError)
    assert "which is not registered here; or did you mean 'files::Host'" in str(error)


def test_unknown_attribute_names_the_versions(saved, tmp_path, results):
    saved["resources"][1]["attributes"]["burst"] = 4
    error = refused(write(tmp_path, saved), ExperimentAttributeError)
    assert (error.guid, error.rtype, error.attribute) == (2, "files::Task", "burst")
    assert "count" in error.allowed
    assert str(error).startswith(f"cannot load experiment {tmp_path / 'bad.json'}: resource 2 (files::Task) "
                                 f"sets attribute 'burst', which files::Task does not declare here; "
                                 f"its attributes are: count, critical, fast")
    assert "pip install" not in str(error)  # no versions recorded: nothing to suggest

    node = {"guid": 9, "type": "linux::Node", "attributes": {"hostname": "localhost", "jumpHost": "gw"}}
    saved["resources"][1]["attributes"].pop("burst")
    saved["resources"].append(node)
    saved["types"]["linux::Node"] = {"origin": {"module": "nepi_lab.resources.linux.node",
                                                "distribution": "nepi_lab", "version": "9.0"}}
    error = refused(write(tmp_path, saved), ExperimentAttributeError)
    assert str(error).endswith("(the file was written with nepi_lab 9.0, this is nepi_lab 0.1.0: install "
                               "the same version, e.g. pip install 'nepi_lab==9.0')")


def test_a_newer_format_version_says_upgrade(saved, tmp_path, results):
    saved["version"] = 2
    error = refused(write(tmp_path, saved), ExperimentVersionError)
    assert (error.version, error.supported) == (2, [1])
    assert str(error) == (f"cannot load experiment {tmp_path / 'bad.json'}: it is format version 2; this "
                          f"nepi_lab reads version 1 (the file was written by a newer nepi_lab: upgrade with "
                          f"pip install -U nepi_lab)")
    saved["version"] = "1"
    error = refused(write(tmp_path, saved), ExperimentVersionError)
    assert str(error).endswith("it is format version '1'; this nepi_lab reads version 1")


def test_damaged_json(saved, tmp_path, results):
    text = json.dumps(saved, indent=1)
    error = refused(write(tmp_path, text[: len(text) // 2]))
    assert type(error) is ExperimentFileError
    assert "not valid JSON: " in str(error) and "(line " in str(error)
    assert str(refused(write(tmp_path, ""))).endswith("not valid JSON: Expecting value (line 1, column 1)")
    (tmp_path / "binary.json").write_bytes(b'{"format": "\xff"}')
    assert str(refused(str(tmp_path / "binary.json"))).endswith("not UTF-8 text (byte 12)")
    assert str(refused(write(tmp_path, "[" * 100_000))).endswith("not an experiment: nested too deeply")


@pytest.mark.parametrize(("content", "said"), [
    ({"format": "nepi_lab.hosts", "version": 1}, 'its "format" is "nepi_lab.hosts"'),
    ([1, 2], 'it has no "format"'),
    ({"resources": []}, 'it has no "format"'),
])
def test_wrong_format(tmp_path, results, content, said):
    error = refused(write(tmp_path, content))
    assert str(error) == (f"cannot load experiment {tmp_path / 'bad.json'}: not a nepi_lab experiment: "
                          f'{said}; expected "nepi_lab.experiment" (ec.save()) or "nepi_lab.run" '
                          f"(a run directory)")


def test_paths_that_are_no_experiment(tmp_path, results):
    missing = tmp_path / "nowhere.json"
    assert str(refused(str(missing))) == (f"cannot load experiment {missing}: cannot read it: "
                                          f"No such file or directory")
    folder = str(refused(str(tmp_path)))
    assert folder.endswith("a folder without experiment.json: give a run directory "
                           "(<results>/<exp_id>/<run_id>) or a file written by ec.save()")
    assert str(refused(42)) == "cannot load experiment 42: expected the path of a file or a run directory"


#: (damage, words of the message): values of the wrong kind, named by place.
WRONG_KINDS = [
    (lambda d: d["resources"][0].update(guid="1"), 'resources[0].guid must be an integer in [0, 2**63 - 1], '
                                                   'not "1"'),
    (lambda d: d["resources"][1].update(guid=1), "resources[1].guid must be unique: another resource has it"),
    (lambda d: d["resources"][1].update(connections=[1, 99]), "resources[1].connections must name resources "
                                                              "of the file, not 99"),
    (lambda d: d["resources"][1].update(traces="log"), 'resources[1].traces must be a list of trace names, '
                                                       'not "log"'),
    (lambda d: d["conditions"][0].update(delay=-1), "conditions[0].delay must be a number of seconds >= 0, "
                                                    "not -1"),
    (lambda d: d["conditions"][0].update(after=[]), "conditions[0].after must be a non-empty list of guids"),
    (lambda d: d["conditions"][0].update(guid=[3]), "conditions[0].guid must be the guid of a resource of "
                                                    "the file, not [3]"),
    (lambda d: d.update(resources={}), 'resources must be a list of {"guid": int, "type": str, ...}, not {}'),
]


@pytest.mark.parametrize(("damage", "said"), WRONG_KINDS)
def test_values_of_the_wrong_kind_are_named_by_place(saved, tmp_path, results, damage, said):
    damage(saved)
    error = refused(write(tmp_path, saved))
    assert type(error) is ExperimentFileError and said in str(error)


def test_what_the_controller_refuses_is_refused_with_its_typed_error(saved, tmp_path, results):
    """Values, connections and conditions are checked by the controller itself while it
    builds: the half-built controller and its run directory are removed again."""
    bad_value = json.loads(json.dumps(saved))
    bad_value["resources"][2]["attributes"] = {"count": "three"}
    error = refused(write(tmp_path, bad_value))
    assert isinstance(error.error, AttributeValueError) and error.error.attribute == "count"
    assert str(error).endswith("bad value 'three' for attribute 'count' of resource 3 (files::Task): "
                               "expected an integer")

    bad_connection = json.loads(json.dumps(saved))
    bad_connection["resources"][1]["connections"] = [1, 3]  # a task to a task
    error = refused(write(tmp_path, bad_connection))
    assert isinstance(error.error, InvalidConnectionError)
    assert "cannot connect resource 2 to 3: a files::Task connects only to files::Host" in str(error)

    cycle = json.loads(json.dumps(saved))
    cycle["conditions"].append({"guid": 2, "action": "START", "after": [3], "state": "STARTED", "delay": 0})
    error = refused(write(tmp_path, cycle))
    assert isinstance(error.error, ConditionCycleError)
    assert "conditions form a cycle" in str(error)

    unsafe = json.loads(json.dumps(saved))
    unsafe["exp_id"] = "../elsewhere"
    error = refused(write(tmp_path, unsafe))
    assert isinstance(error.error, UnsafeNameError) and "exp_id: unsafe exp_id '../elsewhere'" in str(error)


def as_run_directory(tmp_path, description) -> str:
    """A folder holding ``description`` as a run's ``experiment.json`` (what load and show take)."""
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    (run / "experiment.json").write_text(json.dumps({**description, "format": "nepi_lab.run"}))
    return str(run)


@pytest.mark.parametrize(("damage", "said"), WRONG_KINDS)
def test_the_run_reader_refuses_what_load_refuses_with_the_same_words(saved, tmp_path, damage, said):
    """One checker: ``nepi-lab show`` and ``load_run`` refuse each value load() refuses
    (before, a connection to no resource, say, was read without a word)."""
    damage(saved)
    run = as_run_directory(tmp_path, saved)
    with pytest.raises(RunDirectoryError) as info:
        run_directory.read_description(run)
    assert info.value.file == "experiment.json" and said in str(info.value)


@pytest.mark.parametrize(("damage", "said"), [
    (lambda d: d["resources"][0].update(type="files::Host/../../x"),
     "resources[0].type must be a type name (not empty, without '/' or NUL), not \"files::Host/../../x\""),
    (lambda d: d.update(failures=[{"guid": "2", "step": "start"}]),
     'failures[0].guid must be an integer in [0, 2**63 - 1], not "2"'),
    (lambda d: d["types"]["files::Host"].update(bases=None),
     'types["files::Host"].bases must be a list of type names, not null'),
])
def test_load_refuses_what_the_run_reader_refuses(saved, tmp_path, results, damage, said):
    """A run directory that ``nepi-lab show`` refuses is refused by load() too, with the same
    words (before, the type name with '/' was "not registered here" and the others loaded)."""
    damage(saved)
    run = as_run_directory(tmp_path, saved)
    error = refused(run)
    assert type(error) is ExperimentFileError
    assert str(error) == f"cannot load experiment {os.path.join(run, 'experiment.json')}: {said}"
    with pytest.raises(RunDirectoryError) as info:
        run_directory.read_description(run)
    assert str(info.value) == f"cannot read run directory: {run}/experiment.json: {said}"
    error = refused(write(tmp_path, saved))  # a saved file is checked alike
    assert type(error) is ExperimentFileError and str(error).endswith(said)


def test_one_json_reading_step_for_both_readers(saved, tmp_path, results):
    """Damaged JSON is refused by the same step: load() says line and column in its
    reason, the run reader in its ``line`` (a well-formed number of 5,000 digits too)."""
    text = json.dumps(saved)
    run = as_run_directory(tmp_path, saved)
    (tmp_path / "run" / "experiment.json").write_text('{"format": "nepi_lab.run",\n "version": 1,,}')
    said = "not valid JSON: Expecting property name enclosed in double quotes"
    assert str(refused(run)).endswith(f"{said} (line 2, column 15)")
    with pytest.raises(RunDirectoryError) as info:
        run_directory.read_description(run)
    assert info.value.line == 2 and str(info.value).endswith(f"experiment.json, line 2: {said} (column 15)")

    (tmp_path / "run" / "experiment.json").write_text(text[:-1] + ', "extra": ' + "9" * 5000 + "}")
    assert "not an experiment: Exceeds the limit (4300 digits)" in str(refused(run))
    with pytest.raises(RunDirectoryError, match=r"not a run description: Exceeds the limit \(4300 digits\)"):
        run_directory.read_description(run)
