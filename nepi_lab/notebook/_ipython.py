"""The few places the notebook layer talks to IPython itself (all optional).

Outside IPython every function here is a harmless no-op, so the views also work in
a script (they then just keep their widgets up to date).
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable
from typing import Any


def shell() -> Any | None:
    """The running IPython shell, or None."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with ipywidgets
        return None
    return get_ipython()


def in_kernel() -> bool:
    """Whether this runs inside a Jupyter kernel (a notebook, Voilà, JupyterLab)."""
    ip = shell()
    return ip is not None and getattr(ip, "kernel", None) is not None


def _register(event: str, callback: Callable[..., Any]) -> Callable[[], None]:
    ip = shell()
    if ip is None or not hasattr(ip, "events"):
        return lambda: None
    ip.events.register(event, callback)

    def forget() -> None:
        with contextlib.suppress(ValueError):  # already gone
            ip.events.unregister(event, callback)

    return forget


def after_each_cell(method: weakref.WeakMethod[Callable[[], Any]]) -> Callable[[], None]:
    """Call ``method()`` after every cell IPython runs, while its object lives.

    Returns a function that stops it.  The object is held weakly, so a forgotten
    view is not kept alive by the hook (the hook removes itself once it is gone).
    """
    forget: Callable[[], None] = lambda: None  # noqa: E731

    def post_run_cell(*_: Any) -> None:
        bound = method()
        if bound is None:
            forget()
            return
        bound()

    forget = _register("post_run_cell", post_run_cell)
    return forget


def on_cells(before: Callable[..., Any], after: Callable[..., Any]) -> Callable[[], None]:
    """Call ``before`` and ``after`` around every cell; returns a function that stops it."""
    forget_before = _register("pre_run_cell", before)
    forget_after = _register("post_run_cell", after)

    def forget() -> None:
        forget_before()
        forget_after()

    return forget
