"""Set-up shared by the queue package's direct tests."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from txmsg.core.queue import NewEvent, new_pkey
from txmsg.core.statuses import EventStatus
from txmsg.core.timeutil import utcnow
from txmsg.store.tables import channel_configs, event_configs, event_webhooks, events

LEASE = timedelta(seconds=30)


def new_event(
    event_id: str = "EVTq",
    *,
    priority: int = 0,
    due_in: float = 0.0,
    expires_in: float = 3600.0,
    status: EventStatus = EventStatus.PENDING,
    **extra: Any,
) -> NewEvent:
    now = utcnow()
    pkey = new_pkey()
    return NewEvent(
        pkey=pkey,
        event_id=event_id,
        priority=priority,
        status=status,
        email="ada@example.org",
        ctx={"firstName": "Ada"},
        event_date=now,
        scheduled_at=None,
        expires_at=now + timedelta(seconds=expires_in),
        due_at=now + timedelta(seconds=due_in),
        response={"PKey": pkey},
        **extra,
    )


def hook(conn: Connection, event_id: str) -> None:
    """Give `event_id` a status webhook (and the configurations it hangs on)."""
    now = utcnow()
    if conn.execute(sa.select(channel_configs.c.name)).first() is None:
        conn.execute(
            sa.insert(channel_configs).values(
                name="mail",
                channel="email",
                settings={},
                secrets={},
                message_export=False,
                revision=1,
                created_at=now,
                updated_at=now,
            )
        )
    conn.execute(
        sa.insert(event_configs).values(
            event_id=event_id,
            label=event_id,
            channel="email",
            channel_config="mail",
            target="event",
            fields=[],
            template="default",
            state="published",
            revision=1,
            created_at=now,
            updated_at=now,
        )
    )
    conn.execute(
        sa.insert(event_webhooks).values(
            event_id=event_id, url="https://hooks.example.org/txmsg", secret="s" * 32
        )
    )


def event_row(conn: Connection, pkey: str) -> Any:
    return conn.execute(sa.select(events).where(events.c.pkey == pkey)).one()


def seen_by_provider(conn: Connection, pkeys: list[str], *, sent: bool = True) -> None:
    """Mark these events as a provider saw them: sent, or (`sent=False`) an attempt that
    reached one and ended unsent (a 4xx, then a retry)."""
    column = "sent_at" if sent else "attempted_at"
    conn.execute(sa.update(events).where(events.c.pkey.in_(pkeys)).values({column: utcnow()}))
