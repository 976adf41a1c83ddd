"""Unsubscribing: the profile's opt-out and the `unsubscribed` interaction, in one transaction."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from txmsg.core.delivery import Interaction, LogEntry
from txmsg.core.kinds import Channel
from txmsg.core.timeutil import utcnow
from txmsg.core.unsubscribe import UnsubscribeClaim
from txmsg.store.delivery_log import append_in
from txmsg.store.tables import events, profiles


def unsubscribe(conn: Connection, claim: UnsubscribeClaim, method: str) -> bool:
    """Opt the profile out of the claim's channel; False if it was already (or is gone)."""
    column = profiles.c.email_opt_out if claim.channel == Channel.EMAIL else profiles.c.sms_opt_out
    now = utcnow()
    changed = conn.execute(
        sa.update(profiles)
        .where(profiles.c.profile_id == claim.profile_id, column.is_(False))
        .values({column.name: True, "updated_at": now})
    ).rowcount
    if not changed:
        return False
    event_id = conn.execute(
        sa.select(events.c.event_id).where(events.c.pkey == claim.pkey)
    ).scalar()
    append_in(
        conn,
        [
            LogEntry(
                claim.pkey,
                event_id or "",
                Interaction.UNSUBSCRIBED,
                now,
                {"channel": claim.channel, "method": method},
            )
        ],
    )
    return True
