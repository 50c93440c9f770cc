"""nepi_lab: network experiments as resource graphs, run for real, watched in Jupyter.

The public surface is listed in ``__all__``; everything else is private.

Example
-------
>>> from nepi_lab import ExperimentController, ResourceState
>>> ResourceState.STARTED > ResourceState.READY
True
"""

from __future__ import annotations

from .core.attributes import Attribute, Flags, Types
from .core.conditions import Condition
from .core.controller import ExperimentController, ScheduledTask, TaskStatus
from .core.errors import (
    AttributeValueError,
    CommandError,
    CommandTimeoutError,
    ConditionCycleError,
    ConditionError,
    ControllerClosedError,
    DuplicateGuidError,
    ExperimentFailedError,
    InvalidConnectionError,
    InvalidInputError,
    InvalidTransitionError,
    MissingCommandsError,
    NepiError,
    ReadOnlyAttributeError,
    ResourceFailedError,
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
from .core.resource import Failure, ResourceManager
from .core.states import ECState, FailureLevel, ResourceAction, ResourceState
from .core.times import parse_delay
from .core.traces import Trace, TraceAttr

__version__ = "0.1.0"

__all__ = [
    "Attribute",
    "AttributeValueError",
    "CommandError",
    "CommandTimeoutError",
    "Condition",
    "ConditionCycleError",
    "ConditionError",
    "ControllerClosedError",
    "DuplicateGuidError",
    "ECState",
    "Event",
    "EventLog",
    "ExperimentController",
    "ExperimentFailedError",
    "Failure",
    "FailureLevel",
    "Flags",
    "InvalidConnectionError",
    "InvalidInputError",
    "InvalidTransitionError",
    "MissingCommandsError",
    "NepiError",
    "ReadOnlyAttributeError",
    "ResourceAction",
    "ResourceFailedError",
    "ResourceManager",
    "ResourceState",
    "ScheduledTask",
    "TaskStatus",
    "TimeFormatError",
    "Trace",
    "TraceAttr",
    "Types",
    "UnknownAttributeError",
    "UnknownGuidError",
    "UnknownResourceTypeError",
    "UnknownTraceError",
    "UnreachableStateError",
    "UnsafeNameError",
    "WaitTimeoutError",
    "get_resource_type",
    "parse_delay",
    "register_type",
    "resource_types",
]
