"""Denylist and quarantine rows; bounces recorded by the dispatcher (or any bounce source),
and the numbers held for an SMS STOP (`quarantine.opted_out`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from txmsg.core.bounces import Bounce
from txmsg.core.delivery import Interaction, LogEntry, ProviderOptOut
from txmsg.core.errors import not_found
from txmsg.core.suppression import SOURCE_ADMIN, SOURCE_SPAM, suppression_key
from txmsg.core.timeutil import utcnow
from txmsg.store.delivery_log import append_in
from txmsg.store.dialect_insert import insert_into
from txmsg.store.tables import denylist, quarantine

# Soft bounces (mailbox full, ...) in a row that put an address in quarantine.
SOFT_BOUNCE_LIMIT = 3
# The `method` of the `unsubscribed` entry of a send refused for an SMS STOP (an unsubscribe
# link's is `one-click` or `page`).
STOP_METHOD = "stop"


def _insert(conn: Connection, table: sa.Table) -> Any:
    return insert_into(conn.dialect.name, table)


_DENIED = sa.select(denylist.c.channel, denylist.c.address).where(
    denylist.c.address.in_(sa.bindparam("b_addresses", expanding=True))
)
_HELD = sa.select(quarantine.c.channel, quarantine.c.address, quarantine.c.opted_out).where(
    quarantine.c.address.in_(sa.bindparam("b_addresses", expanding=True)),
    quarantine.c.quarantined_at.is_not(None),
)


def denied(conn: Connection, pairs: set[tuple[str, str]]) -> frozenset[tuple[str, str]]:
    """Those of these (channel, address) pairs that are on the denylist (one query)."""
    return _matching(conn, _DENIED, pairs)


def held_addresses(
    conn: Connection, pairs: set[tuple[str, str]]
) -> tuple[frozenset[tuple[str, str]], frozenset[tuple[str, str]]]:
    """Those of these (channel, address) pairs that are held for every message: quarantined
    (bounces), and opted out at the provider (an SMS STOP); one query."""
    if not pairs:
        return frozenset(), frozenset()
    keyed = {pair: (pair[0], suppression_key(*pair)) for pair in pairs}
    rows = conn.execute(_HELD, {"b_addresses": sorted({a for _, a in keyed.values()})})
    found = {(r.channel, r.address): r.opted_out for r in rows}
    bounced = frozenset(p for p, key in keyed.items() if found.get(key) is False)
    stopped = frozenset(p for p, key in keyed.items() if found.get(key) is True)
    return bounced, stopped


def _matching(
    conn: Connection, stmt: Any, pairs: set[tuple[str, str]]
) -> frozenset[tuple[str, str]]:
    if not pairs:
        return frozenset()
    keyed = {pair: (pair[0], suppression_key(*pair)) for pair in pairs}
    rows = conn.execute(stmt, {"b_addresses": sorted({a for _, a in keyed.values()})})
    found = {(r.channel, r.address) for r in rows}
    return frozenset(pair for pair, key in keyed.items() if key in found)


def deny(conn: Connection, channel: str, address: str, reason: str | None) -> Any:
    address = suppression_key(channel, address)
    conn.execute(
        _insert(conn, denylist)
        .values(channel=channel, address=address, reason=reason, created_at=utcnow())
        .on_conflict_do_update(
            # an admin's entry now, even where a complaint or an import put the address
            index_elements=["channel", "address"],
            set_={"reason": reason, "source": SOURCE_ADMIN},
        )
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
                {
                    "channel": c,
                    "address": a,
                    "reason": r[:500],
                    "created_at": now,
                    "source": SOURCE_SPAM,
                }
                for (c, a), r in {(c, suppression_key(c, a)): r for c, a, r in entries}.items()
            ],
        )


def list_denied(conn: Connection) -> list[Any]:
    return list(conn.execute(sa.select(denylist).order_by(denylist.c.channel, denylist.c.address)))


def undeny(conn: Connection, channel: str, address: str) -> None:
    key = suppression_key(channel, address)
    result = conn.execute(
        sa.delete(denylist).where(denylist.c.channel == channel, denylist.c.address == key)
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
    """An admin lets a quarantined address receive messages again (its bounce count restarts),
    or a number held for an SMS STOP (the person texted START)."""
    result = conn.execute(
        sa.delete(quarantine).where(
            quarantine.c.channel == channel,
            quarantine.c.address == suppression_key(channel, address),
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


def record_bounces(
    conn: Connection,
    bounces: list[AddressBounce],
    entries: list[LogEntry],
    now: datetime | None = None,
) -> list[bool]:
    """`record_bounce` for many, with one upsert and one append; returns for each bounce
    whether its address is (now) quarantined.

    The database computes the new state from the stored row (`soft_bounces` + this batch's
    soft bounces, a quarantine kept once set, the decision from the summed count), so
    concurrent writers neither lose increments nor clear a quarantine.
    """
    if not bounces:
        append_in(conn, entries, now)
        return []
    now = now or utcnow()
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    keys = [(b.channel, suppression_key(b.channel, b.address)) for b in bounces]
    for bounce, (channel, address) in zip(bounces, keys, strict=True):
        row = merged.setdefault(
            (channel, address),
            {"channel": channel, "address": address, "soft_bounces": 0, "hard": 0},
        )
        row["soft_bounces"] += 0 if bounce.hard else 1
        row["hard"] |= bounce.hard
        row["reason"] = bounce.reason[:500]
    rows = [
        {
            "channel": row["channel"],
            "address": row["address"],
            "soft_bounces": row["soft_bounces"],
            "quarantined_at": (
                now if row["hard"] or row["soft_bounces"] >= SOFT_BOUNCE_LIMIT else None
            ),
            "reason": row["reason"],
            "updated_at": now,
        }
        for _, row in sorted(merged.items())  # one lock order for concurrent writers
    ]
    upsert = _insert(conn, quarantine)
    new = upsert.excluded
    held = quarantine.c.quarantined_at.is_not(None)
    summed = quarantine.c.soft_bounces + new.soft_bounces
    stmt = upsert.on_conflict_do_update(
        index_elements=["channel", "address"],
        set_={
            # Already held: nothing changes.
            "soft_bounces": sa.case((held, quarantine.c.soft_bounces), else_=summed),
            "quarantined_at": sa.func.coalesce(
                quarantine.c.quarantined_at,
                new.quarantined_at,  # a hard bounce in this batch
                sa.case((summed >= SOFT_BOUNCE_LIMIT, new.updated_at)),
            ),
            "reason": sa.case((held, quarantine.c.reason), else_=new.reason),
            "updated_at": sa.case((held, quarantine.c.updated_at), else_=new.updated_at),
        },
    ).returning(quarantine.c.channel, quarantine.c.address, quarantine.c.quarantined_at)
    state = {(r.channel, r.address): r.quarantined_at is not None for r in conn.execute(stmt, rows)}
    append_in(conn, entries, now)
    return [state[key] for key in keys]


def bounced_entry(
    pkey: str, event_id: str, hard: bool, reason: str, at: datetime | None = None
) -> LogEntry:
    """The `bounced` entry of a send's own refusal, recorded once per message and class: a
    retried send refused again (a mailbox full at each attempt), or the same bounce reported
    later (a DSN, the feedback API), is the same one."""
    return LogEntry(
        pkey,
        event_id,
        Interaction.BOUNCED,
        at or utcnow(),
        {"bounce": "hard" if hard else "soft", "reason": reason[:500]},
        "hard" if hard else "soft",
    )


def record_bounce_in(conn: Connection, bounce: Bounce, now: datetime | None = None) -> None:
    """A send's own refusal: its `bounced` entry and, the first time this message bounces so,
    its count towards the address's quarantine (one soft bounce a message, however many of
    its attempts were refused). `now`: the database's time (a worker's write cycle)."""
    entry = bounced_entry(bounce.pkey, bounce.event_id, bounce.hard, bounce.reason, now)
    if append_in(conn, [entry], now):
        record_bounces(
            conn,
            [AddressBounce(bounce.channel, bounce.address, bounce.hard, bounce.reason)],
            [],
            now,
        )


def record_opt_out_in(
    conn: Connection, opt_out: ProviderOptOut, now: datetime | None = None
) -> None:
    """A send refused because its recipient opted out at the provider (an SMS STOP): the
    message's `unsubscribed` entry (once per message, as an unsubscribe link's) and the
    address held for every message as an opt-out, never counted as a bounce. An address
    already held (for bounces) keeps its hold as it is, as a bounce leaves a STOP's."""
    now = now or utcnow()  # the database's time in a worker's write cycle
    channel = opt_out.channel
    append_in(
        conn,
        [
            LogEntry(
                opt_out.pkey,
                opt_out.event_id,
                Interaction.UNSUBSCRIBED,
                now,
                {"channel": channel, "method": STOP_METHOD, "reason": opt_out.reason[:500]},
                channel,
            )
        ],
        now,
    )
    upsert = _insert(conn, quarantine).values(
        channel=channel,
        address=suppression_key(channel, opt_out.address),
        soft_bounces=0,
        quarantined_at=now,
        reason=opt_out.reason[:500],
        updated_at=now,
        opted_out=True,
    )
    new = upsert.excluded
    already = quarantine.c.quarantined_at.is_not(None)
    conn.execute(
        upsert.on_conflict_do_update(
            index_elements=["channel", "address"],
            set_={
                # Soft bounces below the limit do not hold the address: the STOP does now.
                "quarantined_at": sa.func.coalesce(quarantine.c.quarantined_at, new.quarantined_at),
                "opted_out": sa.case((already, quarantine.c.opted_out), else_=new.opted_out),
                "reason": sa.case((already, quarantine.c.reason), else_=new.reason),
                "updated_at": sa.case((already, quarantine.c.updated_at), else_=new.updated_at),
            },
        )
    )
