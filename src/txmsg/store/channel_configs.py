"""Channel configuration rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from txmsg.core.channel_config import ChannelConfigSpec, parse_update
from txmsg.core.errors import DomainError, conflict, not_found
from txmsg.core.rate_limit import (
    ChannelCap,
    Counters,
    WindowUse,
    cap_use,
    channel_scopes,
    parse_channel_cap,
)
from txmsg.core.timeutil import utcnow
from txmsg.store import rate_windows as counters_of
from txmsg.store.tables import channel_configs, event_configs, rate_windows

# A refused delete names at most this many of the event configurations still using it.
MAX_USERS_NAMED = 10


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


def delete(conn: Connection, name: str) -> None:
    """Delete a channel configuration no event configuration uses, in one transaction: its
    row (with its sealed secrets) and its send-rate counters; a 409 naming its users else.

    Event configurations are the only rows naming one (export flows read the dataset, and
    `fallbacks` are relays of the configuration itself). On PostgreSQL the row is locked
    first: an event configuration created or switched to it meanwhile (which reads it `FOR
    SHARE`) either commits before, and is found here, or finds it gone.
    """
    query = sa.select(channel_configs.c.name).where(channel_configs.c.name == name)
    if conn.dialect.name != "sqlite":  # SQLite's single writer serialises this already
        query = query.with_for_update()
    if conn.execute(query).first() is None:
        raise not_found(f"no channel configuration '{name}'")
    uses = event_configs.c.channel_config == name
    users = list(
        conn.execute(
            sa.select(event_configs.c.event_id)
            .where(uses)
            .order_by(event_configs.c.event_id)
            .limit(MAX_USERS_NAMED)
        ).scalars()
    )
    if users:
        total = conn.execute(sa.select(sa.func.count()).select_from(event_configs).where(uses))
        raise in_use(name, users, int(total.scalar_one()))
    conn.execute(sa.delete(rate_windows).where(rate_windows.c.scope.in_(channel_scopes(name))))
    try:
        conn.execute(sa.delete(channel_configs).where(channel_configs.c.name == name))
    except IntegrityError:  # a reference this function does not know of: nothing deleted
        raise conflict(f"channel configuration '{name}' is still in use") from None


def in_use(name: str, users: list[str], total: int) -> DomainError:
    """The 409 of a delete refused: the first event configurations using it, by eventId."""
    more = f" (and {total - len(users)} more)" if total > len(users) else ""
    error = conflict(
        f"channel configuration '{name}' is used by {total} event configuration"
        f"{'s' if total != 1 else ''}: {', '.join(users)}{more}; switch them to another "
        "channel configuration (unpublish first) or delete them, then delete it"
    )
    error.members = {"used_by": {"event_configs": users, "total": total}}
    return error


def cap_uses(conn: Connection, rows: list[Any], now: datetime) -> dict[str, list[WindowUse]]:
    """The current use of each capped configuration's windows among `rows` (read from the
    counters its claims take tokens from, one query for all), at `now` (the database's)."""
    caps = {}
    for row in rows:
        cap = parse_channel_cap((row.settings or {}).get("rate_limit"))
        if cap is not None:
            caps[row.name] = cap
    counters = counters_of.read_in(conn, [s for name in caps for s in channel_scopes(name)])
    now_ms = int(now.timestamp() * 1000)
    return {name: cap_use(cap, name, counters, now_ms) for name, cap in caps.items()}


def all_cap_uses(conn: Connection, now: datetime) -> dict[str, list[WindowUse]]:
    """`cap_uses` of every configuration (its settings only: no secret is unsealed)."""
    rows = list(conn.execute(sa.select(channel_configs.c.name, channel_configs.c.settings)))
    return cap_uses(conn, rows, now)


def list_with_use(conn: Connection, now: datetime) -> tuple[list[Any], dict[str, list[WindowUse]]]:
    """Every configuration, and the use of the capped ones' windows (`cap_uses`)."""
    rows = list_all(conn)
    return rows, cap_uses(conn, rows, now)


def require_with_use(
    conn: Connection, name: str, now: datetime
) -> tuple[Any, dict[str, list[WindowUse]]]:
    row = require(conn, name)
    return row, cap_uses(conn, [row], now)


# A channel configuration's name, its cap, and the cap's counters.
CapFound = tuple[str, ChannelCap, Counters]


def event_cap(conn: Connection, event_id: str) -> CapFound | None:
    """The cap of the channel configuration an event configuration sends through, with its
    counters; None when it has none."""
    found = conn.execute(
        sa.select(channel_configs.c.name, channel_configs.c.settings)
        .select_from(
            event_configs.join(
                channel_configs, event_configs.c.channel_config == channel_configs.c.name
            )
        )
        .where(event_configs.c.event_id == event_id)
    ).first()
    cap = parse_channel_cap((found.settings or {}).get("rate_limit")) if found else None
    if found is None or cap is None:
        return None
    return found.name, cap, counters_of.read_in(conn, channel_scopes(found.name))
