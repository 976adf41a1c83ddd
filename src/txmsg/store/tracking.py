"""What a tracking hit needs to know about the message it names: one indexed read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from txmsg.store.tables import events


@dataclass(frozen=True, slots=True)
class HitTarget:
    pkey: str
    event_id: str
    sent_at: datetime | None  # None: the send is not recorded yet


def hit_target(conn: Connection, pkey: str) -> HitTarget | None:
    """The event of a tracked message; None when it is unknown or purged."""
    row = conn.execute(
        sa.select(events.c.pkey, events.c.event_id, events.c.sent_at).where(events.c.pkey == pkey)
    ).first()
    return HitTarget(row.pkey, row.event_id, row.sent_at) if row is not None else None
