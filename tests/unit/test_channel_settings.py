"""Channel and target type enums, and the typed channel settings read from the stored form."""

from __future__ import annotations

import json
from typing import Any

import pytest

from txmsg.core.channel_config import channel_settings, parse_create, parse_update
from txmsg.core.email_config import EmailSettings, SMTPSettings
from txmsg.core.errors import DomainError
from txmsg.core.kinds import CHANNELS, TARGET_TYPES, Channel, TargetType
from txmsg.core.tracking import TrackingSettings
from txmsg.core.twilio_config import DEFAULT_API_BASE_URL, SmsSettings, TwilioSettings

ACCOUNT = "AC" + "0123456789abcdef" * 2
SERVICE = "MG" + "0123456789abcdef" * 2


def test_enums_are_their_stored_strings() -> None:
    assert Channel.EMAIL == "email" and Channel.SMS == "sms"
    assert TargetType.EVENT == "event" and TargetType.PROFILE == "profile"
    assert Channel("sms") is Channel.SMS and TargetType("profile") is TargetType.PROFILE
    assert json.dumps({"channel": Channel.SMS, "target": TargetType.EVENT}) == (
        '{"channel": "sms", "target": "event"}'
    )
    assert f"{Channel.EMAIL}" == "email"
    assert CHANNELS == ("email", "sms") and TARGET_TYPES == ("event", "profile")


def test_an_email_configuration_reads_back_typed_with_its_password() -> None:
    spec = parse_create(
        {
            "name": "main",
            "channel": "email",
            "from_email": "shop@example.com",
            "from_name": "The Shop",
            "reply_to": "help@example.com",
            "bounce_domain": "Bounces.Example.com.",
            "tracking": {"opens": True},
            "smtp": {"host": "mx.example.com", "tls": "starttls", "password": "hunter2-secret"},
        }
    )
    assert spec.channel is Channel.EMAIL
    settings = channel_settings(spec.channel, spec.settings, spec.secrets)
    assert settings == EmailSettings(
        from_email="shop@example.com",
        smtp=SMTPSettings(
            host="mx.example.com", port=587, tls="starttls", password="hunter2-secret"
        ),
        from_name="The Shop",
        reply_to="help@example.com",
        bounce_domain="bounces.example.com",
        tracking=TrackingSettings(opens=True, clicks=False),
    )
    assert settings.channel is Channel.EMAIL
    assert "hunter2-secret" not in repr(settings)


def test_an_email_configuration_without_optional_fields_has_their_defaults() -> None:
    stored: dict[str, Any] = {
        "from_email": "shop@example.com",
        "smtp": {"host": "mx", "port": 25, "tls": "none"},
    }
    settings = channel_settings("email", stored, {})
    assert isinstance(settings, EmailSettings)
    assert (settings.from_name, settings.reply_to, settings.bounce_domain) == (None, None, None)
    assert settings.tracking.on is False
    assert settings.smtp == SMTPSettings(host="mx")
    # The defaults the untyped reads had (`smtp.get("timeout", 30.0)`, ...), spelled out.
    smtp = settings.smtp
    assert (smtp.timeout, smtp.pool_size, smtp.username, smtp.password) == (30.0, 8, None, None)
    assert smtp.validate_certs is True


def test_an_sms_configuration_without_optional_fields_has_their_defaults() -> None:
    stored: dict[str, Any] = {
        "twilio": {"account_sid": ACCOUNT, "from_number": "+14155550100", "api_base_url": "x"}
    }
    settings = channel_settings("sms", stored, {})
    assert settings == SmsSettings(
        TwilioSettings(
            account_sid=ACCOUNT, auth_token="", from_number="+14155550100", api_base_url="x"
        )
    )
    assert isinstance(settings, SmsSettings)
    twilio = settings.twilio
    assert (twilio.timeout, twilio.messaging_service_sid, twilio.status_callback_base_url) == (
        30.0,
        None,
        None,
    )


def test_an_sms_configuration_reads_back_typed_with_its_token() -> None:
    spec = parse_create(
        {
            "name": "texts",
            "channel": "sms",
            "twilio": {
                "account_sid": ACCOUNT,
                "auth_token": "token-secret",
                "messaging_service_sid": SERVICE,
                "status_callback_base_url": "https://hooks.example.com/",
            },
        }
    )
    assert spec.channel is Channel.SMS
    settings = channel_settings(spec.channel, spec.settings, spec.secrets)
    assert settings == SmsSettings(
        TwilioSettings(
            account_sid=ACCOUNT,
            auth_token="token-secret",
            messaging_service_sid=SERVICE,
            status_callback_base_url="https://hooks.example.com",
            api_base_url=DEFAULT_API_BASE_URL,
            timeout=30.0,
        )
    )
    assert settings.channel is Channel.SMS
    assert "token-secret" not in repr(settings)


def test_smtp_settings_check_their_values() -> None:
    with pytest.raises(ValueError, match="tls must be one of"):
        SMTPSettings(host="mx", tls="ssl")
    with pytest.raises(ValueError, match="pool_size"):
        SMTPSettings(host="mx", pool_size=0)


def _sms_error(body: dict[str, Any], stored: dict[str, Any] | None = None) -> str:
    with pytest.raises(DomainError) as caught:
        if stored is None:
            parse_create({"name": "texts", "channel": "sms", **body})
        else:
            parse_update(body, "sms", stored, {"auth_token": "old"}, False)
    return caught.value.detail


STORED = {"twilio": {"account_sid": ACCOUNT, "from_number": "+14155550100", "timeout": 30.0}}


@pytest.mark.parametrize(
    ("body", "stored", "detail"),
    [
        ({}, None, "twilio: is required"),
        ({"twilio": {"sid": 1}}, None, "twilio.sid: unknown field"),
        (
            {"twilio": {"account_sid": "nope", "auth_token": "t", "from_number": "+14155550100"}},
            None,
            "twilio.account_sid: must be a Twilio SID like AC0123...cdef (34 characters)",
        ),
        (
            {"twilio": {"account_sid": ACCOUNT, "auth_token": "t"}},
            None,
            "twilio.from_number: give exactly one of from_number, messaging_service_sid",
        ),
        (
            {"twilio": {"account_sid": ACCOUNT, "from_number": "+14155550100"}},
            None,
            "twilio.auth_token: is required: the account's auth token (a string)",
        ),
        (
            {"twilio": {"account_sid": ACCOUNT, "auth_token": "a\x00b", "from_number": "12345"}},
            None,
            "twilio.auth_token: must not contain NUL characters (U+0000)",
        ),
        (
            {"twilio": {"account_sid": "AC" + "f" * 32}},
            STORED,
            "twilio.auth_token: is required when account_sid changes",
        ),
        (
            {"twilio": {"messaging_service_sid": SERVICE}},
            STORED,
            "twilio.from_number: give exactly one of from_number, messaging_service_sid",
        ),
        (
            {"twilio": {"status_callback_base_url": "ftp://x"}},
            STORED,
            "twilio.status_callback_base_url: must be an absolute http or https URL",
        ),
    ],
)
def test_sms_settings_errors(
    body: dict[str, Any], stored: dict[str, Any] | None, detail: str
) -> None:
    assert _sms_error(body, stored) == detail


def test_an_sms_update_merges_and_null_removes() -> None:
    settings, secrets, export = parse_update(
        {"twilio": {"from_number": None, "messaging_service_sid": SERVICE}},
        "sms",
        STORED,
        {"auth_token": "old"},
        False,
    )
    assert settings == {
        "twilio": {
            "account_sid": ACCOUNT,
            "api_base_url": DEFAULT_API_BASE_URL,
            "timeout": 30.0,
            "messaging_service_sid": SERVICE,
        }
    }
    assert secrets == {"auth_token": "old"} and export is False
