"""Denylist and quarantine rows; bounces recorded by the dispatcher (or any bounce source)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from txmsg.core.bounces import Bounce
from txmsg.core.delivery import Interaction, LogEntry
from txmsg.core.errors import not_found
from txmsg.core.timeutil import utcnow
from txmsg.store.delivery_log import append_in
from txmsg.store.tables import denylist, quarantine

# Soft bounces (mailbox full, ...) in a row that put an address in quarantine.
SOFT_BOUNCE_LIMIT = 3


def _insert(conn: Connection, table: sa.Table) -> Any:
    return (sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert)(table)


_DENIED = sa.select(denylist.c.channel, denylist.c.address).where(
    denylist.c.address.in_(sa.bindparam("b_addresses", expanding=True))
)
_QUARANTINED = sa.select(quarantine.c.channel, quarantine.c.address).where(
    quarantine.c.address.in_(sa.bindparam("b_addresses", expanding=True)),
    quarantine.c.quarantined_at.is_not(None),
)


def denied(conn: Connection, pairs: set[tuple[str, str]]) -> frozenset[tuple[str, str]]:
    """Those of these (channel, address) pairs that are on the denylist (one query)."""
    return _matching(conn, _DENIED, pairs)


def quarantined(conn: Connection, pairs: set[tuple[str, str]]) -> frozenset[tuple[str, str]]:
    """Those of these (channel, address) pairs that are quarantined (one query)."""
    return _matching(conn, _QUARANTINED, pairs)


def _matching(
    conn: Connection, stmt: Any, pairs: set[tuple[str, str]]
) -> frozenset[tuple[str, str]]:
    if not pairs:
        return frozenset()
    rows = conn.execute(stmt, {"b_addresses": sorted({a for _, a in pairs})})
    return frozenset({(r.channel, r.address) for r in rows} & pairs)


def deny(conn: Connection, channel: str, address: str, reason: str | None) -> Any:
    conn.execute(
        _insert(conn, denylist)
        .values(channel=channel, address=address, reason=reason, created_at=utcnow())
        .on_conflict_do_update(index_elements=["channel", "address"], set_={"reason": reason})
    )
    return conn.execute(
        sa.select(denylist).where(denylist.c.channel == channel, denylist.c.address == address)
    ).one()


def deny_if_absent(conn: Connection, channel: str, address: str, reason: str) -> None:
    """Put an address on the denylist (a spam complaint), keeping an admin's entry as it is."""
    conn.execute(
        _insert(conn, denylist)
        .values(channel=channel, address=address, reason=reason[:500], created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["channel", "address"])
    )


def list_denied(conn: Connection) -> list[Any]:
    return list(conn.execute(sa.select(denylist).order_by(denylist.c.channel, denylist.c.address)))


def undeny(conn: Connection, channel: str, address: str) -> None:
    result = conn.execute(
        sa.delete(denylist).where(denylist.c.channel == channel, denylist.c.address == address)
    )
    if result.rowcount == 0:
        raise not_found(f"{address} is not on the {channel} denylist")


def list_quarantined(conn: Connection) -> list[Any]:
    return list(
        conn.execute(
            sa.select(quarantine)
            .where(quarantine.c.quarantined_at.is_not(None))
            .order_by(quarantine.c.channel, quarantine.c.address)
        )
    )


def release(conn: Connection, channel: str, address: str) -> None:
    """An admin lets a quarantined address receive messages again (its bounce count restarts)."""
    result = conn.execute(
        sa.delete(quarantine).where(
            quarantine.c.channel == channel,
            quarantine.c.address == address,
            quarantine.c.quarantined_at.is_not(None),
        )
    )
    if result.rowcount == 0:
        raise not_found(f"{address} is not in {channel} quarantine")


def record_bounce(
    conn: Connection,
    channel: str,
    address: str,
    hard: bool,
    reason: str,
    log: LogEntry | None = None,
) -> bool:
    """A bounce for an address: a hard one quarantines it at once, soft ones after a few.

    Returns whether the address is (now) quarantined. `log`, when given, is the `bounced`
    delivery-log entry of the message that bounced. Other bounce sources (asynchronous DSNs,
    provider webhooks) call this too.
    """
    now = utcnow()
    row = conn.execute(
        sa.select(quarantine).where(
            quarantine.c.channel == channel, quarantine.c.address == address
        )
    ).first()
    soft = (row.soft_bounces if row is not None else 0) + (0 if hard else 1)
    held = row is not None and row.quarantined_at is not None
    quarantine_now = not held and (hard or soft >= SOFT_BOUNCE_LIMIT)
    values: dict[str, Any] = {"soft_bounces": soft, "updated_at": now, "reason": reason[:500]}
    if quarantine_now:
        values["quarantined_at"] = now
    if row is None:
        conn.execute(
            _insert(conn, quarantine)
            .values(channel=channel, address=address, **{"quarantined_at": None, **values})
            .on_conflict_do_update(index_elements=["channel", "address"], set_=values)
        )
    elif not held:
        conn.execute(
            sa.update(quarantine)
            .where(quarantine.c.channel == channel, quarantine.c.address == address)
            .values(**values)
        )
    if log is not None:
        append_in(conn, [log])
    return held or quarantine_now


def bounced_entry(pkey: str, event_id: str, hard: bool, reason: str) -> LogEntry:
    return LogEntry(
        pkey,
        event_id,
        Interaction.BOUNCED,
        utcnow(),
        {"bounce": "hard" if hard else "soft", "reason": reason[:500]},
    )


def record_bounce_in(conn: Connection, bounce: Bounce) -> bool:
    """`record_bounce` for a send's own refusal, with its `bounced` delivery-log entry."""
    entry = bounced_entry(bounce.pkey, bounce.event_id, bounce.hard, bounce.reason)
    return record_bounce(conn, bounce.channel, bounce.address, bounce.hard, bounce.reason, entry)
