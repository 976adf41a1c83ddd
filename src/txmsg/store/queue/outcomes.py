"""Outcomes: what became of claimed events, applied only while their lease still holds.

A stale outcome (its lease expired and the event was claimed again) changes nothing, and is
neither counted nor announced: the events an outcome names are read (and on PostgreSQL
locked) first, one query per batch, then updated, one statement per 64 outcomes on SQLite and
one executemany elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from txmsg.core.queue import Outcome
from txmsg.core.reports import StatusChange
from txmsg.core.statuses import EventStatus
from txmsg.core.timeutil import utcnow
from txmsg.store import bulk
from txmsg.store.queue.rows import HELD_COLUMNS, HeldRow
from txmsg.store.tables import events

# An outcome whose lease held, with its event and when it happened (its send, else when it
# was recorded).
Applied = tuple[Outcome, str, datetime]


@dataclass(frozen=True, slots=True)
class Recorded:
    """The outcomes applied (for the counts), the status changes of those whose event has a
    webhook (to announce), and the messages of those that ended without a send."""

    applied: list[Applied] = field(default_factory=list)
    announced: list[StatusChange] = field(default_factory=list)
    unsent: list[str] = field(default_factory=list)  # their pkeys
    # The events of the outcomes that give their claim's cap tokens back (no provider saw them).
    given_back: list[HeldRow] = field(default_factory=list)


# Final statuses of a message that was never sent: it counts against no fatigue rule.
ENDED_UNSENT = frozenset(EventStatus) - {
    EventStatus.PENDING,
    EventStatus.PROCESSING,
    EventStatus.PAUSED,
    EventStatus.PROCESSED,
}


def _held(dialect: str) -> sa.Select[Any]:
    stmt = sa.select(*HELD_COLUMNS).where(events.c.id.in_(sa.bindparam("ids", expanding=True)))
    # In id order: two transactions locking some of the same events wait, never deadlock.
    return stmt if dialect == "sqlite" else stmt.order_by(events.c.id).with_for_update()


# The events the outcomes name, with their lease as it is now.
_HELD = bulk.Read("events of outcomes", _held)


def _apply(row: bulk.Source) -> sa.Update:
    return (
        sa.update(events)
        .where(events.c.id == row["b_id"], events.c.lease_token == row["b_token"])
        .values(
            status=row["b_status"],
            reason=row["b_reason"],
            due_at=sa.func.coalesce(row["b_due_at"], events.c.due_at),  # None: keep it
            message_version=row["b_version"],
            sent_at=row["b_sent_at"],
            provider_message_id=row["b_provider_id"],
            provider=row["b_provider"],
            profile_id=row["b_profile_id"],
            # The first attempt a provider saw stays the one recorded.
            attempted_at=sa.func.coalesce(events.c.attempted_at, row["b_attempted_at"]),
            lease_until=sa.null(),
            lease_token=sa.null(),
            updated_at=sa.bindparam("b_now", type_=events.c.updated_at.type),
        )
    )


# One outcome's columns. SQLite joins a batch's outcomes to their events as a VALUES table:
# an executemany steps once a row, and the driver releases the GIL around each step, so the
# writer thread would wait for the busy event loop to hand it back, row after row.
_APPLY = bulk.UpdateRows(
    "apply outcome",
    (
        sa.column("b_id", events.c.id.type),
        sa.column("b_token", events.c.lease_token.type),
        sa.column("b_status", events.c.status.type),
        sa.column("b_reason", events.c.reason.type),
        sa.column("b_due_at", events.c.due_at.type),
        sa.column("b_version", events.c.message_version.type),
        sa.column("b_sent_at", events.c.sent_at.type),
        sa.column("b_provider_id", events.c.provider_message_id.type),
        sa.column("b_provider", events.c.provider.type),
        sa.column("b_profile_id", events.c.profile_id.type),
        sa.column("b_attempted_at", events.c.attempted_at.type),
    ),
    _apply,
    joined=True,
)


def record_in(
    conn: Connection, outcomes: Sequence[Outcome], now: datetime | None = None
) -> Recorded:
    """Apply the outcomes whose lease still holds; return what they applied and what to
    announce."""
    if not outcomes:  # most write cycles of a busy trigger endpoint record none
        return Recorded()
    # One outcome a lease: a repeated one would be counted twice, and an UPDATE ... FROM
    # applies an arbitrary one of them (the first applied before, and still does).
    outcomes = list({(o.id, o.lease_token): o for o in reversed(outcomes)}.values())
    now = now or utcnow()
    rows = _HELD.rows(conn, {"ids": [o.id for o in outcomes]})
    held = {r.id: r for r in map(HeldRow._make, rows)}
    recorded = Recorded()
    unattempted: list[int] = []
    for o in outcomes:
        row = held.get(o.id)
        if row is None or row.lease_token != o.lease_token:
            continue  # stale: the update below skips it too
        at = o.sent_at or now
        recorded.applied.append((o, row.event_id, at))
        if o.status in ENDED_UNSENT:
            recorded.unsent.append(row.pkey)
        if o.give_back:
            recorded.given_back.append(row)
        if not o.attempted:
            unattempted.append(o.id)
        if row.hooked:
            status = o.status.value
            change = StatusChange(row.pkey, row.event_id, status, at, o.message_version, o.reason)
            recorded.announced.append(change)
    bulk.execute(conn, _APPLY, [_values(o, now) for o in outcomes], b_now=now)
    if unattempted:  # rare (sends handed back late): a statement only then
        conn.execute(_UNCOUNT, {"ids": unattempted})
    return recorded


# The attempt a claim counted, taken back: the send never started (`Outcome.attempted`).
_UNCOUNT = (
    sa.update(events)
    .where(events.c.id.in_(sa.bindparam("ids", expanding=True)), events.c.attempts > 0)
    .values(attempts=events.c.attempts - 1)
)


def _values(o: Outcome, now: datetime) -> tuple[Any, ...]:
    """An outcome's row of `_APPLY`, in the order of its columns."""
    return (
        o.id,
        o.lease_token,
        o.status.value,
        o.reason,
        o.due_at,
        o.message_version,
        o.sent_at,
        o.provider_message_id,
        o.provider,
        o.profile_id,
        now if o.reached_provider and o.sent_at is None else None,
    )
