"""The webhook sender's claims: each event configuration within its cap, one at its cap
skipped whatever its backlog, no call leased twice; the calls a stop cuts short due at once."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from queue_support import hook

from helpers import wait_until
from txmsg.core.reports import StatusChange
from txmsg.core.retry import RetryPolicy
from txmsg.core.timeutil import utcnow
from txmsg.engine.webhooks import WebhookSender
from txmsg.store import webhook_outbox
from txmsg.store.db import Database
from txmsg.store.tables import event_webhooks
from txmsg.store.webhook_outbox import Ask, Delivery, Settlement
from webhook_support import Receiver

LEASE = timedelta(minutes=1)


def queue(conn: Any, event_id: str, n: int) -> None:
    now = utcnow()
    changes = [StatusChange(f"{event_id}-{i}", event_id, "pending", now) for i in range(n)]
    webhook_outbox.queue_status_changes(conn, changes)


def by_config(claimed: list[Delivery]) -> Counter[str]:
    return Counter(d.event_id for d in claimed)


async def test_claims_keep_each_configuration_within_its_cap(db: Database) -> None:
    def setup(conn: Any) -> None:
        hook(conn, "EVTslow")
        hook(conn, "EVTfast")
        queue(conn, "EVTslow", 30)  # the older: a lock-step pick of 10 took only these
        queue(conn, "EVTfast", 3)

    await db.write(setup)
    now = db.clock.now() + timedelta(seconds=1)

    def ask(limit: int = 10, **busy: int) -> Ask:
        return Ask(limit=limit, cap=5, busy=busy, lease=LEASE, now=now)

    # The slow configuration's backlog, older, filled the first pick: the claim looked again
    # without it.
    first = await db.write(webhook_outbox.claim, ask())
    assert by_config(first) == {"EVTslow": 5, "EVTfast": 3}
    # At its cap in this process, a configuration is skipped, however many calls it has due.
    assert await db.write(webhook_outbox.claim, ask(EVTslow=5, EVTfast=3)) == []
    # Below its cap, it gets the room left, none of the calls leased before.
    second = await db.write(webhook_outbox.claim, ask(EVTslow=3, EVTfast=3))
    assert by_config(second) == {"EVTslow": 2}
    leased = {d.id for d in first + second}
    assert len(leased) == 10
    # The limit binds first.
    third = await db.write(webhook_outbox.claim, ask(limit=2))
    assert by_config(third) == {"EVTslow": 2}
    assert not leased & {d.id for d in third}

    # A stop: what ended is settled, what it cut short is due at once, its attempt uncounted.
    delivered, cut = first[0], first[1]
    failed = first[2]
    settlement = Settlement(
        done=[delivered.id], retry=[(failed.id, now + LEASE, "HTTP 500")], released=[cut.id]
    )
    await db.write(webhook_outbox.settle, settlement, db.clock.now())
    everything = Ask(limit=100, cap=100, busy={}, lease=LEASE, now=now)
    again = await db.write(webhook_outbox.claim, everything)
    assert cut.id in {d.id for d in again}
    assert {d.id for d in again}.isdisjoint({delivered.id, failed.id})
    [back] = [d for d in again if d.id == cut.id]
    assert back.attempts == cut.attempts
    rows = {r.id: r for r in await db.read(webhook_outbox.pending, failed.event_id)}
    assert delivered.id not in rows and rows[failed.id].last_error == "HTTP 500"


async def test_a_stop_releases_the_calls_it_cut_short(db: Database, receiver: Receiver) -> None:
    """Calls under way when the sender stops are due at once (not after their lease), their
    attempt not counted."""

    def setup(conn: Any) -> None:
        hook(conn, "EVTslow")
        conn.execute(sa.update(event_webhooks).values(url=receiver.url))
        queue(conn, "EVTslow", 3)

    await db.write(setup)
    receiver.hold = asyncio.Event()
    sender = WebhookSender(db, RetryPolicy(), poll_interval=0.05, timeout=5.0)
    sender.start()
    try:
        await wait_until(lambda: len(receiver.arrivals) == 3, what="the calls at the receiver")
    finally:
        await sender.stop()
    rows = await db.read(webhook_outbox.pending, "EVTslow")
    assert len(rows) == 3
    assert all(r.attempts == 0 and r.due_at <= db.clock.now() for r in rows), rows


async def test_a_stop_as_a_call_lands_ends_the_sender(db: Database) -> None:
    """A stop coming just as a call ends (the sender's wait for it over, the sender not yet
    resumed) ends the sender: Python 3.11's `wait_for` swallowed that cancellation, and the stop
    waited forever while the sender went on claiming and calling."""
    sender = WebhookSender(db, RetryPolicy(), poll_interval=30.0, timeout=5.0)
    sender.start()
    await asyncio.sleep(0.3)  # nothing due: the sender waits for a call to end
    sender._wake.set()  # a call ended
    await asyncio.sleep(0)  # the wait for it is over; the sender resumes next
    stopping = asyncio.create_task(sender.stop())
    # Not `wait_for(stop)`: the stop waits for the sender's loop, and a wait_for's cancellation
    # would end that wait (stopped or not).
    done, _ = await asyncio.wait([stopping], timeout=5)
    assert done, "the sender's loop still ran 5 s after the stop"
    await stopping
