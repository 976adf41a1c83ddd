"""A small time-bounded cache whose misses are loaded once, however many callers wait."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    """`get(key)` answers from memory for `ttl` seconds, else loads it (once per key at a time).

    Without the single flight, every request arriving while an entry is stale would run the
    same query.
    """

    def __init__(
        self, load: Callable[[K], Awaitable[V]] | None, ttl: float, max_size: int = 10_000
    ) -> None:
        """`load` fills misses in `get`; without one, the cache is used with `peek` and `put`."""
        self._load = load
        self._ttl = ttl
        self._max_size = max_size
        self._values: dict[K, tuple[float, V]] = {}
        # The load under way for each key. `forget` and `clear` take a key's out of here: a
        # load that began before them may have read old data, so it is answered to the callers
        # already waiting for it but neither joined by later ones nor kept.
        self._loading: dict[K, asyncio.Future[V]] = {}

    def peek(self, key: K) -> tuple[bool, V | None]:
        """(True, value) when fresh in memory: the hot path, with no coroutine."""
        cached = self._values.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return True, cached[1]
        return False, None

    async def get(self, key: K) -> V:
        cached = self._values.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        if self._load is None:
            raise KeyError(key)
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            value = await self._load(key)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters (if any) re-raise it
            raise
        finally:
            current = self._loading.get(key) is future  # not forgotten while it ran
            if current:
                del self._loading[key]
        if current:
            self.put(key, value)
        future.set_result(value)
        return value

    def put(self, key: K, value: V) -> None:
        if len(self._values) >= self._max_size:
            self._values.clear()
        self._values[key] = (time.monotonic() + self._ttl, value)

    def forget(self, key: K) -> None:
        """Forget `key`, its load under way included (it may have read old data): the next
        `get` loads it again, even while that load is still running."""
        self._values.pop(key, None)
        self._loading.pop(key, None)

    def clear(self) -> None:
        """Forget everything, loads under way included (they may have read old data)."""
        self._values.clear()
        self._loading.clear()

    def items(self) -> list[tuple[K, V]]:
        return [(k, v) for k, (_, v) in self._values.items()]
