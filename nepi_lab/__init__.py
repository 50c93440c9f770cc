"""nepi_lab: network experiments as resource graphs, run for real, watched in Jupyter.

The public surface is listed in ``__all__``; everything else is private.

Example
-------
>>> from nepi_lab import ExperimentController, ResourceState
>>> ResourceState.STARTED > ResourceState.READY
True
"""

from __future__ import annotations

from .core.attributes import Alias, Attribute, Flags, Types
from .core.conditions import Condition
from .core.controller import ExperimentController, ScheduledTask, TaskStatus
from .core.errors import (
    AttributeValueError,
    CommandError,
    CommandTimeoutError,
    ConditionCycleError,
    ConditionError,
    ControllerClosedError,
    DownloadError,
    DuplicateGuidError,
    ExperimentAttributeError,
    ExperimentFailedError,
    ExperimentFileError,
    ExperimentTypeError,
    ExperimentVersionError,
    InvalidConnectionError,
    InvalidInputError,
    InvalidTransitionError,
    MissingCommandsError,
    MissingTraceError,
    NepiError,
    PackageInstallError,
    ReadOnlyAttributeError,
    ResourceFailedError,
    ResultsDirectoryError,
    ResultsWriteError,
    SweepError,
    TimeFormatError,
    UnknownAttributeError,
    UnknownGuidError,
    UnknownResourceTypeError,
    UnknownTraceError,
    UnreachableStateError,
    UnsafeNameError,
    WaitTimeoutError,
)
from .core.events import Event, EventLog
from .core.registry import get_resource_type, register_type, resource_types
from .core.resource import Failure, ResourceManager, TopologyRole
from .core.states import ECState, FailureLevel, ResourceAction, ResourceState
from .core.times import parse_delay
from .core.traces import Trace, TraceAttr

__version__ = "0.1.0"

#: Names of the analysis layer, imported on first use (PEP 562) so that
#: ``import nepi_lab`` loads neither the analysis code nor pandas or matplotlib.
_LAZY = {
    name: "nepi_lab.analysis"
    for name in (
        "Run", "RunDirectoryError", "RunFormatError", "RunSet", "TraceNotFoundError",
        "UnknownParserError", "events_frame", "flows_frame", "load_run", "load_runs", "register_parser",
        "resources_frame", "sweep_frame", "sweep_summary", "trace_frame",
    )
}
#: The runner layer (repetitions, sweeps), likewise: it sits above the core.
_LAZY.update(dict.fromkeys(("ExperimentRunner", "Sweep", "load_sweep"), "nepi_lab.runner"))
#: The notebook layer's widgets, likewise (they load ipywidgets and matplotlib).
_LAZY.update(dict.fromkeys(("ChecksView", "ExperimentBuilder", "ExplainView", "GraphView", "ProgressView",
                            "TopologyView", "draw_topology"), "nepi_lab.notebook"))


def _register_views() -> None:
    """The notebook layer shows the engine's objects (``ec`` in a cell, ``ec.draw()``);
    its modules are imported on the first call, not here."""
    import importlib

    from .core.display import register_view

    def lazy(module: str, name: str):  # noqa: ANN202
        def call(*args: object, **kwargs: object) -> object:
            return getattr(importlib.import_module(module), name)(*args, **kwargs)

        return call

    register_view("controller_html", lazy("nepi_lab.notebook.html", "controller_html"))
    register_view("resource_html", lazy("nepi_lab.notebook.html", "resource_html"))
    register_view("draw", lazy("nepi_lab.notebook.drawing", "draw"))
    # sweeps and repetitions (runs layer) are tabulated by the analysis layer above it
    register_view("sweep_frame", lazy("nepi_lab.analysis.sweep", "sweep_frame"))
    register_view("sweep_summary", lazy("nepi_lab.analysis.sweep", "sweep_summary"))
    register_view("runner_frame", lazy("nepi_lab.analysis.sweep", "runner_frame"))
    register_view("sweep_plot", lazy("nepi_lab.analysis.plots", "plot_sweep"))
    # and shown live by the notebook layer (sweep.view(), a sweep on a cell's last line)
    register_view("sweep_view", lazy("nepi_lab.notebook.sweep", "sweep_view"))
    register_view("sweep_html", lazy("nepi_lab.notebook.html", "sweep_html"))


_register_views()


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nepi_lab' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups do not come here again
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

__all__ = [
    "Alias",
    "Attribute",
    "AttributeValueError",
    "ChecksView",
    "CommandError",
    "CommandTimeoutError",
    "Condition",
    "ConditionCycleError",
    "ConditionError",
    "ControllerClosedError",
    "DownloadError",
    "DuplicateGuidError",
    "ECState",
    "Event",
    "EventLog",
    "ExperimentAttributeError",
    "ExperimentBuilder",
    "ExperimentController",
    "ExperimentFailedError",
    "ExperimentFileError",
    "ExperimentRunner",
    "ExperimentTypeError",
    "ExperimentVersionError",
    "ExplainView",
    "Failure",
    "FailureLevel",
    "Flags",
    "GraphView",
    "InvalidConnectionError",
    "InvalidInputError",
    "InvalidTransitionError",
    "MissingCommandsError",
    "MissingTraceError",
    "NepiError",
    "PackageInstallError",
    "ProgressView",
    "ReadOnlyAttributeError",
    "ResourceAction",
    "ResourceFailedError",
    "ResourceManager",
    "ResourceState",
    "ResultsDirectoryError",
    "ResultsWriteError",
    "Run",
    "RunDirectoryError",
    "RunFormatError",
    "RunSet",
    "ScheduledTask",
    "Sweep",
    "SweepError",
    "TaskStatus",
    "TimeFormatError",
    "TopologyRole",
    "TopologyView",
    "Trace",
    "TraceAttr",
    "TraceNotFoundError",
    "Types",
    "UnknownAttributeError",
    "UnknownGuidError",
    "UnknownParserError",
    "UnknownResourceTypeError",
    "UnknownTraceError",
    "UnreachableStateError",
    "UnsafeNameError",
    "WaitTimeoutError",
    "draw_topology",
    "events_frame",
    "flows_frame",
    "get_resource_type",
    "load_run",
    "load_runs",
    "load_sweep",
    "parse_delay",
    "register_parser",
    "register_type",
    "resource_types",
    "resources_frame",
    "sweep_frame",
    "sweep_summary",
    "trace_frame",
]
