"""The webhook outbox: calls still to make, claimed in batches, deleted once delivered."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from txmsg.store.tables import event_webhooks, webhook_outbox


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
