"""UTC clock and ISO 8601 parsing (Adobe's triggers may use a space instead of the `T`)."""

from __future__ import annotations

from datetime import UTC, datetime

from txmsg.core.errors import invalid

MIN_DATE = datetime(2000, 1, 1, tzinfo=UTC)
MAX_DATE = datetime(9000, 1, 1, tzinfo=UTC)  # far from datetime.max: room for offsets


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_iso8601(value: object, field_name: str) -> datetime:
    if not isinstance(value, str):
        raise invalid(field_name, "must be an ISO 8601 date-time string")
    text = value.strip()
    if len(text) > 10 and text[10] == " ":
        text = text[:10] + "T" + text[11:]
    try:
        parsed = datetime.fromisoformat(text)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)  # Adobe reads a zone-less date as UTC
        parsed = parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise invalid(
            field_name, f"'{value}' is not an ISO 8601 date-time (e.g. 2026-11-23T10:00:00Z)"
        ) from None
    if not MIN_DATE <= parsed <= MAX_DATE:
        raise invalid(field_name, "must be between the years 2000 and 9000")
    return parsed


def isoformat(value: datetime | None) -> str | None:
    """`2026-11-23T10:00:00.000Z`: UTC, milliseconds, one format for every answer."""
    if value is None:
        return None
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    # %-formatting: about half the time of isoformat() on a naive copy (three per trigger).
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (  # noqa: UP031
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond // 1000,
    )
