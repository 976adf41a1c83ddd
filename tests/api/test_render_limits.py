"""Preview, publish and send answer a template past its bounds cleanly, naming part and bound."""

from __future__ import annotations

import time

import pytest

from helpers import live_event, trigger, wait_status

BOUND = 2 * 1024 * 1024  # TXMSG_RENDER_MAX_BYTES's default


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("{{ 'x' * 10**9 }}", "MiB of memory"),
        ("{{ 'x'|center(10**9) }}", "MiB of memory"),
        ("{% for i in range(30000) %}{{ 'y' * 100 }}{% endfor %}", f"larger than {BOUND >> 20} MB"),
    ],
)
async def test_preview_and_publish_answer_422_naming_part_and_bound(
    server, smtp, html: str, expected: str
) -> None:
    event_id = await live_event(server.admin, smtp)
    r = await server.admin.put(
        f"/api/v1/messages/{event_id}/draft", json={"subject": "s", "text": "t", "html": html}
    )
    assert r.status_code == 200, r.text
    for action in ("preview", "publish"):
        started = time.monotonic()
        r = await server.admin.post(f"/api/v1/messages/{event_id}/{action}", json={})
        assert r.status_code == 422, r.text
        error = r.json()["errors"][0]
        assert error["field"] == "html"
        assert expected in error["detail"]
        assert time.monotonic() - started < 6  # no 1 GB body after 14-22 s
    r = await server.admin.get("/health")
    assert r.status_code == 200


async def test_a_preview_spinning_past_the_time_bound_is_a_422(server, smtp) -> None:
    event_id = await live_event(server.admin, smtp)
    spin = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    r = await server.admin.put(
        f"/api/v1/messages/{event_id}/draft", json={"subject": "s", "text": spin, "html": ""}
    )
    assert r.status_code == 200, r.text
    r = await server.admin.post(f"/api/v1/messages/{event_id}/preview", json={})
    assert r.status_code == 422, r.text
    error = r.json()["errors"][0]
    assert error["field"] == "text"
    assert error["detail"] == "rendering took longer than the 2 s a message may take"


async def test_a_message_past_its_bound_at_send_time_is_routing_failed(server, smtp) -> None:
    fields = [
        {"name": "firstName", "type": "string", "required": True},
        {"name": "n", "type": "integer", "required": True},
    ]
    event_id = await live_event(server.admin, smtp, fields=fields)
    # Cheap with the sample data the publish check renders; huge with the trigger's.
    r = await server.admin.put(
        f"/api/v1/messages/{event_id}/draft",
        json={
            "subject": "x",
            "text": "{{ 'x' * ctx.n }}",
            "html": "",
            "sample_ctx": {"firstName": "A", "n": 3},
        },
    )
    assert r.status_code == 200, r.text
    r = await server.admin.post(f"/api/v1/messages/{event_id}/publish", json={})
    assert r.status_code == 201, r.text
    small = await trigger(
        server.admin, event_id, {"email": "a@example.org", "ctx": {"firstName": "A", "n": 3}}
    )
    huge = await trigger(
        server.admin, event_id, {"email": "b@example.org", "ctx": {"firstName": "B", "n": 10**9}}
    )
    done = await wait_status(server.admin, huge["href"], "routingFailed")
    assert "text: rendering needed more than" in done["reason"]
    assert "cannot be rendered" in done["reason"]
    await wait_status(server.admin, small["href"], "processed")
