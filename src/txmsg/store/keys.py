"""API keys: stored as SHA-256 hashes of high-entropy secrets; the secret is shown once.

A rotation gives a key a new secret and keeps the old one valid for a grace period (its hash
in `previous_hash` until `previous_until`); a second rotation ends the first one's grace.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from txmsg.core.rate_limit import KeyLimit, parse_key_limit
from txmsg.core.timeutil import utcnow
from txmsg.store.cache import TTLCache
from txmsg.store.db import Database
from txmsg.store.key_limits import KeyLimiter
from txmsg.store.tables import api_keys


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    role: str
    rate_limit: KeyLimit | None = None  # the key's own; None: the installation's default
    until: datetime | None = None  # a rotated key's old secret: valid until then


BOOTSTRAP_KEY_ID = "bootstrap"  # the principal of TXMSG_ADMIN_KEY (stored keys' ids are hex)


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class KeyHashes:
    """An active key's principal and the hashes of its secrets: the current one, and the old
    one with the end of its grace. Kept in memory to check a console session against; never
    logged nor answered (`repr` leaves the hashes out)."""

    principal: Principal
    key_hash: str = field(repr=False)
    previous_hash: str | None = field(repr=False)
    previous_until: datetime | None


def hashes_of(conn: Connection, key_id: str) -> KeyHashes | None:
    """The active key `key_id` with the hashes of its secrets; None if there is no such key."""
    c = api_keys.c
    row = conn.execute(
        sa.select(c.id, c.role, c.rate_limit, c.key_hash, c.previous_hash, c.previous_until).where(
            _active(key_id)
        )
    ).first()
    if row is None:
        return None
    principal = Principal(row.id, row.role, parse_key_limit(row.rate_limit))
    return KeyHashes(principal, row.key_hash, row.previous_hash, row.previous_until)


def _view(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "role": row.role,
        "label": row.label,
        "created_at": row.created_at,
        "revoked_at": row.revoked_at,
        "rate_limit": row.rate_limit,
        "previous_secret_valid_until": row.previous_until,
    }


def _new_secret(key_id: str) -> str:
    return f"txm_{key_id}_{secrets.token_urlsafe(32)}"


def create_key(
    conn: Connection, role: str, label: str, rate_limit: KeyLimit | None = None
) -> tuple[dict[str, Any], str]:
    """The new key's description and its secret (returned once, stored hashed)."""
    key_id = secrets.token_hex(8)
    secret = _new_secret(key_id)
    conn.execute(
        sa.insert(api_keys).values(
            id=key_id,
            key_hash=hash_key(secret),
            role=role,
            label=label,
            created_at=utcnow(),
            revoked_at=None,
            rate_limit=rate_limit.as_dict() if rate_limit is not None else None,
        )
    )
    return _require(conn, key_id), secret


def _require(conn: Connection, key_id: str) -> dict[str, Any]:
    row = conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id)).one()
    return _view(row)


def _active(key_id: str) -> sa.ColumnElement[bool]:
    return sa.and_(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))


def set_rate_limit(
    conn: Connection, key_id: str, rate_limit: KeyLimit | None
) -> dict[str, Any] | None:
    """Set (or, with None, remove) an active key's own limit; None if there is no such key."""
    value = rate_limit.as_dict() if rate_limit is not None else None
    done = conn.execute(sa.update(api_keys).where(_active(key_id)).values(rate_limit=value))
    return _require(conn, key_id) if done.rowcount else None


def rotate_key(
    conn: Connection, key_id: str, grace: timedelta, now: datetime | None = None
) -> tuple[dict[str, Any], str] | None:
    """A new secret for an active key (same id, role and limit); the current one stays valid
    for `grace` from `now` (the database's time: every API process checks it). None if there
    is no such key."""
    secret = _new_secret(key_id)
    done = conn.execute(
        sa.update(api_keys)
        .where(_active(key_id))
        .values(
            previous_hash=api_keys.c.key_hash,
            previous_until=(now or utcnow()) + grace,
            key_hash=hash_key(secret),
        )
    )
    return (_require(conn, key_id), secret) if done.rowcount else None


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


def principal_for(conn: Connection, digest: str, now: datetime | None = None) -> Principal | None:
    """The key whose current secret, or old secret within its grace (at `now`, the
    database's time), has this hash."""
    c = api_keys.c
    row = conn.execute(
        sa.select(c.id, c.role, c.rate_limit, c.key_hash, c.previous_until).where(
            sa.or_(
                c.key_hash == digest,
                sa.and_(c.previous_hash == digest, c.previous_until > (now or utcnow())),
            ),
            c.revoked_at.is_(None),
        )
    ).first()
    if row is None:
        return None
    until = None if row.key_hash == digest else row.previous_until
    return Principal(row.id, row.role, parse_key_limit(row.rate_limit), until)


KNOWN_GOOD_SECONDS = 3600.0
MAX_KNOWN_GOOD = 10_000


class KeyResolver:
    """Resolves bearer secrets to principals without a query per request.

    Known keys are cached for `ttl` seconds: a key revoked in this process stops working at
    once; one revoked by another process within `ttl`. Unknown secrets are not cached.
    """

    def __init__(
        self,
        db: Database,
        bootstrap_admin_key: str | None,
        ttl: float = 5.0,
        *,
        trigger_limit: KeyLimit | None = None,
        failure_limit: KeyLimit | None = None,
    ) -> None:
        self._bootstrap = bootstrap_admin_key
        # The database's time: a rotation's grace was set by whichever API process rotated.
        self._now = db.clock.now
        # Requests per key (trigger keys without their own limit: `trigger_limit`), and
        # wrong-key requests per client address (`failure_limit`), across all processes.
        self.limiter = KeyLimiter(db)
        self.trigger_limit = trigger_limit
        self.failure_limit = failure_limit
        self._cache: TTLCache[str, Principal | None] = TTLCache(
            lambda digest: db.read_bounded(principal_for, digest, db.clock.now()), ttl
        )
        # Keys by id, with their secrets' hashes, for console sessions (which name their key
        # by id: they do not hold its hash).
        self._by_id: TTLCache[str, KeyHashes | None] = TTLCache(
            lambda key_id: db.read_bounded(hashes_of, key_id), ttl
        )
        # Keys that were valid here lately, by hash: still looked up when their client's
        # address is over its wrong-key limit (one bad neighbour behind the same NAT or proxy
        # does not lock them out), while a key never seen stays refused unread.
        self._known_good: dict[str, float] = {}

    def cached(self, secret: str) -> Principal | None:
        """The principal of a secret known in memory (no query); None if not known here."""
        if self._bootstrap and hmac.compare_digest(secret.encode(), self._bootstrap.encode()):
            return Principal(BOOTSTRAP_KEY_ID, "admin")
        hit, known = self._cache.peek(hash_key(secret))
        if known is None or (known.until is not None and known.until <= self._now()):
            return None
        return known if hit else None

    async def resolve(self, secret: str) -> Principal | None:
        if self._bootstrap and hmac.compare_digest(secret.encode(), self._bootstrap.encode()):
            return Principal(BOOTSTRAP_KEY_ID, "admin")
        digest = hash_key(secret)
        hit, known = self._cache.peek(digest)
        principal = known if hit else await self._cache.get(digest)
        if principal is None or (principal.until is not None and principal.until <= self._now()):
            self._cache.forget(digest)  # unknown secrets are not remembered
            return None
        self._remember_good(digest)
        return principal

    def known_good(self, secret: str) -> bool:
        """Whether this key was valid here within the last `KNOWN_GOOD_SECONDS`."""
        until = self._known_good.get(hash_key(secret))
        return until is not None and until > time.monotonic()

    def _remember_good(self, digest: str) -> None:
        if digest not in self._known_good and len(self._known_good) >= MAX_KNOWN_GOOD:
            now = time.monotonic()
            self._known_good = {d: u for d, u in self._known_good.items() if u > now}
            if len(self._known_good) >= MAX_KNOWN_GOOD:
                self._known_good.pop(next(iter(self._known_good)))  # the longest known
        self._known_good[digest] = time.monotonic() + KNOWN_GOOD_SECONDS

    def limit_of(self, principal: Principal) -> KeyLimit | None:
        """The key's own limit, else the installation's for trigger keys."""
        if principal.rate_limit is not None:
            return principal.rate_limit
        return self.trigger_limit if principal.role == "trigger" else None

    async def resolve_bound(self, key_id: str, bound: Callable[[str], bool]) -> Principal | None:
        """The principal of the key `key_id` if `bound` holds for the hash of its current
        secret, or of its old one within the grace of a rotation (until then); None if the key
        is unknown, revoked, or its secrets are not the one `bound` checks for. A console
        session names its key by id and holds a keyed hash of its secret's hash (`bound`
        compares with that, in constant time): the hash itself is never handed out."""
        if key_id == BOOTSTRAP_KEY_ID:
            if self._bootstrap and bound(hash_key(self._bootstrap)):
                return Principal(BOOTSTRAP_KEY_ID, "admin")
            return None
        key = await self._by_id.get(key_id)
        if key is None:
            return None
        if bound(key.key_hash):
            return key.principal
        until, previous = key.previous_until, key.previous_hash
        if previous is None or until is None or until <= self._now() or not bound(previous):
            return None
        return replace(key.principal, until=until)

    def forget(self, key_id: str) -> None:
        """The key changed (revoked, rotated, its limit set): forget what is known of it. All
        of it, lookups under way included: one of this key's secret may have read it before
        the change, and a lookup's digest does not say whose key it is."""
        self._cache.clear()
        self._by_id.forget(key_id)
