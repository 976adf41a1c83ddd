"""The delivery log: appended in batches, read per event."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from txmsg.core.delivery import Interaction, LogEntry
from txmsg.store import report_counts
from txmsg.store import webhook_outbox as outbox
from txmsg.store.tables import delivery_log, events


def append_in(conn: Connection, entries: list[LogEntry]) -> None:
    """Append many entries with one executemany, with their report counts and webhook calls."""
    if not entries:
        return
    versions, hooked = _messages_of(conn, entries)
    report_counts.add(conn, report_counts.of_entries(conn, entries, versions))
    outbox.queue_interactions(conn, [e for e in entries if e.event_id in hooked])
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


def _messages_of(
    conn: Connection, entries: list[LogEntry]
) -> tuple[dict[str, int | None], set[str]]:
    """The template version of each entry's message (by PKey), and the events among them
    that have a webhook: one query per batch."""
    versions: dict[str, int | None] = {}
    hooked: set[str] = set()
    rows = conn.execute(
        sa.select(
            events.c.pkey, events.c.event_id, events.c.message_version, outbox.HAS_WEBHOOK
        ).where(events.c.pkey.in_(list({e.pkey for e in entries})))
    )
    for row in rows:
        versions[row.pkey] = row.message_version
        if row.hooked:
            hooked.add(row.event_id)
    return versions, hooked


def for_event(conn: Connection, pkey: str) -> list[LogEntry]:
    """The entries of one event's message, oldest first."""
    rows = conn.execute(
        sa.select(delivery_log)
        .where(delivery_log.c.pkey == pkey)
        .order_by(delivery_log.c.at, delivery_log.c.id)
    )
    return [LogEntry(r.pkey, r.event_id, Interaction(r.kind), r.at, r.detail) for r in rows]
