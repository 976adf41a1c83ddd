"""The whole user story of the core engine, over HTTP, into a real SMTP conversation."""

from __future__ import annotations

from helpers import create_channel, create_event, wait_status
from txmsg.testing import FakeSMTPServer


async def test_publish_edit_trigger_deliver(server, smtp: FakeSMTPServer) -> None:
    admin = server.admin
    # 1. admin: channel configuration, event configuration, publish
    await create_channel(admin, smtp)
    event = await create_event(admin, "cartAbandonment")
    assert event["eventId"] == "EVTcartAbandonment"
    assert event["state"] == "draft"
    r = await admin.post("/api/v1/event-configs/EVTcartAbandonment/publish")
    assert r.status_code == 200, r.text
    published = r.json()
    assert published["state"] == "published"
    preview = published["api_preview"]
    assert preview["url"].endswith("/rest/mc/EVTcartAbandonment")
    assert preview["body"]["ctx"] == {"firstName": "sample firstName", "amount": 9.99}

    # keys for the other roles
    r = await admin.post("/api/v1/keys", json={"role": "marketer", "label": "Marketing"})
    assert r.status_code == 201, r.text
    marketer = server.client(r.json()["key"])
    r = await admin.post("/api/v1/keys", json={"role": "trigger", "label": "Website"})
    website = server.client(r.json()["key"])

    # 2. marketer: the default template is the draft; edit, preview, publish
    r = await marketer.get("/api/v1/messages/EVTcartAbandonment")
    assert r.status_code == 200, r.text
    assert r.json()["published"] is None
    assert "{{ event.type }}" in r.json()["draft"]["subject"]
    draft = {
        "subject": "Zoë, {{ ctx.firstName }} left {{ ctx.amount }} € in the cart",
        "html": "<p>Hello {{ ctx.firstName }}</p><p>Ref {{ event.PKey }}</p>",
        "text": "Hello {{ ctx.firstName }}\nRef {{ event.PKey }}",
    }
    r = await marketer.put("/api/v1/messages/EVTcartAbandonment/draft", json=draft)
    assert r.status_code == 200, r.text
    r = await marketer.post(
        "/api/v1/messages/EVTcartAbandonment/preview",
        json={"ctx": {"firstName": "<Ada>", "amount": 12.5}},
    )
    assert r.status_code == 200, r.text
    assert r.json()["subject"] == "Zoë, <Ada> left 12.5 € in the cart"
    assert r.json()["html"].startswith("<p>Hello &lt;Ada&gt;</p>")
    r = await marketer.post(
        "/api/v1/messages/EVTcartAbandonment/publish",
        json={"ctx": {"firstName": "Ada", "amount": 1}},
    )
    assert r.status_code == 201, r.text
    assert r.json()["version"] == 1

    # 3. website developer: trigger, poll until processed
    r = await website.post(
        "/rest/mc/EVTcartAbandonment",
        json={"email": "ada@example.org", "ctx": {"firstName": "Ada", "amount": 42}},
    )
    assert r.status_code == 201, r.text
    accepted = r.json()
    assert accepted["status"] == "pending"
    assert accepted["type"] == "EVTcartAbandonment"
    assert accepted["href"] == f"/rest/mc/EVTcartAbandonment/{accepted['PKey']}"
    done = await wait_status(website, accepted["href"], "processed")
    assert "reason" not in done

    # 4. the email arrived, rendered, well formed
    [mail] = await smtp.wait_for(1)
    assert mail.mail_from == "shop@example.com"
    assert mail.rcpt_tos == ["ada@example.org"]
    msg = mail.message
    assert msg.defects == []
    assert msg["Subject"] == "Zoë, Ada left 42 € in the cart"
    assert msg["From"] == "Example Shop <shop@example.com>"
    assert msg["Reply-To"] == "help@example.com"
    assert msg["To"] == "ada@example.org"
    assert msg["Message-ID"].startswith(f"<{accepted['PKey']}@")
    assert msg["Date"]
    assert msg.get_content_type() == "multipart/alternative"
    assert mail.text is not None and mail.text.startswith("Hello Ada\n")
    assert accepted["PKey"] in mail.text
    assert mail.html is not None and "<p>Hello Ada</p>" in mail.html
