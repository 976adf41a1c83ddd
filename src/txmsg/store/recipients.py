"""The recipients report: one row per message, read in keyset-paginated chunks."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from txmsg.core.delivery import Interaction
from txmsg.store.tables import BY_PEOPLE, delivery_log, events

# The message columns, in report order, in one place.
MESSAGE_COLUMNS: dict[str, sa.ColumnElement[Any]] = {
    "PKey": events.c.pkey,
    # The trigger's address: an email or a mobile number (profile-based events may have none).
    "address": sa.func.coalesce(events.c.email, events.c.mobile_phone),
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

_SELECT = sa.select(events.c.id, *(c.label(name) for name, c in MESSAGE_COLUMNS.items()))


def chunk(conn: Connection, event_id: str, after_id: int, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` messages of `event_id` with an id above `after_id`, with interactions.

    Two queries a chunk: the messages (keyset by id), then their delivery-log summary.
    """
    rows = conn.execute(
        _SELECT.where(events.c.event_id == event_id, events.c.id > after_id)
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
        out.append(record)
    return out
