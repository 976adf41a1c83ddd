"""The group-commit batcher: a flush takes what waits, up to `max_batch` by weight; urgent items
go first, in a flush of their own; while calm, the others go in short flushes; flushes overlap
(up to `MAX_OVERLAP`) only when they are independent."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from txmsg.store.batcher import CALM_BATCH, MAX_OVERLAP, Batcher


def _recorded() -> tuple[list[list[int]], Callable[[list[int]], Awaitable[list[int]]]]:
    """A flush that answers each item with itself, and the batches it was given."""
    flushed: list[list[int]] = []

    async def flush(items: list[int]) -> list[int]:
        flushed.append(items)
        return items

    return flushed, flush


async def test_a_flush_takes_items_up_to_their_weight() -> None:
    flushed, flush = _recorded()

    batcher: Batcher[int, int] = Batcher(flush, max_batch=5, weight=lambda item: item)
    batcher.start()
    try:
        # Each item weighs its value; one heavier than max_batch still goes, alone.
        answers = await asyncio.gather(*(batcher.submit(i) for i in (3, 2, 1, 10, 1, 4)))
    finally:
        await batcher.stop()
    assert answers == [3, 2, 1, 10, 1, 4]
    assert flushed == [[3, 2], [1], [10], [1, 4]]


async def test_without_weights_a_flush_takes_max_batch_items() -> None:
    flushed, flush = _recorded()

    batcher: Batcher[int, int] = Batcher(flush, max_batch=2)
    batcher.start()
    try:
        await asyncio.gather(*(batcher.submit(i) for i in range(5)))
    finally:
        await batcher.stop()
    assert flushed == [[0, 1], [2, 3], [4]]


class _Calm:
    """The `calm` of a batcher under test: on until switched off."""

    def __init__(self) -> None:
        self.on = True

    def __call__(self) -> bool:
        return self.on


def _calm_batcher(max_batch: int) -> tuple[Batcher[int, int], list[list[int]], _Calm]:
    """A started batcher whose negative items are urgent, calm until told otherwise; the
    batches it flushed."""
    flushed, flush = _recorded()
    calm = _Calm()
    batcher: Batcher[int, int] = Batcher(
        flush, max_batch=max_batch, urgent=lambda item: item < 0, calm=calm
    )
    batcher.start()
    return batcher, flushed, calm


async def test_while_calm_urgent_items_go_first_in_a_flush_of_their_own() -> None:
    # Negative items are urgent: they skip ahead of the others waiting before them.
    batcher, flushed, calm = _calm_batcher(3)
    try:
        answers = await asyncio.gather(*(batcher.submit(i) for i in (1, 2, -1, 3, -2, -3, -4)))
        calm.on = False  # in arrival order again
        await asyncio.gather(*(batcher.submit(i) for i in (1, -1, 2)))
    finally:
        await batcher.stop()
    assert answers == [1, 2, -1, 3, -2, -3, -4]  # every caller gets its own answer
    # Urgent ones up to max_batch, then the rest of them, then the others in their order.
    assert flushed == [[-1, -2, -3], [-4], [1, 2, 3], [1, -1, 2]]


async def test_while_calm_the_others_go_in_short_flushes() -> None:
    batcher, flushed, calm = _calm_batcher(100)
    try:
        await asyncio.gather(*(batcher.submit(i) for i in range(CALM_BATCH + 5)))
        calm.on = False
        await asyncio.gather(*(batcher.submit(i) for i in range(CALM_BATCH + 5)))
        calm.on = True
        # Urgent items are never held to the calm bound.
        await asyncio.gather(*(batcher.submit(-i) for i in range(1, CALM_BATCH + 6)))
    finally:
        await batcher.stop()
    assert [len(batch) for batch in flushed] == [CALM_BATCH, 5, CALM_BATCH + 5, CALM_BATCH + 5]


class _Gate:
    """A flush that waits to be let through, counting how many run at once."""

    def __init__(self) -> None:
        self.running = 0
        self.most = 0
        self.started: list[list[int]] = []
        self.go = asyncio.Event()

    async def flush(self, items: list[int]) -> list[int | BaseException]:
        self.running += 1
        self.most = max(self.most, self.running)
        self.started.append(items)
        await self.go.wait()
        self.running -= 1
        return [ValueError(i) if i < 0 else i * 10 for i in items]


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not met within 1 s")


async def test_independent_flushes_overlap_up_to_the_limit() -> None:
    gate = _Gate()
    batcher: Batcher[int, int | BaseException] = Batcher(gate.flush, overlap=lambda: True)
    batcher.start()
    try:
        # Each batch starts while the ones before are still under way, up to the limit ...
        first = []
        for i in range(1, MAX_OVERLAP):
            first.append(asyncio.ensure_future(batcher.submit(i)))
            await _until(lambda: len(gate.started) == len(first))
        failing = asyncio.ensure_future(batcher.submit(-1))
        await _until(lambda: len(gate.started) == MAX_OVERLAP)
        # ... then the next waits for a free place, gathering what comes meanwhile.
        last = [asyncio.ensure_future(batcher.submit(i)) for i in (7, 8)]
        await asyncio.sleep(0.05)
        assert len(gate.started) == MAX_OVERLAP and gate.running == MAX_OVERLAP
        gate.go.set()
        assert await asyncio.gather(*first) == [i * 10 for i in range(1, MAX_OVERLAP)]
        assert await asyncio.gather(*last) == [70, 80]
        with pytest.raises(ValueError):  # an error reaches its own caller only
            await failing
    finally:
        gate.go.set()  # a failed assertion must not leave stop() waiting on the gate
        await batcher.stop()
    assert gate.started[-1] == [7, 8] and gate.most == MAX_OVERLAP


async def test_dependent_flushes_run_one_at_a_time_and_stop_waits_for_them() -> None:
    gate = _Gate()
    batcher: Batcher[int, int | BaseException] = Batcher(gate.flush, overlap=lambda: False)
    batcher.start()
    stopping = None
    try:
        first = asyncio.ensure_future(batcher.submit(1))
        await _until(lambda: gate.started == [[1]])
        second = asyncio.ensure_future(batcher.submit(2))
        await asyncio.sleep(0.05)
        assert gate.started == [[1]]  # the second waits for the first to end
        stopping = asyncio.ensure_future(batcher.stop())
        await asyncio.sleep(0.02)
        assert not stopping.done()
    finally:
        gate.go.set()  # a failed assertion must not leave stop() waiting on the gate
        await (stopping or batcher.stop())
    assert (await first, await second) == (10, 20)
    assert gate.most == 1
