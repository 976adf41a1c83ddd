"""PostgreSQL: a write cycle rolled back to break a deadlock is run again, so the outcome of a
send already made is recorded (failing it would have the event claimed and sent again after its
lease) and the fatigue reservation beside it is made once."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from helpers import queued_event
from txmsg.core.fatigue import FatigueCheck, FatigueRequest, FatigueRule
from txmsg.core.queue import ClaimedEvent, Outcome
from txmsg.core.statuses import EventStatus
from txmsg.core.timeutil import utcnow
from txmsg.engine.leases import LeaseBook
from txmsg.engine.writer import Writer
from txmsg.store.db import Database
from txmsg.store.events import get_event
from txmsg.store.tables import fatigue_reservations, profiles

RULE = FatigueRule("daily", "all", 3, None, "P1D", 86_400)


def add_profile(conn: Connection) -> None:
    now = utcnow()
    conn.execute(
        sa.insert(profiles).values(
            profile_id="p",
            attributes={},
            email_opt_out=False,
            sms_opt_out=False,
            created_at=now,
            updated_at=now,
        )
    )


def reservations(conn: Connection) -> list[str]:
    return list(conn.execute(sa.select(fatigue_reservations.c.pkey)).scalars())


async def test_a_deadlocked_cycle_runs_again(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    await db.write(add_profile)
    book = LeaseBook(max_in_flight=4, lease=timedelta(seconds=60))
    received: list[ClaimedEvent] = []
    book.consume(received.extend)
    writer = Writer(db, book)
    writer.start()
    other = await asyncpg.connect(db.url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        sent, checked = queued_event("EVTd"), queued_event("EVTd")
        await writer.enqueue(sent)
        await writer.enqueue(checked)
        first = received[0]
        # Another transaction holds the profile the cycle's fatigue check locks...
        transaction = other.transaction()
        await transaction.start()
        await other.execute("SELECT 1 FROM profiles WHERE profile_id = 'p' FOR UPDATE")
        outcome = Outcome(first.id, first.lease_token, EventStatus.PROCESSED)
        check = FatigueCheck([FatigueRequest(checked.pkey, "p", "email", {})], [RULE])
        with caplog.at_level(logging.WARNING, logger="txmsg.engine.writer"):
            # ... one cycle records the outcome (locking its event), then waits for the profile
            answers = asyncio.gather(writer.record(outcome), writer.reserve(check))
            # The cycle waits for the profile first: PostgreSQL's deadlock check runs in the
            # session that has waited longest, and ends that one (here: the cycle's).
            await _until_a_session_waits_for_a_lock(other)
            # ... while that transaction waits for the event: PostgreSQL breaks the deadlock.
            try:
                await other.execute("SELECT 1 FROM events WHERE id = $1 FOR UPDATE", first.id)
            except asyncpg.DeadlockDetectedError:
                # On a loaded machine the cycle's second run can lock the event again before
                # this session is woken to take it: a second deadlock, whose victim may be
                # this session. Its end lets the second run through all the same.
                await transaction.rollback()
            except BaseException:
                await transaction.rollback()
                raise
            else:
                await transaction.commit()
            recorded, decided = await asyncio.wait_for(answers, 20)
        assert recorded is None and decided == {checked.pkey: None}
        assert "rolled back by a conflict" in caplog.text  # the deadlock happened, and passed
        assert (await db.read(get_event, "EVTd", sent.pkey)).status == "processed"
        assert await db.read(reservations) == [checked.pkey]
    finally:
        await other.close()
        await writer.stop()


async def _until_a_session_waits_for_a_lock(conn: asyncpg.Connection) -> None:
    waiting = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
    )
    for _ in range(200):
        if await conn.fetchval(waiting):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the cycle never waited for the profile's lock")


test_a_deadlocked_cycle_runs_again.postgresql_only = True  # type: ignore[attr-defined]
