"""The delivery log: appended in batches, read per event."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from txmsg.core.delivery import Interaction, LogEntry
from txmsg.store import status_feed
from txmsg.store.tables import delivery_log


def append_in(conn: Connection, entries: list[LogEntry]) -> None:
    """Append many entries with one executemany; reports and webhooks see them here."""
    if entries:
        status_feed.entries_appended_in(conn, entries)
        conn.execute(
            sa.insert(delivery_log),
            [
                {
                    "pkey": e.pkey,
                    "event_id": e.event_id,
                    "kind": e.kind.value,
                    "at": e.at,
                    "detail": e.detail,
                }
                for e in entries
            ],
        )


def for_event(conn: Connection, pkey: str) -> list[LogEntry]:
    """The entries of one event's message, oldest first."""
    rows = conn.execute(
        sa.select(delivery_log)
        .where(delivery_log.c.pkey == pkey)
        .order_by(delivery_log.c.at, delivery_log.c.id)
    )
    return [LogEntry(r.pkey, r.event_id, Interaction(r.kind), r.at, r.detail) for r in rows]
