"""Leases under slow sends, due events before fresh ones, nothing lost at shutdown."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from conftest import RunningServer, settings_for
from helpers import (
    create_channel,
    create_event,
    publish_message,
    trigger,
    wait_status,
    wait_until,
)
from txmsg.core.statuses import EventStatus
from txmsg.core.timeutil import utcnow
from txmsg.store.db import Database
from txmsg.store.tables import events
from txmsg.testing import FakeSMTPServer


async def _live(admin, smtp: FakeSMTPServer, pool_size: int) -> str:
    await create_channel(admin, smtp)
    r = await admin.patch("/api/v1/channel-configs/mail", json={"smtp": {"pool_size": pool_size}})
    assert r.status_code == 200, r.text
    created = await create_event(admin, "slow")
    event_id = created["eventId"]
    assert (await admin.post(f"/api/v1/event-configs/{event_id}/publish")).status_code == 200
    await publish_message(admin, event_id)
    return event_id


async def test_a_slow_server_gets_each_event_once(database_url, data_dir) -> None:
    # Sends queue behind one slow connection far longer than the 1 s lease: the leases are
    # renewed while the process holds them, so no event is claimed and sent twice.
    settings = settings_for(database_url, data_dir, lease=timedelta(seconds=1))
    async with FakeSMTPServer(delay=0.3) as smtp, RunningServer(settings) as server:
        event_id = await _live(server.admin, smtp, pool_size=1)
        accepted = [
            await trigger(
                server.admin, event_id, {"email": f"u{i}@example.org", "ctx": {"firstName": "Ada"}}
            )
            for i in range(10)
        ]
        for a in accepted:
            await wait_status(server.admin, a["href"], "processed", timeout=20)
        await asyncio.sleep(1.5)  # time for any duplicate to arrive
        ids = [m.message["Message-ID"] for m in smtp.messages]
        assert len(ids) == 10, ids
        assert len(set(ids)) == 10


def _take_over_processing(conn: Connection) -> int:
    """What another process's claim does to a lease that lapsed: a new token, a new end."""
    stmt = (
        sa.update(events)
        .where(events.c.status == EventStatus.PROCESSING.value)
        .where(events.c.lease_token != "another-process")
        .values(lease_token="another-process", lease_until=utcnow() + timedelta(minutes=10))
    )
    return conn.execute(stmt).rowcount


async def test_a_send_that_waited_past_its_lease_is_not_made(database_url, data_dir) -> None:
    # Two sends share one slow connection; while the second waits for it, another process's
    # claim takes both events (their leases lapsed under load, say). The renewal comes back
    # without them: the waiting send must not be made, or its message goes out twice.
    settings = settings_for(database_url, data_dir, lease=timedelta(seconds=1))
    async with FakeSMTPServer(delay=1.5) as smtp, RunningServer(settings) as server:
        event_id = await _live(server.admin, smtp, pool_size=1)
        for i in range(2):
            body = {"email": f"u{i}@example.org", "ctx": {"firstName": "Ada"}}
            await trigger(server.admin, event_id, body)
        db = server.app.state.txmsg.db
        taken = 0
        for _ in range(100):  # both claimed (processing) at once, as a rule
            taken += await db.write(_take_over_processing)
            if taken == 2:
                break
            await asyncio.sleep(0.01)
        assert taken == 2
        await smtp.wait_for(1)  # the one already on the connection goes: past the check
        await asyncio.sleep(2.0)  # the other's turn came and went
        assert len(smtp.messages) == 1


async def test_due_events_in_the_queue_go_before_fresh_triggers(database_url, data_dir) -> None:
    settings = settings_for(database_url, data_dir, max_in_flight=2)
    async with FakeSMTPServer(delay=0.05) as smtp, RunningServer(settings) as server:
        event_id = await _live(server.admin, smtp, pool_size=2)
        assert (await server.admin.post(f"/api/v1/event-configs/{event_id}/pause")).is_success
        backlog = [
            (
                await trigger(
                    server.admin,
                    event_id,
                    {"email": f"old{i}@example.org", "ctx": {"firstName": "Ada"}},
                )
            )["PKey"]
            for i in range(8)
        ]
        assert (await server.admin.post(f"/api/v1/event-configs/{event_id}/resume")).is_success
        fresh = await asyncio.gather(
            *(
                trigger(
                    server.admin,
                    event_id,
                    {"email": f"new{i}@example.org", "ctx": {"firstName": "Ada"}},
                )
                for i in range(4)
            )
        )
        await smtp.wait_for(12, timeout=20)
        order = [m.message["Message-ID"].split("@")[0].strip("<") for m in smtp.messages]
        # At most one in-flight batch (2) of fresh events may overtake the backlog.
        overtaken = [p for p in order[:8] if p not in backlog]
        assert len(overtaken) <= 2, (order, backlog, [f["PKey"] for f in fresh])


async def _trigger_four(admin, event_id: str) -> list[dict]:
    body = {"ctx": {"firstName": "Ada"}}
    return [
        await trigger(admin, event_id, {**body, "email": f"u{i}@example.org"}) for i in range(4)
    ]


async def test_stopping_records_every_send_under_way(database_url, data_dir) -> None:
    settings = settings_for(database_url, data_dir)
    async with FakeSMTPServer(delay=0.5) as smtp:
        async with RunningServer(settings) as server:
            event_id = await _live(server.admin, smtp, pool_size=4)
            accepted = await _trigger_four(server.admin, event_id)
            await asyncio.sleep(0.2)  # the sends are under way when the server stops
        async with RunningServer(settings) as server:
            for a in accepted:
                done = await wait_status(server.admin, a["href"], "processed", timeout=10)
                assert done["status"] == "processed"
        assert len(smtp.messages) == 4


async def test_stopping_hands_back_the_sends_still_waiting_for_a_connection(
    database_url, data_dir, db: Database
) -> None:
    # One slow connection, four sends: the one under way finishes and is recorded; the three
    # waiting for the connection are not waited for (that could take their time-outs, one
    # after another) but go back to the queue, due at once, for the next start.
    settings = settings_for(database_url, data_dir, lease=timedelta(seconds=30))
    async with FakeSMTPServer(delay=1.5) as smtp:
        async with RunningServer(settings) as server:
            event_id = await _live(server.admin, smtp, pool_size=1)
            accepted = await _trigger_four(server.admin, event_id)
            await wait_until(lambda: smtp.connections_opened >= 1, what="a send under way")
            await asyncio.sleep(0.3)
            began = time.monotonic()
        took = time.monotonic() - began
        assert took < 3.0, took  # the send under way (1.5 s), not four of them (6 s)
        assert len(smtp.messages) == 1
        rows = await db.read(
            lambda c: c.execute(sa.select(events.c.status, events.c.reason, events.c.due_at)).all()
        )
        assert sorted(r.status for r in rows) == ["pending"] * 3 + ["processed"]
        back = [r for r in rows if r.status == "pending"]
        assert all(r.reason and r.reason.startswith("handed back") for r in back), back
        assert all(r.due_at <= utcnow() for r in back)
        smtp.delay = 0.0
        async with RunningServer(settings) as server:
            for a in accepted:  # sent at once, not after their leases (30 s)
                await wait_status(server.admin, a["href"], "processed", timeout=10)
        assert sorted(m.rcpt_tos[0] for m in smtp.messages) == [
            f"u{i}@example.org" for i in range(4)
        ]
