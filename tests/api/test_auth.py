"""API keys and roles over HTTP; the SMTP password is write-only and never logged."""

from __future__ import annotations

import asyncio
import base64
import logging

import httpx
import pytest

from conftest import ADMIN_KEY
from helpers import (
    assert_problem,
    create_event,
    create_key,
    forbid_server_errors,
    live_event,
    publish_message,
    trigger,
    wait_status,
)
from txmsg.testing import FakeSMTPServer

ADA = {"email": "ada@example.org", "ctx": {"firstName": "Ada"}}


def assert_401(r: httpx.Response) -> None:
    assert_problem(r, 401)
    assert r.headers["www-authenticate"].lower().startswith("bearer")


def assert_403(r: httpx.Response) -> None:
    problem = assert_problem(r, 403)
    assert "role" in problem["detail"]


async def test_missing_or_unknown_key_is_401(server, smtp: FakeSMTPServer) -> None:
    event_id = await live_event(server.admin, smtp)
    accepted = await trigger(server.admin, event_id, ADA)
    for header in (
        None,
        "Bearer nope-not-a-key",
        "Basic YWRtaW46YWRtaW4=",
        ADMIN_KEY,
        "Bearer " + ADMIN_KEY[:-1],
    ):
        headers = {"Authorization": header} if header is not None else {}
        async with httpx.AsyncClient(base_url=server.base_url, headers=headers) as anon:
            forbid_server_errors(anon)
            for method, url, body in (
                ("POST", f"/rest/mc/{event_id}", ADA),
                ("GET", accepted["href"], None),
                ("GET", "/api/v1/channel-configs", None),
                ("GET", "/api/v1/event-configs", None),
                ("POST", "/api/v1/keys", {"role": "admin", "label": "me"}),
                ("GET", f"/api/v1/messages/{event_id}", None),
                ("GET", "/api/v1/templates", None),
            ):
                r = await anon.request(method, url, json=body)
                assert r.status_code == 401, (header, method, url, r.text)
                assert_401(r)
    # The scheme is case-insensitive.
    async with httpx.AsyncClient(
        base_url=server.base_url, headers={"Authorization": "bearer " + ADMIN_KEY}
    ) as lower:
        r = await lower.get("/api/v1/channel-configs")
        assert r.status_code == 200, r.text


async def test_roles(server, smtp: FakeSMTPServer) -> None:
    admin = server.admin
    event_id = await live_event(admin, smtp)
    # trigger: triggers events and reads their status, nothing else.
    async with server.client(await create_key(admin, "trigger", "Website")) as website:
        forbid_server_errors(website)
        accepted = await trigger(website, event_id, ADA)
        await wait_status(website, accepted["href"], "processed")
        for method, url, body in (
            ("GET", "/api/v1/channel-configs", None),
            ("POST", "/api/v1/channel-configs", {"name": "x"}),
            ("GET", "/api/v1/channel-configs/mail", None),
            ("PATCH", "/api/v1/channel-configs/mail", {"from_name": "Evil"}),
            ("GET", f"/api/v1/messages/{event_id}", None),
            ("PUT", f"/api/v1/messages/{event_id}/draft", {"subject": "x", "text": "x"}),
            ("POST", f"/api/v1/messages/{event_id}/publish", None),
            ("GET", "/api/v1/event-configs", None),
            ("POST", f"/api/v1/event-configs/{event_id}/pause", None),
            ("GET", "/api/v1/keys", None),
            ("POST", "/api/v1/keys", {"role": "admin", "label": "escalate"}),
            ("GET", "/api/v1/templates", None),
        ):
            assert_403(await website.request(method, url, json=body))
    r = await admin.get("/api/v1/channel-configs/mail")
    assert r.json()["from_name"] == "Example Shop"
    r = await admin.get(f"/api/v1/event-configs/{event_id}")
    assert r.json()["state"] == "published"

    # marketer: reads event configurations, edits, previews and publishes messages.
    async with server.client(await create_key(admin, "marketer")) as marketer:
        forbid_server_errors(marketer)
        r = await marketer.get("/api/v1/event-configs")
        assert r.status_code == 200, r.text
        assert [e["eventId"] for e in r.json()["items"]] == ["EVTcartAbandonment"]
        r = await marketer.get("/api/v1/event-configs/EVTcartAbandonment")
        assert r.status_code == 200, r.text
        r = await marketer.get("/api/v1/templates")
        assert r.status_code == 200, r.text
        # The marketer's own job: edit, preview, publish the message.
        await publish_message(marketer, "EVTcartAbandonment", subject="From marketing")
        r = await marketer.post(
            "/api/v1/messages/EVTcartAbandonment/preview", json={"ctx": {"firstName": "Ada"}}
        )
        assert r.status_code == 200, r.text
        for method, url, body in (
            (
                "POST",
                "/api/v1/event-configs",
                {"eventId": "x", "channel": "email", "channel_config": "mail"},
            ),
            ("PATCH", "/api/v1/event-configs/EVTcartAbandonment", {"label": "x"}),
            ("POST", "/api/v1/event-configs/EVTcartAbandonment/unpublish", None),
            ("DELETE", "/api/v1/event-configs/EVTcartAbandonment", None),
            ("POST", "/api/v1/keys", {"role": "marketer", "label": "another"}),
            ("GET", "/api/v1/keys", None),
            ("GET", "/api/v1/channel-configs", None),
            ("POST", "/rest/mc/EVTcartAbandonment", ADA),
        ):
            assert_403(await marketer.request(method, url, json=body))
    # The admin can do all of it, trigger included.
    accepted = await trigger(admin, "EVTcartAbandonment", ADA)
    await wait_status(admin, accepted["href"], "processed")
    mails = await smtp.wait_for(2)
    assert mails[1].subject == "From marketing"
    r = await admin.get("/api/v1/messages/EVTcartAbandonment")
    assert r.status_code == 200, r.text


async def test_keys_are_shown_once_and_can_be_revoked(server, smtp: FakeSMTPServer) -> None:
    admin = server.admin
    event_id = await live_event(admin, smtp)
    r = await admin.post("/api/v1/keys", json={"role": "trigger", "label": "Website"})
    assert r.status_code == 201, r.text
    created = r.json()
    secret = created["key"]
    assert len(secret) >= 32
    assert created["role"] == "trigger" and created["label"] == "Website"
    admin_secret = await create_key(admin, "admin", "Second admin")

    r = await admin.get("/api/v1/keys")
    assert r.status_code == 200, r.text
    listed = {k["id"]: k for k in r.json()["items"]}
    assert created["id"] in listed
    assert listed[created["id"]]["role"] == "trigger"
    for key in listed.values():
        assert "key" not in key and not any("hash" in field for field in key)
    assert secret not in r.text and admin_secret not in r.text
    assert secret.split("_", 2)[2] not in r.text  # the random part (it may hold "_" too)

    async with server.client(secret) as website, server.client(admin_secret) as admin2:
        accepted = await trigger(website, event_id, ADA)
        # A key created by the API works as an admin key too.
        r = await admin2.get("/api/v1/channel-configs")
        assert r.status_code == 200, r.text

        r = await admin2.delete(f"/api/v1/keys/{created['id']}")
        assert r.status_code == 204, r.text
        assert_401(await website.get(accepted["href"]))
        assert_401(await website.post(f"/rest/mc/{event_id}", json=ADA))
        assert_problem(await admin.delete(f"/api/v1/keys/{created['id']}"), 404)
        assert_problem(await admin.delete("/api/v1/keys/nope"), 404)
        r = await admin.get("/api/v1/keys")
        assert created["id"] not in {k["id"] for k in r.json()["items"]}
        # Bad key requests.
        assert_problem(
            await admin.post("/api/v1/keys", json={"role": "root", "label": "x"}), 400, "role"
        )
        assert_problem(await admin.post("/api/v1/keys", json={"role": "admin"}), 400, "label")
    # The event accepted before the revocation is still delivered.
    await wait_status(admin, accepted["href"], "processed")


async def test_smtp_password_is_write_only_and_never_logged(
    server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    password = "s3cret-Pa55word-!xyz"
    other_password = "an0ther-Pa55word-!abc"
    admin = server.admin
    async with FakeSMTPServer(auth=("shop", password)) as smtp:
        r = await admin.post(
            "/api/v1/channel-configs",
            json={
                "name": "mail",
                "channel": "email",
                "from_email": "shop@example.com",
                "smtp": {
                    "host": smtp.host,
                    "port": smtp.port,
                    "tls": "none",
                    "username": "shop",
                    "password": password,
                },
            },
        )
        assert r.status_code == 201, r.text
        assert password not in r.text
        assert r.json()["smtp"]["password_set"] is True
        assert "password" not in r.json()["smtp"]
        r = await admin.get("/api/v1/channel-configs/mail")
        assert password not in r.text and r.json()["smtp"]["password_set"] is True
        r = await admin.get("/api/v1/channel-configs")
        assert password not in r.text

        await create_event(admin)
        r = await admin.post("/api/v1/event-configs/EVTcartAbandonment/publish")
        assert r.status_code == 200, r.text
        await publish_message(admin, "EVTcartAbandonment")
        accepted = await trigger(admin, "EVTcartAbandonment", ADA)
        await wait_status(admin, accepted["href"], "processed")
        [mail] = await smtp.wait_for(1)  # authenticated with the stored password
        assert mail.rcpt_tos == ["ada@example.org"]

        # A PATCH that leaves the password alone keeps it; the answer does not show it.
        r = await admin.patch("/api/v1/channel-configs/mail", json={"from_name": "Shop"})
        assert r.status_code == 200, r.text
        assert password not in r.text and r.json()["smtp"]["password_set"] is True
        # A wrong password: the relay refuses the login (535; retried, the relay's fault),
        # and the reason does not show it either.
        r = await admin.patch(
            "/api/v1/channel-configs/mail", json={"smtp": {"password": other_password}}
        )
        assert r.status_code == 200, r.text
        assert other_password not in r.text and r.json()["smtp"]["password_set"] is True
        failed = await trigger(admin, "EVTcartAbandonment", ADA)
        for _ in range(200):
            status = (await admin.get(failed["href"])).json()
            if "535" in (status.get("reason") or ""):
                break
            await asyncio.sleep(0.05)
        assert status.get("reason", "").startswith("retrying: 535"), status
        assert other_password not in str(status)
        # Clearing it.
        r = await admin.patch("/api/v1/channel-configs/mail", json={"smtp": {"password": None}})
        assert r.status_code == 200, r.text
        assert r.json()["smtp"]["password_set"] is False

    leaked = [
        rec
        for rec in caplog.records
        # The fake SMTP server's own protocol log (aiosmtpd, "mail.log") is not ours.
        if not rec.name.startswith("mail.log")
        and any(
            secret in rec.getMessage() or secret in (rec.exc_text or "")
            for secret in (
                password,
                other_password,
                base64.b64encode(f"\0shop\0{password}".encode()).decode(),
            )
        )
    ]
    assert leaked == []
    assert password not in caplog.text and other_password not in caplog.text
