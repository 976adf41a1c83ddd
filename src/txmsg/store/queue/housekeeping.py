"""The queue's housekeeping: events expired before they could be sent, old idempotency keys."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from txmsg.core.statuses import EventStatus
from txmsg.core.timeutil import utcnow
from txmsg.store.queue import idempotency
from txmsg.store.queue.changes import Changed, update_final_status
from txmsg.store.tables import events, waiting


def expire_queued(conn: Connection, now: datetime | None = None) -> Changed:
    """Queued events past their expiration will never be sent: `tooOld` (a final status)."""
    now = now or utcnow()
    reason = "expired before it could be sent"
    stmt = (
        sa.update(events)
        .where(waiting(EventStatus.PENDING, EventStatus.PAUSED), events.c.expires_at < now)
        .values(status=EventStatus.TOO_OLD.value, reason=reason, updated_at=now)
    )
    return update_final_status(conn, stmt, EventStatus.TOO_OLD.value, now, reason)


def purge_idempotency_keys(conn: Connection, now: datetime | None = None) -> int:
    """Idempotency-Keys older than their window are forgotten."""
    return idempotency.purge_in(conn, now or utcnow())
