"""ISO 8601 durations the API takes (`P7D`, `PT12H`, `P1DT6H`): days and shorter units, and
weeks where allowed; no months or years (their length varies). Always bounded: a duration past
its maximum, however many digits it has, is a 400 naming its field, never an overflow."""

from __future__ import annotations

import re
from datetime import timedelta

from txmsg.core.errors import invalid

_DURATION = re.compile(
    r"^P(?:(?P<w>[0-9]+)W)?(?:(?P<d>[0-9]+)D)?(?:T(?:(?P<h>[0-9]+)H)?(?:(?P<m>[0-9]+)M)?(?:(?P<s>[0-9]+)S)?)?\Z"
)
_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
# Digits read of one number: more are refused before any arithmetic.
_MAX_DIGITS = 12


def parse_duration(
    value: object,
    field_name: str,
    maximum: timedelta,
    *,
    weeks: bool = True,
    example: str = "P7D",
) -> timedelta:
    """The duration, longer than 0 and at most `maximum`; else a 400 naming `field_name`."""
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None or value in ("P", "PT") or str(value).endswith("T"):
        raise invalid(field_name, f"must be an ISO 8601 duration such as {example}")
    groups = {
        unit: digits.lstrip("0") or "0"
        for unit, digits in match.groupdict().items()
        if digits is not None
    }
    if "w" in groups and not weeks:
        raise invalid(field_name, f"must be an ISO 8601 duration such as {example} (no weeks)")
    limit = int(maximum.total_seconds())
    too_long = f"must be longer than 0 and at most {_describe(limit)}"
    if any(len(digits) > _MAX_DIGITS for digits in groups.values()):
        raise invalid(field_name, too_long)
    seconds = sum(int(digits) * _UNIT_SECONDS[unit] for unit, digits in groups.items())
    if not 0 < seconds <= limit:
        raise invalid(field_name, too_long)
    return timedelta(seconds=seconds)


def _describe(seconds: int) -> str:
    if seconds % 86400 == 0:
        return f"{seconds // 86400} days"
    return f"{seconds} seconds"
