"""The dispatcher with the writer and a lease book on a real database, without the HTTP server
in front: what the writer claims or leases reaches the dispatcher and ends with the right
outcome. The configurations are made through an API-only app (no dispatcher), which must
itself lease nothing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from engine_support import api_only, final_row, sending
from helpers import create_channel, create_event, live_event, publish_message, queued_event, trigger
from txmsg.core.queue import NewEvent
from txmsg.engine.dispatcher import Dispatcher, DispatcherSettings
from txmsg.engine.leases import LeaseBook
from txmsg.engine.writer import Writer
from txmsg.store.db import Database
from txmsg.store.events import get_event
from txmsg.store.queue.claims import claim_in
from txmsg.store.queue.leases import release_expired_in
from txmsg.store.tables import channel_configs
from txmsg.testing import FakeSMTPServer


@contextlib.asynccontextmanager
async def engine(database_url: str, lease: timedelta) -> AsyncIterator[tuple[Writer, LeaseBook]]:
    """Writer and dispatcher sharing a lease book, started and stopped as the app does."""
    book = LeaseBook(max_in_flight=8, lease=lease)
    async with sending(Database(database_url), book) as writer:
        yield writer, book


def new(event_id: str, **kw: Any) -> NewEvent:
    return queued_event(event_id, ctx={"firstName": "Ada"}, priority=0, **kw)


async def test_claimed_and_leased_events_end_with_their_outcomes(
    db: Database, database_url: str, data_dir: Path, smtp: FakeSMTPServer
) -> None:
    async with api_only(database_url, data_dir) as admin:
        event_id = await live_event(admin, smtp)
        accepted = await trigger(admin, event_id)
        # No dispatcher, so the lease book has no consumer: the event waits in the queue.
        r = await admin.get(accepted["href"])
        assert r.json()["status"] == "pending"

    async with engine(database_url, timedelta(seconds=30)) as (writer, book):
        fresh, unknown, expired = (
            new(event_id),
            new("noSuchEvent"),
            new(event_id, expires_in=timedelta(seconds=-1)),
        )
        results = await asyncio.gather(*(writer.enqueue(e) for e in (fresh, unknown, expired)))
        assert [r.kind for r in results] == ["created"] * 3

        claimed = await final_row(db, event_id, accepted["PKey"])  # claimed from the queue
        sent = await final_row(db, event_id, fresh.pkey)  # leased as it was written
        ignored = await final_row(db, "noSuchEvent", unknown.pkey)
        too_old = await final_row(db, event_id, expired.pkey)
        assert (claimed.status, sent.status) == ("processed", "processed")
        assert (ignored.status, ignored.reason) == (
            "ignored",
            "the event configuration no longer exists",
        )
        assert (too_old.status, too_old.reason) == ("tooOld", "expired before it could be sent")
        messages = await smtp.wait_for(2)
        assert sorted(m.rcpt_tos[0] for m in messages) == ["a@example.org", "ada@example.org"]
    # Stopped: every send finished and released its slot and its lease.
    assert book.in_flight == 0
    assert book.leases_to_renew() == ([], None)
    assert book.free_slots() == 0


async def test_an_event_whose_lease_lapsed_before_sending_is_left_to_be_claimed_again(
    db: Database, database_url: str, data_dir: Path, smtp: FakeSMTPServer
) -> None:
    async with api_only(database_url, data_dir) as admin:
        event_id = await live_event(admin, smtp)

    # A lease of no time lapses before the send: another claim may own the event by then.
    async with engine(database_url, timedelta(0)) as (writer, book):
        event = new(event_id)
        await writer.enqueue(event)  # leased as it was written, and handed over
    # The dispatcher stopped once done with it: it released the event, sent nothing.
    assert book.in_flight == 0
    assert smtp.messages == []  # not sent, and no outcome recorded for it
    row = await db.read(get_event, event_id, event.pkey)
    assert (row.status, row.attempts) == ("processing", 1)
    released = await db.write(release_expired_in)
    assert released.count == 1
    claimed = await db.write(claim_in, 10, timedelta(seconds=30))
    [again] = claimed.events
    assert (again.pkey, again.attempts) == (event.pkey, 2)


async def test_a_route_paused_or_unpublished_after_the_event_was_queued_is_not_sent(
    db: Database, database_url: str, data_dir: Path, smtp: FakeSMTPServer
) -> None:
    """The dispatcher's own checks, made before any leg: the route as it is at send time."""
    async with api_only(database_url, data_dir) as admin:
        event_id = await live_event(admin, smtp)
        r = await admin.post(f"/api/v1/event-configs/{event_id}/pause")
        assert r.status_code == 200, r.text
    async with engine(database_url, timedelta(seconds=30)) as (writer, _):
        held = new(event_id)  # queued as pending before the pause, say
        await writer.enqueue(held)
        row = await final_row(db, event_id, held.pkey)
        assert (row.status, row.reason) == ("paused", None)
    async with api_only(database_url, data_dir) as admin:
        r = await admin.post(f"/api/v1/event-configs/{event_id}/unpublish")
        assert r.status_code == 200, r.text
    async with engine(database_url, timedelta(seconds=30)) as (writer, _):
        late = new(event_id)
        await writer.enqueue(late)
        row = await final_row(db, event_id, late.pkey)
        assert (row.status, row.reason) == ("ignored", "event configuration unpublished")
    assert smtp.messages == []


class HeldWrites(Database):
    """A database whose writes wait while `held` is set: a write cycle under way."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.held: asyncio.Event | None = None
        self.holding = asyncio.Event()

    async def write_bounded(self, fn: Any, *args: Any, **kwargs: Any) -> Any:  # the funnel's
        if self.held is not None:
            self.holding.set()
            await self.held.wait()
        return await super().write_bounded(fn, *args, **kwargs)


async def test_a_stop_waits_for_a_cycle_under_way_and_hands_back_what_it_leased(
    database_url: str, data_dir: Path, smtp: FakeSMTPServer
) -> None:
    """An event the cycle leases once the stop began is not left leased (it would wait for
    its lease to lapse): its send, not started, hands it back to the queue, due at once."""
    async with api_only(database_url, data_dir) as admin:
        event_id = await live_event(admin, smtp)
    db = HeldWrites(database_url)
    book = LeaseBook(max_in_flight=8, lease=timedelta(seconds=30))
    writer = Writer(db, book)
    # A long poll: the dispatcher's own loop is idle, waiting, when the stop comes.
    settings = DispatcherSettings(poll_interval=30.0, route_cache_seconds=0.0)
    dispatcher = Dispatcher(db, settings, book, writer)
    writer.start()
    dispatcher.start()
    try:
        await writer.tick()  # the first claim has run: nothing is due
        db.held = asyncio.Event()
        item = new(event_id)
        enqueued = asyncio.create_task(writer.enqueue(item))
        await asyncio.wait_for(db.holding.wait(), 5)  # its cycle has room, and is under way
        stopping = asyncio.create_task(dispatcher.stop())
        await asyncio.sleep(0.1)
        db.held.set()  # the cycle commits, leasing the new event: the stop must see to it
        await asyncio.wait_for(enqueued, 5)
        await asyncio.wait_for(stopping, 10)
        assert book.in_flight == 0
        row = await db.read(get_event, event_id, item.pkey)
        assert (row.status, row.lease_token) == ("pending", None)
        assert row.reason == "handed back: the engine stopped before sending it"
        assert smtp.messages == []
    finally:
        db.held = None
        await writer.stop()
        await db.dispose()


async def test_unreadable_channel_settings_fail_their_events_only(
    db: Database, database_url: str, data_dir: Path, smtp: FakeSMTPServer
) -> None:
    async with api_only(database_url, data_dir) as admin:
        good = await live_event(admin, smtp)
        await create_channel(admin, smtp, name="old")
        created = await create_event(admin, "legacy", channel_config="old")
        bad = created["eventId"]
        assert (await admin.post(f"/api/v1/event-configs/{bad}/publish")).status_code == 200
        await publish_message(admin, bad)
    # Settings stored by some other writer, without what this version reads (its SMTP host).
    await db.write(
        lambda conn: conn.execute(
            sa.update(channel_configs)
            .where(channel_configs.c.name == "old")
            .values(settings={"from_email": "shop@example.com", "smtp": {"port": 25}})
        )
    )
    async with engine(database_url, timedelta(seconds=30)) as (writer, _):
        ok, broken = new(good), new(bad)
        # One write cycle, so one batch for the dispatcher: routes are loaded together.
        await asyncio.gather(writer.enqueue(ok), writer.enqueue(broken))
        failed = await final_row(db, bad, broken.pkey)
        sent = await final_row(db, good, ok.pkey)
    assert sent.status == "processed"
    assert (failed.status, failed.reason) == (
        "routingFailed",
        "channel configuration 'old': its stored settings cannot be read (KeyError: 'host')",
    )
    [message] = await smtp.wait_for(1)
    assert message.rcpt_tos == [ok.email]


async def test_each_outcome_is_logged_at_debug_with_the_event_fields(
    db: Database,
    database_url: str,
    data_dir: Path,
    smtp: FakeSMTPServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What `--log-format json` shows of an event: its PKey, eventId and status (no content)."""
    async with api_only(database_url, data_dir) as admin:
        event_id = await live_event(admin, smtp)
    caplog.set_level(logging.DEBUG, logger="txmsg.engine.dispatcher")
    async with engine(database_url, timedelta(seconds=30)) as (writer, _):
        event = new(event_id)
        await writer.enqueue(event)
        await final_row(db, event_id, event.pkey)
    [record] = [r for r in caplog.records if getattr(r, "pkey", None) == event.pkey]
    assert record.levelno == logging.DEBUG
    fields = (record.pkey, record.event_id, record.status)  # type: ignore[attr-defined]
    assert fields == (event.pkey, event_id, "processed")
    assert record.getMessage() == f"event {event.pkey}: processed"
