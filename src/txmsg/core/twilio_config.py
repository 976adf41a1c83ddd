"""The `twilio` block of an SMS channel configuration, its `fallbacks` (further accounts or
messaging services, each shaped like `twilio`) and `breaker`. Auth tokens are write-only
secrets: the primary's under `auth_token`, the fallbacks' under `fallback_auth_tokens`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from txmsg.core.breaker import BreakerSettings, breaker_settings, breaker_view, parse_breaker
from txmsg.core.errors import invalid, refused
from txmsg.core.kinds import Channel
from txmsg.core.phones import normalize_known_phone, normalize_phone
from txmsg.core.urls import http_url
from txmsg.core.validation import get_number, require_object

SMS_FIELDS = {"name", "channel", "twilio", "message_export", "fallbacks", "breaker"}
MAX_FALLBACKS = 4
FALLBACK_TOKENS = "fallback_auth_tokens"  # {"0": token, ...} in the secrets
TWILIO_FIELDS = {
    "account_sid",
    "auth_token",
    "from_number",
    "messaging_service_sid",
    "status_callback_base_url",
    "api_base_url",
    "timeout",
}
DEFAULT_API_BASE_URL = "https://api.twilio.com"
_ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}\Z")
_SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}\Z")
_SHORT_CODE = re.compile(r"[0-9]{3,8}")
_ALPHANUMERIC_ID = re.compile(r"[A-Za-z0-9 ]{1,11}")
_P = "twilio."


@dataclass(frozen=True, slots=True)
class TwilioSettings:
    """How to reach Twilio and send as this configuration: what one sender needs."""

    account_sid: str
    auth_token: str = field(repr=False)  # never in logs or tracebacks
    from_number: str | None = None
    messaging_service_sid: str | None = None
    status_callback_base_url: str | None = None
    api_base_url: str = DEFAULT_API_BASE_URL
    timeout: float = 30.0

    @property
    def provider_name(self) -> str:
        """How the delivery log names this provider: the account and its sender."""
        return f"{self.account_sid}/{self.messaging_service_sid or self.from_number}"


@dataclass(frozen=True, slots=True)
class SmsSettings:
    """An SMS channel configuration, as the SMS leg sends with it."""

    channel: ClassVar[Channel] = Channel.SMS
    twilio: TwilioSettings
    fallbacks: tuple[TwilioSettings, ...] = ()  # tried in order when the ones before fail
    breaker: BreakerSettings = field(default_factory=BreakerSettings)


def _url(value: object, name: str) -> str:
    if not isinstance(value, str) or len(value) > 2000:
        raise invalid(name, "must be an http or https URL")
    parts = http_url(value, name)
    if parts.query or parts.fragment or "?" in value or "#" in value:
        raise invalid(name, "must be a base URL without query, fragment or spaces")
    return value.rstrip("/")


def _sender(value: object, name: str) -> str:
    """A Twilio sender: a short code (3-8 digits), an alphanumeric sender ID (1-11 letters,
    digits and spaces, at least one letter), else a phone number, stored in E.164."""
    if isinstance(value, str):
        if _SHORT_CODE.fullmatch(value):
            return value
        if _ALPHANUMERIC_ID.fullmatch(value) and any(c.isalpha() for c in value):
            return value
        if not value.lstrip().startswith("+"):
            raise invalid(
                name,
                "must be a phone number in E.164 format (+14155550100), a short code (3 to 8 "
                "digits) or an alphanumeric sender ID (up to 11 letters, digits and spaces, "
                "with a letter)",
            )
        return normalize_known_phone(value, name)
    return normalize_phone(value, name)


def _sid(value: object, pattern: re.Pattern[str], name: str, example: str) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise invalid(name, f"must be a Twilio SID like {example} (34 characters)")
    return value


def parse_sms_settings(
    body: dict[str, Any], current: dict[str, Any], secrets: dict[str, Any], *, required: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Settings and secrets after applying `body` (create: `required`; update: merge).

    On update the given keys replace the stored ones and `null` removes an optional one, so
    `{"from_number": "+1...", "messaging_service_sid": null}` switches the sender. A given
    `fallbacks` list replaces the stored one.
    """
    settings, new_secrets = dict(current), dict(secrets)
    if "twilio" in body or required:
        if "twilio" not in body:
            raise invalid("twilio", "is required")
        settings["twilio"], token = _parse_twilio(
            body["twilio"], current.get("twilio", {}), _P, required=required
        )
        if token is not None:
            new_secrets["auth_token"] = token
    if "fallbacks" in body:
        settings["fallbacks"], new_secrets[FALLBACK_TOKENS] = _parse_fallbacks(
            body["fallbacks"], current.get("fallbacks") or [], secrets.get(FALLBACK_TOKENS, {})
        )
        if not settings["fallbacks"]:
            settings.pop("fallbacks")
            new_secrets.pop(FALLBACK_TOKENS)
    if "breaker" in body:
        settings["breaker"] = parse_breaker(body["breaker"])
    return settings, new_secrets


def _parse_twilio(
    raw: object, previous: dict[str, Any], prefix: str, *, required: bool
) -> tuple[dict[str, Any], str | None]:
    """A `twilio`-shaped block merged over `previous`, and its auth token when given."""
    given = require_object(raw, prefix.rstrip("."))
    for key in given:
        if key not in TWILIO_FIELDS:
            raise invalid(prefix + key, "unknown field")
    settings = _twilio_block(_merged(previous, given), prefix)
    previous_account = previous.get("account_sid")
    if not required and settings["account_sid"] != previous_account and "auth_token" not in given:
        # The stored token belongs to the previous account: it cannot sign in to this one.
        raise invalid(prefix + "auth_token", "is required when account_sid changes")
    if not required and "auth_token" not in given and _api_of(settings) != _api_of(previous):
        # The token signs every request: it goes only where it was given for.
        raise refused(prefix + "auth_token", "is required when api_base_url changes")
    if "auth_token" in given or required:
        return settings, _auth_token(given.get("auth_token"), prefix)
    return settings, None


def _parse_fallbacks(
    raw: object, current: list[dict[str, Any]], stored: dict[str, str]
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Further accounts or messaging services, each shaped like `twilio`, tried in order when
    the ones before fail. An entry without `auth_token` keeps the stored token of the entry at
    its position, if that one has the same account SID."""
    if raw is None:
        raw = []
    if not isinstance(raw, list) or len(raw) > MAX_FALLBACKS:
        raise invalid("fallbacks", f"must be an array of at most {MAX_FALLBACKS} Twilio senders")
    settings: list[dict[str, Any]] = []
    tokens: dict[str, str] = {}
    for i, entry in enumerate(raw):
        previous = current[i] if i < len(current) and str(i) in stored else {}
        if (
            isinstance(entry, dict)
            and "auth_token" not in entry
            and previous
            and entry.get("account_sid") == previous.get("account_sid")
            and _api_of(entry) == _api_of(previous)
        ):
            entry = {**entry, "auth_token": stored[str(i)]}  # same account: token kept
        block, token = _parse_twilio(entry, {}, f"fallbacks[{i}].", required=True)
        assert token is not None  # required: given or kept
        settings.append(block)
        tokens[str(i)] = token
    return settings, tokens


def _api_of(block: dict[str, Any]) -> str:
    """Where a Twilio block's requests (and its token) go."""
    return str(block.get("api_base_url") or DEFAULT_API_BASE_URL).rstrip("/")


def _merged(current: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """The stored block with the given keys applied (`null` removes one; never the token)."""
    merged = dict(current)
    for key, value in given.items():
        if key == "auth_token":
            continue
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def _twilio_block(merged: dict[str, Any], p: str = _P) -> dict[str, Any]:
    """The stored `twilio` settings, each checked: exactly one sender, optional callbacks."""
    settings: dict[str, Any] = {
        "account_sid": _sid(
            merged.get("account_sid"), _ACCOUNT_SID, p + "account_sid", "AC0123...cdef"
        ),
        "api_base_url": _url(merged.get("api_base_url", DEFAULT_API_BASE_URL), p + "api_base_url"),
        "timeout": get_number(merged, "timeout", prefix=p, default=30.0, minimum=0.1, maximum=600),
    }
    if merged.get("from_number") is not None:
        settings["from_number"] = _sender(merged["from_number"], p + "from_number")
    if merged.get("messaging_service_sid") is not None:
        settings["messaging_service_sid"] = _sid(
            merged["messaging_service_sid"],
            _SERVICE_SID,
            p + "messaging_service_sid",
            "MG0123...cdef",
        )
    if ("from_number" in settings) == ("messaging_service_sid" in settings):
        raise invalid(p + "from_number", "give exactly one of from_number, messaging_service_sid")
    if merged.get("status_callback_base_url") is not None:
        settings["status_callback_base_url"] = _url(
            merged["status_callback_base_url"], p + "status_callback_base_url"
        )
    return settings


def _auth_token(token: object, prefix: str = _P) -> str:
    if not isinstance(token, str) or not token.strip() or len(token) > 256:
        raise invalid(prefix + "auth_token", "is required: the account's auth token (a string)")
    if "\x00" in token:
        raise invalid(prefix + "auth_token", "must not contain NUL characters (U+0000)")
    return token


def sms_settings(settings: dict[str, Any], secrets: dict[str, Any]) -> SmsSettings:
    """The typed settings of a stored SMS channel configuration (written by the parser)."""
    tokens = secrets.get(FALLBACK_TOKENS, {})
    return SmsSettings(
        _twilio_settings(settings["twilio"], secrets.get("auth_token", "")),
        fallbacks=tuple(
            _twilio_settings(f, tokens.get(str(i), ""))
            for i, f in enumerate(settings.get("fallbacks", ()))
        ),
        breaker=breaker_settings(settings),
    )


def _twilio_settings(twilio: dict[str, Any], auth_token: str) -> TwilioSettings:
    return TwilioSettings(
        account_sid=twilio["account_sid"],
        auth_token=auth_token,
        from_number=twilio.get("from_number"),
        messaging_service_sid=twilio.get("messaging_service_sid"),
        status_callback_base_url=twilio.get("status_callback_base_url"),
        api_base_url=twilio["api_base_url"],
        timeout=twilio.get("timeout", 30.0),
    )


def sms_view(settings: dict[str, Any], secrets: dict[str, Any]) -> dict[str, Any]:
    tokens = secrets.get(FALLBACK_TOKENS, {})
    return {
        "twilio": _twilio_view(settings.get("twilio", {}), "auth_token" in secrets),
        "fallbacks": [
            _twilio_view(f, str(i) in tokens) for i, f in enumerate(settings.get("fallbacks", ()))
        ],
        "breaker": breaker_view(settings),
    }


def _twilio_view(twilio: dict[str, Any], token_set: bool) -> dict[str, Any]:
    return {
        "account_sid": twilio.get("account_sid"),
        "from_number": twilio.get("from_number"),
        "messaging_service_sid": twilio.get("messaging_service_sid"),
        "status_callback_base_url": twilio.get("status_callback_base_url"),
        "api_base_url": twilio.get("api_base_url", DEFAULT_API_BASE_URL),
        "timeout": twilio.get("timeout", 30.0),
        "auth_token_set": token_set,
    }
