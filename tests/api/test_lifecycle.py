"""Event configuration lifecycle and transactional message versions, over HTTP."""

from __future__ import annotations

from helpers import (
    assert_problem,
    create_channel,
    create_event,
    publish_message,
    trigger,
    wait_status,
)
from txmsg.testing import FakeSMTPServer

ADA = {"email": "ada@example.org", "ctx": {"firstName": "Ada"}}


async def test_draft_published_paused_unpublished_and_back(server, smtp: FakeSMTPServer) -> None:
    admin = server.admin
    await create_channel(admin, smtp)
    created = await create_event(admin)
    event_id = created["eventId"]
    item = f"/api/v1/event-configs/{event_id}"
    assert created["state"] == "draft" and created["published_at"] is None
    assert_problem(await admin.get(f"/api/v1/messages/{event_id}"), 404)  # no message yet

    # A draft can be deleted; its eventId is free again.
    await create_event(admin, "temporary")
    r = await admin.delete("/api/v1/event-configs/EVTtemporary")
    assert r.status_code == 204, r.text
    assert_problem(await admin.get("/api/v1/event-configs/EVTtemporary"), 404)
    assert_problem(await admin.delete("/api/v1/event-configs/EVTtemporary"), 404)
    r = await admin.get("/api/v1/event-configs")
    assert [e["eventId"] for e in r.json()["items"]] == [event_id]
    await create_event(admin, "temporary")

    async def act(action: str, state: str) -> dict:
        r = await admin.post(f"{item}/{action}")
        assert r.status_code == 200, r.text
        assert r.json()["state"] == state
        r = await admin.get(item)
        assert r.json()["state"] == state
        return r.json()

    published = await act("publish", "published")
    assert published["published_at"] is not None
    assert_problem(await admin.delete(item), 409)  # once published, never deleted
    # The marketer publishes v1, then keeps editing the draft.
    await publish_message(admin, event_id, subject="v1 {{ ctx.firstName }}")
    r = await admin.put(
        f"/api/v1/messages/{event_id}/draft",
        json={"subject": "draft {{ ctx.firstName }}", "text": "work in progress"},
    )
    assert r.status_code == 200, r.text

    await act("pause", "paused")
    held = await trigger(admin, event_id, ADA)
    assert held["status"] == "paused"
    await act("resume", "published")
    await wait_status(admin, held["href"], "processed")
    [mail] = await smtp.wait_for(1)
    assert mail.subject == "v1 Ada"  # the published version, not the draft

    await act("unpublish", "unpublished")
    assert_problem(await admin.post(f"/rest/mc/{event_id}", json=ADA), 404)
    # Unpublished, its fields may change again (not while live).
    r = await admin.patch(
        item,
        json={
            "label": "Cart reminder",
            "fields": [
                {"name": "firstName", "type": "string", "required": True},
                {"name": "coupon", "type": "string", "required": False},
            ],
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["label"] == "Cart reminder"

    await act("publish", "published")
    # Republishing kept the message: its published version and the draft edits.
    r = await admin.get(f"/api/v1/messages/{event_id}")
    message = r.json()
    assert message["published"]["version"] == 1
    assert message["published"]["subject"] == "v1 {{ ctx.firstName }}"
    assert message["draft"]["subject"] == "draft {{ ctx.firstName }}"
    assert message["draft"]["text"] == "work in progress"
    # The new fields apply to triggers at once.
    assert_problem(
        await admin.post(
            f"/rest/mc/{event_id}", json={**ADA, "ctx": {"firstName": "Ada", "coupon": 5}}
        ),
        422,
        "ctx.coupon",
    )
    again = await trigger(admin, event_id, {**ADA, "ctx": {"firstName": "Bo", "coupon": "X1"}})
    await wait_status(admin, again["href"], "processed")
    mails = await smtp.wait_for(2)
    assert mails[1].subject == "v1 Bo"


async def test_message_versions_are_immutable(server, smtp: FakeSMTPServer) -> None:
    admin = server.admin
    await create_channel(admin, smtp)
    created = await create_event(admin)
    event_id = created["eventId"]
    r = await admin.post(f"/api/v1/event-configs/{event_id}/publish")
    assert r.status_code == 200, r.text

    v1 = await publish_message(admin, event_id, subject="One {{ ctx.firstName }}", text="1")
    assert v1["version"] == 1
    r = await admin.put(
        f"/api/v1/messages/{event_id}/draft",
        json={"subject": "Two {{ ctx.firstName }}", "text": "2", "html": ""},
    )
    assert r.status_code == 200, r.text
    message = r.json()
    assert message["draft"]["subject"] == "Two {{ ctx.firstName }}"
    assert message["published"]["version"] == 1
    assert message["published"]["subject"] == "One {{ ctx.firstName }}"

    first = await trigger(admin, event_id, ADA)
    await wait_status(admin, first["href"], "processed")
    [mail] = await smtp.wait_for(1)
    assert mail.subject == "One Ada" and mail.text == "1"  # the draft is not sent

    r = await admin.post(f"/api/v1/messages/{event_id}/publish")
    assert r.status_code == 201, r.text
    assert r.json()["version"] == 2
    second = await trigger(admin, event_id, ADA)
    await wait_status(admin, second["href"], "processed")
    mails = await smtp.wait_for(2)
    assert mails[1].subject == "Two Ada" and mails[1].html is None
    assert mails[1].text is not None and mails[1].text.rstrip() == "2"

    v3 = await publish_message(admin, event_id, subject="Three")
    assert v3["version"] == 3
    r = await admin.get(f"/api/v1/messages/{event_id}")
    message = r.json()
    assert [v["version"] for v in message["versions"]] == [1, 2, 3]
    assert message["published"]["version"] == 3
    assert message["published"]["subject"] == "Three"
    # The event status still refers to what was sent, and nothing was re-sent.
    r = await admin.get(first["href"])
    assert r.json()["status"] == "processed"
    assert len(smtp.messages) == 2


async def test_shipped_templates(server, smtp: FakeSMTPServer) -> None:
    admin = server.admin
    r = await admin.get("/api/v1/templates")
    assert r.status_code == 200, r.text
    names = {t["name"] for t in r.json()["items"]}
    assert {"default", "cart_abandonment", "order_confirmation", "password_reset"} <= names
    r = await admin.get("/api/v1/templates/password_reset")
    assert r.status_code == 200, r.text
    shipped = r.json()
    assert "{{ ctx.resetUrl }}" in shipped["html"]
    assert_problem(await admin.get("/api/v1/templates/nope"), 404)

    await create_channel(admin, smtp)
    created = await create_event(
        admin, "passwordReset", template="password_reset", fields=shipped["fields"]
    )
    assert created["template"] == "password_reset"
    r = await admin.post("/api/v1/event-configs/EVTpasswordReset/publish")
    assert r.status_code == 200, r.text

    r = await admin.get("/api/v1/messages/EVTpasswordReset")
    message = r.json()
    assert message["draft"] == {k: shipped[k] for k in ("subject", "html", "text")}
    assert message["sample_ctx"] == shipped["sample_ctx"]
    assert message["published"] is None

    # No ctx given: the template's sample ctx is used.
    r = await admin.post("/api/v1/messages/EVTpasswordReset/preview")
    assert r.status_code == 200, r.text
    preview = r.json()
    assert preview["subject"] == "Reset your password"
    assert 'href="https://app.example.com/reset/abc123"' in preview["html"]
    assert "within 30 minutes" in preview["text"]
    r = await admin.post("/api/v1/messages/EVTpasswordReset/publish")
    assert r.status_code == 201, r.text

    accepted = await trigger(
        admin,
        "EVTpasswordReset",
        {
            "email": "ada@example.org",
            "ctx": {"resetUrl": "https://app.example.com/reset/xyz", "expiresInMinutes": 15},
        },
    )
    await wait_status(admin, accepted["href"], "processed")
    [mail] = await smtp.wait_for(1)
    assert mail.subject == "Reset your password"
    assert mail.text is not None and mail.text.startswith("Hi,\n")  # firstName is optional
    assert "https://app.example.com/reset/xyz" in mail.text and "15 minutes" in mail.text

    # Without a template, the event starts from the generic default one.
    await create_event(admin, "plain")
    r = await admin.post("/api/v1/event-configs/EVTplain/publish")
    assert r.status_code == 200, r.text
    r = await admin.get("/api/v1/messages/EVTplain")
    assert "{{ event.type }}" in r.json()["draft"]["subject"]
