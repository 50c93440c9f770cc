"""Where the controller's event loop runs, and how synchronous calls reach it.

Every controller runs its own asyncio loop in one daemon thread: in a script, in a
test, inside ``asyncio.run`` and inside a Jupyter kernel alike.  ``deploy()`` returns
at once and the experiment goes on while the caller does something else; a blocking
call (``wait_finished``, ``release``, ...) submits a coroutine to that loop and waits
for its result; an ``*_async`` twin awaited on any other loop (a notebook cell's)
waits for the same result without blocking that loop.  Exactly one loop drives the
experiment, and the thread count does not grow with the number of resources.

Why not the kernel's own loop
-----------------------------
Running the controller on the kernel's loop and letting synchronous calls re-enter it
(nest_asyncio) wedged kernels in JupyterLab's "Run All": while cell 1 waited, the
re-entered loop also dispatched the next queued cell, and ipykernel 7 runs every
shell message in a task of one shared :class:`contextvars.Context` (its
``_async_in_context``) that cell 1 had already entered, so cell 2's task died with
"cannot enter context ... is already entered" and stayed ``[*]`` for ever.  Any
re-entry runs the kernel's own handlers (queued cells, comm messages, interrupts)
inside a cell that is still running.  A separate thread never does: the kernel's
thread only blocks, exactly as in ``time.sleep``, so queued cells stay queued, and
Kernel → Interrupt raises :class:`KeyboardInterrupt` in the waiting cell (the wait
ends; the experiment goes on).

Callbacks into a thread that runs a loop: :class:`Inbox`
-------------------------------------------------------
Views (widgets) must be touched from the kernel's thread.  Code in other threads (the
controller's) posts calls to that thread's :class:`Inbox`: while the thread is idle,
its own loop runs them; while it is blocked in a synchronous controller call, the
call runs them as it waits.  So a live view keeps updating during
``ec.wait_finished()`` in a notebook, without the kernel's loop being re-entered.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import heapq
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger("nepi_lab")

#: At most this many threads do the controller's own blocking work (file copies,
#: getaddrinfo), and at most this many run legacy synchronous hooks (user code), so
#: that a hook that blocks never holds up the controller's own work.  (NEPI-style types
#: run theirs in a pool of their own: :meth:`LoopRunner.hook_pool`.)
EXECUTOR_THREADS = 2


class HookThreads:
    """Runs legacy synchronous hooks (user code that may block for ever) off the loop.

    At most ``limit`` hooks run at a time, each in a daemon thread of its own.  A hook
    whose task is cancelled (a timeout, a release, the controller closing) is
    abandoned: its place is freed at once, and its thread ends whenever the hook
    returns, never holding up the controller, its shutdown or the interpreter's exit.
    """

    def __init__(self, limit: int = EXECUTOR_THREADS, name: str = "nepi_lab-hook") -> None:
        self.limit = limit
        self.name = name
        self.closed = False
        self._places: asyncio.Semaphore | None = None  # made on the loop, on first use

    def close(self) -> None:
        """Refuse new hooks (the controller is shutting down); running ones are abandoned."""
        self.closed = True

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` in a thread of its own; its result, or its exception.

        Raises
        ------
        RuntimeError
            The pool is closed (its controller shut down).
        """
        if self.closed:
            raise RuntimeError(f"{self.name}: the controller is shut down, no hook runs any more")
        loop = asyncio.get_running_loop()
        if self._places is None:
            self._places = asyncio.Semaphore(self.limit)
        async with self._places:
            future: asyncio.Future[T] = loop.create_future()

            def settle(result: Any, error: BaseException | None) -> None:
                if future.done():  # abandoned meanwhile
                    return
                if error is None:
                    future.set_result(result)
                else:
                    future.set_exception(error)

            def target() -> None:
                try:
                    outcome: tuple[Any, BaseException | None] = (function(*args), None)
                except BaseException as exc:  # noqa: BLE001 - handed over to the awaiting task
                    outcome = (None, exc)
                with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                    loop.call_soon_threadsafe(settle, *outcome)

            threading.Thread(target=target, name=self.name, daemon=True).start()
            return await future


class Inbox:
    """Calls to run in one thread that runs an event loop (a Jupyter kernel's thread).

    Any thread may post with :meth:`call_later` (or :meth:`call_soon`).  The calls run
    in the inbox's own thread, in time order: on its loop while the thread is idle,
    or, while the thread is blocked in :meth:`wait` (every synchronous controller call
    waits there), by that wait.  Get the calling thread's inbox with :func:`inbox`.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.thread = threading.get_ident()
        self._lock = threading.Lock()
        self._timers: list[tuple[float, int, Callable[[], Any]]] = []  # a heap: (when, seq, call)
        self._order = itertools.count()
        self._wake = threading.Event()
        # the loop's timer for the earliest call (touched only in the inbox's thread)
        self._handle: asyncio.TimerHandle | None = None
        self._handle_when = math.inf

    def call_later(self, delay: float, callback: Callable[[], Any]) -> None:
        """Run ``callback()`` in the inbox's thread, ``delay`` seconds from now (any thread)."""
        when = time.monotonic() + max(delay, 0.0)
        with self._lock:
            heapq.heappush(self._timers, (when, next(self._order), callback))
            earliest = self._timers[0][0] == when
        if not earliest:
            return  # the loop's timer, or a waiter, comes earlier and takes it from there
        self._wake.set()
        try:
            if threading.get_ident() == self.thread:
                self.loop.call_soon(self._arm)
            else:
                self.loop.call_soon_threadsafe(self._arm)
        except RuntimeError:  # the thread's loop is closed: only a waiter can run it
            pass

    def call_soon(self, callback: Callable[[], Any]) -> None:
        """Run ``callback()`` in the inbox's thread, soon (any thread)."""
        self.call_later(0.0, callback)

    def _run_due(self) -> float | None:
        """Run the calls that are due; seconds until the next one (None: none left)."""
        while True:
            with self._lock:
                if not self._timers:
                    return None
                when = self._timers[0][0]
                wait = when - time.monotonic()
                if wait > 0:
                    return wait
                entry = heapq.heappop(self._timers)
            try:
                entry[2]()
            except Exception:  # a view must never break the caller's wait or the kernel's loop
                log.exception("a call posted to thread %s failed", self.thread)
            except BaseException:  # Ctrl-C, Kernel -> Interrupt: keep the call for later
                with self._lock:
                    heapq.heappush(self._timers, entry)
                raise

    def _arm(self) -> None:
        """Keep one timer on the thread's loop, at the earliest call (in the inbox's thread)."""
        with self._lock:
            when = self._timers[0][0] if self._timers else None
        if when is None or (self._handle is not None and self._handle_when <= when):
            return
        if self._handle is not None:
            self._handle.cancel()
        self._handle_when = when
        self._handle = self.loop.call_later(max(when - time.monotonic(), 0.0), self._fire)

    def _fire(self) -> None:
        self._handle, self._handle_when = None, math.inf
        try:
            self._run_due()
        finally:
            self._arm()

    def wait(self, future: concurrent.futures.Future[T]) -> T:
        """Block until ``future`` is done, running the calls posted meanwhile; its result.

        Interruptible: :class:`KeyboardInterrupt` (SIGINT) ends the wait at once.
        """
        wake = self._wake
        future.add_done_callback(lambda _: wake.set())
        while True:
            # cleared first: a call posted or a result set from now on wakes the wait
            wake.clear()
            if future.done():
                break
            timeout = self._run_due()
            if future.done():
                break
            wake.wait(timeout)
        return future.result()


_inboxes: dict[int, Inbox] = {}
_inboxes_lock = threading.Lock()


def inbox() -> Inbox | None:
    """The calling thread's :class:`Inbox` (made on first use), or None if the thread
    runs no event loop (a plain script: there the controller's thread updates views)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    thread = threading.get_ident()
    with _inboxes_lock:
        box = _inboxes.get(thread)
        if box is None or box.loop is not loop:
            box = _inboxes[thread] = Inbox(loop)
    return box


class LoopRunner:
    """Owns the controller's event loop and the thread that runs it."""

    def __init__(self, name: str = "nepi_lab") -> None:
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()
        self.hooks = HookThreads(EXECUTOR_THREADS, f"{name}-hook")
        self._name = name
        self._pools: dict[str, HookThreads] = {}  # further pools of hook threads, made on first use
        self._pools_lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        # The loop's default executor (``run_in_executor(None, ...)``: getaddrinfo,
        # asyncio.to_thread) is made when first asked for: most runs never ask, and making
        # it imports concurrent.futures.thread and queue (~1 ms).  A loop whose methods
        # cannot be wrapped (one from another event loop policy) gets it at once.
        original = self.loop.run_in_executor

        def run_in_executor(executor: Any, func: Callable[..., T], *args: Any) -> asyncio.Future[T]:
            if executor is None and self._executor is None:
                self.executor  # noqa: B018 - made, and set as the loop's default executor
            return original(executor, func, *args)

        try:
            self.loop.run_in_executor = run_in_executor  # type: ignore[method-assign]
        except AttributeError:
            self.executor  # noqa: B018
        started = threading.Event()
        self._thread = threading.Thread(
            target=self._run_forever, args=(started,), name=f"{name}-loop", daemon=True
        )
        self._thread.start()
        started.wait()
        self._thread_id = self._thread.ident
        self.closed = False

    @property
    def executor(self) -> concurrent.futures.ThreadPoolExecutor:
        """The :data:`EXECUTOR_THREADS` threads of the controller's own blocking work, the
        loop's default executor (made on first use, see ``__init__``)."""
        with self._executor_lock:
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=EXECUTOR_THREADS, thread_name_prefix=f"{self._name}-blocking"
                )
                self.loop.set_default_executor(self._executor)
            return self._executor

    def _run_forever(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(started.set)
        while True:
            try:
                self.loop.run_forever()
                return  # stopped by close()
            except BaseException as exc:  # noqa: BLE001 - SystemExit from a task must not kill the loop
                log.error("the controller's loop caught %r escaping a task; it goes on", exc)

    def hook_pool(self, key: str, limit: int | Callable[[], int]) -> HookThreads:
        """The runner's pool of hook threads named ``key``, made on first use with ``limit``.

        A family of hooks with other needs than :attr:`hooks` (NEPI-style types, whose
        hooks NEPI ran 20 at a time) gets a pool of its own, one per runner whatever
        the number of resources, closed with the runner.  ``limit`` (or what it returns
        when called) counts only when the pool is made.
        """
        with self._pools_lock:
            pool = self._pools.get(key)
            if pool is None:
                if self.closed:
                    raise RuntimeError(f"{self._name}: the controller is shut down, no hook runs any more")
                count = limit() if callable(limit) else limit
                pool = self._pools[key] = HookThreads(max(1, int(count)), f"{self._name}-{key}-hook")
            return pool

    def in_loop_thread(self) -> bool:
        """Whether the caller runs in the loop's thread."""
        return threading.get_ident() == self._thread_id

    def call_soon(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run ``callback(*args)`` in the loop thread, soon (from any thread)."""
        if self.in_loop_thread():
            self.loop.call_soon(callback, *args)
        else:
            self.loop.call_soon_threadsafe(callback, *args)

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> None:
        """Run ``callback(*args)`` in the loop thread after ``delay`` seconds (from any thread)."""
        if self.in_loop_thread():
            self.loop.call_later(delay, callback, *args)
        else:
            self.loop.call_soon_threadsafe(self.loop.call_later, delay, callback, *args)

    def run(self, coro: Coroutine[Any, Any, T], name: str) -> T:
        """Run ``coro`` on the loop and return its result, blocking the caller.

        A caller whose thread has an :class:`Inbox` (a notebook with live views) runs
        the calls posted to it while it waits.  An interrupt (Ctrl-C, Kernel →
        Interrupt) cancels the wait, not the experiment.
        """
        if self.in_loop_thread():
            coro.close()
            raise RuntimeError(
                f"{name}() would block the controller's own event loop: "
                f"inside a callback or coroutine, use 'await ec.{name}_async(...)'"
            )
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        box = _inboxes.get(threading.get_ident())
        try:
            return box.wait(future) if box is not None else future.result()
        except BaseException:
            future.cancel()  # Ctrl-C in the caller also stops the wait in the loop
            raise

    async def run_async(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` on the controller's loop, from whatever loop the caller runs."""
        if self.in_loop_thread():
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def close(self) -> None:
        """Stop and close the loop, join its thread, shut the thread pool down."""
        if self.closed:
            return
        self.closed = True
        loop = self.loop

        async def _drain() -> None:
            tasks = [t for t in asyncio.all_tasks(loop) if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await loop.shutdown_asyncgens()

        if not self.in_loop_thread():
            with contextlib.suppress(Exception):  # closing must not fail on a stuck task
                asyncio.run_coroutine_threadsafe(_drain(), loop).result(timeout=10)
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(timeout=10)
            loop.close()
        else:
            loop.call_soon(loop.stop)
        with contextlib.suppress(AttributeError):  # the wrapper refers to the loop: no cycle left
            del self.loop.run_in_executor
        with self._executor_lock:
            executor = self._executor
        if executor is not None:
            executor.shutdown(wait=True)
        self.hooks.close()
        with self._pools_lock:
            for pool in self._pools.values():
                pool.close()
