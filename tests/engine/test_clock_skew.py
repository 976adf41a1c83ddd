"""Leases are compared against the database's clock: a process whose own clock runs ten
minutes ahead neither releases nor re-claims another process's live lease."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime, timedelta

import pytest_asyncio
import sqlalchemy as sa

from helpers import queued_event, wait_until
from txmsg.core.timeutil import utcnow
from txmsg.engine.leases import LeaseBook
from txmsg.engine.scheduler import Scheduler
from txmsg.store.clock import DatabaseClock
from txmsg.store.db import Database
from txmsg.store.queue.cycle import CycleRequest, write_cycle
from txmsg.store.scheduler_lock import scheduler_lock_for
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


async def test_a_worker_without_the_scheduler_lock_follows_a_step_of_its_clock(
    db: Database,
) -> None:
    """The lock's holder reads the database's time in its sweep; a worker that does not hold
    it reads it at the same interval, so a step of its clock (NTP, a resumed VM) after it
    started does not outlive an interval in its claims and lease ends."""
    step = [timedelta(0)]
    stepped = Database(db.url, local_clock=lambda: utcnow() + step[0])
    held = scheduler_lock_for(db, ttl=60)  # another process's: this worker never holds it
    other = Scheduler(stepped, 0.05, lambda: None)
    try:
        assert await held.hold()
        await stepped.sync_clock()
        assert stepped.clock.offset == timedelta(0)
        other.start()
        step[0] = SKEW  # its clock jumps ten minutes ahead
        await wait_until(
            lambda: abs(stepped.clock.offset + SKEW) < timedelta(seconds=1),
            timeout=5,
            what="the worker's offset from the database's clock measured again",
        )
        assert abs(stepped.clock.now() - utcnow()) < timedelta(seconds=1)
    finally:
        await other.stop()
        await held.release()
        await stepped.dispose()


async def test_a_slow_read_of_the_database_clock_keeps_the_last_offset(db: Database) -> None:
    """Clocks in step, read under load: the read took 0.8 s, so the time read may be off by
    0.4 s either way. Taken as the offset, it would move every lease end by as much."""
    calls = iter([timedelta(seconds=-0.8), timedelta(0)])

    def local() -> datetime:
        # Before the read, then after it: as if the statement waited 0.8 s to be read and
        # the answer came at once. The midpoint of the two is 0.4 s behind the database.
        return utcnow() + next(calls)

    clock = DatabaseClock(local)
    server = await db.read(clock.sync_in)
    assert abs(server - utcnow()) < timedelta(seconds=1)
    assert clock.offset == timedelta(0)
    clock = DatabaseClock(lambda: utcnow() + SKEW)  # a quick read is used as ever
    await db.read(clock.sync_in)
    assert abs(clock.offset + SKEW) < timedelta(seconds=1)


async def test_a_sweep_leaves_the_late_leases_of_its_own_process(db: Database) -> None:
    """A lease that ended because its renewal came late (a loaded machine) is this process's
    still: its own sweep keeps it (the send under way would be made twice); another
    process's lease that ended is released as ever."""
    new = [queued_event("EVTq"), queued_event("EVTq")]
    await db.write(write_cycle, CycleRequest(new=new))
    mine = (await db.write(write_cycle, replace(_claim(db), claim_limit=1))).claimed
    theirs = (await db.write(write_cycle, replace(_claim(db), claim_limit=1))).claimed
    ended = utcnow() - timedelta(seconds=1)
    await db.write(lambda c: c.execute(sa.update(events).values(lease_until=ended)))
    book = LeaseBook(max_in_flight=4, lease=LEASE, clock=db.clock.now)
    book.consume(lambda _events: None)
    book.hand_over([replace(mine[0], lease_until=ended)])
    await Scheduler(db, 60, lambda: None, own_leases=book.tokens).run_once()
    rows = await db.read(
        lambda c: c.execute(sa.select(events.c.pkey, events.c.status, events.c.lease_token)).all()
    )
    assert {(r.pkey, r.status, r.lease_token) for r in rows} == {
        (mine[0].pkey, "processing", mine[0].lease_token),
        (theirs[0].pkey, "pending", None),
    }
    # Its renewal, late, keeps it.
    renewals, until = book.leases_to_renew()
    assert [i for i, _ in renewals] == [mine[0].id]
    result = await db.write(write_cycle, CycleRequest(renewals=renewals, renewed_until=until))
    assert result.renewed == {mine[0].id}
