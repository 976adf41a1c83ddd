"""Reads of single events (the queue's statements are in store/queue/)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from txmsg.store.tables import events


def get_event(conn: Connection, event_id: str, pkey: str) -> sa.Row[Any] | None:
    """The event's row, or None: the API's status answer reads it as a whole."""
    return conn.execute(
        sa.select(events).where(events.c.pkey == pkey, events.c.event_id == event_id)
    ).first()


def recent(
    conn: Connection, event_id: str, limit: int, status: str | None = None
) -> list[sa.Row[Any]]:
    """The event's latest triggers, newest first (optionally of one status)."""
    stmt = sa.select(events).where(events.c.event_id == event_id)
    if status is not None:
        stmt = stmt.where(events.c.status == status)
    return list(conn.execute(stmt.order_by(events.c.id.desc()).limit(limit)))
