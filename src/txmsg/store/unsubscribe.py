"""Unsubscribing: the profile's opt-out and the `unsubscribed` interaction, in one transaction."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from txmsg.core.delivery import Interaction, LogEntry
from txmsg.core.timeutil import utcnow
from txmsg.core.unsubscribe import UnsubscribeClaim
from txmsg.store.delivery_log import append_in
from txmsg.store.profiles import opt_out_by_person
from txmsg.store.tables import events, profiles


def message_of(conn: Connection, claim: UnsubscribeClaim) -> str | None:
    """The eventId of the claim's message when it was sent to the profile as it exists now;
    None when the link no longer names anyone (its profile deleted, or deleted and created
    again under the same id: the new one never got this message).

    Deleting a profile unlinks its events (`profiles.delete`), so an event still naming the
    profile id was sent to this very profile, and a profile created again under the id has no
    old events. The address is not compared: the token names a profile, not an address, and a
    person whose address changed since keeps the right to use the links they received (nor
    are times compared: the processes' clocks may differ, and refusing a genuine link is the
    worse error)."""
    return conn.execute(
        sa.select(events.c.event_id)
        .join(profiles, profiles.c.profile_id == events.c.profile_id)
        .where(events.c.pkey == claim.pkey, events.c.profile_id == claim.profile_id)
    ).scalar()


def unsubscribe(
    conn: Connection, claim: UnsubscribeClaim, method: str, now: datetime | None = None
) -> bool:
    """Opt the profile out of the claim's channel (as the person's own act) and log the
    message's `unsubscribed` interaction, once per message however many times the link is
    used. False, recording nothing, when the link no longer names anyone (`message_of`).
    `now`: the database's time (the entry is compared with its send's)."""
    now = now or utcnow()
    event_id = message_of(conn, claim)
    if event_id is None:
        return False
    opt_out_by_person(conn, claim.profile_id, claim.channel, now)
    entry = LogEntry(
        claim.pkey,
        event_id,
        Interaction.UNSUBSCRIBED,
        now,
        {"channel": claim.channel, "method": method},
        claim.channel,  # once per message (and channel): reports count messages, not clicks
    )
    append_in(conn, [entry], now)
    return True
