"""Enqueue: many new events in one insert, the fresh ones leased straight to the dispatcher.

An item is one event or a batch trigger's events (`NewBatch`): a batch's events go in with
the rest, all or none by its one Idempotency-Key.

Idempotency-Keys are resolved first (store/queue/idempotency.py); up to `claim` of the new
events that are due now are inserted already leased and returned, so the caller hands them to
its dispatcher without a claim round trip (the lease covers a crash).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from txmsg.core.queue import (
    PRIORITY_BULK,
    ClaimedEvent,
    EnqueueResult,
    NewBatch,
    NewEvent,
    events_of,
)
from txmsg.core.reports import StatusChange
from txmsg.core.statuses import EventStatus
from txmsg.core.timeutil import utcnow
from txmsg.store import bulk
from txmsg.store.queue import idempotency
from txmsg.store.queue.rows import HELD_BY_LEASE, LEASED_COLUMNS, ClaimRow, Lease, LeasedRow
from txmsg.store.tables import events


@dataclass(frozen=True, slots=True)
class Enqueued:
    """One answer per item of the batch; the new events leased at insert (by id); the changes
    to announce (acceptance, and `processing` of the leased, for `announce` events)."""

    results: list[EnqueueResult] = field(default_factory=list)
    leased: list[ClaimedEvent] = field(default_factory=list)
    announced: list[StatusChange] = field(default_factory=list)


# Every column a new event is inserted with.
_INSERT = bulk.InsertRows(
    "insert events",
    events,
    (
        "pkey",
        "event_id",
        "priority",
        "status",
        "email",
        "ctx",
        "event_date",
        "scheduled_at",
        "expires_at",
        "due_at",
        "lease_until",
        "lease_token",
        "attempts",
        "updated_at",
        "mobile_phone",
    ),
)

# The events this insert leased, found again by their lease (the lease index).
_LEASED = bulk.Read(
    "events leased at insert", lambda _dialect: sa.select(*LEASED_COLUMNS).where(HELD_BY_LEASE)
)


def enqueue_in(
    conn: Connection,
    batch: Sequence[NewEvent | NewBatch],
    *,
    claim: int = 0,
    bulk_claim: int | None = None,
    lease: timedelta | None = None,
    hold: frozenset[str] = frozenset(),
    now: datetime | None = None,
) -> Enqueued:
    """Insert the items of `batch` that their Idempotency-Key (if any) lets in; lease up to
    `claim` of the due events (at most `bulk_claim` bulk ones) for `lease`, from `now` (the
    database's time), none of the event types in `hold` (capped channels: their events wait
    for a claim and its tokens, store/queue/capped.py)."""
    if not batch:  # most write cycles record outcomes only
        return Enqueued()
    now = now or utcnow()
    held = Lease.new(now, lease or timedelta(0))
    answers = idempotency.resolve_in(conn, batch, now)
    new = _New(now, held, claim, hold, bulk_claim)
    for item, answer in zip(batch, answers, strict=True):
        new.add(item, answer)
    bulk.execute(conn, _INSERT, new.rows)
    return Enqueued(new.results, _leased(conn, new.leased, held), new.announced)


class _New:
    """A batch's insert, event by event: its rows, answers, leases and announcements."""

    def __init__(
        self,
        now: datetime,
        lease: Lease,
        claim: int,
        hold: frozenset[str],
        bulk_claim: int | None = None,
    ) -> None:
        self.now = now
        # How many of the `claim` may be bulk events (None: any).
        self.bulk_claim = claim if bulk_claim is None else min(claim, bulk_claim)
        self.hold = hold
        self.lease = lease
        self.claim = claim
        self.rows: list[tuple[Any, ...]] = []
        self.results: list[EnqueueResult] = []
        self.leased: dict[str, NewEvent] = {}
        self.announced: list[StatusChange] = []

    def add(self, item: NewEvent | NewBatch, answer: EnqueueResult | None) -> None:
        if answer is not None:  # a replay or a mismatch: nothing to insert
            self.results.append(answer)
            return
        self.results.append(EnqueueResult("created", item.response))
        for event in events_of(item):
            self._insert(event)

    def _insert(self, item: NewEvent) -> None:
        now = self.now
        take = (
            len(self.leased) < self.claim
            and item.status == EventStatus.PENDING
            and item.due_at <= now
            and item.event_id not in self.hold
            and (item.priority < PRIORITY_BULK or self.bulk_claim > 0)
        )
        if take:
            self.leased[item.pkey] = item
            if item.priority >= PRIORITY_BULK:
                self.bulk_claim -= 1
        if item.announce:
            self.announced.append(StatusChange(item.pkey, item.event_id, item.status.value, now))
            if take:
                processing = EventStatus.PROCESSING.value
                self.announced.append(StatusChange(item.pkey, item.event_id, processing, now))
        # A tuple in `_INSERT`'s column order: no dict built and read back per row.
        self.rows.append(
            (
                item.pkey,
                item.event_id,
                item.priority,
                EventStatus.PROCESSING.value if take else item.status.value,
                item.email,
                item.ctx,
                item.event_date,
                item.scheduled_at,
                item.expires_at,
                item.due_at,
                self.lease.until if take else None,
                self.lease.token if take else None,
                1 if take else 0,
                now,
                item.mobile_phone,
            )
        )


def _leased(conn: Connection, leased: dict[str, NewEvent], lease: Lease) -> list[ClaimedEvent]:
    """The events inserted leased, with the ids the insert gave them, by id."""
    if not leased:
        return []
    rows = sorted(map(LeasedRow._make, _LEASED.rows(conn, lease.params())), key=lambda r: r.id)
    return [ClaimRow.inserted(r.id, leased[r.pkey]).claimed(lease) for r in rows]
