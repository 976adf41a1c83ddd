"""A message whose renders run to their time limit holds up no other event's: renders of a
message that timed out wait behind every other render for a while."""

from __future__ import annotations

import asyncio

import pytest

from helpers import create_event, live_event, trigger, wait_status

BOMB = "{% for i in range(ctx.n) %}{% for j in range(ctx.n) %}{% endfor %}{% endfor %}"


@pytest.mark.server_settings(render_timeout_seconds=0.5)
async def test_renders_past_their_time_hold_up_no_other_event(server, smtp) -> None:
    admin = server.admin
    fields = [{"name": "n", "type": "integer", "required": True}]
    receipt = await live_event(admin, smtp, "receipt")  # on the channel live_event makes
    bomb = (await create_event(admin, "bomb", fields=fields))["eventId"]
    assert (await admin.post(f"/api/v1/event-configs/{bomb}/publish")).status_code == 200
    draft = {"subject": "x", "text": BOMB, "html": "", "sample_ctx": {"n": 2}}
    assert (await admin.put(f"/api/v1/messages/{bomb}/draft", json=draft)).status_code == 200
    assert (await admin.post(f"/api/v1/messages/{bomb}/publish", json={})).status_code == 201
    slow = [
        await trigger(admin, bomb, {"email": f"b{i}@example.org", "ctx": {"n": 99_999}})
        for i in range(12)
    ]
    loop = asyncio.get_running_loop()
    started = loop.time()
    sent = await trigger(admin, receipt, {"email": "ada@example.org", "ctx": {"firstName": "A"}})
    await wait_status(admin, sent["href"], "processed", timeout=30)
    waited = loop.time() - started
    # Behind the first slow render of each worker at most (then the message is known to be
    # slow, and its renders wait behind every other), not behind all of them (12 x 0.5 s
    # over 2 workers).
    assert waited < 2.0, waited
    for accepted in slow:
        done = await wait_status(admin, accepted["href"], "routingFailed", timeout=60)
        assert "rendering took longer" in done["reason"]
