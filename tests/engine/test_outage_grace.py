"""After a database outage, the housekeeping sweep leaves the leases that ended during it to
their workers for one lease time: none could renew them while no process reached the
database, and the sends they made meanwhile are recorded once it is back (released at once,
those events were claimed and sent a second time). Other lapsed leases (a dead worker's) are
released as usual, and an outage right after holds none for longer."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sqlalchemy.engine import Connection

from helpers import queued_event
from txmsg.engine.scheduler import Scheduler
from txmsg.store.db import Database
from txmsg.store.events import get_event
from txmsg.store.queue import enqueue

INTERVAL = 0.05
LEASE = timedelta(seconds=3)  # the scheduler's: the grace after an outage


class Away(Database):
    """A database every read and write of this process fails to reach while `away`."""

    away = False

    async def write(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if self.away:
            raise ConnectionRefusedError("the database is away")
        return await super().write(fn, *args, **kwargs)

    async def read(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if self.away:
            raise ConnectionRefusedError("the database is away")
        return await super().read(fn, *args, **kwargs)


def leased(conn: Connection, pkey: str, lease: timedelta) -> None:
    """An event another worker leased at insert, for `lease`."""
    new = enqueue.enqueue_in(conn, [queued_event("EVTx", pkey=pkey)], claim=1, lease=lease)
    assert len(new.leased) == 1


async def status(db: Database, pkey: str) -> str:
    row = await db.read(get_event, "EVTx", pkey)
    return str(row.status)


async def until_pending(db: Database, pkey: str, timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while await status(db, pkey) != "pending":
        assert asyncio.get_running_loop().time() < deadline, f"{pkey} not released"
        await asyncio.sleep(0.02)


async def test_leases_that_ended_during_an_outage_wait_a_lease_time_for_their_workers(
    db: Database, database_url: str
) -> None:
    this = Away(database_url, timeout=0.5)
    await this.sync_clock()
    scheduler = Scheduler(this, INTERVAL, lambda: None, lease=LEASE)
    scheduler.start()
    try:
        await db.write(leased, "DEAD", timedelta(seconds=0.05))  # its worker died: it ends now
        await asyncio.sleep(0.5)  # swept: the sweeps run
        assert await status(db, "DEAD") == "pending"
        this.away = True
        await db.write(leased, "ALIVE", timedelta(seconds=0.3))  # cut off too: ends in it
        await asyncio.sleep(1.0)  # the outage
        this.away = False
        back = asyncio.get_running_loop().time()
        await asyncio.sleep(0.3)  # sweeps that reach the database again
        # ALIVE's worker records what it sent meanwhile: its lease is left alone a while.
        assert await status(db, "ALIVE") == "processing"
        while asyncio.get_running_loop().time() - back < LEASE.total_seconds() / 2:
            assert await status(db, "ALIVE") == "processing"
            await asyncio.sleep(INTERVAL)
        # A second outage before the first's lease time is over: it holds the leases that
        # end in it, and ALIVE's no longer than the first's lease time (it was held on from
        # the second outage's end: the first one's start was kept, the grace begun anew).
        await asyncio.sleep(back + 0.8 * LEASE.total_seconds() - asyncio.get_running_loop().time())
        this.away = True
        await asyncio.sleep(0.3)
        this.away = False
        await until_pending(db, "ALIVE", timeout=LEASE.total_seconds() + 5)
        assert asyncio.get_running_loop().time() - back < LEASE.total_seconds() + 1.5
    finally:
        await scheduler.stop()
        await this.dispose()
