"""Steps shared by the end-to-end tests, each through the public HTTP API."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from txmsg.testing import FakeSMTPServer

FINAL = {"processed", "ignored", "deliveryFailed", "routingFailed", "tooOld", "targetingFailed"}


async def create_channel(
    admin: httpx.AsyncClient, smtp: FakeSMTPServer, name: str = "mail", **extra: Any
) -> dict[str, Any]:
    body = {
        "name": name,
        "channel": "email",
        "from_email": "shop@example.com",
        "from_name": "Example Shop",
        "reply_to": "help@example.com",
        "smtp": {"host": smtp.host, "port": smtp.port, "tls": "none", "timeout": 5},
        **extra,
    }
    r = await admin.post("/api/v1/channel-configs", json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def create_event(
    admin: httpx.AsyncClient,
    event_id: str = "cartAbandonment",
    fields: list[dict[str, Any]] | None = None,
    channel_config: str = "mail",
    **extra: Any,
) -> dict[str, Any]:
    body = {
        "eventId": event_id,
        "label": "Cart abandonment",
        "channel": "email",
        "channel_config": channel_config,
        "target": "event",
        "fields": fields
        if fields is not None
        else [
            {"name": "firstName", "type": "string", "required": True},
            {"name": "amount", "type": "number", "required": False},
        ],
        **extra,
    }
    r = await admin.post("/api/v1/event-configs", json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def publish_message(
    client: httpx.AsyncClient,
    event_id: str,
    subject: str = "Hello {{ ctx.firstName }}",
    html: str = "<p>Hi {{ ctx.firstName }}, ref {{ event.PKey }}</p>",
    text: str = "Hi {{ ctx.firstName }}, ref {{ event.PKey }}",
) -> dict[str, Any]:
    r = await client.put(
        f"/api/v1/messages/{event_id}/draft", json={"subject": subject, "html": html, "text": text}
    )
    assert r.status_code == 200, r.text
    r = await client.post(f"/api/v1/messages/{event_id}/publish")
    assert r.status_code == 201, r.text
    return r.json()


async def live_event(
    admin: httpx.AsyncClient, smtp: FakeSMTPServer, event_id: str = "cartAbandonment", **kw: Any
) -> str:
    """A channel, a published event and a published message; returns the stored eventId."""
    await create_channel(admin, smtp)
    created = await create_event(admin, event_id, **kw)
    r = await admin.post(f"/api/v1/event-configs/{created['eventId']}/publish")
    assert r.status_code == 200, r.text
    await publish_message(admin, created["eventId"])
    return created["eventId"]


async def trigger(
    client: httpx.AsyncClient, event_id: str, body: dict[str, Any] | None = None, **kw: Any
) -> dict[str, Any]:
    payload = body if body is not None else {"email": "ada@example.org",
                                             "ctx": {"firstName": "Ada"}}
    r = await client.post(f"/rest/mc/{event_id}", json=payload, **kw)
    assert r.status_code == 201, r.text
    return r.json()


async def wait_status(
    client: httpx.AsyncClient, href: str, wanted: str | set[str], timeout: float = 10.0
) -> dict[str, Any]:
    wanted_set = {wanted} if isinstance(wanted, str) else wanted
    deadline = asyncio.get_running_loop().time() + timeout
    last: dict[str, Any] = {}
    while asyncio.get_running_loop().time() < deadline:
        r = await client.get(href)
        assert r.status_code == 200, r.text
        last = r.json()
        if last["status"] in wanted_set:
            return last
        await asyncio.sleep(0.03)
    raise AssertionError(f"status never became {wanted_set}; last seen: {last}")
