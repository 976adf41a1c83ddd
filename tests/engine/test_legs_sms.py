"""The SMS leg on its own, against the real fake Twilio: what it sends and what it answers
for each of Twilio's replies."""

from __future__ import annotations

import pytest
from leg_support import claimed, context, route

from txmsg.core.email_config import EmailSettings, SMTPSettings
from txmsg.core.kinds import Channel
from txmsg.core.statuses import EventStatus
from txmsg.core.targeting import Target
from txmsg.core.twilio_config import SmsSettings, TwilioSettings
from txmsg.engine.legs.base import LegContext
from txmsg.engine.legs.sms import SmsLeg
from txmsg.engine.providers import Providers
from txmsg.testing import FakeTwilio

CONTENT = {"body": "Hi {{ ctx.firstName }}, your code is {{ ctx.code }}"}
PHONE = "+14155550123"
TARGET = Target(PHONE)


def sms(fake_twilio: FakeTwilio) -> SmsSettings:
    return SmsSettings(
        TwilioSettings(
            account_sid=fake_twilio.account_sid,
            auth_token=fake_twilio.auth_token,
            from_number="+14155550100",
            api_base_url=fake_twilio.base_url,
            timeout=5.0,
        )
    )


def unsubscribe_url(channel: str, profile_id: str, pkey: str) -> str:
    return f"http://txmsg.test/u/{channel}/{profile_id}/{pkey}"


def leg(providers: Providers, ctx: LegContext | None = None) -> SmsLeg:
    return SmsLeg(ctx or context(), providers, unsubscribe_url)


async def test_a_sent_sms_is_processed_with_its_sid_and_exported(
    fake_twilio: FakeTwilio, providers: Providers
) -> None:
    sent = claimed(email=None, mobile_phone=PHONE, ctx={"firstName": "Ada", "code": "4321"})
    outcome = await leg(providers).send(
        sent, route(Channel.SMS, sms(fake_twilio), CONTENT, message_export=True), TARGET
    )
    assert outcome is not None
    assert outcome.status == EventStatus.PROCESSED
    [message] = fake_twilio.messages
    assert (message.to, message.from_, message.body) == (
        PHONE,
        "+14155550100",
        "Hi Ada, your code is 4321",
    )
    assert outcome.provider_message_id == message.sid
    assert outcome.message_version == 3
    assert outcome.delivered is False  # an SMS is delivered when Twilio's receipt says so
    record = outcome.export
    assert record is not None
    assert (record.channel, record.message_id, record.recipient_number) == ("sms", sent.pkey, PHONE)
    assert record.sender_numbers == ("+14155550100",)
    assert record.message == "Hi Ada, your code is 4321"
    assert record.timestamp == outcome.sent_at


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (500, "Twilio error 20500 (HTTP 500): Internal Server Error"),
        (503, "Twilio error 20503 (HTTP 503): Service Unavailable"),
        (429, "Twilio error 20429 (HTTP 429): Too Many Requests"),
    ],
)
async def test_5xx_and_429_are_retried(
    fake_twilio: FakeTwilio, providers: Providers, status: int, reason: str
) -> None:
    fake_twilio.fail_next(status)
    outcome = await leg(providers).send(
        claimed(email=None, mobile_phone=PHONE, ctx={"firstName": "Ada", "code": "1"}),
        route(Channel.SMS, sms(fake_twilio), CONTENT),
        TARGET,
    )
    assert outcome is not None
    assert outcome.status == EventStatus.PENDING
    assert outcome.reason == f"retrying: {reason}"
    assert outcome.due_at is not None
    assert fake_twilio.messages == []


async def test_a_400_fails_delivery(fake_twilio: FakeTwilio, providers: Providers) -> None:
    fake_twilio.fail_next(400)
    outcome = await leg(providers).send(
        claimed(email=None, mobile_phone=PHONE, ctx={"firstName": "Ada", "code": "1"}),
        route(Channel.SMS, sms(fake_twilio), CONTENT),
        TARGET,
    )
    assert outcome is not None
    assert outcome.status == EventStatus.DELIVERY_FAILED
    assert outcome.reason == (
        "Twilio error 21211 (HTTP 400): The 'To' number is not a valid phone number."
    )
    assert outcome.message_version == 3
    assert outcome.provider_message_id is None and outcome.export is None


async def test_an_empty_text_fails_routing_and_sends_nothing(
    fake_twilio: FakeTwilio, providers: Providers
) -> None:
    outcome = await leg(providers).send(
        claimed(email=None, mobile_phone=PHONE, ctx={"note": "   "}),
        route(Channel.SMS, sms(fake_twilio), {"body": "{{ ctx.note }}"}),
        TARGET,
    )
    assert outcome is not None
    assert outcome.status == EventStatus.ROUTING_FAILED
    assert outcome.reason == "message version 3 renders an empty text for this event"
    assert outcome.message_version == 3
    assert fake_twilio.requests == 0


async def test_nothing_is_sent_once_the_lease_lapsed(
    fake_twilio: FakeTwilio, providers: Providers
) -> None:
    outcome = await leg(providers, context(lease_lost=True)).send(
        claimed(email=None, mobile_phone=PHONE, ctx={"firstName": "Ada", "code": "1"}),
        route(Channel.SMS, sms(fake_twilio), CONTENT),
        TARGET,
    )
    assert outcome is None
    assert fake_twilio.requests == 0


@pytest.mark.parametrize(
    "settings",
    [None, EmailSettings(from_email="shop@example.com", smtp=SMTPSettings(host="mx"))],
    ids=["missing", "email"],
)
async def test_a_missing_or_email_channel_configuration_fails_routing(
    providers: Providers, settings: EmailSettings | None
) -> None:
    outcome = await leg(providers).send(
        claimed(email=None, mobile_phone=PHONE), route(Channel.SMS, settings, CONTENT), TARGET
    )
    assert outcome is not None
    assert outcome.status == EventStatus.ROUTING_FAILED
    assert outcome.reason == "channel configuration 'main' is missing or not an SMS one"
