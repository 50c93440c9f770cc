"""Experiments as files: ``ec.save()``, ``ExperimentController.load()`` and GraphML.

A saved experiment is the run directory's description (see
:mod:`nepi_lab.core.results`) without what belongs to one run, so one reader takes
both: ``load()`` accepts a file written by :func:`save`, a run directory, or its
``experiment.json``, and re-creates that experiment, NEW, in a new controller with a
new run.  What the file holds, and what it leaves out, is documented with the format
in :mod:`nepi_lab.core.results`.

Loading checks everything that ``register_resource`` and friends check, and more
(the format, its version, that every type is installed and declares every attribute
the file sets) before it makes a controller; what only the controller can refuse (a
connection two resources do not accept, a cycle of conditions) is refused while it
builds, and then the half-built controller and its run directory are removed again.
Every refusal is an :class:`~nepi_lab.core.errors.ExperimentFileError` naming the
file and what to do (install a package, upgrade nepi_lab ...).
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import math
import os
import re
import shutil
from typing import TYPE_CHECKING, Any

from .attributes import Flags
from .errors import (
    ExperimentAttributeError,
    ExperimentFileError,
    ExperimentTypeError,
    ExperimentVersionError,
    InvalidInputError,
    UnknownResourceTypeError,
)
from .registry import get_resource_type, type_origin
from .results import DESCRIPTION, RUN_FORMAT
from .traces import check_name

if TYPE_CHECKING:
    from .controller import ExperimentController

log = logging.getLogger("nepi_lab")

#: ``"format"`` of a file written by :func:`save`.
EXPERIMENT_FORMAT = "nepi_lab.experiment"
#: ``"format"`` of a run directory's ``experiment.json``.
RUN_FORMAT_NAME = "nepi_lab.run"
#: Versions of the description :func:`load` reads (saved files and run directories share them).
SUPPORTED_VERSIONS = (RUN_FORMAT,)
_MAX_GUID = 2**63 - 1


# == save =====================================================================================

def saved_description(ec: ExperimentController) -> dict[str, Any]:
    """What :func:`save` writes: ``ec.description()`` without what belongs to one run.

    Left out: ``run_id``, ``ecstate``, ``end``, ``saved``, ``failures`` and
    ``events_format`` (they say how a run went, not what the experiment is), and the
    values of ``Flags.NoWrite`` attributes (a resource sets them itself while it runs;
    a new run sets them again).  Each resource's attributes are sorted by name, so
    that two ways of building the same experiment give the same file.
    """
    full = ec.description()
    resources = []
    for entry in full["resources"]:
        entry = dict(entry)
        table = ec.get_resource(entry["guid"]).get_attribute_declarations()
        values = {name: value for name, value in sorted(entry.pop("attributes", {}).items())
                  if not (name in table and table[name].flags & Flags.NoWrite)}
        if values:  # back in the description's key order: guid, type, attributes, ...
            entry = {"guid": entry.pop("guid"), "type": entry.pop("type"), "attributes": values, **entry}
        resources.append(entry)
    return {
        "format": EXPERIMENT_FORMAT,
        "version": full["version"],
        "exp_id": full["exp_id"],
        "types": full["types"],
        "resources": resources,
        "conditions": full["conditions"],
    }


def save(ec: ExperimentController, path: str | os.PathLike[str] | None = None) -> str:
    """Write the experiment to a JSON file; returns the file's absolute path.

    ``path`` is a file name, or a folder to write ``<exp_id>.json`` in; the default,
    as in NEPI, is the run directory.  The file is written whole or not at all, and is
    the same, byte for byte, for the same experiment (so it can be kept in git).
    """
    if path is None:
        path = ec.run_dir
    path = os.path.abspath(os.fspath(path))
    if os.path.isdir(path):
        path = os.path.join(path, f"{ec.exp_id}.json")
    text = json.dumps(saved_description(ec), indent=1, ensure_ascii=False, default=str) + "\n"
    tmp = f"{path}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


# == load =====================================================================================

def read_description(path: str | os.PathLike[str]) -> tuple[str, dict[str, Any]]:
    """``(file, description)`` from a saved experiment, a run directory or its experiment.json.

    Checks the format, the version and the kind of every value :func:`load` uses;
    raises :class:`ExperimentFileError` (or :class:`ExperimentVersionError`) saying
    what is wrong and where (``resources[2].guid``).
    """
    shown = os.fspath(path) if isinstance(path, (str, os.PathLike)) else path
    if not isinstance(shown, str) or not shown or "\x00" in shown:
        raise ExperimentFileError(repr(path), "expected the path of a file or a run directory")
    file = shown
    if os.path.isdir(file):
        file = os.path.join(file, DESCRIPTION)
        if not os.path.isfile(file):
            raise ExperimentFileError(shown, f"a folder without {DESCRIPTION}: give a run directory "
                                             f"(<results>/<exp_id>/<run_id>) or a file written by ec.save()")
    try:
        with open(file, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise ExperimentFileError(shown, f"cannot read it: {exc.strerror or exc}") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ExperimentFileError(file, f"not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ExperimentFileError(file, f"not valid JSON: {exc.msg} (line {exc.lineno}, "
                                        f"column {exc.colno})") from None
    except RecursionError:
        raise ExperimentFileError(file, "not an experiment: nested too deeply") from None
    except ValueError as exc:  # an integer of thousands of digits
        raise ExperimentFileError(file, f"not valid JSON: {exc}") from None
    form = data.get("format") if isinstance(data, dict) else None
    if form not in (EXPERIMENT_FORMAT, RUN_FORMAT_NAME):
        what = f'its "format" is {_shown(form)}' if form is not None else 'it has no "format"'
        raise ExperimentFileError(file, f'not a nepi_lab experiment: {what}; expected "{EXPERIMENT_FORMAT}" '
                                        f'(ec.save()) or "{RUN_FORMAT_NAME}" (a run directory)')
    version = data.get("version")
    if type(version) is not int or version not in SUPPORTED_VERSIONS:
        raise ExperimentVersionError(file, version, SUPPORTED_VERSIONS)
    _check_description(file, data)
    return file, data


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=repr)
    return text if len(text) <= 80 else text[:60] + f"... ({len(text)} characters)"


def _check_description(file: str, data: dict[str, Any]) -> None:
    """Raise :class:`ExperimentFileError` for the first value of a kind :func:`load` cannot use."""

    def refuse(where: str, rule: str, value: Any) -> ExperimentFileError:
        return ExperimentFileError(file, f"{where} {rule}, not {_shown(value)}")

    def is_int(value: Any) -> bool:
        return type(value) is int

    def is_guid(value: Any) -> bool:
        return is_int(value) and 0 <= value <= _MAX_GUID

    def str_list(value: Any) -> bool:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)

    exp_id = data.get("exp_id")
    if exp_id is not None and not isinstance(exp_id, str):
        raise refuse("exp_id", "must be a string", exp_id)
    types = data.get("types", {})
    if not isinstance(types, dict) or not all(isinstance(v, dict) for v in types.values()):
        raise refuse("types", "must be an object of type name -> declaration", types)
    for name, spec in types.items():
        origin = spec.get("origin")
        if origin is not None and not (isinstance(origin, dict) and all(
                v is None or isinstance(v, str) for v in origin.values())):
            raise refuse(f"types[{json.dumps(name)}].origin", "must be an object of strings", origin)
        attributes = spec.get("attributes", {})
        if not isinstance(attributes, dict) or not all(isinstance(v, dict) for v in attributes.values()):
            raise refuse(f"types[{json.dumps(name)}].attributes", "must be an object of name -> declaration",
                         attributes)
    resources = data.get("resources")
    if not isinstance(resources, list):
        raise refuse("resources", 'must be a list of {"guid": int, "type": str, ...}', resources)
    guids: set[int] = set()
    for index, entry in enumerate(resources):
        where = f"resources[{index}]"
        if not isinstance(entry, dict):
            raise refuse(where, 'must be an object {"guid": int, "type": str, ...}', entry)
        if not is_guid(entry.get("guid")):
            raise refuse(f"{where}.guid", "must be an integer in [0, 2**63 - 1]", entry.get("guid"))
        if entry["guid"] in guids:
            raise refuse(f"{where}.guid", "must be unique: another resource has it", entry["guid"])
        guids.add(entry["guid"])
        if not isinstance(entry.get("type"), str) or not entry["type"]:
            raise refuse(f"{where}.type", "must be a type name", entry.get("type"))
        if not isinstance(entry.get("attributes", {}), dict):
            raise refuse(f"{where}.attributes", "must be an object of attribute name -> value",
                         entry["attributes"])
        for key, rule in (("traces", "trace names"), ("secrets", "attribute names")):
            if not str_list(entry.get(key, [])):
                raise refuse(f"{where}.{key}", f"must be a list of {rule}", entry[key])
    for index, entry in enumerate(resources):
        connections = entry.get("connections", [])
        if not isinstance(connections, list) or not all(is_int(g) for g in connections):
            raise refuse(f"resources[{index}].connections", "must be a list of guids", connections)
        for other in connections:
            if other not in guids:
                raise refuse(f"resources[{index}].connections", "must name resources of the file", other)
    conditions = data.get("conditions", [])
    if not isinstance(conditions, list):
        raise refuse("conditions", "must be a list of objects", conditions)
    for index, condition in enumerate(conditions):
        where = f"conditions[{index}]"
        if not isinstance(condition, dict):
            raise refuse(where, 'must be an object {"guid", "action", "after", "state", "delay"}', condition)
        after = condition.get("after")
        if condition.get("guid") not in guids or not is_guid(condition.get("guid")):
            raise refuse(f"{where}.guid", "must be the guid of a resource of the file", condition.get("guid"))
        if not isinstance(after, list) or not after or not all(is_guid(g) and g in guids for g in after):
            raise refuse(f"{where}.after", "must be a non-empty list of guids of the file's resources", after)
        for key in ("action", "state"):
            if not isinstance(condition.get(key), str):
                raise refuse(f"{where}.{key}", "must be a name (START, STARTED ...)", condition.get(key))
        delay = condition.get("delay", 0)
        if delay is not None and (type(delay) not in (int, float) or not math.isfinite(delay) or delay < 0):
            raise refuse(f"{where}.delay", "must be a number of seconds >= 0", delay)


def load(path: str | os.PathLike[str], controller_class: type[ExperimentController],
         **kwargs: Any) -> ExperimentController:
    """A new controller holding the experiment of ``path``, NEW and ready to ``deploy()``.

    See :meth:`ExperimentController.load`.
    """
    file, data = read_description(path)
    types = data.get("types", {})
    resources = data["resources"]

    def recorded(rtype: str) -> dict[str, Any]:
        return types.get(rtype, {}).get("origin") or {}

    def release(origin: dict[str, Any]) -> str | None:
        name, version = origin.get("distribution"), origin.get("version")
        return f"{name} {version}" if name and version else name

    # every type installed, every attribute declared: checked before a controller exists
    classes = {}
    for entry in resources:
        guid, rtype = entry["guid"], entry["type"]
        try:
            cls = classes[guid] = get_resource_type(rtype)
        except UnknownResourceTypeError as exc:
            origin = recorded(rtype)
            raise ExperimentTypeError(file, guid, rtype, origin.get("module"), release(origin),
                                      exc.suggestions) from None
        table = cls._attribute_table
        for name in (*entry.get("attributes", {}), *entry.get("secrets", ())):
            if name not in table:
                raise ExperimentAttributeError(file, guid, rtype, name, table, release(recorded(rtype)),
                                               release(type_origin(cls)))
    exp_id = data.get("exp_id")
    if "exp_id" not in kwargs and exp_id is not None:
        try:
            kwargs["exp_id"] = check_name(exp_id, "exp_id")
        except InvalidInputError as exc:
            raise ExperimentFileError(file, f"exp_id: {exc}", exc) from None
    ec = controller_class(**kwargs)
    try:
        _build(ec, data, classes)
    except BaseException as exc:
        _discard(ec)
        if isinstance(exc, InvalidInputError):
            raise ExperimentFileError(file, str(exc), exc) from exc
        raise
    missing = {guid: names for guid, names in ec._secrets_to_set.items()}
    if missing:
        shown = "; ".join(f"resource {guid}: {', '.join(names)}" for guid, names in missing.items())
        log.warning("experiment %s: secret attributes are never saved; set them before deploy() "
                    "(ec.set(guid, name, value)): %s", file, shown)
    return ec


def _build(ec: ExperimentController, data: dict[str, Any], classes: dict[int, Any]) -> None:
    """Register what ``data`` describes, with the controller's own checks."""
    pairs: dict[tuple[int, int], None] = {}  # ordered set
    for entry in data["resources"]:
        guid = entry["guid"]
        cls = classes[guid]
        ec.register_resource(cls, guid=guid)
        table = cls._attribute_table
        for name, value in entry.get("attributes", {}).items():
            if table[name].flags & Flags.NoWrite:
                continue  # a value the resource set itself while it ran: a new run sets it again
            ec.set(guid, name, value)
        for name in entry.get("traces", ()):
            ec.enable_trace(guid, name)
        secrets = sorted({name for name in entry.get("secrets", ())
                          if name in cls._secret_attributes and name not in entry.get("attributes", {})})
        if secrets:
            ec._secrets_to_set[guid] = tuple(secrets)
        for other in entry.get("connections", ()):
            pairs[(min(guid, other), max(guid, other))] = None
    for a, b in sorted(pairs):
        if b not in ec.get_resource(a).connections:
            ec.register_connection(a, b)
    for condition in data.get("conditions", ()):
        ec.register_condition(condition["guid"], condition["action"], condition["after"],
                              condition["state"], condition.get("delay") or None)


def _discard(ec: ExperimentController) -> None:
    """Undo a controller made by a load that failed: no thread, no run directory left."""
    with contextlib.suppress(Exception):
        ec.shutdown()
    shutil.rmtree(ec.run_dir, ignore_errors=True)
    with contextlib.suppress(OSError):
        os.rmdir(ec.exp_dir)  # only if this load made it (it is empty then)


# == GraphML ==================================================================================

#: Characters XML 1.0 cannot hold (and a carriage return, which XML readers turn into a
#: newline): written as ``\\uXXXX`` in GraphML text.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0d\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_text(text: str) -> str:
    return _NOT_XML.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _graphml_value(value: Any) -> Any:
    """A GraphML value (bool, int, float or str) for ``value``; None stays None (left out)."""
    if isinstance(value, enum.Enum):  # before int: a ResourceState is an int too
        return value.name
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return _xml_text(value)
    return _xml_text(json.dumps(value, ensure_ascii=False, sort_keys=True, default=str))


def _flatten(data: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in data.items():
        if key == "attributes" and isinstance(value, dict):
            for name, item in value.items():
                out[f"attribute.{name}"] = _graphml_value(item)
        else:
            out[key] = _graphml_value(value)
    return {k: v for k, v in out.items() if v is not None}


def _one_type_per_key(items: list[dict[str, Any]]) -> None:
    """GraphML declares one type per key: where values of a key have several types, ints
    and floats become floats, anything else mixed becomes text (JSON)."""
    kinds: dict[str, set[type]] = {}
    for data in items:
        for key, value in data.items():
            kinds.setdefault(key, set()).add(type(value))
    for key, seen in kinds.items():
        if len(seen) < 2:
            continue
        if seen == {int, float}:
            convert = float
        else:
            def convert(v: Any) -> str:
                return v if isinstance(v, str) else json.dumps(v)
        for data in items:
            if key in data:
                data[key] = convert(data[key])


def graphml_graph(ec: ExperimentController) -> Any:
    """``ec.graph()`` with every attribute as GraphML holds it (what :func:`write_graphml` writes).

    - enum members (``state``, ``outcome``) become their names (``"FINISHED"``);
    - None (an unset ``name``) is left out: GraphML has no null;
    - the ``attributes`` dict becomes one key per attribute, ``attribute.<name>``, so
      that Gephi and yEd show them as columns;
    - other lists and dicts become JSON text;
    - a key whose values have several types gets one (ints with floats: floats; else text);
    - characters XML cannot hold (control characters, carriage return) become ``\\uXXXX``.
    """
    import networkx as nx

    g = ec.graph()
    out = nx.MultiDiGraph(**_flatten(g.graph))
    nodes = [(n, _flatten(d)) for n, d in g.nodes(data=True)]
    edges = [(u, v, k, _flatten(d)) for u, v, k, d in g.edges(keys=True, data=True)]
    _one_type_per_key([d for _, d in nodes])
    _one_type_per_key([d for *_, d in edges])
    out.add_nodes_from(nodes)
    out.add_edges_from(edges)
    return out


def write_graphml(ec: ExperimentController, path: str | os.PathLike[str]) -> str:
    """Write the experiment graph as GraphML (see :func:`graphml_graph`); returns the path."""
    import networkx as nx

    path = os.path.abspath(os.fspath(path))
    nx.write_graphml(graphml_graph(ec), path)
    return path
