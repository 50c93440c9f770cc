"""ExperimentBuilder: a form from the declared attributes, one controller call per button."""

from __future__ import annotations

import ipywidgets as widgets
import pytest

from nepi_lab import ExperimentController, ResourceState
from nepi_lab.notebook import ExperimentBuilder

from .helpers import wait_until

S = ResourceState



@pytest.fixture
def builder(ec):
    b = ExperimentBuilder(ec)
    yield b
    b.close()


def choose(builder, rtype, **values):
    builder.type_choice.value = rtype
    for name, value in values.items():
        builder._fields[name].widget.value = value


def test_one_widget_per_attribute_type_with_help_as_tooltip(builder):
    choose(builder, "nbtest::Task")
    fields = {name: field.widget for name, field in builder._fields.items()}
    assert isinstance(fields["seconds"], widgets.FloatText)
    assert isinstance(fields["count"], widgets.IntText)
    assert isinstance(fields["fail"], widgets.Checkbox)
    assert isinstance(fields["mode"], widgets.Dropdown) and fields["mode"].options == ("fast", "slow")
    assert isinstance(fields["note"], widgets.Text)
    assert isinstance(fields["password"], widgets.Password)
    assert "measured" not in fields  # NoWrite: set by the resource itself
    assert fields["seconds"].tooltip == "how long it runs"
    assert fields["seconds"].value == 0.05 and fields["count"].value == 1  # the defaults
    assert "nepi-attr-count" in fields["count"]._dom_classes
    assert "Sleeps, then finishes" in builder.type_help.value


def test_invalid_values_are_shown_inline_and_nothing_is_registered(builder, ec):
    choose(builder, "nbtest::Task", count=500)
    assert "must lie in [0, 100]" in builder._fields["count"].error.value  # as it is typed
    builder.add_button.click()
    assert ec.resources == []
    assert "must lie in [0, 100]" in builder.error.value
    builder._fields["count"].widget.value = 5
    assert builder._fields["count"].error.value == ""
    builder.add_button.click()
    assert ec.resources == [1] and ec.get(1, "count") == 5 and builder.error.value == ""


def test_a_refusal_by_the_resource_type_lands_beside_its_field(builder, ec):
    choose(builder, "linux::Application", command="echo hi", env="NOT A PAIR")
    builder.add_button.click()
    assert ec.resources == []
    assert "is not NAME=value" in builder._fields["env"].error.value
    assert "is not NAME=value" in builder.error.value


def test_only_changed_values_are_passed(builder, ec):
    choose(builder, "nbtest::Task", note="hello")
    assert builder.attribute_values() == {"note": "hello"}
    builder.add_button.click()
    assert ec.get_resource(1)._values == {"note": "hello"}
    assert builder._fields["note"].widget.value == ""  # a fresh form after adding


def test_build_run_and_stop_with_buttons(builder, ec):
    choose(builder, "nbtest::Host")
    builder.add_button.click()
    choose(builder, "nbtest::Task", seconds=0.05)
    builder.add_button.click()
    choose(builder, "nbtest::Task", seconds=30.0)
    builder.add_button.click()
    assert ec.resources == [1, 2, 3]
    # the pickers offer every resource, newest first by default
    assert builder.connect_a.value == 3 and builder.connect_b.value == 2
    builder.connect_a.value, builder.connect_b.value = 2, 1
    builder.connect_button.click()
    assert ec.get_resource(1).connections == {2}
    builder.condition_guid.value, builder.condition_after.value = 3, 2
    builder.condition_state.value, builder.condition_delay.value = "FINISHED", "50ms"
    builder.condition_button.click()
    [condition] = ec.get_resource(3).conditions[1]  # START
    assert condition.after == (2,) and condition.state == S.FINISHED and condition.delay == 0.05
    builder.condition_delay.value = "soon"
    builder.condition_button.click()
    assert "cannot read time 'soon'" in builder.error.value.replace("&#x27;", "'")
    builder.trace_guid.value = 2
    assert builder.trace_name.value == "log"  # the first trace is preselected
    builder.trace_name.value = "extra"
    builder.trace_button.click()
    assert ec.trace_enabled(2, "extra")
    assert ("extra (on)", "extra") in builder.trace_name.options

    builder.deploy_button.click()
    ec.wait_started(3, timeout=10)
    assert ec.state(2) == S.FINISHED
    assert wait_until(lambda: builder.graph.states.get(2) == "FINISHED")
    assert wait_until(lambda: 'data-guid="2" data-state="FINISHED"' in builder.table.value)
    builder.stop_button.click()
    assert wait_until(lambda: ec.state(3) == S.STOPPED)
    assert wait_until(lambda: "stopped [1, 3]" in builder.status.value), builder.error.value
    builder.release_button.click()
    assert wait_until(lambda: all(ec.state(g) == S.RELEASED for g in ec.resources))
    assert wait_until(lambda: "released everything" in builder.status.value)


def test_stop_with_nothing_running_says_so(builder):
    builder.stop_button.click()
    assert "nothing is running" in builder.error.value


def test_show_code_rebuilds_the_same_experiment(builder, ec, tmp_path, monkeypatch):
    choose(builder, "nbtest::Host")
    builder.add_button.click()
    choose(builder, "nbtest::Task", count=3, mode="slow", password="hunter2")
    builder.add_button.click()
    builder.connect_button.click()
    builder.condition_guid.value, builder.condition_after.value = 2, 1
    builder.condition_delay.value = "1.5s"
    builder.condition_button.click()
    builder.trace_guid.value, builder.trace_name.value = 2, "extra"
    builder.trace_button.click()
    code = builder.code()
    assert "task2 = ec.register_resource('nbtest::Task', count=3, mode='slow')  # also set: password" in code
    assert "ec.register_connection(host1, task2)" in code
    assert "ec.register_condition(task2, ResourceAction.START, host1, ResourceState.STARTED, '1.5s')" in code
    assert "ec.enable_trace(task2, 'extra')" in code
    assert "hunter2" not in code
    builder.show_code()  # prints it (into the Output widget in a notebook)

    monkeypatch.setenv("NEPI_LAB_RESULTS", str(tmp_path / "again"))
    namespace: dict = {}
    exec(code.replace("ec.deploy()", "ec.deploy()  # run").replace("timeout=60", "timeout=10"), namespace)
    again: ExperimentController = namespace["ec"]
    g1, g2 = ec.graph(), again.graph()
    assert [g1.nodes[n]["type"] for n in g1] == [g2.nodes[n]["type"] for n in g2]
    assert sorted((u, v, d["kind"], d.get("label")) for u, v, d in g1.edges(data=True)) == sorted(
        (u, v, d["kind"], d.get("label")) for u, v, d in g2.edges(data=True))
    assert again.get(2, "count") == 3 and again.trace_enabled(2, "extra")
    assert again.get_finish_time(2) is not None  # and it ran


def test_errors_of_the_builder_itself_go_to_its_log(builder, monkeypatch):
    def broken():
        raise RuntimeError("a bug in a handler")

    monkeypatch.setattr(builder, "_model_changed", broken)
    builder.type_choice.value = "nbtest::Host"
    builder.add_button.click()  # the bug does not escape the click
