"""Sends handed back unsent give their channel cap's tokens back: a per-day quota is spent
once for each message sent, however often its event went back to the queue before it was.

Each path by which a leased event returns to the queue without a send, through the real
writer and dispatcher on both databases: a stop hands back the sends still waiting for a
connection; a route paused at send time; every relay resting (breakers open). And each way a
claimed event ends before any provider saw it (no address, a message that renders empty,
expired by its send's turn): its tokens go back too, while a refusal the relay made keeps
its token spent."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from test_dispatcher import new

from engine_support import api_only, final_row, sending
from helpers import (
    create_channel,
    create_event,
    free_ports,
    nested_lists,
    publish_message,
    queued_event,
    wait_until,
)
from txmsg.core.queue import ClaimedEvent, Outcome
from txmsg.core.retry import RetryPolicy
from txmsg.engine.dispatcher import Dispatcher, DispatcherSettings
from txmsg.engine.leases import LeaseBook
from txmsg.engine.writer import Writer
from txmsg.store.db import Database
from txmsg.store.events import get_event
from txmsg.store.sealing import Keyring
from txmsg.testing import FakeSMTPServer


@contextlib.asynccontextmanager
async def engine(
    database_url: str, data_dir: Path, retry: RetryPolicy | None = None
) -> AsyncIterator[Writer]:
    db = Database(database_url, keyring=Keyring.load(None, data_dir))  # relays' passwords
    book = LeaseBook(max_in_flight=8, lease=timedelta(seconds=30))
    settings = DispatcherSettings(
        poll_interval=0.05, route_cache_seconds=0.0, retry=retry or RetryPolicy()
    )
    async with sending(db, book, settings) as writer:
        yield writer


async def capped_event(
    admin: Any, smtp: FakeSMTPServer, cap: dict[str, int], message: Any = None, **channel: Any
) -> str:
    await create_channel(admin, smtp, rate_limit=cap, **channel)
    created = await create_event(admin, "capped")
    event_id: str = created["eventId"]
    assert (await admin.post(f"/api/v1/event-configs/{event_id}/publish")).status_code == 200
    await publish_message(admin, event_id, **(message or {}))
    return event_id


def spent_today(conn: sa.Connection) -> int:
    return int(
        conn.execute(
            sa.text("SELECT used FROM rate_windows WHERE scope = 'channel:mail:day'")
        ).scalar_one()
    )


async def test_a_stop_hands_back_waiting_sends_with_their_tokens(
    db: Database, database_url: str, data_dir: Path
) -> None:
    """SIGTERM's path: the sends waiting for the one connection go back to the queue unsent,
    and the day's quota counts only the one sent; after the restart the others go at once,
    within the quota (before, it was spent and they waited for the next day)."""
    async with FakeSMTPServer(delay=1.0) as smtp:
        async with api_only(database_url, data_dir) as admin:
            event_id = await capped_event(admin, smtp, {"per_day": 3})
            r = await admin.patch("/api/v1/channel-configs/mail", json={"smtp": {"pool_size": 1}})
            assert r.status_code == 200, r.text
        events = [new(event_id, email=f"u{i}@example.org") for i in range(3)]
        async with engine(database_url, data_dir) as writer:
            for event in events:
                await writer.enqueue(event)
            await wait_until(lambda: smtp.connections_opened >= 1, what="a send under way")
            await asyncio.sleep(0.3)  # the other two wait for the connection: then the stop
        rows = [await db.read(get_event, event_id, e.pkey) for e in events]
        assert sorted(r.status for r in rows) == ["pending", "pending", "processed"]
        assert await db.read(spent_today) == 1
        smtp.delay = 0.0
        async with engine(database_url, data_dir) as writer:
            for event in events:
                row = await final_row(db, event_id, event.pkey, timeout=5)
                assert row.status == "processed"
        assert len(smtp.messages) == 3
        assert await db.read(spent_today) == 3


async def test_a_route_paused_at_send_time_gives_its_token_back(
    db: Database, database_url: str, data_dir: Path, smtp: FakeSMTPServer
) -> None:
    """Claimed, then found paused: the event waits `paused`, unsent, its token back; resumed,
    it is sent within the day's quota of one."""
    async with api_only(database_url, data_dir) as admin:
        event_id = await capped_event(admin, smtp, {"per_day": 1})
        assert (await admin.post(f"/api/v1/event-configs/{event_id}/pause")).status_code == 200
    held = new(event_id)
    async with engine(database_url, data_dir) as writer:
        await writer.enqueue(held)  # queued as pending before the pause, say
        row = await final_row(db, event_id, held.pkey)
        assert (row.status, row.attempts) == ("paused", 1)
    assert await db.read(spent_today) == 0
    async with api_only(database_url, data_dir) as admin:
        assert (await admin.post(f"/api/v1/event-configs/{event_id}/resume")).status_code == 200
    async with engine(database_url, data_dir) as writer:
        row = await final_row(db, event_id, held.pkey, timeout=5)
        assert (row.status, row.attempts) == ("processed", 2)
    assert len(smtp.messages) == 1
    assert await db.read(spent_today) == 1


async def test_a_send_no_relay_saw_gives_its_token_back(
    db: Database, database_url: str, data_dir: Path, smtp: FakeSMTPServer
) -> None:
    """Both relays down: the first send tries them (its token stays spent: a relay may have
    counted it) and opens their breakers; the next one, with every relay resting, goes to no
    relay at all, and is retried with its token back."""
    down = free_ports(2)
    relay = {"host": "127.0.0.1", "port": down + 1, "tls": "none", "timeout": 5}
    async with api_only(database_url, data_dir) as admin:
        event_id = await capped_event(
            admin,
            smtp,
            {"per_day": 5},
            fallbacks=[relay],
            breaker={"failures": 1, "cool_down": 600},
        )
        r = await admin.patch("/api/v1/channel-configs/mail", json={"smtp": {"port": down}})
        assert r.status_code == 200, r.text
    first, second = new(event_id), new(event_id)
    later = RetryPolicy(base_seconds=600)  # no second attempt in this test

    async def retried(pkey: str) -> Any:
        async with asyncio.timeout(10):
            while True:
                row = await db.read(get_event, event_id, pkey)
                if row is not None and row.status == "pending" and row.attempts == 1:
                    return row
                await asyncio.sleep(0.02)

    async with engine(database_url, data_dir, later) as writer:
        await writer.enqueue(first)
        assert "connection failed" in (await retried(first.pkey)).reason
        assert await db.read(spent_today) == 1
        await writer.enqueue(second)
        assert "resting" in (await retried(second.pkey)).reason
        assert await db.read(spent_today) == 1
    assert smtp.messages == []


async def test_events_ended_before_any_provider_give_their_tokens_back(
    db: Database, database_url: str, data_dir: Path, smtp: FakeSMTPServer
) -> None:
    """Claimed under a day's quota of 3, then ended with no provider seeing them (no address:
    `targetingFailed`; a message that renders empty for them: `routingFailed`): their tokens
    go back, and the quota still sends its messages. A refusal the relay made (a 550 at RCPT,
    `deliveryFailed`) keeps its token spent: the relay counted that attempt."""
    blank = {"html": "{{ ctx.firstName }}", "text": "{{ ctx.firstName }}"}
    async with api_only(database_url, data_dir) as admin:
        event_id = await capped_event(admin, smtp, {"per_day": 3}, blank)
    unsent = [
        new(event_id, email=None),
        queued_event(event_id, ctx={"firstName": ""}),
        queued_event(event_id, ctx={"firstName": ""}),
    ]
    smtp.refuse_recipients({"gone@example.org": (550, "5.1.1 no such user")})
    refused = new(event_id, email="gone@example.org")
    sent = [new(event_id, email=f"u{i}@example.org") for i in range(2)]
    over = new(event_id, email="over@example.org")
    async with engine(database_url, data_dir) as writer:
        for event in unsent:
            await writer.enqueue(event)
        rows = [await final_row(db, event_id, e.pkey) for e in unsent]
        assert [r.status for r in rows] == ["targetingFailed", "routingFailed", "routingFailed"]
        assert await db.read(spent_today) == 0
        await writer.enqueue(refused)
        assert (await final_row(db, event_id, refused.pkey)).status == "deliveryFailed"
        assert await db.read(spent_today) == 1
        for event in sent:
            await writer.enqueue(event)
        for event in sent:
            assert (await final_row(db, event_id, event.pkey)).status == "processed"
        assert await db.read(spent_today) == 3
        await writer.enqueue(over)  # the day's quota is spent: it waits
        await asyncio.sleep(0.3)
        assert (await db.read(get_event, event_id, over.pkey)).status == "pending"
    assert sorted(m.rcpt_tos[0] for m in smtp.messages) == ["u0@example.org", "u1@example.org"]
    assert await db.read(spent_today) == 3


async def test_events_expired_by_their_sends_turn_give_their_tokens_back(
    db: Database,
    database_url: str,
    data_dir: Path,
    smtp: FakeSMTPServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Claimed before their expiration, found expired when their send's turn came (`tooOld`
    at send time: as if their turn came two hours after their claim): nothing went to a
    relay, their tokens go back, and the day's quota is whole for the events after them."""
    async with api_only(database_url, data_dir) as admin:
        event_id = await capped_event(admin, smtp, {"per_day": 2})
    hand_over = Dispatcher.hand_over

    def two_hours_later(self: Dispatcher, events: list[ClaimedEvent]) -> None:
        # The database's time at their send's turn is past their expiration (an hour away
        # when claimed): the dispatcher sees them as it would then.
        hand_over(self, [replace(e, expires_at=e.expires_at - timedelta(hours=2)) for e in events])

    monkeypatch.setattr(Dispatcher, "hand_over", two_hours_later)
    expired = [new(event_id) for _ in range(2)]  # an hour to live: valid when claimed
    async with engine(database_url, data_dir) as writer:
        for event in expired:
            await writer.enqueue(event)
        for event in expired:
            assert (await final_row(db, event_id, event.pkey)).status == "tooOld"
    assert await db.read(spent_today) == 0
    monkeypatch.undo()
    fresh = [new(event_id, email=f"u{i}@example.org") for i in range(2)]
    async with engine(database_url, data_dir) as writer:
        for event in fresh:
            await writer.enqueue(event)
        for event in fresh:
            assert (await final_row(db, event_id, event.pkey)).status == "processed"
    assert len(smtp.messages) == 2
    assert await db.read(spent_today) == 2


async def test_a_failed_cycle_written_part_by_part_still_gives_the_tokens_back(
    db: Database,
    database_url: str,
    data_dir: Path,
    smtp: FakeSMTPServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A cycle that fails for one bad row is written again part by part (`Writer._isolate`):
    the outcomes' part still knows the caps, so an ending no provider saw gives its token
    back there too."""
    blank = {"html": "{{ ctx.firstName }}", "text": "{{ ctx.firstName }}"}
    async with api_only(database_url, data_dir) as admin:
        event_id = await capped_event(admin, smtp, {"per_day": 3}, blank)
    unsent = queued_event(event_id, ctx={"firstName": ""})
    bad = queued_event(event_id, ctx={"x": nested_lists(300)})  # unserialisable at the store
    async with engine(database_url, data_dir) as writer:
        record = writer.record
        failed: list[BaseException | None] = []

        async def record_beside_a_bad_trigger(outcome: Outcome) -> None:
            # The same loop turn: one cycle holds the outcome and the bad row.
            _, result = await asyncio.gather(
                record(outcome), writer.enqueue(bad), return_exceptions=True
            )
            failed.append(result if isinstance(result, BaseException) else None)

        monkeypatch.setattr(writer, "record", record_beside_a_bad_trigger)
        await writer.enqueue(unsent)
        assert (await final_row(db, event_id, unsent.pkey)).status == "routingFailed"
        await wait_until(lambda: bool(failed), what="the bad trigger's answer")
    assert isinstance(failed[0], Exception)  # the cycle failed, and was written part by part
    assert await db.read(spent_today) == 0
