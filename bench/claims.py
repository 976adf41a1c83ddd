"""Claim latency as the queue grows: one claim of 64 due events with N events queued.

In process, on the store's own `claims.claim_in` (the statement the dispatcher's write cycle
runs), each claim in its own transaction rolled back afterwards, so the queue keeps its size.
The queue is filled by doubling: 1,000 events through `enqueue_in`, then copied by
`INSERT ... SELECT` (fresh PKeys) up to each size. PostgreSQL is analyzed after each fill, as
autovacuum would.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "src"))

from txmsg.core.queue import PRIORITY_BULK, NewEvent, new_pkey
from txmsg.core.statuses import EventStatus
from txmsg.store.db import Database
from txmsg.store.queue import claims, enqueue

CLAIM = 64
SEED = 1000
COLUMNS = (
    "event_id, priority, status, email, ctx, event_date, scheduled_at, expires_at, due_at, "
    "attempts, updated_at"
)


class _RolledBack(Exception):
    pass


def _seed(conn: Connection) -> None:
    now = datetime.now(UTC)
    enqueue.enqueue_in(
        conn,
        [
            NewEvent(
                pkey=new_pkey(),
                event_id="EVTbench",
                priority=PRIORITY_BULK,
                status=EventStatus.PENDING,
                email=f"user{i}@example.org",
                ctx={"firstName": "Ada"},
                event_date=now,
                scheduled_at=None,
                expires_at=now + timedelta(days=1),
                due_at=now - timedelta(seconds=1),
                response={},
            )
            for i in range(SEED)
        ],
    )


def _grow(conn: Connection, rows: int, round_: int) -> None:
    """Copy `rows` existing events under new PKeys (`b<round>-<source id>`)."""
    conn.execute(
        sa.text(
            f"INSERT INTO events (pkey, {COLUMNS}) "
            f"SELECT 'b{round_}-' || CAST(id AS VARCHAR(20)), {COLUMNS} "
            "FROM events ORDER BY id LIMIT :n"
        ),
        {"n": rows},
    )


def _count(conn: Connection) -> int:
    return int(conn.execute(sa.text("SELECT count(*) FROM events")).scalar_one())


def _claim(conn: Connection, timings: list[float]) -> None:
    start = time.perf_counter()
    claimed = claims.claim_in(conn, CLAIM, timedelta(seconds=60))
    timings.append(time.perf_counter() - start)
    assert len(claimed.events) == CLAIM
    raise _RolledBack


async def _measure(url: str, sizes: list[int], rounds: int) -> dict[int, list[float]]:
    db = Database(url)
    try:
        await db.migrate()
        await db.write(_seed)
        results: dict[int, list[float]] = {}
        round_ = 0
        for size in sizes:
            while (count := await db.read(_count)) < size:
                round_ += 1
                await db.write(_grow, min(count, size - count), round_)
            if not db.is_sqlite:
                await db.write(lambda conn: conn.execute(sa.text("ANALYZE events")))
            await db.checkpoint()
            timings: list[float] = []
            for _ in range(rounds):
                # The claim's transaction is rolled back on purpose: the queue keeps its size.
                with contextlib.suppress(_RolledBack):
                    await db.write(_claim, timings)
            results[size] = timings
        return results
    finally:
        await db.dispose()


def claim_latency(url: str, sizes: list[int], rounds: int = 100) -> dict[int, float]:
    """Median milliseconds of one claim of 64 events with each size queued."""
    timings = asyncio.run(_measure(url, sizes, rounds))
    return {size: statistics.median(t) * 1000 for size, t in timings.items()}


if __name__ == "__main__":
    from _deploy import store

    for engine in ("sqlite", "postgresql"):
        with store(engine) as s:
            print(engine, claim_latency(s.url, [int(n) for n in sys.argv[1:]] or [10_000]))
