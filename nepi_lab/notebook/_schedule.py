"""How the views hear about state changes and stay cheap: one coalescing timer each.

A view subscribes to ``ec.events`` (a controller's view) or to ``sweep.subscribe``
(a sweep's view, :mod:`nepi_lab.notebook.sweep`).  Its subscriber does almost nothing (it notes
that something changed and asks for an update); the update itself runs later, in the
*view's thread*, at most once per ``interval`` seconds however many events arrived:
10,000 state changes in a second give at most 10 redraws.

Where the update runs:

- a view made in a thread that runs an event loop (a Jupyter kernel's) is updated in
  that thread, through its :class:`~nepi_lab.core.loop.Inbox`: by the kernel's loop
  while the kernel is idle between cells, and by the synchronous call a cell is
  blocked in (``ec.wait_finished()``) while it waits, so the widgets are only ever
  touched from the kernel's thread and never stop following the experiment;
- a view made in a plain script (no loop in its thread) is updated in the
  controller's loop thread; a sweep's view, whose sweep has no loop, in a short-lived
  timer thread (one at a time per view: the coalescer keeps at most one update pending).

Events arrive in the controller's loop thread (every lifecycle change) or in the
thread that called ``register_resource``; a sweep's changes, in the thread that runs
the sweep (a background one for ``sweep.start()``, the caller's for ``sweep.run()``).
Updates are serialised by a lock, so :meth:`Coalescer.flush` (an update now, from the
caller's thread) never overlaps a timer-driven one.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from ..core.controller import ExperimentController
from ..core.loop import inbox

if TYPE_CHECKING:
    from ..runner.sweep import Sweep

log = logging.getLogger("nepi_lab")

#: Seconds between two updates of a view: at most 10 a second.
UPDATE_INTERVAL = 0.1


class Scheduler(Protocol):
    """Runs a call later in a view's thread (an :class:`~nepi_lab.core.loop.Inbox`)."""

    def call_later(self, delay: float, callback: Callable[[], Any]) -> None: ...


class _ControllerThread:
    """A view without a loop of its own is updated in the controller's loop thread."""

    def __init__(self, ec: ExperimentController) -> None:
        self._runner = ec._runner

    def call_later(self, delay: float, callback: Callable[[], Any]) -> None:
        with contextlib.suppress(RuntimeError):  # the controller was shut down: no more updates
            self._runner.call_later(delay, callback)


class _TimerThread:
    """A view without a loop of its own, of something without one (a sweep in a script):
    each update in a daemon timer thread that ends with it."""

    def call_later(self, delay: float, callback: Callable[[], Any]) -> None:
        timer = threading.Timer(delay, callback)
        timer.name, timer.daemon = "nepi_lab-view-update", True
        timer.start()


def view_scheduler(ec: ExperimentController | None) -> Scheduler:
    """Where a view of ``ec`` (None: of a sweep) made in this thread is updated (see the
    module docstring)."""
    return inbox() or (_ControllerThread(ec) if ec is not None else _TimerThread())


class Coalescer:
    """Calls ``callback()`` in the view's thread soon after :meth:`request`, at most once per ``interval``.

    :meth:`request` is cheap and may be called from any thread, as often as events
    come: while an update is pending, it returns at once.  The first request after
    a quiet period is served ``interval`` seconds later (a burst of changes, such as
    the five transitions of a deploy, becomes one update); two updates always start
    at least ``interval`` seconds apart.
    """

    def __init__(self, callback: Callable[[], Any], scheduler: Scheduler,
                 interval: float = UPDATE_INTERVAL) -> None:
        self._callback = callback
        self.scheduler = scheduler
        self.interval = interval
        self._pending = False
        self._last = float("-inf")
        self._guard = threading.Lock()  # makes the pending flag test-and-set atomic
        self.lock = threading.RLock()  # held while an update runs
        self.closed = False
        self.calls = 0  #: how many updates ran

    def request(self) -> None:
        """Ask for an update (any thread)."""
        if self._pending or self.closed:
            return
        with self._guard:
            if self._pending:
                return
            self._pending = True
        delay = max(self._last + self.interval - time.monotonic(), self.interval)
        self.scheduler.call_later(delay, self._fire)

    def _fire(self) -> None:
        if self._pending and not self.closed:  # not served meanwhile by flush()
            self._run()

    def _run(self) -> None:
        with self.lock:
            self._pending = False  # events from now on ask for the next update
            self._last = time.monotonic()
            self.calls += 1
            try:
                self._callback()
            except Exception:  # a view must never break the kernel's loop
                log.exception("view update failed")

    def flush(self) -> None:
        """Run the update now, in the caller's thread (a pending one is then skipped);
        nothing once closed (a frozen view keeps what it shows)."""
        if not self.closed:
            self._run()

    def close(self) -> None:
        """No more updates."""
        self.closed = True


class Subscription:
    """A view's subscription to ``ec.events`` (or to a sweep's changes): marks the view
    dirty, asks for an update.

    ``source`` is an :class:`~nepi_lab.ExperimentController` (``on_event(event)`` gets
    each of its events) or a :class:`~nepi_lab.Sweep` (``on_event(sweep)`` after each
    change of its record).  ``on_event`` runs in the thread that made the change and
    must be cheap; ``update()`` runs on the view loop through a :class:`Coalescer`.
    """

    def __init__(self, source: ExperimentController | Sweep, on_event: Callable[[Any], None],
                 update: Callable[[], None], interval: float = UPDATE_INTERVAL) -> None:
        if isinstance(source, ExperimentController):
            scheduler, subscribe = view_scheduler(source), source.events.subscribe
        else:
            scheduler, subscribe = view_scheduler(None), source.subscribe
        self.coalescer = Coalescer(update, scheduler, interval)
        self._on_event = on_event
        self._unsubscribe = subscribe(self._event)

    def _event(self, event: Any) -> None:
        self._on_event(event)
        self.coalescer.request()

    def request(self) -> None:
        """Ask for an update without an event (after a connection or condition was added)."""
        self.coalescer.request()

    def flush(self) -> None:
        """Update now."""
        self.coalescer.flush()

    def close(self) -> None:
        """Unsubscribe and stop updating."""
        self._unsubscribe()
        self.coalescer.close()


class Following:
    """Mixin for widgets that follow a controller (or a sweep) through ``self._subscription``.

    Put it before the widget class (``class View(Following, widgets.VBox)``) so that
    :meth:`close` ends the subscription, then closes the widget.
    """

    _subscription: Subscription

    def refresh(self) -> None:
        """Update soon (coalesced with the event-driven updates)."""
        self._subscription.request()

    def update(self) -> None:
        """Update now (normally the view follows by itself)."""
        self._subscription.flush()

    def freeze(self) -> None:
        """Show the state now, then stop following (the widget stays, as it is)."""
        self._subscription.flush()
        self._subscription.close()

    @property
    def frozen(self) -> bool:
        """Whether the view no longer follows the controller."""
        return self._subscription.coalescer.closed

    def close(self) -> None:
        """Stop following the controller and close the widget."""
        subscription = getattr(self, "_subscription", None)
        if subscription is not None:
            subscription.close()
        super().close()  # type: ignore[misc]
