"""Every event status, reached end to end: HTTP trigger, dispatcher, fake SMTP, status poll."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from engine_support import api_only
from helpers import (
    SilentSMTPServer,
    create_channel,
    create_event,
    live_event,
    publish_message,
    set_smtp,
    trigger,
    wait_status,
    wait_until,
)
from txmsg.testing import FakeSMTPServer

ADA = {"email": "ada@example.org", "ctx": {"firstName": "Ada"}}


def iso(moment: datetime, sep: str = "T") -> str:
    return moment.astimezone(UTC).isoformat(sep=sep, timespec="milliseconds")


async def assert_stays(client, href: str, status: str, seconds: float = 0.25) -> None:
    """The event keeps `status` over a few sweeps (0.1 s) and dispatcher polls (0.05 s)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        r = await client.get(href)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == status, r.json()
        await asyncio.sleep(0.05)


async def publish(admin, event_id: str) -> None:
    r = await admin.post(f"/api/v1/event-configs/{event_id}/publish")
    assert r.status_code == 200, r.text


async def test_pending_processing_processed(server, smtp: FakeSMTPServer) -> None:
    admin = server.admin
    async with SilentSMTPServer() as silent:
        # The SMTP server never greets: the send hangs (until the client's 5 s timeout).
        event_id = await live_event(admin, silent)  # type: ignore[arg-type]
        accepted = await trigger(admin, event_id, ADA)
        assert accepted["status"] == "pending"
        processing = await wait_status(admin, accepted["href"], "processing", timeout=5)
        assert "reason" not in processing
        await wait_until(lambda: silent.connections == 1, what="the send reaching SMTP")
        r = await admin.get(accepted["href"])
        assert r.json()["status"] == "processing"  # still, while the send is under way
        assert smtp.messages == []
        # Point the channel at a working server and drop the hung connection: the failed send
        # is retried, through the new configuration.
        await set_smtp(admin, smtp.host, smtp.port, timeout=5)
        silent.hang_up()
        done = await wait_status(admin, accepted["href"], "processed")
    assert "reason" not in done
    [mail] = await smtp.wait_for(1)
    assert mail.rcpt_tos == ["ada@example.org"]
    assert mail.message["Message-ID"].startswith(f"<{accepted['PKey']}@")


async def test_paused_until_resumed_or_until_the_message_is_published(
    server, smtp: FakeSMTPServer
) -> None:
    admin = server.admin
    # 1. A paused event: triggers are accepted as `paused`, and sent once it resumes.
    event_id = await live_event(admin, smtp)
    r = await admin.post(f"/api/v1/event-configs/{event_id}/pause")
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "paused"
    held = await trigger(admin, event_id, ADA)
    assert held["status"] == "paused"

    # 2. A published event whose message the marketer has not published yet: `paused` too.
    await create_event(admin, "welcome")
    await publish(admin, "EVTwelcome")
    waiting = await trigger(admin, "EVTwelcome", {**ADA, "email": "bob@example.org"})
    assert waiting["status"] == "paused"

    await assert_stays(admin, held["href"], "paused")
    await assert_stays(admin, waiting["href"], "paused", seconds=0.05)
    assert smtp.messages == []

    r = await admin.post(f"/api/v1/event-configs/{event_id}/resume")
    assert r.status_code == 200, r.text
    await wait_status(admin, held["href"], "processed")
    [mail] = await smtp.wait_for(1)
    assert mail.rcpt_tos == ["ada@example.org"]
    r = await admin.get(waiting["href"])
    assert r.json()["status"] == "paused"  # the other event is not concerned

    await publish_message(admin, "EVTwelcome", subject="Welcome {{ ctx.firstName }}")
    await wait_status(admin, waiting["href"], "processed")
    mails = await smtp.wait_for(2)
    assert mails[1].subject == "Welcome Ada" and mails[1].rcpt_tos == ["bob@example.org"]


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
    await publish(admin, event_id)
    await assert_stays(admin, queued[0]["href"], "ignored")
    assert smtp.messages == []


async def test_failures_end_in_their_status_with_a_reason(server, smtp: FakeSMTPServer) -> None:
    admin = server.admin
    await create_channel(admin, smtp)

    # routingFailed: the template does arithmetic on an optional field the trigger did not
    # send (left out, it renders empty, but is no number). Publishing checked the template
    # against sample data, which has every field: it passed.
    await create_event(admin)  # firstName required, amount optional
    await publish(admin, "EVTcartAbandonment")
    await publish_message(
        admin,
        "EVTcartAbandonment",
        html="<p>Hello {{ ctx.firstName }}</p>\n<p>Total: {{ ctx.amount * 2 }}</p>",
        text="Hello {{ ctx.firstName }}",
    )
    unroutable = await trigger(admin, "EVTcartAbandonment", ADA)
    failed = await wait_status(admin, unroutable["href"], "routingFailed")
    reason = failed["reason"]
    assert "html" in reason and "line 2" in reason and "amount" in reason, reason
    ok = await trigger(
        admin,
        "EVTcartAbandonment",
        {"email": "bob@example.org", "ctx": {"firstName": "Bob", "amount": 3}},
    )
    await wait_status(admin, ok["href"], "processed")
    [mail] = await smtp.wait_for(1)
    assert mail.rcpt_tos == ["bob@example.org"]

    # targetingFailed: a profile-targeted event, and no profile store (yet).
    await create_event(admin, "profileWelcome", target="profile")
    await publish(admin, "EVTprofileWelcome")
    await publish_message(admin, "EVTprofileWelcome")
    untargeted = await trigger(admin, "EVTprofileWelcome", ADA)
    failed = await wait_status(admin, untargeted["href"], "targetingFailed")
    assert "profile" in failed["reason"]

    # deliveryFailed: the SMTP server refuses the recipient for good; no retry.
    smtp.fail_always(550, "5.1.1 No such user here", stage="RCPT")
    refused = await trigger(
        admin, "EVTcartAbandonment", {**ADA, "ctx": {"firstName": "A", "amount": 1}}
    )
    failed = await wait_status(admin, refused["href"], "deliveryFailed")
    assert failed["reason"] == "550 5.1.1 No such user here"
    assert smtp.rejected == 1
    assert len(smtp.messages) == 1


async def test_expired_events_are_too_old(server, smtp: FakeSMTPServer) -> None:
    admin = server.admin
    event_id = await live_event(admin, smtp)
    now = datetime.now(UTC)

    # Already expired when triggered: the dispatcher refuses to send it.
    late = await trigger(admin, event_id, {**ADA, "expiration": iso(now - timedelta(minutes=1))})
    assert late["status"] == "pending"
    too_old = await wait_status(admin, late["href"], "tooOld")
    assert "expired" in too_old["reason"]

    # Paused, then its expiration passes: the scheduler's sweep marks it tooOld.
    r = await admin.post(f"/api/v1/event-configs/{event_id}/pause")
    assert r.status_code == 200, r.text
    soon = await trigger(
        admin, event_id, {**ADA, "expiration": iso(datetime.now(UTC) + timedelta(seconds=0.3))}
    )
    assert soon["status"] == "paused"
    expired = await wait_status(admin, soon["href"], "tooOld", timeout=5)
    assert "expired" in expired["reason"]
    # Resuming does not revive it.
    r = await admin.post(f"/api/v1/event-configs/{event_id}/resume")
    assert r.status_code == 200, r.text
    await assert_stays(admin, soon["href"], "tooOld", seconds=0.15)
    assert smtp.messages == []


async def test_scheduled_event_waits_for_its_time(server, smtp: FakeSMTPServer) -> None:
    admin = server.admin
    event_id = await live_event(admin, smtp)
    start = asyncio.get_running_loop().time()
    scheduled = datetime.now(UTC) + timedelta(seconds=1)
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
    now_event = await trigger(
        admin, event_id, {"email": "bob@example.org", "ctx": {"firstName": "Bob"}}
    )
    await wait_status(admin, now_event["href"], "processed")
    r = await admin.get(accepted["href"])
    if datetime.now(UTC) < scheduled:  # (a loaded machine may take longer than 1 s to here)
        assert r.json()["status"] == "pending"
    assert smtp.messages[0].rcpt_tos == ["bob@example.org"]

    await wait_status(admin, accepted["href"], "processed", timeout=5)
    elapsed = asyncio.get_running_loop().time() - start
    assert elapsed >= 0.95, elapsed
    mails = await smtp.wait_for(2)
    assert mails[1].rcpt_tos == ["ada@example.org"]


async def test_a_pending_event_past_its_expiration_says_it_ends_too_old(
    database_url: str, data_dir: Path, smtp: FakeSMTPServer
) -> None:
    """Until a claim ends it `tooOld` (here no worker claims: an API-only process), a pending
    event past its expiration says so in its status and the latest-events list, not that it
    waits for anything that could still send it (a channel cap said it waited until the
    cap's reset)."""
    async with api_only(database_url, data_dir) as admin:
        event_id = await live_event(admin, smtp)
        expiration = iso(datetime.now(UTC) + timedelta(seconds=2))
        soon = await trigger(admin, event_id, {**ADA, "expiration": expiration})
        expiration = soon["expiration"]  # as the API writes times
        fresh = await trigger(admin, event_id, {**ADA, "email": "bo@example.org"})
        assert "reason" not in (await admin.get(soon["href"])).json()
        await asyncio.sleep(2.1)
        status = (await admin.get(soon["href"])).json()
        assert status["status"] == "pending", status
        assert status["reason"] == (
            f"expired before it could be sent (its expiration, {expiration}, passed):"
            " it ends tooOld"
        ), status
        assert "reason" not in (await admin.get(fresh["href"])).json()
        listed = (await admin.get(f"/api/v1/events/{event_id}")).json()["items"]
        assert [(i["PKey"], i["reason"]) for i in listed] == [
            (fresh["PKey"], None),
            (soon["PKey"], status["reason"]),
        ], listed
