"""Per-key (and per-client) request limits: token buckets shared by every process, spent locally.

A bucket is a window of the shared counters (store/rate_windows.py): `burst` tokens refilled
whole every burst / per_second seconds (core/rate_limit.py). A request does not go to the
database: each process takes tokens from the shared bucket in small leases (about a tenth of a
second's worth, at most a quarter of the burst) and spends them in memory, so a key at 100/s
costs a process at most about ten short writes a second. Once the shared bucket gives less than
asked, the process refuses that key locally until the window ends (no round trip for a
refusal either).

Bound: the tokens of a window are handed out once, so all processes together never admit more
than `burst` in one window (at most 2 x burst within any span of one window's length, across
a boundary). What a process leased and did not spend is lost when its window ends: at most one
lease per process and window, so the admitted rate may fall short of the limit by that much,
never exceed it.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from txmsg.core.rate_limit import KeyLimit, Window
from txmsg.store import rate_windows
from txmsg.store.db import Database
from txmsg.store.rate_windows import Take


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a request may go; the bucket's state for the `RateLimit` headers."""

    allowed: bool
    remaining: int  # tokens this process still holds for the window
    reset_seconds: float  # until the window ends
    limit: KeyLimit


@dataclass(slots=True)
class _Lease:
    window_start: int
    cap: int  # the limit it was taken under: a changed limit (PATCH) starts a new lease
    window_end: int = 0
    limit: KeyLimit | None = None  # the limit of the last request spent from it
    tokens: int = 0
    exhausted: bool = False  # the shared bucket gave less than asked this window


class KeyLimiter:
    """Spends tokens of shared buckets, by scope (`key:<id>`, `client:<address>`)."""

    def __init__(
        self, db: Database, max_scopes: int = 10_000, clock: Callable[[], float] = time.time
    ) -> None:
        self._db = db
        self.clock = clock  # epoch seconds; replaceable: tests move time on instead of waiting
        self._leases: dict[str, _Lease] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._max_scopes = max_scopes

    async def spend(self, scope: str, limit: KeyLimit, cost: int = 1) -> Verdict:
        """Take `cost` tokens (a batch trigger counts its items) if the bucket has them."""
        now_ms = int(self.clock() * 1000)
        lease = self._leases.get(scope)
        if (
            lease is not None
            and lease.tokens >= cost
            and lease.limit is limit
            and lease.window_start <= now_ms < lease.window_end
        ):
            # The common case, tokens in hand for this window and limit: no window built,
            # no lock (about a tenth of a trigger's own time in the event loop otherwise).
            lease.tokens -= cost
            return Verdict(True, lease.tokens, (lease.window_end - now_ms) / 1000, limit)
        window = limit.window(scope)
        lease = self._lease(window, now_ms)
        if lease.tokens < cost and not lease.exhausted:
            lock = self._locks.setdefault(scope, asyncio.Lock())
            async with lock:  # one take at a time per scope in this process
                lease = self._lease(window, now_ms)
                if lease.tokens < cost and not lease.exhausted:
                    await self._take(window, lease, cost - lease.tokens, now_ms, limit)
        allowed = lease.tokens >= cost
        if allowed:
            lease.tokens -= cost
        lease.limit = limit
        return Verdict(allowed, lease.tokens, (window.end(now_ms) - now_ms) / 1000, limit)

    def exhausted(self, scope: str, limit: KeyLimit) -> Verdict | None:
        """A refusal known without a round trip: this window's shared bucket is empty."""
        window = limit.window(scope)
        now_ms = int(self.clock() * 1000)
        lease = self._leases.get(scope)
        if (
            lease is None
            or lease.window_start != window.start(now_ms)
            or lease.cap != window.cap
            or lease.tokens > 0
        ):
            return None
        if not lease.exhausted:
            return None
        return Verdict(False, 0, (window.end(now_ms) - now_ms) / 1000, limit)

    def _lease(self, window: Window, now_ms: int) -> _Lease:
        start = window.start(now_ms)
        lease = self._leases.get(window.scope)
        if lease is None or lease.window_start != start or lease.cap != window.cap:
            if lease is None and len(self._leases) >= self._max_scopes:
                self._forget_old(now_ms)
            lease = self._leases[window.scope] = _Lease(start, window.cap, start + window.length_ms)
        return lease

    def _forget_old(self, now_ms: int) -> None:
        """Bounded memory: drop the leases of ended windows (their tokens are lost anyway)."""
        day_ago = now_ms - 86_400_000
        for scope, lease in list(self._leases.items()):
            if lease.window_start < day_ago or len(self._leases) >= self._max_scopes:
                del self._leases[scope]
                self._locks.pop(scope, None)

    async def _take(
        self, window: Window, lease: _Lease, need: int, now_ms: int, limit: KeyLimit
    ) -> None:
        size = max(1, min(limit.burst // 4, math.ceil(limit.per_second / 10)))
        want = max(need, size)
        granted = await self._db.write_bounded(rate_windows.take_in, [Take(window, want, now_ms)])
        got = granted[window.scope].tokens
        lease.tokens += got
        if got < want:
            lease.exhausted = True
