"""The durable queue on both engines: priority, leases, outcomes, idempotency in a batch."""

from __future__ import annotations

from datetime import timedelta

from txmsg.core.queue import (
    PRIORITY_BULK,
    PRIORITY_TRANSACTIONAL,
    NewEvent,
    Outcome,
    new_pkey,
)
from txmsg.core.statuses import EventStatus
from txmsg.core.timeutil import utcnow
from txmsg.store import events as queue
from txmsg.store.db import Database

LEASE = timedelta(seconds=30)


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
    await db.write(queue.enqueue_in, bulk)
    urgent = [event(PRIORITY_TRANSACTIONAL) for _ in range(3)]
    await db.write(queue.enqueue_in, urgent)
    claimed = await db.write(queue.claim_in, 5, LEASE)
    assert {c.pkey for c in urgent} <= {c.pkey for c in claimed}
    assert len(claimed) == 5
    # Not yet due events stay in the queue.
    await db.write(queue.enqueue_in, [event(due_in=3600)])
    rest = await db.write(queue.claim_in, 100, LEASE)
    assert len(rest) == 48


async def test_a_lease_expires_and_the_event_is_claimed_again(db: Database) -> None:
    [item] = [event()]
    await db.write(queue.enqueue_in, [item])
    [first] = await db.write(queue.claim_in, 10, timedelta(seconds=-1))  # already expired
    assert await db.write(queue.claim_in, 10, LEASE) == []  # still 'processing'
    assert await db.write(queue.release_expired_leases) == 1
    [second] = await db.write(queue.claim_in, 10, LEASE)
    assert second.pkey == item.pkey
    assert second.attempts == 2
    # The first worker's late outcome no longer applies: its lease token is stale.
    late = Outcome(first.id, first.lease_token, EventStatus.DELIVERY_FAILED, "late")
    await db.write(queue.record_outcomes_in, [late])
    done = Outcome(
        second.id, second.lease_token, EventStatus.PROCESSED, message_version=1, sent_at=utcnow()
    )
    await db.write(queue.record_outcomes_in, [done])
    row = await db.read(queue.get_event, "EVTtest", item.pkey)
    assert row.status == "processed"
    assert row.reason is None
    assert row.lease_token is None


async def test_fresh_events_are_inserted_leased_up_to_the_claim(db: Database) -> None:
    batch = [event() for _ in range(5)] + [event(due_in=600)]
    results, leased = await db.write(queue.enqueue_in, batch, claim=3, lease=LEASE)
    assert [r.kind for r in results] == ["created"] * 6
    assert [c.pkey for c in leased] == [e.pkey for e in batch[:3]]
    assert all(c.attempts == 1 for c in leased)
    # The other two due ones are in the queue; the scheduled one is not due.
    claimed = await db.write(queue.claim_in, 10, LEASE)
    assert {c.pkey for c in claimed} == {e.pkey for e in batch[3:5]}


async def test_idempotency_keys_within_and_across_batches(db: Database) -> None:
    a1 = event(key="k1", fingerprint="f1")
    a2 = event(key="k1", fingerprint="f1")  # same request again, same batch
    b = event(key="k1", fingerprint="other")
    results, _ = await db.write(queue.enqueue_in, [a1, a2, b])
    assert [r.kind for r in results] == ["created", "replay", "mismatch"]
    assert results[1].response == a1.response
    again, _ = await db.write(queue.enqueue_in, [event(key="k1", fingerprint="f1")])
    assert again[0].kind == "replay"
    assert again[0].response == a1.response
    assert len(await db.write(queue.claim_in, 10, LEASE)) == 1


async def test_expired_queued_events_become_too_old(db: Database) -> None:
    now = utcnow()
    stale = event()
    await db.write(queue.enqueue_in, [stale])
    assert await db.write(queue.expire_queued, now + timedelta(hours=2)) == 1
    row = await db.read(queue.get_event, "EVTtest", stale.pkey)
    assert row.status == "tooOld"


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
