"""Recipient and sender address checks (no DNS: deliverability is the SMTP server's word)."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

from txmsg.core.errors import invalid


def normalize_email(value: object, field_name: str) -> str:
    """A syntactically valid address, its domain normalised; a 400 naming the field otherwise."""
    if not isinstance(value, str):
        raise invalid(field_name, "must be a string holding an email address")
    if len(value) > 320:
        raise invalid(field_name, "is too long for an email address")
    try:
        info = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise invalid(field_name, f"is not a valid email address: {exc}") from None
    return info.normalized
