"""Where the controller's event loop runs, and how synchronous calls reach it.

Two modes, chosen when the controller is created:

``"thread"`` (a script, a test)
    No loop is running in the caller's thread, so the controller starts its own
    loop in one daemon thread.  ``deploy()`` returns at once and the experiment goes
    on while the caller sleeps; blocking calls wait on a future.
``"running-loop"`` (a Jupyter kernel, or inside ``asyncio.run``)
    A loop already runs in the caller's thread; the controller uses it, so widgets
    are updated from the kernel's thread and cells can ``await`` the ``*_async``
    twins.  Synchronous calls re-enter that loop through nest_asyncio.

Either way exactly one loop drives the experiment, and the thread count does not
grow with the number of resources.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

#: At most this many threads ever run blocking code (legacy synchronous hooks,
#: getaddrinfo); with the loop thread and the caller's, at most 4 threads in all.
EXECUTOR_THREADS = 2


class LoopRunner:
    """Owns (or borrows) the controller's event loop."""

    def __init__(self, name: str = "nepi_lab") -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        self.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=EXECUTOR_THREADS, thread_name_prefix=f"{name}-blocking"
        )
        if loop is not None:
            import nest_asyncio

            nest_asyncio.apply(loop)
            self.mode = "running-loop"
            self.loop = loop
            self._thread: threading.Thread | None = None
            self._thread_id = threading.get_ident()
        else:
            self.mode = "thread"
            self.loop = asyncio.new_event_loop()
            self.loop.set_default_executor(self.executor)
            started = threading.Event()
            self._thread = threading.Thread(
                target=self._run_forever, args=(started,), name=f"{name}-loop", daemon=True
            )
            self._thread.start()
            started.wait()
            self._thread_id = self._thread.ident
        self.closed = False

    def _run_forever(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(started.set)
        self.loop.run_forever()

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
        """Run ``coro`` on the loop and return its result, blocking the caller."""
        if self.mode == "running-loop":
            if not self.in_loop_thread():
                coro.close()
                raise RuntimeError(
                    f"{name}() called from another thread than the one running the controller's loop"
                )
            return self.loop.run_until_complete(coro)
        if self.in_loop_thread():
            coro.close()
            raise RuntimeError(
                f"{name}() would block the controller's own event loop: "
                f"inside a callback or coroutine, use 'await ec.{name}_async(...)'"
            )
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # Ctrl-C in the caller also stops the wait in the loop
            raise

    async def run_async(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` on the controller's loop, from whatever loop the caller runs."""
        try:
            caller = asyncio.get_running_loop()
        except RuntimeError:
            caller = None
        if caller is self.loop:
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def close(self) -> None:
        """Stop and close the owned loop (a borrowed one is left running)."""
        if self.closed:
            return
        self.closed = True
        if self._thread is not None:
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
        self.executor.shutdown(wait=True)
