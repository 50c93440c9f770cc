"""The one hook through which the engine is shown; the views register, the core names none.

``ExperimentController._repr_html_``, ``ResourceManager._repr_html_`` and
``ExperimentController.draw`` exist because notebook users expect them, but what they
show belongs to the notebook layer.  The layers above the core register their
functions here by name (``nepi_lab/__init__.py`` registers the notebook layer's, which
are imported only when first called), so the core imports no view, not even lazily.
The runs layer (:mod:`nepi_lab.runner`) reaches the analysis layer's frames (sweeps, repetitions)
and the notebook layer's sweep view through the same hook, for the same reason: it sits
below both.

=====================  ==========================================================
name                   called as
=====================  ==========================================================
``"controller_html"``  ``f(ec) -> str | None`` (None: IPython shows the plain repr)
``"resource_html"``    ``f(rm) -> str | None``
``"draw"``             ``f(ec, ax=None, **options) -> matplotlib Axes``
``"sweep_frame"``      ``f(sweep, metrics=None) -> DataFrame`` (``Sweep.frame``)
``"sweep_summary"``    ``f(sweep, metrics=None) -> DataFrame`` (``Sweep.summary``)
``"runner_frame"``     ``f(runner) -> DataFrame`` (``ExperimentRunner.frame``)
``"sweep_plot"``       ``f(sweep, x, y, hue=None, ax=None, metrics=None) -> Axes`` (``Sweep.plot``)
``"sweep_view"``       ``f(sweep) -> widget`` (``Sweep.view``: the live view)
``"sweep_html"``       ``f(sweep) -> str | None`` (``Sweep._repr_html_``)
=====================  ==========================================================
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_views: dict[str, Callable[..., Any]] = {}


def register_view(name: str, function: Callable[..., Any]) -> None:
    """Show the engine's objects with ``function`` for ``name`` (see the table above)."""
    _views[name] = function


def view(name: str) -> Callable[..., Any] | None:
    """The function registered for ``name``, or None."""
    return _views.get(name)
