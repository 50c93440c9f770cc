"""A layout of the experiment graph that is computed once and never moves a node.

:class:`StableLayout` keeps every position it ever gave.  When resources are added,
only the new ones are placed:

- a new resource connected to one already placed goes on a small circle around it
  (an application appears beside its node);
- the other new resources are laid out as their own components and put after the
  existing drawing, in the next free slot of a shelf packing (rows of blocks).

The first layout packs the connected components the same way, largest first.  A
component of up to :data:`SPRING_LIMIT` resources gets a force-directed
(``networkx.spring_layout``) layout, which looks best and costs milliseconds at that
size; a larger one gets concentric rings around its best-connected resource in
breadth-first order, which is linear in its size (spring layout takes seconds at a
thousand nodes).  Everything is deterministic: the same graph gives the same picture.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable
from typing import Any

#: Largest component laid out by ``networkx.spring_layout``.
SPRING_LIMIT = 150
_GOLDEN_ANGLE = math.pi * (3 - math.sqrt(5))

Position = tuple[float, float]


class StableLayout:
    """Positions for the nodes of a growing graph; old nodes never move.

    Parameters
    ----------
    spacing : float
        Typical distance between neighbouring nodes, in layout units.
    seed : int
        Seed of the force-directed layouts (deterministic pictures).

    Example
    -------
    >>> import networkx as nx
    >>> layout = StableLayout()
    >>> first = dict(layout.update(nx.path_graph(3)))
    >>> g = nx.path_graph(4)
    >>> after = layout.update(g)
    >>> all(after[n] == first[n] for n in first)
    True
    """

    def __init__(self, spacing: float = 1.0, seed: int = 1) -> None:
        self.spacing = spacing
        self.seed = seed
        self.positions: dict[Hashable, Position] = {}
        self._children: dict[Hashable, int] = {}  # nodes attached around each node so far
        # shelf packing state
        self._row_width: float | None = None
        self._cursor_x = 0.0
        self._row_top = 0.0
        self._row_height = 0.0

    def update(self, graph: Any) -> dict[Hashable, Position]:
        """Place the nodes of ``graph`` that have no position yet; return every position.

        Positions of nodes no longer in ``graph`` are forgotten; the others are
        returned unchanged.
        """
        import networkx as nx

        present = set(graph.nodes)
        for gone in [n for n in self.positions if n not in present]:
            del self.positions[gone]
        new = [n for n in graph.nodes if n not in self.positions]
        if not new:
            return self.positions
        undirected = nx.Graph()
        undirected.add_nodes_from(graph.nodes)
        undirected.add_edges_from((u, v) for u, v, *_ in graph.edges if u != v)
        if self.positions:
            new = self._attach(undirected, new)
        if new:
            components = [sorted(c, key=_order) for c in nx.connected_components(undirected.subgraph(new))]
            components.sort(key=lambda c: (-len(c), _order(c[0])))
            if self._row_width is None:
                total = sum(len(c) for c in components)
                widest = self._block_size(len(components[0]))
                self._row_width = max(math.sqrt(total) * self.spacing * 1.6, widest, 4 * self.spacing)
            for component in components:
                self._place_block(undirected.subgraph(component), component)
        return self.positions

    # -- new nodes next to placed ones ---------------------------------------------

    def _attach(self, graph: Any, new: list[Hashable]) -> list[Hashable]:
        """Put new nodes with a placed neighbour around it; return the ones left."""
        left = list(new)
        progress = True
        while left and progress:
            progress = False
            still = []
            for node in left:
                anchors = sorted((m for m in graph[node] if m in self.positions), key=_order)
                if not anchors:
                    still.append(node)
                    continue
                anchor = anchors[0]
                k = self._children.get(anchor, 0) + 1
                self._children[anchor] = k
                radius = self.spacing * (0.8 + 0.25 * math.sqrt(k))
                angle = k * _GOLDEN_ANGLE
                x, y = self.positions[anchor]
                self.positions[node] = (x + radius * math.cos(angle), y + radius * math.sin(angle))
                progress = True
            left = still
        return left

    # -- new components as blocks ----------------------------------------------------

    def _block_size(self, n: int) -> float:
        return self.spacing * max(1.0, 1.3 * math.sqrt(n))

    def _place_block(self, graph: Any, nodes: list[Hashable]) -> None:
        local = self._component_layout(graph, nodes)
        size = self._block_size(len(nodes))
        assert self._row_width is not None
        if self._cursor_x > 0 and self._cursor_x + size > self._row_width:
            self._row_top -= self._row_height + self.spacing * 0.5
            self._cursor_x = 0.0
            self._row_height = 0.0
        cx = self._cursor_x + size / 2
        cy = self._row_top - size / 2
        for node, (x, y) in local.items():
            self.positions[node] = (cx + x * size / 2, cy + y * size / 2)
        self._cursor_x += size + self.spacing * 0.5
        self._row_height = max(self._row_height, size)

    def _component_layout(self, graph: Any, nodes: list[Hashable]) -> dict[Hashable, Position]:
        """Positions in [-1, 1]² for one connected component."""
        import networkx as nx

        if len(nodes) == 1:
            return {nodes[0]: (0.0, 0.0)}
        if len(nodes) <= SPRING_LIMIT:
            ordered = nx.Graph()
            ordered.add_nodes_from(nodes)  # a fixed node order: the same picture every time
            ordered.add_edges_from(sorted(graph.edges, key=lambda e: (_order(e[0]), _order(e[1]))))
            raw = nx.spring_layout(ordered, seed=self.seed)
            return _normalise({n: (float(p[0]), float(p[1])) for n, p in raw.items()})
        return _normalise(_rings(graph, nodes))


def _order(node: Hashable) -> tuple[int, Any]:
    return (0, node) if isinstance(node, (int, float)) else (1, str(node))


def _normalise(positions: dict[Hashable, Position]) -> dict[Hashable, Position]:
    xs = [p[0] for p in positions.values()]
    ys = [p[1] for p in positions.values()]
    cx, cy = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    half = max(max(xs) - min(xs), max(ys) - min(ys)) / 2 or 1.0
    return {n: ((x - cx) / half * 0.9, (y - cy) / half * 0.9) for n, (x, y) in positions.items()}


def _rings(graph: Any, nodes: Iterable[Hashable]) -> dict[Hashable, Position]:
    """Concentric rings around the best-connected node, filled in breadth-first order."""
    nodes = list(nodes)
    root = max(nodes, key=lambda n: (graph.degree(n), -_order(n)[0], _negate(n)))
    order = [root]
    seen = {root}
    i = 0
    while i < len(order):
        for m in sorted(graph[order[i]], key=_order):
            if m not in seen:
                seen.add(m)
                order.append(m)
        i += 1
    order += [n for n in nodes if n not in seen]
    positions: dict[Hashable, Position] = {root: (0.0, 0.0)}
    ring, index_in_ring, capacity = 1, 0, 6
    for node in order[1:]:
        if index_in_ring == capacity:
            ring, index_in_ring = ring + 1, 0
            capacity = 6 * ring
        angle = 2 * math.pi * index_in_ring / capacity + ring * 0.5
        positions[node] = (ring * math.cos(angle), ring * math.sin(angle))
        index_in_ring += 1
    return positions


def _negate(node: Hashable) -> Any:
    return -node if isinstance(node, (int, float)) else 0
