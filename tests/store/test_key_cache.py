"""The API-key cache: a key revoked in this process stops working at once, even when a lookup
of its secret that read it before the revocation ends after it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from txmsg.store.db import Database
from txmsg.store.keys import KeyResolver, create_key, principal_for, revoke_key


class HeldLookups:
    """A database whose key lookups read, then wait for `release` before they answer."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.read_done = asyncio.Event()
        self.release = asyncio.Event()

    async def read(self, fn: Callable[..., Any], *args: Any) -> Any:
        value = await self._db.read(fn, *args)
        if fn is principal_for and not self.release.is_set():
            self.read_done.set()
            await self.release.wait()
        return value


async def test_a_key_revoked_while_its_lookup_is_under_way_stops_working(db: Database) -> None:
    created, secret = await db.write(create_key, "trigger", "shop")
    key_id = created["id"]
    held = HeldLookups(db)
    keys = KeyResolver(held, None, ttl=60)  # type: ignore[arg-type]
    lookup = asyncio.create_task(keys.resolve(secret))
    await held.read_done.wait()  # it read the key as valid
    assert await db.write(revoke_key, key_id)
    keys.forget(key_id)
    held.release.set()
    await lookup  # its own caller sent the request before the revocation
    assert keys.cached(secret) is None
    assert await keys.resolve(secret) is None
