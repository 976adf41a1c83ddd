"""Scheduled jobs run on exactly one process at a time; another takes over when the holder
stops or dies. Two schedulers on one database, each on its own connections (as two workers)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable

import asyncpg

from conftest import PG_DSN
from helpers import wait_until
from txmsg.engine.scheduler import Scheduler
from txmsg.store.db import Database
from txmsg.store.scheduler_lock import scheduler_lock_for

INTERVAL = 0.05


class Jobs:
    """Jobs that note who ran them, and any run begun while another scheduler's was running."""

    def __init__(self) -> None:
        self.running: Counter[str] = Counter()
        self.overlaps = 0
        self.runs: list[str] = []

    def job(self, name: str) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            self.overlaps += any(n for other, n in self.running.items() if other != name)
            self.running[name] += 1
            try:
                self.runs.append(name)
                await asyncio.sleep(INTERVAL / 2)
            finally:
                self.running[name] -= 1

        return run


def _noop() -> None:
    return None


async def test_two_schedulers_never_run_a_job_at_once(db: Database, other_db: Database) -> None:
    jobs = Jobs()
    first = Scheduler(db, INTERVAL, _noop, [jobs.job("first"), jobs.job("first")])
    second = Scheduler(other_db, INTERVAL, _noop, [jobs.job("second"), jobs.job("second")])
    first.start()
    await wait_until(lambda: "first" in jobs.runs, timeout=5, what="the first's jobs")
    second.start()
    try:
        await asyncio.sleep(1.0)
        assert jobs.overlaps == 0
        assert set(jobs.runs) == {"first"}, "the second ran jobs while the first held the lock"
        # The holder stops: the other takes over, alone.
        await first.stop()
        held_until = len(jobs.runs)
        await wait_until(lambda: "second" in jobs.runs, timeout=5, what="the take-over")
        assert "first" not in jobs.runs[held_until:]
        assert jobs.overlaps == 0
    finally:
        await first.stop()
        await second.stop()


async def test_a_dead_holder_is_taken_over(db: Database, other_db: Database) -> None:
    ttl = 1.0
    holder, waiting = scheduler_lock_for(db, ttl), scheduler_lock_for(other_db, ttl)
    assert await holder.hold()
    assert await holder.hold()  # kept (renewed) by its holder
    assert not await waiting.hold()
    # The holder dies: on PostgreSQL its session ends; on SQLite it renews no more.
    if not db.is_sqlite:
        admin = await asyncpg.connect(PG_DSN)
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(l.pid) FROM pg_locks l"
                " JOIN pg_stat_activity a ON a.pid = l.pid"
                " WHERE l.locktype = 'advisory' AND a.datname = $1",
                db.url.rsplit("/", 1)[1],
            )
        finally:
            await admin.close()
    else:
        await asyncio.sleep(ttl / 2)
        assert not await waiting.hold(), "taken over before the dead holder's lease ended"
    taken = False
    for _ in range(60):
        taken = await waiting.hold()
        if taken:
            break
        await asyncio.sleep(0.1)
    assert taken, "the lock was not taken over"
    await waiting.release()
    await holder.release()


async def test_a_holder_that_stops_answering_is_taken_over(
    db: Database, other_db: Database
) -> None:
    """A frozen holder (or one cut off: its socket still open) does not try again: after `ttl`
    the lock is another's (on PostgreSQL the server ends the idle session), and the holder,
    trying again, is told it no longer holds it."""
    ttl = 1.0
    holder, waiting = scheduler_lock_for(db, ttl), scheduler_lock_for(other_db, ttl)
    try:
        assert await holder.hold()
        assert not await waiting.hold()
        taken = False
        for _ in range(40):  # the holder stays silent meanwhile
            await asyncio.sleep(0.1)
            taken = await waiting.hold()
            if taken:
                break
        assert taken, "a silent holder kept the lock"
        assert not await holder.hold()
        assert await waiting.hold()
    finally:
        await waiting.release()
        await holder.release()
