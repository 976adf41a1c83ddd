"""A provider refusing the engine's credentials is told to the operator: one WARNING per
provider a minute while it lasts, naming the configuration and the provider (never the password
or token), then one INFO when it works again. A refusal of one message is not a provider's
failure: no warning, and its recipient is not logged."""

from __future__ import annotations

import base64
import logging

import pytest

from helpers import (
    create_channel,
    create_event,
    create_sms_channel,
    forbid_server_errors,
    metrics_showing,
    publish_message,
    set_smtp,
    trigger,
    wait_status,
    wait_until,
)
from txmsg.testing import FakeSMTPServer, FakeTwilio

LOGGER = "txmsg.providers"
WRONG_PASSWORD = "wrong-password-1f3a"
WRONG_TOKEN = "0123456789abcdef0123456789abcdef"


def _records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and r.levelno == level]


def _no_secret(caplog: pytest.LogCaptureFixture, *secrets: str) -> None:
    text = "\n".join(r.getMessage() for r in caplog.records)
    for secret in secrets:
        assert secret not in text
        assert base64.b64encode(secret.encode()).decode().rstrip("=") not in text


async def test_a_refused_smtp_login_is_warned_once_then_recovered(
    server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    admin = forbid_server_errors(server.admin)
    async with FakeSMTPServer(auth=("mailer", "right-password")) as relay:
        await create_channel(admin, relay)
        await set_smtp(admin, relay.host, relay.port, username="mailer", password=WRONG_PASSWORD)
        created = await create_event(admin)
        event_id = created["eventId"]
        assert (await admin.post(f"/api/v1/event-configs/{event_id}/publish")).status_code == 200
        await publish_message(admin, event_id)
        accepted = [
            await trigger(
                admin, event_id, {"email": f"a{i}@example.org", "ctx": {"firstName": "A"}}
            )
            for i in range(3)
        ]
        # Retried every 0.05-0.2 s: many refused logins within the minute, one warning.
        await wait_until(lambda: relay.connections_opened >= 6, what="logins refused")
        [warning] = _records(caplog, logging.WARNING)
        line = warning.getMessage()
        assert "'mail'" in line and f"{relay.host}:{relay.port}" in line, line
        assert "(auth)" in line and "535" in line, line
        assert _records(caplog, logging.INFO) == []
        labels = f'channel="email",kind="auth",provider="{relay.host}:{relay.port}"'
        await metrics_showing(admin, f"txmsg_provider_failures_total{{{labels}}}")

        await set_smtp(admin, relay.host, relay.port, username="mailer", password="right-password")
        for a in accepted:
            await wait_status(admin, a["href"], "processed")
        [recovered] = _records(caplog, logging.INFO)
        assert recovered.getMessage() == (
            f"channel configuration 'mail': provider {relay.host}:{relay.port} recovered"
        )
        assert len(_records(caplog, logging.WARNING)) == 1

        # A refused recipient is the message's fault: no warning, and no address logged.
        relay.fail_next(550, "5.1.1 <gone@example.org> no such user", stage="RCPT")
        refused = await trigger(
            admin, event_id, {"email": "gone@example.org", "ctx": {"firstName": "G"}}
        )
        await wait_status(admin, refused["href"], "deliveryFailed")
    assert len(_records(caplog, logging.WARNING)) == 1
    assert "gone@example.org" not in "\n".join(r.getMessage() for r in caplog.records)
    _no_secret(caplog, WRONG_PASSWORD, "right-password")


async def test_a_refused_twilio_token_is_warned_once_then_recovered(
    server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    admin = forbid_server_errors(server.admin)
    async with FakeTwilio() as twilio:
        await create_sms_channel(admin, twilio, server.base_url)
        r = await admin.patch(
            "/api/v1/channel-configs/sms", json={"twilio": {"auth_token": WRONG_TOKEN}}
        )
        assert r.status_code == 200, r.text
        created = await create_event(
            admin,
            "orderShipped",
            fields=[{"name": "firstName", "type": "string", "required": True}],
            channel="sms",
            channel_config="sms",
        )
        event_id = created["eventId"]
        assert (await admin.post(f"/api/v1/event-configs/{event_id}/publish")).status_code == 200
        r = await admin.put(f"/api/v1/messages/{event_id}/draft", json={"body": "Hi"})
        assert r.status_code == 200, r.text
        assert (await admin.post(f"/api/v1/messages/{event_id}/publish")).status_code == 201
        accepted = await trigger(
            admin, event_id, {"mobilePhone": "+14155550123", "ctx": {"firstName": "A"}}
        )
        await wait_until(lambda: twilio.requests >= 4, what="requests refused")
        [warning] = _records(caplog, logging.WARNING)
        line = warning.getMessage()
        assert "'sms'" in line and twilio.account_sid in line, line
        assert "(auth)" in line and "20003" in line, line

        r = await admin.patch(
            "/api/v1/channel-configs/sms", json={"twilio": {"auth_token": twilio.auth_token}}
        )
        assert r.status_code == 200, r.text
        await wait_status(admin, accepted["href"], "processed")
        [recovered] = _records(caplog, logging.INFO)
        assert twilio.account_sid in recovered.getMessage()
        assert "recovered" in recovered.getMessage()

        # An invalid To (21211) is the message's: no warning, and the number is not logged.
        twilio.fail_next(400, 21211, "The 'To' number +14155550999 is not a valid phone number.")
        refused = await trigger(
            admin, event_id, {"mobilePhone": "+14155550999", "ctx": {"firstName": "B"}}
        )
        await wait_status(admin, refused["href"], "deliveryFailed")
    assert len(_records(caplog, logging.WARNING)) == 1
    assert "+14155550999" not in "\n".join(r.getMessage() for r in caplog.records)
    _no_secret(caplog, WRONG_TOKEN, twilio.auth_token)
