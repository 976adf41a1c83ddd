"""PostgreSQL: housekeeping never waits for the events a write cycle holds, so the two never
deadlock (the sweep used to lock expired leases in scan order while a cycle recording their
outcomes locked them in another)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
from queue_support import event_row, new_event

from txmsg.core.delivery import Interaction, LogEntry
from txmsg.core.timeutil import utcnow
from txmsg.store import delivery_log
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


async def test_entries_recorded_once_are_inserted_in_key_order(db: Database) -> None:
    """Another process appends the same receipts (a callback retried to both) in another
    order: each takes the unique index's entries in key order, so one waits for the other's
    commit instead of the two deadlocking (PostgreSQL would fail one of them)."""
    now = utcnow()

    def receipt(sid: str) -> LogEntry:
        return LogEntry("PK1", "EVTa", Interaction.DELIVERED, now, {"sid": sid}, once=sid)

    other = await asyncpg.connect(asyncpg_dsn(db))
    try:
        transaction = other.transaction()
        await transaction.start()
        insert = (
            "INSERT INTO delivery_log (pkey, event_id, kind, at, once_key)"
            " VALUES ('PK1', 'EVTa', 'delivered', now(), $1)"
        )
        await other.execute(insert, "SM-a")  # the other process holds "SM-a", uncommitted
        # This process appends "SM-b" and "SM-a" (in that order): it waits for "SM-a".
        appending = asyncio.ensure_future(
            db.write(delivery_log.append_in, [receipt("SM-b"), receipt("SM-a")])
        )
        await _until_waiting(other)
        # The other goes on with "SM-b": had this process taken it first, a deadlock.
        await asyncio.wait_for(other.execute(insert, "SM-b"), 10)
        await transaction.commit()
        assert await asyncio.wait_for(appending, 10) == []  # both recorded by the other
    finally:
        await other.close()
    assert len(await db.read(delivery_log.for_event, "PK1")) == 2  # each once


async def _until_waiting(conn: asyncpg.Connection) -> None:
    """Until another session waits for a lock (this test's own append)."""
    for _ in range(200):
        # `conn` is in a transaction, which would read one snapshot of the statistics for
        # good (taken before the append had a connection, it never shows it waiting).
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        waiting = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND datname = current_database()"
        )
        if waiting:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the append never waited for the other's entry")


test_entries_recorded_once_are_inserted_in_key_order.postgresql_only = True  # type: ignore[attr-defined]
