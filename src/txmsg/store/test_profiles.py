"""Test profiles: sample event data (and a sample profile) for proofs of an event's message."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from txmsg.core.errors import not_found
from txmsg.core.timeutil import utcnow
from txmsg.store.dialect_insert import insert_into
from txmsg.store.tables import test_profiles


def put(
    conn: Connection, name: str, event_id: str, ctx: dict[str, Any], profile: dict[str, Any] | None
) -> tuple[Any, bool]:
    """(the stored row, whether it was created)."""
    existed = get(conn, name) is not None
    now = utcnow()
    insert = insert_into(conn.dialect.name, test_profiles)
    values = {"event_id": event_id, "ctx": ctx, "profile": profile, "updated_at": now}
    conn.execute(
        insert.values(name=name, created_at=now, **values).on_conflict_do_update(
            index_elements=["name"], set_=values
        )
    )
    return require(conn, name), not existed


def get(conn: Connection, name: str) -> Any | None:
    return conn.execute(sa.select(test_profiles).where(test_profiles.c.name == name)).first()


def require(conn: Connection, name: str) -> Any:
    row = get(conn, name)
    if row is None:
        raise not_found(f"no test profile '{name}'")
    return row


def list_all(conn: Connection) -> list[Any]:
    return list(conn.execute(sa.select(test_profiles).order_by(test_profiles.c.name)))


def delete(conn: Connection, name: str) -> None:
    if conn.execute(sa.delete(test_profiles).where(test_profiles.c.name == name)).rowcount == 0:
        raise not_found(f"no test profile '{name}'")
