"""The experiment description, decoded and checked once, for every reader of it.

A run directory's ``experiment.json`` and a file written by ``ec.save()`` hold the
same description (its format is documented in :mod:`nepi_lab.core.results`).  Two
readers take it, each reading its bytes its own way and raising its own error:

- :func:`nepi_lab.core.run_directory.read_description` (``nepi-lab show``, the
  analysis frames) reads ``experiment.json`` without leaving the run directory and
  raises :class:`~nepi_lab.core.errors.RunDirectoryError`;
- :func:`nepi_lab.core.files.read_description` (``ExperimentController.load``) takes
  a saved file or a run directory and raises
  :class:`~nepi_lab.core.errors.ExperimentFileError`.

Both decode the bytes with :func:`decode` and check the values with
:func:`check_description`, so a description one of them refuses the other refuses
too, with the same words: a run directory ``load()`` accepts can be shown and
analysed, and the other way round.

Both functions take ``refuse``, the caller's error factory: it is called with the
reason in words, naming the place (``resources[2].guid must be an integer in
[0, 2**63 - 1], not "x"``), and for damaged JSON the line and column, and returns the
exception to raise.
"""

from __future__ import annotations

import json
import math
from typing import Any, Protocol

from .results import RUN_FORMAT

#: Versions of the description this nepi_lab reads (saved files and run directories share them).
SUPPORTED_VERSIONS = (RUN_FORMAT,)
#: The largest guid: guids are int64 in the frames and in the controller's event log.
MAX_GUID = 2**63 - 1


class Refuse(Protocol):
    """The caller's error factory (see the module docstring)."""

    def __call__(self, reason: str, line: int | None = None, column: int | None = None) -> Exception:
        """The error saying ``reason``; ``line`` (and ``column`` for a JSON syntax error) say where."""
        ...


def decode(raw: bytes, what: str, refuse: Refuse) -> Any:
    """The JSON value of ``raw``, or ``refuse``'s error saying why there is none.

    ``what`` names what the bytes should hold (``"an experiment"``): it is said where
    the JSON is well formed but cannot be read, nested too deeply for Python's
    recursion limit, or holding an integer of more digits than Python converts.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise refuse(f"not UTF-8 text (byte {exc.start})", raw.count(b"\n", 0, exc.start) + 1) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise refuse(f"not valid JSON: {exc.msg}", exc.lineno, exc.colno) from None
    except RecursionError:
        raise refuse(f"not {what}: nested too deeply") from None
    except ValueError as exc:  # an integer of thousands of digits
        raise refuse(f"not {what}: {exc}") from None


def is_supported(version: Any) -> bool:
    """Whether this nepi_lab reads a description of format ``version`` (an int: 1.0 is not 1)."""
    return type(version) is int and version in SUPPORTED_VERSIONS


def shown(value: Any) -> str:
    """``value`` as JSON (as the file holds it), cut to about 80 characters."""
    text = json.dumps(value, ensure_ascii=False, default=repr)
    return text if len(text) <= 80 else text[:60] + f"... ({len(text)} characters)"


def check_description(data: dict[str, Any], refuse: Refuse) -> None:
    """Raise ``refuse(reason)`` for the first value of ``data`` of a kind a reader cannot use.

    ``data`` is a decoded description whose format and version its reader has checked.
    What is checked, so that every reader can rely on it:

    - ``exp_id``, ``run_id``, ``ecstate``: strings, or absent (null);
    - ``parameters``: an object of name -> a string, number, boolean or null (or absent);
    - ``types``: an object of type name -> declaration (an object); in each,
      ``origin`` an object of strings or nulls (or null), ``bases`` a list of type
      names, ``attributes`` and ``traces`` objects of name -> object, each attribute's
      ``type`` a string (or null);
    - ``resources``: a list of objects, each with a ``guid`` in [0, 2**63 - 1] no other
      resource has and a ``type`` that can name a folder (not empty, without '/' or
      NUL: ``<guid>-<type>`` is the resource's folder in its run directory);
      ``attributes`` an object, ``traces`` and ``secrets`` lists of names,
      ``connections`` a list of guids of the description's resources;
    - ``conditions``: a list of objects whose ``guid`` and ``after`` (not empty) are
      guids of the description's resources, ``action`` and ``state`` names, ``delay``
      seconds >= 0 (or null);
    - ``failures``: a list of objects with a ``guid``, string fields and an integer
      ``returncode`` (or null).

    Keys of resources and type declarations that the controller never writes as null
    are refused as null (a reader uses them as they are); absent keys take their
    empty default.
    """

    def wrong(where: str, rule: str, value: Any) -> Exception:
        return refuse(f"{where} {rule}, not {shown(value)}")

    def is_int(value: Any) -> bool:
        return type(value) is int

    def is_guid(value: Any) -> bool:
        return type(value) is int and 0 <= value <= MAX_GUID

    def is_names(value: Any) -> bool:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)

    for key in ("exp_id", "run_id", "ecstate"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise wrong(key, "must be a string", data[key])
    parameters = data.get("parameters", {})
    if not isinstance(parameters, dict):
        raise wrong("parameters", "must be an object of name -> value", parameters)
    for name, value in parameters.items():
        if not (value is None or isinstance(value, (str, int, float, bool))):
            raise wrong(f"parameters[{json.dumps(name)}]", "must be a string, number, boolean or null", value)

    types = data.get("types", {})
    if not isinstance(types, dict):
        raise wrong("types", "must be an object of type name -> declaration", types)
    for name, spec in types.items():
        where = f"types[{json.dumps(name)}]"
        if not isinstance(spec, dict):
            raise wrong(where, "must be an object (help, bases, attributes, traces, origin)", spec)
        origin = spec.get("origin")
        if origin is not None and not (isinstance(origin, dict) and all(
                v is None or isinstance(v, str) for v in origin.values())):
            raise wrong(f"{where}.origin", "must be an object of strings", origin)
        if not is_names(spec.get("bases", [])):
            raise wrong(f"{where}.bases", "must be a list of type names", spec["bases"])
        for table in ("attributes", "traces"):
            declarations = spec.get(table, {})
            if not isinstance(declarations, dict):
                raise wrong(f"{where}.{table}", "must be an object of name -> declaration", declarations)
            for item, declaration in declarations.items():
                if not isinstance(declaration, dict):
                    raise wrong(f"{where}.{table}[{json.dumps(item)}]", "must be an object", declaration)
        for attribute, declaration in spec.get("attributes", {}).items():
            if declaration.get("type") is not None and not isinstance(declaration["type"], str):
                raise wrong(f"{where}.attributes[{json.dumps(attribute)}].type",
                            "must be a value type name (STRING, INTEGER ...)", declaration["type"])

    resources = data.get("resources")
    if not isinstance(resources, list):
        raise wrong("resources", 'must be a list of {"guid": int, "type": str, ...}', resources)
    guids: set[int] = set()
    for index, entry in enumerate(resources):
        where = f"resources[{index}]"
        if not isinstance(entry, dict):
            raise wrong(where, 'must be an object {"guid": int, "type": str, ...}', entry)
        guid = entry.get("guid")
        if not is_guid(guid):
            raise wrong(f"{where}.guid", "must be an integer in [0, 2**63 - 1]", guid)
        if guid in guids:
            raise wrong(f"{where}.guid", "must be unique: another resource has it", guid)
        guids.add(guid)
        rtype = entry.get("type")
        # it names the resource's folder: one path component, whatever the file says
        if not isinstance(rtype, str) or not rtype or "/" in rtype or "\x00" in rtype:
            raise wrong(f"{where}.type", "must be a type name (not empty, without '/' or NUL)", rtype)
        if not isinstance(entry.get("attributes", {}), dict):
            raise wrong(f"{where}.attributes", "must be an object of attribute name -> value",
                        entry["attributes"])
        for key, rule in (("traces", "trace names"), ("secrets", "attribute names")):
            if not is_names(entry.get(key, [])):
                raise wrong(f"{where}.{key}", f"must be a list of {rule}", entry[key])
        connections = entry.get("connections", [])
        if not isinstance(connections, list) or not all(is_int(g) for g in connections):
            raise wrong(f"{where}.connections", "must be a list of guids", connections)
    for index, entry in enumerate(resources):  # once every guid is known
        for other in entry.get("connections", []):
            if other not in guids:
                raise wrong(f"resources[{index}].connections", "must name resources of the file", other)

    for key in ("conditions", "failures"):
        records = data.get(key, [])
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise wrong(key, "must be a list of objects", records)
    for index, condition in enumerate(data.get("conditions", [])):
        where = f"conditions[{index}]"
        if not is_guid(condition.get("guid")) or condition["guid"] not in guids:
            raise wrong(f"{where}.guid", "must be the guid of a resource of the file", condition.get("guid"))
        after = condition.get("after")
        if not isinstance(after, list) or not after or not all(is_guid(g) and g in guids for g in after):
            raise wrong(f"{where}.after", "must be a non-empty list of guids of the file's resources", after)
        for key in ("action", "state"):
            if not isinstance(condition.get(key), str):
                raise wrong(f"{where}.{key}", "must be a name (START, STARTED ...)", condition.get(key))
        delay = condition.get("delay", 0)
        if delay is not None and (type(delay) not in (int, float) or not math.isfinite(delay) or delay < 0):
            raise wrong(f"{where}.delay", "must be a number of seconds >= 0", delay)
    for index, failure in enumerate(data.get("failures", [])):
        where = f"failures[{index}]"
        if not is_guid(failure.get("guid")):
            raise wrong(f"{where}.guid", "must be an integer in [0, 2**63 - 1]", failure.get("guid"))
        for key in ("step", "error", "message", "rtype", "state"):
            if failure.get(key) is not None and not isinstance(failure[key], str):
                raise wrong(f"{where}.{key}", "must be a string", failure[key])
        returncode = failure.get("returncode")
        if returncode is not None and (not is_int(returncode) or abs(returncode) > MAX_GUID):
            raise wrong(f"{where}.returncode", "must be an integer (an exit status)", returncode)
