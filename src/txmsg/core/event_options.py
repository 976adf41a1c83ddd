"""Tags and the status webhook of an event configuration: parsed and checked here."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from txmsg.core.errors import invalid, refused
from txmsg.core.urls import http_url
from txmsg.core.validation import get_str, reject_unknown, require_object

MAX_TAGS = 20
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}\Z")
MIN_SECRET = 16


def parse_tag(value: object, name: str = "tag", *, in_query: bool = False) -> str:
    if not isinstance(value, str) or not _TAG.match(value):
        raise invalid(
            name,
            "must be 1 to 64 letters, digits or _.:- characters, starting with a letter or digit",
            in_header=in_query,
        )
    return value


def parse_tags(value: object) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid("tags", "must be an array of strings")
    if len(value) > MAX_TAGS:
        raise invalid("tags", f"at most {MAX_TAGS} tags")
    # A set: stored and returned sorted.
    return sorted({parse_tag(item, f"tags[{i}]") for i, item in enumerate(value)})


@dataclass(frozen=True, slots=True)
class WebhookInput:
    """A webhook as sent: `secret` None keeps the stored one (write-only)."""

    url: str
    secret: str | None


def parse_webhook(value: object, *, has_secret: bool, creating: bool) -> WebhookInput | None:
    """`null` removes the webhook; a new one needs a secret, an update may keep it (without a
    stored one, the refusal is the stored state's: a 422, as the spec cannot say it)."""
    if value is None:
        return None
    body = require_object(value, "webhook")
    reject_unknown(body, {"url", "secret"}, "webhook.")
    url = get_str(body, "url", prefix="webhook.", required=True, max_length=2000)
    assert url is not None
    check_webhook_url(url)
    secret = get_str(body, "secret", prefix="webhook.", max_length=200)
    if secret is None and not has_secret:
        detail = "is required (used to sign each call)"
        if creating:
            raise invalid("webhook.secret", detail)
        raise refused("webhook.secret", detail + ": this event has no webhook secret yet")
    if secret is not None and len(secret) < MIN_SECRET:
        raise invalid("webhook.secret", f"must be at least {MIN_SECRET} characters")
    return WebhookInput(url, secret)


def check_webhook_url(url: str) -> None:
    """Refuse (a 400 naming `webhook.url`) a URL the sender could not call: it would fail
    there at every attempt of every call."""
    http_url(url, "webhook.url")


def webhook_view(url: str | None) -> dict[str, Any] | None:
    return None if url is None else {"url": url, "secret_set": True}
