"""PostgreSQL: housekeeping never waits for the events a write cycle holds, so the two never
deadlock (the sweep used to lock expired leases in scan order while a cycle recording their
outcomes locked them in another)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
from queue_support import event_row, new_event

from txmsg.store.db import Database
from txmsg.store.queue import claims, enqueue, leases


def asyncpg_dsn(db: Database) -> str:
    return db.url.replace("postgresql+asyncpg://", "postgresql://")


async def test_housekeeping_leaves_the_events_a_cycle_holds_to_the_next_sweep(
    db: Database,
) -> None:
    held, free = new_event(), new_event()
    await db.write(enqueue.enqueue_in, [held, free])
    await db.write(claims.claim_in, 10, timedelta(seconds=-1))  # both leases already ended
    held_id = (await db.read(event_row, held.pkey)).id
    cycle = await asyncpg.connect(asyncpg_dsn(db))
    try:
        # Another process's write cycle recording the outcome of `held` holds its row.
        transaction = cycle.transaction()
        await transaction.start()
        await cycle.execute("SELECT id FROM events WHERE id = $1 FOR UPDATE", held_id)
        released = await asyncio.wait_for(db.write(leases.release_expired_in), 5)
        assert released.count == 1
        assert (await db.read(event_row, free.pkey)).status == "pending"
        assert (await db.read(event_row, held.pkey)).status == "processing"
        await transaction.commit()
    finally:
        await cycle.close()
    assert (await db.write(leases.release_expired_in)).count == 1  # the next sweep
    assert (await db.read(event_row, held.pkey)).status == "pending"


test_housekeeping_leaves_the_events_a_cycle_holds_to_the_next_sweep.postgresql_only = True  # type: ignore[attr-defined]
