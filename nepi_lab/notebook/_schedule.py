"""How the views hear about state changes and stay cheap: one coalescing timer each.

A view subscribes to ``ec.events``.  Its subscriber does almost nothing (it notes
that something changed and asks for an update); the update itself runs later, on
the *view loop*, at most once per ``interval`` seconds however many events arrived:
10,000 state changes in a second give at most 10 redraws.

The view loop is where widgets are touched:

- in Jupyter the controller runs on the kernel's own loop ("running-loop" mode), so
  events arrive in the kernel thread and the timer is a plain ``loop.call_later``
  on that loop; it fires between cells too, because the kernel's loop keeps running
  while the kernel is idle;
- when the controller runs its own loop in a thread ("thread" mode), events arrive
  in that thread (and registrations in whatever thread called
  ``register_resource``).  If the view was made in a thread that runs a loop (a
  kernel), the request is marshalled there with ``call_soon_threadsafe`` and the
  widgets are only ever touched from that thread; otherwise (a plain script) the
  controller's loop is the view loop.

Updates are serialised by a lock, so :meth:`Coalescer.flush` (an update now, from
the caller's thread) never overlaps a timer-driven one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..core.controller import ExperimentController

log = logging.getLogger("nepi_lab")

#: Seconds between two updates of a view: at most 10 a second.
UPDATE_INTERVAL = 0.1


def view_loop(ec: ExperimentController) -> asyncio.AbstractEventLoop:
    """The loop a view of ``ec`` made in this thread updates on (see the module docstring)."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return ec.loop


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class Coalescer:
    """Calls ``callback()`` on ``loop`` soon after :meth:`request`, at most once per ``interval``.

    :meth:`request` is cheap and may be called from any thread, as often as events
    come: while an update is pending, it returns at once.  The first request after
    a quiet period is served ``interval`` seconds later (a burst of changes, such as
    the five transitions of a deploy, becomes one update); two updates always start
    at least ``interval`` seconds apart.
    """

    def __init__(self, callback: Callable[[], Any], loop: asyncio.AbstractEventLoop,
                 interval: float = UPDATE_INTERVAL) -> None:
        self._callback = callback
        self.loop = loop
        self.interval = interval
        self._pending = False
        self._handle: asyncio.TimerHandle | None = None
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
        loop = self.loop
        try:
            if _running_loop() is loop:
                self._arm()
            else:
                loop.call_soon_threadsafe(self._arm)
        except RuntimeError:  # the loop is closed: the controller was shut down
            self._pending = False

    def _arm(self) -> None:
        if self.closed:
            return
        now = self.loop.time()
        delay = max(self._last + self.interval - now, self.interval)
        self._handle = self.loop.call_later(delay, self._fire)

    def _fire(self) -> None:
        self._handle = None
        self._run()

    def _run(self) -> None:
        with self.lock:
            self._pending = False  # events from now on ask for the next update
            self._last = self.loop.time()
            self.calls += 1
            try:
                self._callback()
            except Exception:  # a view must never break the kernel's loop
                log.exception("view update failed")

    def flush(self) -> None:
        """Run the update now, in the caller's thread, and cancel the pending one."""
        handle = self._handle
        if handle is not None:
            handle.cancel()
            self._handle = None
        self._run()

    def close(self) -> None:
        """No more updates."""
        self.closed = True
        handle = self._handle
        if handle is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed
                self.loop.call_soon_threadsafe(handle.cancel)


class Subscription:
    """A view's subscription to ``ec.events``: marks the view dirty, asks for an update.

    ``on_event(event)`` runs in the thread that made the change and must be cheap;
    ``update()`` runs on the view loop through a :class:`Coalescer`.
    """

    def __init__(self, ec: ExperimentController, on_event: Callable[[Any], None],
                 update: Callable[[], None], interval: float = UPDATE_INTERVAL) -> None:
        self.coalescer = Coalescer(update, view_loop(ec), interval)
        self._on_event = on_event
        self._unsubscribe = ec.events.subscribe(self._event)

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
    """Mixin for widgets that follow a controller through ``self._subscription``.

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

    def close(self) -> None:
        """Stop following the controller and close the widget."""
        subscription = getattr(self, "_subscription", None)
        if subscription is not None:
            subscription.close()
        super().close()  # type: ignore[misc]
