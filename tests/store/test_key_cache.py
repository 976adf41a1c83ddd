"""The API-key cache: a key revoked in this process stops working at once, even when a lookup
of its secret (or of a console session's key, by id) that read it before the revocation ends
after it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from txmsg.store.db import Database
from txmsg.store.keys import (
    KeyResolver,
    create_key,
    hash_key,
    hashes_of,
    principal_for,
    revoke_key,
    rotate_key,
)


class HeldLookups:
    """A database whose key lookups read, then wait for `release` before they answer."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.clock = db.clock
        self.read_done = asyncio.Event()
        self.release = asyncio.Event()

    async def read_bounded(self, fn: Callable[..., Any], *args: Any) -> Any:  # the keys'
        value = await self._db.read_bounded(fn, *args)
        if fn in (principal_for, hashes_of) and not self.release.is_set():
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


async def test_a_session_key_revoked_while_its_lookup_is_under_way_stops_working(
    db: Database,
) -> None:
    created, secret = await db.write(create_key, "marketer", "console")
    key_id = created["id"]
    held = HeldLookups(db)
    keys = KeyResolver(held, None, ttl=60)  # type: ignore[arg-type]

    def bound(digest: str) -> bool:
        return digest == hash_key(secret)

    lookup = asyncio.create_task(keys.resolve_bound(key_id, bound))
    await held.read_done.wait()  # it read the key as valid
    assert await db.write(revoke_key, key_id)
    keys.forget(key_id)
    held.release.set()
    assert (await lookup) is not None  # its own caller sent the request before the revocation
    assert await keys.resolve_bound(key_id, bound) is None


async def test_a_session_is_bound_to_its_keys_secret_by_id(db: Database) -> None:
    """`resolve_bound` finds the key by id and asks the check about its secrets' hashes: the
    current one, and a rotated key's old one until its grace ends; never a revoked key's."""
    created, old = await db.write(create_key, "marketer", "console")
    key_id = created["id"]
    keys = KeyResolver(db, "a-weak-admin-key", ttl=60)
    asked: list[str] = []

    def bound_to(secret: str) -> Callable[[str], bool]:
        def bound(digest: str) -> bool:
            asked.append(digest)
            return digest == hash_key(secret)

        return bound

    principal = await keys.resolve_bound(key_id, bound_to(old))
    assert principal is not None and principal.role == "marketer" and principal.until is None
    assert await keys.resolve_bound(key_id, bound_to("another secret")) is None
    assert await keys.resolve_bound("0123456789abcdef", bound_to(old)) is None
    admin = await keys.resolve_bound("bootstrap", bound_to("a-weak-admin-key"))
    assert admin is not None and admin.role == "admin"
    assert await keys.resolve_bound("bootstrap", bound_to(old)) is None
    assert await KeyResolver(db, None).resolve_bound("bootstrap", bound_to("")) is None

    _, new = await db.write(rotate_key, key_id, timedelta(hours=1))
    keys.forget(key_id)
    in_grace = await keys.resolve_bound(key_id, bound_to(old))
    assert in_grace is not None and in_grace.until is not None
    assert (await keys.resolve_bound(key_id, bound_to(new))) == principal
    await db.write(rotate_key, key_id, timedelta(0))  # a second rotation ends the first's grace
    keys.forget(key_id)
    assert await keys.resolve_bound(key_id, bound_to(old)) is None
    assert await keys.resolve_bound(key_id, bound_to(new)) is None
    assert set(asked) >= {hash_key(old), hash_key(new)}
