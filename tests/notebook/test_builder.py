"""ExperimentBuilder: a form from the declared attributes, one controller call per button."""

from __future__ import annotations

import asyncio
import html
import re
import shutil
import socket

import ipywidgets as widgets
import pytest

from nepi_lab import ExperimentController, ResourceManager, ResourceState
from nepi_lab.notebook import ExperimentBuilder

from .helpers import wait_until

S = ResourceState


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    fields = builder.fields
    # numbers are text fields: they can be blank, and keep letters so the form can say what is wrong
    assert type(fields["seconds"]) is widgets.Text and type(fields["count"]) is widgets.Text
    assert isinstance(fields["fail"], widgets.Checkbox)
    assert isinstance(fields["mode"], widgets.Dropdown) and fields["mode"].options == ("fast", "slow")
    assert type(fields["note"]) is widgets.Text
    assert isinstance(fields["password"], widgets.Password)
    assert "measured" not in fields  # NoWrite: set by the resource itself
    assert fields["seconds"].tooltip == "how long it runs"
    assert fields["seconds"].value == "0.05" and fields["count"].value == "1"  # the defaults
    assert "an integer in [0, 100]" in fields["count"].placeholder
    assert "nepi-attr-count" in fields["count"]._dom_classes
    assert "Sleeps, then finishes" in builder.type_help.value


def test_invalid_values_are_shown_inline_and_nothing_is_registered(builder, ec):
    choose(builder, "nbtest::Task", count="500")
    assert "must lie in [0, 100]" in builder._fields["count"].error.value  # as it is typed
    builder.add_button.click()
    assert ec.resources == []
    assert "must lie in [0, 100]" in builder.error.value
    assert "must lie in [0, 100]" in builder.add_error.value  # beside the button that was clicked
    builder._fields["count"].widget.value = "5"
    assert builder._fields["count"].error.value == ""
    builder.add_button.click()
    assert ec.resources == [1] and ec.get(1, "count") == 5 and builder.error.value == ""
    assert builder.add_error.value == ""


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
    choose(builder, "nbtest::Task", seconds="0.05")
    builder.add_button.click()
    choose(builder, "nbtest::Task", seconds="30")
    builder.add_button.click()
    assert ec.resources == [1, 2, 3]
    # the pickers offer every resource, newest first by default
    assert builder.connect_a.value == 3 and builder.connect_b.value == 2  # neither type declares: any pair
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
    choose(builder, "nbtest::Task", count="3", mode="slow", password="hunter2")
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


# == the status line follows the run ================================================


class SlowHost(ResourceManager):
    """A host whose deploy takes a while, so that "deploying" lasts long enough to be seen."""

    _rtype = "nbtest::SlowHost"

    async def do_provision(self) -> None:
        await asyncio.sleep(0.6)


def phase_of(builder):
    match = re.search(r'data-phase="(\w+)"', builder.status.value)
    return match.group(1) if match else None


def test_the_status_follows_the_run_through_its_phases(builder, ec):
    assert builder.phase == "building" and phase_of(builder) == "building"
    choose(builder, "nbtest::SlowHost")
    builder.add_button.click()
    choose(builder, "nbtest::Task", seconds="0.8")
    builder.add_button.click()
    assert builder.phase == "building" and "2 NEW" in builder.status.value
    builder.deploy_button.click()
    seen = [builder.phase]
    for phase in ("running", "finished"):
        assert wait_until(lambda phase=phase: builder.phase == phase, timeout=10), builder.status.value
        seen.append(phase)
    assert seen == ["deploying", "running", "finished"]
    assert phase_of(builder) == "finished" and "1 STARTED, 1 FINISHED" in builder.status.value
    builder.release_button.click()
    assert wait_until(lambda: builder.phase == "released", timeout=10), builder.status.value
    assert phase_of(builder) == "released"
    assert wait_until(lambda: "released everything" in builder.status.value)
    # the outcomes stay: the node was stopped by the release, the task had finished
    assert "1 STOPPED, 1 FINISHED" in builder.status.value and builder.error.value == ""


def test_the_status_follows_a_run_started_by_code(builder, ec):
    """Events drive it, not the builder's own buttons."""
    host = ec.register_resource("nbtest::Host")
    ec.register_resource("nbtest::Task", seconds=0.01, connectedTo=host)
    assert wait_until(lambda: [g for _, g in builder.condition_guid.options] == [1, 2])  # noticed
    ec.deploy()
    ec.wait_finished(timeout=10)
    assert wait_until(lambda: builder.phase == "finished"), builder.status.value


def test_a_failed_deploy_shows_which_resource_failed_and_why(builder, ec, tmp_path):
    """An application connected to no node fails the experiment: FAILED, not a green "deploying"."""
    choose(builder, "linux::Node", home=str(tmp_path / "home"))
    builder.add_button.click()
    choose(builder, "linux::Application", command="echo hi")
    builder.add_button.click()
    builder.deploy_button.click()
    assert wait_until(lambda: builder.phase == "failed", timeout=10), builder.status.value
    assert ec.wait_released(timeout=10) is None
    why = "resource 2 (linux::Application) failed in discover"
    assert wait_until(lambda: why in builder.status.value), builder.status.value
    assert phase_of(builder) == "failed" and ">FAILED</span>" in builder.status.value
    assert "is not connected to a linux::Node" in builder.status.value
    # beside Deploy, too, and it stays there
    assert why in builder.run_error.value and "is not connected to a linux::Node" in builder.run_error.value
    assert wait_until(lambda: "1 FAILED" in builder.status.value)
    builder.code_button.click()
    assert why in builder.run_error.value


def test_an_application_that_exits_1_fails_the_run_with_its_status_and_stderr(builder, ec, tmp_path):
    choose(builder, "linux::Node", home=str(tmp_path / "home"))
    builder.add_button.click()
    choose(builder, "linux::Application", command="echo 'no such file' >&2; exit 1")
    builder.add_button.click()
    builder.connect_button.click()
    builder.deploy_button.click()
    assert wait_until(lambda: builder.phase == "failed", timeout=15), builder.status.value
    for text in ("resource 2 (linux::Application) failed in run", "exited with status 1", "no such file"):
        assert wait_until(lambda text=text: text in builder.status.value), builder.status.value
        assert text in builder.run_error.value


def test_a_refused_deploy_is_shown_beside_deploy(builder, ec):
    builder.deploy_button.click()
    assert "nothing new to deploy" in builder.run_error.value and "nothing new" in builder.error.value
    assert builder.phase == "building"


# == only connections that make sense ================================================


def options(dropdown):
    return [guid for _, guid in dropdown.options]


def test_connect_offers_only_pairs_the_types_accept(builder, ec):
    node1 = ec.register_resource("linux::Node")
    node2 = ec.register_resource("linux::Node")
    link = ec.register_resource("netns::Link")  # connects to interfaces and switches only: no partner here
    app = ec.register_resource("linux::Application", command="true")
    ping = ec.register_resource("linux::Ping", target="127.0.0.1")
    builder._sync_choices()
    assert options(builder.connect_a) == [node1, node2, app, ping]  # the link has no partner
    assert builder.connect_a.value == ping
    assert options(builder.connect_b) == [node1, node2]  # never an application with an application
    assert "a linux::Ping connects to linux::Node" in builder.connect_hint.value
    builder.connect_a.value = node1
    assert options(builder.connect_b) == [app, ping]
    builder.connect_a.value = app
    builder.connect_b.value = node2
    builder.connect_button.click()
    assert ec.get_resource(app).connections == {node2} and "connected 4 and 2" in builder.status.value
    # the application runs on node 2 now: it is offered no other node, and no node offers it
    assert app not in options(builder.connect_a)
    builder.connect_a.value = node1
    assert options(builder.connect_b) == [ping]
    builder.connect_button.click()
    assert options(builder.connect_a) == []
    assert builder.connect_button.disabled and "nothing to connect" in builder.connect_hint.value
    assert link in ec.resources and not ec.get_resource(link).connections
    builder.connect_button.click()
    assert "no pair of resources can be connected" in builder.connect_error.value


def test_a_refused_connection_lands_beside_connect(builder, ec, monkeypatch):
    """What register_connection refuses (here: a pair chosen before a connection made by code)."""
    node = ec.register_resource("linux::Node")
    other = ec.register_resource("linux::Node")
    app = ec.register_resource("linux::Application", command="true")
    builder._sync_choices()
    builder.connect_a.value, builder.connect_b.value = app, node
    ec.register_connection(app, other)  # by code, meanwhile
    monkeypatch.setattr(builder, "_sync_choices", lambda: None)  # the pickers have not caught up
    builder.connect_button.click()
    assert "already runs on node 2" in builder.connect_error.value
    assert "already runs on node 2" in builder.error.value


# == the form ========================================================================


def test_the_form_shows_the_type_s_own_fields_first_and_the_inherited_ones_under_advanced(builder):
    choose(builder, "linux::Ping")
    shown = [box.children[0].description for box in builder.form.children]
    assert shown[:3] == ["name", "target", "count"]
    assert "stopGracePeriod" not in shown and "critical" not in shown and "command" not in shown
    advanced = builder.advanced_fields
    assert {"sources", "files", "libs", "bins", "code", "build", "install", "tearDown", "installDepends",
            "env", "stdin",
            "workingDirectory", "splitStderr", "sudo", "stopGracePeriod", "readyPort", "readyPattern",
            "readyFile", "readyTimeout", "critical", "hardRelease"} == set(advanced)
    assert advanced[0] == "sources" and advanced[-2:] == ["critical", "hardRelease"]  # nearest first
    assert builder.advanced.selected_index is None  # folded
    assert builder.advanced.get_title(0).startswith("Advanced (21")
    # the type's own fields are all there, in declaration order
    own = ["target", "count", "interval", "deadline", "timeout", "packetSize", "ttl", "interface",
           "printTimestamp", "numeric", "quiet", "mark", "preload", "pattern", "tos", "recordRoute",
           "routeBypass", "sendBuffer", "timestamp", "pmtuDiscovery", "fullLatency", "verbose", "flood"]
    assert shown == ["name", *own]
    # an application's own fields are its form; only the base's are advanced
    choose(builder, "linux::Application")
    shown = [box.children[0].description for box in builder.form.children]
    assert shown[:2] == ["name", "command"] and "stopGracePeriod" in shown
    assert builder.advanced_fields == ["critical", "hardRelease"]
    # a renamed tool (no attribute of its own) shows its base's fields as its own
    from nepi_lab.notebook.builder import attribute_groups
    from nepi_lab.resources.linux import Ping

    class RenamedPing(Ping):
        _rtype = "nbtest::RenamedPing"

    main, advanced = attribute_groups(RenamedPing)
    assert main[:2] == ["name", "target"] and "stopGracePeriod" in advanced


def test_unset_numbers_are_blank_and_letters_get_a_message(builder, ec):
    choose(builder, "linux::Ping", target="127.0.0.1")
    fields = builder.fields
    assert fields["count"].value == "" and fields["interval"].value == ""  # unset: blank, not 0
    assert fields["stopGracePeriod"].value == "3"  # a default is shown
    assert "blank: unset" in fields["count"].placeholder
    fields["count"].value = "three"
    assert "expected an integer" in builder._fields["count"].error.value  # as it is typed
    fields["interval"].value = "0.2s"
    assert "expected a number" in builder._fields["interval"].error.value
    builder.add_button.click()
    assert ec.resources == []
    assert "expected an integer" in builder.add_error.value and "expected a number" in builder.add_error.value
    assert "expected an integer" in builder.error.value
    fields["count"].value, fields["interval"].value = " 3 ", "0.5"
    assert builder._fields["count"].error.value == "" and builder._fields["interval"].error.value == ""
    assert builder.attribute_values() == {"target": "127.0.0.1", "count": 3, "interval": 0.5}
    builder.add_button.click()
    assert ec.resources == [1]
    assert ec.get(1, "count") == 3 and type(ec.get(1, "count")) is int and ec.get(1, "interval") == 0.5
    assert ec.get(1, "timeout") is None and ec.get(1, "stopGracePeriod") == 3.0  # blank: not passed


def test_a_bad_value_under_advanced_unfolds_it(builder, ec):
    choose(builder, "linux::Ping", target="127.0.0.1", stopGracePeriod="-1")
    builder.add_button.click()
    assert ec.resources == []
    assert builder.advanced.selected_index == 0
    assert "must lie in [0, inf]" in builder._fields["stopGracePeriod"].error.value


def test_the_name_is_offered_first_and_labels_the_pickers(builder, ec):
    choose(builder, "nbtest::Task", name="client 1")
    assert list(builder.fields)[0] == "name"
    builder.add_button.click()
    assert ec.get(1, "name") == "client 1"
    assert builder.condition_guid.options[0] == ("1 nbtest::Task (client 1)", 1)


# == reading a trace =================================================================


def test_read_a_ping_trace_tail_frame_and_plot(builder, ec, tmp_path):
    if shutil.which("ping") is None:
        pytest.skip("ping is not installed")
    choose(builder, "linux::Node", home=str(tmp_path / "home"))
    builder.add_button.click()
    choose(builder, "linux::Ping", target="127.0.0.1", count="3", interval="0.2", printTimestamp=True)
    builder.add_button.click()
    builder.connect_button.click()
    builder.deploy_button.click()
    ec.wait_finished(timeout=20)
    builder.trace_guid.value = 2
    builder.trace_name.value = "stdout"
    builder.read_button.click()
    assert builder.trace_error.value == "", builder.trace_error.value
    assert builder.trace_view.layout.display is None  # shown
    tail = builder.trace_tail.value
    assert "icmp_seq=3" in tail and "packet loss" in tail  # the end of the output
    frame = builder.trace_frame
    assert frame.attrs["parser"] == "ping" and list(frame["seq"].dropna().astype(int)) == [1, 2, 3]
    assert "rtt_ms" in builder.trace_table.value and "parser &#x27;ping&#x27;" in builder.trace_table.value
    assert builder.trace_plot.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert builder.trace_plot.layout.display is None
    assert "read trace 'stdout' of 2" in html.unescape(builder.status.value)
    # a trace without a plot: its frame, no plot
    builder.trace_name.value = "exitcode"
    builder.read_button.click()
    assert builder.trace_frame.attrs["parser"] == "lines" and builder.trace_frame["text"].tolist() == ["0"]
    assert builder.trace_plot.layout.display == "none"


def test_read_an_iperf3_trace_plots_the_throughput(builder, ec, tmp_path):
    if shutil.which("iperf3") is None:
        pytest.skip("iperf3 is not installed")
    port = free_port()
    node = ec.register_resource("linux::Node", home=str(tmp_path / "home"))
    server = ec.register_resource("linux::Iperf3Server", connectedTo=node, port=port, oneOff=True)
    client = ec.register_resource("linux::Iperf3Client", connectedTo=node, server="127.0.0.1", port=port,
                                  duration=1, interval=0.5, bandwidth="10M", json=True)
    ec.register_condition(client, "START", server, "STARTED")
    ec.deploy()
    ec.wait_finished(timeout=30)
    builder._sync_choices()
    builder.trace_guid.value, builder.trace_name.value = client, "stdout"
    builder.read_button.click()
    assert builder.trace_error.value == "", builder.trace_error.value
    assert builder.trace_frame.attrs["parser"] == "iperf3" and len(builder.trace_frame) >= 2
    assert "bits_per_second" in builder.trace_table.value
    assert builder.trace_plot.value[:4] == b"\x89PNG" and builder.trace_plot.layout.display is None


def test_reading_a_trace_that_is_not_enabled_says_so_beside_the_button(builder, ec):
    choose(builder, "nbtest::Task")
    builder.add_button.click()
    builder.trace_guid.value, builder.trace_name.value = 1, "extra"
    builder.read_button.click()
    assert "not enabled" in builder.trace_error.value and "not enabled" in builder.error.value
    assert "(empty)" in builder.trace_tail.value and builder.trace_frame is None
