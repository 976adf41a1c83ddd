"""Leases are compared against the database's clock: a process whose own clock runs ten
minutes ahead neither releases nor re-claims another process's live lease."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest_asyncio
import sqlalchemy as sa

from helpers import queued_event
from txmsg.core.timeutil import utcnow
from txmsg.engine.leases import LeaseBook
from txmsg.engine.scheduler import Scheduler
from txmsg.store.db import Database
from txmsg.store.queue.cycle import CycleRequest, write_cycle
from txmsg.store.tables import events

SKEW = timedelta(minutes=10)
LEASE = timedelta(seconds=30)


@pytest_asyncio.fixture
async def skewed(db: Database) -> AsyncIterator[Database]:
    """Another process on the same database, its clock SKEW ahead."""
    database = Database(db.url, local_clock=lambda: utcnow() + SKEW)
    try:
        yield database
    finally:
        await database.dispose()


def _claim(db: Database) -> CycleRequest:
    return CycleRequest(claim_limit=10, lease=LEASE, now=db.clock.now())


async def test_a_skewed_process_does_not_take_a_live_lease(db: Database, skewed: Database) -> None:
    await db.sync_clock()
    await skewed.sync_clock()
    assert abs(skewed.clock.offset + SKEW) < timedelta(seconds=1)
    assert db.clock.offset == timedelta(0)  # in step: this machine's clock as it is
    new = queued_event("EVTq")
    await db.write(write_cycle, CycleRequest(new=[new]))
    [held] = (await db.write(write_cycle, _claim(db))).claimed
    # Its own clock is past the lease's end: by it, the lease would have expired.
    assert utcnow() + SKEW > held.lease_until
    # The skewed process's housekeeping and claim leave the lease alone.
    await Scheduler(skewed, 60, lambda: None).run_once()
    assert (await skewed.write(write_cycle, _claim(skewed))).claimed == []
    row = await db.read(
        lambda c: c.execute(sa.select(events).where(events.c.pkey == new.pkey)).one()
    )
    assert (row.status, row.lease_token) == ("processing", held.lease_token)
    # Its lease book sees the lease as held, and not yet due for renewal.
    book = LeaseBook(max_in_flight=4, lease=LEASE, clock=skewed.clock.now)
    book.consume(lambda _events: None)
    book.hand_over([held])
    assert not book.lost(held)
    assert book.leases_to_renew() == ([], None)


async def test_a_lease_ended_by_the_database_clock_is_released(
    db: Database, skewed: Database
) -> None:
    await skewed.sync_clock()
    new = queued_event("EVTq")
    await db.write(write_cycle, CycleRequest(new=[new]))
    await db.write(write_cycle, _claim(db))
    ended = utcnow() - timedelta(seconds=1)
    await db.write(lambda c: c.execute(sa.update(events).values(lease_until=ended)))
    await Scheduler(skewed, 60, lambda: None).run_once()
    assert [e.pkey for e in (await skewed.write(write_cycle, _claim(skewed))).claimed] == [new.pkey]
