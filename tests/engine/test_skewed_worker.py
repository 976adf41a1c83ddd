"""A worker whose own clock is off does no harm: every time it writes into shared state, or
compares with a time another process stored, is the database's (`Database.clock`).

In process, as `faketime` would run a worker: this process's clock (`utcnow()`, which all of
txmsg reads) is moved while one engine runs, then moved back for another, in step, on the same
database. The database's own time is not moved."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import txmsg.core.timeutil
from conftest import settings_for
from engine_support import api_only, final_row, sending
from helpers import live_event, queued_event, wait_until
from profile_helpers import profile_event, put_profile
from txmsg.core.queue import NewEvent
from txmsg.engine.leases import LeaseBook
from txmsg.engine.runtime import Role, build_engine
from txmsg.engine.writer import Writer
from txmsg.store.clock import database_now
from txmsg.store.db import Database
from txmsg.store.tables import fatigue_reservations
from txmsg.testing import FakeSMTPServer

AHEAD = timedelta(minutes=5)
BEHIND = timedelta(hours=-2)


class ProcessClock:
    """This process's clock, off by `skew` (what `utcnow()` answers)."""

    skew = timedelta(0)


@pytest.fixture
def process_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[ProcessClock]]:
    class Skewed(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Any:
            return datetime.now(tz) + ProcessClock.skew

    monkeypatch.setattr(txmsg.core.timeutil, "datetime", Skewed)
    yield ProcessClock
    ProcessClock.skew = timedelta(0)


@contextlib.asynccontextmanager
async def engine(shared: Database, skew: timedelta) -> AsyncIterator[Writer]:
    """A writer and a dispatcher (a worker) on a process clock `skew` off, wired as
    `build_engine` wires them: the lease book reads the database's clock."""
    ProcessClock.skew = skew
    db = Database(shared.url, keyring=shared.keyring)
    await db.sync_clock()
    assert abs(db.clock.now() - datetime.now(UTC)) < timedelta(seconds=1)
    book = LeaseBook(max_in_flight=8, lease=timedelta(seconds=30), clock=db.clock.now)
    try:
        async with sending(db, book) as writer:
            yield writer
    finally:
        ProcessClock.skew = timedelta(0)


def new(event_id: str, expires_in: timedelta, **kw: Any) -> NewEvent:
    """Triggered now by an API process in step (its stamps are the database's time)."""
    now = datetime.now(UTC)
    return queued_event(event_id, ctx={"firstName": "Ada"}, now=now, expires_in=expires_in, **kw)


async def database_time(db: Database) -> datetime:
    return await db.read(database_now)


@pytest.mark.parametrize("skew", [AHEAD, BEHIND], ids=["ahead", "behind"])
async def test_a_skewed_worker_expires_events_by_the_database_clock(
    db: Database,
    database_url: str,
    data_dir: Path,
    smtp: FakeSMTPServer,
    process_clock: type[ProcessClock],
    skew: timedelta,
) -> None:
    async with api_only(database_url, data_dir) as admin:
        event_id = await live_event(admin, smtp)
    async with engine(db, skew) as writer:
        # Three minutes to live: sent, not `tooOld` (a worker ahead took it for expired).
        fresh = new(event_id, timedelta(minutes=3))
        # Expired a minute ago: `tooOld`, not sent (a worker behind took it for live).
        stale = new(event_id, timedelta(minutes=-1), email="stale@example.org")
        for event in (fresh, stale):
            assert (await writer.enqueue(event)).kind == "created"
        sent = await final_row(db, event_id, fresh.pkey)
        expired = await final_row(db, event_id, stale.pkey)
    assert (sent.status, expired.status) == ("processed", "tooOld")
    assert [m.rcpt_tos for m in smtp.messages] == [["a@example.org"]]


@pytest.mark.parametrize("skew", [AHEAD, BEHIND], ids=["ahead", "behind"])
async def test_a_skewed_worker_stamps_its_sends_with_the_database_clock(
    db: Database,
    database_url: str,
    data_dir: Path,
    smtp: FakeSMTPServer,
    process_clock: type[ProcessClock],
    skew: timedelta,
) -> None:
    """`sent_at` (the delivery log's `sent`, the reports' day, trigger-to-sent time) is
    neither in the future (a worker ahead) nor before its trigger (a worker behind)."""
    async with api_only(database_url, data_dir) as admin:
        event_id = await live_event(admin, smtp)
    async with engine(db, skew) as writer:
        event = new(event_id, timedelta(days=1))
        await writer.enqueue(event)
        sent = await final_row(db, event_id, event.pkey)
        now = await database_time(db)
    assert sent.status == "processed"
    assert event.event_date <= sent.sent_at <= now
    assert now - sent.sent_at < timedelta(seconds=5)


@pytest.mark.parametrize("skew", [timedelta(hours=2), BEHIND], ids=["ahead", "behind"])
async def test_a_fatigue_rule_holds_across_workers_with_different_clocks(
    db: Database,
    database_url: str,
    data_dir: Path,
    smtp: FakeSMTPServer,
    process_clock: type[ProcessClock],
    skew: timedelta,
) -> None:
    """At most one message an hour: a worker in step sends the first; a worker two hours off
    counts that send in its own hour, and its reservation counts in the other's."""
    async with api_only(database_url, data_dir) as admin:
        event_id = await profile_event(
            admin, smtp, reconciliation={"from": "ctx.id", "to": "profile_id"}
        )
        await put_profile(admin, "p", email="p@example.org", first_name="P")
        r = await admin.post(
            "/api/v1/fatigue-rules",
            json={"name": "hourly", "channel": "all", "max_messages": 1, "period": "PT1H"},
        )
        assert r.status_code == 201, r.text

    def for_p() -> NewEvent:
        return queued_event(
            event_id, ctx={"id": "p"}, now=datetime.now(UTC), expires_in=timedelta(hours=3)
        )

    first, second, third = for_p(), for_p(), for_p()
    async with engine(db, timedelta(0)) as writer:
        await writer.enqueue(first)
        assert (await final_row(db, event_id, first.pkey)).status == "processed"
    async with engine(db, skew) as writer:
        await writer.enqueue(second)
        row = await final_row(db, event_id, second.pkey)
        assert (row.status, row.reason) == ("ignored", "fatigue:hourly")
    # And the other way round: what the skewed worker reserves, the one in step counts.
    await db.write(lambda c: c.execute(sa.delete(fatigue_reservations)))
    async with engine(db, skew) as writer:
        await writer.enqueue(third)
        assert (await final_row(db, event_id, third.pkey)).status == "processed"
    at = await db.read(lambda c: c.execute(sa.select(fatigue_reservations.c.at)).scalar_one())
    assert abs(at - await database_time(db)) < timedelta(seconds=30)
    fourth = for_p()
    async with engine(db, timedelta(0)) as writer:
        await writer.enqueue(fourth)
        row = await final_row(db, event_id, fourth.pkey)
        assert (row.status, row.reason) == ("ignored", "fatigue:hourly")
    await asyncio.sleep(0.1)
    assert len(smtp.messages) == 2


async def test_an_api_process_follows_a_step_of_its_clock(
    db: Database, data_dir: Path, process_clock: type[ProcessClock]
) -> None:
    """An API-only process has no scheduler: it measures its offset from the database's
    clock in a loop of its own, so a step of its clock after it started (NTP, a resumed VM)
    does not outlive a sweep interval in the due times and expiries it stamps."""
    engine = build_engine(settings_for(db.url, data_dir, sweep_interval=0.05))
    await engine.start(Role.API)
    try:
        assert engine.db.clock.offset == timedelta(0)
        process_clock.skew = AHEAD  # its clock jumps five minutes ahead
        await wait_until(
            lambda: abs(engine.db.clock.now() - datetime.now(UTC)) < timedelta(seconds=1),
            timeout=5,
            what="the API's offset from the database's clock measured again",
        )
    finally:
        await engine.stop()
    assert engine.clock_keeper is not None and engine.clock_keeper.done()
