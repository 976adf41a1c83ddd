"""After a database outage, the housekeeping sweep leaves the leases that ended during it to
their workers for one lease time: none could renew them while no process reached the
database, and the sends they made meanwhile are recorded once it is back (released at once,
those events were claimed and sent a second time). Leases that ended before the outage (a
dead worker's) are released as usual."""

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
LEASE = timedelta(seconds=2)  # the scheduler's: the grace after an outage


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
    await db.write(leased, "DEAD", timedelta(seconds=0.05))  # its worker died: it ends now
    await asyncio.sleep(0.8)  # well before the outage (its start is seen late: the margin)
    await db.write(leased, "ALIVE", timedelta(seconds=0.5))  # its worker is cut off too
    this = Away(database_url, timeout=0.5)
    await this.sync_clock()
    scheduler = Scheduler(this, INTERVAL, lambda: None, lease=LEASE)
    this.away = True
    scheduler.start()
    try:
        await asyncio.sleep(1.0)  # the outage: ALIVE's lease ends in it
        this.away = False
        back = asyncio.get_running_loop().time()
        await until_pending(db, "DEAD", timeout=5)
        # ALIVE's worker records what it sent meanwhile: its lease is left alone a while.
        while asyncio.get_running_loop().time() - back < LEASE.total_seconds() / 2:
            assert await status(db, "ALIVE") == "processing"
            await asyncio.sleep(INTERVAL)
        # Then, its worker silent all along, it is released as any lapsed lease is.
        await until_pending(db, "ALIVE", timeout=LEASE.total_seconds() + 5)
    finally:
        await scheduler.stop()
        await this.dispose()
