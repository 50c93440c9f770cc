"""ec.to_script(): a readable script that rebuilds the same experiment."""

from __future__ import annotations

import pytest

from nepi_lab import ExperimentController
from nepi_lab.core.files import saved_description
from nepi_lab.core.script import delay_literal
from nepi_lab.core.times import parse_delay

from .test_save_load import build, comparable


def run_script(code: str) -> ExperimentController:
    namespace: dict = {}
    exec(compile(code, "<to_script>", "exec"), namespace)
    return namespace["ec"]


def test_the_script_rebuilds_the_same_description(ec):
    build(ec)
    code = ec.to_script()
    again = run_script(code)
    try:
        assert again is not ec and again.run_id != ec.run_id
        original = comparable(ec.description())
        # the one difference: a secret value is not in the script (a comment names it), so
        # the rebuilt experiment has none to name
        assert original["resources"][0].pop("secrets") == ["password"]
        assert comparable(again.description()) == original
        assert again.to_script() == code.replace("  # also set: password (secret, not shown)", "")
    finally:
        again.shutdown()


def test_the_script_reads_as_a_nepi_script(ec):
    guids = build(ec)
    code = ec.to_script()
    lines = code.splitlines()
    assert lines[0] == "from nepi_lab import ExperimentController, ResourceAction, ResourceState"
    assert "import tests.files.types_for_files  # defines files::Host" in lines
    assert "ec = ExperimentController(exp_id='files')" in lines
    assert ("host1 = ec.register_resource('files::Host', address='10.0.0.1', name='the host')"
            "  # also set: password (secret, not shown)") in lines
    assert "task7 = ec.register_resource('files::Task', guid=7, count=-9223372036854775808, fast=True, " \
           "mode='ç', name='a', note=" in code
    assert ("task8 = ec.register_resource('files::Task', count=9223372036854775807, fast=False, mode='a', "
            "seconds=1e-300, **{'from': 3, 'max-rate': -25000000000.0})") in lines
    assert "ec.set(task8, 'guid', 'g')" in lines
    assert "task3 = ec.register_resource('files::Task', guid=3, note='', seconds=0.0)" in lines
    assert "ec.register_connection(host1, task7)" in lines
    assert "ec.register_condition(task8, ResourceAction.START, task7, ResourceState.STARTED, '1.5s')" in lines
    assert ("ec.register_condition(task3, ResourceAction.START, [task7, task8], ResourceState.FINISHED, "
            "0.1234567891234)") in lines
    assert "ec.register_condition(task3, ResourceAction.STOP, host1, ResourceState.STARTED, '3600s')" in lines
    assert "ec.register_condition(task7, ResourceAction.DEPLOY, host1, ResourceState.READY)" in lines
    assert "ec.enable_trace(task8, 'extra')" in lines
    assert "ec.enable_trace(task3, 'log')" not in lines  # on by default
    assert "hunter2" not in code
    assert "ec.deploy()" not in code and "shutdown" not in code  # built, not run: ec is the reader's
    assert guids["b"] == 8


def test_with_deploy_it_runs_as_a_program(ec):
    host = ec.register_resource("files::Host")
    task = ec.register_resource("files::Task", connectedTo=host, seconds=0.01)
    code = ec.to_script(deploy=True, timeout=5)
    assert code.endswith("\nec.deploy()\nec.wait_finished(timeout=5)\nec.shutdown()\n")
    again = run_script(code)
    assert again.get_finish_time(task) is not None and again.finished  # it ran and shut down
    assert saved_description(again) == saved_description(ec)  # what was built, without the run


def test_the_builders_show_code_is_the_same_code_path(ec):
    from nepi_lab.notebook.code import experiment_code

    build(ec)
    assert experiment_code(ec) == ec.to_script(deploy=True)
    assert experiment_code(ec, deploy=False) == ec.to_script()


def test_a_type_defined_in_a_notebook_gets_a_comment(ec):
    import types

    from nepi_lab import ResourceManager

    module = types.ModuleType("__main__")
    exec("from nepi_lab import ResourceManager\n"
         "class Cell(ResourceManager):\n    _rtype = 'files::Cell'\n", module.__dict__)
    ec.register_resource("files::Cell")
    assert ResourceManager in module.Cell.__mro__
    code = ec.to_script()
    assert "# files::Cell is defined in a script or a notebook: define it before this runs" in code
    assert "import __main__" not in code


@pytest.mark.parametrize(("seconds", "literal"), [
    (1.5, "'1.5s'"), (0.5, "'500ms'"), (0.001, "'1ms'"), (3600.0, "'3600s'"), (2.0, "'2s'"),
    (0.1234567891234, "0.1234567891234"), (1e-7, "1e-07"), (123456789.5, "123456789.5"),
])
def test_delays_are_written_exactly(seconds, literal):
    text = delay_literal(seconds)
    assert text == literal
    assert parse_delay(eval(text)) == seconds  # noqa: S307 - a literal written by the code under test
