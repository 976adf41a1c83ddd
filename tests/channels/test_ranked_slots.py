"""The SMTP pool's connection permits: the lowest rank waiting goes first."""

from __future__ import annotations

import asyncio

import pytest

from txmsg.channels.ranked_slots import RankedSlots


async def test_a_released_slot_goes_to_the_lowest_rank_waiting() -> None:
    slots = RankedSlots(1)
    order: list[str] = []

    async def use(name: str, rank: int) -> None:
        async with slots.slot(rank):
            order.append(name)
            await asyncio.sleep(0)

    await slots.acquire(0)  # the one connection is in use
    waiting = [asyncio.create_task(use(f"bulk{i}", 10)) for i in range(3)]
    await asyncio.sleep(0)
    urgent = asyncio.create_task(use("urgent", 0))
    await asyncio.sleep(0)
    slots.release()
    await asyncio.gather(*waiting, urgent)
    assert order == ["urgent", "bulk0", "bulk1", "bulk2"]


async def test_a_cancelled_waiter_passes_its_slot_on() -> None:
    slots = RankedSlots(1)
    await slots.acquire(0)
    gone = asyncio.create_task(slots.acquire(0))
    after = asyncio.create_task(slots.acquire(10))
    await asyncio.sleep(0)
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    slots.release()
    await asyncio.wait_for(after, 1)  # the cancelled one was skipped
    slots.release()
    await asyncio.wait_for(slots.acquire(5), 1)  # free again: no waiter left behind
