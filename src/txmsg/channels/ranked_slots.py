"""Permits handed out by rank: like `asyncio.Semaphore`, but waiters of the lowest rank go
first (then in order of arrival), so a transactional send never queues behind bulk ones."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class RankedSlots:
    def __init__(self, value: int) -> None:
        if value < 1:
            raise ValueError("at least one slot")
        self._free = value
        # (rank, arrival, future): a released permit goes to the first not yet done.
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()

    @asynccontextmanager
    async def slot(self, rank: int) -> AsyncIterator[None]:
        await self.acquire(rank)
        try:
            yield
        finally:
            self.release()

    async def acquire(self, rank: int) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (rank, next(self._arrivals), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # handed a permit as it was cancelled: pass it on
            raise

    def release(self) -> None:
        """Hand the permit to the first waiter (cancelled ones are skipped), or keep it."""
        while self._waiters:
            future = heapq.heappop(self._waiters)[2]
            if not future.done():
                future.set_result(None)
                return
        self._free += 1
