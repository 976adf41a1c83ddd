"""Day aggregates (report_days), read per event or per tag (store/report_counts.py adds them)."""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from txmsg.store.tables import event_config_tags, report_days


def day_counts(
    conn: Connection, event_ids: list[str], first: date, last: date
) -> list[tuple[str, date, int, str, int]]:
    """(event_id, day, message_version, metric, count) rows of these events in the range."""
    if not event_ids:
        return []
    rows = conn.execute(
        sa.select(
            report_days.c.event_id,
            report_days.c.day,
            report_days.c.message_version,
            report_days.c.metric,
            report_days.c.count,
        ).where(
            report_days.c.event_id.in_(event_ids),
            report_days.c.day >= first,
            report_days.c.day <= last,
        )
    )
    return [tuple(r) for r in rows]


def events_tagged(conn: Connection, tag: str) -> list[str]:
    return list(
        conn.execute(
            sa.select(event_config_tags.c.event_id)
            .where(event_config_tags.c.tag == tag)
            .order_by(event_config_tags.c.event_id)
        ).scalars()
    )


def last_sent_day(conn: Connection, event_id: str) -> date | None:
    value: date | None = conn.execute(
        sa.select(sa.func.max(report_days.c.day)).where(
            report_days.c.event_id == event_id, report_days.c.metric == "sent"
        )
    ).scalar()
    return value
