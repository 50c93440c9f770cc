"""The one state-to-colour map of nepi_lab (the notebook layer owns it).

Every view uses it: the live graph, the static :func:`~nepi_lab.notebook.draw`, the
HTML tables and the progress bars, so a state has the same colour everywhere.  The
deploy steps go from pale to darker blue, READY is amber, the outcomes are green
(FINISHED), purple (STOPPED) and red (FAILED); RELEASED is a dark grey.  A sweep's
runs borrow the colours of the resource states they read like.
"""

from __future__ import annotations

from ..core.states import ResourceState

S = ResourceState

#: Fill colour of each state, as ``#rrggbb``.
STATE_COLORS: dict[ResourceState, str] = {
    S.NEW: "#e0e0e0",  # light grey: nothing done yet
    S.DISCOVERED: "#c6dbef",  # pale blue: deploying
    S.RESERVED: "#9ecae1",
    S.PROVISIONED: "#6baed6",
    S.READY: "#ffc107",  # amber: deployed, waiting to start
    S.STARTED: "#1e88e5",  # blue: running
    S.STOPPED: "#8e24aa",  # purple: stopped by the experiment
    S.FINISHED: "#43a047",  # green: ended by itself with success
    S.FAILED: "#e53935",  # red
    S.RELEASED: "#616161",  # dark grey: cleaned up
}

#: Fill colour of each state of a sweep's run (:mod:`nepi_lab.runner.sweep`), as the
#: resource state it reads like: pending as NEW, running as STARTED, done as FINISHED,
#: failed as FAILED.
SWEEP_STATE_COLORS: dict[str, str] = {
    "pending": STATE_COLORS[S.NEW],
    "running": STATE_COLORS[S.STARTED],
    "done": STATE_COLORS[S.FINISHED],
    "failed": STATE_COLORS[S.FAILED],
}

#: Colours of the two kinds of edges of the experiment graph.
CONNECTION_COLOR = "#9e9e9e"
CONDITION_COLOR = "#ef6c00"


def state_color(state: ResourceState | int | str) -> str:
    """The colour of a state given as the enum, its number or its name.

    Example
    -------
    >>> state_color("FINISHED")
    '#43a047'
    """
    if isinstance(state, str):
        state = S[state.strip().upper()]
    return STATE_COLORS[S(state)]


def text_color(background: str) -> str:
    """Black or white, whichever reads better on ``background`` (``#rrggbb``)."""
    r, g, b = (int(background[i:i + 2], 16) for i in (1, 3, 5))
    return "#000000" if 0.299 * r + 0.587 * g + 0.114 * b > 150 else "#ffffff"


def hex_to_rgba(color: str) -> tuple[float, float, float, float]:
    """``#rrggbb`` as an RGBA tuple of floats in [0, 1] (what matplotlib stores)."""
    return (int(color[1:3], 16) / 255, int(color[3:5], 16) / 255, int(color[5:7], 16) / 255, 1.0)
