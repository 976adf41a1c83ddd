"""Idempotency-Keys: for each key the first request to commit is the authority.

A later request with the same key and fingerprint replays the authority's response; one with
another fingerprint is a mismatch. Keys are kept for `IDEMPOTENCY_WINDOW`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from txmsg.core.queue import EnqueueResult, NewBatch, NewEvent
from txmsg.store.dialect_insert import insert_into
from txmsg.store.tables import idempotency_keys

IDEMPOTENCY_WINDOW = timedelta(hours=24)

_KEY = idempotency_keys.c.key
_EXPIRED_OF_KEYS = sa.delete(idempotency_keys).where(
    _KEY.in_(sa.bindparam("keys", expanding=True)),
    idempotency_keys.c.created_at
    < sa.bindparam("before", type_=idempotency_keys.c.created_at.type),
)
_AUTHORITIES = sa.select(_KEY, idempotency_keys.c.fingerprint, idempotency_keys.c.response).where(
    _KEY.in_(sa.bindparam("keys", expanding=True))
)
_EXPIRED = sa.delete(idempotency_keys).where(
    idempotency_keys.c.created_at < sa.bindparam("before", type_=idempotency_keys.c.created_at.type)
)


def _take_keys(dialect: str, rows: list[dict[str, Any]]) -> Any:
    """INSERT the keys no earlier request holds; RETURNING those this one took."""
    insert = insert_into(dialect, idempotency_keys)
    return insert.values(rows).on_conflict_do_nothing(index_elements=["key"]).returning(_KEY)


def resolve_in(
    conn: Connection, batch: Sequence[NewEvent | NewBatch], now: datetime
) -> list[EnqueueResult | None]:
    """For each item of `batch` (an event, or a batch trigger's events under one key): None
    when it is to be inserted, else the answer its key gives (`replay` or `mismatch`). Within
    a batch the first use of a key is its authority."""
    first_use: dict[str, int] = {}
    for i, item in enumerate(batch):
        if item.idempotency_key is not None:
            first_use.setdefault(item.idempotency_key, i)
    if not first_use:
        return [None] * len(batch)
    keys = list(first_use)
    conn.execute(_EXPIRED_OF_KEYS, {"keys": keys, "before": now - IDEMPOTENCY_WINDOW})
    rows = [
        {
            "key": key,
            "fingerprint": batch[i].fingerprint,
            "response": batch[i].response,
            "created_at": now,
        }
        for key, i in first_use.items()
    ]
    won = set(conn.execute(_take_keys(conn.dialect.name, rows)).scalars())
    authority = {key: (batch[i].fingerprint, batch[i].response) for key, i in first_use.items()}
    lost = [key for key in keys if key not in won]
    if lost:
        for row in conn.execute(_AUTHORITIES, {"keys": lost}):
            authority[row.key] = (row.fingerprint, row.response)
    answers: list[EnqueueResult | None] = []
    for i, item in enumerate(batch):
        key = item.idempotency_key
        if key is None or (key in won and first_use[key] == i):
            answers.append(None)
            continue
        fingerprint, response = authority[key]
        kind = "replay" if fingerprint == item.fingerprint else "mismatch"
        answers.append(EnqueueResult(kind, response))
    return answers


def purge_in(conn: Connection, now: datetime) -> int:
    """Forget the keys older than the window."""
    return int(conn.execute(_EXPIRED, {"before": now - IDEMPOTENCY_WINDOW}).rowcount)
