"""The public surface: ``nepi_lab.__all__``, the error tree, and what ``import nepi_lab`` costs.

In the style of httpx's ``tests/test_exported_members.py``.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import types

import pytest

import nepi_lab
from nepi_lab.core import errors

#: Names the public API must provide (NEPI's names, and the root of the error tree).
REQUIRED = [
    "ExperimentController",
    "ResourceManager",
    "ResourceState",
    "ResourceAction",
    "ECState",
    "TraceAttr",
    "Attribute",
    "Types",
    "Flags",
    "Trace",
    "NepiError",
]

#: Packages the core must never import (notebook / analysis layers, lazily loaded deps).
HEAVY = ["pandas", "matplotlib", "ipywidgets", "networkx", "nest_asyncio"]


def defined_in_nepi_lab(obj: object) -> bool:
    return (inspect.isclass(obj) or inspect.isfunction(obj)) and (
        getattr(obj, "__module__", "") or ""
    ).split(".")[0] == "nepi_lab"


def error_classes() -> list[type[BaseException]]:
    return [
        obj for obj in vars(errors).values()
        if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == errors.__name__
    ]


def test_all_is_a_sorted_list_of_strings():
    assert isinstance(nepi_lab.__all__, list)
    assert all(isinstance(name, str) for name in nepi_lab.__all__)
    assert nepi_lab.__all__ == sorted(nepi_lab.__all__)


def test_all_has_no_duplicates():
    duplicates = sorted({n for n in nepi_lab.__all__ if nepi_lab.__all__.count(n) > 1})
    assert duplicates == []


@pytest.mark.parametrize("name", nepi_lab.__all__)
def test_every_name_in_all_imports(name):
    obj = getattr(nepi_lab, name)  # AttributeError if it is not really there
    assert obj is not None
    assert not isinstance(obj, types.ModuleType), f"{name} is a module, not API"


def test_star_import_gives_exactly_all():
    namespace: dict[str, object] = {}
    exec("from nepi_lab import *", namespace)
    namespace.pop("__builtins__", None)
    assert sorted(namespace) == nepi_lab.__all__


def test_all_is_complete():
    """Every public class or function of nepi_lab that is reachable at top level is in ``__all__``."""
    exported = {
        name for name, obj in vars(nepi_lab).items()
        if not name.startswith("_") and defined_in_nepi_lab(obj)
    }
    assert sorted(exported - set(nepi_lab.__all__)) == []
    # and nothing in __all__ is a private name
    assert [n for n in nepi_lab.__all__ if n.startswith("_")] == []


@pytest.mark.parametrize("name", REQUIRED)
def test_required_names_are_exported(name):
    assert name in nepi_lab.__all__
    assert inspect.isclass(getattr(nepi_lab, name))


def test_exported_objects_are_the_core_ones():
    from nepi_lab.core import attributes, controller, resource, states, traces

    assert nepi_lab.ExperimentController is controller.ExperimentController
    assert nepi_lab.ResourceManager is resource.ResourceManager
    assert nepi_lab.ResourceState is states.ResourceState
    assert nepi_lab.ResourceAction is states.ResourceAction
    assert nepi_lab.ECState is states.ECState
    assert nepi_lab.TraceAttr is traces.TraceAttr
    assert nepi_lab.Trace is traces.Trace
    assert nepi_lab.Attribute is attributes.Attribute
    assert nepi_lab.Types is attributes.Types
    assert nepi_lab.Flags is attributes.Flags
    assert nepi_lab.NepiError is errors.NepiError


def test_version_is_a_string():
    assert isinstance(nepi_lab.__version__, str) and nepi_lab.__version__


# -- the error tree ----------------------------------------------------------------


def test_errors_module_defines_errors():
    assert len(error_classes()) >= 20  # the documented tree; guards against an empty scan


@pytest.mark.parametrize("cls", error_classes(), ids=lambda c: c.__name__)
def test_every_error_is_a_nepi_error_and_exported(cls):
    assert issubclass(cls, nepi_lab.NepiError)
    assert cls.__name__ in nepi_lab.__all__
    assert getattr(nepi_lab, cls.__name__) is cls


def test_wait_timeout_error_is_a_timeout_error():
    assert issubclass(nepi_lab.WaitTimeoutError, TimeoutError)
    err = nepi_lab.WaitTimeoutError("wait", 1.5, ["resource 1 is NEW"])
    assert isinstance(err, TimeoutError) and isinstance(err, nepi_lab.NepiError)
    assert "1.5" in str(err) and "resource 1 is NEW" in str(err)


@pytest.mark.parametrize(
    ("child", "parent"),
    [
        ("InvalidInputError", ValueError),
        ("UnknownResourceTypeError", "InvalidInputError"),
        ("UnknownGuidError", "InvalidInputError"),
        ("UnknownGuidError", KeyError),
        ("DuplicateGuidError", "InvalidInputError"),
        ("UnknownAttributeError", "InvalidInputError"),
        ("AttributeValueError", "InvalidInputError"),
        ("ReadOnlyAttributeError", "InvalidInputError"),
        ("InvalidConnectionError", "InvalidInputError"),
        ("TimeFormatError", "InvalidInputError"),
        ("UnsafeNameError", "InvalidInputError"),
        ("UnknownTraceError", "InvalidInputError"),
        ("ConditionError", "InvalidInputError"),
        ("ConditionCycleError", "ConditionError"),
        ("UnreachableStateError", "ResourceFailedError"),
        ("ExperimentFileError", "InvalidInputError"),
        ("ExperimentVersionError", "ExperimentFileError"),
        ("ExperimentTypeError", "ExperimentFileError"),
        ("ExperimentAttributeError", "ExperimentFileError"),
    ],
)
def test_documented_error_tree(child, parent):
    parent_cls = getattr(nepi_lab, parent) if isinstance(parent, str) else parent
    assert issubclass(getattr(nepi_lab, child), parent_cls)


@pytest.mark.parametrize(
    "name",
    ["InvalidTransitionError", "ResourceFailedError", "ExperimentFailedError", "WaitTimeoutError",
     "ControllerClosedError", "CommandError"],
)
def test_runtime_errors_are_not_input_errors(name):
    """Errors about what happened (not about what was asked) are not InvalidInputError."""
    assert not issubclass(getattr(nepi_lab, name), nepi_lab.InvalidInputError)


# -- import cost ----------------------------------------------------------------------


def _probe(tmp_path, code: str) -> object:
    """Run ``code`` in a fresh interpreter (in ``tmp_path``); the JSON of its last line,
    after the names of the heavy packages it loaded as ``loaded``."""
    code += (f"heavy = {HEAVY!r}\n"
             "loaded = sorted(m for m in sys.modules if m.split('.')[0] in heavy)\n"
             "print(json.dumps({**result, 'loaded': loaded}))\n")
    out = subprocess.run(
        [sys.executable, "-c", "import json, sys\n" + code], cwd=str(tmp_path), capture_output=True,
        text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_is_light(tmp_path):
    """``import nepi_lab`` in a fresh interpreter loads none of the heavy or lazy packages."""
    result = _probe(tmp_path, "import nepi_lab\nresult = {'file': nepi_lab.__file__}\n")
    assert result["file"] == nepi_lab.__file__  # the same package as under test
    assert result["loaded"] == []


def test_a_run_with_conditions_is_light(tmp_path):
    """Nor does a whole run with conditions (their cycle check once imported networkx: 0.1-0.2 s
    at a script's first condition), a cycle refused, and a wait."""
    result = _probe(tmp_path, (
        "from nepi_lab import ConditionCycleError, ExperimentController, ResourceManager\n"
        "class Step(ResourceManager):\n"
        "    _rtype = 'light::Step'\n"
        "    async def do_run(self):\n"
        "        return None\n"
        "with ExperimentController(exp_id='light', local_dir='results') as ec:\n"
        "    a, b, c = (ec.register_resource('light::Step') for _ in range(3))\n"
        "    ec.register_condition(b, 'START', a, 'FINISHED', time='1ms')\n"
        "    ec.register_condition(c, 'START', b, 'FINISHED')\n"
        "    try:\n"
        "        ec.register_condition(a, 'START', c, 'FINISHED')\n"
        "    except ConditionCycleError as exc:\n"
        "        result = {'refused': str(exc)}\n"
        "    ec.deploy()\n"
        "    ec.wait_finished(timeout=30)\n"
    ))
    assert "resource 1 started" in result["refused"] and "resource 3 ended" in result["refused"]
    assert result["loaded"] == []


def test_import_check_can_see_a_heavy_import(tmp_path):
    """Control for the tests above: the same probe does see a package that was imported."""
    result = _probe(tmp_path, "import nepi_lab\nimport networkx\nresult = {}\n")
    assert "networkx" in result["loaded"]


# -- layering ---------------------------------------------------------------------------

#: What the core may never import, at any depth (also not lazily inside a function).
LAYERS_ABOVE_CORE = ("nepi_lab.notebook", "nepi_lab.analysis", "nepi_lab.resources", "nepi_lab.topology",
                     "nepi_lab.cli", "nepi_lab.demo", "matplotlib", "ipywidgets", "IPython")


def imported_modules(path: str, package: str) -> set[str]:
    """Every module a source file imports, relative imports resolved against ``package``."""
    import ast

    with open(path) as f:
        tree = ast.parse(f.read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)] if node.level else []
            module = ".".join([*base, node.module] if node.module else base)
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def layer_offences(package: str, above: tuple[str, ...]) -> dict[str, list[str]]:
    """Per source file of ``package``: what it imports from ``above``."""
    import glob
    import importlib
    import os

    folder = os.path.dirname(importlib.import_module(package).__file__)
    offending = {}
    for path in sorted(glob.glob(os.path.join(folder, "*.py"))):
        bad = sorted(m for m in imported_modules(path, package)
                     if any(m == layer or m.startswith(layer + ".") for layer in above))
        if bad:
            offending[os.path.basename(path)] = bad
    return offending


def test_the_core_imports_no_layer_above_it():
    assert layer_offences("nepi_lab.core", LAYERS_ABOVE_CORE) == {}


#: What the runs layer (nepi_lab.runner) may never import: the layers above it, and
#: pandas (its frames are the analysis layer's, reached through the core's hook).
LAYERS_ABOVE_RUNNER = ("nepi_lab.notebook", "nepi_lab.analysis", "nepi_lab.lab", "nepi_lab.cli",
                       "nepi_lab.demo", "pandas", "matplotlib", "ipywidgets", "IPython")


def test_the_runs_layer_imports_no_layer_above_it():
    assert layer_offences("nepi_lab.runner", LAYERS_ABOVE_RUNNER) == {}


def test_the_layering_check_sees_a_relative_import(tmp_path):
    """Control for the test above: it resolves ``from ..notebook import x`` inside the core."""
    path = tmp_path / "probe.py"
    path.write_text("def f():\n    from ..notebook.html import controller_html\n")
    assert "nepi_lab.notebook.html" in imported_modules(str(path), "nepi_lab.core")
