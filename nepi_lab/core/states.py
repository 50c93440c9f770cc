"""Resource states, actions, controller states and the one transition table.

The numeric order of :class:`ResourceState` is NEPI's, with FINISHED added between
STOPPED and FAILED, so comparisons such as ``state < ResourceState.READY`` read as
they did in NEPI scripts.
"""

from __future__ import annotations

import enum
from typing import Any

from .errors import InvalidInputError


class ResourceState(enum.IntEnum):
    """Where a resource is in its lifecycle."""

    NEW = 0  # registered, nothing done yet
    DISCOVERED = 1  # the real thing behind it was found (a host, a namespace name)
    RESERVED = 2  # the thing is held for this experiment (rarely used)
    PROVISIONED = 3  # files, directories, builds are in place
    READY = 4  # deployed: may be started
    STARTED = 5  # running
    STOPPED = 6  # stopped by the experiment (``stop`` or a STOP condition)
    FINISHED = 7  # ended by itself with success (exit code 0)
    FAILED = 8  # a step raised, or the work ended with an error
    RELEASED = 9  # cleaned up; terminal


class ResourceAction(enum.IntEnum):
    """What a condition or the controller asks a resource to do."""

    DEPLOY = 0  # discover, provision, then READY
    START = 1  # READY or STOPPED -> STARTED
    STOP = 2  # STARTED -> STOPPED


class ECState(enum.IntEnum):
    """State of the experiment controller, with NEPI's values."""

    RUNNING = 1  # accepting work
    FAILED = 2  # a critical resource failed; everything was stopped and released
    RELEASED = 3  # every resource released; the controller still answers queries
    TERMINATED = 4  # shut down; only queries of recorded data are allowed


class FailureLevel(enum.IntEnum):
    """How bad things are, as in NEPI."""

    OK = 1
    RM_FAILURE = 2  # a critical resource failed
    EC_FAILURE = 3  # the controller itself failed


S = ResourceState

#: Every legal transition: state -> the states it may move to.  A resource's
#: ``_set_state`` refuses anything else, so a bug in a resource type shows as a
#: precise error rather than a silently inconsistent run.
TRANSITIONS: dict[ResourceState, frozenset[ResourceState]] = {
    S.NEW: frozenset({S.DISCOVERED, S.FAILED, S.RELEASED}),
    S.DISCOVERED: frozenset({S.RESERVED, S.PROVISIONED, S.FAILED, S.RELEASED}),
    S.RESERVED: frozenset({S.PROVISIONED, S.FAILED, S.RELEASED}),
    S.PROVISIONED: frozenset({S.READY, S.FAILED, S.RELEASED}),
    S.READY: frozenset({S.STARTED, S.FAILED, S.RELEASED}),
    S.STARTED: frozenset({S.STOPPED, S.FINISHED, S.FAILED, S.RELEASED}),
    S.STOPPED: frozenset({S.STARTED, S.FAILED, S.RELEASED}),
    S.FINISHED: frozenset({S.FAILED, S.RELEASED}),
    S.FAILED: frozenset({S.RELEASED}),
    S.RELEASED: frozenset(),
}

#: The states from which a user-requested action may begin.
ACTION_FROM: dict[ResourceAction, frozenset[ResourceState]] = {
    ResourceAction.DEPLOY: frozenset({S.NEW}),
    ResourceAction.START: frozenset({S.READY, S.STOPPED}),
    ResourceAction.STOP: frozenset({S.STARTED}),
}

#: States that end a resource's work (``wait_finished`` returns on any of them).
ENDED = frozenset({S.STOPPED, S.FINISHED, S.FAILED, S.RELEASED})


def state_name(state: int) -> str:
    """Return the upper-case name of a state number (``5`` -> ``"STARTED"``)."""
    return ResourceState(state).name


def as_state(value: ResourceState | int | str) -> ResourceState:
    """Accept a state as the enum, its number or its (case-insensitive) name."""
    return _as_member(ResourceState, value, "state")


def as_action(value: ResourceAction | int | str) -> ResourceAction:
    """Accept an action as the enum, its number or its (case-insensitive) name."""
    return _as_member(ResourceAction, value, "action")


def _as_member(enum_cls: Any, value: Any, what: str) -> Any:
    try:
        if isinstance(value, str):
            return enum_cls[value.strip().upper()]
        if type(value) is int or isinstance(value, enum_cls):
            return enum_cls(value)
    except (KeyError, ValueError):
        pass
    names = ", ".join(m.name for m in enum_cls)
    raise InvalidInputError(f"unknown {what} {value!r}; {what}s are {names}")
