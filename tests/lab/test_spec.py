"""Lab spec files: the round trip Lab -> file -> Lab, and errors that name the line."""

from __future__ import annotations

import importlib.util
import json

import pytest

from nepi_lab.lab import (
    AddressPresent,
    Custom,
    ExitStatus,
    Lab,
    LabSpecError,
    NotFailed,
    Order,
    Reachable,
    RoutePresent,
    RttBound,
    State,
    Throughput,
    TraceContains,
    TraceLines,
    TraceMatches,
    parse_spec,
    read_spec,
    spec_text,
)

from .custom_checks import six_resources

HAS_YAML = importlib.util.find_spec("yaml") is not None
needs_yaml = pytest.mark.skipif(not HAS_YAML, reason="PyYAML is not installed")

EVERY_KIND = Lab([
    State("server", "STARTED", points=2),
    State(type="linux::Ping", name="pings finish"),
    NotFailed(),
    NotFailed(type="linux::Application"),
    ExitStatus("bad", code=3),
    Reachable("ping", max_loss=5.5),
    RttBound("ping", max_ms=10, statistic="p95"),
    Throughput("client", min_mbps=100, direction="sent"),
    TraceContains("hello", text="wörld: \"quoted\"", trace="stderr"),
    TraceMatches("hello", pattern=r"^\d+ bytes from .*time=(\d+)"),
    TraceLines("hello", min_lines=0),
    RoutePresent(node="h1", destination="default", gateway="10.0.1.254", device="eth0"),
    RoutePresent(from_app="routes", destination="fd00::/64"),
    AddressPresent(node="h2", address="10.0.2.1/24"),
    Order("server", "client", "STARTED", "STARTED", points=0.5),
    Custom(six_resources),
    Custom("tests.lab.custom_checks:hello_said_world", name="hello said world"),
], title="Lab 1: every kind")


@pytest.mark.parametrize("suffix", [".json", pytest.param(".yaml", marks=needs_yaml),
                                    pytest.param(".yml", marks=needs_yaml), ".spec"])
def test_a_lab_round_trips_through_its_spec_file(tmp_path, suffix):
    path = tmp_path / f"lab{suffix}"
    EVERY_KIND.save(path)
    back = Lab.load(path)
    assert back == EVERY_KIND
    assert back.checks == EVERY_KIND.checks and back.title == EVERY_KIND.title
    assert [c.points for c in back.checks] == [c.points for c in EVERY_KIND.checks]
    path.write_text(path.read_text())  # and again, from what it wrote
    assert read_spec(path) == EVERY_KIND


def test_the_json_spec_is_the_documented_document(tmp_path):
    document = json.loads(spec_text(Lab([Reachable("ping", max_loss=1, points=2), Custom(six_resources)],
                                        title="t")))
    assert document == {"version": 1, "title": "t", "checks": [
        {"kind": "reachable", "resource": "ping", "max_loss": 1, "points": 2},
        {"kind": "custom", "function": "tests.lab.custom_checks:six_resources"},
    ]}


def test_a_function_that_cannot_be_named_is_refused_when_saving(tmp_path):
    lab = Lab([Custom(lambda run: True)])
    with pytest.raises(ValueError, match="cannot be written to a spec file: define it at the top level"):
        lab.save(tmp_path / "lab.json")
    assert not (tmp_path / "lab.json").exists()


def test_a_spec_file_grades_like_the_lab_it_came_from(runs, tmp_path):
    lab = Lab([State("ping"), ExitStatus("bad"), Custom(six_resources)])
    lab.save(tmp_path / "lab.json")
    assert Lab.load(tmp_path / "lab.json").check(runs.good).equals(lab.check(runs.good))


JSON_ERRORS = [
    ('{\n  "version": 1,\n  "checks": [\n    {"kind": "state", "resourse": "x"}\n  ]\n}', 4,
     "unknown key 'resourse' in a state check; the known keys are: kind, resource, state, type, name, "
     "points"),
    ('{\n  "version": 1,\n  "chekcs": []\n}', 3,
     "unknown key 'chekcs' in the top level; the known keys are: version, title, checks"),
    ('{\n  "version": 2,\n  "checks": []\n}', 2, "version 2 is not one this nepi_lab reads (1)"),
    ('{\n  "checks": [{"kind": "state", "resource": "x"}]\n}', 1, "no version: write version: 1 first"),
    ('{"version": 1,\n "checks": [\n  {"kind": "state", "resource": "x"},\n  {"kind": "pingg"}]}', 4,
     "unknown check kind 'pingg'; the kinds are: address, custom, exit_status, not_failed, order"),
    ('{"version": 1,\n "checks": [\n  {"kind": "reachable",\n   "resource": "x",\n   "max_loss": -1}]}', 5,
     "reachable check, max_loss: must be a number between 0 and 100, not -1"),
    ('{"version": 1,\n "checks": [\n  {"kind": "state",\n   "resource": "x",\n   "state": "DONE"}]}', 5,
     "state check, state: must be one of NEW"),
    ('{"version": 1,\n "checks": [\n  {"resource": "x"}]}', 3,
     "a check without a kind; the kinds are: address"),
    ('{"version": 1,\n "checks": []}', 2, "checks is a non-empty list of checks"),
    ('{"version": 1,\n "checks": [\n  "state"]}', 3, "a check is a mapping with a kind, not 'state'"),
    ('{"version": 1,\n "checks": [\n  {"kind": "state", "resource": "x"},\n'
     '  {"kind": "state", "resource": "x"}]}', 4,
     "this check and the one at line 3 are both named 'x reaches FINISHED': give one a name"),
    ('{"version": 1,\n "version": 1}', 2, "the key 'version' appears twice"),
    ('{"version": 1,\n "checks": [\n  {"kind": "state",, }]}', 3, "not valid JSON: Expecting property name"),
    ('{"version": 1}\n{}', 2, "not valid JSON: extra data after the document"),
    ('[1, 2]', 1, "a lab spec is a mapping with version, title and checks (it holds a list)"),
    ('{"version": 1,\n "checks": [\n  {"kind": "custom",\n'
     '   "function": "tests.lab.custom_checks:nothing"}]}', 4,
     "custom check, function: cannot import 'tests.lab.custom_checks:nothing'"),
]


@pytest.mark.parametrize("text, line, message", JSON_ERRORS, ids=[m[:40] for _, _, m in JSON_ERRORS])
def test_json_errors_name_the_line(tmp_path, text, line, message):
    path = tmp_path / "lab.json"
    path.write_text(text)
    with pytest.raises(LabSpecError) as info:
        read_spec(path)
    assert info.value.line == line, str(info.value)
    assert message in str(info.value)
    assert str(info.value).startswith(f"{path}, line {line}: ")


YAML_ERRORS = [
    ("version: 1\nchecks:\n  - kind: state\n    resourse: x\n", 4, "unknown key 'resourse' in a state check"),
    ("version: 1\ntitel: x\nchecks: []\n", 2, "unknown key 'titel' in the top level"),
    ("version: one\nchecks: []\n", 1, "version 'one' is not one this nepi_lab reads"),
    ("version: 1\nchecks:\n  - kind: rtt\n    resource: p\n    max_ms: 10\n    statistic: p100\n", 6,
     "rtt check, statistic: must be mean, median, min, max or p1 ... p99"),
    ("version: 1\nchecks:\n  - kind: state\n    resource: x\n  - kind: nope\n", 5,
     "unknown check kind 'nope'"),
    ("version: 1\nchecks:\n  - kind: state\n    resource: [x\n", 5, "not valid YAML"),
    ("version: 1\nchecks:\n  - kind: state\n    resource: x\n    resource: y\n", 5,
     "the key 'resource' appears twice"),
    ("- 1\n- 2\n", 1, "a lab spec is a mapping"),
]


@needs_yaml
@pytest.mark.parametrize("text, line, message", YAML_ERRORS, ids=[m[:40] for _, _, m in YAML_ERRORS])
def test_yaml_errors_name_the_line(tmp_path, text, line, message):
    path = tmp_path / "lab.yaml"
    path.write_text(text)
    with pytest.raises(LabSpecError) as info:
        read_spec(path)
    assert info.value.line == line, str(info.value)
    assert message in str(info.value)


@needs_yaml
def test_yaml_and_json_of_one_lab_read_alike():
    text = "version: 1\ntitle: t\nchecks:\n  - kind: reachable\n    resource: ping\n    max_loss: 0\n"
    assert parse_spec(text, "lab.yaml") == parse_spec(spec_text(parse_spec(text, "lab.yaml")), "lab.json")
    assert parse_spec(text, "lab.yaml").checks == (Reachable("ping", max_loss=0),)


def test_without_pyyaml_a_yaml_spec_says_what_to_do(tmp_path):
    """PyYAML hidden from a child interpreter: JSON still reads, YAML is refused with advice."""
    import subprocess
    import sys

    (tmp_path / "lab.yaml").write_text("version: 1\nchecks:\n  - kind: state\n    resource: x\n")
    (tmp_path / "lab.json").write_text('{"version": 1, "checks": [{"kind": "state", "resource": "x"}]}')
    code = ("import sys; sys.modules['yaml'] = None\n"
            "from nepi_lab.lab import read_spec, LabSpecError\n"
            f"print(read_spec({str(tmp_path / 'lab.json')!r}).checks)\n"
            f"try:\n    read_spec({str(tmp_path / 'lab.yaml')!r})\n"
            "except LabSpecError as exc:\n    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "State(name=None, points=1, resource='x'" in out.stdout
    assert "reading YAML needs PyYAML: pip install pyyaml" in out.stdout
    assert "or write the spec as JSON" in out.stdout


def test_a_spec_that_is_not_utf8_is_refused(tmp_path):
    (tmp_path / "lab.json").write_bytes(b'{"version": 1, "title": "\xff"}')
    with pytest.raises(LabSpecError, match="not UTF-8"):
        read_spec(tmp_path / "lab.json")
