"""The message export dataset: records written with the send's status, read in id order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from txmsg.core.export_record import ExportRecord, encode_numbers, to_micros
from txmsg.core.queue import Outcome
from txmsg.core.statuses import EventStatus
from txmsg.store.export_stream import COLUMNS, RECORD_FIELDS
from txmsg.store.tables import events, message_export

_SELECT = [message_export.c[name] for name in COLUMNS]


def _values(record: ExportRecord) -> dict[str, Any]:
    values = {name: getattr(record, name) for name in RECORD_FIELDS}
    if record.sender_numbers is not None:
        values["sender_numbers"] = encode_numbers(record.sender_numbers)
    values["timestamp_us"] = to_micros(record.timestamp)
    return values


def _guarded_insert() -> Any:
    """INSERT ... SELECT that writes a record only if its event's outcome applied.

    The outcome's UPDATE runs first in the same transaction and holds the row; the record is
    inserted only where the event is now `processed` with this very send time, so a record
    exists if and only if the send is recorded as sent (a lapsed lease writes neither), and
    only once per message.
    """
    table_columns = ["ingestion_us", "timestamp_us", *RECORD_FIELDS]
    # Typed casts: PostgreSQL cannot infer the type of a bare parameter in a select list.
    types = {name: message_export.c[name].type for name in table_columns}
    selected = [
        sa.cast(sa.bindparam(f"v_{name}", type_=types[name]), types[name]) for name in table_columns
    ]
    applied = sa.exists().where(
        events.c.id == sa.bindparam("b_event"),
        events.c.status == EventStatus.PROCESSED.value,
        events.c.sent_at == sa.bindparam("b_sent_at", type_=events.c.sent_at.type),
    )
    # An outcome written again (a commit whose answer was lost, then retried) adds nothing.
    recorded = sa.exists().where(message_export.c.message_id == sa.bindparam("b_message_id"))
    return sa.insert(message_export).from_select(
        table_columns, sa.select(*selected).where(applied, ~recorded)
    )


_GUARDED_INSERT = _guarded_insert()


def record_in(conn: Connection, outcomes: Sequence[Outcome], ingestion_us: int) -> None:
    """Write the export records of outcomes just applied (one executemany)."""
    params = []
    for o in outcomes:
        assert o.export is not None and o.sent_at is not None
        values = _values(o.export)
        row = {f"v_{k}": v for k, v in values.items()}
        row["v_ingestion_us"] = ingestion_us
        row["b_event"] = o.id
        row["b_sent_at"] = o.sent_at
        row["b_message_id"] = o.export.message_id
        params.append(row)
    conn.execute(_GUARDED_INSERT, params)


def insert_in(conn: Connection, records: Sequence[ExportRecord], ingestion_us: int) -> None:
    """Bulk insert without a guard: for loading data (benchmarks, tests), not the send path."""
    rows = []
    for record in records:
        values = _values(record)
        values["ingestion_us"] = ingestion_us
        rows.append(values)
    if rows:
        conn.execute(sa.insert(message_export), rows)


def upper_bound(conn: Connection) -> int:
    """The highest id below which every record is committed: where a run may read up to.

    PostgreSQL hands out ids before commit, so a later id may commit before an earlier one;
    a SHARE lock waits for the transactions inserting records to end (and holds off new ones
    for the length of this statement). SQLite has one writer: ids commit in order.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("LOCK TABLE message_export IN SHARE MODE")
    value = conn.execute(sa.select(sa.func.max(message_export.c.id))).scalar()
    return int(value or 0)


def purge_in(conn: Connection, cutoff_us: int, limit: int) -> int:
    """Delete up to `limit` records ingested before `cutoff_us` (short transactions)."""
    expired = (
        sa.select(message_export.c.id)
        .where(message_export.c.ingestion_us < cutoff_us)
        .order_by(message_export.c.ingestion_us)
        .limit(limit)
    )
    result = conn.execute(
        sa.delete(message_export).where(message_export.c.id.in_(expired.scalar_subquery()))
    )
    return int(result.rowcount)


def list_records(conn: Connection, after: int, limit: int) -> list[Row[Any]]:
    """A page of the dataset in id order, for the admin API."""
    return list(
        conn.execute(
            sa.select(*_SELECT)
            .where(message_export.c.id > after)
            .order_by(message_export.c.id)
            .limit(limit)
        )
    )
