"""The write cycle: what it leases and applies, and the report counts and webhook calls it
writes in the same transaction."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from queue_support import LEASE, event_row, hook, new_event
from sqlalchemy.engine import Connection

from txmsg.core.queue import Outcome
from txmsg.core.statuses import EventStatus
from txmsg.core.timeutil import utcnow
from txmsg.store import webhook_outbox
from txmsg.store.db import Database
from txmsg.store.queue import claims, leases
from txmsg.store.queue.cycle import CycleRequest, write_cycle
from txmsg.store.tables import report_days


def counts(conn: Connection) -> dict[str, int]:
    """Every event's and day's counts, summed per metric."""
    totals: Counter[str] = Counter()
    for r in conn.execute(sa.select(report_days.c.metric, report_days.c.count)):
        totals[r.metric] += r.count
    return dict(totals)


def calls(conn: Connection, event_id: str) -> list[tuple[str, str | None]]:
    return [(r.pkey, r.status) for r in webhook_outbox.pending(conn, event_id)]


async def test_the_cycle_leases_fresh_events_and_announces_them(db: Database) -> None:
    await db.write(hook, "EVThooked")
    due = [new_event("EVThooked", announce=True) for _ in range(3)]
    scheduled = new_event("EVThooked", due_in=600, announce=True)
    # The scheduled one first: room is left for it, yet it is not due, so it waits queued.
    result = await db.write(write_cycle, CycleRequest(new=[scheduled, *due], free=2, lease=LEASE))
    assert [r.kind for r in result.results] == ["created"] * 4
    assert [c.pkey for c in result.leased] == [e.pkey for e in due[:2]]
    assert result.claimed == [] and result.decisions == []
    assert Counter(status for _, status in await db.read(calls, "EVThooked")) == {
        "pending": 4,
        "processing": 2,
    }
    # The next cycle claims the due one left in the queue first, then leases nothing new.
    later = new_event("EVThooked")
    result = await db.write(
        write_cycle, CycleRequest(new=[later], free=1, claim_limit=1, lease=LEASE)
    )
    assert [c.pkey for c in result.claimed] == [due[2].pkey]
    assert result.leased == []
    assert (await db.read(event_row, later.pkey)).status == "pending"
    assert (await db.read(event_row, scheduled.pkey)).status == "pending"
    # The claim announces its event's `processing` too (`later` does not announce itself).
    assert (await db.read(calls, "EVThooked"))[6:] == [(due[2].pkey, "processing")]


async def test_outcomes_are_counted_and_announced_with_their_status(db: Database) -> None:
    await db.write(hook, "EVThooked")
    hooked, plain = new_event("EVThooked"), new_event("EVTplain")
    first = await db.write(write_cycle, CycleRequest(new=[hooked, plain], free=2, lease=LEASE))
    sent = utcnow()
    done = [
        Outcome(
            c.id,
            c.lease_token,
            EventStatus.PROCESSED,
            message_version=3,
            sent_at=sent,
            delivered=True,
        )
        for c in first.leased
    ]
    await db.write(write_cycle, CycleRequest(outcomes=done))
    assert await db.read(counts) == {"sent": 2, "delivered": 2}
    day = await db.read(
        lambda conn: conn.execute(
            sa.select(report_days.c.event_id, report_days.c.day, report_days.c.message_version)
        ).all()
    )
    assert {tuple(r) for r in day} == {("EVThooked", sent.date(), 3), ("EVTplain", sent.date(), 3)}
    assert await db.read(calls, "EVThooked") == [(hooked.pkey, "processed")]
    assert await db.read(calls, "EVTplain") == []


async def test_a_stale_outcome_changes_nothing_and_is_neither_counted_nor_announced(
    db: Database,
) -> None:
    await db.write(hook, "EVThooked")
    item = new_event("EVThooked")
    await db.write(write_cycle, CycleRequest(new=[item]))
    [lost] = (await db.write(claims.claim_in, 1, timedelta(seconds=-1))).events
    await db.write(leases.release_expired_in)  # its worker is presumed dead
    again = await db.write(write_cycle, CycleRequest(claim_limit=1, free=1, lease=LEASE))
    [current] = again.claimed
    before = await db.read(calls, "EVThooked")
    late = Outcome(lost.id, lost.lease_token, EventStatus.DELIVERY_FAILED, "late", sent_at=utcnow())
    await db.write(write_cycle, CycleRequest(outcomes=[late]))
    row = await db.read(event_row, item.pkey)
    assert (row.status, row.reason, row.lease_token) == ("processing", None, current.lease_token)
    assert await db.read(counts) == {}
    assert await db.read(calls, "EVThooked") == before
    # The current lease's outcome applies, once, counted and announced.
    done = Outcome(current.id, current.lease_token, EventStatus.DELIVERY_FAILED, "550 unknown")
    await db.write(write_cycle, CycleRequest(outcomes=[done, late, done]))
    row = await db.read(event_row, item.pkey)
    assert (row.status, row.reason, row.lease_token) == ("deliveryFailed", "550 unknown", None)
    assert await db.read(counts) == {"failed": 1}
    assert (await db.read(calls, "EVThooked"))[len(before) :] == [(item.pkey, "deliveryFailed")]


async def test_the_cycle_renews_leases_still_held(db: Database) -> None:
    first = await db.write(write_cycle, CycleRequest(new=[new_event()], free=1, lease=LEASE))
    [held] = first.leased
    until = utcnow() + timedelta(minutes=5)
    renewals = [(held.id, held.lease_token), (held.id, "not-the-token")]
    await db.write(write_cycle, CycleRequest(renewals=renewals, renewed_until=until))
    row: Any = await db.read(event_row, held.pkey)
    assert (row.lease_until, row.lease_token) == (until, held.lease_token)
