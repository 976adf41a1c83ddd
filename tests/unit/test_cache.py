"""TTLCache: a miss is loaded once however many wait; entries expire; failures propagate."""

from __future__ import annotations

import asyncio

import pytest

from txmsg.store.cache import TTLCache


async def test_concurrent_misses_load_once_and_entries_expire() -> None:
    loads: list[str] = []

    async def load(key: str) -> str:
        loads.append(key)
        await asyncio.sleep(0.01)
        return key.upper()

    cache: TTLCache[str, str] = TTLCache(load, ttl=0.05)
    assert await asyncio.gather(*(cache.get("a") for _ in range(20))) == ["A"] * 20
    assert loads == ["a"]
    assert cache.peek("a") == (True, "A")
    await asyncio.sleep(0.06)
    assert cache.peek("a") == (False, None)
    assert await cache.get("a") == "A"
    assert loads == ["a", "a"]
    cache.forget("a")
    assert cache.peek("a") == (False, None)


async def test_a_failed_load_reaches_every_waiter_and_is_not_cached() -> None:
    calls = 0

    async def load(key: str) -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        raise ConnectionError("database away")

    cache: TTLCache[str, str] = TTLCache(load, ttl=10)
    results = await asyncio.gather(*(cache.get("k") for _ in range(5)), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    assert calls == 1
    with pytest.raises(ConnectionError):
        await cache.get("k")
    assert calls == 2


async def test_without_a_loader_the_cache_is_put_and_peek() -> None:
    cache: TTLCache[str, int] = TTLCache(None, ttl=10)
    cache.put("x", 1)
    assert cache.peek("x") == (True, 1)
    with pytest.raises(KeyError):
        await cache.get("missing")


@pytest.mark.parametrize("invalidate", ["clear", "forget"])
async def test_a_load_under_way_when_invalidated_is_neither_joined_nor_kept(
    invalidate: str,
) -> None:
    """A load that began before `clear()` or `forget(key)` (an admin write committed
    meanwhile) may have read old data: answered to its own callers, neither joined by later
    ones nor kept."""
    started = asyncio.Event()
    release = asyncio.Event()
    versions = iter(["old", "new"])

    async def load(key: str) -> str:
        value = next(versions)
        if value == "old":
            started.set()
            await release.wait()
        return value

    cache: TTLCache[str, str] = TTLCache(load, ttl=60)
    first = asyncio.create_task(cache.get("a"))
    await started.wait()
    # The configuration changed while "old" was being read.
    if invalidate == "clear":
        cache.clear()
    else:
        cache.forget("a")
    # Loaded again, not joined to the stale load (which would wait for `release`).
    assert await asyncio.wait_for(cache.get("a"), 5) == "new"
    release.set()
    assert await first == "old"
    assert cache.peek("a") == (True, "new")  # the stale load, ending last, is not kept
