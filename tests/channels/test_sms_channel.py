"""The Twilio channel: configuration checks over HTTP, and the sender against the fake Twilio."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from helpers import SilentSMTPServer, assert_problem, create_sms_channel, free_port
from txmsg.channels.twilio import TwilioSender, TwilioSettings
from txmsg.core.delivery import PermanentSendError, TransientSendError
from txmsg.testing import FakeTwilio

SID = "AC" + "0123456789abcdef" * 2


def _twilio(**over: Any) -> dict[str, Any]:
    base = {"account_sid": SID, "auth_token": "tok", "from_number": "+14155550100"}
    return {k: v for k, v in {**base, **over}.items() if v is not ...}


@pytest.mark.parametrize(
    ("twilio", "field"),
    [
        (_twilio(account_sid="AC123"), "twilio.account_sid"),
        (_twilio(account_sid=...), "twilio.account_sid"),
        (_twilio(auth_token=...), "twilio.auth_token"),
        (_twilio(auth_token=""), "twilio.auth_token"),
        (_twilio(auth_token=5), "twilio.auth_token"),
        (_twilio(from_number="+x1555"), "twilio.from_number"),
        (_twilio(from_number="12"), "twilio.from_number"),
        (_twilio(from_number="123456789"), "twilio.from_number"),
        (_twilio(from_number="ExampleShop1"), "twilio.from_number"),  # 12 characters
        (_twilio(from_number="Shop-Ex"), "twilio.from_number"),
        (_twilio(from_number="Shop\n"), "twilio.from_number"),
        (_twilio(from_number="415 555 0100"), "twilio.from_number"),
        (_twilio(from_number=...), "twilio.from_number"),
        (_twilio(messaging_service_sid="MG" + "0" * 32), "twilio.from_number"),
        (_twilio(from_number=..., messaging_service_sid="MGx"), "twilio.messaging_service_sid"),
        (_twilio(api_base_url="ftp://x"), "twilio.api_base_url"),
        (_twilio(api_base_url="https://x/?a=1"), "twilio.api_base_url"),
        (_twilio(status_callback_base_url="nope"), "twilio.status_callback_base_url"),
        (_twilio(timeout=0), "twilio.timeout"),
        (_twilio(region="au1"), "twilio.region"),
        ("x", "twilio"),
    ],
)
async def test_bad_sms_channel_configurations_name_the_field(
    server, twilio: Any, field: str
) -> None:
    body = {"name": "sms", "channel": "sms", "twilio": twilio}
    assert_problem(await server.admin.post("/api/v1/channel-configs", json=body), 400, field)
    body = {"name": "sms", "channel": "sms", "smtp": {"host": "x"}, "twilio": _twilio()}
    assert_problem(await server.admin.post("/api/v1/channel-configs", json=body), 400, "smtp")
    r = await server.admin.get("/api/v1/channel-configs")
    assert r.json()["items"] == []  # nothing half-written


async def test_a_number_of_the_specs_shape_that_is_no_number_is_a_422(server) -> None:
    body = {"name": "sms", "channel": "sms", "twilio": _twilio(from_number="+1555")}
    r = await server.admin.post("/api/v1/channel-configs", json=body)
    assert_problem(r, 422, "twilio.from_number")  # too short for libphonenumber, not the spec


async def test_auth_token_is_write_only_and_replaceable(server, fake_twilio: FakeTwilio) -> None:
    admin = server.admin
    created = await create_sms_channel(admin, fake_twilio, server.base_url)
    assert created["twilio"] == {
        "account_sid": fake_twilio.account_sid,
        "from_number": "+14155550100",
        "messaging_service_sid": None,
        "status_callback_base_url": server.base_url,
        "api_base_url": fake_twilio.base_url,
        "timeout": 5,
        "auth_token_set": True,
    }
    listed = (await admin.get("/api/v1/channel-configs")).text
    assert fake_twilio.auth_token not in listed
    r = await admin.patch("/api/v1/channel-configs/sms", json={"twilio": {"auth_token": None}})
    assert_problem(r, 400, "twilio.auth_token")  # a Twilio channel cannot work without one
    r = await admin.patch(
        "/api/v1/channel-configs/sms", json={"twilio": {"auth_token": "new-token"}}
    )
    assert r.status_code == 200 and r.json()["twilio"]["auth_token_set"] is True
    assert "new-token" not in r.text
    r = await admin.patch("/api/v1/channel-configs/sms", json={"channel": "email"})
    assert_problem(r, 400, "channel")
    r = await admin.patch(
        "/api/v1/channel-configs/sms", json={"twilio": {"status_callback_base_url": None}}
    )
    assert r.status_code == 200 and r.json()["twilio"]["status_callback_base_url"] is None


async def test_sms_event_needs_an_sms_channel_configuration(
    server, fake_twilio: FakeTwilio, smtp
) -> None:
    from helpers import create_channel

    await create_channel(server.admin, smtp)
    await create_sms_channel(server.admin, fake_twilio, server.base_url)
    r = await server.admin.post(
        "/api/v1/event-configs",
        json={"eventId": "a", "channel": "sms", "channel_config": "mail"},
    )
    assert_problem(r, 422, "channel_config")  # a configuration of the other channel
    r = await server.admin.post(
        "/api/v1/event-configs",
        json={"eventId": "b", "channel": "email", "channel_config": "sms"},
    )
    assert_problem(r, 422, "channel_config")  # a configuration of the other channel
    r = await server.admin.post(
        "/api/v1/event-configs",
        json={
            "eventId": "c",
            "channel": "email",
            "channel_config": "mail",
            "template": "sms_default",
        },
    )
    assert_problem(r, 400, "template")


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("+1 (415) 555-0100", "+14155550100"),  # E.164, normalised
        ("12345", "12345"),  # a short code
        ("898", "898"),
        ("12345678", "12345678"),
        ("ExampleShop", "ExampleShop"),  # alphanumeric sender IDs
        ("Shop 24", "Shop 24"),
        ("A", "A"),
    ],
)
async def test_twilio_senders_are_accepted(server, given: str, stored: str) -> None:
    body = {"name": "sms", "channel": "sms", "twilio": _twilio(from_number=given)}
    r = await server.admin.post("/api/v1/channel-configs", json=body)
    assert r.status_code == 201, r.text
    assert r.json()["twilio"]["from_number"] == stored
    r = await server.admin.patch("/api/v1/channel-configs/sms", json={"twilio": _twilio()})
    assert r.status_code == 200 and r.json()["twilio"]["from_number"] == "+14155550100"
    r = await server.admin.patch(
        "/api/v1/channel-configs/sms", json={"twilio": {"from_number": given}}
    )
    assert r.status_code == 200 and r.json()["twilio"]["from_number"] == stored


async def test_changing_the_account_needs_its_auth_token(server, fake_twilio: FakeTwilio) -> None:
    admin = server.admin
    await create_sms_channel(admin, fake_twilio, server.base_url)
    other = "AC" + "f" * 32
    r = await admin.patch("/api/v1/channel-configs/sms", json={"twilio": {"account_sid": other}})
    assert_problem(r, 400, "twilio.auth_token")
    got = (await admin.get("/api/v1/channel-configs/sms")).json()
    assert got["twilio"]["account_sid"] == fake_twilio.account_sid  # nothing half-written
    # The same account given again needs no token; another one with its token is taken.
    same = {"twilio": {"account_sid": fake_twilio.account_sid}}
    assert (await admin.patch("/api/v1/channel-configs/sms", json=same)).status_code == 200
    r = await admin.patch(
        "/api/v1/channel-configs/sms",
        json={"twilio": {"account_sid": other, "auth_token": "other-token"}},
    )
    assert r.status_code == 200, r.text
    assert r.json()["twilio"]["account_sid"] == other and "other-token" not in r.text


# --- the sender, straight against the fake --------------------------------------------------


def _sender(twilio: FakeTwilio, **over: Any) -> TwilioSender:
    settings = {
        "account_sid": twilio.account_sid,
        "auth_token": twilio.auth_token,
        "from_number": "+14155550100",
        "api_base_url": twilio.base_url,
        "timeout": 5.0,
        **over,
    }
    return TwilioSender(TwilioSettings(**settings))


@pytest.mark.parametrize(
    ("status", "code", "error", "reason", "fault"),
    [
        (429, None, TransientSendError, "Twilio error 20429 (HTTP 429): Too Many Requests", "4xx"),
        (500, None, TransientSendError, "Twilio error 20500 (HTTP 500): Internal Server", "5xx"),
        (502, 502, TransientSendError, "Twilio error (HTTP 502): Error", "5xx"),
        # The message's fault: its text may name the recipient, never logged.
        (400, 21211, PermanentSendError, "Twilio error 21211 (HTTP 400): The 'To' number is", None),
        (404, 20404, PermanentSendError, "Twilio error 20404 (HTTP 404): Error", None),
        # Not Twilio's answer (no code, or the status as code): a proxy's error, retried.
        (404, None, TransientSendError, "Twilio error (HTTP 404): Error", "4xx"),
        (407, 407, TransientSendError, "Twilio error (HTTP 407): Error", "4xx"),
        (413, 413, TransientSendError, "Twilio error (HTTP 413): Error", "4xx"),
        (408, None, TransientSendError, "Twilio error (HTTP 408): Error", "timeout"),
        (409, 20409, TransientSendError, "Twilio error 20409 (HTTP 409): Error", "4xx"),
        (425, None, TransientSendError, "Twilio error (HTTP 425): Error", "4xx"),
        # Authentication: the configuration's token is wrong, not the message.
        (401, 20003, TransientSendError, "Twilio error 20003 (HTTP 401): Authenticate", "auth"),
        (403, 20003, TransientSendError, "Twilio error 20003 (HTTP 403): Error", "auth"),
        (403, 20008, PermanentSendError, "Twilio error 20008 (HTTP 403): Error", "auth"),
        # The sender is not the account's: every message would get it.
        (400, 21606, PermanentSendError, "Twilio error 21606 (HTTP 400)", "sender"),
        (400, 21212, PermanentSendError, "Twilio error 21212 (HTTP 400)", "sender"),
        (400, 21659, PermanentSendError, "Twilio error 21659 (HTTP 400)", "sender"),
    ],
)
async def test_errors_are_classified(
    fake_twilio: FakeTwilio,
    status: int,
    code: int | None,
    error: type,
    reason: str,
    fault: str | None,
) -> None:
    sender = _sender(fake_twilio)
    fake_twilio.fail_next(status, code)
    try:
        with pytest.raises(error) as caught:
            await sender.send("+14155552671", "hi")
        assert caught.value.reason.startswith(reason)
        assert caught.value.fault == fault
        assert (await sender.send("+14155552671", "hi")).startswith("SM")  # failure was once
    finally:
        await sender.close()


async def test_a_probe_reads_the_account_with_the_configured_credentials(
    fake_twilio: FakeTwilio,
) -> None:
    right, wrong = _sender(fake_twilio), _sender(fake_twilio, auth_token="wr0ng-t0ken")
    refused = _sender(fake_twilio, api_base_url=f"http://127.0.0.1:{free_port()}")
    try:
        assert await right.probe(2.0) == "account active"
        with pytest.raises(TransientSendError) as caught:
            await wrong.probe(2.0)
        assert caught.value.fault == "auth" and "20003" in caught.value.reason
        assert "wr0ng-t0ken" not in caught.value.reason
        with pytest.raises(TransientSendError) as caught:
            await refused.probe(2.0)
        assert caught.value.fault == "connect"
        fake_twilio.account_status = "suspended"
        with pytest.raises(PermanentSendError, match="suspended"):
            await right.probe(2.0)
    finally:
        for sender in (right, wrong, refused):
            await sender.close()
    assert fake_twilio.requests == 0 and fake_twilio.messages == []  # nothing created


async def test_connection_refused_and_silence_are_transient(fake_twilio: FakeTwilio) -> None:
    refused = _sender(fake_twilio, api_base_url=f"http://127.0.0.1:{free_port()}")
    async with SilentSMTPServer() as silent:  # accepts TCP, never answers
        mute = _sender(fake_twilio, api_base_url=f"http://127.0.0.1:{silent.port}", timeout=0.3)
        try:
            with pytest.raises(TransientSendError, match="connection failed") as caught:
                await refused.send("+14155552671", "hi")
            assert caught.value.fault == "connect"
            with pytest.raises(TransientSendError, match=r"did not answer within 0\.3 s") as late:
                await mute.send("+14155552671", "hi")
            assert late.value.fault == "timeout"
        finally:
            await refused.close()
            await mute.close()
    assert fake_twilio.requests == 0


async def test_edge_and_region_apply_to_twilio_hosts_only(
    fake_twilio: FakeTwilio, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TWILIO_EDGE/TWILIO_REGION (read by the library) keep working for real use, and do not
    rewrite an `api_base_url` of another host."""
    monkeypatch.setenv("TWILIO_EDGE", "sydney")
    monkeypatch.setenv("TWILIO_REGION", "au1")
    real = TwilioSender(TwilioSettings(account_sid=SID, auth_token="t", from_number="+1"))
    local = _sender(fake_twilio)
    try:
        # The URL the library would call for the default host carries the edge and region.
        client = real._client
        url = client.get_hostname(client.api.base_url + "/2010-04-01/Accounts.json")
        assert url == "https://api.sydney.au1.twilio.com/2010-04-01/Accounts.json"
        assert (await local.send("+14155552671", "via the fake")).startswith("SM")
        assert [m.body for m in await fake_twilio.wait_for(1)] == ["via the fake"]
    finally:
        await real.close()
        await local.close()


async def test_sends_share_connections(fake_twilio: FakeTwilio) -> None:
    sender = _sender(fake_twilio)
    try:
        for _ in range(5):
            await sender.send("+14155552671", "hi")
        await asyncio.gather(*(sender.send("+14155552671", "hi") for _ in range(20)))
    finally:
        await sender.close()
    assert len(fake_twilio.messages) == 25
    assert fake_twilio.connections_opened <= 20  # not one per send
