"""Server-side secrets, generated on first use and kept in the database (shared by processes)."""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from txmsg.core.timeutil import utcnow
from txmsg.store.tables import server_secrets


def get_or_create(conn: Connection, name: str) -> str:
    """The secret `name`; the first process to ask creates it, every other one reads it."""
    insert = (sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert)(server_secrets)
    conn.execute(
        insert.values(
            name=name, value=secrets.token_urlsafe(32), created_at=utcnow()
        ).on_conflict_do_nothing(index_elements=["name"])
    )
    value: str = conn.execute(
        sa.select(server_secrets.c.value).where(server_secrets.c.name == name)
    ).scalar_one()
    return value


def get(conn: Connection, name: str) -> str | None:
    value: str | None = conn.execute(
        sa.select(server_secrets.c.value).where(server_secrets.c.name == name)
    ).scalar()
    return value
