"""Crafted and damaged run directories (issue 11, items 14 and 15).

Reading a run never leaves its directory: a trace, a resource folder, ``experiment.json``
or ``events.jsonl`` that is a symbolic link, a FIFO or any other non-plain file is refused,
and so are type names that would make a path climb out.  Damage is a
:class:`RunDirectoryError` naming the file and the line (``events.jsonl``) or the place
(``experiment.json``: ``resources[3].type``); with ``strict=False`` damaged event lines
are left out and counted.  Never a raw ``RecursionError``, ``AttributeError``,
``OutOfBoundsDatetime`` ...
"""

from __future__ import annotations

import json
import os
import shutil
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nepi_lab import (
    ExperimentController,
    ExperimentFileError,
    InvalidInputError,
    RunDirectoryError,
    RunFormatError,
    TraceNotFoundError,
    events_frame,
    load_run,
    load_runs,
    resources_frame,
    trace_frame,
)

SECRET = "the content of a file outside the run directory"


@pytest.fixture
def run_dir(writer_run, tmp_path):
    """A copy of a real run directory (two analysis_test::Writer), to damage: (path, ok, bad)."""
    _, source, (ok, bad) = writer_run
    path = tmp_path / "copy" / "run"
    shutil.copytree(source, path)
    return str(path), ok, bad


@pytest.fixture
def outside(tmp_path):
    """A folder beside the run directory holding a secret file named like the traces."""
    folder = tmp_path / "copy" / "secret"
    folder.mkdir(parents=True)
    (folder / "out").write_text(SECRET)
    (folder / "passwd").write_text(SECRET)
    return folder


def folder_of(run_dir: str, guid: int) -> str:
    return os.path.join(run_dir, f"{guid}-analysis_test.Writer")


def edit_description(run_dir: str, change) -> None:
    path = os.path.join(run_dir, "experiment.json")
    with open(path) as f:
        description = json.load(f)
    change(description)
    with open(path, "w") as f:
        json.dump(description, f)


def all_frames(run_dir: str, guid: int, strict: bool = True):
    run = load_run(run_dir, strict=strict)
    return events_frame(run), resources_frame(run), trace_frame(run, guid, "out")


def refused(call) -> RunDirectoryError:
    with pytest.raises(RunDirectoryError) as info:
        call()
    err = info.value
    assert isinstance(err, InvalidInputError)
    assert SECRET not in str(err)
    return err


# == item 14: never read outside the run directory ====================================


def test_control_the_copy_reads(run_dir):
    path, ok, _ = run_dir
    events, resources, out = all_frames(path, ok)
    assert out["text"].tolist() == ["0,0", "1,1", "2,4", "3,9"]
    assert len(resources) == 2 and len(events) > 10


@pytest.mark.parametrize("where", ["outside", "inside"])
def test_a_trace_that_is_a_symlink_is_not_followed(run_dir, outside, where):
    """Before: trace_frame returned the file the link points to (/etc/passwd in the issue)."""
    path, ok, _ = run_dir
    trace = os.path.join(folder_of(path, ok), "out")
    os.remove(trace)
    os.symlink(outside / "out" if where == "outside" else os.path.join(path, "experiment.json"), trace)
    run = load_run(path)
    for call in (lambda: trace_frame(run, ok, "out"), lambda: run.trace(ok, "out"),
                 lambda: trace_frame(path, ok, "out", parser="lines")):
        err = refused(call)
        assert err.file == f"{ok}-analysis_test.Writer/out" and "symbolic link" in str(err)


def test_a_resource_folder_that_is_a_symlink_is_not_followed(run_dir, outside):
    path, ok, _ = run_dir
    shutil.rmtree(folder_of(path, ok))
    os.symlink(outside, folder_of(path, ok))
    run = load_run(path)
    err = refused(lambda: trace_frame(run, ok, "out"))
    assert err.file == f"{ok}-analysis_test.Writer" and "symbolic link" in str(err)
    # nor listed: what the error offers to read comes from the run directory only
    with pytest.raises(TraceNotFoundError) as info:
        trace_frame(run, ok, "passwd")
    assert "passwd" not in info.value.available and info.value.available == []


def type_name_climbing_to(target_folder: str, run_dir: str) -> str:
    """A type name whose resource folder, ``<run>/99-<name>``, is ``target_folder``."""
    climb = "/".join([".."] * (run_dir.count("/") + 1))
    return "x/" + climb + target_folder


@pytest.mark.parametrize("target", ["secret", "/etc"])
def test_a_type_name_that_climbs_out_is_refused_when_loading(run_dir, outside, target):
    """Before: ``trace_frame(load_run(p), 99, "passwd")`` returned /etc/passwd."""
    path, _, _ = run_dir
    folder = str(outside) if target == "secret" else "/etc"
    if not os.path.isfile(os.path.join(folder, "passwd")):
        pytest.skip(f"no {folder}/passwd here")
    rtype = type_name_climbing_to(folder, path)
    os.mkdir(os.path.join(path, "99-x"))  # so that the path resolves, as the kernel walks it

    def craft(description):
        description["resources"].append({"guid": 99, "type": rtype})
        description["types"][rtype] = {"traces": {"passwd": {"help": "", "enabled": True}}}

    edit_description(path, craft)
    err = refused(lambda: trace_frame(load_run(path), 99, "passwd"))
    assert err.file == "experiment.json" and "resources[2].type" in str(err) and "'/'" in str(err)
    refused(lambda: load_runs(os.path.dirname(path)))


@pytest.mark.parametrize("name", ["experiment.json", "events.jsonl"])
def test_the_run_files_themselves_are_not_read_through_a_symlink(run_dir, tmp_path, name):
    path, _, _ = run_dir
    elsewhere = tmp_path / name
    shutil.move(os.path.join(path, name), elsewhere)
    os.symlink(elsewhere, os.path.join(path, name))
    err = refused(lambda: load_run(path))
    assert err.file == name and "symbolic link" in str(err)


@pytest.mark.parametrize("name", ["experiment.json", "events.jsonl", "trace"])
def test_a_fifo_is_refused_without_blocking(run_dir, name):
    """Before: a FIFO as ``events.jsonl`` or ``experiment.json`` blocked load_run forever."""
    path, ok, _ = run_dir
    target = os.path.join(folder_of(path, ok), "out") if name == "trace" else os.path.join(path, name)
    os.remove(target)
    os.mkfifo(target)
    outcome: list[BaseException | None] = []

    def read() -> None:
        try:
            trace_frame(load_run(path), ok, "out")
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            outcome.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(10)
    if reader.is_alive():  # the old code: unblock it, then fail
        with open(target, "w"):
            pass
        reader.join(10)
        pytest.fail(f"reading a run whose {name} is a FIFO blocked")
    [error] = outcome
    assert isinstance(error, (RunDirectoryError, TraceNotFoundError)), error
    if name != "trace":
        assert isinstance(error, RunDirectoryError) and error.file == name


# == item 15: damaged run directories ================================================


def append_line(run_dir: str, line: bytes) -> int:
    """Append ``line`` to events.jsonl; returns its line number."""
    path = os.path.join(run_dir, "events.jsonl")
    with open(path, "rb") as f:
        lines = f.read().count(b"\n")
    with open(path, "ab") as f:
        f.write(line)
    return lines + 1


EVENT = {"time": 1.7e9, "guid": 1, "type": "analysis_test::Writer", "from": "RELEASED", "to": "RELEASED",
         "detail": None}

#: A last line whose write stopped inside the two bytes of "é".
_WHOLE = json.dumps({**EVENT, "detail": "h\u00e9llo"}, ensure_ascii=False).encode()
CUT = _WHOLE[: _WHOLE.index(b"\xc3") + 1]

#: (id, the bytes of a damaged last line of events.jsonl, words of the reason)
DAMAGED_LINES = [
    ("cut inside a UTF-8 character", CUT, "not UTF-8 text"),
    ("invalid UTF-8 then a newline", b'{"time": 1.7e9, "detail": "\xff\xfe"}\n', "not UTF-8 text"),
    ("nested 100,000 deep", b"[" * 100_000 + b"\n", "nested too deeply"),
    ("an object nested 100,000 deep", b'{"a":' * 100_000 + b"\n", "nested too deeply"),
    ("a number of 5,000 digits",
     json.dumps({**EVENT, "guid": 0}).replace('"guid": 0', '"guid": ' + "9" * 5000).encode() + b"\n",
     "digits"),
    ("a time of 1e300", json.dumps({**EVENT, "time": 1e300}).encode() + b"\n", '"time" must be seconds'),
    ("a time of -1e300", json.dumps({**EVENT, "time": -1e300}).encode() + b"\n", '"time" must be seconds'),
    ("a time of Infinity", json.dumps({**EVENT, "time": float("inf")}).encode() + b"\n", '"time" must be'),
    ("a time of NaN", json.dumps({**EVENT, "time": float("nan")}).encode() + b"\n", '"time" must be'),
    ("a time that is a string", json.dumps({**EVENT, "time": "noon"}).encode() + b"\n", '"time" must be'),
    ("a guid of 2**70", json.dumps({**EVENT, "guid": 2**70}).encode() + b"\n", '"guid" must be an integer'),
    ("a negative guid", json.dumps({**EVENT, "guid": -1}).encode() + b"\n", '"guid" must be an integer'),
    ("a guid of 1.5", json.dumps({**EVENT, "guid": 1.5}).encode() + b"\n", '"guid" must be an integer'),
    ("no guid", json.dumps({k: v for k, v in EVENT.items() if k != "guid"}).encode() + b"\n",
     '"guid" must be an integer'),
    ("two objects on one line", (json.dumps(EVENT) + ", " + json.dumps(EVENT)).encode() + b"\n",
     "not valid JSON"),
]


@pytest.mark.parametrize(("line", "words"), [c[1:] for c in DAMAGED_LINES], ids=[c[0] for c in DAMAGED_LINES])
def test_a_damaged_event_line_is_named_or_left_out_and_counted(run_dir, line, words):
    path, ok, _ = run_dir
    intact = len(events_frame(load_run(path)))
    number = append_line(path, line)
    err = refused(lambda: load_run(path))
    assert (err.file, err.line) == ("events.jsonl", number) and words in err.reason, str(err)
    assert f"events.jsonl, line {number}: " in str(err)
    events, resources, out = all_frames(path, ok, strict=False)
    assert len(events) == intact  # every other line
    assert events.attrs["malformed"] == 1
    assert events.attrs["malformed_examples"][0].startswith(f"line {number}: ")
    assert len(resources) == 2 and len(out) == 4


def test_a_damaged_line_amid_many_is_left_out_alone(run_dir):
    """One line without a guid makes the column float: only that line goes, not the others."""
    path, ok, _ = run_dir
    intact = len(events_frame(load_run(path)))
    numbers = [append_line(path, json.dumps({**EVENT, "detail": str(i)}).encode() + b"\n") for i in range(50)]
    bad = append_line(path, json.dumps({k: v for k, v in EVENT.items() if k != "guid"}).encode() + b"\n")
    for i in range(50):
        numbers.append(append_line(path, json.dumps({**EVENT, "detail": f"after {i}"}).encode() + b"\n"))
    cut = append_line(path, b'{"time": 1.7e9, "gu\xc3')
    events = events_frame(load_run(path, strict=False))
    assert len(events) == intact + 100
    assert events.attrs["malformed"] == 2
    assert [e.split(":")[0] for e in events.attrs["malformed_examples"]] == [f"line {bad}", f"line {cut}"]
    err = refused(lambda: load_run(path))
    assert err.line == cut  # not UTF-8: found before the JSON is read


#: (id, change to the description, words of the message): each was a raw AttributeError,
#: TypeError, ValueError or RecursionError, or was silently dropped.
BAD_DESCRIPTIONS = [
    ("a type declaration that is a list", lambda d: d["types"].update({"analysis_test::Writer": []}),
     'types["analysis_test::Writer"] must be an object'),
    ("attributes that are a list", lambda d: d["types"]["analysis_test::Writer"].update(attributes=[]),
     'types["analysis_test::Writer"].attributes must be an object'),
    ("an attribute declared as a number",
     lambda d: d["types"]["analysis_test::Writer"]["attributes"].update(lines=5),
     'types["analysis_test::Writer"].attributes["lines"] must be an object'),
    ("an attribute type that is a number",
     lambda d: d["types"]["analysis_test::Writer"]["attributes"]["lines"].update(type=5),
     'attributes["lines"].type must be a value type name'),
    ("bases that are a number", lambda d: d["types"]["analysis_test::Writer"].update(bases=5),
     'types["analysis_test::Writer"].bases must be a list of type names'),
    ("traces that are a list", lambda d: d["types"]["analysis_test::Writer"].update(traces=["out"]),
     'types["analysis_test::Writer"].traces must be an object'),
    ("types that are a list", lambda d: d.update(types=[]), "types must be an object"),
    ("resource attributes that are a list", lambda d: d["resources"][0].update(attributes=[1, 2]),
     "resources[0].attributes must be an object"),
    ("resource attributes that are a string", lambda d: d["resources"][1].update(attributes="x"),
     "resources[1].attributes must be an object"),
    ("connections that are a number", lambda d: d["resources"][0].update(connections=5),
     "resources[0].connections must be a list of guids"),
    ("enabled traces that are a number", lambda d: d["resources"][0].update(traces=5),
     "resources[0].traces must be a list of trace names"),
    ("a guid that is a bool", lambda d: d["resources"][0].update(guid=True), "resources[0].guid must be"),
    ("a guid of 2**70", lambda d: d["resources"][0].update(guid=2**70), "resources[0].guid must be"),
    ("a guid twice", lambda d: d["resources"][1].update(guid=d["resources"][0]["guid"]),
     "resources[1].guid must be unique"),
    ("an empty type name", lambda d: d["resources"][0].update(type=""),
     "resources[0].type must be a type name"),
    ("a type name with a NUL", lambda d: d["resources"][0].update(type="a\x00b"),
     "resources[0].type must be a type name"),
    ("resources that are an object", lambda d: d.update(resources={}), "resources must be a list"),
    ("a resource that is a list", lambda d: d["resources"].append([99]), "resources[2] must be an object"),
    ("failures that are an object (was: silently dropped)", lambda d: d.update(failures={"guid": 2}),
     "failures must be a list of objects"),
    ("a failure that is a number", lambda d: d.update(failures=[5]), "failures must be a list of objects"),
    ("a failure without a guid", lambda d: d["failures"][0].pop("guid"), "failures[0].guid must be"),
    ("a failure whose returncode is a string", lambda d: d["failures"][0].update(returncode="three"),
     "failures[0].returncode must be an integer"),
    ("a failure whose step is a list", lambda d: d["failures"][0].update(step=["run"]),
     "failures[0].step must be a string"),
    ("conditions that are a string", lambda d: d.update(conditions="none"), "conditions must be a list"),
    ("a run id that is a number", lambda d: d.update(run_id=5), "run_id must be a string"),
    # the rules of ExperimentController.load, now checked here too (before: read without a word)
    ("a connection to no resource", lambda d: d["resources"][0].update(connections=[99]),
     "resources[0].connections must name resources of the file, not 99"),
    ("a condition on no resource",
     lambda d: d.update(conditions=[{"guid": 99, "action": "START", "after": [d["resources"][0]["guid"]],
                                     "state": "STARTED", "delay": 0}]),
     "conditions[0].guid must be the guid of a resource of the file, not 99"),
    ("a condition after nothing",
     lambda d: d.update(conditions=[{"guid": d["resources"][0]["guid"], "action": "START", "after": [],
                                     "state": "STARTED", "delay": 0}]),
     "conditions[0].after must be a non-empty list of guids"),
    ("a negative condition delay",
     lambda d: d.update(conditions=[{"guid": d["resources"][0]["guid"], "action": "START",
                                     "after": [d["resources"][1]["guid"]], "state": "STARTED", "delay": -1}]),
     "conditions[0].delay must be a number of seconds >= 0, not -1"),
    ("secrets that are a string", lambda d: d["resources"][0].update(secrets="password"),
     'resources[0].secrets must be a list of attribute names, not "password"'),
    ("an origin that is a string", lambda d: d["types"]["analysis_test::Writer"].update(origin="pip"),
     'types["analysis_test::Writer"].origin must be an object of strings'),
    ("bases that are null (was: a TypeError choosing a trace's parser)",
     lambda d: d["types"]["analysis_test::Writer"].update(bases=None),
     'types["analysis_test::Writer"].bases must be a list of type names, not null'),
]


@pytest.mark.parametrize(("change", "words"), [c[1:] for c in BAD_DESCRIPTIONS],
                         ids=[c[0] for c in BAD_DESCRIPTIONS])
@pytest.mark.parametrize("strict", [True, False], ids=["strict", "lenient"])
def test_a_malformed_description_is_refused_naming_the_place(run_dir, change, words, strict):
    """``experiment.json`` is written whole (atomically): damage in it is refused, also with
    ``strict=False``, naming the file and where in it."""
    path, ok, _ = run_dir
    edit_description(path, change)
    err = refused(lambda: all_frames(path, ok, strict))
    assert err.file == "experiment.json" and words in str(err), str(err)


@pytest.mark.parametrize(("change", "words"), [c[1:] for c in BAD_DESCRIPTIONS],
                         ids=[c[0] for c in BAD_DESCRIPTIONS])
def test_load_refuses_the_same_descriptions_in_the_same_words(run_dir, tmp_path, monkeypatch, change, words):
    """``ExperimentController.load`` checks ``experiment.json`` with the same checker: a run
    directory that cannot be analysed cannot be loaded either (nor leaves a run behind)."""
    path, _, _ = run_dir
    edit_description(path, change)
    monkeypatch.setenv("NEPI_LAB_RESULTS", str(tmp_path / "load-results"))
    with pytest.raises(ExperimentFileError) as info:
        ExperimentController.load(path)
    assert type(info.value) is ExperimentFileError and words in str(info.value), str(info.value)
    assert os.path.join(path, "experiment.json") in str(info.value)
    assert not (tmp_path / "load-results").exists()


def test_a_deeply_nested_description(run_dir):
    path, ok, _ = run_dir
    with open(os.path.join(path, "experiment.json")) as f:
        text = f.read()
    with open(os.path.join(path, "experiment.json"), "w") as f:
        f.write(text[:-1] + ', "extra": ' + "[" * 100_000 + "]" * 100_000 + "}")
    err = refused(lambda: load_run(path))
    assert err.file == "experiment.json" and "nested too deeply" in str(err)


def test_a_version_that_is_a_float_is_unknown(run_dir):
    path, _, _ = run_dir
    edit_description(path, lambda d: d.update(version=1.0))
    with pytest.raises(RunFormatError):
        load_run(path)


# == any events.jsonl: read, or refused naming a line ==================================

_FIELD_VALUES = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6) \
    | st.sampled_from([2**63, 2**70, -1, 1e300, "NEW", "READY", "RELEASED", "NOT A STATE", [], {}, [1]])


@st.composite
def event_lines(draw: st.DrawFn) -> bytes:
    """A line of events.jsonl: an event with fields replaced, left out or added, or junk;
    maybe cut (inside a character too)."""
    kind = draw(st.sampled_from(["event", "changed", "junk", "json"]))
    if kind == "junk":
        line = draw(st.binary(max_size=40)).replace(b"\n", b" ")
    elif kind == "json":
        line = json.dumps(draw(st.recursive(_FIELD_VALUES, lambda v: st.lists(v, max_size=3), max_leaves=6)),
                          ensure_ascii=False).encode()
    else:
        event = {**EVENT, "detail": draw(st.sampled_from([None, "h\u00e9llo", "\u2028", "{}"]))}
        if kind == "changed":
            for key in draw(st.lists(st.sampled_from([*EVENT, "extra"]), max_size=3)):
                if draw(st.booleans()):
                    event[key] = draw(_FIELD_VALUES)
                else:
                    event.pop(key, None)
        line = json.dumps(event, ensure_ascii=False).encode()
    if draw(st.integers(0, 4)) == 0:
        line = line[: draw(st.integers(0, len(line)))]
    return line


@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", 80)), deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(lines=st.lists(event_lines(), min_size=1, max_size=8))
def test_any_events_file_is_read_or_refused_by_line(tmp_path, lines):
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    (run / "experiment.json").write_text(json.dumps({
        "format": "nepi_lab.run", "version": 1, "exp_id": "x", "run_id": "1",
        "resources": [{"guid": 1, "type": "analysis_test::Writer"}]}))
    (run / "events.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    try:
        frame = events_frame(load_run(run))
        assert len(frame) == len(lines) and frame.attrs["malformed"] == 0
    except RunDirectoryError as err:
        assert err.file == "events.jsonl" and 1 <= err.line <= len(lines), str(err)
    frame = events_frame(load_run(run, strict=False))
    assert len(frame) + frame.attrs["malformed"] == len(lines)
    resources_frame(load_run(run, strict=False))
