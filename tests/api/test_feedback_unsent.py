"""Feedback only about a message a provider saw: a bounce or spam complaint about a message
never sent (queued, paused, expired before any attempt) is refused by the feedback endpoint
(422 naming its PKey) and dropped by the bounce listener, with nothing written; one about a
sent message, or an attempt a provider refused for now (a 4xx, then a retry), is recorded."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.message import Message
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from test_bounces import BOUNCE_DOMAIN, bounce_event, deliver, dsn, log_of, quarantined

from helpers import assert_problem, live_event, trigger, wait_status
from txmsg.core.verp import bounce_address
from txmsg.testing import FakeSMTPServer

ADA = {"email": "ada@example.org", "ctx": {"firstName": "Ada"}}
HARD = {"type": "bounce", "bounce": "hard", "reason": "550 5.1.1 unknown"}


async def totals(admin: httpx.AsyncClient, event_id: str) -> dict[str, Any]:
    r = await admin.get(f"/api/v1/reports/{event_id}")
    assert r.status_code == 200, r.text
    total: dict[str, Any] = r.json()["total"]
    return total


async def wait_retrying(admin: httpx.AsyncClient, href: str) -> dict[str, Any]:
    """The event's status once its first attempt was deferred (pending, with a reason)."""
    for _ in range(300):
        status = await wait_status(admin, href, "pending")
        if (status.get("reason") or "").startswith("retrying: "):
            return status
        await asyncio.sleep(0.03)
    raise AssertionError(f"never retrying: {status}")


async def suppressed(admin: httpx.AsyncClient, address: str) -> list[str]:
    r = await admin.get(f"/api/v1/suppressions/email/{address}")
    assert r.status_code == 200, r.text
    return [x["reason"] for x in r.json()["reasons"]]


@pytest.mark.server_settings(bounce_listen="127.0.0.1:0")
async def test_a_bounce_for_a_paused_message_is_refused(server, smtp: FakeSMTPServer) -> None:
    admin = server.admin
    event_id = await bounce_event(server, smtp)
    r = await admin.post(f"/api/v1/event-configs/{event_id}/pause")
    assert r.status_code == 200, r.text
    held = await trigger(admin, event_id, ADA)
    await wait_status(admin, held["href"], "paused")

    r = await admin.post("/api/v1/feedback", json={"PKey": held["PKey"], **HARD})
    problem = assert_problem(r, 422, "PKey")
    assert f"{held['PKey']} (paused)" in problem["detail"]
    assert "no provider saw" in problem["errors"][0]["detail"]
    r = await admin.post("/api/v1/feedback", json={"items": [{"PKey": held["PKey"], **HARD}]})
    assert_problem(r, 422, "items[0].PKey")

    # A DSN naming it (a forged one: its VERP address is genuine) is dropped like one for
    # an unknown message: accepted by SMTP, recorded nowhere.
    secret = server.app.state.bounce_listener._secret
    original = Message()
    original["Message-ID"] = f"<{held['PKey']}@example.com>"
    sent_as = SimpleNamespace(message=original)  # the headers a DSN quotes
    report = dsn("ada@example.org", "failed", "5.1.1", "550 5.1.1 unknown", sent_as)
    await deliver(server, bounce_address(secret, held["PKey"], BOUNCE_DOMAIN), report)

    assert await log_of(admin, held) == []
    assert await quarantined(admin) == []

    # Resumed, it is sent as if nothing had been reported.
    r = await admin.post(f"/api/v1/event-configs/{event_id}/resume")
    assert r.status_code == 200, r.text
    await wait_status(admin, held["href"], "processed")
    assert await log_of(admin, held) == []
    total = await totals(admin, event_id)
    assert (total["bounced_hard"], total["ignored"], total["sent"]) == (0, 0, 1), total
    # Sent now: the same report is about a message a provider saw.
    r = await admin.post("/api/v1/feedback", json={"PKey": held["PKey"], **HARD})
    assert r.status_code == 202, r.text
    assert "ada@example.org" in await quarantined(admin)


async def test_a_complaint_about_a_message_expired_unsent_is_refused(
    server, smtp: FakeSMTPServer
) -> None:
    admin = server.admin
    event_id = await live_event(admin, smtp)
    expired = (datetime.now(UTC) - timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    late = await trigger(admin, event_id, {**ADA, "expiration": expired})
    status = await wait_status(admin, late["href"], "tooOld")
    assert status["reason"] == "expired before it could be sent"

    r = await admin.post("/api/v1/feedback", json={"PKey": late["PKey"], "type": "spam"})
    assert f"{late['PKey']} (tooOld)" in assert_problem(r, 422, "PKey")["detail"]
    assert await log_of(admin, late) == []
    assert await suppressed(admin, "ada@example.org") == []
    total = await totals(admin, event_id)
    assert total["spam"] == 0, total
    assert smtp.messages == []


async def test_feedback_about_a_sent_message_is_recorded(server, smtp: FakeSMTPServer) -> None:
    admin = server.admin
    event_id = await live_event(admin, smtp)
    sent = await trigger(admin, event_id, ADA)
    await wait_status(admin, sent["href"], "processed")
    r = await admin.post("/api/v1/feedback", json={"PKey": sent["PKey"], "type": "spam"})
    assert r.status_code == 202, r.text
    assert [e["kind"] for e in await log_of(admin, sent)] == ["spam"]
    assert await suppressed(admin, "ada@example.org") == ["spam_complaint"]
    assert (await totals(admin, event_id))["spam"] == 1


# One 4xx, then a retry far enough away that the event is still waiting for it.
@pytest.mark.server_settings(retry_base_seconds=60.0, retry_max_seconds=60.0)
async def test_a_soft_bounce_about_an_attempt_a_provider_deferred_is_recorded(
    server, smtp: FakeSMTPServer
) -> None:
    admin = server.admin
    event_id = await live_event(admin, smtp)
    smtp.fail_next(451, "4.3.0 Try again later", stage="DATA")
    waiting = await trigger(admin, event_id, ADA)
    status = await wait_retrying(admin, waiting["href"])
    assert status["reason"].startswith("retrying: 451"), status
    body = {"PKey": waiting["PKey"], "type": "bounce", "bounce": "soft", "reason": "452 full"}
    r = await admin.post("/api/v1/feedback", json=body)
    assert r.status_code == 202, r.text
    [entry] = await log_of(admin, waiting)
    assert entry["detail"] == {"bounce": "soft", "reason": "452 full", "source": "api"}
    assert (await totals(admin, event_id))["bounced_soft"] == 1
