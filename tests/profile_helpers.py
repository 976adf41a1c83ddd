"""Steps shared by the profile-based message tests, each through the public HTTP API."""

from __future__ import annotations

from typing import Any

import httpx

from helpers import create_channel, create_event, publish_message
from txmsg.testing import FakeSMTPServer


async def profile_event(
    admin: httpx.AsyncClient,
    smtp: FakeSMTPServer,
    event_id: str = "welcome",
    reconciliation: dict[str, str] | None = None,
    *,
    channel: bool = True,
    subject: str = "Hello {{ profile.first_name }}",
    html: str = "<p>Hi {{ profile.first_name }} <a href='{{ unsubscribe_url }}'>stop</a></p>",
    text: str = "Hi {{ profile.first_name }}, order {{ ctx.order | default('none') }}",
) -> str:
    """A published profile-based event and message; returns the stored eventId."""
    if channel:
        await create_channel(admin, smtp)
    extra: dict[str, Any] = {"target": "profile"}
    if reconciliation is not None:
        extra["reconciliation"] = reconciliation
    created = await create_event(
        admin, event_id, fields=[{"name": "order", "type": "string"}], **extra
    )
    event = created["eventId"]
    r = await admin.post(f"/api/v1/event-configs/{event}/publish")
    assert r.status_code == 200, r.text
    await publish_message(admin, event, subject=subject, html=html, text=text)
    return event


async def put_profile(admin: httpx.AsyncClient, profile_id: str, **fields: Any) -> dict[str, Any]:
    r = await admin.put(f"/api/v1/profiles/{profile_id}", json=fields)
    assert r.status_code in (200, 201), r.text
    result: dict[str, Any] = r.json()
    return result


async def event_based(admin: httpx.AsyncClient, event_id: str = "receipt") -> str:
    """A published event-based event on the existing channel "mail"."""
    created = await create_event(admin, event_id)
    event = created["eventId"]
    r = await admin.post(f"/api/v1/event-configs/{event}/publish")
    assert r.status_code == 200, r.text
    await publish_message(admin, event)
    return event
