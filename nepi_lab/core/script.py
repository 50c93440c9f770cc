"""The Python script that rebuilds an experiment: ``ec.to_script()``.

The builder's "Show code" prints the same script (``nepi_lab.notebook.experiment_code``
calls :func:`experiment_script`).  It registers the same resources with the same
guids, sets the same attribute values, makes the same connections and conditions
(delays exact) and enables the same traces, so running it gives a controller whose
``description()`` equals the original's but for the run (``run_id``, states, failures).

What it leaves out, as a saved file does (see :func:`nepi_lab.core.files.save`):
secret values (``Flags.NoRead``, ``Flags.Credential``: a comment names them) and the
values a resource sets itself (``Flags.NoWrite``).  Types that are not nepi_lab's own
are imported from the module that defined them (a type defined in a notebook or a
script gets a comment instead: define it first).

With ``deploy=False`` (the default of ``to_script``) the script stops once the
experiment is built, leaving ``ec`` to the reader (deploy it, or save it); with
``deploy=True`` (the builder's) it also deploys, waits for the end, prints the
``stdout`` traces and shuts down, so it runs as a program.
"""

from __future__ import annotations

import keyword
import re
from typing import TYPE_CHECKING, Any

from .attributes import Flags
from .times import parse_delay

if TYPE_CHECKING:
    from .controller import ExperimentController

#: Keywords of ``register_resource`` that are not attributes: such attributes are set apart.
_RESERVED = {"guid", "rtype", "connectedTo", "autoDeploy"}


def variable_name(rtype: str, guid: int) -> str:
    """``linux::Application`` guid 3 -> ``application3``."""
    base = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", rtype.rsplit("::", 1)[-1]).lower()
    base = re.sub(r"[^a-z0-9_]", "_", base).strip("_") or "resource"
    return f"{base}{guid}"


def delay_literal(seconds: float) -> str:
    """The shortest readable literal that ``register_condition`` reads back as exactly ``seconds``:
    ``'1.5s'``, ``'500ms'``, else the number itself."""
    candidates = [f"{seconds * 1000:g}ms"] if 0 < seconds < 1 else []
    candidates.append(f"{seconds:g}s")
    for text in candidates:
        if "e" not in text and parse_delay(text) == seconds:
            return repr(text)
    return repr(seconds)


def _keyword_ok(name: str) -> bool:
    return name.isidentifier() and not keyword.iskeyword(name) and name not in _RESERVED


def experiment_script(ec: ExperimentController, *, deploy: bool = False, timeout: float = 60) -> str:
    """Python source that rebuilds ``ec``'s experiment (see the module docstring).

    Parameters
    ----------
    deploy : bool
        Also deploy, wait up to ``timeout`` seconds for the end, print the ``stdout``
        traces and shut down.
    timeout : float
        The ``wait_finished`` timeout written when ``deploy`` is True.

    Example
    -------
    >>> import shutil, tempfile
    >>> from nepi_lab import ExperimentController
    >>> results = tempfile.mkdtemp()
    >>> with ExperimentController(exp_id="ping", local_dir=results) as ec:
    ...     node = ec.register_resource("linux::Node", hostname="localhost")
    ...     ping = ec.register_resource("linux::Ping", connectedTo=node, target="127.0.0.1")
    ...     print(experiment_script(ec))
    from nepi_lab import ExperimentController, ResourceAction, ResourceState
    <BLANKLINE>
    ec = ExperimentController(exp_id='ping')
    node1 = ec.register_resource('linux::Node', hostname='localhost')
    ping2 = ec.register_resource('linux::Ping', target='127.0.0.1')
    <BLANKLINE>
    ec.register_connection(node1, ping2)
    >>> shutil.rmtree(results)
    """
    description = ec.description()
    entries = description["resources"]
    names = {e["guid"]: variable_name(e["type"], e["guid"]) for e in entries}
    imports = ["from nepi_lab import ExperimentController, ResourceAction, ResourceState"]
    notes = []
    for rtype, spec in description["types"].items():
        module = (spec.get("origin") or {}).get("module") or ""
        if module == "__main__":
            notes.append(f"# {rtype} is defined in a script or a notebook: define it before this runs")
        elif module and module.split(".")[0] != "nepi_lab":
            line = f"import {module}  # defines {rtype}"
            if line not in imports:
                imports.append(line)
    lines = [*imports, *notes, "", f"ec = ExperimentController(exp_id={ec.exp_id!r})"]
    expected_guid = 1
    for entry in entries:
        guid, rtype = entry["guid"], entry["type"]
        table = ec.get_resource(guid).get_attribute_declarations()
        args: list[str] = [repr(rtype)]
        if guid != expected_guid:
            args.append(f"guid={guid}")
        expected_guid = guid + 1
        extra: dict[str, Any] = {}
        apart: list[str] = []
        for name, value in sorted(entry.get("attributes", {}).items()):
            if name in table and table[name].flags & Flags.NoWrite:
                continue
            if _keyword_ok(name):
                args.append(f"{name}={value!r}")
            elif name in _RESERVED:
                apart.append(f"ec.set({names[guid]}, {name!r}, {value!r})")
            else:
                extra[name] = value
        if extra:
            args.append(f"**{extra!r}")
        line = f"{names[guid]} = ec.register_resource({', '.join(args)})"
        if entry.get("secrets"):
            line += f"  # also set: {', '.join(entry['secrets'])} (secret, not shown)"
        lines.append(line)
        lines += apart
    connections = sorted({(min(e["guid"], o), max(e["guid"], o)) for e in entries
                          for o in e.get("connections", ()) if o in names})
    if connections:
        lines.append("")
        lines += [f"ec.register_connection({names[a]}, {names[b]})" for a, b in connections]
    if description["conditions"]:
        lines.append("")
        for c in description["conditions"]:
            after = [names.get(g, str(g)) for g in c["after"]]
            others = after[0] if len(after) == 1 else "[" + ", ".join(after) + "]"
            delay = f", {delay_literal(c['delay'])}" if c["delay"] else ""
            lines.append(f"ec.register_condition({names[c['guid']]}, ResourceAction.{c['action']}, {others}, "
                         f"ResourceState.{c['state']}{delay})")
    declared = {rtype: spec["traces"] for rtype, spec in description["types"].items()}
    traces = [f"ec.enable_trace({names[e['guid']]}, {name!r})" for e in entries
              for name in e.get("traces", ()) if not declared[e["type"]][name]["enabled"]]
    if traces:
        lines.append("")
        lines += traces
    if deploy:
        lines += ["", "ec.deploy()", f"ec.wait_finished(timeout={timeout:g})"]
        lines += [f"print(ec.trace({names[e['guid']]}, 'stdout'))" for e in entries
                  if "stdout" in description["types"][e["type"]]["traces"]
                  and ec.trace_enabled(e["guid"], "stdout")]
        lines.append("ec.shutdown()")
    return "\n".join(lines) + "\n"
