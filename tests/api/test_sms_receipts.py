"""Twilio status callbacks over real HTTP: who may write to which event, and how often."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from conftest import RunningServer, settings_for
from helpers import (
    assert_problem,
    create_sms_channel,
    delivery_log,
    live_event,
    live_sms_event,
    trigger,
    wait_status,
)
from txmsg.testing import FakeTwilio
from txmsg.testing.twilio import FakeSms

ADA = {"mobilePhone": "+14155552671", "ctx": {"firstName": "Ada", "orderId": "A-17"}}
CALLBACK_PATH = "/webhooks/twilio/status"


async def sent_sms(server: Any, twilio: FakeTwilio) -> tuple[dict[str, Any], FakeSms]:
    """A published SMS event on the channel configuration `sms`, triggered and sent."""
    event_id = await live_sms_event(server.admin, twilio, server.base_url)
    accepted = await trigger(server.admin, event_id, ADA)
    await wait_status(server.admin, accepted["href"], "processed")
    [sms] = await twilio.wait_for(1)
    return accepted, sms


async def post_callback(
    url: str, params: dict[str, str], signer: FakeTwilio, signed_url: str | None = None
) -> httpx.Response:
    """POST `params` to `url`, signed with `signer`'s auth token (over `signed_url`)."""
    signature = signer.sign(signed_url or url, params)
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.post(url, data=params, headers={"X-Twilio-Signature": signature})


async def test_a_callback_signed_by_another_account_is_refused(
    server, fake_twilio: FakeTwilio
) -> None:
    """Two SMS channel configurations on two Twilio accounts: each account's signature
    counts for its own configuration's events only."""
    accepted, sms = await sent_sms(server, fake_twilio)
    assert sms.status_callback is not None
    async with FakeTwilio() as other:
        await create_sms_channel(server.admin, other, server.base_url, name="sms2")
        params = fake_twilio.callback_params(sms, "delivered")
        # The other account's callback (its AccountSid, its signature) naming our event.
        theirs = {**params, "AccountSid": other.account_sid}
        assert_problem(await post_callback(sms.status_callback, theirs, other), 403)
        # Our AccountSid, signed with the other account's token.
        assert_problem(await post_callback(sms.status_callback, params, other), 403)
        assert await delivery_log(server.admin, accepted["href"]) == []
        # The event's own account is heard.
        assert (await post_callback(sms.status_callback, params, fake_twilio)).status_code == 204
    assert [e["kind"] for e in await delivery_log(server.admin, accepted["href"])] == ["delivered"]


async def test_a_callback_naming_an_email_event_records_nothing(
    server, fake_twilio: FakeTwilio, smtp
) -> None:
    email_event = await live_event(server.admin, smtp)
    mail = await trigger(server.admin, email_event)
    await wait_status(server.admin, mail["href"], "processed")
    _, sms = await sent_sms(server, fake_twilio)
    url = f"{server.base_url}{CALLBACK_PATH}?pkey={mail['PKey']}"
    r = await post_callback(url, fake_twilio.callback_params(sms, "delivered"), fake_twilio)
    assert_problem(r, 404)
    # Only the email's own send (its acceptance is its delivery): nothing from Twilio.
    assert [e["kind"] for e in await delivery_log(server.admin, mail["href"])] == [
        "sent",
        "delivered",
    ]


async def test_a_callback_about_another_message_is_acknowledged_not_recorded(
    server, fake_twilio: FakeTwilio
) -> None:
    accepted, sms = await sent_sms(server, fake_twilio)
    assert sms.status_callback is not None
    foreign = {**fake_twilio.callback_params(sms, "failed", 30008), "MessageSid": "SM" + "0" * 32}
    r = await post_callback(sms.status_callback, foreign, fake_twilio)
    assert r.status_code == 204, r.text  # Twilio need not retry it
    assert await delivery_log(server.admin, accepted["href"]) == []
    assert await fake_twilio.send_status(sms, "delivered") == 204  # the message sent: recorded
    log = await delivery_log(server.admin, accepted["href"])
    assert [(e["kind"], e["detail"]["MessageSid"]) for e in log] == [("delivered", sms.sid)]


async def test_a_callback_about_an_sms_never_sent_is_not_recorded(
    server, fake_twilio: FakeTwilio
) -> None:
    """Twilio refused the message (no SID): a signed callback naming the event is about a
    message that does not exist, and counts no delivery."""
    event_id = await live_sms_event(server.admin, fake_twilio, server.base_url)
    fake_twilio.fail_next(400, 21211, "The 'To' number is not a valid phone number.")
    refused = await trigger(server.admin, event_id, ADA)
    await wait_status(server.admin, refused["href"], "deliveryFailed")
    url = f"{server.base_url}{CALLBACK_PATH}?pkey={refused['PKey']}"
    sms = FakeSms(
        sid="SM" + "1" * 32,
        account_sid=fake_twilio.account_sid,
        to=ADA["mobilePhone"],
        from_="+14155550100",
        messaging_service_sid=None,
        body="",
        status_callback=url,
        form={},
    )
    r = await post_callback(url, fake_twilio.callback_params(sms, "delivered"), fake_twilio)
    assert r.status_code == 204, r.text  # acknowledged: Twilio need not retry it
    assert await delivery_log(server.admin, refused["href"]) == []
    r = await server.admin.get(f"/api/v1/reports/{event_id}")
    assert r.json()["total"]["delivered"] == 0, r.text


async def test_a_retried_callback_is_recorded_once(server, fake_twilio: FakeTwilio) -> None:
    accepted, sms = await sent_sms(server, fake_twilio)
    assert await fake_twilio.send_status(sms, "sent") == 204
    assert await fake_twilio.send_status(sms, "sent") == 204  # Twilio's retry
    # Retries arriving together (one write cycle) too.
    codes = await asyncio.gather(*(fake_twilio.send_status(sms, "delivered") for _ in range(4)))
    assert codes == [204] * 4
    log = await delivery_log(server.admin, accepted["href"])
    assert [e["kind"] for e in log] == ["sent", "delivered"]


async def test_a_callback_without_pkey_is_a_400(server, fake_twilio: FakeTwilio) -> None:
    """Receipts are matched by the PKey of the callback URL given to Twilio with each message;
    one without it (a Messaging Service's own callback URL) is refused, not guessed."""
    accepted, sms = await sent_sms(server, fake_twilio)
    plain = server.base_url + CALLBACK_PATH
    r = await post_callback(plain, fake_twilio.callback_params(sms, "delivered"), fake_twilio)
    assert_problem(r, 400, "pkey")
    assert await delivery_log(server.admin, accepted["href"]) == []


async def test_malformed_callback_ids_are_400s_naming_them(server, fake_twilio: FakeTwilio) -> None:
    """Checked before anything is looked up or written: never a 500, never a bad row."""
    accepted, sms = await sent_sms(server, fake_twilio)
    url = sms.status_callback
    assert url is not None
    params = fake_twilio.callback_params(sms, "undelivered", 30003)
    for field, value in [
        ("MessageSid", "SM\x00" + "0" * 31),
        ("MessageSid", "SMx"),
        ("MessageSid", "SM" + "0" * 33),
        ("MessageSid", "SM" + "A" * 32),
        ("MessageSid", "XX" + "0" * 32),
        ("ErrorCode", "30003x"),
        ("ErrorCode", "1" * 11),
        ("ErrorCode", "3000\x00"),
        ("AccountSid", "AC123"),
    ]:
        r = await post_callback(url, {**params, field: value}, fake_twilio)
        assert_problem(r, 400, field)
    missing = {k: v for k, v in params.items() if k != "MessageSid"}
    assert_problem(await post_callback(url, missing, fake_twilio), 400, "MessageSid")
    for query in ("?pkey=%00", "?pkey=" + "A" * 41, "?pkey=" + accepted["PKey"].lower()):
        r = await post_callback(server.base_url + CALLBACK_PATH + query, params, fake_twilio)
        assert_problem(r, 400, "pkey")
    assert await delivery_log(server.admin, accepted["href"]) == []
    # Well formed, signed, about no event: a 404.
    unknown = f"{server.base_url}{CALLBACK_PATH}?pkey={'0' * 26}"
    assert_problem(await post_callback(unknown, params, fake_twilio), 404)
    # The same callback with its own ids is recorded (the checks above failed for their reason).
    assert (await post_callback(url, params, fake_twilio)).status_code == 204
    log = await delivery_log(server.admin, accepted["href"])
    assert [(e["kind"], e["detail"]["ErrorCode"]) for e in log] == [("undelivered", "30003")]


@contextmanager
def statements(server: Any) -> Iterator[list[str]]:
    """The SQL statements the server's database runs meanwhile."""
    db = server.app.state.txmsg.db
    engine = db._async.sync_engine if db._async is not None else db._sync
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


async def test_callback_signers_are_cached_and_renewed_on_change(
    database_url: str, data_dir: Path, fake_twilio: FakeTwilio
) -> None:
    """Callbacks do not read the configurations (and their secrets) each time; the event is
    read only for a valid signature; a token changed here applies at once."""
    settings = settings_for(database_url, data_dir, config_cache_seconds=60.0)
    async with RunningServer(settings) as server:
        accepted, sms = await sent_sms(server, fake_twilio)
        url = sms.status_callback
        assert url is not None
        params = fake_twilio.callback_params(sms, "delivered")
        with statements(server) as seen:
            for _ in range(5):
                r = await post_callback(url, params, FakeTwilio(auth_token="forged"))
                assert_problem(r, 403)
        # The configurations' secrets (the writer's once-a-second read of the channel caps
        # takes no secrets and is not on the callback's path).
        configs = [s for s in seen if "channel_configs.secrets" in s]
        assert len(configs) <= 1, configs  # loaded once, then from memory
        # Nor the event (its provider_message_id) or its delivery log: the signature is wrong.
        looked_up = [s for s in seen if "provider_message_id" in s or "delivery_log" in s]
        assert looked_up == []

        # The token rotated through the API: the old one no longer signs, the new one does.
        r = await server.admin.patch(
            "/api/v1/channel-configs/sms", json={"twilio": {"auth_token": "rotated-token"}}
        )
        assert r.status_code == 200, r.text
        assert await fake_twilio.send_status(sms, "delivered") == 403
        fake_twilio.auth_token = "rotated-token"
        assert await fake_twilio.send_status(sms, "delivered") == 204
        assert [e["kind"] for e in await delivery_log(server.admin, accepted["href"])] == [
            "delivered"
        ]
