"""The durable queue on both engines: priority, leases, outcomes, idempotency in a batch."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Connection

from txmsg.core.queue import (
    PRIORITY_BULK,
    PRIORITY_TRANSACTIONAL,
    ClaimedEvent,
    NewBatch,
    NewEvent,
    Outcome,
    expired_reason,
    new_pkey,
)
from txmsg.core.statuses import EventStatus
from txmsg.core.timeutil import utcnow
from txmsg.store.db import Database
from txmsg.store.events import get_event
from txmsg.store.queue import claims, enqueue, housekeeping, leases
from txmsg.store.queue.cycle import CycleRequest, write_cycle
from txmsg.store.tables import events, report_days

LEASE = timedelta(seconds=30)


def enqueue_in(conn: Connection, batch: list[NewEvent], **lease: Any) -> Any:
    """(answers, events leased at insert)."""
    new = enqueue.enqueue_in(conn, batch, **lease)
    return new.results, new.leased


def claim_in(conn: Connection, limit: int, lease: timedelta) -> list[ClaimedEvent]:
    return claims.claim_in(conn, limit, lease).events


def record_outcomes_in(conn: Connection, applied: list[Outcome]) -> None:
    """As the write cycle records them, with their report counts and webhook calls."""
    write_cycle(conn, CycleRequest(outcomes=applied))


def release_expired_leases(conn: Connection) -> int:
    return leases.release_expired_in(conn).count


def expire_queued(conn: Connection, now: Any) -> int:
    return housekeeping.expire_queued(conn, now).count


def event(
    priority: int = PRIORITY_TRANSACTIONAL,
    *,
    due_in: float = 0.0,
    key: str | None = None,
    fingerprint: str | None = None,
) -> NewEvent:
    now = utcnow()
    pkey = new_pkey()
    return NewEvent(
        pkey=pkey,
        event_id="EVTtest",
        priority=priority,
        status=EventStatus.PENDING,
        email="ada@example.org",
        ctx={},
        event_date=now,
        scheduled_at=None,
        expires_at=now + timedelta(hours=1),
        due_at=now + timedelta(seconds=due_in),
        response={"PKey": pkey},
        idempotency_key=key,
        fingerprint=fingerprint,
    )


async def test_transactional_events_are_claimed_before_bulk(db: Database) -> None:
    bulk = [event(PRIORITY_BULK) for _ in range(50)]
    await db.write(enqueue_in, bulk)
    urgent = [event(PRIORITY_TRANSACTIONAL) for _ in range(3)]
    await db.write(enqueue_in, urgent)
    claimed = await db.write(claim_in, 5, LEASE)
    assert {c.pkey for c in urgent} <= {c.pkey for c in claimed}
    assert len(claimed) == 5
    # Not yet due events stay in the queue.
    await db.write(enqueue_in, [event(due_in=3600)])
    rest = await db.write(claim_in, 100, LEASE)
    assert len(rest) == 48


async def test_a_lease_expires_and_the_event_is_claimed_again(db: Database) -> None:
    [item] = [event()]
    await db.write(enqueue_in, [item])
    [first] = await db.write(claim_in, 10, timedelta(seconds=-1))  # already expired
    assert await db.write(claim_in, 10, LEASE) == []  # still 'processing'
    assert await db.write(release_expired_leases) == 1
    [second] = await db.write(claim_in, 10, LEASE)
    assert second.pkey == item.pkey
    assert second.attempts == 2
    # The first worker's late outcome no longer applies: its lease token is stale.
    late = Outcome(first.id, first.lease_token, EventStatus.DELIVERY_FAILED, "late")
    await db.write(record_outcomes_in, [late])
    done = Outcome(
        second.id, second.lease_token, EventStatus.PROCESSED, message_version=1, sent_at=utcnow()
    )
    await db.write(record_outcomes_in, [done])
    row = await db.read(get_event, "EVTtest", item.pkey)
    assert row.status == "processed"
    assert row.reason is None
    assert row.lease_token is None


async def test_fresh_events_are_inserted_leased_up_to_the_claim(db: Database) -> None:
    batch = [event() for _ in range(5)] + [event(due_in=600)]
    results, leased = await db.write(enqueue_in, batch, claim=3, lease=LEASE)
    assert [r.kind for r in results] == ["created"] * 6
    assert [c.pkey for c in leased] == [e.pkey for e in batch[:3]]
    assert all(c.attempts == 1 for c in leased)
    # The other two due ones are in the queue; the scheduled one is not due.
    claimed = await db.write(claim_in, 10, LEASE)
    assert {c.pkey for c in claimed} == {e.pkey for e in batch[3:5]}


async def test_idempotency_keys_within_and_across_batches(db: Database) -> None:
    a1 = event(key="k1", fingerprint="f1")
    a2 = event(key="k1", fingerprint="f1")  # same request again, same batch
    b = event(key="k1", fingerprint="other")
    results, _ = await db.write(enqueue_in, [a1, a2, b])
    assert [r.kind for r in results] == ["created", "replay", "mismatch"]
    assert results[1].response == a1.response
    again, _ = await db.write(enqueue_in, [event(key="k1", fingerprint="f1")])
    assert again[0].kind == "replay"
    assert again[0].response == a1.response
    assert len(await db.write(claim_in, 10, LEASE)) == 1


def batch_of(size: int, key: str | None, fingerprint: str | None) -> NewBatch:
    items = tuple(event() for _ in range(size))
    return NewBatch(items, {"items": [e.pkey for e in items]}, key, fingerprint)


async def test_a_batch_goes_in_whole_under_its_one_key(db: Database) -> None:
    first = batch_of(3, "kb", "fb")
    single = event(key="ks", fingerprint="fs")
    results = (await db.write(enqueue.enqueue_in, [first, single], claim=2, lease=LEASE)).results
    assert [(r.kind, r.response) for r in results] == [
        ("created", first.response),
        ("created", single.response),
    ]
    # Its events are leased at insert like any other's; the rest wait in the queue.
    queued = await db.write(claim_in, 10, LEASE)
    assert len(queued) == 2

    again = batch_of(3, "kb", "fb")  # the same request again: its first answer, nothing new
    other = batch_of(2, "kb", "other")
    results = (await db.write(enqueue.enqueue_in, [again, other])).results
    assert [(r.kind, r.response) for r in results] == [
        ("replay", first.response),
        ("mismatch", first.response),
    ]
    assert await db.write(claim_in, 10, LEASE) == []
    unkeyed = batch_of(2, None, None)
    results = (await db.write(enqueue.enqueue_in, [unkeyed])).results
    assert [r.kind for r in results] == ["created"]
    assert len(await db.write(claim_in, 10, LEASE)) == 2


async def test_expired_queued_events_become_too_old(db: Database) -> None:
    now = utcnow()
    stale = event()
    await db.write(enqueue_in, [stale])
    assert await db.write(expire_queued, now + timedelta(hours=2)) == 1
    row = await db.read(get_event, "EVTtest", stale.pkey)
    assert row.status == "tooOld"


async def test_an_event_that_expires_while_retried_keeps_its_last_error(db: Database) -> None:
    """`tooOld` says the error the event was being retried for, whether the sweep finds it
    expired or a claim does (its dispatcher words the outcome from the claimed reason)."""
    now = utcnow()
    never, retried, claimed_late = event(), event(), event()
    last = "retrying: 451 4.3.0 Try 100% later_"  # LIKE's wildcards: taken as they are

    def retried_for(conn: Connection, pkey: str) -> None:
        conn.execute(sa.update(events).where(events.c.pkey == pkey).values(reason=last))

    await db.write(enqueue_in, [never, retried])
    await db.write(retried_for, retried.pkey)
    changed = await db.write(housekeeping.expire_queued, now + timedelta(hours=2))
    reasons = {c.pkey: c.reason for c in changed.changes}  # as webhooks announce them
    assert reasons == {
        never.pkey: "expired before it could be sent",
        retried.pkey: "expired while retrying: 451 4.3.0 Try 100% later_",
    }
    for pkey, reason in reasons.items():
        assert (await db.read(get_event, "EVTtest", pkey)).reason == reason
    await db.write(enqueue_in, [claimed_late])
    await db.write(retried_for, claimed_late.pkey)
    [claimed] = await db.write(claim_in, 10, LEASE)
    assert (claimed.pkey, claimed.reason) == (claimed_late.pkey, last)
    assert expired_reason(claimed.reason) == "expired while retrying: 451 4.3.0 Try 100% later_"


def test_sqlite_datetimes_are_stored_in_sqlalchemys_own_format() -> None:
    from datetime import UTC, datetime, timezone

    from sqlalchemy.dialects.sqlite import DATETIME
    from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect

    from txmsg.store.tables import UTCDateTime

    ours = UTCDateTime().bind_processor(sqlite_dialect())
    reference = DATETIME().bind_processor(sqlite_dialect())
    for value in (
        datetime(2026, 11, 23, 15, 0, 0, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=timezone(timedelta(hours=2))),
        datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-5))),
    ):
        assert ours(value) == reference(value.astimezone(UTC).replace(tzinfo=None))
    assert ours(None) is None


def executed(conn: Connection, marker: str, fn: Any, *args: Any) -> list[tuple[str, bool]]:
    """Run `fn(conn, *args)`; the (statement, executemany?) pairs it sent holding `marker`."""
    seen: list[tuple[str, bool]] = []

    def record(_c: Any, _cur: Any, statement: str, _p: Any, _ctx: Any, many: bool) -> None:
        if marker in statement:
            seen.append((statement, many))

    sa_event.listen(conn, "before_cursor_execute", record)
    try:
        fn(conn, *args)
    finally:
        sa_event.remove(conn, "before_cursor_execute", record)
    return seen


async def test_a_large_batch_is_stored_whole_in_few_statements(db: Database) -> None:
    """SQLite takes a batch's rows as multi-row INSERTs (64 rows at most each); every column
    of every row comes back as written, on both engines."""
    batch = [event(due_in=i % 3) for i in range(1234)]
    batch = [
        replace(
            e,
            ctx={"n": i, "name": "Zoë ✓", "nested": [i, None]},
            scheduled_at=e.due_at if i % 2 else None,
            mobile_phone="+15005550006" if i % 5 == 0 else None,
            status=EventStatus.PAUSED if i % 7 == 0 else EventStatus.PENDING,
        )
        for i, e in enumerate(batch)
    ]
    inserts = await db.write(executed, "INSERT INTO events", enqueue_in, batch)
    if db.is_sqlite:
        assert [many for _, many in inserts] == [False] * 20  # 19 of 64 rows, then 18
        assert len({statement for statement, _ in inserts}) == 2
    else:
        assert len(inserts) == 1  # one executemany: the driver pipelines it
    rows = await db.read(lambda conn: {r.pkey: r for r in conn.execute(sa.select(events)).all()})
    assert len(rows) == len(batch)
    for e in batch:
        row = rows[e.pkey]
        assert (row.ctx, row.scheduled_at, row.mobile_phone, row.status, row.attempts) == (
            e.ctx,
            e.scheduled_at,
            e.mobile_phone,
            e.status.value,
            0,
        )
        assert (row.event_date, row.expires_at, row.due_at) == (
            e.event_date,
            e.expires_at,
            e.due_at,
        )


async def test_outcomes_of_a_batch_are_one_statement(db: Database) -> None:
    first = event()
    await db.write(enqueue_in, [first])
    claimed = await db.write(claim_in, 10, LEASE)
    assert [c.pkey for c in claimed] == [first.pkey]
    more = [event() for _ in range(3)]
    await db.write(enqueue_in, more)
    claimed += await db.write(claim_in, 10, LEASE)
    outcomes = [
        Outcome(c.id, c.lease_token, EventStatus.PROCESSED, None, message_version=1)
        for c in claimed
    ]
    updates = await db.write(executed, "UPDATE events SET status", record_outcomes_in, outcomes)
    # SQLite: one statement joining the outcomes as a VALUES table; else one executemany.
    assert [many for _, many in updates] == ([False] if db.is_sqlite else [True])
    statuses = await db.read(
        lambda conn: {r.status for r in conn.execute(sa.select(events.c.status)).all()}
    )
    assert statuses == {"processed"}


async def test_outcomes_apply_field_by_field_and_only_under_their_lease(db: Database) -> None:
    """150 outcomes (SQLite: three statements) of every shape: each lands on its own event,
    a stale lease token changes nothing, a retry moves due_at and an absent due_at keeps it."""
    batch = [event() for _ in range(150)]
    await db.write(enqueue_in, batch)
    claimed = await db.write(claim_in, 200, LEASE)
    assert len(claimed) == 150
    retry_at = utcnow() + timedelta(minutes=5)
    sent_at = utcnow()
    outcomes: list[Outcome] = []
    for i, c in enumerate(claimed):
        if i % 5 == 0:
            outcomes.append(Outcome(c.id, "stale-token", EventStatus.PROCESSED))
        elif i % 3 == 0:
            outcomes.append(
                Outcome(c.id, c.lease_token, EventStatus.PENDING, f"retry {i}", due_at=retry_at)
            )
        else:
            outcomes.append(
                Outcome(
                    c.id,
                    c.lease_token,
                    EventStatus.PROCESSED if i % 2 else EventStatus.DELIVERY_FAILED,
                    None if i % 2 else f"550 no such user {i}",
                    message_version=i,
                    sent_at=sent_at if i % 2 else None,
                    provider_message_id=f"SM{i:032d}" if i % 7 == 1 else None,
                    profile_id=f"profile-{i}" if i % 4 == 1 else None,
                )
            )
    await db.write(record_outcomes_in, outcomes)
    rows = await db.read(lambda conn: {r.id: r for r in conn.execute(sa.select(events)).all()})
    originals = {e.pkey: e for e in batch}
    for o, c in zip(outcomes, claimed, strict=True):
        row = rows[c.id]
        if o.lease_token == "stale-token":
            assert (row.status, row.lease_token, row.reason) == ("processing", c.lease_token, None)
            continue
        expected_due = o.due_at or originals[c.pkey].due_at
        assert (row.status, row.reason, row.due_at) == (o.status.value, o.reason, expected_due)
        assert (row.message_version, row.sent_at) == (o.message_version, o.sent_at)
        assert (row.provider_message_id, row.profile_id) == (o.provider_message_id, o.profile_id)
        assert (row.lease_token, row.lease_until) == (None, None)


async def test_a_repeated_outcome_applies_and_counts_once(db: Database) -> None:
    await db.write(enqueue_in, [event()])
    [claimed] = await db.write(claim_in, 10, LEASE)
    first = Outcome(claimed.id, claimed.lease_token, EventStatus.PROCESSED, None, message_version=1)
    again = Outcome(claimed.id, claimed.lease_token, EventStatus.DELIVERY_FAILED, "second")
    await db.write(record_outcomes_in, [first, again])
    row = await db.read(
        lambda conn: conn.execute(sa.select(events).where(events.c.id == claimed.id)).one()
    )
    assert (row.status, row.reason) == ("processed", None)
    counts = await db.read(
        lambda conn: conn.execute(sa.select(report_days.c.metric, report_days.c.count)).all()
    )
    assert sorted(tuple(c) for c in counts) == [("sent", 1)]


async def test_a_claim_takes_at_most_its_bulk_limit_of_bulk_events(db: Database) -> None:
    await db.write(enqueue_in, [event(PRIORITY_BULK) for _ in range(20)])
    urgent = [event(PRIORITY_TRANSACTIONAL) for _ in range(3)]
    await db.write(enqueue_in, urgent)

    def claim(conn: Connection, limit: int, bulk_limit: int) -> list[ClaimedEvent]:
        return claims.claim_in(conn, limit, LEASE, bulk_limit=bulk_limit).events

    first = await db.write(claim, 10, 4)  # the transactional lane first, then 4 bulk events
    assert {c.pkey for c in urgent} <= {c.pkey for c in first}
    assert [c.bulk for c in first].count(True) == 4 and len(first) == 7
    assert await db.write(claim, 10, 0) == []  # no room for bulk: nothing else is due
    rest = await db.write(claim, 30, 30)
    assert len(rest) == 16 and all(c.bulk for c in rest)


async def test_fresh_bulk_events_are_inserted_leased_up_to_their_bound(db: Database) -> None:
    batch = [event(PRIORITY_BULK) for _ in range(4)] + [event(PRIORITY_TRANSACTIONAL)]
    _, leased = await db.write(enqueue_in, batch, claim=4, bulk_claim=2, lease=LEASE)
    # Two bulk events (the bound), and the transactional one in the room left.
    assert [c.pkey for c in leased] == [e.pkey for e in batch[:2]] + [batch[4].pkey]
    assert [c.bulk for c in leased] == [True, True, False]
