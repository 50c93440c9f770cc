"""Requests that arrive while a batch is at work are served together by the next batch.

Releasing 100 applications at once asks 100 times for the same kind of work (a sweep
for leftover processes, removing a folder over SSH); :class:`Batches` turns that into
a few calls of one function, each for every request made meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Batches(Generic[T, R]):
    """``await batches.submit(items)``: ``work(batch)`` runs once for the requests made
    together (at most ``limit`` items a call), and every item gets the result (or the
    exception) of the call that served it."""

    def __init__(self, work: Callable[[list[T]], Awaitable[R]], limit: int | None = None) -> None:
        self._work = work
        self._limit = limit
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, items: Sequence[T]) -> list[R]:
        """The results of the calls that served ``items``, one per item."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[R]] = []
        for item in items:
            future: asyncio.Future[R] = loop.create_future()
            self._pending.append((item, future))
            futures.append(future)
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())
        if len(futures) == 1:  # the usual case: one release
            return [await asyncio.shield(futures[0])]
        return list(await asyncio.gather(*(asyncio.shield(f) for f in futures)))

    async def _run(self) -> None:
        try:
            # one turn of the loop: the requests of one release reach the batch together
            # (a real delay would add itself to the release of every single application)
            await asyncio.sleep(0)
            while self._pending:
                size = self._limit or len(self._pending)
                batch, self._pending = self._pending[:size], self._pending[size:]
                try:
                    result = await self._work([item for item, _ in batch])
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                else:
                    for _, future in batch:
                        if not future.done():
                            future.set_result(result)
        finally:
            self._task = None
