"""Server-side secrets, generated on first use and kept in the database (shared by processes)."""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from txmsg.core.timeutil import utcnow
from txmsg.store.db import Database
from txmsg.store.dialect_insert import insert_into
from txmsg.store.tables import server_secrets


def get_or_create(conn: Connection, name: str) -> str:
    """The secret `name`; the first process to ask creates it, every other one reads it."""
    insert = insert_into(conn.dialect.name, server_secrets)
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


class ServerSecrets:
    """The secrets of this process, read once: a secret never changes after it is created,
    so link checks on public endpoints (tracking hits) read none from the database."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._known: dict[str, str] = {}

    async def get(self, name: str) -> str | None:
        """The secret, or None while no process has created it (no link can carry it yet)."""
        value = self._known.get(name)
        if value is None:
            value = await self._db.read(get, name)
            if value is not None:
                self._known[name] = value
        return value

    async def get_or_create(self, name: str) -> str:
        value = self._known.get(name)
        if value is None:
            value = self._known[name] = await self._db.write(get_or_create, name)
        return value
