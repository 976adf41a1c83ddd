"""Migration 0026 (AUTOINCREMENT on SQLite's dataset table) starts the dataset's ids above any
flow's watermark, even when the retention purge had emptied the table before it ran."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Connection

from txmsg.core.export_flow import parse_create
from txmsg.core.export_record import email_record, to_micros
from txmsg.core.timeutil import utcnow
from txmsg.store import export_flows as flow_store
from txmsg.store import message_export
from txmsg.store.db import Database
from txmsg.store.migrations import alembic_config
from txmsg.store.tables import export_flows
from txmsg.store.tables import message_export as dataset


def _record(i: int) -> Any:
    return email_record(
        pkey=f"PK{i:08d}",
        event_id="EVTcart",
        version=1,
        sent_at=utcnow(),
        to_email=f"user{i}@example.org",
        to_name=None,
        from_email="shop@example.com",
        from_name=None,
        reply_to=None,
        subject="Hi",
        html="<p>Hi</p>",
        text="Hi",
    )


def _insert(conn: Connection, first: int, count: int) -> None:
    records = [_record(i) for i in range(first, first + count)]
    message_export.insert_in(conn, records, to_micros(utcnow()))


def _exported_then_purged(conn: Connection, keep: int) -> int:
    """At the previous revision: 10 records exported by flow `lake`, then all but the `keep`
    lowest ids deleted (the highest ids are gone: the table's own cannot say the watermark).
    The watermark."""
    command.downgrade(alembic_config(conn), "0025")
    _insert(conn, 0, 10)
    watermark = conn.execute(sa.select(sa.func.max(dataset.c.id))).scalar_one()
    conn.execute(sa.update(export_flows).values(watermark=watermark))
    kept = sa.select(dataset.c.id).order_by(dataset.c.id).limit(keep).scalar_subquery()
    conn.execute(sa.delete(dataset).where(dataset.c.id.not_in(kept)))
    command.upgrade(alembic_config(conn), "head")
    return int(watermark)


def _new_ids(conn: Connection, kept: int) -> list[int]:
    _insert(conn, 100, 2)
    rows = conn.execute(sa.select(dataset.c.id).order_by(dataset.c.id)).scalars()
    return list(rows)[kept:]


async def _flow(db: Database) -> None:
    body = {"name": "lake", "format": "json", "destination": {"type": "local", "path": "/x"}}
    await db.write(flow_store.create, parse_create(body, timedelta(days=7)), utcnow())


async def test_ids_start_above_the_watermark_once_the_dataset_was_emptied(db: Database) -> None:
    await _flow(db)
    watermark = await db.write(_exported_then_purged, 0)
    assert await db.write(_new_ids, 0) == [watermark + 1, watermark + 2]


async def test_ids_start_above_the_watermark_with_records_left(db: Database) -> None:
    await _flow(db)
    watermark = await db.write(_exported_then_purged, 3)
    left = await db.read(message_export.list_records, 0, 10)
    assert [r.message_id for r in left] == [f"PK{i:08d}" for i in range(3)]  # copied whole
    assert await db.write(_new_ids, 3) == [watermark + 1, watermark + 2]
