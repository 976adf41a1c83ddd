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
