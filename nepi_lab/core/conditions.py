"""Conditions between resources, and the check that they can all hold.

A condition says: do ``action`` on resource ``guid`` once every resource of
``after`` has reached ``state``, plus ``delay`` seconds.  Conditions are evaluated
when states change (the controller awaits the one-shot "reached" events), never on a
timer.

Before a condition is accepted, :class:`DependencyGraph` checks that it does not
close a cycle of waits, which would hang the experiment.  Its nodes are the
milestones of each resource involved (deployed, started, ended, and the start
barrier of each deployment group); an edge says "this milestone must come first".
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from typing import Any, NamedTuple

from .errors import ConditionCycleError
from .states import ResourceAction, ResourceState
from .times import format_delay

S = ResourceState
A = ResourceAction

_MILESTONE_OF_ACTION = {A.DEPLOY: "deployed", A.START: "started", A.STOP: "ended"}


class Condition(NamedTuple):
    """``action`` on ``guid`` waits until every resource of ``after`` reached ``state`` + ``delay``."""

    guid: int
    action: ResourceAction
    after: tuple[int, ...]
    state: ResourceState
    delay: float  #: seconds

    def describe(self) -> str:
        """The condition in words."""
        others = ", ".join(map(str, self.after))
        plural = "s" if len(self.after) > 1 else ""
        delay = f" + {format_delay(self.delay)}" if self.delay else ""
        return (f"{self.action.name} {self.guid} once resource{plural} {others} "
                f"reached {self.state.name}{delay}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict."""
        return {"guid": self.guid, "action": self.action.name, "after": list(self.after),
                "state": self.state.name, "delay": self.delay}


def _milestone(state: ResourceState) -> str | None:
    if S.DISCOVERED <= state <= S.READY:
        return "deployed"
    if state == S.STARTED:
        return "started"
    if state in (S.STOPPED, S.FINISHED):
        return "ended"
    return None  # NEW always holds; FAILED / RELEASED say nothing about order


#: A milestone: ``("deployed" | "started" | "ended", guid)`` or ``("group", group id)``.
Milestone = tuple[str, int]


class DependencyGraph:
    """Milestone graph used to refuse conditions that could never all hold.

    A map from each milestone to those that must come after it, searched breadth first
    when an edge is added: a few dozen lines, where networkx (which the views use) took
    0.1-0.2 s to import at a script's first condition.
    """

    def __init__(self) -> None:
        self._after: dict[Milestone, set[Milestone]] = {}

    def _link(self, first: Milestone, then: Milestone) -> None:
        self._after.setdefault(first, set()).add(then)
        self._after.setdefault(then, set())

    def _add_resource(self, guid: int) -> None:
        if ("deployed", guid) not in self._after:
            self._link(("deployed", guid), ("started", guid))
            self._link(("started", guid), ("ended", guid))

    def involves(self, guid: int) -> bool:
        """Whether ``guid`` takes part in any condition."""
        return ("deployed", guid) in self._after

    def _path(self, source: Milestone, target: Milestone) -> list[Milestone] | None:
        """A shortest path from ``source`` to ``target`` (breadth first); None: none."""
        came_from: dict[Milestone, Milestone | None] = {source: None}
        frontier = collections.deque([source])
        while frontier:
            node = frontier.popleft()
            for then in self._after.get(node, ()):
                if then in came_from:
                    continue
                came_from[then] = node
                if then == target:
                    path = [then]
                    while (previous := came_from[path[-1]]) is not None:
                        path.append(previous)
                    return path[::-1]
                frontier.append(then)
        return None

    def _add_checked(self, edges: list[tuple[Milestone, Milestone]]) -> None:
        """Add ``edges``; if one closes a cycle, remove them all again and raise."""
        added = [(first, then) for first, then in edges if then not in self._after.get(first, ())]
        for first, then in added:
            self._link(first, then)
        for source, target in added:
            path = [source] if source == target else self._path(target, source)
            if path is not None:
                for first, then in added:
                    self._after[first].discard(then)
                raise ConditionCycleError([_label(n) for n in [*path, path[0]]])

    def add_conditions(self, conditions: Iterable[Condition]) -> None:
        """Record ``conditions``; if any closes a cycle, record none and raise
        :class:`ConditionCycleError`."""
        edges = []
        for condition in conditions:
            source_milestone = _milestone(condition.state)
            if source_milestone is None:
                continue
            for guid in (condition.guid, *condition.after):
                self._add_resource(guid)
            target = (_MILESTONE_OF_ACTION[condition.action], condition.guid)
            edges += [((source_milestone, other), target) for other in condition.after]
        self._add_checked(edges)

    def add_group(self, group_id: int, members: Iterable[int]) -> None:
        """Record that members of a ``wait_all_ready`` group start only when all are READY."""
        involved = [m for m in members if self.involves(m)]
        if not involved:
            return
        barrier = ("group", group_id)
        edges = [(("deployed", m), barrier) for m in involved]
        edges += [(barrier, ("started", m)) for m in involved]
        self._add_checked(edges)


def _label(node: tuple[str, int]) -> str:
    kind, ident = node
    if kind == "group":
        return f"group {ident} all READY"
    return f"resource {ident} {kind}"
