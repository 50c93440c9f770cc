"""ExperimentRunner with real linux::Application processes on localhost: NEPI's meaning,
its faults fixed (a default rule that converges, a bound for max_runs=-1, the template
left alone, failed runs recorded, every run shut down)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest

from nepi_lab import (
    ExperimentController,
    ExperimentRunner,
    InvalidInputError,
    ResourceState,
    TimeFormatError,
    UnknownGuidError,
    load_runs,
)
from nepi_lab.core.files import saved_description
from nepi_lab.runner import repeat
from nepi_lab.runner.repeat import default_convergence, mean_confidence_interval, t_quantile_95


@pytest.fixture
def template(tmp_path):
    """A controller describing the experiment; the test shuts it down (the runner must not)."""
    ec = ExperimentController(exp_id="repeat", local_dir=str(tmp_path / "results"))
    yield ec
    ec.shutdown()


def echo_app(ec, tmp_path, command="echo 42"):
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    node = ec.register_resource("linux::Node", hostname="localhost", home=str(home))
    return ec.register_resource("linux::Application", connectedTo=node, command=command)


def stdout_metric(guid):
    return lambda ec, run: float(ec.trace(guid, "stdout"))


# -- NEPI's meaning ---------------------------------------------------------------------------


def test_each_run_is_a_fresh_controller_with_a_metric_from_its_trace(template, tmp_path):
    app = echo_app(template, tmp_path)
    before = json.dumps(saved_description(template), sort_keys=True)
    runner = ExperimentRunner()
    assert runner.run(template, min_runs=3, max_runs=10, wait_guids=[app],
                      compute_metric_callback=stdout_metric(app)) == 3  # constant: converged at 3
    assert runner.converged and runner.metrics == [42.0, 42.0, 42.0]
    assert [r.run for r in runner.runs] == [1, 2, 3]
    run_ids = [r.run_id for r in runner.runs]
    assert len(set(run_ids)) == 3 and template.run_id not in run_ids
    assert sorted(os.listdir(template.exp_dir)) == sorted([template.run_id, *run_ids])  # nothing else left
    loaded = load_runs(template.exp_dir)  # the runs, not the template's registrations
    assert loaded.run_ids == sorted(run_ids) and loaded.left_out == [template.run_dir]
    for record in runner.runs:
        assert record.failure is None and record.ecstate == "TERMINATED" and record.duration > 0
        assert os.path.dirname(record.run_dir) == template.exp_dir  # same exp_id, same results root
        assert os.path.basename(record.run_dir) == record.run_id
        with open(os.path.join(record.run_dir, "experiment.json")) as f:
            assert json.load(f)["end"] == "shutdown"
    # the template: never deployed, never shut down, unchanged
    assert template.state(app) == ResourceState.NEW
    assert template.ecstate.name == "RUNNING"
    assert json.dumps(saved_description(template), sort_keys=True) == before
    template.set(app, "command", "echo still usable")


def test_the_callbacks_get_the_run_controller_its_number_and_the_metrics_so_far(template, tmp_path):
    app = echo_app(template, tmp_path, "echo 7")
    seen = []

    def converged(ec, run, metrics):
        seen.append((ec.run_id, ec.state(app), run, list(metrics)))
        return run >= 2

    runner = ExperimentRunner()
    assert runner.run(template, max_runs=5, wait_guids=[app], compute_metric_callback=stdout_metric(app),
                      evaluate_convergence_callback=converged) == 2
    assert [(run_id, run, metrics) for run_id, _, run, metrics in seen] == [
        (runner.runs[0].run_id, 1, [7.0]), (runner.runs[1].run_id, 2, [7.0, 7.0])]
    assert all(state == ResourceState.RELEASED for _, state, _, _ in seen)  # released, traces collected


def test_min_runs_before_convergence_is_asked(template, tmp_path):
    app = echo_app(template, tmp_path)
    asked = []
    runner = ExperimentRunner()
    n = runner.run(template, min_runs=3, max_runs=5, wait_guids=[app],
                   evaluate_convergence_callback=lambda ec, run, metrics: asked.append(run) or True)
    assert n == 3 and asked == [3] and runner.metrics == []  # no metric callback: no metrics


def test_max_runs_alone_makes_exactly_that_many_runs(template, tmp_path):
    app = echo_app(template, tmp_path)
    runner = ExperimentRunner()
    assert runner.run(template, max_runs=2, wait_guids=[app]) == 2
    assert not runner.converged


def test_wait_time_without_wait_guids(template, tmp_path):
    app = echo_app(template, tmp_path, "echo 5")
    runner = ExperimentRunner()
    metric = stdout_metric(app)
    assert runner.run(template, max_runs=1, wait_time="300ms", compute_metric_callback=metric) == 1
    assert runner.metrics == [5.0]


# -- the default rule ---------------------------------------------------------------------------


def test_default_rule_converges_on_a_nearly_constant_metric(template, tmp_path):
    app = echo_app(template, tmp_path)
    runner = ExperimentRunner()
    n = runner.run(template, max_runs=10, wait_guids=[app],
                   compute_metric_callback=lambda ec, run: float(ec.trace(app, "stdout")) + run / 1000)
    assert n == 2 and runner.converged  # one metric says nothing about the spread; two close ones do


def test_default_rule_never_converging_stops_at_max_runs(template, tmp_path):
    app = echo_app(template, tmp_path, "echo 1")
    runner = ExperimentRunner()
    def alternating(ec, run):  # 1, 3, 1, 3: the interval never narrows to 5 % of the mean
        return float(ec.trace(app, "stdout")) * (1 if run % 2 else 3)

    n = runner.run(template, min_runs=2, max_runs=4, wait_guids=[app], compute_metric_callback=alternating)
    assert n == 4 and not runner.converged and runner.metrics == [1.0, 3.0, 1.0, 3.0]


def test_max_runs_minus_one_is_bounded(template, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(repeat, "DEFAULT_MAX_RUNS", 3)
    app = echo_app(template, tmp_path, "echo 1")
    runner = ExperimentRunner()
    n = runner.run(template, wait_guids=[app],
                   compute_metric_callback=lambda ec, run: float(run % 2 * 10 + 1))
    assert n == 3 and not runner.converged
    assert "no convergence after 3 runs" in caplog.text


def test_the_rule_itself():
    assert t_quantile_95(1) == 12.7062 and t_quantile_95(30) == 2.0423
    # beyond the table: the Cornish-Fisher expansion (reference values of t 0.975)
    for df, exact in ((31, 2.0395), (40, 2.0211), (120, 1.9799), (10**6, 1.95996)):
        assert t_quantile_95(df) == pytest.approx(exact, abs=2e-4)
    mean, half = mean_confidence_interval([9.0, 10.0, 11.0])
    assert mean == 10.0 and abs(half - 4.3027 * 1.0 / 3**0.5) < 1e-9
    assert default_convergence([0.0, 0.0]) and not default_convergence([0.0, 0.1])
    assert not default_convergence([5.0])
    assert default_convergence([100.0, 104.0, 96.0], relative_half_width=0.2)
    assert not default_convergence([100.0, 104.0, 96.0])
    with pytest.raises(InvalidInputError):
        t_quantile_95(0)


# -- failures ----------------------------------------------------------------------------------


def test_a_failed_run_is_recorded_and_the_runner_goes_on(template, tmp_path):
    app = echo_app(template, tmp_path, "echo 9; exit 3")
    metric_calls = []
    runner = ExperimentRunner()
    n = runner.run(template, max_runs=2, wait_guids=[app],
                   compute_metric_callback=lambda ec, run: metric_calls.append(run) or 1.0)
    assert n == 2 and metric_calls == [] and runner.metrics == []
    for record in runner.runs:
        assert record.failure is not None and record.metric is None
        assert record.ecstate == "FAILED" and "exit" in " ".join(record.failures).lower()
    frame = runner.frame()
    assert list(frame["run"]) == [1, 2] and frame["failure"].notna().all()


def test_a_wait_that_times_out_is_a_failed_run(template, tmp_path):
    app = echo_app(template, tmp_path, "sleep 30")
    runner = ExperimentRunner()
    assert runner.run(template, max_runs=1, wait_guids=[app], timeout=0.5) == 1
    assert runner.runs[0].failure.startswith("WaitTimeoutError")  # its process stopped: no_child_left


def test_a_callback_error_propagates_after_the_run_is_shut_down(template, tmp_path):
    app = echo_app(template, tmp_path)

    def broken(ec, run):
        raise ZeroDivisionError("bad metric")

    runner = ExperimentRunner()
    with pytest.raises(ZeroDivisionError):
        runner.run(template, max_runs=3, wait_guids=[app], compute_metric_callback=broken)
    assert len(runner.runs) == 1 and "ZeroDivisionError" in runner.runs[0].failure
    assert runner.runs[0].ecstate == "TERMINATED"


def test_a_metric_that_is_not_a_number_is_refused(template, tmp_path):
    app = echo_app(template, tmp_path)
    runner = ExperimentRunner()
    with pytest.raises(InvalidInputError, match="finite number"):
        runner.run(template, max_runs=3, wait_guids=[app], compute_metric_callback=lambda ec, run: "42")
    assert len(runner.runs) == 1


def test_ctrl_c_stops_the_runner_and_releases_the_current_run(template, tmp_path):
    app = echo_app(template, tmp_path, "sleep 30")
    runner = ExperimentRunner()
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))  # a real Ctrl-C
    started = time.monotonic()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            runner.run(template, max_runs=3, wait_guids=[app], timeout=20)
    finally:
        timer.cancel()
        timer.join()
    assert time.monotonic() - started < 10  # the wait stopped at once, not at its timeout
    assert len(runner.runs) == 1 and runner.runs[0].failure == "interrupted (Ctrl-C)"
    with open(os.path.join(runner.runs[0].run_dir, "experiment.json")) as f:
        assert json.load(f)["end"] == "interrupted"
    # the sleep is gone (no_child_left) and the run's loop thread too (no_thread_leak)


# -- bad arguments ------------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "error", "words"), [
    ({}, InvalidInputError, "nothing can stop the runs"),
    ({"max_runs": 0}, InvalidInputError, "max_runs"),
    ({"max_runs": 2, "min_runs": 3}, InvalidInputError, "max_runs"),
    ({"max_runs": 2, "min_runs": 0}, InvalidInputError, "min_runs"),
    ({"max_runs": "2"}, InvalidInputError, "max_runs must be an integer"),
    ({"max_runs": True}, InvalidInputError, "max_runs must be an integer"),
    ({"max_runs": 2, "wait_time": "soon"}, TimeFormatError, "soon"),
    ({"max_runs": 2, "wait_time": -1}, TimeFormatError, "-1"),
    ({"max_runs": 2, "wait_guids": [99]}, UnknownGuidError, "99"),
    ({"max_runs": 2, "wait_guids": 1}, InvalidInputError, "list of guids"),
    ({"max_runs": 2, "compute_metric_callback": 3}, InvalidInputError, "callable"),
    ({"max_runs": 2, "evaluate_convergence_callback": "yes"}, InvalidInputError, "callable"),
    ({"max_runs": 2, "timeout": 0}, InvalidInputError, "timeout"),
])
def test_bad_arguments_are_refused_before_any_run(template, tmp_path, kwargs, error, words):
    echo_app(template, tmp_path)
    runner = ExperimentRunner()
    with pytest.raises(error, match=words):
        runner.run(template, **kwargs)
    assert runner.runs == [] and os.listdir(template.exp_dir) == [template.run_id]


def test_bad_template_and_threshold_are_refused():
    with pytest.raises(InvalidInputError, match="ExperimentController"):
        ExperimentRunner().run("experiment.json", max_runs=1)
    with pytest.raises(InvalidInputError, match="relative_half_width"):
        ExperimentRunner(relative_half_width=0)
