"""The lean statements of store/bulk.py on their own, on both engines: rows as mappings or as
tuples, batches past one SQLite statement's rows, shared parameters, typed values both ways."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from txmsg.store import bulk
from txmsg.store.db import Database
from txmsg.store.tables import Json, UTCDateTime

metadata = sa.MetaData()
items = sa.Table(
    "bulk_items",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(50), nullable=False),
    sa.Column("at", UTCDateTime, nullable=True),
    sa.Column("data", Json, nullable=True),
    sa.Column("touched", UTCDateTime, nullable=True),
)

INSERT = bulk.InsertRows("insert items", items, ("id", "name", "at", "data"))


def _rename(row: bulk.Source) -> sa.Update:
    return (
        sa.update(items)
        .where(items.c.id == row["b_id"])
        .values(name=row["b_name"], touched=sa.bindparam("b_now", type_=items.c.touched.type))
    )


RENAME = bulk.UpdateRows(
    "rename items",
    (sa.column("b_id", items.c.id.type), sa.column("b_name", items.c.name.type)),
    _rename,
    joined=True,
)
READ = bulk.Read(
    "items by id",
    lambda _dialect: (
        sa.select(items.c.id, items.c.name, items.c.at, items.c.data)
        .where(items.c.id.in_(sa.bindparam("ids", expanding=True)))
        .order_by(items.c.id)
    ),
)
T0 = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
# More rows than one SQLite statement takes: the batch goes in chunks.
COUNT = bulk.MAX_ROWS_PER_STATEMENT * 2 + 5


def _write(conn: Connection) -> None:
    metadata.create_all(conn)
    bulk.execute(
        conn,
        INSERT,
        [
            {"id": i, "name": f"n{i}", "at": T0 + timedelta(seconds=i), "data": {"i": [i]}}
            for i in range(COUNT)
        ],
    )
    # The same statement with tuples in the declared column order.
    bulk.execute(conn, INSERT, [(COUNT, "last", None, None), (COUNT + 1, "x", T0, {"k": "v"})])
    bulk.execute(conn, RENAME, [(i, f"r{i}") for i in range(0, COUNT, 2)], b_now=T0)


def _all(conn: Connection) -> list[Any]:
    return list(conn.execute(sa.select(items).order_by(items.c.id)))


async def test_rows_go_in_as_mappings_or_tuples_and_come_back_typed(db: Database) -> None:
    await db.write(_write)
    rows = await db.read(_all)
    assert len(rows) == COUNT + 2
    for row in rows[:COUNT]:
        i = row.id
        renamed = i % 2 == 0
        assert row.name == (f"r{i}" if renamed else f"n{i}")
        assert row.at == T0 + timedelta(seconds=i)
        assert row.data == {"i": [i]}
        assert row.touched == (T0 if renamed else None)
    assert [tuple(r) for r in rows[COUNT:]] == [
        (COUNT, "last", None, None, None),
        (COUNT + 1, "x", T0, {"k": "v"}, None),
    ]
    read = await db.read(lambda conn: READ.rows(conn, {"ids": [3, COUNT + 1, COUNT]}))
    assert [tuple(r) for r in read] == [
        (3, "n3", T0 + timedelta(seconds=3), {"i": [3]}),
        (COUNT, "last", None, None),
        (COUNT + 1, "x", T0, {"k": "v"}),
    ]
    assert await db.read(lambda conn: READ.rows(conn, {"ids": []})) == []


async def test_a_missing_shared_parameter_fails_the_batch(db: Database) -> None:
    await db.write(_write)
    with pytest.raises(Exception, match="b_now"):
        await db.write(lambda conn: bulk.execute(conn, RENAME, [(1, "y")]))
    assert [r.name for r in await db.read(_all)][:2] == ["r0", "n1"]


async def test_values_fixed_in_the_statement_go_with_every_row(db: Database) -> None:
    def reset(row: bulk.Source) -> sa.Update:
        return sa.update(items).where(items.c.id == row["b_id"]).values(name="same", data=None)

    await db.write(_write)
    # On SQLite: one statement for the batch (joined), or an executemany (one row at a time).
    joined, each = (
        bulk.UpdateRows("reset items", (sa.column("b_id", items.c.id.type),), reset, joined=j)
        for j in (True, False)
    )
    await db.write(lambda conn: bulk.execute(conn, joined, [(1,), (2,)]))
    await db.write(lambda conn: bulk.execute(conn, each, [{"b_id": 4}, {"b_id": 5}]))
    rows = (await db.read(_all))[:6]
    assert [(r.name, r.data) for r in rows] == [
        ("r0", {"i": [0]}),
        ("same", None),
        ("same", None),
        ("n3", {"i": [3]}),
        ("same", None),
        ("same", None),
    ]
    assert repr(each) == "<UpdateRows 'reset items'>"
    with pytest.raises(TypeError, match="one row at a time"):
        each.many_rows(sa.create_engine("sqlite://").dialect, 2)
