"""The notebook layer: views over an :class:`~nepi_lab.ExperimentController` and a
:class:`~nepi_lab.Sweep`.

Everything here reads the controller (``ec.graph()``, ``ec.explain()``, states) and
subscribes to ``ec.events`` (a sweep's view: ``sweep.subscribe``); nothing here
changes how an experiment runs.  The
widgets import ipywidgets and matplotlib, so they are loaded lazily: importing this
package, or showing ``ec`` as HTML, loads neither.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> the module that defines it.
_EXPORTS = {
    "CONDITION_COLOR": "colors",
    "CONNECTION_COLOR": "colors",
    "ChecksView": "checks_view",
    "STATE_COLORS": "colors",
    "SWEEP_STATE_COLORS": "colors",
    "ExperimentBuilder": "builder",
    "ExplainView": "panels",
    "GraphView": "graph",
    "ProgressView": "progress",
    "ResourceTable": "panels",
    "StableLayout": "layout",
    "SweepView": "sweep",
    "TopologyView": "topology_view",
    "auto_progress": "progress",
    "controller_html": "html",
    "draw": "drawing",
    "draw_topology": "topology_view",
    "experiment_code": "code",
    "resource_html": "html",
    "show_progress": "progress",
    "state_color": "colors",
    "sweep_html": "html",
    "sweep_view": "sweep",
    "topology_graph": "topology_view",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
