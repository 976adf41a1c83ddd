"""The group-commit batcher: a flush takes what waits, up to `max_batch` by weight."""

from __future__ import annotations

import asyncio

from txmsg.store.batcher import Batcher


async def test_a_flush_takes_items_up_to_their_weight() -> None:
    flushed: list[list[int]] = []

    async def flush(items: list[int]) -> list[int]:
        flushed.append(items)
        return items

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
    flushed: list[list[int]] = []

    async def flush(items: list[int]) -> list[int]:
        flushed.append(items)
        return items

    batcher: Batcher[int, int] = Batcher(flush, max_batch=2)
    batcher.start()
    try:
        await asyncio.gather(*(batcher.submit(i) for i in range(5)))
    finally:
        await batcher.stop()
    assert flushed == [[0, 1], [2, 3], [4]]
