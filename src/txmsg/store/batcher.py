"""Group commit: many concurrent callers, one transaction per batch.

Callers `await submit(item)`; a single flusher task takes everything queued so far (up to
`max_batch`, counted by each item's `weight`: a batch trigger weighs its events) and hands it
to `flush` in one call. While a flush runs, new items gather, so the
batch size follows the load with no added latency when idle. `flush` answers one result per
item; a result that is an exception is raised to that item's caller alone.

While `calm()` is true, items that `urgent` picks go first: when some wait beside others, the
next flush takes only them (the others wait for the one after), and the others go in flushes
of at most `CALM_BATCH`; so an urgent item never shares a flush with the others' work, and one
arriving while a flush of theirs runs waits for a short one.

When `overlap()` says flushes are independent of each other, up to `MAX_OVERLAP` run at once:
the next batch's transaction starts while the previous one waits for its round trips and its
commit (otherwise the event loop sits idle meanwhile).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

MAX_OVERLAP = 4
CALM_BATCH = 8


class Batcher(Generic[T, R]):
    def __init__(
        self,
        flush: Callable[[list[T]], Awaitable[list[R]]],
        *,
        max_batch: int = 500,
        weight: Callable[[T], int] | None = None,
        overlap: Callable[[], bool] | None = None,
        urgent: Callable[[T], bool] | None = None,
        calm: Callable[[], bool] | None = None,
    ) -> None:
        self._flush = flush
        self._urgent = urgent
        self._calm = calm
        self._max_batch = max_batch
        self._weight = weight
        self._overlap = overlap
        self._running: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(MAX_OVERLAP)
        self._items: list[tuple[T, asyncio.Future[R]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="txmsg-batcher")

    async def submit(self, item: T) -> R:
        if self._closing or self._task is None:
            raise RuntimeError("the batcher is not running")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._items.append((item, future))
        self._wake.set()
        return await future

    async def stop(self) -> None:
        """Flush what was submitted, then stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            # One turn of the loop first: callers woken by the previous flush submit in it,
            # so they share the next transaction instead of the first of them getting its own.
            await asyncio.sleep(0)
            self._wake.clear()
            while self._items:
                await self._start(self._take())
            if self._closing and not self._items:
                await asyncio.gather(*self._running)
                return

    async def _start(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        """Flush `batch`: beside the flushes under way when they are independent, else after."""
        if self._overlap is None or not self._overlap():
            await asyncio.gather(*self._running)
            await self._flush_one(batch)
            return
        await self._slots.acquire()  # while it waits, the next batch gathers
        task = asyncio.create_task(self._flush_one(batch), name="txmsg-batcher-flush")
        self._running.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._slots.release()

    def _take(self) -> list[tuple[T, asyncio.Future[R]]]:
        """The next flush's items, taken off the waiting list: while calm, the urgent ones if
        any wait, else a short run of the others."""
        if self._calm is None or not self._calm():
            return self._take_first(self._max_batch)
        items = self._items
        urgent = [entry for entry in items if self._urgent is not None and self._urgent(entry[0])]
        if not urgent:
            return self._take_first(CALM_BATCH)
        if len(urgent) == len(items):
            return self._take_first(self._max_batch)
        batch = urgent[: self._count(urgent, self._max_batch)]
        taken = {id(entry) for entry in batch}
        self._items = [entry for entry in items if id(entry) not in taken]
        return batch

    def _take_first(self, limit: int) -> list[tuple[T, asyncio.Future[R]]]:
        count = self._count(self._items, limit)
        batch = self._items[:count]
        del self._items[:count]
        return batch

    def _count(self, entries: list[tuple[T, asyncio.Future[R]]], limit: int) -> int:
        """How many of `entries` a flush takes: at least one, then as many as fit in `limit`
        by weight."""
        if self._weight is None:
            return min(len(entries), limit)
        total = 0
        for count, (item, _) in enumerate(entries):
            total += self._weight(item)
            if total > limit:
                return max(1, count)
        return len(entries)

    async def _flush_one(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._flush([item for item, _ in batch])
        except Exception as exc:  # noqa: BLE001 - handed to every waiting caller
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, BaseException):  # this item alone failed
                future.set_exception(result)
            else:
                future.set_result(result)
