"""The suppression list read as one table: denylist, held quarantine (bounces and SMS STOPs)
and opted-out profiles.

One UNION ALL names each entry's reason; listing pages through it by (channel, address,
reason, detail), the "why" answer of one address reads the same union for that address.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from txmsg.core.kinds import Channel
from txmsg.core.suppression import (
    SOURCE_IMPORT,
    SOURCE_SPAM,
    Filters,
    ImportRow,
    Reason,
    Suppression,
    suppression_key,
)
from txmsg.core.timeutil import utcnow
from txmsg.store.dialect_insert import insert_into
from txmsg.store.tables import denylist, profiles, quarantine
from txmsg.store.typology import SOFT_BOUNCE_LIMIT

_TEXT = sa.String(500)


def _union() -> Any:
    d, q, p = denylist.c, quarantine.c, profiles.c
    parts = [
        sa.select(
            d.channel.label("channel"),
            d.address.label("address"),
            sa.case(
                (d.source == SOURCE_SPAM, Reason.SPAM_COMPLAINT.value),
                else_=Reason.DENYLIST.value,
            ).label("reason"),
            sa.cast(d.reason, _TEXT).label("detail"),
            d.created_at.label("since"),
        ),
        sa.select(
            q.channel,
            q.address,
            sa.case(
                (q.opted_out.is_(True), Reason.SMS_STOP.value),
                (q.soft_bounces >= SOFT_BOUNCE_LIMIT, Reason.SOFT_BOUNCES.value),
                else_=Reason.HARD_BOUNCE.value,
            ),
            sa.cast(q.reason, _TEXT),
            q.quarantined_at,
        ).where(q.quarantined_at.is_not(None)),
    ]
    for channel, column, opt_out in (
        (Channel.EMAIL, p.email, p.email_opt_out),
        (Channel.SMS, p.mobile_phone, p.sms_opt_out),
    ):
        parts.append(
            sa.select(
                sa.literal(channel.value, sa.String(8)),
                column,
                sa.literal(Reason.UNSUBSCRIBE.value, sa.String(16)),
                sa.cast(sa.literal("profile ", _TEXT) + p.profile_id, _TEXT),
                p.updated_at,
            ).where(opt_out.is_(True), column.is_not(None))
        )
    return sa.union_all(*parts).subquery("suppressions")


def _entry(row: Any) -> Suppression:
    return Suppression(row.channel, row.address, Reason(row.reason), row.detail, row.since)


def _key(s: Any) -> tuple[Any, ...]:
    """An entry's place in the listing. The detail tells apart two profiles opted out with
    one address (same channel, address and reason); the denylist's and the quarantine's
    entries are one per address already, and may have none."""
    return (s.c.channel, s.c.address, s.c.reason, sa.func.coalesce(s.c.detail, ""))


def _filtered(filters: Filters) -> tuple[Any, Any]:
    s = _union()
    query = sa.select(s).order_by(*_key(s))
    if filters.channel is not None:
        query = query.where(s.c.channel == filters.channel)
    if filters.reason is not None:
        query = query.where(s.c.reason == filters.reason.value)
    if filters.since is not None:
        query = query.where(s.c.since >= filters.since)
    return s, query


def page(
    conn: Connection, filters: Filters, after: tuple[str, ...] | None, limit: int
) -> list[Suppression]:
    """Up to `limit` entries after the key `after`: (channel, address, reason, detail or "");
    or, from a cursor of an earlier version, (channel, address, reason), past all its entries."""
    s, query = _filtered(filters)
    if after is not None:
        query = query.where(sa.tuple_(*_key(s)[: len(after)]) > sa.tuple_(*after))
    return [_entry(r) for r in conn.execute(query.limit(limit))]


def export(conn: Connection, filters: Filters, limit: int) -> list[Suppression]:
    """Every matching entry, at most `limit`."""
    _, query = _filtered(filters)
    return [_entry(r) for r in conn.execute(query.limit(limit))]


def why(conn: Connection, channel: str, address: str) -> list[Suppression]:
    """Every reason `address` is suppressed on `channel` (none: it is not)."""
    return why_each(conn, channel, [address]).get(address, [])


def why_each(conn: Connection, channel: str, addresses: list[str]) -> dict[str, list[Suppression]]:
    """Every reason each of `addresses` is suppressed on `channel`, by the address as given
    (one not suppressed is absent); one query."""
    if not addresses:
        return {}
    s = _union()
    # Opted-out profiles keep their address as written; the other entries are listed by key.
    listed = sa.func.lower(s.c.address) if channel == Channel.EMAIL else s.c.address
    keys = {address: suppression_key(channel, address) for address in addresses}
    query = sa.select(s, listed.label("listed_key")).where(
        s.c.channel == channel, listed.in_(sorted(set(keys.values())))
    )
    found: dict[str, list[Suppression]] = {}
    for r in conn.execute(query.order_by(s.c.since, s.c.reason)):
        found.setdefault(r.listed_key, []).append(_entry(r))
    return {address: found[key] for address, key in keys.items() if key in found}


def import_denylist(conn: Connection, rows: list[ImportRow]) -> int:
    """Add the rows to the denylist (source `import`); an address already there keeps its
    entry. Returns how many were added."""
    if not rows:
        return 0
    insert = insert_into(conn.dialect.name, denylist)
    now = utcnow()
    unique = {(r.channel, suppression_key(r.channel, r.address)): r for r in rows}
    result = conn.execute(
        insert.on_conflict_do_nothing(index_elements=["channel", "address"]).returning(
            denylist.c.address
        ),
        [
            {
                "channel": channel,
                "address": address,
                "reason": r.detail,
                "created_at": now,
                "source": SOURCE_IMPORT,
            }
            for (channel, address), r in unique.items()
        ],
    )
    return len(result.all())
