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


class DependencyGraph:
    """Milestone graph used to refuse conditions that could never all hold."""

    def __init__(self) -> None:
        self._graph: Any = None  # networkx.DiGraph, imported on first use

    def _g(self) -> Any:
        if self._graph is None:
            import networkx as nx

            self._graph = nx.DiGraph()
        return self._graph

    def _add_resource(self, guid: int) -> None:
        g = self._g()
        if ("deployed", guid) not in g:
            g.add_edge(("deployed", guid), ("started", guid))
            g.add_edge(("started", guid), ("ended", guid))

    def involves(self, guid: int) -> bool:
        """Whether ``guid`` takes part in any condition."""
        return self._graph is not None and ("deployed", guid) in self._graph

    def _add_checked(self, edges: list[tuple[Any, Any]]) -> None:
        """Add ``edges``; if one closes a cycle, remove them all again and raise."""
        import networkx as nx

        g = self._g()
        added = [e for e in edges if not g.has_edge(*e)]
        g.add_edges_from(added)
        for source, target in added:
            if source == target or nx.has_path(g, target, source):
                path = [source] if source == target else nx.shortest_path(g, target, source)
                g.remove_edges_from(added)
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
