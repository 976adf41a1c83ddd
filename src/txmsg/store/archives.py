"""Interaction archives: Parquet files holding an event's expired delivery-log rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from txmsg.core.statuses import ConfigState
from txmsg.store.dialect_insert import insert_into
from txmsg.store.reports import last_sent_day
from txmsg.store.tables import delivery_log, event_configs, interaction_archives


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


@dataclass(frozen=True, slots=True)
class Restored:
    """What a restore brought back."""

    event_id: str
    files: int
    rows: int


@dataclass(frozen=True, slots=True)
class Candidate:
    event_id: str
    state: str
    created_at: datetime


def inactive_candidates(conn: Connection) -> list[Candidate]:
    """Paused and unpublished event configurations (few; each checked by `last_activity`)."""
    rows = conn.execute(
        sa.select(event_configs.c.event_id, event_configs.c.state, event_configs.c.created_at)
        .where(event_configs.c.state.in_([ConfigState.PAUSED.value, ConfigState.UNPUBLISHED.value]))
        .order_by(event_configs.c.event_id)
    )
    return [Candidate(r.event_id, r.state, r.created_at) for r in rows]


def last_activity(conn: Connection, event_id: str, created_at: datetime) -> datetime:
    """The last time the event's interaction data was in use: the end of its last day with
    a send, its last restore, or its creation."""
    times = [created_at]
    sent = last_sent_day(conn, event_id)
    if sent is not None:
        times.append(datetime.combine(sent + timedelta(days=1), time(), UTC))
    restored = conn.execute(
        sa.select(sa.func.max(interaction_archives.c.restored_at)).where(
            interaction_archives.c.event_id == event_id
        )
    ).scalar()
    if restored is not None:
        times.append(restored)
    return max(times)


def has_interactions(conn: Connection, event_id: str) -> bool:
    return (
        conn.execute(
            sa.select(delivery_log.c.id).where(delivery_log.c.event_id == event_id).limit(1)
        ).first()
        is not None
    )


# What an archive file holds per row (the delivery log's columns; detail as JSON text).
ARCHIVE_COLUMNS = ("id", "pkey", "event_id", "kind", "at", "detail", "once_key")


def read_chunk(conn: Connection, event_id: str, after_id: int, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` delivery-log rows of the event with an id above `after_id`, by id."""
    rows = conn.execute(
        sa.select(*(delivery_log.c[c] for c in ARCHIVE_COLUMNS))
        .where(delivery_log.c.event_id == event_id, delivery_log.c.id > after_id)
        .order_by(delivery_log.c.id)
        .limit(limit)
    )
    return [dict(r._mapping) for r in rows]


class ArchiveMismatch(Exception):
    """The rows to delete are not the rows archived (changed meanwhile): nothing is deleted."""


def archive_in(conn: Connection, event_id: str, path: str, ids: list[int], now: datetime) -> None:
    """Record the file holding rows `ids` of the event and delete them from the live table."""
    deleted = 0
    for start in range(0, len(ids), 5000):
        part = ids[start : start + 5000]
        deleted += conn.execute(
            sa.delete(delivery_log).where(
                delivery_log.c.event_id == event_id, delivery_log.c.id.in_(part)
            )
        ).rowcount
    if deleted != len(ids):
        raise ArchiveMismatch(f"{deleted} rows deleted, {len(ids)} archived")
    conn.execute(
        sa.insert(interaction_archives).values(
            event_id=event_id, path=path, rows=len(ids), archived_at=now
        )
    )


def unrestored(conn: Connection, event_id: str) -> list[Any]:
    return list(
        conn.execute(
            sa.select(interaction_archives)
            .where(
                interaction_archives.c.event_id == event_id,
                interaction_archives.c.restored_at.is_(None),
            )
            .order_by(interaction_archives.c.id)
        )
    )


def restore_in(
    conn: Connection, archive_id: int, rows: list[dict[str, Any]], now: datetime
) -> bool:
    """Put an archive's rows back in the live table (not counted again: the day aggregates
    never lost them) and mark it restored; False if another process restored it first."""
    marked = conn.execute(
        sa.update(interaction_archives)
        .where(
            interaction_archives.c.id == archive_id, interaction_archives.c.restored_at.is_(None)
        )
        .values(restored_at=now)
    ).rowcount
    if marked != 1:
        return False
    if rows:
        # An entry recorded once that was recorded again since it expired (the same receipt
        # reported later) keeps the live one.
        conn.execute(
            insert_into(conn.dialect.name, delivery_log).on_conflict_do_nothing(
                index_elements=["pkey", "kind", "once_key"]
            ),
            rows,
        )
    return True
