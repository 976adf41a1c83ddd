"""PostgreSQL's pool: a connection asyncpg reports confused is discarded, not reused."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import Connection

from txmsg.store.db import Database


def _driver(conn: Connection) -> Any:
    return conn.connection.dbapi_connection.driver_connection  # type: ignore[union-attr]


async def test_a_connection_left_mid_operation_is_discarded(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """asyncpg's "cannot switch to state 12; another operation (2) is in progress" (a session
    ended under a transaction leaves a connection so): that connection is closed and the pool
    hands out a new one; it used to go back to the pool and fail the next cycles too."""
    confused: list[Any] = []
    prepare = asyncpg.Connection.prepare

    async def in_progress(self: asyncpg.Connection, *args: Any, **kwargs: Any) -> Any:
        if self in confused:  # as the protocol answers in that state
            raise asyncpg.InternalClientError(
                "cannot switch to state 12; another operation (2) is in progress"
            )
        return await prepare(self, *args, **kwargs)

    monkeypatch.setattr(asyncpg.Connection, "prepare", in_progress)

    def confuse(conn: Connection) -> None:
        confused.append(_driver(conn))
        conn.exec_driver_sql("SELECT 1")

    with pytest.raises(Exception, match="another operation"):
        await db.write(confuse)
    assert confused[0].is_closed()
    for _ in range(3):  # the pool's next connections: none of them the confused one
        assert await db.write(_driver) is not confused[0]
        assert await db.read(lambda conn: conn.exec_driver_sql("SELECT 1").scalar()) == 1


test_a_connection_left_mid_operation_is_discarded.postgresql_only = True  # type: ignore[attr-defined]
