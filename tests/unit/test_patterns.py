"""Names, ids and durations are checked whole: `$` would let a final newline through (Python's
`$` matches before one), and `\\d` any script's digits (the spec's patterns are ASCII)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from txmsg.core.durations import parse_duration
from txmsg.core.errors import DomainError
from txmsg.core.event_config import normalize_event_id
from txmsg.core.event_options import parse_tag
from txmsg.core.fatigue import parse_rule
from txmsg.core.profiles import parse_profile_id

DAY = timedelta(days=1)


def _rule(**change: Any) -> Any:
    return parse_rule(
        {"name": "daily", "channel": "email", "max_messages": 1, "period": "P1D", **change}
    )


CHECKS: list[tuple[Callable[[str], Any], str]] = [
    (parse_profile_id, "ada-42"),
    (normalize_event_id, "welcome"),
    (parse_tag, "shop"),
    (lambda name: _rule(name=name), "daily"),
    (lambda period: _rule(period=period), "P1D"),
    (lambda value: parse_duration(value, "expiry", DAY), "PT12H"),
]


@pytest.mark.parametrize(("check", "good"), CHECKS)
def test_a_final_newline_is_refused(check: Callable[[str], Any], good: str) -> None:
    check(good)
    with pytest.raises(DomainError):
        check(good + "\n")


@pytest.mark.parametrize("period", ["P\u0661D", "PT\u0967H"])  # Arabic-Indic one, Devanagari one
def test_durations_take_ascii_digits_only(period: str) -> None:
    with pytest.raises(DomainError):
        _rule(period=period)
    with pytest.raises(DomainError):
        parse_duration(period, "expiry", DAY)
