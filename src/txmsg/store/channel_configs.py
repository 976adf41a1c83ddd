"""Channel configuration rows."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from txmsg.core.channel_config import ChannelConfigSpec, parse_update
from txmsg.core.errors import conflict, not_found
from txmsg.core.timeutil import utcnow
from txmsg.store.tables import channel_configs


def create(conn: Connection, spec: ChannelConfigSpec) -> Any:
    if get(conn, spec.name) is not None:
        raise _exists(spec.name)
    now = utcnow()
    try:
        _insert(conn, spec, now)
    except IntegrityError:  # created concurrently by another process
        raise _exists(spec.name) from None
    return get(conn, spec.name)


def _exists(name: str) -> Exception:
    return conflict(f"a channel configuration named '{name}' already exists")


def _insert(conn: Connection, spec: ChannelConfigSpec, now: Any) -> None:
    conn.execute(
        sa.insert(channel_configs).values(
            name=spec.name,
            channel=spec.channel,
            settings=spec.settings,
            secrets=spec.secrets,
            message_export=spec.message_export,
            revision=1,
            created_at=now,
            updated_at=now,
        )
    )


def get(conn: Connection, name: str) -> Any | None:
    return conn.execute(sa.select(channel_configs).where(channel_configs.c.name == name)).first()


def require(conn: Connection, name: str) -> Any:
    row = get(conn, name)
    if row is None:
        raise not_found(f"no channel configuration '{name}'")
    return row


def list_all(conn: Connection) -> list[Any]:
    return list(conn.execute(sa.select(channel_configs).order_by(channel_configs.c.name)))


def patch(conn: Connection, name: str, body: Any) -> Any:
    """Apply a PATCH body to the stored row in one transaction (no lost update)."""
    query = sa.select(channel_configs).where(channel_configs.c.name == name)
    if conn.dialect.name != "sqlite":  # SQLite's single writer serialises this already
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise not_found(f"no channel configuration '{name}'")
    settings, secrets, export = parse_update(
        body, row.channel, row.settings, row.secrets, row.message_export
    )
    return update(conn, name, settings, secrets, export)


def update(
    conn: Connection, name: str, settings: dict[str, Any], secrets: dict[str, Any], export: bool
) -> Any:
    conn.execute(
        sa.update(channel_configs)
        .where(channel_configs.c.name == name)
        .values(
            settings=settings,
            secrets=secrets,
            message_export=export,
            revision=channel_configs.c.revision + 1,
            updated_at=utcnow(),
        )
    )
    return get(conn, name)
