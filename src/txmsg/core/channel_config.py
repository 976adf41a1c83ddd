"""Channel configurations: a named sender setup. Secrets are split off and never shown."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from txmsg.core.breaker import breaker_view
from txmsg.core.dkim import SECRET_NAME as DKIM_SECRET
from txmsg.core.dkim import dkim_view
from txmsg.core.email_config import (
    EMAIL_FIELDS,
    FALLBACK_SECRET,
    EmailSettings,
    email_settings,
    parse_email_settings,
)
from txmsg.core.errors import DomainError, as_refused, invalid
from txmsg.core.kinds import CHANNELS, Channel
from txmsg.core.rate_limit import parse_channel_cap
from txmsg.core.tracking import tracking_of
from txmsg.core.twilio_config import (
    SMS_FIELDS,
    SmsSettings,
    parse_sms_settings,
    sms_settings,
    sms_view,
)
from txmsg.core.validation import get_bool, get_choice, reject_unknown, require_object

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")

# What a route carries of its channel configuration, one type per channel.
ChannelSettings = EmailSettings | SmsSettings


@dataclass(frozen=True, slots=True)
class ChannelConfigSpec:
    name: str
    channel: Channel
    settings: dict[str, Any]
    secrets: dict[str, Any]
    message_export: bool


def parse_name(value: object) -> str:
    if not isinstance(value, str) or not NAME.match(value):
        raise invalid(
            "name", "is required: 1-64 letters, digits, '_', '.' or '-', starting alphanumeric"
        )
    return value


def parse_create(body: object) -> ChannelConfigSpec:
    body = require_object(body)
    name = parse_name(body.get("name"))
    chosen = get_choice(body, "channel", CHANNELS, required=True)
    assert chosen is not None
    channel = Channel(chosen)
    if channel == Channel.SMS:
        reject_unknown(body, SMS_FIELDS | {"rate_limit"})
        settings, secrets = parse_sms_settings(body, {}, {}, required=True)
    else:
        reject_unknown(body, EMAIL_FIELDS | {"rate_limit"})
        settings, secrets = parse_email_settings(body, {}, required=True)
    export = get_bool(body, "message_export", default=False)
    return ChannelConfigSpec(name, channel, _with_cap(settings, body, {}), secrets, bool(export))


def _with_cap(
    settings: dict[str, Any], body: dict[str, Any], current: dict[str, Any]
) -> dict[str, Any]:
    """The settings with the send-rate cap of `body` (`null` or `{}` removes it), else the
    stored one."""
    cap = parse_channel_cap(body["rate_limit"]) if "rate_limit" in body else None
    kept = current.get("rate_limit") if "rate_limit" not in body else None
    out = {k: v for k, v in settings.items() if k != "rate_limit"}
    if cap is not None:
        out["rate_limit"] = cap.as_dict()
    elif kept:
        out["rate_limit"] = kept
    return out


def parse_update(
    body: object, channel: str, settings: dict[str, Any], secrets: dict[str, Any], export: bool
) -> tuple[dict[str, Any], dict[str, Any], bool]:
    """Apply a PATCH body to the stored values; `name` and `channel` cannot change."""
    body = require_object(body)
    reject_unknown(body, SMS_FIELDS | EMAIL_FIELDS | {"rate_limit"})
    try:  # a field of the other channel's configurations: the stored channel refuses it
        reject_unknown(
            body, (SMS_FIELDS if channel == Channel.SMS else EMAIL_FIELDS) | {"rate_limit"}
        )
    except DomainError as exc:
        raise as_refused(exc) from None
    for fixed in ("name", "channel"):
        if fixed in body:
            raise invalid(fixed, "cannot be changed after creation")
    if channel == Channel.SMS:
        new_settings, merged_secrets = parse_sms_settings(body, settings, secrets, required=False)
        export = bool(get_bool(body, "message_export", default=export))
        return _with_cap(new_settings, body, settings), merged_secrets, export
    new_settings, new_secrets = parse_email_settings(
        body, settings, required=False, current_secrets=secrets
    )
    merged_secrets = dict(secrets)
    if "smtp" in body and isinstance(body["smtp"], dict) and "password" in body["smtp"]:
        merged_secrets.pop("password", None)  # explicit null or "" clears it
        merged_secrets.update(new_secrets)
    for key, secret in ((DKIM_SECRET, "dkim"), (FALLBACK_SECRET, "fallbacks")):
        if secret in body:  # given: replaces the stored secret (null removes it)
            merged_secrets.pop(key, None)
            if new_secrets.get(key):
                merged_secrets[key] = new_secrets[key]
    new_export = get_bool(body, "message_export", default=export)
    return _with_cap(new_settings, body, settings), merged_secrets, bool(new_export)


def channel_settings(
    channel: str, settings: dict[str, Any], secrets: dict[str, Any]
) -> ChannelSettings:
    """The typed settings of a stored channel configuration, secrets included."""
    if channel == Channel.SMS:
        return sms_settings(settings, secrets)
    return email_settings(settings, secrets)


def public_view(
    name: str, channel: str, settings: dict[str, Any], secrets: dict[str, Any], export: bool
) -> dict[str, Any]:
    """What the API shows: settings without secrets, and whether each secret is set."""
    if channel == Channel.SMS:
        twilio = sms_view(settings, secrets)
        return {
            "name": name,
            "channel": channel,
            **twilio,
            "message_export": export,
            "rate_limit": _cap_view(settings),
        }
    view: dict[str, Any] = {
        "name": name,
        "channel": channel,
        "from_email": settings.get("from_email"),
        "from_name": settings.get("from_name"),
        "reply_to": settings.get("reply_to"),
        "bounce_domain": settings.get("bounce_domain"),
        "message_export": export,
        "tracking": tracking_of(settings).as_dict(),
        "rate_limit": _cap_view(settings),
    }
    if "smtp" in settings:
        view["smtp"] = {**settings["smtp"], "password_set": "password" in secrets}
    view["dkim"] = dkim_view(settings, secrets)
    passwords = secrets.get(FALLBACK_SECRET, {})
    view["fallbacks"] = [
        {**f, "password_set": str(i) in passwords}
        for i, f in enumerate(settings.get("fallbacks", ()))
    ]
    view["breaker"] = breaker_view(settings)
    return view


def _cap_view(settings: dict[str, Any]) -> dict[str, int] | None:
    """The stored cap with its defaults filled in (one stored before `bulk_share` shows the
    share it is counted with)."""
    cap = parse_channel_cap(settings.get("rate_limit"))
    return cap.as_dict() if cap is not None else None
