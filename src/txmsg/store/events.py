"""Reads of single events (the queue's statements are in store/queue/)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from txmsg.core.queue import held_only_by_a_cap
from txmsg.store.channel_configs import CapFound, event_cap
from txmsg.store.tables import BY_DATE, events


def get_event(conn: Connection, event_id: str, pkey: str) -> sa.Row[Any] | None:
    """The event's row, or None: the API's status answer reads it as a whole."""
    return conn.execute(
        sa.select(events).where(events.c.pkey == pkey, events.c.event_id == event_id)
    ).first()


def status_with_cap(
    conn: Connection, event_id: str, pkey: str, now: datetime
) -> tuple[sa.Row[Any] | None, CapFound | None]:
    """The event's row and, for a pending event already due, its channel configuration's
    cap with its counters (None without one): the status answer says when a spent cap holds
    the event. One connection for both, so a status poll stays one round trip."""
    row = get_event(conn, event_id, pkey)
    return row, event_cap(conn, event_id) if row is not None and held_only_by_a_cap(
        row, now
    ) else None


def page_with_cap(
    conn: Connection, event_id: str, limit: int, now: datetime, **bounds: Any
) -> tuple[list[sa.Row[Any]], CapFound | None]:
    """A page of the event's triggers (`page`) and, when a pending one on it is already due,
    the channel configuration's cap with its counters, as `status_with_cap` reads them: the
    list says which events a spent cap holds, on the one connection."""
    rows = page(conn, event_id, limit, **bounds)
    held = any(held_only_by_a_cap(r, now) for r in rows)
    return rows, event_cap(conn, event_id) if held else None


def recent(
    conn: Connection, event_id: str, limit: int, status: str | None = None
) -> list[sa.Row[Any]]:
    """The event's latest triggers, newest first (optionally of one status)."""
    return page(conn, event_id, limit, status=status)


def page(conn: Connection, event_id: str, limit: int, **bounds: Any) -> list[sa.Row[Any]]:
    """Up to `limit` of the event's triggers, newest first (`page_query`)."""
    return list(conn.execute(page_query(event_id, limit, **bounds)))


def page_query(
    event_id: str,
    limit: int,
    *,
    status: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after: tuple[datetime, int] | None = None,
) -> sa.Select[Any]:
    """Up to `limit` of the event's triggers, newest first by `(event_date, id)`: of `status`,
    triggered at or after `since` and before `until`, strictly after `after` (the previous
    page's last `(event_date, id)`). One range of `ix_events_event_date`."""
    stmt = sa.select(events).where(events.c.event_id == event_id, BY_DATE)
    if status is not None:
        stmt = stmt.where(events.c.status == status)
    if since is not None:
        stmt = stmt.where(events.c.event_date >= since)
    if until is not None:
        stmt = stmt.where(events.c.event_date < until)
    if after is not None:
        date, row_id = after
        # `<=` alone bounds the index range; the OR keeps the ties on `date` past `row_id`.
        stmt = stmt.where(
            events.c.event_date <= date,
            sa.or_(events.c.event_date < date, events.c.id < row_id),
        )
    order = (events.c.event_date.desc(), events.c.id.desc())
    return stmt.order_by(*order).limit(limit)
