"""Lab spec files: a lab's checks in YAML or JSON, so a teacher ships checks without code.

Format, version 1 (YAML shown; JSON has the same structure)::

    version: 1                    # required: the format version
    title: Lab 1 - routing        # optional
    checks:                       # required: a list, one entry per check
      - kind: reachable           # required: a check kind (nepi_lab.lab.check_kinds())
        resource: ping            # then the kind's fields (see each check class)
        max_loss: 0
        points: 2                 # optional, every kind: points (default 1)
        name: h1 reaches h2       # optional, every kind: the name in the results
      - kind: route
        node: h1
        destination: 10.0.2.0/24
        gateway: 10.0.1.254

A ``custom`` check names its function as ``module:function``; loading the spec imports
that module (its code runs): load spec files you trust.

Errors: a file that is not valid JSON or YAML, a missing or unknown ``version``, an
unknown key (at the top or in a check), an unknown kind, or a field of the wrong kind
raises :class:`LabSpecError`, whose message names the file and the line (and the
known keys or kinds).

YAML needs `PyYAML <https://pypi.org/project/PyYAML/>`_, which nepi_lab does not
require (it comes with Dask and Jupyter; ``pip install 'nepi_lab[lab]'`` installs it).
Without it a ``.yaml`` spec is refused with that advice, and JSON always works.
Which format a file is in: ``.json`` is JSON, ``.yaml``/``.yml`` YAML; another
extension is read as JSON when it starts with ``{``, else as YAML.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from ..core.errors import InvalidInputError
from .checks import Check, CheckFieldError, check_kinds

if TYPE_CHECKING:
    from .lab import Lab

#: The spec format version this nepi_lab writes and reads.
SPEC_VERSION = 1
#: Keys of the top level of a spec.
TOP_KEYS = ("version", "title", "checks")


class LabSpecError(InvalidInputError):
    """A spec file that cannot be read: ``.path``, ``.line`` (1-based, or None), ``.reason``."""

    def __init__(self, path: str, line: int | None, reason: str) -> None:
        self.path, self.line, self.reason = path, line, reason
        where = f"{path}, line {line}" if line is not None else path
        super().__init__(f"{where}: {reason}")


# == located values: dicts and lists that know their lines ===========================


class _Map(dict):  # type: ignore[type-arg]
    """A mapping read from a file: ``.line`` (where it starts), ``.lines`` (of each key)."""

    line: int | None = None
    lines: dict[str, int]


class _List(list):  # type: ignore[type-arg]
    """A list read from a file: ``.line`` and ``.lines`` (of each item)."""

    line: int | None = None
    lines: list[int]


def _line_of(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


def _parse_json(text: str, path: str) -> Any:
    """JSON with the line of every object, key and array item.

    The pure-Python scanner of :mod:`json` with its object and array readers wrapped:
    each wrapper hands the reader a ``scan_once`` that records where every value
    starts (a key's value starts on the key's line, an array item where it begins).
    """
    from json import scanner
    from json.decoder import JSONArray, JSONObject

    def recording(scan: Any, positions: list[int]) -> Any:
        def scan_value(s: str, index: int) -> Any:
            positions.append(index)
            return scan(s, index)
        return scan_value

    def parse_object(s_and_end: tuple[str, int], strict: bool, scan: Any, hook: Any, pairs_hook: Any,
                     memo: Any) -> tuple[Any, int]:
        s, end = s_and_end
        positions: list[int] = []
        pairs, after = JSONObject(s_and_end, strict, recording(scan, positions), None, list, memo)
        return _located_map(pairs, positions, s, end - 1), after

    def parse_array(s_and_end: tuple[str, int], scan: Any) -> tuple[Any, int]:
        s, end = s_and_end
        positions: list[int] = []
        items, after = JSONArray(s_and_end, recording(scan, positions))
        located = _List(items)
        located.line = _line_of(s, end - 1)
        located.lines = [_line_of(s, p) for p in positions]
        return located, after

    scan_once = scanner.py_make_scanner(_ScannerContext(parse_object, parse_array))
    try:
        value, end = scan_once(text, _skip(text, 0))
    except json.JSONDecodeError as exc:
        raise LabSpecError(path, exc.lineno, f"not valid JSON: {exc.msg} (column {exc.colno})") from None
    except StopIteration as exc:
        raise LabSpecError(path, _line_of(text, exc.value), "not valid JSON: expecting a value") from None
    end = _skip(text, end)
    if end != len(text):
        raise LabSpecError(path, _line_of(text, end), "not valid JSON: extra data after the document")
    return value


class _ScannerContext:
    """What :func:`json.scanner.py_make_scanner` reads from a decoder, with our readers."""

    def __init__(self, parse_object: Any, parse_array: Any) -> None:
        plain = json.JSONDecoder()
        self.strict = True
        self.object_hook = None
        self.object_pairs_hook = list
        self.parse_float = plain.parse_float
        self.parse_int = plain.parse_int
        self.parse_constant = plain.parse_constant
        self.parse_string = plain.parse_string
        self.memo: dict[str, str] = {}
        self.parse_object = parse_object
        self.parse_array = parse_array


def _skip(text: str, index: int) -> int:
    while index < len(text) and text[index] in " \t\r\n":
        index += 1
    return index


def _located_map(pairs: list[tuple[str, Any]], positions: list[int], text: str, start: int) -> _Map:
    located = _Map()
    located.line = _line_of(text, start)
    located.lines = {}
    for (key, value), position in zip(pairs, positions, strict=False):
        if key in located:
            raise LabSpecError("", _line_of(text, position), f"the key {key!r} appears twice")
        located[key] = value
        located.lines[key] = _line_of(text, position)
    return located


def _parse_yaml(text: str, path: str) -> Any:
    """YAML (safe) with the line of every mapping, key and sequence item (node marks)."""
    try:
        import yaml
    except ImportError:
        raise LabSpecError(path, None, "reading YAML needs PyYAML: pip install pyyaml (or "
                                       "pip install 'nepi_lab[lab]'), or write the spec as JSON") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        return _from_node(loader, node, path)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise LabSpecError(path, line, f"not valid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise LabSpecError(path, None, f"not valid YAML: {exc}") from None
    finally:
        loader.dispose()


def _from_node(loader: Any, node: Any, path: str) -> Any:
    import yaml

    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        located = _Map()
        located.line, located.lines = line, {}
        for key_node, value_node in node.value:
            key = _from_node(loader, key_node, path)
            where = key_node.start_mark.line + 1
            if not isinstance(key, str):
                raise LabSpecError(path, where, f"keys are strings, not {key!r}")
            if key in located:
                raise LabSpecError(path, where, f"the key {key!r} appears twice")
            located[key] = _from_node(loader, value_node, path)
            located.lines[key] = where
        return located
    if isinstance(node, yaml.SequenceNode):
        items = _List(_from_node(loader, item, path) for item in node.value)
        items.line, items.lines = line, [item.start_mark.line + 1 for item in node.value]
        return items
    return loader.construct_object(node, deep=True)


# == reading ========================================================================


def _format(path: str, text: str | None = None) -> str:
    extension = os.path.splitext(path)[1].lower()
    if extension == ".json":
        return "json"
    if extension in (".yaml", ".yml"):
        return "yaml"
    if text is not None:
        return "json" if text.lstrip().startswith("{") else "yaml"
    return "json"


def parse_spec(text: str, path: str = "<spec>", format: str | None = None) -> Lab:
    """A :class:`~nepi_lab.lab.Lab` from the text of a spec (``format``: ``json``,
    ``yaml``, or None to tell from ``path`` and the text); :class:`LabSpecError` names
    the line of what is wrong."""
    fmt = format or _format(path, text)
    if fmt not in ("json", "yaml"):
        raise InvalidInputError(f"format={format!r}: use json or yaml")
    try:
        document = _parse_json(text, path) if fmt == "json" else _parse_yaml(text, path)
    except LabSpecError as exc:
        if exc.path == "":  # raised deep in the JSON reader: give it the file
            raise LabSpecError(path, exc.line, exc.reason) from None
        raise
    return _lab_from(document, path)


def read_spec(path: str | os.PathLike[str]) -> Lab:
    """Read a spec file (see the module docstring)."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError as exc:
        raise LabSpecError(path, None, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return parse_spec(text, path)


def _lab_from(document: Any, path: str) -> Lab:
    from .lab import Lab

    if not isinstance(document, _Map):
        raise LabSpecError(path, getattr(document, "line", 1 if document is not None else None),
                           "a lab spec is a mapping with version, title and checks "
                           f"(it holds {_kind_of(document)})")
    _known(document, TOP_KEYS, "the top level", path)
    if "version" not in document:
        raise LabSpecError(path, document.line, f"no version: write version: {SPEC_VERSION} first")
    version = document["version"]
    if version != SPEC_VERSION or isinstance(version, bool):
        raise LabSpecError(path, document.lines["version"],
                           f"version {version!r} is not one this nepi_lab reads ({SPEC_VERSION})")
    title = document.get("title")
    if title is not None and (not isinstance(title, str) or not title.strip()):
        raise LabSpecError(path, document.lines["title"], f"title is a non-empty string, not {title!r}")
    checks = document.get("checks")
    if not isinstance(checks, _List) or not checks:
        raise LabSpecError(path, document.lines.get("checks", document.line),
                           "checks is a non-empty list of checks (each a mapping with a kind)")
    made = [_check_from(entry, line, path) for entry, line in zip(checks, checks.lines, strict=True)]
    named: dict[str, int] = {}
    for check, line in zip(made, checks.lines, strict=True):
        if check.title in named:
            raise LabSpecError(path, line, f"this check and the one at line {named[check.title]} are both "
                                           f"named {check.title!r}: give one a name")
        named[check.title] = line
    try:
        return Lab(made, title=title)
    except InvalidInputError as exc:
        raise LabSpecError(path, checks.line, str(exc)) from None


def _kind_of(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return "nothing" if value is None else f"a {type(value).__name__}: {value!r}"


def _known(mapping: _Map, keys: Any, where: str, path: str) -> None:
    for key in mapping:
        if key not in keys:
            raise LabSpecError(path, mapping.lines[key],
                               f"unknown key {key!r} in {where}; the known keys are: {', '.join(keys)}")


def _check_from(entry: Any, line: int, path: str) -> Check:
    kinds = check_kinds()
    if not isinstance(entry, _Map):
        raise LabSpecError(path, line, f"a check is a mapping with a kind, not {entry!r}")
    kind = entry.get("kind")
    if kind is None:
        raise LabSpecError(path, entry.line,
                           f"a check without a kind; the kinds are: {', '.join(sorted(kinds))}")
    if kind not in kinds:
        raise LabSpecError(path, entry.lines["kind"],
                           f"unknown check kind {kind!r}; the kinds are: {', '.join(sorted(kinds))}")
    cls = kinds[kind]
    fields = cls.field_names()
    _known(entry, ["kind", *fields], f"a {kind} check", path)
    values = {k: _plain(v) for k, v in entry.items() if k != "kind"}
    try:
        return cls(**values)
    except CheckFieldError as exc:
        raise LabSpecError(path, entry.lines.get(exc.field, entry.line), str(exc)) from None
    except (InvalidInputError, TypeError) as exc:
        raise LabSpecError(path, entry.line, f"{kind} check: {exc}") from None


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


# == writing ========================================================================


def lab_to_spec(lab: Lab) -> dict[str, Any]:
    """The spec document of ``lab`` (plain dicts and lists)."""
    document: dict[str, Any] = {"version": SPEC_VERSION}
    if lab.title is not None:
        document["title"] = lab.title
    document["checks"] = [check.to_spec() for check in lab.checks]
    return document


def spec_text(lab: Lab, format: str = "json") -> str:
    """The text of ``lab``'s spec file, as JSON or YAML."""
    document = lab_to_spec(lab)
    if format == "json":
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if format == "yaml":
        try:
            import yaml
        except ImportError:
            raise InvalidInputError("writing YAML needs PyYAML: pip install pyyaml (or "
                                    "pip install 'nepi_lab[lab]'), or save the spec as .json") from None
        return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    raise InvalidInputError(f"format={format!r}: use json or yaml")


def write_spec(lab: Lab, path: str | os.PathLike[str]) -> None:
    """Write ``lab`` to ``path``: YAML for ``.yaml``/``.yml``, else JSON."""
    path = os.fspath(path)
    text = spec_text(lab, _format(path))
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
