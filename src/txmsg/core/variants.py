"""Message drafts: the default parts, per-language variants, and sample data for checks."""

from __future__ import annotations

import re
from typing import Any

from txmsg.core.errors import invalid
from txmsg.core.kinds import Channel
from txmsg.core.templates import parts_of
from txmsg.core.validation import get_str, reject_unknown, require_object

MAX_PART = 256 * 1024
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8}){0,3}\Z")
MAX_VARIANTS = 50

# What templates of profile-based messages see as `profile` at preview and publish.
SAMPLE_PROFILE: dict[str, Any] = {
    "profile_id": "sample-profile",
    "email": "recipient@example.com",
    "mobilePhone": "+15555550100",
    "first_name": "Sample",
    "last_name": "Profile",
    "language": None,
    "attributes": {},
}
SAMPLE_UNSUBSCRIBE_URL = "https://example.com/unsubscribe/sample-token"


def parse_parts(body: dict[str, Any], channel: str, prefix: str = "") -> dict[str, str]:
    """The parts of a message of `channel`: an SMS needs its body; an email its subject and
    an HTML or a text part (or both)."""
    parts: dict[str, str] = {}
    for part in parts_of(channel):
        value = get_str(body, part, prefix=prefix, allow_empty=True, max_length=MAX_PART)
        parts[part] = value or ""
    if channel == Channel.SMS:
        if not parts["body"].strip():
            raise invalid(prefix + "body", "is required")
        return parts
    if not parts["subject"].strip():
        raise invalid(prefix + "subject", "is required")
    if not parts["html"].strip() and not parts["text"].strip():
        raise invalid(prefix + "html", "html or text (or both) must be given")
    return parts


def check_languages(value: Any) -> dict[str, Any]:
    """The variants object, its keys language tags (a 400: the spec states their pattern)."""
    variants = require_object(value, "variants")
    if len(variants) > MAX_VARIANTS:
        raise invalid("variants", f"at most {MAX_VARIANTS} languages")
    for language in variants:
        if not _LANGUAGE.match(language):
            raise invalid(f"variants.{language}", "must be a lower-case language tag: fr, fr-ca")
    return variants


def parse_variants(value: Any, channel: str) -> dict[str, dict[str, str]]:
    """`{"fr": {"subject", "html", "text"}, ...}` (`{"body"}` for SMS): tags in lower case."""
    if value is None:
        return {}
    variants = check_languages(value)
    parsed: dict[str, dict[str, str]] = {}
    for language, parts in variants.items():
        prefix = f"variants.{language}."
        parts = require_object(parts, f"variants.{language}")
        reject_unknown(parts, set(parts_of(channel)), prefix)
        parsed[language] = parse_parts(parts, channel, prefix)
    return parsed


def all_parts(draft: dict[str, Any], channel: str) -> list[tuple[str, dict[str, str]]]:
    """(field prefix, parts) of the default and of each variant: each must compile and render."""
    default = {p: draft[p] for p in parts_of(channel) if p in draft}
    out = [("", default)]
    for language, parts in (draft.get("variants") or {}).items():
        out.append((f"variants.{language}.", parts))
    return out
