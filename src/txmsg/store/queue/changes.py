"""Status updates of queued events, returned as the status changes they made.

The caller writes what the changes set off (report counts, webhook calls), where it can be
seen: this module writes nothing but the UPDATE it is given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from txmsg.core.reports import StatusChange
from txmsg.store.queue.rows import CHANGED_COLUMNS, ChangedRow
from txmsg.store.tables import events


@dataclass(frozen=True, slots=True)
class Changed:
    """What an UPDATE of events changed: how many rows; the changes that came back, and those
    of them whose event has a webhook (to announce)."""

    count: int
    changes: list[StatusChange] = field(default_factory=list)
    announced: list[StatusChange] = field(default_factory=list)


def unlocked(conn: Connection, where: sa.ColumnElement[bool]) -> sa.ColumnElement[bool]:
    """`where`, narrowed on PostgreSQL to the rows no other transaction holds, locked in id
    order (`FOR UPDATE SKIP LOCKED`).

    For sweeps over many events (housekeeping): a write cycle locks the events it records
    outcomes of, and an UPDATE that waited for them while holding others would deadlock with
    it; the rows skipped are left to the next sweep. SQLite has one writer: `where` as is.
    """
    if conn.dialect.name == "sqlite":
        return where
    ids = sa.select(events.c.id).where(where).order_by(events.c.id)
    return sa.and_(where, events.c.id.in_(ids.with_for_update(skip_locked=True).scalar_subquery()))


def update_status(
    conn: Connection,
    stmt: sa.Update,
    status: str,
    at: datetime,
    reason: str | None = None,
    *,
    hooked: bool | None = None,
) -> Changed:
    """Run `stmt`, an UPDATE of events to `status`, one that no report counts (pending,
    paused, processing).

    `hooked` known (the statement touches one event): rows come back only when it is True,
    so pausing a million queued events of an event without a webhook holds none of them in
    memory. Unknown: every changed row comes back, flagged in the same statement.
    """
    if hooked is False:
        return Changed(int(conn.execute(stmt).rowcount))
    return _returned(conn, stmt, status, at, reason)


def update_final_status(
    conn: Connection, stmt: sa.Update, status: str, at: datetime, reason: str | None = None
) -> Changed:
    """Run `stmt`, an UPDATE of events to a final `status` (reports count it): every changed
    row comes back, flagged in the same statement when its event has a webhook. Without a
    `reason`, each change says the reason the UPDATE wrote to its row."""
    return _returned(conn, stmt, status, at, reason, from_row=reason is None)


def _returned(
    conn: Connection,
    stmt: sa.Update,
    status: str,
    at: datetime,
    reason: str | None,
    *,
    from_row: bool = False,
) -> Changed:
    rows = [ChangedRow._make(r) for r in conn.execute(stmt.returning(*CHANGED_COLUMNS))]
    changes = [
        StatusChange(
            r.pkey, r.event_id, status, at, r.message_version, r.reason if from_row else reason
        )
        for r in rows
    ]
    announced = [c for c, r in zip(changes, rows, strict=True) if r.hooked]
    return Changed(len(rows), changes, announced)
