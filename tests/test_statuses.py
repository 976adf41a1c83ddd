"""Every event status, reached end to end: HTTP trigger, dispatcher, fake SMTP, status poll."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from helpers import (
    SilentSMTPServer,
    create_channel,
    create_event,
    live_event,
    publish_message,
    set_smtp,
    trigger,
    wait_status,
)

from txmsg.testing import FakeSMTPServer

ADA = {"email": "ada@example.org", "ctx": {"firstName": "Ada"}}


def iso(moment: datetime, sep: str = "T") -> str:
    return moment.astimezone(UTC).isoformat(sep=sep, timespec="milliseconds")


async def assert_stays(client, href: str, status: str, seconds: float = 0.3) -> None:  # noqa: ANN001
    """The event keeps `status` over a few sweeps and dispatcher polls."""
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        r = await client.get(href)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == status, r.json()
        await asyncio.sleep(0.05)


async def test_pending_processing_processed(server, smtp: FakeSMTPServer) -> None:
    admin = server.admin
    async with SilentSMTPServer() as silent:
        # The SMTP server never greets: the send hangs until the client's timeout.
        await create_channel(admin, silent)  # type: ignore[arg-type]
        created = await create_event(admin)
        event_id = created["eventId"]
        r = await admin.post(f"/api/v1/event-configs/{event_id}/publish")
        assert r.status_code == 200, r.text
        await publish_message(admin, event_id)

        accepted = await trigger(admin, event_id, ADA)
        assert accepted["status"] == "pending"
        processing = await wait_status(admin, accepted["href"], "processing", timeout=5)
        assert "reason" not in processing
        for _ in range(200):  # the send is under way: it reached the SMTP server
            if silent.connections:
                break
            await asyncio.sleep(0.01)
        assert silent.connections == 1
        r = await admin.get(accepted["href"])
        assert r.json()["status"] == "processing"
        assert smtp.messages == []
        # Point the channel at a working server and drop the hung connection: the failed send
        # is retried, through the new configuration.
        await set_smtp(admin, smtp.host, smtp.port, timeout=5)
        silent.hang_up()
        done = await wait_status(admin, accepted["href"], "processed", timeout=10)
    assert "reason" not in done
    [mail] = await smtp.wait_for(1)
    assert mail.rcpt_tos == ["ada@example.org"]
    assert mail.message["Message-ID"].startswith(f"<{accepted['PKey']}@")


async def test_paused_event_queues_triggers_until_resumed(server, smtp: FakeSMTPServer) -> None:
    admin = server.admin
    event_id = await live_event(admin, smtp)
    r = await admin.post(f"/api/v1/event-configs/{event_id}/pause")
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "paused"

    accepted = await trigger(admin, event_id, ADA)
    assert accepted["status"] == "paused"
    await assert_stays(admin, accepted["href"], "paused")
    assert smtp.messages == []

    r = await admin.post(f"/api/v1/event-configs/{event_id}/resume")
    assert r.status_code == 200, r.text
    await wait_status(admin, accepted["href"], "processed")
    [mail] = await smtp.wait_for(1)
    assert mail.rcpt_tos == ["ada@example.org"]


async def test_event_without_published_message_is_paused_until_it_is(
    server, smtp: FakeSMTPServer
) -> None:
    admin = server.admin
    await create_channel(admin, smtp)
    created = await create_event(admin)
    event_id = created["eventId"]
    r = await admin.post(f"/api/v1/event-configs/{event_id}/publish")
    assert r.status_code == 200, r.text

    # Published event, but the marketer has not published its message yet.
    accepted = await trigger(admin, event_id, ADA)
    assert accepted["status"] == "paused"
    await assert_stays(admin, accepted["href"], "paused")
    assert smtp.messages == []

    await publish_message(admin, event_id, subject="Now live {{ ctx.firstName }}")
    await wait_status(admin, accepted["href"], "processed")
    [mail] = await smtp.wait_for(1)
    assert mail.subject == "Now live Ada"


async def test_unpublish_ignores_queued_events(server, smtp: FakeSMTPServer) -> None:
    admin = server.admin
    event_id = await live_event(admin, smtp)
    r = await admin.post(f"/api/v1/event-configs/{event_id}/pause")
    assert r.status_code == 200, r.text
    queued = [await trigger(admin, event_id, ADA) for _ in range(2)]
    assert {q["status"] for q in queued} == {"paused"}

    r = await admin.post(f"/api/v1/event-configs/{event_id}/unpublish")
    assert r.status_code == 200, r.text
    for q in queued:
        ignored = await wait_status(admin, q["href"], "ignored")
        assert "unpublished" in ignored["reason"]
    # Republishing does not bring ignored events back.
    r = await admin.post(f"/api/v1/event-configs/{event_id}/publish")
    assert r.status_code == 200, r.text
    await assert_stays(admin, queued[0]["href"], "ignored")
    assert smtp.messages == []


async def test_permanent_rcpt_refusal_is_delivery_failed(server, smtp: FakeSMTPServer) -> None:
    admin = server.admin
    event_id = await live_event(admin, smtp)
    smtp.fail_always(550, "5.1.1 No such user here", stage="RCPT")
    accepted = await trigger(admin, event_id, ADA)
    failed = await wait_status(admin, accepted["href"], "deliveryFailed")
    assert "550" in failed["reason"]
    assert "No such user" in failed["reason"]
    assert smtp.messages == []
    assert smtp.rejected == 1  # permanent: not retried


async def test_unrenderable_message_is_routing_failed(server, smtp: FakeSMTPServer) -> None:
    admin = server.admin
    await create_channel(admin, smtp)
    created = await create_event(admin)  # firstName required, amount optional
    event_id = created["eventId"]
    r = await admin.post(f"/api/v1/event-configs/{event_id}/publish")
    assert r.status_code == 200, r.text
    # Publishing checks the template with sample data, which has every field: it passes.
    await publish_message(
        admin,
        event_id,
        subject="Hello {{ ctx.firstName }}",
        html="<p>Hello {{ ctx.firstName }}</p>\n<p>Total: {{ ctx.amount }}</p>",
        text="Hello {{ ctx.firstName }}",
    )
    accepted = await trigger(admin, event_id, ADA)  # no ctx.amount
    failed = await wait_status(admin, accepted["href"], "routingFailed")
    reason = failed["reason"]
    assert "html" in reason and "line 2" in reason and "amount" in reason, reason
    # An event carrying the optional field renders fine.
    ok = await trigger(
        admin, event_id, {"email": "bob@example.org", "ctx": {"firstName": "Bob", "amount": 3}}
    )
    await wait_status(admin, ok["href"], "processed")
    [mail] = await smtp.wait_for(1)
    assert mail.rcpt_tos == ["bob@example.org"]


async def test_expired_events_are_too_old(server, smtp: FakeSMTPServer) -> None:
    admin = server.admin
    event_id = await live_event(admin, smtp)
    now = datetime.now(UTC)

    # Already expired when triggered: the dispatcher refuses to send it.
    late = await trigger(admin, event_id, {**ADA, "expiration": iso(now - timedelta(minutes=1))})
    assert late["status"] == "pending"
    too_old = await wait_status(admin, late["href"], "tooOld")
    assert too_old["reason"]

    # Paused, then its expiration passes: the scheduler's sweep marks it tooOld.
    r = await admin.post(f"/api/v1/event-configs/{event_id}/pause")
    assert r.status_code == 200, r.text
    soon = await trigger(
        admin, event_id, {**ADA, "expiration": iso(datetime.now(UTC) + timedelta(seconds=0.5))}
    )
    assert soon["status"] == "paused"
    expired = await wait_status(admin, soon["href"], "tooOld", timeout=5)
    assert "expired" in expired["reason"]
    # Resuming does not revive it.
    r = await admin.post(f"/api/v1/event-configs/{event_id}/resume")
    assert r.status_code == 200, r.text
    await assert_stays(admin, soon["href"], "tooOld", seconds=0.2)
    assert smtp.messages == []


async def test_profile_target_without_profile_store_is_targeting_failed(
    server, smtp: FakeSMTPServer
) -> None:
    admin = server.admin
    event_id = await live_event(admin, smtp, "profileWelcome", target="profile")
    accepted = await trigger(admin, event_id, ADA)
    failed = await wait_status(admin, accepted["href"], "targetingFailed")
    assert failed["reason"]
    assert smtp.messages == []


async def test_scheduled_event_waits_for_its_time(server, smtp: FakeSMTPServer) -> None:
    admin = server.admin
    event_id = await live_event(admin, smtp)
    start = asyncio.get_running_loop().time()
    scheduled = datetime.now(UTC) + timedelta(seconds=1.5)
    # Adobe-style dates with a space instead of the T are accepted.
    body = {
        **ADA,
        "scheduled": iso(scheduled, sep=" "),
        "expiration": iso(scheduled + timedelta(hours=1), sep=" "),
    }
    accepted = await trigger(admin, event_id, body)
    assert accepted["status"] == "pending"
    assert accepted["scheduled"] == iso(scheduled).replace("+00:00", "Z")
    assert accepted["expiration"] == iso(scheduled + timedelta(hours=1)).replace("+00:00", "Z")

    # An unscheduled event sent meanwhile goes first.
    now_event = await trigger(admin, event_id, {"email": "bob@example.org",
                                                "ctx": {"firstName": "Bob"}})
    await wait_status(admin, now_event["href"], "processed")
    r = await admin.get(accepted["href"])
    assert r.json()["status"] == "pending"
    assert [m.rcpt_tos for m in smtp.messages] == [["bob@example.org"]]

    await wait_status(admin, accepted["href"], "processed", timeout=5)
    elapsed = asyncio.get_running_loop().time() - start
    assert elapsed >= 1.4, elapsed
    mails = await smtp.wait_for(2)
    assert mails[1].rcpt_tos == ["ada@example.org"]
