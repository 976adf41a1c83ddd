"""The Alembic migrations build the schema `store/tables.py` describes, on both engines."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from txmsg.store.db import Database
from txmsg.store.tables import metadata


def _differences(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(conn, opts={"compare_type": False})
    return list(compare_metadata(context, metadata))


async def test_migrations_match_the_tables(database_url: str) -> None:
    db = Database(database_url)
    try:
        await db.migrate()
        assert await db.read(_differences) == []
    finally:
        await db.dispose()


async def test_the_sms_migration_goes_down_and_up(database_url: str) -> None:
    from alembic import command

    from txmsg.store.migrations import alembic_config

    def down_up(conn: Connection) -> list[Any]:
        command.downgrade(alembic_config(conn), "0002")
        columns = {c["name"] for c in conn.dialect.get_columns(conn, "events")}
        assert "mobile_phone" not in columns and "provider_message_id" not in columns
        command.upgrade(alembic_config(conn), "head")
        return _differences(conn)

    db = Database(database_url)
    try:
        await db.migrate()
        assert await db.write(down_up) == []
    finally:
        await db.dispose()
