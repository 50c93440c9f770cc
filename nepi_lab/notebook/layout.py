"""A layout of the experiment graph that is computed once and never moves a node.

:class:`StableLayout` keeps every position it ever gave.  When resources are added,
only the new ones are placed:

- a new resource connected to one already placed goes on a small circle around it
  (an application appears beside its node);
- the other new resources are laid out as their own components and put after the
  existing drawing, in the next free slot of a shelf packing (rows of blocks).

The first layout packs the connected components the same way, largest first, in
rows about ``aspect`` times wider than the whole is high (the canvas's shape).  In a
component of up to :data:`SPRING_LIMIT` resources, the *leaves* (a resource with a
single neighbour, such as an application on its node) are set apart: the others get
a force-directed layout (``networkx.spring_layout``, milliseconds at that size), and
each one's leaves go on an arc around it, in the widest gap between its other
neighbours, the arcs kept apart from each other.  A node with nine applications
then reads as a hub with nine spokes instead of a tight knot.  A larger component
gets concentric rings around its best-connected resource in breadth-first order,
which is linear in its size (spring layout takes seconds at a thousand nodes).
Everything is deterministic: the same graph gives the same picture.
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
    aspect : float
        Width over height the first layout aims at (the canvas's shape).

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

    def __init__(self, spacing: float = 1.0, seed: int = 1, aspect: float = 1.8) -> None:
        self.spacing = spacing
        self.seed = seed
        self.aspect = aspect
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
            blocks = [self._component_layout(undirected.subgraph(c), c) for c in components]
            sizes = [self._block_size(b) for b in blocks]
            if self._row_width is None:
                margin = self.spacing * 0.5
                area = sum((w + margin) * (h + margin) for w, h in sizes)
                widest = max(w for w, _ in sizes)
                self._row_width = max(math.sqrt(area * self.aspect), widest, 4 * self.spacing)
            for block, size in zip(blocks, sizes, strict=True):
                self._place_block(block, size)
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

    def _block_size(self, local: dict[Hashable, Position]) -> tuple[float, float]:
        """Width and height of a component's block (its extent, plus a unit for its dots)."""
        xs = [p[0] for p in local.values()]
        ys = [p[1] for p in local.values()]
        return (self.spacing * (max(xs) - min(xs) + 1.0), self.spacing * (max(ys) - min(ys) + 1.0))

    def _place_block(self, local: dict[Hashable, Position], size: tuple[float, float]) -> None:
        width, height = size
        assert self._row_width is not None
        if self._cursor_x > 0 and self._cursor_x + width > self._row_width:
            self._row_top -= self._row_height + self.spacing * 0.5
            self._cursor_x = 0.0
            self._row_height = 0.0
        xs = [p[0] for p in local.values()]
        ys = [p[1] for p in local.values()]
        # the block's centre at the middle of its slot
        mx, my = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
        cx = self._cursor_x + width / 2
        cy = self._row_top - height / 2
        for node, (x, y) in local.items():
            self.positions[node] = (cx + (x - mx) * self.spacing, cy + (y - my) * self.spacing)
        self._cursor_x += width + self.spacing * 0.5
        self._row_height = max(self._row_height, height)

    def _component_layout(self, graph: Any, nodes: list[Hashable]) -> dict[Hashable, Position]:
        """Positions of one connected component, in units of about one neighbour distance."""
        if len(nodes) == 1:
            return {nodes[0]: (0.0, 0.0)}
        if len(nodes) <= SPRING_LIMIT:
            return _lying(_hubs_and_leaves(graph, nodes, self.seed))
        return _rings(graph, nodes)


def _lying(positions: dict[Hashable, Position]) -> dict[Hashable, Position]:
    """The positions turned so that their longest extent is horizontal (canvases are wide)."""
    import numpy as np

    if len(positions) < 3:
        return positions
    xy = np.array(list(positions.values()), dtype=float)
    xy -= xy.mean(axis=0)
    _, vectors = np.linalg.eigh(xy.T @ xy)
    main = vectors[:, -1]  # the direction of the largest spread
    if main[0] < 0 or (main[0] == 0 and main[1] < 0):
        main = -main  # a fixed sign: the same picture every time
    cos, sin = main
    turned = xy @ np.array([[cos, -sin], [sin, cos]])
    return {n: (float(x), float(y)) for n, (x, y) in zip(positions, turned, strict=True)}


def _spring(graph: Any, nodes: list[Hashable], seed: int) -> dict[Hashable, Position]:
    import networkx as nx

    ordered = nx.Graph()
    ordered.add_nodes_from(nodes)  # a fixed node order: the same picture every time
    ordered.add_edges_from(sorted(graph.subgraph(nodes).edges, key=lambda e: (_order(e[0]), _order(e[1]))))
    raw = nx.spring_layout(ordered, seed=seed)
    return {n: (float(p[0]), float(p[1])) for n, p in raw.items()}


def _hubs_and_leaves(graph: Any, nodes: list[Hashable], seed: int) -> dict[Hashable, Position]:
    """The core (non-leaves) by spring layout, each hub's leaves on an arc around it.

    Units: leaves on an arc are about one unit apart; arcs never overlap.
    """
    import numpy as np

    leaves: dict[Hashable, list[Hashable]] = {}
    for node in nodes:
        neighbours = list(graph[node])
        if len(neighbours) == 1 and graph.degree(neighbours[0]) > 1:
            leaves.setdefault(neighbours[0], []).append(node)
    core = [n for n in nodes if not any(n in group for group in leaves.values())]
    positions = {core[0]: (0.0, 0.0)} if len(core) == 1 else _spring(graph, core, seed)
    # the widest free gap around each hub, and the radius its leaves need there
    gaps: dict[Hashable, tuple[float, float]] = {}
    radius: dict[Hashable, float] = {}
    for hub, group in leaves.items():
        x, y = positions[hub]
        angles = sorted(math.atan2(positions[m][1] - y, positions[m][0] - x)
                        for m in graph[hub] if m in positions)
        if not angles:
            start, width = math.pi, 2 * math.pi  # the first leaf on the left: a line reads left to right
        else:
            ends = angles + [angles[0] + 2 * math.pi]
            width, start = max((b - a, a) for a, b in zip(ends, ends[1:], strict=False))
            start, width = start + 0.35, max(width - 0.7, 0.6)  # keep off the core's edges
        gaps[hub] = (start, width)
        radius[hub] = max(1.2, 1.05 * len(group) / width)  # neighbouring leaves about a unit apart
    # spread the core so that no two hubs' discs (leaves included) overlap
    reach = {n: radius.get(n, 0.0) + 0.6 for n in core}
    if len(core) > 1:
        xy = np.array([positions[n] for n in core])
        r = np.array([reach[n] for n in core])
        d = np.hypot(xy[:, None, 0] - xy[None, :, 0], xy[:, None, 1] - xy[None, :, 1])
        need = r[:, None] + r[None, :]
        np.fill_diagonal(d, np.inf)
        factor = float(np.max(need / np.maximum(d, 1e-9)))
        positions = {n: (p[0] * factor, p[1] * factor) for n, p in positions.items()}
        # leaves use the room their hub has: a third of the way to its nearest other core node
        nearest = dict(zip(core, (d * factor).min(axis=1), strict=True))
        for hub in leaves:
            radius[hub] = max(radius[hub], min(nearest[hub] / 3, 3 * radius[hub]))
    for hub, group in leaves.items():
        x, y = positions[hub]
        start, width = gaps[hub]
        full = width >= 2 * math.pi - 1e-9
        for k, leaf in enumerate(sorted(group, key=_order)):
            angle = start + width * (k if full else k + 0.5) / len(group)
            positions[leaf] = (x + radius[hub] * math.cos(angle), y + radius[hub] * math.sin(angle))
    return positions


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


class RingLayout:
    """Positions for a few nodes (resource types): on a ring, old nodes never move.

    The first nodes share a ring evenly, starting on the left (two are side by side,
    which suits wide cards); nodes added later take slots on rings farther out.

    Example
    -------
    >>> import networkx as nx
    >>> positions = RingLayout().update(nx.path_graph(["a", "b"]))
    >>> positions["a"][0] < positions["b"][0] and positions["a"][1] == positions["b"][1]
    True
    """

    def __init__(self) -> None:
        self.positions: dict[Hashable, Position] = {}
        self._ring = 0

    def update(self, graph: Any) -> dict[Hashable, Position]:
        """Place the nodes of ``graph`` that have no position yet; return every position."""
        present = set(graph.nodes)
        for gone in [n for n in self.positions if n not in present]:
            del self.positions[gone]
        new = [n for n in graph.nodes if n not in self.positions]
        if not new:
            return self.positions
        if len(new) == 1 and not self.positions:
            self.positions[new[0]] = (0.0, 0.0)
            return self.positions
        self._ring += 1
        radius = float(self._ring)
        offset = 0.0 if self._ring == 1 else math.pi / len(new)
        for k, node in enumerate(new):
            angle = math.pi - offset - 2 * math.pi * k / len(new)  # clockwise from the left
            x, y = radius * math.cos(angle), radius * math.sin(angle)
            self.positions[node] = (round(x, 12), round(y, 12))
        return self.positions
