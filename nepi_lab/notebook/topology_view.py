"""The network an experiment builds, drawn as a network: hosts, switches and links.

The experiment graph (:func:`~nepi_lab.notebook.draw`) shows every resource, so a
namespace line ``h1 - h2 - h3`` appears there as fourteen dots of nodes, interfaces,
links and routes.  The topology view reads what each resource *is* in a network,
from its type's :class:`~nepi_lab.TopologyRole` declaration (``_topology_role`` and
``_topology_labels`` in the type's class body), and draws:

- hosts as circles and switches as squares, filled with their outcome colour
  (their state, or once released the state they were released from) and ringed in
  grey once released, as in every view;
- each link as a line between the hosts or switches its two ends belong to, coloured
  by the link's outcome (a grey casing once released), with the link's properties in
  the middle ("20mbit · 1.0% loss") and each interface's addresses at its end (a
  link joined straight to its hosts, as ns-3's are, gives them in its ``addresses``
  attribute: one per end, in guid order, separated by spaces);
- a link joining more than two hosts (a bus: ns-3's CSMA link) as a square with
  its name and properties, and a line to each host;
- applications as small squares on their host, coloured by outcome;
- interfaces, routes and resources without a role not at all (the caption counts them).

No type name appears here: a new network back end whose types declare their roles
is drawn the same way.  :func:`topology_graph` gives the picture's content as a
networkx graph, :func:`draw_topology` draws it once, :class:`TopologyView` follows
the experiment live, as :class:`~nepi_lab.notebook.GraphView` does.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import TYPE_CHECKING, Any

from ..core.errors import UnknownResourceTypeError
from ..core.registry import get_resource_type
from ..core.resource import TopologyRole
from ..core.states import ResourceState
from ._canvas import (
    FONT_SIZE,
    GAP,
    Canvas,
    Placer,
    around,
    legend_entries,
    nearest_distances,
)
from ._schedule import UPDATE_INTERVAL
from .drawing import OUTLINE_RGBA, RGBA, RING_RGBA, Drawing, _caption, _strip, _title
from .graph import GraphView
from .layout import StableLayout

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from ..core.controller import ExperimentController

S = ResourceState
R = TopologyRole

#: Size of an application's square, in pixels.
APP_SIZE = 9.0
#: Up to this many applications, each is labelled (where its label fits).
APP_LABEL_LIMIT = 16
#: Up to this many links, their ends' addresses are written (beyond, they are noise).
ADDRESS_LIMIT = 40
_NO_RING = (0.0, 0.0, 0.0, 0.0)


def _type(rtype: str) -> Any:
    try:
        return get_resource_type(rtype)
    except UnknownResourceTypeError:  # a type defined in a notebook cell and since replaced
        return None


def _role(rtype: str) -> TopologyRole | None:
    cls = _type(rtype)
    return None if cls is None else cls.get_topology_role()


def _labels(rtype: str, attributes: dict[str, Any], separator: str) -> str:
    cls = _type(rtype)
    if cls is None:
        return ""
    parts = []
    for name, template in cls.get_topology_labels():
        value = attributes.get(name)
        if value is not None and value != "":
            parts.append(template.format(value))
    return separator.join(parts)


def _shown(data: dict[str, Any]) -> dict[str, Any]:
    state = data["state"]
    return {"type": data["type"], "label": data.get("label", ""), "state": state,
            "outcome": data.get("outcome", state),
            "released": bool(data.get("released", state == S.RELEASED))}


def topology_graph(source: Any) -> Any:
    """The network of an experiment as a networkx ``MultiGraph`` (what the topology view draws).

    Parameters
    ----------
    source : ExperimentController or networkx graph
        A controller, or what its ``graph()`` returned.

    Returns
    -------
    networkx.MultiGraph
        Nodes are the guids of hosts and switches, with ``role``, ``type``,
        ``label``, ``state``, ``outcome``, ``released`` and ``applications`` (the
        guids of the applications on a host).  Each link is an edge keyed by its
        guid, with the same state attributes, ``text`` (its properties, such as
        ``"20mbit · 1.0% loss"``) and ``ends``: ``[(node, addresses), (node,
        addresses)]``, the addresses of the interface at that end (``""`` for a
        switch).  A link of more than two ends (a bus) is a node of role
        ``"switch"`` keyed by its guid, with an edge to each end keyed by the same
        guid.  ``graph.graph`` holds ``applications`` (guid -> its state
        attributes and ``host``) and ``not_drawn`` (a Counter of roles or types left
        out: interfaces, routes, links with a missing end, resources without a role).

    Example
    -------
    >>> import shutil, tempfile
    >>> from nepi_lab import ExperimentController, topology
    >>> results = tempfile.mkdtemp()
    >>> with ExperimentController(local_dir=results) as ec:    # registered only: no root needed
    ...     built = topology.build(ec, topology.line(3))
    ...     topo = topology_graph(ec)
    >>> sorted(topo.nodes[g]["label"] for g in topo)
    ['h1', 'h2', 'h3']
    >>> shutil.rmtree(results)
    """
    import networkx as nx

    graph = source.graph() if callable(getattr(source, "graph", None)) else source
    roles = {g: _role(d["type"]) for g, d in graph.nodes(data=True)}
    connected: dict[int, set[int]] = {g: set() for g in graph.nodes}
    for u, v, d in graph.edges(data=True):
        if d.get("kind") == "connection":
            connected[u].add(v)
            connected[v].add(u)
    topo = nx.MultiGraph(exp_id=graph.graph.get("exp_id"), applications={}, not_drawn=Counter())
    not_drawn: Counter[str] = topo.graph["not_drawn"]
    places = (R.HOST, R.SWITCH)
    for g, d in graph.nodes(data=True):
        if roles[g] in places:
            topo.add_node(g, role=roles[g].value, applications=[], **_shown(d))
    owner = {}
    for g in graph.nodes:
        if roles[g] is R.INTERFACE:
            found = sorted(m for m in connected[g] if roles[m] in places)
            if found:
                owner[g] = found[0]
            not_drawn["interface"] += 1
        elif roles[g] is R.ROUTE:
            not_drawn["route"] += 1
        elif roles[g] is None:
            not_drawn[graph.nodes[g]["type"]] += 1
    for g, d in graph.nodes(data=True):
        if roles[g] is R.LINK:
            ends = []
            # a link joined straight to hosts says their addresses in ``addresses`` (ns-3's)
            direct = iter(str(d["attributes"].get("addresses") or "").split())
            for m in sorted(connected[g]):
                if roles[m] in places:
                    ends.append((m, next(direct, "")))
                elif m in owner:
                    interface = graph.nodes[m]
                    ends.append((owner[m], _labels(interface["type"], interface["attributes"], "\n")))
            text = _labels(d["type"], d["attributes"], " \u00b7 ")
            if len(ends) == 2:
                topo.add_edge(ends[0][0], ends[1][0], key=g, guid=g, ends=ends, text=text, **_shown(d))
            elif len(ends) > 2:  # a bus (ns-3's CSMA): a square of its own, a line to each end
                shown = _shown(d)
                if text:
                    shown["label"] = f"{shown['label']}\n{text}"
                topo.add_node(g, role=R.SWITCH.value, applications=[], **shown)
                for end in ends:
                    topo.add_edge(end[0], g, key=g, guid=g, ends=[end, (g, "")], text="", **_shown(d))
            else:
                not_drawn["link with a missing end"] += 1
        elif roles[g] is R.APPLICATION:
            hosts = sorted(m for m in connected[g] if roles[m] is R.HOST)
            if hosts:
                topo.graph["applications"][g] = {"host": hosts[0], **_shown(d)}
                topo.nodes[hosts[0]]["applications"].append(g)
            else:
                not_drawn["application without a host"] += 1
    return topo


def topology_signature(topo: Any) -> tuple[Any, ...]:
    """What a drawing of ``topo`` depends on besides states."""
    nodes = tuple((g, d["label"], d["role"], tuple(d["applications"])) for g, d in topo.nodes(data=True))
    edges = tuple((u, v, k, d["text"], tuple(d["ends"])) for u, v, k, d in topo.edges(keys=True, data=True))
    apps = tuple((g, d["label"]) for g, d in topo.graph["applications"].items())
    return ("topology", nodes, edges, apps, tuple(sorted(topo.graph["not_drawn"].items())))


class TopologyDrawing(Drawing):
    """The artists of one topology drawing; an update recolours them in place."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.groups: list[tuple[Any, list[int], float]] = []  # (scatter, indices, ring width)
        self.links: Any = None
        self.casing: Any = None
        self.link_indices: list[int] = []
        self.hosts = 0  #: host and switch nodes drawn
        self.edges = 0  #: links drawn

    def apply(self, changed: list[int]) -> bool:
        outcomes, released = self.outcomes, self.released
        for artist, indices, ring in self.groups:
            artist.set_facecolor([RGBA[outcomes[i]] for i in indices])
            artist.set_edgecolor([RING_RGBA if released[i] else OUTLINE_RGBA for i in indices])
            artist.set_linewidths([ring if released[i] else 0.8 for i in indices])
        if self.links is not None:
            self.links.set_color([RGBA[outcomes[i]] for i in self.link_indices])
            self.casing.set_color([RING_RGBA if released[i] else _NO_RING for i in self.link_indices])
        return self.update_legend()


def _unit(dx: float, dy: float) -> tuple[float, float]:
    length = math.hypot(dx, dy)
    return (dx / length, dy / length) if length > 1e-9 else (1.0, 0.0)


def draw_topology_graph(ax: Axes, topo: Any, layout: StableLayout | None = None, labels: bool | None = None,
                        legend: bool = True, title: str | None = None, live: bool = False) -> TopologyDrawing:
    """Draw ``topo`` (from :func:`topology_graph`) on ``ax``; see the module docstring
    (``live``: keep legend room for the states still to come)."""
    import numpy as np
    from matplotlib.collections import LineCollection

    ax.clear()
    nodes = list(topo.nodes)
    edges = list(topo.edges(keys=True, data=True))
    apps = topo.graph["applications"]
    order = nodes + [d["guid"] for _, _, _, d in edges] + list(apps)
    shown = [topo.nodes[g] for g in nodes] + [d for _, _, _, d in edges] + [apps[g] for g in apps]
    states = [d["state"] for d in shown]
    outcomes = [d["outcome"] for d in shown]
    released = [d["released"] for d in shown]
    switches = [i for i, g in enumerate(nodes) if topo.nodes[g]["role"] == R.SWITCH.value]
    shapes = [("s", "switch")] if switches else []
    if apps:
        shapes.append(("s", "application (beside its host)"))
    extras = {"link": "link (colour: its outcome)" if edges else None, "shapes": shapes}

    canvas = Canvas(ax)
    entries = legend_entries(set(outcomes), any(released), **extras) if legend else []
    not_drawn = topo.graph["not_drawn"]
    rows, caption_h, strip = _strip(canvas, entries, True, outcomes, extras, live)
    top = _title(canvas, title)
    canvas = Canvas(ax, bottom=strip, top=top)
    drawing = TopologyDrawing(canvas, order, states, outcomes, released, topology_signature(topo), extras)
    if legend:
        drawing.place_legend(entries, rows, caption_h)
    notes = []
    if not_drawn:
        notes.append("not drawn: " + ", ".join(f"{n} {what}{'s' if n != 1 and what.isalpha() else ''}"
                                               for what, n in sorted(not_drawn.items())))
    if not nodes:
        ax.text(0.5, 0.5, "no hosts or switches in this experiment (ec.draw() shows every resource)",
                ha="center", va="center", transform=ax.transAxes, color="#757575", fontsize=FONT_SIZE + 1,
                parse_math=False)
        if notes:
            _caption(canvas, "  \u00b7  ".join(notes))
        return drawing

    want = labels is not False
    texts = [str(topo.nodes[g]["label"]) for g in nodes]
    sizes = [canvas.text_size(t, FONT_SIZE + 0.5) for t in texts]
    label_h = max(h for _, h in sizes)
    widest = max(w for w, _ in sizes)
    positions = (layout or StableLayout()).update(topo)
    xs = np.array([positions[g][0] for g in nodes], dtype=float)
    ys = np.array([positions[g][1] for g in nodes], dtype=float)
    radius = 16.0
    apps_reach = APP_SIZE + 6 if apps else 0.0
    for _ in range(2):
        pad_x = radius + max(apps_reach, min(widest / 2, 70.0) if want else 0.0) + GAP
        pad_y = radius + max(apps_reach, label_h + 2 * GAP if want else 0.0) + GAP
        px, py = canvas.fit(xs, ys, pad_x, pad_y)
        closest = float(np.min(nearest_distances(px, py))) if len(nodes) > 1 else math.inf
        radius = max(5.0, min(16.0, 0.16 * closest))
    where = {g: i for i, g in enumerate(nodes)}
    placer = Placer(canvas)
    diameter = canvas.points(2 * radius)
    ring = max(1.6, min(3.2, 0.2 * diameter))

    # links: a casing (grey once released) under a line of the link's outcome colour
    index_of = {g: i for i, g in enumerate(order)}
    pixel_segments: list[list[float]] = []
    if edges:
        segments, offsets = [], []
        count: Counter[tuple[int, int]] = Counter()
        for u, v, _, _ in edges:
            a, b = sorted((where[u], where[v]))
            # parallel links between the same two nodes are drawn side by side
            k = count[(a, b)]
            count[(a, b)] += 1
            shift = 0.0 if k == 0 else (k + 1) // 2 * 6.0 * (1 if k % 2 else -1)
            ux, uy = _unit(px[b] - px[a], py[b] - py[a])
            ox, oy = -uy * shift, ux * shift
            offsets.append((ox, oy))
            p1 = (px[where[u]] + ox, py[where[u]] + oy)
            p2 = (px[where[v]] + ox, py[where[v]] + oy)
            pixel_segments.append([*p1, *p2])
            (x1, x2), (y1, y2) = canvas.to_data([p1[0], p2[0]], [p1[1], p2[1]])
            segments.append([(float(x1), float(y1)), (float(x2), float(y2))])
        drawing.link_indices = [index_of[d["guid"]] for _, _, _, d in edges]
        width = 3.0 if len(edges) <= ADDRESS_LIMIT else 2.0  # many links: thinner lines
        drawing.casing = LineCollection(segments, linewidths=2 * width, zorder=1,
                                        colors=[RING_RGBA if released[i] else _NO_RING
                                                for i in drawing.link_indices])
        drawing.links = LineCollection(segments, linewidths=width, zorder=1.5,
                                       colors=[RGBA[outcomes[i]] for i in drawing.link_indices])
        ax.add_collection(drawing.casing)
        ax.add_collection(drawing.links)
        drawing.overlay[:0] = [drawing.casing, drawing.links]
        placer.arrows.add(pixel_segments)
        drawing.edges = len(edges)

    # hosts (circles) and switches (squares)
    for marker, members in (("o", [i for i in range(len(nodes)) if i not in switches]), ("s", switches)):
        if not members:
            continue
        indices = [index_of[nodes[i]] for i in members]
        art = ax.scatter(xs[members], ys[members], s=diameter**2 * (0.8 if marker == "s" else 1.0),
                         marker=marker, c=[RGBA[outcomes[i]] for i in indices],
                         edgecolors=[RING_RGBA if released[i] else OUTLINE_RGBA for i in indices],
                         linewidths=[ring if released[i] else 0.8 for i in indices], zorder=3)
        drawing.groups.append((art, indices, ring))
        drawing.overlay.insert(0, art)
    drawing.nodes = drawing.groups[0][0] if drawing.groups else None
    drawing.hosts = len(nodes)
    clear = radius + canvas.pixels(ring) / 2 + 1  # the ring is drawn half outside the dot
    placer.block_circles(px, py, clear)

    # applications: small squares around their host, in the widest gap between its links
    app_points: dict[int, tuple[float, float]] = {}
    for i, g in enumerate(nodes):
        hosted = topo.nodes[g]["applications"]
        if not hosted:
            continue
        angles = sorted(math.atan2(py[where[m]] - py[i], px[where[m]] - px[i]) for m in topo[g] if m != g)
        if angles:
            ends = angles + [angles[0] + 2 * math.pi]
            gaps = [(b - a, a) for a, b in zip(ends, ends[1:], strict=False)]
            widest = max(w for w, _ in gaps)
            # of the widest gaps, the one below the host if there is one
            downs = (-math.pi / 2, 1.5 * math.pi)
            width, start = max(((w, a) for w, a in gaps if w >= 0.9 * widest),
                               key=lambda g: (any(g[1] < b < g[1] + g[0] for b in downs), g[0]))
        else:
            width, start = 2 * math.pi, -math.pi / 2 - math.pi / 2
        middle = start + width / 2
        # below the host if the gap allows it (labels fit best there), else the gap's middle
        run = (APP_SIZE + 3) * len(hosted) / (radius + 3 + APP_SIZE / 2) / 2 + 0.4
        for below in (-math.pi / 2, 3 * math.pi / 2):
            if start + run <= below <= start + width - run:
                middle = below
        distance = radius + 3 + APP_SIZE / 2
        k = 0
        while k < len(hosted):
            step = (APP_SIZE + 3) / distance
            fit = max(1, int(min(width * 0.8, 2 * math.pi) / step))
            batch = hosted[k:k + fit]
            for j, app in enumerate(batch):
                angle = middle + (j - (len(batch) - 1) / 2) * step
                app_points[app] = (px[i] + distance * math.cos(angle), py[i] + distance * math.sin(angle))
            k += len(batch)
            distance += APP_SIZE + 3
    if app_points:
        app_list = list(app_points)
        indices = [index_of[a] for a in app_list]
        ax_, ay_ = canvas.to_data([app_points[a][0] for a in app_list], [app_points[a][1] for a in app_list])
        art = ax.scatter(ax_, ay_, s=canvas.points(APP_SIZE) ** 2, marker="s",
                         c=[RGBA[outcomes[i]] for i in indices],
                         edgecolors=[RING_RGBA if released[i] else OUTLINE_RGBA for i in indices],
                         linewidths=[1.6 if released[i] else 0.6 for i in indices], zorder=3.5)
        drawing.groups.append((art, indices, 1.6))
        drawing.overlay.insert(0, art)
        placer.block_circles(np.array([p[0] for p in app_points.values()]),
                             np.array([p[1] for p in app_points.values()]), APP_SIZE / 2 + 1)

    def put(text: str, box: tuple[float, float, float, float], size: float, color: str) -> None:
        x, y = canvas.to_data((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
        ax.text(float(x), float(y), text, ha="center", va="center", fontsize=size, color=color, zorder=4,
                parse_math=False)

    if want:
        for i in sorted(range(len(nodes)), key=lambda i: (-topo.degree(nodes[i]), i)):
            neighbours = [where[m] for m in topo[nodes[i]] if m != nodes[i]]
            away = None
            if neighbours:
                away = _unit(px[i] - float(np.mean(px[neighbours])), py[i] - float(np.mean(py[neighbours])))
            w, h = sizes[i]
            found = placer.place(w, h, around(px[i], py[i], clear, w, h, away), soft=False)
            if found is not None:
                put(texts[i], found[0], FONT_SIZE + 0.5, "#212121")
        # link properties in the middle, then each end's addresses near it
        for (_, _, _, d), pixel in zip(edges, pixel_segments, strict=False):
            x1, y1, x2, y2 = pixel
            ux, uy = _unit(x2 - x1, y2 - y1)
            nx_, ny_ = -uy, ux
            if d["text"]:
                w, h = canvas.text_size(d["text"], FONT_SIZE - 0.5)
                reach = abs(nx_) * w / 2 + abs(ny_) * h / 2 + GAP + 2
                centres = [(x1 + (x2 - x1) * t + s * nx_ * reach, y1 + (y2 - y1) * t + s * ny_ * reach)
                           for t in (0.5, 0.4, 0.6, 0.3, 0.7) for s in (1, -1)]
                found = placer.place(w, h, centres, soft=False)
                if found is not None:
                    put(d["text"], found[0], FONT_SIZE - 0.5, "#37474f")
        for (u, v, _, d), pixel in zip(edges, pixel_segments, strict=False):
            if u == v or len(edges) > ADDRESS_LIMIT:
                continue
            x1, y1, x2, y2 = pixel  # from u to v
            for end, text in d["ends"]:
                if not text:
                    continue
                sx, sy, tx, ty = (x1, y1, x2, y2) if end == u else (x2, y2, x1, y1)
                ux, uy = _unit(tx - sx, ty - sy)
                nx_, ny_ = -uy, ux
                w, h = canvas.text_size(text, FONT_SIZE - 1)
                along = abs(ux) * w / 2 + abs(uy) * h / 2
                across = abs(nx_) * w / 2 + abs(ny_) * h / 2 + GAP + 1
                centres = []
                for extra in (4.0, 14.0, 28.0):
                    d0 = radius + extra + along
                    for s in (1, -1):
                        centres.append((sx + ux * d0 + s * nx_ * across, sy + uy * d0 + s * ny_ * across))
                found = placer.place(w, h, centres, soft=False)
                if found is not None:
                    put(text, found[0], FONT_SIZE - 1, "#0d47a1")
        if len(app_points) <= APP_LABEL_LIMIT:
            for app, (x, y) in app_points.items():
                text = str(apps[app]["label"])
                w, h = canvas.text_size(text, FONT_SIZE - 1)
                host = apps[app]["host"]
                away = _unit(x - px[where[host]], y - py[where[host]])
                found = placer.place(w, h, around(x, y, APP_SIZE / 2, w, h, away), soft=False)
                if found is not None:
                    put(text, found[0], FONT_SIZE - 1, "#424242")
    drawing.placed, drawing.left_out = placer.placed, placer.left_out
    if want and len(edges) > ADDRESS_LIMIT:
        notes.append(f"addresses not written beyond {ADDRESS_LIMIT} links")
    if want and placer.left_out:
        notes.append(f"{placer.left_out} label{'s' if placer.left_out != 1 else ''} left out for room")
    if notes:
        _caption(canvas, "  \u00b7  ".join(notes))
    return drawing


def _title_of(topo: Any) -> str:
    hosts = sum(1 for _, d in topo.nodes(data=True) if d["role"] == R.HOST.value)
    switches = topo.number_of_nodes() - hosts
    parts = [f"{hosts} host{'s' if hosts != 1 else ''}"]
    if switches:
        parts.append(f"{switches} switch{'es' if switches != 1 else ''}")
    links = topo.number_of_edges()
    parts.append(f"{links} link{'s' if links != 1 else ''}")
    apps = len(topo.graph["applications"])
    if apps:
        parts.append(f"{apps} application{'s' if apps != 1 else ''}")
    return ", ".join(parts)


def draw_topology(ec: ExperimentController, ax: Axes | None = None, *, labels: bool | None = None,
                  layout: StableLayout | None = None) -> Axes:
    """Draw the experiment's network once, as it is now: hosts, switches, links,
    addresses, applications (see the module docstring); return the Axes.

    Parameters
    ----------
    ec : ExperimentController
    ax : matplotlib Axes, optional
        Where to draw (the whole Axes is used); default: a new 8 x 5 inch pyplot
        figure at 100 dpi (shown inline in a notebook).
    labels : bool, optional
        False: no names, addresses nor link properties.  By default every label
        that fits is drawn.
    layout : StableLayout, optional
        Reuse positions across calls (pass the same object each time).

    Example
    -------
    >>> from nepi_lab import ExperimentController, topology           # doctest: +SKIP
    >>> from nepi_lab.notebook import draw_topology                   # doctest: +SKIP
    >>> ec = ExperimentController()                                   # doctest: +SKIP
    >>> topo = topology.build(ec, topology.line(3, rate="20mbit"))    # doctest: +SKIP
    >>> draw_topology(ec).figure.savefig("line.png")                  # doctest: +SKIP
    """
    if ax is None:
        import matplotlib.pyplot as plt

        figure = plt.figure(figsize=(8, 5), dpi=100)
        ax = figure.add_axes((0, 0, 1, 1))
    topo = topology_graph(ec)
    draw_topology_graph(ax, topo, layout, labels, title=f"{ec.exp_id}: {_title_of(topo)}")
    return ax


class TopologyView(GraphView):
    """The experiment's network, live: hosts, switches and links recoloured as their
    states change (see :func:`draw_topology` for what it shows).

    Works as :class:`~nepi_lab.notebook.GraphView` does: it follows ``ec.events`` by
    itself (at most 10 updates a second), recolours in place, draws again when the
    network changes (noticed after each cell, or at once with :meth:`refresh`), and
    hosts never move once placed.  Its caption counts what is drawn per outcome and
    carries ``data-states``, ``data-outcomes``, ``data-colors`` and ``data-released``.

    Parameters
    ----------
    ec : ExperimentController
    width, height : float
        Figure size in inches (at ``dpi`` dots per inch).
    labels : bool, optional
        False: no names, addresses nor link properties.
    interval : float
        Minimum seconds between two updates.

    Example
    -------
    >>> from nepi_lab import ExperimentController, topology           # doctest: +SKIP
    >>> from nepi_lab.notebook import TopologyView                    # doctest: +SKIP
    >>> ec = ExperimentController()                                   # doctest: +SKIP
    >>> topology.build(ec, topology.line(3))                          # doctest: +SKIP
    >>> TopologyView(ec)                                              # doctest: +SKIP
    """

    css_class = "nepi-topology"

    def __init__(self, ec: ExperimentController, *, width: float = 8.0, height: float = 5.0, dpi: int = 100,
                 labels: bool | None = None, interval: float = UPDATE_INTERVAL, **kwargs: Any) -> None:
        self._topology: Any = None
        super().__init__(ec, width=width, height=height, dpi=dpi, labels=labels, interval=interval, **kwargs)

    @property
    def topology(self) -> Any:
        """The :func:`topology_graph` last drawn."""
        return self._topology

    def _read(self) -> tuple[Any, Any]:
        topo = topology_graph(self.ec.graph())
        return topo, topology_signature(topo)

    def _draw(self, model: Any) -> Drawing:
        self._topology = model
        return draw_topology_graph(self._ax, model, self._layout_engine, self._labels, live=True)

    def _caption_html(self) -> str:
        from .html import outcome_counts_html

        drawing = self._drawing
        topo = self._topology
        if drawing is None or topo is None:
            return ""
        counts = Counter(drawing.outcomes)
        return (f'<div class="nepi-topology-colors"{self._caption_data()} style="font-family:sans-serif;'
                f'font-size:12px">{_title_of(topo)}: {outcome_counts_html(counts, sum(drawing.released))}'
                f"</div>")


__all__ = ["TopologyView", "draw_topology", "topology_graph"]
