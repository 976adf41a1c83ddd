"""The status-webhook outbox: calls queued in the transaction of the change they announce,
claimed by the sender as it has room (each event configuration within its cap), deleted once
delivered."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from txmsg.core.delivery import LogEntry
from txmsg.core.reports import StatusChange
from txmsg.core.timeutil import utcnow
from txmsg.store import bulk
from txmsg.store.tables import event_webhooks, events, webhook_outbox

# In the RETURNING clause of an UPDATE of events (or a SELECT of them): whether the row's
# event configuration has a webhook, in the same statement (no query of its own). IN, not a
# correlated EXISTS: SQLite's RETURNING names columns without their table (as SQLAlchemy
# renders it there), and the EXISTS would compare event_webhooks.event_id with itself. The
# sub-select is not correlated: both engines run it once per statement.
HAS_WEBHOOK = events.c.event_id.in_(sa.select(event_webhooks.c.event_id)).label("hooked")


def events_with_webhook(conn: Connection, event_ids: Iterable[str]) -> set[str]:
    """Those of `event_ids` whose configuration has a webhook."""
    return set(
        conn.execute(
            sa.select(event_webhooks.c.event_id).where(
                event_webhooks.c.event_id.in_(set(event_ids))
            )
        ).scalars()
    )


def has_webhook(conn: Connection, event_id: str) -> bool:
    return bool(events_with_webhook(conn, [event_id]))


# One call to make. On the trigger's write for events with a webhook: the lean insert.
_QUEUE_CALL = bulk.InsertRows(
    "queue webhook call",
    webhook_outbox,
    (
        "event_id",
        "pkey",
        "status",
        "interaction",
        "at",
        "reason",
        "detail",
        "created_at",
        "due_at",
        "attempts",
        "last_error",
    ),
)


def queue_status_changes(
    conn: Connection, changes: list[StatusChange], now: datetime | None = None
) -> None:
    """Queue the calls announcing `changes`, whose events are known to have a webhook (the
    statement that made them said so), due at `now`: the database's time, which the webhook
    senders of every process compare due times with (this process's clock without it)."""
    if changes:
        now = now or utcnow()
        bulk.execute(
            conn,
            _QUEUE_CALL,
            [
                _call(now, c.event_id, c.pkey, c.at, status=c.status, reason=c.reason)
                for c in changes
            ],
        )


def queue_interactions(
    conn: Connection, entries: list[LogEntry], now: datetime | None = None
) -> None:
    """Queue the calls announcing delivery-log `entries`, whose events have a webhook, due at
    `now` (as `queue_status_changes`)."""
    if entries:
        now = now or utcnow()
        bulk.execute(
            conn,
            _QUEUE_CALL,
            [
                _call(now, e.event_id, e.pkey, e.at, interaction=e.kind.value, detail=e.detail)
                for e in entries
            ],
        )


def _call(
    now: datetime,
    event_id: str,
    pkey: str,
    at: datetime,
    *,
    status: str | None = None,
    interaction: str | None = None,
    reason: str | None = None,
    detail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "pkey": pkey,
        "status": status,
        "interaction": interaction,
        "at": at,
        "reason": reason,
        "detail": detail,
        "created_at": now,
        "due_at": now,
        "attempts": 0,
        "last_error": None,
    }


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    event_id: str
    pkey: str
    status: str | None
    interaction: str | None
    at: datetime
    reason: str | None
    detail: dict[str, Any] | None
    created_at: datetime
    attempts: int
    url: str
    secret: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Ask:
    """What the sender asks of a claim: up to `limit` calls, each event configuration at most
    `cap` in flight in this process, `busy` of them in flight already."""

    limit: int
    cap: int
    busy: Mapping[str, int]
    lease: timedelta
    now: datetime


@dataclass(frozen=True, slots=True)
class Settlement:
    """Calls delivered or given up (`done`), failed (`retry`: id, next due time, error), or cut
    short by a stop (`released`: due at once, their attempt not counted)."""

    done: list[int] = field(default_factory=list)
    retry: list[tuple[int, datetime, str]] = field(default_factory=list)
    released: list[int] = field(default_factory=list)


def _due_calls(dialect: str) -> sa.Select[int, str]:
    """Due calls, oldest first, but for the configurations at their cap (`b_full`): a slow
    receiver's backlog never fills the pick and holds up another configuration's calls."""
    pick = (
        sa.select(webhook_outbox.c.id, webhook_outbox.c.event_id)
        .where(
            webhook_outbox.c.due_at <= sa.bindparam("b_now", type_=webhook_outbox.c.due_at.type),
            webhook_outbox.c.event_id.not_in(sa.bindparam("b_full", expanding=True)),
        )
        .order_by(webhook_outbox.c.due_at, webhook_outbox.c.id)
        .limit(sa.bindparam("b_limit"))
    )
    # Another process's claim under way holds its rows: skipped, never leased twice.
    if dialect != "sqlite":
        pick = pick.with_for_update(skip_locked=True)
    return pick


_DUE_CALLS = {name: _due_calls(name) for name in ("sqlite", "postgresql")}

# The picked calls leased: due again (to any process) only if not settled within the lease.
_LEASE_CALLS = (
    sa.update(webhook_outbox)
    .where(webhook_outbox.c.id.in_(sa.bindparam("b_ids", expanding=True)))
    .values(
        due_at=sa.bindparam("b_until", type_=webhook_outbox.c.due_at.type),
        attempts=webhook_outbox.c.attempts + 1,
    )
    .returning(*webhook_outbox.c)
)

_DROP_CALLS = sa.delete(webhook_outbox).where(
    webhook_outbox.c.id.in_(sa.bindparam("b_ids", expanding=True))
)

# A failed call's next attempt.
_RETRY_CALL = (
    sa.update(webhook_outbox)
    .where(webhook_outbox.c.id == sa.bindparam("b_id"))
    .values(
        due_at=sa.bindparam("b_due", type_=webhook_outbox.c.due_at.type),
        last_error=sa.bindparam("b_error"),
    )
)

# Calls a stop cut short: due at once, to this process's successor or another one.
_RELEASE_CALLS = (
    sa.update(webhook_outbox)
    .where(webhook_outbox.c.id.in_(sa.bindparam("b_ids", expanding=True)))
    .values(
        due_at=sa.bindparam("b_now", type_=webhook_outbox.c.due_at.type),
        attempts=webhook_outbox.c.attempts - 1,
    )
)


def claim(conn: Connection, ask: Ask) -> list[Delivery]:
    """Lease up to `ask.limit` due calls (their due time moves past the lease), oldest first,
    none of a configuration beyond its cap.

    A pick cut short by a configuration reaching its cap is followed by another without it, to
    reach the calls behind its backlog; each pick puts one more configuration at its cap, so
    there are few.
    Calls whose event no longer has a webhook are dropped.
    """
    busy = Counter(ask.busy)
    leased: list[Any] = []
    while len(leased) < ask.limit:
        full = [e for e, n in busy.items() if n >= ask.cap]
        rows = conn.execute(
            _DUE_CALLS[conn.dialect.name],
            {"b_now": ask.now, "b_full": full, "b_limit": ask.limit - len(leased)},
        ).all()
        picked: list[int] = []
        for call_id, event_id in rows:
            if busy[event_id] < ask.cap:
                picked.append(call_id)
                busy[event_id] += 1
        if picked:
            until = ask.now + ask.lease
            leased += conn.execute(_LEASE_CALLS, {"b_ids": picked, "b_until": until}).all()
        if len(picked) == len(rows):
            break  # nothing left out: all that is due, or the limit
    return _deliveries(conn, leased) if leased else []


def _deliveries(conn: Connection, rows: Sequence[Any]) -> list[Delivery]:
    """The leased rows with their webhook's URL and secret; the calls of events without one
    (removed meanwhile) are dropped."""
    hooks = {
        r.event_id: (r.url, r.secret)
        for r in conn.execute(
            sa.select(event_webhooks).where(
                event_webhooks.c.event_id.in_({r.event_id for r in rows})
            )
        )
    }
    orphans = [r.id for r in rows if r.event_id not in hooks]
    if orphans:
        conn.execute(_DROP_CALLS, {"b_ids": orphans})
    out = [
        Delivery(
            r.id,
            r.event_id,
            r.pkey,
            r.status,
            r.interaction,
            r.at,
            r.reason,
            r.detail,
            r.created_at,
            r.attempts,
            *hooks[r.event_id],
        )
        for r in rows
        if r.event_id in hooks
    ]
    out.sort(key=lambda d: d.id)
    return out


def settle(conn: Connection, s: Settlement, now: datetime) -> None:
    """Delete the calls delivered (or given up); schedule the failed ones' next attempt; make
    the released ones due at `now`."""
    if s.done:
        conn.execute(_DROP_CALLS, {"b_ids": s.done})
    if s.retry:
        conn.execute(
            _RETRY_CALL, [{"b_id": i, "b_due": due, "b_error": error} for i, due, error in s.retry]
        )
    if s.released:
        conn.execute(_RELEASE_CALLS, {"b_ids": s.released, "b_now": now})


def settle_and_claim(conn: Connection, s: Settlement, ask: Ask) -> list[Delivery]:
    """The sender's one transaction a round: the calls ended since the last, then new ones
    for the slots free."""
    settle(conn, s, ask.now)
    return claim(conn, ask) if ask.limit > 0 else []


def pending(conn: Connection, event_id: str) -> list[Any]:
    """The calls of an event still to make (for tests and operators)."""
    return list(
        conn.execute(
            sa.select(webhook_outbox)
            .where(webhook_outbox.c.event_id == event_id)
            .order_by(webhook_outbox.c.id)
        )
    )
