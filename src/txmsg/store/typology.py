"""Denylist and quarantine rows; bounces recorded by the dispatcher (or any bounce source)."""

from __future__ import annotations

from dataclasses import dataclass
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


def deny_if_absent(conn: Connection, entries: list[tuple[str, str, str]]) -> None:
    """Put (channel, address, reason) on the denylist (spam complaints), one statement; an
    address already there keeps its entry (an admin's reason)."""
    if entries:
        now = utcnow()
        conn.execute(
            _insert(conn, denylist).on_conflict_do_nothing(index_elements=["channel", "address"]),
            [
                {"channel": c, "address": a, "reason": r[:500], "created_at": now}
                for (c, a), r in {(c, a): r for c, a, r in entries}.items()
            ],
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
    provider webhooks) call this, or `record_bounces` for many.
    """
    [held] = record_bounces(
        conn, [AddressBounce(channel, address, hard, reason)], [log] if log is not None else []
    )
    return held


@dataclass(frozen=True, slots=True)
class AddressBounce:
    channel: str
    address: str
    hard: bool
    reason: str


_QUARANTINE_ROWS = sa.select(quarantine).where(
    quarantine.c.address.in_(sa.bindparam("b_addresses", expanding=True))
)


def record_bounces(
    conn: Connection, bounces: list[AddressBounce], entries: list[LogEntry]
) -> list[bool]:
    """`record_bounce` for many, in order, with one read, one upsert and one append; returns
    for each bounce whether its address is (now) quarantined."""
    now = utcnow()
    wanted = {(b.channel, b.address) for b in bounces}
    state: dict[tuple[str, str], tuple[int, Any]] = {}
    if bounces:
        rows = conn.execute(_QUARANTINE_ROWS, {"b_addresses": sorted({a for _, a in wanted})})
        state = {
            (r.channel, r.address): (r.soft_bounces, r.quarantined_at)
            for r in rows
            if (r.channel, r.address) in wanted
        }
    changed: dict[tuple[str, str], dict[str, Any]] = {}
    held: list[bool] = []
    for bounce in bounces:
        key = (bounce.channel, bounce.address)
        soft, quarantined_at = state.get(key, (0, None))
        if quarantined_at is not None:  # already held: nothing changes
            held.append(True)
            continue
        soft += 0 if bounce.hard else 1
        if bounce.hard or soft >= SOFT_BOUNCE_LIMIT:
            quarantined_at = now
        state[key] = (soft, quarantined_at)
        changed[key] = {
            "channel": bounce.channel,
            "address": bounce.address,
            "soft_bounces": soft,
            "quarantined_at": quarantined_at,
            "reason": bounce.reason[:500],
            "updated_at": now,
        }
        held.append(quarantined_at is not None)
    if changed:
        upsert = _insert(conn, quarantine)
        conn.execute(
            upsert.on_conflict_do_update(
                index_elements=["channel", "address"],
                set_={
                    name: upsert.excluded[name]
                    for name in ("soft_bounces", "quarantined_at", "reason", "updated_at")
                },
            ),
            list(changed.values()),
        )
    append_in(conn, entries)
    return held


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
