"""Interaction archives: Parquet files holding an event's expired delivery-log rows."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from txmsg.store.tables import interaction_archives


def interactions_expired(conn: Connection, event_id: str) -> bool:
    """Whether some of the event's delivery-log rows are archived and not restored."""
    return (
        conn.execute(
            sa.select(interaction_archives.c.id)
            .where(
                interaction_archives.c.event_id == event_id,
                interaction_archives.c.restored_at.is_(None),
            )
            .limit(1)
        ).first()
        is not None
    )
