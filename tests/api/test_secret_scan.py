"""A representative run, then a scan: no secret appears in any log record or any answer.

The run: an SMTP channel with a password (the fake SMTP server requires it, then rejects a
transaction with a reply that echoes the password, base64 too), a Twilio channel (the fake
Twilio answers with an error echoing the request's Basic credentials), an S3 export flow with
its keys, a status webhook with its signing secret, API keys (each shown once, at creation),
console sessions signed in with them. Every answer of the run is kept (an httpx response hook)
and every log record (caplog at DEBUG); the database's rows, copied, hold none either. Nor does
a log record or an answer (console cookies decoded) hold an API key's hash, which for a weak
key is an offline guess away from it.
"""

from __future__ import annotations

import base64
import contextlib
import logging
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from helpers import create_event, live_sms_event, publish_message, wait_status
from txmsg.core.delivery import credential_forms
from txmsg.store.db import Database
from txmsg.store.keys import hash_key
from txmsg.store.tables import metadata
from txmsg.testing import FakeSMTPServer, FakeTwilio

SMTP_USER = "shop"
SMTP_PASSWORD = "smtp-Pa55word-never-shown-7Qx"
S3_KEY_ID = "AKIASCANTEST00000001"
S3_SECRET = "s3-secret-never-shown-9Zk0aBcDeFgHiJkLmNoP"
WEBHOOK_SECRET = "webhook-secret-never-shown-Wq4"
ADA = {"email": "ada@example.org", "ctx": {"firstName": "Ada"}}
PHONE = {"mobilePhone": "+14155552671", "ctx": {"firstName": "Ada", "orderId": "A-1"}}


class Answers:
    """Every answer the clients received, as text."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.shown_once: set[str] = set()  # answers that show a new key, by design

    async def keep(self, response: httpx.Response) -> None:
        await response.aread()
        text = f"{response.status_code} {dict(response.headers)} {response.text}"
        if response.request.url.path == "/api/v1/keys" and response.status_code == 201:
            self.shown_once.add(response.json()["key"])
            return
        self.texts.append(text)
        # A cookie is signed, not encrypted: what it holds is read by whoever has it.
        for cookie in response.cookies.values():
            payload = cookie.partition(".")[0]
            with contextlib.suppress(ValueError):
                self.texts.append(
                    base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode(
                        "utf-8", "replace"
                    )
                )


def _forms(secrets: dict[str, tuple[str, str]]) -> dict[str, str]:
    """Each secret's name -> every form of it to look for (as is, base64, Basic, AUTH)."""
    return {
        f"{name} as {form!r}": form
        for name, (user, secret) in secrets.items()
        for form in credential_forms(user, secret)
    }


async def _email_flow(admin: httpx.AsyncClient, smtp: FakeSMTPServer) -> None:
    smtp_settings = {
        "host": smtp.host,
        "port": smtp.port,
        "tls": "none",
        "timeout": 5,
        "username": SMTP_USER,
        "password": SMTP_PASSWORD,
    }
    body = {"name": "mail", "channel": "email", "from_email": "shop@example.com"}
    r = await admin.post("/api/v1/channel-configs", json={**body, "smtp": smtp_settings})
    assert r.status_code == 201, r.text
    created = await create_event(admin)
    event_id = created["eventId"]
    r = await admin.patch(
        f"/api/v1/event-configs/{event_id}",
        json={"webhook": {"url": "http://127.0.0.1:9/hook", "secret": WEBHOOK_SECRET}},
    )
    assert r.status_code == 200, r.text
    r = await admin.post(f"/api/v1/event-configs/{event_id}/publish")
    assert r.status_code == 200, r.text
    await publish_message(admin, event_id)
    r = await admin.post(f"/rest/mc/{event_id}", json=ADA)
    assert r.status_code == 201, r.text
    await wait_status(admin, r.json()["href"], "processed")
    # A server whose refusal echoes the credentials, as sent and as AUTH PLAIN's base64.
    plain = base64.b64encode(f"\0{SMTP_USER}\0{SMTP_PASSWORD}".encode()).decode()
    smtp.fail_next(554, f"rejected: password {SMTP_PASSWORD} auth {plain}")
    r = await admin.post(f"/rest/mc/{event_id}", json=ADA)
    failed = await wait_status(admin, r.json()["href"], "deliveryFailed")
    assert "***" in failed["reason"]
    await admin.get(f"/api/v1/events/{event_id}/{r.json()['PKey']}/delivery-log")


async def _sms_flow(admin: httpx.AsyncClient, twilio: FakeTwilio, base_url: str) -> None:
    event_id = await live_sms_event(admin, twilio, base_url)
    twilio.fail_next(400, 21211, "The 'To' number is not valid", echo_credentials=True)
    r = await admin.post(f"/rest/mc/{event_id}", json=PHONE)
    assert r.status_code == 201, r.text
    failed = await wait_status(admin, r.json()["href"], "deliveryFailed")
    assert "***" in failed["reason"], failed
    twilio.fail_next(500, echo_credentials=True)
    r = await admin.post(f"/rest/mc/{event_id}", json=PHONE)
    await wait_status(admin, r.json()["href"], "processed")
    await admin.get(f"/api/v1/events/{event_id}/{r.json()['PKey']}/delivery-log")


async def _admin_reads(admin: httpx.AsyncClient) -> None:
    r = await admin.post(
        "/api/v1/export-flows",
        json={
            "name": "lake",
            "format": "json",
            "destination": {
                "type": "s3",
                "bucket": "bucket",
                "prefix": "dataset",
                "endpoint_url": "http://127.0.0.1:9",
                "region": "us-east-1",
                "access_key_id": S3_KEY_ID,
                "secret_access_key": S3_SECRET,
            },
        },
    )
    assert r.status_code == 201, r.text
    for role in ("trigger", "marketer", "admin"):
        r = await admin.post("/api/v1/keys", json={"role": role, "label": role})
        assert r.status_code == 201, r.text
    for path in (
        "/api/v1/channel-configs",
        "/api/v1/channel-configs/mail",
        "/api/v1/channel-configs/sms",
        "/api/v1/export-flows",
        "/api/v1/export-flows/lake",
        "/api/v1/event-configs",
        "/api/v1/event-configs/EVTcartAbandonment",
        "/api/v1/keys",
        "/api/v1/message-export/records",
    ):
        r = await admin.get(path)
        assert r.status_code == 200, (path, r.text)


async def _console_sessions(base_url: str, answers: Answers, keys: list[str]) -> None:
    """Each key signs in to the console, and its session reads a page of the API."""
    for key in keys:
        async with httpx.AsyncClient(
            base_url=base_url, timeout=10, event_hooks={"response": [answers.keep]}
        ) as browser:
            await browser.get("/console")
            csrf = {"X-CSRF-Token": browser.cookies["txmsg_csrf"]}
            r = await browser.post("/console/session", json={"api_key": key}, headers=csrf)
            if r.status_code == 403:  # a trigger key
                continue
            assert r.status_code == 200, r.text
            assert (await browser.get("/console/session")).status_code == 200
            assert (await browser.get("/api/v1/event-configs")).status_code == 200
            r = await browser.delete("/console/session", headers=csrf)
            assert r.status_code == 204


def _dump(conn: Connection) -> str:
    """Every row of every table, as stored (sealed columns read as their raw JSON)."""
    parts = []
    for table in metadata.sorted_tables:
        columns = [sa.type_coerce(c, sa.Text()) for c in table.columns]
        parts.extend(repr(tuple(row)) for row in conn.execute(sa.select(*columns)))
    return "\n".join(parts)


async def test_no_secret_in_any_log_or_answer(
    server: Any, fake_twilio: FakeTwilio, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    answers = Answers()
    server.admin.event_hooks["response"].append(answers.keep)
    async with FakeSMTPServer(auth=(SMTP_USER, SMTP_PASSWORD)) as smtp:
        await _email_flow(server.admin, smtp)
        await _sms_flow(server.admin, fake_twilio, server.base_url)
        await _admin_reads(server.admin)
        keys = [*sorted(answers.shown_once), server.settings.admin_key]
        await _console_sessions(server.base_url, answers, keys)
    assert smtp.rejected == 1 and fake_twilio.requests >= 3  # the echoes did happen

    secrets = {
        "SMTP password": (SMTP_USER, SMTP_PASSWORD),
        "Twilio auth token": (fake_twilio.account_sid, fake_twilio.auth_token),
        "S3 secret key": (S3_KEY_ID, S3_SECRET),
        "webhook secret": ("", WEBHOOK_SECRET),
    }
    secrets |= {f"API key {i}": ("", key) for i, key in enumerate(sorted(answers.shown_once))}
    secrets["admin key"] = ("", server.settings.admin_key)
    forms = _forms(secrets)
    # The fake SMTP server's own log (aiosmtpd's "mail.log") is the provider's, not ours.
    records = [r for r in caplog.records if not r.name.startswith("mail.log")]
    logs = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in records)
    assert len(answers.texts) > 30 and records
    found = [
        f"{name} in {where}"
        for name, form in forms.items()
        for where, text in (("the logs", logs), *(("an answer", t) for t in answers.texts))
        if form in text
    ]
    assert not found, found
    # Nor the keys' hashes (as stored in api_keys), in any case.
    shown = [t.lower() for t in (logs, *answers.texts)]
    assert [key for key in keys if any(hash_key(key) in text for text in shown)] == []

    # A copy of the database shows none of them either (API keys are kept as hashes).
    db = Database(server.settings.database_url)
    try:
        dump = await db.read(_dump)
    finally:
        await db.dispose()
    assert not [name for name, form in forms.items() if form in dump]
