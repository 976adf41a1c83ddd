"""The email leg on its own, against the real fake SMTP server: what it sends and what it
answers for each SMTP reply (both engines: the VERP and tracking secrets live in the database)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from leg_support import claimed, context, route

from txmsg.core.dkim import DkimSettings
from txmsg.core.email_config import EmailSettings, SMTPSettings
from txmsg.core.kinds import Channel
from txmsg.core.queue import Outcome
from txmsg.core.retry import RetryPolicy
from txmsg.core.statuses import EventStatus
from txmsg.core.targeting import Target
from txmsg.core.timeutil import utcnow
from txmsg.core.tracking import TrackingSettings
from txmsg.core.twilio_config import SmsSettings, TwilioSettings
from txmsg.core.verp import SECRET_NAME as VERP_SECRET
from txmsg.core.verp import read_bounce_address
from txmsg.engine.legs.base import LegContext
from txmsg.engine.legs.email import EmailLeg
from txmsg.engine.providers import Providers
from txmsg.engine.targeting import Targeting
from txmsg.engine.tracking import Tracking
from txmsg.sandbox.pool import SigningFailed
from txmsg.store.db import Database
from txmsg.store.secrets import ServerSecrets
from txmsg.testing import FakeSMTPServer

CONTENT = {
    "subject": "Hello {{ ctx.firstName }}",
    "html": '<p>Hi {{ ctx.firstName }}, <a href="https://example.org/cart">your cart</a></p>',
    "text": "Hi {{ ctx.firstName }}",
}
TARGET = Target("ada@example.org")


def email(smtp: FakeSMTPServer, **over: object) -> EmailSettings:
    settings = EmailSettings(
        from_email="shop@example.com",
        smtp=SMTPSettings(host=smtp.host, port=smtp.port, timeout=5.0, pool_size=2),
        from_name="The Shop",
        reply_to="help@example.com",
    )
    return replace(settings, **over)  # type: ignore[arg-type]


def leg(db: Database, providers: Providers, ctx: LegContext | None = None) -> EmailLeg:
    secrets = ServerSecrets(db)
    return EmailLeg(
        ctx or context(),
        providers,
        Targeting(db, secrets, "http://txmsg.test"),
        Tracking(secrets, "http://txmsg.test"),
        secrets,
    )


async def test_a_sent_email_is_processed_delivered_and_exported(
    db: Database, smtp: FakeSMTPServer, providers: Providers
) -> None:
    event = claimed()
    sent = route(Channel.EMAIL, email(smtp), CONTENT, message_export=True)
    outcome = await leg(db, providers).send(event, sent, TARGET)
    assert outcome is not None
    assert (outcome.id, outcome.lease_token) == (event.id, event.lease_token)
    assert outcome.status == EventStatus.PROCESSED
    assert outcome.delivered is True
    assert outcome.message_version == 3
    assert outcome.sent_at is not None and outcome.bounce is None
    [message] = smtp.messages
    assert message.mail_from == "shop@example.com"  # no bounce domain: the from address
    assert message.rcpt_tos == ["ada@example.org"]
    assert message.subject == "Hello Ada"
    assert message.message["From"] == "The Shop <shop@example.com>"
    assert message.message["Reply-To"] == "help@example.com"
    assert event.pkey in message.message["Message-ID"]
    assert "List-Unsubscribe" not in message.message  # not profile-based: no link
    record = outcome.export
    assert record is not None
    assert (record.channel, record.message_id, record.event_id) == ("email", event.pkey, "EVTtest")
    assert record.publication_id == "EVTtest/3"
    assert (record.sender_email, record.sender_name, record.sender_reply_to) == (
        "shop@example.com",
        "The Shop",
        "help@example.com",
    )
    assert (record.recipient_email, record.subject, record.text) == (
        "ada@example.org",
        "Hello Ada",
        "Hi Ada",
    )
    assert record.timestamp == outcome.sent_at


async def test_no_export_record_when_export_is_off(
    db: Database, smtp: FakeSMTPServer, providers: Providers
) -> None:
    outcome = await leg(db, providers).send(
        claimed(), route(Channel.EMAIL, email(smtp), CONTENT), TARGET
    )
    assert outcome is not None and outcome.status == EventStatus.PROCESSED
    assert outcome.export is None


async def test_a_4xx_is_retried_with_a_soft_bounce(
    db: Database, smtp: FakeSMTPServer, providers: Providers
) -> None:
    smtp.fail_next(452, "4.2.2 Mailbox full", stage="RCPT")
    event = claimed()
    before = utcnow()
    outcome = await leg(db, providers).send(
        event, route(Channel.EMAIL, email(smtp), CONTENT), TARGET
    )
    assert outcome is not None
    assert outcome.status == EventStatus.PENDING
    assert outcome.reason == "retrying: 452 4.2.2 Mailbox full"
    assert outcome.due_at is not None and outcome.due_at > before
    assert outcome.message_version == 3
    assert outcome.provider_saw  # the server saw the attempt: its cap token stays spent
    assert outcome.bounce is not None
    assert outcome.bounce.hard is False
    assert (outcome.bounce.pkey, outcome.bounce.channel, outcome.bounce.address) == (
        event.pkey,
        "email",
        "ada@example.org",
    )
    assert smtp.messages == []


async def test_a_4xx_past_the_expiry_ends_too_old(
    db: Database, smtp: FakeSMTPServer, providers: Providers
) -> None:
    smtp.fail_next(451, "4.3.0 Try later")
    event = claimed(expires_in=timedelta(milliseconds=200), attempts=5)
    outcome = await leg(db, providers).send(
        event, route(Channel.EMAIL, email(smtp), CONTENT), TARGET
    )
    assert outcome is not None
    assert outcome.status == EventStatus.TOO_OLD
    assert outcome.reason == "expired while retrying: 451 4.3.0 Try later"


async def test_a_5xx_fails_delivery_with_a_hard_bounce(
    db: Database, smtp: FakeSMTPServer, providers: Providers
) -> None:
    smtp.fail_next(550, "5.1.1 No such user", stage="RCPT")
    event = claimed()
    outcome = await leg(db, providers).send(
        event, route(Channel.EMAIL, email(smtp), CONTENT), TARGET
    )
    assert outcome is not None
    assert outcome.status == EventStatus.DELIVERY_FAILED
    assert outcome.reason == "550 5.1.1 No such user"
    assert outcome.message_version == 3
    assert outcome.bounce is not None and outcome.bounce.hard is True
    assert outcome.export is None and outcome.sent_at is None


async def test_a_policy_refusal_is_no_bounce(
    db: Database, smtp: FakeSMTPServer, providers: Providers
) -> None:
    smtp.fail_next(554, "5.7.1 Message refused as spam")
    outcome = await leg(db, providers).send(
        claimed(), route(Channel.EMAIL, email(smtp), CONTENT), TARGET
    )
    assert outcome is not None
    assert outcome.status == EventStatus.DELIVERY_FAILED
    assert outcome.bounce is None


async def test_nothing_is_sent_once_the_lease_lapsed(
    db: Database, smtp: FakeSMTPServer, providers: Providers
) -> None:
    lapsed = leg(db, providers, context(lease_lost=True))
    outcome = await lapsed.send(claimed(), route(Channel.EMAIL, email(smtp), CONTENT), TARGET)
    assert outcome is None
    assert smtp.messages == [] and smtp.connections_opened == 0


async def test_a_bounce_domain_sends_from_a_signed_verp_address(
    db: Database, smtp: FakeSMTPServer, providers: Providers
) -> None:
    event = claimed()
    sent = route(Channel.EMAIL, email(smtp, bounce_domain="bounces.example.com"), CONTENT)
    email_leg = leg(db, providers)
    await email_leg.prepare([sent])
    outcome = await email_leg.send(event, sent, TARGET)
    assert outcome is not None and outcome.status == EventStatus.PROCESSED
    [message] = smtp.messages
    assert message.mail_from.endswith("@bounces.example.com")
    assert message.message["From"] == "The Shop <shop@example.com>"
    secret = await ServerSecrets(db).get(VERP_SECRET)
    assert secret is not None
    assert read_bounce_address(secret, message.mail_from, frozenset({"bounces.example.com"})) == (
        event.pkey
    )


async def test_a_bounce_domain_without_prepare_is_an_error(
    db: Database, smtp: FakeSMTPServer, providers: Providers
) -> None:
    sent = route(Channel.EMAIL, email(smtp, bounce_domain="bounces.example.com"), CONTENT)
    with pytest.raises(RuntimeError, match="VERP secret"):
        await leg(db, providers).send(claimed(), sent, TARGET)
    assert smtp.messages == []


async def test_tracked_links_and_an_open_pixel_when_tracking_is_on(
    db: Database, smtp: FakeSMTPServer, providers: Providers
) -> None:
    tracked = email(smtp, tracking=TrackingSettings(opens=True, clicks=True))
    sent = route(Channel.EMAIL, tracked, CONTENT)
    email_leg = leg(db, providers)
    await email_leg.prepare([sent])
    outcome = await email_leg.send(claimed(), sent, TARGET)
    assert outcome is not None and outcome.status == EventStatus.PROCESSED
    [message] = smtp.messages
    html = message.html or ""
    assert "http://txmsg.test/" in html
    assert 'href="https://example.org/cart"' not in html


@pytest.mark.parametrize(
    "settings",
    [
        None,
        SmsSettings(TwilioSettings(account_sid="AC" + "0" * 32, auth_token="t", from_number="+1")),
    ],
    ids=["missing", "sms"],
)
async def test_a_missing_or_sms_channel_configuration_fails_routing(
    db: Database, providers: Providers, settings: SmsSettings | None
) -> None:
    outcome = await leg(db, providers).send(
        claimed(), route(Channel.EMAIL, settings, CONTENT), TARGET
    )
    assert isinstance(outcome, Outcome)
    assert outcome.status == EventStatus.ROUTING_FAILED
    assert outcome.reason == "channel configuration 'main' is missing or not an email one"


async def test_a_message_that_cannot_render_fails_routing(
    db: Database, smtp: FakeSMTPServer, providers: Providers
) -> None:
    broken = {**CONTENT, "subject": "Total {{ 1 / ctx.count }}"}  # ctx.count is 0 here
    outcome = await leg(db, providers).send(
        claimed(ctx={"count": 0}), route(Channel.EMAIL, email(smtp), broken), TARGET
    )
    assert outcome is not None
    assert outcome.status == EventStatus.ROUTING_FAILED
    assert outcome.message_version == 3
    assert outcome.reason == (
        "message version 3 cannot be rendered for this event: subject: line 1: division by zero"
    )
    assert smtp.messages == []


async def test_a_message_that_renders_no_body_fails_routing(
    db: Database, smtp: FakeSMTPServer, providers: Providers
) -> None:
    # An SMS that renders empty was already unroutable; an email was sent with an empty body.
    blank = {"subject": "x", "html": "{{ ctx.html }}", "text": " \n{{ ctx.text }}\t"}
    for html, text, sent in (("", "", 0), (" \n", "", 0), ("<p>Hi</p>", "", 1), ("", "Hi", 2)):
        outcome = await leg(db, providers).send(
            claimed(ctx={"html": html, "text": text}),
            route(Channel.EMAIL, email(smtp), blank),
            TARGET,
        )
        assert outcome is not None
        if sent:
            assert outcome.status == EventStatus.PROCESSED, outcome
            assert len(await smtp.wait_for(sent)) == sent
            continue
        assert outcome.status == EventStatus.ROUTING_FAILED
        assert outcome.message_version == 3
        assert outcome.reason == "message version 3 renders an empty html and text for this event"
    assert len(smtp.messages) == 2


class FailingSigner(LegContext):
    """Render workers that render, and fail to sign (the worker, not the key)."""

    @property
    def renderer(self) -> Any:
        return self

    @renderer.setter
    def renderer(self, _value: Any) -> None:
        pass

    async def sign(self, *_args: Any) -> bytes:
        raise SigningFailed("the render worker ended", permanent=False)


async def test_a_signing_worker_that_failed_retries_with_the_cap_token_back(
    db: Database, smtp: FakeSMTPServer, providers: Providers
) -> None:
    """Signed before any relay: the retry went to none, so its channel cap's token goes back
    (`Outcome.provider_saw`: the dispatcher gives back what no provider saw)."""
    base = context()
    failing = FailingSigner(RetryPolicy(base_seconds=1.0), base.lease_lost, base._renderer)
    dkim = DkimSettings("example.com", "s1", "ed25519", b"A" * 44)
    outcome = await leg(db, providers, failing).send(
        claimed(), route(Channel.EMAIL, email(smtp, dkim=dkim), CONTENT), TARGET
    )
    assert outcome is not None
    assert (outcome.status, outcome.reason) == (
        EventStatus.PENDING,
        "retrying: the render worker ended",
    )
    assert not outcome.provider_saw
    assert smtp.messages == []
