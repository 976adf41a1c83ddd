"""Mobile numbers: parsed and normalised to E.164 with `phonenumbers` (Google's libphonenumber).

Parsing costs tens of microseconds, so the trigger path calls this only for events that carry
a number (SMS events), once per trigger.
"""

from __future__ import annotations

import re

import phonenumbers

from txmsg.core.errors import DomainError, as_refused, invalid

MAX_INPUT = 64  # formatted numbers with spaces and dashes; anything longer is not a number
_INTERNATIONAL = (
    "must be a phone number in international format: + and the country code, e.g. +14155552671"
)
# Our words for libphonenumber's parse errors (its own text names its internals).
_PARSE_ERRORS = {
    phonenumbers.NumberParseException.NOT_A_NUMBER: "is not a phone number, e.g. +14155552671",
    phonenumbers.NumberParseException.TOO_SHORT_NSN: "is too short for a phone number",
    phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "is too short for a phone number",
    phonenumbers.NumberParseException.TOO_LONG: "is too long for a phone number",
}


def normalize_phone(value: object, field_name: str) -> str:
    """`+1 (415) 555-2671` -> `+14155552671`; a 400 naming the field when it is not valid."""
    if not isinstance(value, str):
        raise invalid(field_name, "must be a string holding a phone number in E.164 format")
    if not value.strip() or len(value) > MAX_INPUT:
        raise invalid(field_name, "must be a phone number in E.164 format, e.g. +14155552671")
    if "\x00" in value:  # libphonenumber would drop it, and take what is left
        raise invalid(field_name, "must not contain NUL characters (U+0000)")
    try:
        # No default region: the number must be international (+ and country code), because
        # a trigger does not say which country a national number belongs to.
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException as exc:
        raise invalid(field_name, _PARSE_ERRORS.get(exc.error_type, _INTERNATIONAL)) from None
    if not phonenumbers.is_valid_number(parsed):
        raise invalid(field_name, "is not a valid phone number (unknown range for its country)")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


# openapi.yaml's shape of an international number: + and digits, maybe formatted.
_INTERNATIONAL_SHAPE = re.compile(r"\+[0-9][0-9 ().-]*")


def normalize_known_phone(value: object, field_name: str) -> str:
    """`normalize_phone`, where a number of the spec's international shape that libphonenumber
    does not take (too short or long, no such range) is a 422: the shape is the spec's word,
    the numbering plans are not."""
    try:
        return normalize_phone(value, field_name)
    except DomainError as exc:
        if isinstance(value, str) and _INTERNATIONAL_SHAPE.fullmatch(value):
            raise as_refused(exc) from None
        raise
