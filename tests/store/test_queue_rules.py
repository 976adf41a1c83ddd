"""The queue package's rules, store function by store function, on both engines."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, timedelta

import pytest
import sqlalchemy as sa
from queue_support import LEASE, event_row, hook, new_event
from sqlalchemy.engine import Connection

from txmsg.core.queue import PRIORITY_BULK, PRIORITY_TRANSACTIONAL
from txmsg.core.statuses import EventStatus
from txmsg.core.timeutil import utcnow
from txmsg.store.db import Database
from txmsg.store.queue import claims, enqueue, housekeeping, leases
from txmsg.store.queue.idempotency import IDEMPOTENCY_WINDOW
from txmsg.store.tables import events, idempotency_keys, messages


async def test_an_idempotency_key_replays_refuses_and_expires(db: Database) -> None:
    first = new_event(idempotency_key="order-1", fingerprint="body-a")
    [created] = (await db.write(enqueue.enqueue_in, [first])).results
    assert (created.kind, created.response) == ("created", first.response)
    same = new_event(idempotency_key="order-1", fingerprint="body-a")
    other = new_event(idempotency_key="order-1", fingerprint="body-b")
    answers = (await db.write(enqueue.enqueue_in, [same, other])).results
    assert [(a.kind, a.response) for a in answers] == [
        ("replay", first.response),
        ("mismatch", first.response),
    ]

    def age_keys(conn: Connection) -> None:
        old = utcnow() - IDEMPOTENCY_WINDOW - timedelta(minutes=1)
        conn.execute(sa.update(idempotency_keys).values(created_at=old))

    await db.write(age_keys)
    # Past the window the key is free again: the next request is its new authority.
    later = new_event(idempotency_key="order-1", fingerprint="body-b")
    answers = (await db.write(enqueue.enqueue_in, [later, first])).results
    assert [(a.kind, a.response) for a in answers] == [
        ("created", later.response),
        ("mismatch", later.response),
    ]
    stored = await db.read(lambda conn: conn.execute(sa.select(events.c.pkey)).scalars().all())
    assert sorted(stored) == sorted([first.pkey, later.pkey])
    assert (
        await db.write(housekeeping.purge_idempotency_keys, utcnow() + 2 * IDEMPOTENCY_WINDOW) == 1
    )


async def test_claims_go_by_priority_then_due_time(db: Database) -> None:
    bulk_old = new_event(priority=PRIORITY_BULK, due_in=-20)
    bulk_new = new_event(priority=PRIORITY_BULK, due_in=-10)
    urgent_new = new_event(priority=PRIORITY_TRANSACTIONAL, due_in=-1)
    urgent_old = new_event(priority=PRIORITY_TRANSACTIONAL, due_in=-5)
    await db.write(enqueue.enqueue_in, [bulk_new, urgent_new, bulk_old, urgent_old])
    order = []
    for _ in range(5):
        order += [c.pkey for c in (await db.write(claims.claim_in, 1, LEASE)).events]
    assert order == [urgent_old.pkey, urgent_new.pkey, bulk_old.pkey, bulk_new.pkey]


async def test_a_claim_skips_events_not_due_paused_or_leased(db: Database) -> None:
    leased = new_event()
    [held] = (await db.write(enqueue.enqueue_in, [leased], claim=1, lease=LEASE)).leased
    assert held.pkey == leased.pkey
    due = new_event()
    later = new_event(due_in=3600)
    paused = new_event(status=EventStatus.PAUSED)
    await db.write(enqueue.enqueue_in, [later, due, paused])
    claimed = await db.write(claims.claim_in, 10, LEASE)
    assert [c.pkey for c in claimed.events] == [due.pkey]
    assert (await db.write(claims.claim_in, 10, LEASE)).events == []
    row = await db.read(event_row, leased.pkey)
    assert (row.status, row.lease_token, row.attempts) == ("processing", held.lease_token, 1)


async def test_claimed_events_carry_every_field_both_ways(db: Database) -> None:
    """Leased at insert or claimed from the queue, a claimed event is the event as queued:
    JSON, time zones and all (SQLite reads the claimed rows back in one step)."""
    now = utcnow()
    fresh = replace(
        new_event(),
        ctx={"name": "Zoë ✓", "items": [1, None, {"a": True}]},
        scheduled_at=now,
        mobile_phone="+15005550006",
    )
    queued = replace(fresh, pkey="PKQUEUED", response={"PKey": "PKQUEUED"})
    [at_insert] = (await db.write(enqueue.enqueue_in, [fresh], claim=1, lease=LEASE)).leased
    await db.write(enqueue.enqueue_in, [queued])
    [from_queue] = (await db.write(claims.claim_in, 1, LEASE)).events
    for claimed, item in ((at_insert, fresh), (from_queue, queued)):
        assert (claimed.pkey, claimed.event_id, claimed.email) == (item.pkey, "EVTq", item.email)
        assert (claimed.ctx, claimed.mobile_phone) == (item.ctx, item.mobile_phone)
        assert (claimed.event_date, claimed.scheduled_at, claimed.expires_at) == (
            item.event_date,
            item.scheduled_at,
            item.expires_at,
        )
        assert claimed.event_date.tzinfo is UTC and claimed.attempts == 1
        row = await db.read(event_row, item.pkey)
        assert (claimed.id, claimed.lease_token, claimed.lease_until) == (
            row.id,
            row.lease_token,
            row.lease_until,
        )


async def test_renewals_extend_only_the_leases_still_held(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    await db.write(enqueue.enqueue_in, [new_event(), new_event()])
    kept, lost = (await db.write(claims.claim_in, 10, LEASE)).events
    until = utcnow() + timedelta(minutes=10)
    renewed = await db.write(
        leases.renew_in, [(kept.id, kept.lease_token), (lost.id, "another-token")], until
    )
    assert renewed == {kept.id}
    assert (await db.read(event_row, kept.pkey)).lease_until == until
    assert (await db.read(event_row, lost.pkey)).lease_until == lost.lease_until
    # Runs past a statement's share of them are renewed too (the drivers bound parameters).
    monkeypatch.setattr(leases, "_RENEWALS_PER_STATEMENT", 1)
    later = until + timedelta(minutes=1)
    pairs = [(lost.id, "another-token"), (kept.id, kept.lease_token)]  # kept: the 2nd run
    assert await db.write(leases.renew_in, pairs, later) == {kept.id}
    assert (await db.read(event_row, kept.pkey)).lease_until == later


async def test_expired_leases_go_back_to_the_queue_announced(db: Database) -> None:
    await db.write(hook, "EVThooked")
    hooked = new_event("EVThooked")
    plain = new_event("EVTplain")
    await db.write(enqueue.enqueue_in, [hooked, plain])
    await db.write(claims.claim_in, 10, timedelta(seconds=-1))  # already expired
    current = new_event()
    await db.write(enqueue.enqueue_in, [current], claim=1, lease=LEASE)
    released = await db.write(leases.release_expired_in)
    assert released.count == 2
    assert [(c.pkey, c.status) for c in released.announced] == [(hooked.pkey, "pending")]
    assert "lease" in (released.announced[0].reason or "")
    for item in (hooked, plain):
        row = await db.read(event_row, item.pkey)
        assert (row.status, row.lease_token, row.lease_until) == ("pending", None, None)
    assert (await db.read(event_row, current.pkey)).status == "processing"
    again = await db.write(claims.claim_in, 10, LEASE)
    assert {c.pkey: c.attempts for c in again.events} == {hooked.pkey: 2, plain.pkey: 2}
    # Only the event with a webhook has its claim announced.
    assert [(c.pkey, c.status) for c in again.announced] == [(hooked.pkey, "processing")]


async def test_expired_queued_events_become_too_old_and_only_those(db: Database) -> None:
    await db.write(hook, "EVThooked")
    pending = new_event("EVThooked", expires_in=1)
    paused = new_event("EVTplain", expires_in=1, status=EventStatus.PAUSED)
    fresh = new_event("EVThooked")
    sending = new_event("EVTplain", expires_in=1)
    await db.write(enqueue.enqueue_in, [sending], claim=1, lease=LEASE)
    await db.write(enqueue.enqueue_in, [pending, paused, fresh])
    expired = await db.write(housekeeping.expire_queued, utcnow() + timedelta(seconds=5))
    assert expired.count == 2
    assert sorted((c.pkey, c.status) for c in expired.changes) == sorted(
        [(pending.pkey, "tooOld"), (paused.pkey, "tooOld")]
    )
    assert [c.pkey for c in expired.announced] == [pending.pkey]
    statuses = {
        item.pkey: (await db.read(event_row, item.pkey)).status
        for item in (pending, paused, fresh, sending)
    }
    assert statuses == {
        pending.pkey: "tooOld",
        paused.pkey: "tooOld",
        fresh.pkey: "pending",
        sending.pkey: "processing",
    }


async def test_paused_events_of_live_events_resume_announced(db: Database) -> None:
    """The housekeeping catch-all for a pause/resume race: only events whose configuration
    is published, with a published message, go back to the queue."""

    def publish_message(conn: Connection, event_id: str) -> None:
        now = utcnow()
        conn.execute(
            sa.insert(messages).values(
                event_id=event_id, draft={}, published_version=1, created_at=now, updated_at=now
            )
        )

    await db.write(hook, "EVThooked")
    await db.write(hook, "EVTdraft")  # published, but its message is not
    await db.write(publish_message, "EVThooked")
    live = new_event("EVThooked", status=EventStatus.PAUSED)
    draft = new_event("EVTdraft", status=EventStatus.PAUSED)
    await db.write(enqueue.enqueue_in, [live, draft])
    resumed = await db.write(housekeeping.resume_paused_of_live_events)
    assert resumed.count == 1
    assert [(c.pkey, c.status) for c in resumed.announced] == [(live.pkey, "pending")]
    assert (await db.read(event_row, live.pkey)).status == "pending"
    assert (await db.read(event_row, draft.pkey)).status == "paused"
    assert (await db.write(housekeeping.resume_paused_of_live_events)).count == 0
