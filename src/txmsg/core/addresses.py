"""Recipient and sender address checks (no DNS: deliverability is the SMTP server's word)."""

from __future__ import annotations

import re

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

from txmsg.core.errors import invalid

# The common case, plain ASCII dot-atom addresses, checked without email-validator's Unicode
# machinery. It only accepts what email-validator accepts too (a test holds the two together);
# anything else goes to email-validator, which stays the authority.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PLAIN = re.compile(
    rf"(?P<local>{_ATEXT}(?:\.{_ATEXT})*)@"
    # Top-level domains start and end with a letter.
    rf"(?P<domain>(?:{_LABEL}\.)+[A-Za-z](?:[A-Za-z0-9-]{{0,61}}[A-Za-z])?)"
)
# One search for every special-use name (the domain itself or a parent of it).
_SPECIAL = re.compile(
    r"(?:\A|\.)(?:" + "|".join(re.escape(name) for name in SPECIAL_USE_DOMAIN_NAMES) + r")\Z"
)


def _plain(value: str) -> str | None:
    match = _PLAIN.fullmatch(value)
    if match is None or len(match["local"]) > 64 or len(value) > 254:
        return None
    if "--" in match["domain"]:
        return None  # IDNA rules for punycode and reserved hyphens: email-validator decides
    domain = match["domain"].lower()
    if _SPECIAL.search(domain) is not None:
        return None
    return f"{match['local']}@{domain}"


def normalize_email(value: object, field_name: str) -> str:
    """A syntactically valid ASCII address, its domain lower-cased; a 400 naming the field."""
    if not isinstance(value, str):
        raise invalid(field_name, "must be a string holding an email address")
    if len(value) > 320:
        raise invalid(field_name, "is too long for an email address")
    plain = _plain(value)
    if plain is not None:
        return plain
    try:
        # strict: RFC 5321's 64 characters before the @ (not checked otherwise)
        info = validate_email(value, check_deliverability=False, allow_smtputf8=False, strict=True)
    except EmailNotValidError as exc:
        raise invalid(field_name, f"is not a valid email address: {exc}") from None
    return info.ascii_email or info.normalized
