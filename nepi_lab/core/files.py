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
import os
import re
import shutil
from typing import TYPE_CHECKING, Any

from .attributes import Flags
from .description import SUPPORTED_VERSIONS, check_description, decode, is_supported, shown
from .errors import (
    ExperimentAttributeError,
    ExperimentFileError,
    ExperimentTypeError,
    ExperimentVersionError,
    InvalidInputError,
    UnknownResourceTypeError,
)
from .registry import get_resource_type, type_origin
from .results import DESCRIPTION, RUN_FORMAT_NAME
from .traces import check_name

if TYPE_CHECKING:
    from .controller import ExperimentController

log = logging.getLogger("nepi_lab")

#: ``"format"`` of a file written by :func:`save` (a run directory's is ``RUN_FORMAT_NAME``).
EXPERIMENT_FORMAT = "nepi_lab.experiment"


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

    Checks the format, the version and the kind of every value, with the checker the
    run-directory reader uses (:func:`nepi_lab.core.description.check_description`: what
    ``nepi-lab show`` refuses, ``load()`` refuses too); raises
    :class:`ExperimentFileError` (or :class:`ExperimentVersionError`) saying what is
    wrong and where (``resources[2].guid``).
    """
    given = os.fspath(path) if isinstance(path, (str, os.PathLike)) else path
    if not isinstance(given, str) or not given or "\x00" in given:
        raise ExperimentFileError(repr(path), "expected the path of a file or a run directory")
    file = given
    if os.path.isdir(file):
        file = os.path.join(file, DESCRIPTION)
        if not os.path.isfile(file):
            raise ExperimentFileError(given, f"a folder without {DESCRIPTION}: give a run directory "
                                             f"(<results>/<exp_id>/<run_id>) or a file written by ec.save()")
    try:
        with open(file, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise ExperimentFileError(given, f"cannot read it: {exc.strerror or exc}") from None

    def refuse(reason: str, line: int | None = None, column: int | None = None) -> ExperimentFileError:
        if column is not None:  # a JSON syntax error (a byte that is not UTF-8 is in the reason)
            reason += f" (line {line}, column {column})"
        return ExperimentFileError(file, reason)

    data = decode(raw, "an experiment", refuse)
    form = data.get("format") if isinstance(data, dict) else None
    if form not in (EXPERIMENT_FORMAT, RUN_FORMAT_NAME):
        what = f'its "format" is {shown(form)}' if form is not None else 'it has no "format"'
        raise refuse(f'not a nepi_lab experiment: {what}; expected "{EXPERIMENT_FORMAT}" (ec.save()) '
                     f'or "{RUN_FORMAT_NAME}" (a run directory)')
    version = data.get("version")
    if not is_supported(version):
        raise ExperimentVersionError(file, version, SUPPORTED_VERSIONS)
    check_description(data, refuse)
    return file, data


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
    unset = ec._secrets_to_set
    if unset:
        shown = "; ".join(f"resource {guid}: {', '.join(names)}" for guid, names in unset.items())
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
    - None (an unset ``name``) is left out: GraphML has no null; so are secret values
      (``Flags.NoRead``, ``Flags.Credential``);
    - the ``attributes`` dict becomes one key per attribute, ``attribute.<name>``, so
      that Gephi and yEd show them as columns;
    - other lists and dicts become JSON text;
    - a key whose values have several types gets one (ints with floats: floats; else text);
    - characters XML cannot hold (control characters, carriage return) become ``\\uXXXX``.
    """
    import networkx as nx

    g = ec.graph()
    out = nx.MultiDiGraph(**_flatten(g.graph))
    nodes = []
    for n, data in g.nodes(data=True):
        secret = ec.get_resource(n)._secret_attributes  # a file never holds a secret value
        if secret:
            data = {**data, "attributes": {k: v for k, v in data["attributes"].items() if k not in secret}}
        nodes.append((n, _flatten(data)))
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
