"""Every built-in check, passing and failing, on real runs; checks that cannot be evaluated."""

from __future__ import annotations

import json
import shutil

import pytest

from nepi_lab import load_run
from nepi_lab.lab import (
    CheckFieldError,
    CheckResult,
    Context,
    Custom,
    Dependencies,
    ExitStatus,
    Lab,
    NotFailed,
    Order,
    Reachable,
    RttBound,
    State,
    Throughput,
    TraceContains,
    TraceLines,
    TraceMatches,
    check_kinds,
)

from .conftest import copy_run
from .custom_checks import hello_said_world, six_resources

# (check that passes on the good run, check that fails on it, what the failure observes)
PAIRS = {
    "state": (State("bad", "FAILED"), State("bad"), "FAILED"),
    "state of a type": (State(type="linux::Ping"), State(type="linux::Application"), "2/3"),
    "not_failed": (NotFailed("hello"), NotFailed("bad"), "FAILED"),
    "not_failed of all": (NotFailed(type="linux::Iperf3Client"), NotFailed(), "6 (bad)"),
    "exit_status": (ExitStatus("hello"), ExitStatus("bad"), 3),
    "exit_status given": (ExitStatus("bad", code=3), ExitStatus("hello", code=3), 0),
    "reachable": (Reachable("ping", max_loss=0), None, None),
    "rtt": (RttBound("ping", max_ms=1000), RttBound("ping", max_ms=0), None),
    "rtt percentile": (RttBound("ping", max_ms=1000, statistic="p95"),
                       RttBound("ping", max_ms=0, statistic="min"), None),
    "throughput": (Throughput("client", min_mbps=1), Throughput("client", min_mbps=1e12), None),
    "throughput sent": (Throughput("client", min_mbps=1, direction="sent"),
                        Throughput("client", min_mbps=1e12, direction="sent"), None),
    "trace_contains": (TraceContains("hello", text="world"), TraceContains("hello", text="planet"), 0),
    "trace_contains stderr": (TraceContains("bad", text="oops", trace="stderr"),
                              TraceContains("hello", text="oops", trace="stderr"), 0),
    "trace_matches": (TraceMatches("hello", pattern=r"^h.l+o$"),
                      TraceMatches("hello", pattern=r"^w", min_count=2), 1),
    "trace_lines": (TraceLines("hello", min_lines=2), TraceLines("hello", min_lines=3), 2),
    "order": (Order("server", "client", "STARTED", "STARTED"),
              Order("client", "server", "STARTED", "STARTED"), None),
    "order finished": (Order("server", "client", "STARTED", "FINISHED"),
                       Order("bad", "hello", "FINISHED", "STARTED"), None),
    "custom": (Custom(six_resources), Custom(lambda run: (len(run.guids) == 1, len(run.guids))), 7),
    "custom bool": (Custom(hello_said_world), Custom(lambda run: False), False),
}


@pytest.mark.parametrize("case", sorted(PAIRS))
def test_a_builtin_check_passes_and_fails_on_a_real_run(runs, case):
    passing, failing, observed = PAIRS[case]
    result = passing.evaluate(runs.good)
    assert isinstance(result, CheckResult)
    assert result.passed and result.evaluated, result
    assert result.points == result.max_points == 1
    assert result.name == passing.describe() and result.expected == passing.expected()
    if failing is None:
        return
    result = failing.evaluate(runs.good)
    assert not result.passed and result.evaluated, result
    assert result.points == 0 and result.max_points == 1
    if observed is not None:
        assert result.observed == observed, result
    assert result.message


def test_reachable_fails_on_a_real_loss(runs, tmp_path):
    """A ping whose replies were lost: its real output with the replies cut, as a broken link gives."""
    run = copy_run(runs.good, tmp_path / "run")
    guid = [g for g in load_run(run).guids if load_run(run).resource_type(g) == "linux::Ping"][0]
    trace = next((tmp_path / "run").glob(f"{guid}-*/stdout"))
    lines = trace.read_text().splitlines()
    kept = [line for line in lines if "icmp_seq=2" not in line and "icmp_seq=3" not in line]
    text = "\n".join(kept).replace("3 received", "1 received")
    trace.write_text(text.replace(" 0% packet loss", " 66.6667% packet loss") + "\n")
    result = Reachable("ping", max_loss=50).evaluate(run)
    assert not result.passed and result.evaluated and result.observed == pytest.approx(66.6667)
    assert "1 of 3 packets answered" in result.message
    assert Reachable("ping", max_loss=70).evaluate(run).passed


def test_the_values_observed_are_the_analysis_figures(runs):
    run = load_run(runs.good)
    frame = run.resources_frame()
    ping = int(frame.loc[frame["name"] == "ping", "guid"].iloc[0])
    client = int(frame.loc[frame["name"] == "client", "guid"].iloc[0])
    rtt = run.trace_frame(ping, "stdout")["rtt_ms"]
    assert RttBound("ping", max_ms=1000).evaluate(run).observed == round(float(rtt.mean()), 3)
    assert RttBound("ping", max_ms=1000, statistic="max").evaluate(run).observed == round(float(rtt.max()), 3)
    summary = run.trace_frame(client, "stdout").attrs["summary"]
    assert Throughput("client", min_mbps=1).evaluate(run).observed == \
        round(summary["received_bits_per_second"] / 1e6, 3)
    assert Reachable("ping").evaluate(run).observed == 0.0


def test_resources_are_named_by_name_or_guid(runs):
    run = load_run(runs.good)
    frame = run.resources_frame()
    hello = int(frame.loc[frame["name"] == "hello", "guid"].iloc[0])
    assert ExitStatus(hello).evaluate(run).passed
    assert TraceLines(hello, min_lines=2).evaluate(runs.good).passed


UNEVALUABLE = [
    (State("nosuch"),
     "no resource named 'nosuch' (its names: bad, client, hello, host, ping, server, table)"),
    (State(99), "the run has no resource 99"),
    (State(type="ns3::Node"), "no resource of type 'ns3::Node'"),
    (TraceLines("hello", trace="pcap"), "has no trace 'pcap' to read: its type declares no such trace"),
    (TraceLines("bad", trace="deploy_stdout"), "cannot be evaluated"),
    (Throughput("ping", min_mbps=1), "has no end report"),
    (Custom(lambda run: 1 / 0), "ZeroDivisionError: division by zero"),
    (Custom(lambda run: "yes"), "returned 'yes': a custom check returns a bool or (bool, observed)"),
]


@pytest.mark.parametrize("check, reason", UNEVALUABLE, ids=[c.describe() for c, _ in UNEVALUABLE])
def test_a_check_that_cannot_be_evaluated_fails_with_the_reason(runs, check, reason):
    result = check.evaluate(runs.good)
    assert not result.passed and not result.evaluated and result.points == 0
    assert result.message.startswith("cannot be evaluated: ")
    assert reason in result.message


def test_a_run_that_failed_before_the_resource_ran(runs):
    lab = Lab([Reachable("ping"), RttBound("ping", max_ms=10), State("ping"), NotFailed("first"),
               Order("first", "ping")])
    frame = lab.check(runs.broken)
    assert not frame["passed"].any()
    by_name = frame.set_index("name")
    reach = by_name.loc["ping loses at most 0 % of packets"]
    assert not reach["evaluated"] and "no trace 'stdout'" in reach["message"] \
        and "not collected" in reach["message"]
    state = by_name.loc["ping reaches FINISHED"]
    assert state["evaluated"] and state["observed"] == "FAILED"
    assert "can never hold" in state["message"]  # why, from the run's failure record
    assert "failed (CommandError: command 'exit 1'" in by_name.loc["first does not fail", "message"]
    order = by_name.loc["ping STARTED after first FINISHED"]
    assert order["evaluated"] and order["message"] == "2 (first) never reached FINISHED (it ended FAILED)"


def test_a_damaged_run_directory_fails_every_check_with_the_reason(runs, tmp_path):
    run = copy_run(runs.good, tmp_path / "run")
    (tmp_path / "run" / "experiment.json").write_text('{"version": 1, "resources": [')
    frame = Lab([State("ping"), Custom(six_resources)]).check(run)
    assert list(frame["passed"]) == [False, False] and list(frame["evaluated"]) == [False, False]
    assert all("the run directory cannot be read" in m and "experiment.json" in m for m in frame["message"])
    missing = Lab([State("ping")]).check(str(tmp_path / "nothing-here"))
    assert "cannot be evaluated" in missing["message"][0]


def test_a_removed_trace_is_a_failed_check(runs, tmp_path):
    run = copy_run(runs.good, tmp_path / "run")
    for path in (tmp_path / "run").glob("*-linux.Ping/stdout"):
        path.unlink()
    result = Reachable("ping").evaluate(run)
    assert not result.evaluated and "was not collected into the run directory" in result.message


def test_lab_check_gives_one_row_per_check(runs):
    lab = Lab([State("ping"), ExitStatus("bad"), Reachable("ping")], points=[1, 2, 3])
    frame = lab.check(runs.good)
    assert list(frame.columns) == ["name", "passed", "observed", "expected", "message", "points",
                                   "max_points", "evaluated"]
    assert list(frame["passed"]) == [True, False, True]
    assert list(frame["points"]) == [1, 0, 3] and list(frame["max_points"]) == [1, 2, 3]
    assert frame["observed"].tolist() == ["FINISHED", 3, 0.0]  # kept as they were: object dtype
    assert lab.max_points == 6


def test_lab_points_by_name_number_or_sequence():
    checks = [State("a"), State("b", name="second")]
    assert [c.points for c in Lab(checks, points=5).checks] == [5, 5]
    assert [c.points for c in Lab(checks, points={"second": 3}).checks] == [1, 3]
    with pytest.raises(ValueError, match="points= names no such check: 'third'"):
        Lab(checks, points={"third": 3})
    with pytest.raises(ValueError, match="points= has 1 numbers for 2 checks"):
        Lab(checks, points=[1])
    with pytest.raises(ValueError, match="are both named 'a reaches FINISHED': give one a name="):
        Lab([State("a"), State("a")])
    with pytest.raises(ValueError, match="at least one check"):
        Lab([])


def test_a_live_controller_and_its_run_directory_agree(runs, tmp_path):
    from nepi_lab import ExperimentController

    with ExperimentController(exp_id="lab-live", local_dir=str(tmp_path / "results")) as ec:
        node = ec.register_resource("linux::Node", hostname="localhost", home=str(tmp_path / "home"))
        app = ec.register_resource("linux::Application", connectedTo=node, name="app", command="echo live")
        ec.deploy()
        ec.wait_finished(app, timeout=30)
        lab = Lab([State("app"), ExitStatus("app"), TraceContains("app", text="live"), NotFailed()])
        live = lab.check(ec)
    later = lab.check(ec.run_dir)
    assert live["passed"].all() and later["passed"].all()
    assert live[["name", "passed", "observed"]].equals(later[["name", "passed", "observed"]])


def test_context_reads_a_run_once_for_many_checks(runs):
    ctx = Context(runs.good)
    first = ctx.trace(ctx.guid("ping"), "stdout", "ping")
    assert ctx.trace(ctx.guid("ping"), "stdout", "ping") is first
    assert Lab([Reachable("ping"), RttBound("ping", max_ms=100)]).results(ctx)[0].passed


def test_checks_say_what_they_depend_on():
    assert Reachable("ping").depends_on() == Dependencies(resources=("ping",), traces=(("ping", "stdout"),))
    assert State(type="linux::Ping").depends_on().types == ("linux::Ping",)
    assert NotFailed().depends_on().all_resources
    assert Order("a", "b").depends_on().resources == ("a", "b")
    assert Custom(six_resources).depends_on().all_resources


def test_bad_fields_are_refused_naming_the_field():
    cases = [
        (lambda: State("x", "DONE"), "state", "must be one of NEW, DISCOVERED"),
        (lambda: State(), "resource", "is required"),
        (lambda: State("x", type="linux::Ping"), "type", "a resource or a type, not both"),
        (lambda: Reachable("x", max_loss=120), "max_loss", "between 0 and 100"),
        (lambda: RttBound("x", max_ms=1, statistic="p100"), "statistic", "p1 ... p99"),
        (lambda: Throughput("x", min_mbps=1, direction="up"), "direction", "received or sent"),
        (lambda: TraceMatches("x", pattern="("), "pattern", "not a regular expression"),
        (lambda: ExitStatus("x", code="0"), "code", "must be an integer"),
        (lambda: Custom("no_colon"), "function", "is not 'module:function'"),
        (lambda: State("x", points=-1), "points", ">= 0"),
    ]
    for make, field, text in cases:
        with pytest.raises(CheckFieldError, match=text) as info:
            make()
        assert info.value.field == field


def test_every_builtin_kind_is_registered():
    assert set(check_kinds()) == {"state", "not_failed", "exit_status", "reachable", "rtt", "throughput",
                                  "trace_contains", "trace_matches", "trace_lines", "route", "address",
                                  "order", "custom"}


def test_a_kind_taken_over_by_another_module_is_logged_a_cell_redefining_its_own_is_not(caplog, monkeypatch):
    from nepi_lab.lab import checks

    monkeypatch.setattr(checks, "_KINDS", dict(checks._KINDS))  # the built-in rtt comes back after
    namespace = {"__name__": "teachers_checks"}
    cell = "from nepi_lab.lab.checks import RttBound\nclass MyRtt(RttBound):\n    kind = 'rtt'\n"
    exec(cell, namespace)
    assert check_kinds()["rtt"] is namespace["MyRtt"]
    assert "check kind 'rtt' was nepi_lab.lab.checks.RttBound and is now teachers_checks.MyRtt" in caplog.text
    caplog.clear()
    exec(cell, namespace)  # the same cell run again
    assert check_kinds()["rtt"] is namespace["MyRtt"] and caplog.text == ""


def test_results_are_frozen(runs):
    result = State("ping").evaluate(runs.good)
    with pytest.raises(AttributeError):
        result.passed = False  # type: ignore[misc]
    json.dumps(result.as_dict())  # plain values
    assert shutil  # (imported for copy_run's users)
