"""The recipients report: one row per message, read in keyset-paginated chunks."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from txmsg.core.delivery import Interaction
from txmsg.core.kinds import CHANNELS, Channel
from txmsg.store.tables import BY_PEOPLE, delivery_log, events, profiles

# The message columns, in report order, in one place ("address": see `_address`).
MESSAGE_COLUMNS: dict[str, sa.ColumnElement[Any]] = {
    "PKey": events.c.pkey,
    "address": sa.null(),
    "profile_id": events.c.profile_id,
    "message_version": events.c.message_version,
    "status": events.c.status,
    "reason": events.c.reason,
    "triggered_at": events.c.event_date,
    "sent_at": events.c.sent_at,
}

# Interactions: the first time of each kind; opens and clicks also counted, people's only
# (machine ones, core/machine.py, are counted apart in the day reports).
INTERACTION_KINDS = tuple(k.value for k in Interaction if k is not Interaction.SENT)
COUNTED_KINDS = (Interaction.OPENED.value, Interaction.CLICKED.value)
COLUMNS = (
    *MESSAGE_COLUMNS,
    *(f"{kind}_at" for kind in INTERACTION_KINDS),
    *(f"{kind}_count" for kind in COUNTED_KINDS),
)


def _address(channel: str) -> sa.ColumnElement[Any]:
    """The trigger's email or mobile number, as the channel uses; a profile-based event
    triggered without one was sent to its profile's (as the profile holds it now)."""
    if channel == Channel.SMS:
        return sa.func.coalesce(events.c.mobile_phone, profiles.c.mobile_phone)
    return sa.func.coalesce(events.c.email, profiles.c.email)


_SELECTS = {
    channel: sa.select(
        events.c.id,
        *(
            (_address(channel) if name == "address" else column).label(name)
            for name, column in MESSAGE_COLUMNS.items()
        ),
    ).select_from(events.outerjoin(profiles, profiles.c.profile_id == events.c.profile_id))
    for channel in CHANNELS
}


def chunk(
    conn: Connection, event_id: str, channel: str, after_id: int, limit: int
) -> list[dict[str, Any]]:
    """Up to `limit` messages of `event_id` with an id above `after_id`, with interactions.

    Two queries a chunk: the messages (keyset by id), then their delivery-log summary.
    """
    rows = conn.execute(
        _SELECTS[channel]
        .where(events.c.event_id == event_id, events.c.id > after_id)
        .order_by(events.c.id)
        .limit(limit)
    ).all()
    if not rows:
        return []
    summary: dict[tuple[str, str], tuple[Any, int]] = {
        (r.pkey, r.kind): (r.first, r.n)
        for r in conn.execute(
            sa.select(
                delivery_log.c.pkey,
                delivery_log.c.kind,
                sa.func.min(delivery_log.c.at).label("first"),  # typed as `at`: UTC datetime
                sa.func.count().label("n"),
            )
            .where(delivery_log.c.pkey.in_([r.PKey for r in rows]), BY_PEOPLE)
            .group_by(delivery_log.c.pkey, delivery_log.c.kind)
        )
    }
    out = []
    for r in rows:
        record: dict[str, Any] = {
            "id": r.id,
            **{name: r._mapping[name] for name in MESSAGE_COLUMNS},
        }
        for kind in INTERACTION_KINDS:
            first = summary.get((r.PKey, kind))
            record[f"{kind}_at"] = first[0] if first else None
        for kind in COUNTED_KINDS:
            found = summary.get((r.PKey, kind))
            record[f"{kind}_count"] = found[1] if found else 0
        if channel == Channel.EMAIL and record["delivered_at"] is None:
            # An email's acceptance by the SMTP server (its send) is its delivery.
            record["delivered_at"] = r.sent_at
        out.append(record)
    return out
