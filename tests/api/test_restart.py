"""Accepted events survive a restart and a crash: the database is the queue's source of truth."""

from __future__ import annotations

import asyncio
from pathlib import Path

from conftest import RunningServer, settings_for
from helpers import (
    SilentSMTPServer,
    create_channel,
    create_event,
    free_port,
    live_event,
    publish_message,
    set_smtp,
    trigger,
    wait_status,
    wait_until,
)
from process_support import Txmsg, body, pkeys_of
from txmsg.testing import FakeSMTPServer


async def test_queued_events_are_sent_after_a_restart(
    database_url: str, data_dir: Path, smtp: FakeSMTPServer
) -> None:
    settings = settings_for(database_url, data_dir)
    async with RunningServer(settings) as first:
        # The SMTP server is down: nothing can be sent, everything stays queued.
        await create_channel(first.admin, smtp)
        await set_smtp(first.admin, "127.0.0.1", free_port())
        created = await create_event(first.admin)
        event_id = created["eventId"]
        r = await first.admin.post(f"/api/v1/event-configs/{event_id}/publish")
        assert r.status_code == 200, r.text
        await publish_message(first.admin, event_id)
        accepted = [await trigger(first.admin, event_id, body(i)) for i in range(5)]
        await asyncio.sleep(0.2)  # a few failed attempts
        for a in accepted:
            r = await first.admin.get(a["href"])
            assert r.json()["status"] in ("pending", "processing"), r.json()
    assert smtp.messages == []

    async with RunningServer(settings_for(database_url, data_dir)) as second:
        for a in accepted:  # still queued (this server's dispatcher may have claimed them)
            r = await second.admin.get(a["href"])
            assert r.status_code == 200, r.text
            assert r.json()["status"] in ("pending", "processing"), r.json()
        await set_smtp(second.admin, smtp.host, smtp.port)
        for a in accepted:
            await wait_status(second.admin, a["href"], "processed")
    mails = await smtp.wait_for(5)
    assert sorted(pkeys_of(mails)) == sorted(a["PKey"] for a in accepted)


async def test_a_crash_loses_no_accepted_event(
    database_url: str, data_dir: Path, tmp_path: Path, smtp: FakeSMTPServer
) -> None:
    """SIGKILL with events waiting to be retried (pending) and events mid-send (leased)."""
    args = ["serve", "--port", "{port}", "--log-level", "warning"]
    server = Txmsg(args, database_url, data_dir, tmp_path / "server.log", TXMSG_LEASE_SECONDS="1")
    smtp.fail_always(451, "4.3.0 Try again later")
    async with SilentSMTPServer() as silent, server.running() as admin:
        event_id = await live_event(admin, smtp)
        # A second event whose SMTP server never answers: its sends hang, `processing`.
        await create_channel(admin, silent, name="hang")  # type: ignore[arg-type]
        hanging = await create_event(admin, "hanging", channel_config="hang")
        r = await admin.post("/api/v1/event-configs/EVThanging/publish")
        assert r.status_code == 200, r.text
        await publish_message(admin, hanging["eventId"])

        retrying = [await trigger(admin, event_id, body(i)) for i in range(6)]
        in_flight = [await trigger(admin, "EVThanging", body(i)) for i in range(6, 10)]
        # Each was tried at least once, and failed.
        await wait_until(lambda: smtp.rejected >= len(retrying), what="a first attempt each")
        for a in in_flight:
            await wait_status(admin, a["href"], "processing")
        await server.kill()  # no shutdown: leases held, in-flight sends abandoned
    assert smtp.messages == []

    smtp.reset_failures()
    async with server.running() as admin:
        await set_smtp(admin, smtp.host, smtp.port, name="hang")
        # The leased ones wait for their 1 s lease to run out, then the sweep requeues them.
        for a in retrying + in_flight:
            await wait_status(admin, a["href"], "processed", timeout=10)
    accepted = retrying + in_flight
    mails = await smtp.wait_for(len(accepted))
    # Each accepted event delivered (at least once), none lost.
    assert set(pkeys_of(mails)) == {a["PKey"] for a in accepted}
