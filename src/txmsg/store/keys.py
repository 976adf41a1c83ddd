"""API keys: stored as SHA-256 hashes of high-entropy secrets; the secret is shown once."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from txmsg.core.timeutil import utcnow
from txmsg.store.db import Database
from txmsg.store.tables import api_keys

ROLES = ("admin", "marketer", "trigger")


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    role: str


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _row(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "role": row.role,
        "label": row.label,
        "created_at": row.created_at,
        "revoked_at": row.revoked_at,
    }


async def create_key(db: Database, role: str, label: str) -> tuple[dict[str, Any], str]:
    key_id = secrets.token_hex(8)
    secret = f"txm_{key_id}_{secrets.token_urlsafe(32)}"
    now = utcnow()
    async with db.write() as conn:
        await conn.execute(
            sa.insert(api_keys).values(
                id=key_id, key_hash=hash_key(secret), role=role, label=label, created_at=now
            )
        )
    return {"id": key_id, "role": role, "label": label, "created_at": now}, secret


async def list_keys(db: Database) -> list[dict[str, Any]]:
    async with db.read() as conn:
        rows = await conn.execute(
            sa.select(api_keys)
            .where(api_keys.c.revoked_at.is_(None))
            .order_by(api_keys.c.created_at)
        )
        return [_row(r) for r in rows]


async def revoke_key(db: Database, key_id: str) -> bool:
    async with db.write() as conn:
        result = await conn.execute(
            sa.update(api_keys)
            .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        return result.rowcount > 0


class KeyResolver:
    """Resolves bearer secrets to principals without a query per request.

    Known keys are cached for `ttl` seconds: a key revoked in this process stops working at
    once; one revoked by another process within `ttl`. Unknown secrets are not cached.
    """

    def __init__(self, db: Database, bootstrap_admin_key: str | None, ttl: float = 5.0) -> None:
        self._db = db
        self._bootstrap = bootstrap_admin_key
        self._ttl = ttl
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    async def resolve(self, secret: str) -> Principal | None:
        if self._bootstrap and hmac.compare_digest(secret, self._bootstrap):
            return Principal("bootstrap", "admin")
        digest = hash_key(secret)
        cached = self._cache.get(digest)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    sa.select(api_keys.c.id, api_keys.c.role).where(
                        api_keys.c.key_hash == digest, api_keys.c.revoked_at.is_(None)
                    )
                )
            ).first()
        if row is None:
            self._cache.pop(digest, None)
            return None
        principal = Principal(row.id, row.role)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (now + self._ttl, principal)
        return principal

    def forget(self, key_id: str) -> None:
        for digest, (_, principal) in list(self._cache.items()):
            if principal is not None and principal.key_id == key_id:
                del self._cache[digest]
