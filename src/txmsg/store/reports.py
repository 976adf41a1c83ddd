"""Day aggregates (report_days): counted incrementally, read per event or per tag."""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from txmsg.core.reports import CountKey
from txmsg.store.tables import event_config_tags, report_days


def _upsert(dialect: str) -> Any:
    insert = (sqlite.insert if dialect == "sqlite" else postgresql.insert)(report_days)
    return insert.on_conflict_do_update(
        index_elements=["event_id", "day", "message_version", "metric"],
        set_={"count": report_days.c.count + insert.excluded["count"]},
    )


_UPSERTS = {name: _upsert(name) for name in ("sqlite", "postgresql")}


def add_counts_in(conn: Connection, counts: Counter[CountKey]) -> None:
    """Add `counts` to the aggregates: one executemany upsert for the whole batch.

    Rows go in key order: concurrent writers (PostgreSQL) lock the rows they share in the
    same order, so they wait for each other instead of deadlocking.
    """
    if not counts:
        return
    conn.execute(
        _UPSERTS[conn.dialect.name],
        [
            {"event_id": e, "day": d, "message_version": v, "metric": m, "count": n}
            for (e, d, v, m), n in sorted(counts.items())
        ],
    )


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
