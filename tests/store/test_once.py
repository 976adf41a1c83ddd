"""Entries recorded once across processes: duplicates arriving at the same moment in two
processes (two databases' connections, each its own transaction) are recorded once, and the
report counts and the quarantine count them once."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import sqlalchemy as sa
from queue_support import hook, new_event, seen_by_provider
from sqlalchemy.engine import Connection

from txmsg.core.delivery import Interaction, LogEntry
from txmsg.core.feedback import Feedback, FeedbackKind
from txmsg.core.timeutil import utcnow
from txmsg.store.db import Database
from txmsg.store.queue.cycle import CycleRequest, write_cycle
from txmsg.store.tables import delivery_log, quarantine, report_days

ROUNDS = 6


async def _events(db: Database, count: int) -> list[str]:
    await db.write(hook, "EVTq")
    new = [new_event() for _ in range(count)]
    await db.write(write_cycle, CycleRequest(new=new))
    pkeys = [e.pkey for e in new]
    await db.write(seen_by_provider, pkeys)  # sent: feedback may be about them
    return pkeys


async def _at_once(dbs: tuple[Database, Database], request: CycleRequest) -> None:
    await asyncio.gather(*(d.write(write_cycle, request) for d in dbs))


def _log(conn: Connection) -> list[tuple[str, str]]:
    rows = conn.execute(sa.select(delivery_log.c.pkey, delivery_log.c.kind))
    return sorted((r.pkey, r.kind) for r in rows)


def _counts(conn: Connection) -> dict[str, int]:
    rows = conn.execute(
        sa.select(report_days.c.metric, sa.func.sum(report_days.c.count)).group_by(
            report_days.c.metric
        )
    )
    return {m: int(n) for m, n in rows}


async def test_a_receipt_from_two_processes_at_once_is_recorded_once(
    db: Database, other_db: Database
) -> None:
    pkeys = await _events(db, ROUNDS)
    for i, pkey in enumerate(pkeys):
        receipt = LogEntry(
            pkey, "EVTq", Interaction.DELIVERED, utcnow(), {"MessageSid": f"SM{i:032x}"}
        )
        await _at_once((db, other_db), CycleRequest(log_entries=[receipt]))
    assert await db.read(_log) == sorted((p, "delivered") for p in pkeys)
    assert (await db.read(_counts))["delivered"] == ROUNDS


async def test_a_bounce_report_from_two_processes_at_once_is_recorded_once(
    db: Database, other_db: Database
) -> None:
    pkeys = await _events(db, 2)  # below the quarantine's soft-bounce limit (3)
    for pkey in pkeys:
        dsn = Feedback(pkey, FeedbackKind.BOUNCE, "mailbox full", utcnow(), "dsn", hard=False)
        await _at_once((db, other_db), CycleRequest(feedback=[dsn]))
    assert await db.read(_log) == sorted((p, "bounced") for p in pkeys)
    # All went to one address: each soft bounce counted once towards its quarantine.
    held = await db.read(
        lambda c: c.execute(sa.select(quarantine.c.soft_bounces, quarantine.c.quarantined_at)).one()
    )
    assert tuple(held) == (2, None)


async def test_a_first_open_in_two_processes_at_once_is_one_unique_open(
    db: Database, other_db: Database
) -> None:
    pkeys = await _events(db, ROUNDS)
    for pkey in pkeys:
        opened = LogEntry(pkey, "EVTq", Interaction.OPENED, utcnow(), {"ip": "192.0.2.1"})
        await _at_once((db, other_db), CycleRequest(log_entries=[opened]))
    # Both opens are recorded; the message's unique open once.
    assert await db.read(_log) == sorted([(p, "opened") for p in pkeys] * 2)
    counts = await db.read(_counts)
    assert (counts["opened"], counts["opened_unique"]) == (2 * ROUNDS, ROUNDS)


async def test_a_later_open_is_recorded_without_a_unique_count(db: Database) -> None:
    [pkey] = await _events(db, 1)
    first = LogEntry(pkey, "EVTq", Interaction.OPENED, utcnow())
    later = LogEntry(pkey, "EVTq", Interaction.OPENED, utcnow() + timedelta(seconds=1))
    await db.write(write_cycle, CycleRequest(log_entries=[first]))
    await db.write(write_cycle, CycleRequest(log_entries=[later, later]))
    counts = await db.read(_counts)
    assert (counts["opened"], counts["opened_unique"]) == (3, 1)
