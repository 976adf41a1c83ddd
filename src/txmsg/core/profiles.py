"""Profiles: the stored recipients that profile-based events are reconciled with."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from txmsg.core.addresses import normalize_email
from txmsg.core.errors import conflicting, invalid
from txmsg.core.kinds import Channel
from txmsg.core.phones import normalize_known_phone, normalize_phone
from txmsg.core.validation import check_storable, get_bool, get_str, reject_unknown

PROFILE_FIELDS = {
    "email",
    "mobilePhone",
    "first_name",
    "last_name",
    "language",
    "attributes",
    "email_opt_out",
    "sms_opt_out",
}
OPT_OUT_FIELDS = ("email_opt_out", "sms_opt_out")
# Who recorded a profile's opt-out (`profiles.<channel>_opt_out_by`): the person themself (the
# unsubscribe link, an SMS STOP reported by Twilio) or an admin (a PUT, an import).
BY_PERSON = "person"
BY_ADMIN = "admin"
_PROFILE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}\Z")
# BCP 47 in its common shapes: fr, fr-CA, zh-Hant-TW.
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}\Z")


@dataclass(frozen=True, slots=True)
class Profile:
    profile_id: str
    email: str | None
    mobile_phone: str | None
    first_name: str | None
    last_name: str | None
    language: str | None
    attributes: dict[str, Any]
    # None only in a profile written (PUT, import) without the field: the stored value stays.
    email_opt_out: bool | None
    sms_opt_out: bool | None

    def as_row(self) -> dict[str, Any]:
        return {
            "profile_id": self.profile_id,
            "email": self.email,
            "mobile_phone": self.mobile_phone,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "language": self.language,
            "attributes": self.attributes,
            "email_opt_out": self.email_opt_out,
            "sms_opt_out": self.sms_opt_out,
        }

    def display_name(self) -> str | None:
        """ "First Last" for a recipient's name (the export dataset's `recipient.name`)."""
        name = " ".join(n for n in (self.first_name, self.last_name) if n)
        return name or None

    def template_view(self) -> dict[str, Any]:
        """What templates see as `profile` (`{{ profile.first_name }}`)."""
        return {
            "profile_id": self.profile_id,
            "email": self.email,
            "mobilePhone": self.mobile_phone,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "language": self.language,
            "attributes": self.attributes,
        }

    def address(self, channel: str) -> str | None:
        """The profile's address on a channel (the seam where SMS plugs in)."""
        return self.email if channel == Channel.EMAIL else self.mobile_phone

    def opted_out(self, channel: str) -> bool:
        return bool(self.email_opt_out if channel == Channel.EMAIL else self.sms_opt_out)


@dataclass(frozen=True, slots=True)
class OptOut:
    """A channel's stored opt-out: whether it is set and who set it (None when not set)."""

    opted_out: bool
    by: str | None


def written_opt_out(stored: OptOut, given: bool | None, resubscribe: bool) -> tuple[OptOut, bool]:
    """The opt-out a profile write (PUT, an NDJSON or CSV import row) leaves, and whether the
    write's explicit `false` was not applied. One rule for every way a profile is written:

    - the field left out (or a CSV cell left empty): the stored opt-out stays;
    - `true`: opted out (one the person recorded stays theirs);
    - `false`: clears an opt-out an admin recorded, but not one the person recorded
      themself (the unsubscribe link, an SMS STOP), unless the write says `resubscribe=true`:
      re-subscribing takes the person's own act (a sign-up form, START), which only the
      caller can vouch for. A re-import of an old list must not undo an unsubscribe.
    """
    if given is None:
        return stored, False
    if given:
        return (stored if stored.opted_out else OptOut(True, BY_ADMIN)), False
    if stored.opted_out and stored.by != BY_ADMIN and not resubscribe:
        return stored, True
    return OptOut(False, None), False


def from_row(row: Any) -> Profile:
    return Profile(
        profile_id=row.profile_id,
        email=row.email,
        mobile_phone=row.mobile_phone,
        first_name=row.first_name,
        last_name=row.last_name,
        language=row.language,
        attributes=row.attributes or {},
        email_opt_out=bool(row.email_opt_out),
        sms_opt_out=bool(row.sms_opt_out),
    )


def parse_profile_id(value: object, field_name: str = "profile_id") -> str:
    if not isinstance(value, str) or not _PROFILE_ID.match(value):
        raise invalid(
            field_name,
            "must be 1 to 128 characters: letters, digits and . _ : @ + - (not first)",
        )
    return value


def normalize_address(channel: str, value: object, field_name: str) -> str:
    """An email address or a phone number, normalized as the channel stores it."""
    if channel == Channel.EMAIL:
        return normalize_email(value, field_name)
    return normalize_phone(value, field_name)


def parse_profile(profile_id: str, body: Any) -> Profile:
    """A whole profile (PUT replaces it: fields left out become empty, but for the opt-outs,
    which a write changes only when it names them: `written_opt_out`)."""
    if not isinstance(body, dict):
        raise invalid("body", "must be a JSON object")
    reject_unknown(body, PROFILE_FIELDS | {"profile_id"})
    if "profile_id" in body and parse_profile_id(body["profile_id"]) != profile_id:
        raise conflicting("profile_id", "differs from the profile id of the path")
    email = body.get("email")
    phone = body.get("mobilePhone")
    language = get_str(body, "language", max_length=35)
    if language is not None and not _LANGUAGE.match(language):
        raise invalid("language", "must be a language tag such as fr or fr-CA")
    attributes = body.get("attributes")
    if attributes is None:
        attributes = {}
    if not isinstance(attributes, dict):
        raise invalid("attributes", "must be a JSON object")
    check_storable(attributes, "attributes")
    return Profile(
        profile_id=profile_id,
        email=normalize_email(email, "email") if email is not None else None,
        mobile_phone=normalize_known_phone(phone, "mobilePhone") if phone is not None else None,
        first_name=get_str(body, "first_name", max_length=200),
        last_name=get_str(body, "last_name", max_length=200),
        language=language.lower() if language else None,
        attributes=attributes,
        # Left out: the stored opt-out stays (written_opt_out).
        email_opt_out=get_bool(body, "email_opt_out"),
        sms_opt_out=get_bool(body, "sms_opt_out"),
    )


def public_view(profile: Profile) -> dict[str, Any]:
    return {
        "profile_id": profile.profile_id,
        "email": profile.email,
        "mobilePhone": profile.mobile_phone,
        "first_name": profile.first_name,
        "last_name": profile.last_name,
        "language": profile.language,
        "attributes": profile.attributes,
        "email_opt_out": bool(profile.email_opt_out),
        "sms_opt_out": bool(profile.sms_opt_out),
    }
