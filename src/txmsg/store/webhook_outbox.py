"""The status-webhook outbox: calls queued in the transaction of the change they announce,
claimed in batches by the sender, deleted once delivered."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from txmsg.core.delivery import LogEntry
from txmsg.core.reports import StatusChange
from txmsg.core.timeutil import utcnow
from txmsg.store import bulk
from txmsg.store.tables import event_webhooks, events, webhook_outbox

# In the RETURNING clause of an UPDATE of events (or a SELECT of them): whether the row's
# event configuration has a webhook, in the same statement (no query of its own). IN, not a
# correlated EXISTS: SQLite's RETURNING names columns without their table (as SQLAlchemy
# renders it there), and the EXISTS would compare event_webhooks.event_id with itself. The
# sub-select is not correlated: both engines run it once per statement.
HAS_WEBHOOK = events.c.event_id.in_(sa.select(event_webhooks.c.event_id)).label("hooked")


def events_with_webhook(conn: Connection, event_ids: Iterable[str]) -> set[str]:
    """Those of `event_ids` whose configuration has a webhook."""
    return set(
        conn.execute(
            sa.select(event_webhooks.c.event_id).where(
                event_webhooks.c.event_id.in_(set(event_ids))
            )
        ).scalars()
    )


def has_webhook(conn: Connection, event_id: str) -> bool:
    return bool(events_with_webhook(conn, [event_id]))


# One call to make. On the trigger's write for events with a webhook: the lean insert.
_QUEUE_CALL = bulk.InsertRows(
    "queue webhook call",
    webhook_outbox,
    (
        "event_id",
        "pkey",
        "status",
        "interaction",
        "at",
        "reason",
        "detail",
        "created_at",
        "due_at",
        "attempts",
        "last_error",
    ),
)


def queue_status_changes(conn: Connection, changes: list[StatusChange]) -> None:
    """Queue the calls announcing `changes`, whose events are known to have a webhook (the
    statement that made them said so)."""
    if changes:
        now = utcnow()
        bulk.execute(
            conn,
            _QUEUE_CALL,
            [
                _call(now, c.event_id, c.pkey, c.at, status=c.status, reason=c.reason)
                for c in changes
            ],
        )


def queue_interactions(conn: Connection, entries: list[LogEntry]) -> None:
    """Queue the calls announcing delivery-log `entries`, whose events have a webhook."""
    if entries:
        now = utcnow()
        bulk.execute(
            conn,
            _QUEUE_CALL,
            [
                _call(now, e.event_id, e.pkey, e.at, interaction=e.kind.value, detail=e.detail)
                for e in entries
            ],
        )


def _call(
    now: datetime,
    event_id: str,
    pkey: str,
    at: datetime,
    *,
    status: str | None = None,
    interaction: str | None = None,
    reason: str | None = None,
    detail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "pkey": pkey,
        "status": status,
        "interaction": interaction,
        "at": at,
        "reason": reason,
        "detail": detail,
        "created_at": now,
        "due_at": now,
        "attempts": 0,
        "last_error": None,
    }


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    event_id: str
    pkey: str
    status: str | None
    interaction: str | None
    at: datetime
    reason: str | None
    detail: dict[str, Any] | None
    created_at: datetime
    attempts: int
    url: str
    secret: str = field(repr=False)


def claim(conn: Connection, limit: int, lease: timedelta, now: datetime) -> list[Delivery]:
    """Lease up to `limit` due calls (their due time moves past the lease), oldest first.

    Calls whose event no longer has a webhook are dropped.
    """
    pick = (
        sa.select(webhook_outbox.c.id)
        .where(webhook_outbox.c.due_at <= now)
        .order_by(webhook_outbox.c.due_at, webhook_outbox.c.id)
        .limit(limit)
    )
    if conn.dialect.name != "sqlite":
        pick = pick.with_for_update(skip_locked=True)
    rows = conn.execute(
        sa.update(webhook_outbox)
        .where(webhook_outbox.c.id.in_(pick.scalar_subquery()))
        .values(due_at=now + lease, attempts=webhook_outbox.c.attempts + 1)
        .returning(*webhook_outbox.c)
    ).all()
    if not rows:
        return []
    hooks = {
        r.event_id: (r.url, r.secret)
        for r in conn.execute(
            sa.select(event_webhooks).where(
                event_webhooks.c.event_id.in_({r.event_id for r in rows})
            )
        )
    }
    orphans = [r.id for r in rows if r.event_id not in hooks]
    if orphans:
        conn.execute(sa.delete(webhook_outbox).where(webhook_outbox.c.id.in_(orphans)))
    out = [
        Delivery(
            r.id,
            r.event_id,
            r.pkey,
            r.status,
            r.interaction,
            r.at,
            r.reason,
            r.detail,
            r.created_at,
            r.attempts,
            *hooks[r.event_id],
        )
        for r in rows
        if r.event_id in hooks
    ]
    out.sort(key=lambda d: d.id)
    return out


def settle(conn: Connection, done: list[int], retry: list[tuple[int, datetime, str]]) -> None:
    """Delete the calls delivered (or given up); schedule the others' next attempt."""
    if done:
        conn.execute(sa.delete(webhook_outbox).where(webhook_outbox.c.id.in_(done)))
    if retry:
        conn.execute(
            sa.update(webhook_outbox)
            .where(webhook_outbox.c.id == sa.bindparam("b_id"))
            .values(
                due_at=sa.bindparam("b_due", type_=webhook_outbox.c.due_at.type),
                last_error=sa.bindparam("b_error"),
            ),
            [{"b_id": i, "b_due": due, "b_error": error} for i, due, error in retry],
        )


def pending(conn: Connection, event_id: str) -> list[Any]:
    """The calls of an event still to make (for tests and operators)."""
    return list(
        conn.execute(
            sa.select(webhook_outbox)
            .where(webhook_outbox.c.event_id == event_id)
            .order_by(webhook_outbox.c.id)
        )
    )
