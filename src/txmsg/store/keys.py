"""API keys: stored as SHA-256 hashes of high-entropy secrets; the secret is shown once."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from txmsg.core.timeutil import utcnow
from txmsg.store.cache import TTLCache
from txmsg.store.db import Database
from txmsg.store.tables import api_keys

ROLES = ("admin", "marketer", "trigger")


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    role: str


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _view(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "role": row.role,
        "label": row.label,
        "created_at": row.created_at,
        "revoked_at": row.revoked_at,
    }


def create_key(conn: Connection, role: str, label: str) -> tuple[dict[str, Any], str]:
    """The new key's description and its secret (returned once, stored hashed)."""
    key_id = secrets.token_hex(8)
    secret = f"txm_{key_id}_{secrets.token_urlsafe(32)}"
    row = {
        "id": key_id,
        "key_hash": hash_key(secret),
        "role": role,
        "label": label,
        "created_at": utcnow(),
        "revoked_at": None,
    }
    conn.execute(sa.insert(api_keys).values(row))
    view = {k: row[k] for k in ("id", "role", "label", "created_at", "revoked_at")}
    return view, secret


def list_keys(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(
        sa.select(api_keys).where(api_keys.c.revoked_at.is_(None)).order_by(api_keys.c.created_at)
    )
    return [_view(r) for r in rows]


def revoke_key(conn: Connection, key_id: str) -> bool:
    result = conn.execute(
        sa.update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return result.rowcount > 0


def principal_for(conn: Connection, digest: str) -> Principal | None:
    row = conn.execute(
        sa.select(api_keys.c.id, api_keys.c.role).where(
            api_keys.c.key_hash == digest, api_keys.c.revoked_at.is_(None)
        )
    ).first()
    return Principal(row.id, row.role) if row is not None else None


class KeyResolver:
    """Resolves bearer secrets to principals without a query per request.

    Known keys are cached for `ttl` seconds: a key revoked in this process stops working at
    once; one revoked by another process within `ttl`. Unknown secrets are not cached.
    """

    def __init__(self, db: Database, bootstrap_admin_key: str | None, ttl: float = 5.0) -> None:
        self._bootstrap = bootstrap_admin_key
        self._cache: TTLCache[str, Principal | None] = TTLCache(
            lambda digest: db.read(principal_for, digest), ttl
        )

    async def resolve(self, secret: str) -> Principal | None:
        if self._bootstrap and hmac.compare_digest(secret.encode(), self._bootstrap.encode()):
            return Principal("bootstrap", "admin")
        digest = hash_key(secret)
        hit, known = self._cache.peek(digest)
        if hit:
            return known
        principal = await self._cache.get(digest)
        if principal is None:
            self._cache.forget(digest)  # unknown secrets are not remembered
        return principal

    async def resolve_digest(self, digest: str) -> Principal | None:
        """The principal of a key known by its hash (a console session holds the hash only)."""
        if self._bootstrap and hmac.compare_digest(digest, hash_key(self._bootstrap)):
            return Principal("bootstrap", "admin")
        principal = await self._cache.get(digest)
        if principal is None:
            self._cache.forget(digest)
        return principal

    def forget(self, key_id: str) -> None:
        for digest, principal in self._cache.items():
            if principal is not None and principal.key_id == key_id:
                self._cache.forget(digest)
