"""The write funnel with batch triggers: a batch is one submission, written all or nothing."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from helpers import queued_event
from txmsg.core.queue import EnqueueResult, NewBatch
from txmsg.core.timeutil import utcnow
from txmsg.engine.leases import LeaseBook
from txmsg.engine.writer import Writer
from txmsg.store.db import Database
from txmsg.store.queue import claims


def _deep(levels: int) -> list[Any]:
    root: list[Any] = []
    node = root
    for _ in range(levels):
        child: list[Any] = []
        node.append(child)
        node = child
    return root


async def test_a_batch_with_a_bad_row_fails_whole_and_alone(database_url: str) -> None:
    db = Database(database_url)
    await db.migrate()
    writer = Writer(db, LeaseBook(max_in_flight=64, lease=timedelta(seconds=60)))
    writer.start()
    try:
        now = utcnow()
        good = NewBatch(tuple(queued_event("EVTx", now=now) for _ in range(3)), {"n": 1})
        # Unserialisable at the store (the API refuses it earlier): its whole batch fails.
        bad = NewBatch(
            (queued_event("EVTx", now=now), queued_event("EVTx", now=now, ctx={"x": _deep(300)})),
            {"n": 2},
        )
        single = queued_event("EVTx", now=now)
        results = await asyncio.gather(
            writer.enqueue_batch(good),
            writer.enqueue_batch(bad),
            writer.enqueue(single),
            return_exceptions=True,
        )
        assert results[0] == EnqueueResult("created", {"n": 1})
        assert isinstance(results[1], Exception)
        assert isinstance(results[2], EnqueueResult) and results[2].kind == "created"
        claimed = (await db.write(claims.claim_in, 10, timedelta(seconds=30))).events
        assert {c.pkey for c in claimed} == {e.pkey for e in (*good.events, single)}
    finally:
        await writer.stop()
        await db.dispose()
