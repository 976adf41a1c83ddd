"""Status webhooks end to end: a real receiver under uvicorn on loopback, failing then
answering, signatures checked with the receiver's own HMAC, sends never waiting for it."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from datetime import UTC, datetime
from typing import Any

from helpers import assert_problem, create_channel, live_event, trigger, wait_status, wait_until
from txmsg.core.delivery import Interaction, LogEntry
from txmsg.store import delivery_log, webhook_outbox
from txmsg.store.db import Database
from txmsg.testing import FakeSMTPServer
from webhook_support import SECRET, Call, Receiver


async def outbox_drained(store: Database, eid: str) -> None:
    """Delivered calls leave the outbox (just after the receiver answered)."""
    for _ in range(200):
        if not await store.read(webhook_outbox.pending, eid):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"calls of {eid} still in the outbox")


def verify(call: Call, secret: str) -> None:
    """The receiver's side: recompute the HMAC over `t.body` and compare in constant time."""
    parts = dict(p.split("=", 1) for p in call.headers["x-txmsg-signature"].split(","))
    assert abs(int(parts["t"]) - time.time()) < 60
    expected = hmac.new(secret.encode(), parts["t"].encode() + b"." + call.body, hashlib.sha256)
    assert hmac.compare_digest(parts["v1"], expected.hexdigest())


async def test_webhook_retried_until_the_receiver_answers_and_signed(
    server: Any, smtp: FakeSMTPServer, receiver: Receiver, store: Database
) -> None:
    admin = server.admin
    eid = await live_event(admin, smtp)
    # Set with one URL, then moved: an update without a secret keeps the stored one.
    r = await admin.patch(
        f"/api/v1/event-configs/{eid}",
        json={"webhook": {"url": "http://127.0.0.1:9/nowhere", "secret": SECRET}},
    )
    assert r.status_code == 200, r.text
    r = await admin.patch(f"/api/v1/event-configs/{eid}", json={"webhook": {"url": receiver.url}})
    assert r.json()["webhook"] == {"url": receiver.url, "secret_set": True}
    assert SECRET not in r.text
    receiver.failures = 2

    accepted = await trigger(admin, eid)
    pkey = accepted["PKey"]
    await wait_status(admin, accepted["href"], "processed")
    opened_at = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    await store.write(
        delivery_log.append_in,
        [LogEntry(pkey, eid, Interaction.OPENED, opened_at, {"ua": "Mail"})],
    )
    await wait_until(lambda: len(receiver.delivered()) == 2, what="both calls delivered")

    assert [c.answered for c in receiver.calls][:2] == [500, 500]
    for call in receiver.calls:
        verify(call, SECRET)
        assert call.headers["content-type"] == "application/json"
    by_kind = {(d["status"], d["interaction"]): d for d in receiver.delivered()}
    status = by_kind[("processed", None)]
    assert status["PKey"] == pkey and status["eventId"] == eid and status["reason"] is None
    assert datetime.fromisoformat(status["at"]) <= datetime.now(UTC)
    assert by_kind[(None, "opened")] == {
        "id": by_kind[(None, "opened")]["id"],
        "PKey": pkey,
        "eventId": eid,
        "status": None,
        "interaction": "opened",
        "at": "2026-11-23T10:00:00.000Z",
        "reason": None,
        "detail": {"ua": "Mail"},
    }
    # A retried call carries the same id: receivers drop duplicates with it.
    failed_ids = {c.json["id"] for c in receiver.calls if c.answered == 500}
    assert failed_ids <= {d["id"] for d in receiver.delivered()}
    await outbox_drained(store, eid)

    # An unpublished event's waiting triggers end `ignored`: announced too, with the reason.
    await admin.post(f"/api/v1/event-configs/{eid}/pause")
    held = await trigger(admin, eid)
    await admin.post(f"/api/v1/event-configs/{eid}/unpublish")
    await wait_until(lambda: len(receiver.delivered()) == 3, what="the ignored call")
    ignored = receiver.delivered()[-1]
    assert (ignored["PKey"], ignored["status"]) == (held["PKey"], "ignored")
    assert "unpublished" in ignored["reason"]


async def test_a_hanging_receiver_does_not_slow_sends(
    server: Any, smtp: FakeSMTPServer, receiver: Receiver, store: Database
) -> None:
    admin = server.admin
    eid = await live_event(admin, smtp)
    r = await admin.patch(
        f"/api/v1/event-configs/{eid}", json={"webhook": {"url": receiver.url, "secret": SECRET}}
    )
    assert r.status_code == 200, r.text
    receiver.hold = asyncio.Event()
    started = time.monotonic()
    hrefs = [(await trigger(admin, eid))["href"] for _ in range(5)]
    for href in hrefs:
        await wait_status(admin, href, "processed", timeout=3)
    assert time.monotonic() - started < 3
    await smtp.wait_for(5)
    assert receiver.calls == []  # every call is still hanging at the receiver
    assert len(await store.read(webhook_outbox.pending, eid)) == 5

    receiver.hold.set()
    await wait_until(lambda: len(receiver.delivered()) == 5, what="the held calls answered")
    assert sorted(d["PKey"] for d in receiver.delivered()) == sorted(h[-26:] for h in hrefs)
    await outbox_drained(store, eid)


async def test_webhook_settings_are_checked_and_removable(
    server: Any, smtp: FakeSMTPServer, store: Database
) -> None:
    admin = server.admin
    await create_channel(admin, smtp)
    base = {"eventId": "hooked", "channel": "email", "channel_config": "mail"}
    for webhook, field_name in [
        ({"url": "http://example.com/h"}, "webhook.secret"),
        ({"url": "ftp://example.com/h", "secret": SECRET}, "webhook.url"),
        ({"url": "http://u:p@example.com/h", "secret": SECRET}, "webhook.url"),
        ({"url": "http://example.com/h", "secret": "short"}, "webhook.secret"),
        ({"url": "http://example.com/h", "secret": SECRET, "x": 1}, "webhook.x"),
        ("http://example.com/h", "webhook"),
    ]:
        r = await admin.post("/api/v1/event-configs", json={**base, "webhook": webhook})
        assert_problem(r, 400, field_name)
    r = await admin.post(
        "/api/v1/event-configs",
        json={**base, "webhook": {"url": "https://example.com/h", "secret": SECRET}},
    )
    assert r.status_code == 201, r.text
    assert r.json()["webhook"] == {"url": "https://example.com/h", "secret_set": True}
    r = await admin.patch("/api/v1/event-configs/EVThooked", json={"webhook": None})
    assert r.json()["webhook"] is None
    # Without a stored secret, a new webhook needs one again.
    r = await admin.patch(
        "/api/v1/event-configs/EVThooked", json={"webhook": {"url": "https://example.com/h"}}
    )
    assert_problem(r, 400, "webhook.secret")
