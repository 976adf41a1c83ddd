"""Channel configurations: a named sender setup. Secrets are split off and never shown."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from txmsg.core.addresses import normalize_email
from txmsg.core.errors import invalid
from txmsg.core.tracking import parse_tracking, tracking_of
from txmsg.core.twilio_config import SMS_FIELDS, parse_sms_settings, sms_view
from txmsg.core.validation import (
    get_bool,
    get_choice,
    get_int,
    get_number,
    get_str,
    reject_unknown,
    require_object,
)
from txmsg.core.verp import is_hostname

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
CHANNELS = ("email", "sms")
TLS_MODES = ("none", "starttls", "tls")
EMAIL_FIELDS = {
    "name",
    "channel",
    "from_email",
    "from_name",
    "reply_to",
    "smtp",
    "message_export",
    "bounce_domain",
    "tracking",
}
SMTP_FIELDS = {"host", "port", "tls", "username", "password", "timeout", "pool_size"}


@dataclass(frozen=True, slots=True)
class ChannelConfigSpec:
    name: str
    channel: str
    settings: dict[str, Any]
    secrets: dict[str, Any]
    message_export: bool


def parse_name(value: object) -> str:
    if not isinstance(value, str) or not NAME.match(value):
        raise invalid(
            "name", "is required: 1-64 letters, digits, '_', '.' or '-', starting alphanumeric"
        )
    return value


def _parse_smtp(
    raw: object, current: dict[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Settings and secrets of the `smtp` object; on update, given keys replace current ones."""
    body = require_object(raw, "smtp")
    reject_unknown(body, SMTP_FIELDS, "smtp.")
    merged = dict(current or {})
    if "tls" in body and "port" not in body:
        merged.pop("port", None)  # the default port follows the TLS mode
    for key in body:
        if key != "password":
            merged[key] = body[key]
    host = get_str(merged, "host", prefix="smtp.", required=True, max_length=255)
    tls = get_choice(merged, "tls", TLS_MODES, prefix="smtp.", default="none")
    default_port = {"none": 25, "starttls": 587, "tls": 465}[tls or "none"]
    settings = {
        "host": host,
        "port": get_int(
            merged, "port", prefix="smtp.", default=default_port, minimum=1, maximum=65535
        ),
        "tls": tls,
        "username": get_str(merged, "username", prefix="smtp.", max_length=255),
        "timeout": get_number(
            merged, "timeout", prefix="smtp.", default=30.0, minimum=0.1, maximum=600
        ),
        "pool_size": get_int(merged, "pool_size", prefix="smtp.", default=8, minimum=1, maximum=64),
    }
    secrets: dict[str, Any] = {}
    if "password" in body:
        password = body["password"]
        if password is not None and not isinstance(password, str):
            raise invalid("smtp.password", "must be a string")
        if password and "\x00" in password:
            raise invalid("smtp.password", "must not contain NUL characters (U+0000)")
        if password:
            secrets["password"] = password
    return settings, secrets


def parse_create(body: object) -> ChannelConfigSpec:
    body = require_object(body)
    name = parse_name(body.get("name"))
    channel = get_choice(body, "channel", CHANNELS, required=True)
    assert channel is not None
    if channel == "sms":
        reject_unknown(body, SMS_FIELDS)
        settings, secrets = parse_sms_settings(body, {}, {}, required=True)
    else:
        reject_unknown(body, EMAIL_FIELDS)
        settings, secrets = _parse_email_settings(body, {}, required=True)
    export = get_bool(body, "message_export", default=False)
    return ChannelConfigSpec(name, channel, settings, secrets, bool(export))


def parse_update(
    body: object, channel: str, settings: dict[str, Any], secrets: dict[str, Any], export: bool
) -> tuple[dict[str, Any], dict[str, Any], bool]:
    """Apply a PATCH body to the stored values; `name` and `channel` cannot change."""
    body = require_object(body)
    reject_unknown(body, SMS_FIELDS if channel == "sms" else EMAIL_FIELDS)
    for fixed in ("name", "channel"):
        if fixed in body:
            raise invalid(fixed, "cannot be changed after creation")
    if channel == "sms":
        new_settings, merged_secrets = parse_sms_settings(body, settings, secrets, required=False)
        return new_settings, merged_secrets, bool(get_bool(body, "message_export", default=export))
    new_settings, new_secrets = _parse_email_settings(body, settings, required=False)
    merged_secrets = dict(secrets)
    if "smtp" in body and isinstance(body["smtp"], dict) and "password" in body["smtp"]:
        merged_secrets.pop("password", None)  # explicit null or "" clears it
        merged_secrets.update(new_secrets)
    new_export = get_bool(body, "message_export", default=export)
    return new_settings, merged_secrets, bool(new_export)


def _parse_email_settings(
    body: dict[str, Any], current: dict[str, Any], *, required: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    settings = dict(current)
    if required or "from_email" in body:
        settings["from_email"] = normalize_email(body.get("from_email"), "from_email")
    for key in ("from_name", "reply_to"):
        if key in body:
            settings[key] = get_str(body, key, max_length=320)
    if settings.get("reply_to"):
        settings["reply_to"] = normalize_email(settings["reply_to"], "reply_to")
    if "bounce_domain" in body:
        domain = _parse_bounce_domain(body["bounce_domain"])
        if domain is None:
            settings.pop("bounce_domain", None)
        else:
            settings["bounce_domain"] = domain
    if "tracking" in body:
        settings["tracking"] = parse_tracking(body["tracking"], tracking_of(current)).as_dict()
    secrets: dict[str, Any] = {}
    if required or "smtp" in body:
        if "smtp" not in body:
            raise invalid("smtp", "is required")
        settings["smtp"], secrets = _parse_smtp(body["smtp"], current.get("smtp"))
    return settings, secrets


def _parse_bounce_domain(value: object) -> str | None:
    """The domain of the per-message VERP envelope senders (null: the from address is the
    envelope sender)."""
    if value is None:
        return None
    if not isinstance(value, str) or not is_hostname(value.strip().lower().rstrip(".")):
        raise invalid(
            "bounce_domain",
            "must be a host name such as bounces.example.com (ASCII; IDNs in punycode)",
        )
    return value.strip().lower().rstrip(".")


def public_view(
    name: str, channel: str, settings: dict[str, Any], secrets: dict[str, Any], export: bool
) -> dict[str, Any]:
    """What the API shows: settings without secrets, and whether each secret is set."""
    if channel == "sms":
        twilio = sms_view(settings, secrets)
        return {"name": name, "channel": channel, **twilio, "message_export": export}
    view: dict[str, Any] = {
        "name": name,
        "channel": channel,
        "from_email": settings.get("from_email"),
        "from_name": settings.get("from_name"),
        "reply_to": settings.get("reply_to"),
        "bounce_domain": settings.get("bounce_domain"),
        "message_export": export,
        "tracking": tracking_of(settings).as_dict(),
    }
    if "smtp" in settings:
        view["smtp"] = {**settings["smtp"], "password_set": "password" in secrets}
    return view
