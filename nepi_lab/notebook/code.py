"""The Python that builds an experiment: what the builder's "Show code" prints.

:func:`experiment_code` reads the controller (resources, the attributes set to
something else than their default, connections, conditions, traces enabled beyond
the defaults) and writes the NEPI-style script that registers the same experiment,
so that what was built with the mouse can go into a script or a paper.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ..core.attributes import Flags

if TYPE_CHECKING:
    from ..core.controller import ExperimentController

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KEYWORDS = {"guid", "rtype", "connectedTo", "autoDeploy"}


def variable_name(rtype: str, guid: int) -> str:
    """``linux::Application`` guid 3 -> ``application3``."""
    base = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", rtype.rsplit("::", 1)[-1]).lower()
    base = re.sub(r"[^a-z0-9_]", "_", base).strip("_") or "resource"
    return f"{base}{guid}"


def _delay(seconds: float) -> str:
    if seconds and seconds < 1:
        return repr(f"{seconds * 1000:g}ms")
    return repr(f"{seconds:g}s")


def experiment_code(ec: ExperimentController, *, deploy: bool = True, timeout: float = 60) -> str:
    """Python source that rebuilds ``ec``'s experiment with ``register_resource`` and friends.

    Secret attributes (``Flags.NoRead``, ``Flags.Credential``) are left out, with a
    comment saying so.  With ``deploy`` the script also deploys, waits and shuts
    down.

    Example
    -------
    >>> print(experiment_code(ec))          # doctest: +SKIP
    from nepi_lab import ExperimentController, ResourceAction, ResourceState
    ...
    """
    rms = [ec.get_resource(g) for g in ec.resources]
    names = {rm.guid: variable_name(rm.get_rtype(), rm.guid) for rm in rms}
    lines = [
        "from nepi_lab import ExperimentController, ResourceAction, ResourceState",
        "",
        f"ec = ExperimentController(exp_id={ec.exp_id!r})",
    ]
    expected_guid = 1
    for rm in rms:
        args: list[str] = [repr(rm.get_rtype())]
        if rm.guid != expected_guid:
            args.append(f"guid={rm.guid}")
        expected_guid = rm.guid + 1
        values = rm.get_attribute_values()
        secrets = []
        extra: dict[str, Any] = {}
        for name, declaration in rm.get_attribute_declarations().items():
            value = values.get(name)
            if value is None or value == declaration.default or declaration.has_flag(Flags.NoWrite):
                continue
            if declaration.has_flag(Flags.NoRead) or declaration.has_flag(Flags.Credential):
                secrets.append(name)
                continue
            if _IDENTIFIER.fullmatch(name) and name not in _KEYWORDS:
                args.append(f"{name}={value!r}")
            else:
                extra[name] = value
        if extra:
            args.append(f"**{extra!r}")
        line = f"{names[rm.guid]} = ec.register_resource({', '.join(args)})"
        if secrets:
            line += f"  # also set: {', '.join(secrets)} (secret, not shown)"
        lines.append(line)
    connections = sorted({(min(rm.guid, other), max(rm.guid, other)) for rm in rms for other in rm.connections
                          if other in names})
    if connections:
        lines.append("")
        lines += [f"ec.register_connection({names[a]}, {names[b]})" for a, b in connections]
    conditions = [c for rm in rms for group in rm.conditions.values() for c in group]
    if conditions:
        lines.append("")
        for c in conditions:
            after = [names.get(g, str(g)) for g in c.after]
            others = after[0] if len(after) == 1 else "[" + ", ".join(after) + "]"
            delay = f", {_delay(c.delay)}" if c.delay else ""
            lines.append(f"ec.register_condition({names[c.guid]}, ResourceAction.{c.action.name}, {others}, "
                         f"ResourceState.{c.state.name}{delay})")
    traces = []
    for rm in rms:
        for name, declaration in rm.get_trace_declarations().items():
            if rm.trace_enabled(name) and not declaration.enabled:
                traces.append(f"ec.enable_trace({names[rm.guid]}, {name!r})")
    if traces:
        lines.append("")
        lines += traces
    if deploy:
        lines += ["", "ec.deploy()", f"ec.wait_finished(timeout={timeout:g})"]
        lines += [f"print(ec.trace({names[rm.guid]}, {name!r}))" for rm in rms
                  for name in ("stdout",) if name in rm.get_trace_declarations() and rm.trace_enabled(name)]
        lines.append("ec.shutdown()")
    return "\n".join(lines) + "\n"
